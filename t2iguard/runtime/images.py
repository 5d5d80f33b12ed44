"""Image codecs and checks shared by the orchestrator, the client and the export side.

Layouts: `uint8 [H, W, 3]` RGB for images on the wire between models; `float32 [3, H, W]` in
[0, 1] for the VAE; masks `float32 [H, W]` in {0, 1} where 1 means "repaint".
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

from t2iguard.contract.errors import InvalidInput

#: the largest encoded image the service accepts, in bytes
MAX_IMAGE_BYTES = 8 * 1024 * 1024


#: zlib level of the PNGs the service returns: on generated 256x256 images level 1 takes 3.7 ms and 45 KB where
#: Pillow's default (6) takes 12.8 ms and 35 KB (deploy/perf/RESULTS.md): the bytes are cheaper than the time
PNG_COMPRESS_LEVEL = 1


def encode_png(image: np.ndarray) -> bytes:
    """uint8 [H, W, 3] -> PNG bytes (lossless; zlib level `PNG_COMPRESS_LEVEL`)."""
    buf = io.BytesIO()
    Image.fromarray(image, "RGB").save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def decode_image(data: bytes, field: str, size: int, mode: str = "RGB") -> np.ndarray:
    """Encoded PNG/JPEG/WebP bytes -> uint8 [size, size, 3] (mode RGB) or [size, size] (mode L).

    Raises InvalidInput naming `field` and the limit for empty, oversized, undecodable images
    and images whose dimensions differ from `size` x `size`.
    """
    if not data:
        raise InvalidInput(f"`{field}` is empty; expected PNG or JPEG bytes")
    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidInput(f"`{field}` is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.width != size or img.height != size:
                raise InvalidInput(
                    f"`{field}` is {img.width}x{img.height} pixels; this profile takes {size}x{size}"
                )
            img.load()
    except InvalidInput:
        raise
    except (OSError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise InvalidInput(f"`{field}` is not a decodable PNG/JPEG image ({e.__class__.__name__})") from None
    return np.asarray(img.convert(mode), dtype=np.uint8)


def to_pixels(image: np.ndarray) -> np.ndarray:
    """uint8 [B, H, W, 3] -> float32 [B, 3, H, W] in [0, 1]."""
    return (image.astype(np.float32) / 255.0).transpose(0, 3, 1, 2).copy()


def from_pixels(pixels: np.ndarray) -> np.ndarray:
    """float32 [B, 3, H, W] in [0, 1] -> uint8 [B, H, W, 3] (rounded, clipped)."""
    return (np.clip(pixels, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1).copy()


def mask_from_image(mask: np.ndarray) -> np.ndarray:
    """uint8 [H, W] grey mask -> float32 [H, W] in {0, 1} (white, >= 128, means repaint)."""
    return (mask >= 128).astype(np.float32)


def downsample_mask(mask: np.ndarray, factor: int) -> np.ndarray:
    """float32 [H, W] -> float32 [H/f, W/f]: a latent cell is repainted if any pixel in it is."""
    h, w = mask.shape
    return mask.reshape(h // factor, factor, w // factor, factor).max(axis=(1, 3))


def identity_region(image: np.ndarray, mask: np.ndarray, colours: list[tuple[int, int, int]] | np.ndarray,
                    tolerance: float, grow: int = 0) -> np.ndarray:
    """The pixels of uint8 [H, W, 3] `image` inside float32 [H, W] `mask` (1: repaint) within `tolerance` (RGB
    distance) of one of `colours`, grown by `grow` pixels (a square neighbourhood) and kept inside the mask:
    float32 [H, W] in {0, 1}. An edit's source read this way gives the region its regenerations keep
    (policy `regeneration.edit_keep_identity`)."""
    palette = np.asarray(colours, np.float32).reshape(-1, 3)
    dist = np.linalg.norm(image.astype(np.float32)[:, :, None, :] - palette, axis=-1).min(axis=-1)
    region = (dist <= tolerance) & (mask > 0)
    if grow > 0 and region.any():
        padded = np.pad(region, grow)
        h, w = region.shape
        grown = np.zeros_like(region)
        for dy in range(2 * grow + 1):
            for dx in range(2 * grow + 1):
                grown |= padded[dy:dy + h, dx:dx + w]
        region = grown & (mask > 0)
    return region.astype(np.float32)


def image_grid(images: list[np.ndarray], cols: int) -> np.ndarray:
    """Tile uint8 [H, W, 3] images (same size) into one uint8 grid, row-major."""
    h, w, _ = images[0].shape
    rows = -(-len(images) // cols)
    grid = np.full((rows * h, cols * w, 3), 255, dtype=np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        grid[r * h:(r + 1) * h, c * w:(c + 1) * w] = im
    return grid


#: object_groups: a pixel is an object's where some channel differs from the border's median colour by more than
#: this (faint ground shadows and background mottling stay under it; figures' dark legs and shirts do not)
OBJECT_CONTRAST = 48
#: ... and two objects stand apart where at least this many columns between them hold no such pixel
OBJECT_GAP = 6
#: ... and a group of columns with fewer such pixels than this is a speck, not an object
OBJECT_PIXELS = 20


def border_colour(image: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [3]: the median colour of the image's 4-pixel border (the background's)."""
    edge = np.concatenate([image[:4].reshape(-1, 3), image[-4:].reshape(-1, 3),
                           image[:, :4].reshape(-1, 3), image[:, -4:].reshape(-1, 3)])
    return np.median(edge, axis=0).astype(np.uint8)


def object_groups(image: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """uint8 [H, W, 3] -> (the border's colour, uint8 [3]; [first, end) columns of each group of object pixels,
    left to right). A pixel is an object's where some channel differs from the border's colour by more than
    `OBJECT_CONTRAST`; groups are separated by `OBJECT_GAP` columns without one, and a group of fewer than
    `OBJECT_PIXELS` such pixels is a speck, left out. No group: the image is blank (its background alone)."""
    bg = border_colour(image)
    wide = bg.astype(np.int16)
    # |pixel - bg| > contrast in some channel, as uint8 bounds: one pass each way, no int16 copy of the image (hot path)
    far = (image > np.minimum(wide + OBJECT_CONTRAST, 255).astype(np.uint8)) | (
        image < np.maximum(wide - OBJECT_CONTRAST, 0).astype(np.uint8))
    object_px = (far[..., 0] | far[..., 1] | far[..., 2]).sum(axis=0)
    cols = np.flatnonzero(object_px)
    if len(cols) == 0:
        return bg, []
    split = np.flatnonzero(np.diff(cols) > OBJECT_GAP)  # a gap of at least OBJECT_GAP empty columns follows
    firsts, ends = cols[np.r_[0, split + 1]], cols[np.r_[split, len(cols) - 1]] + 1  # [first, end) of each group
    totals = np.r_[0, np.cumsum(object_px)]
    return bg, [(int(f), int(e)) for f, e in zip(firsts, ends, strict=True) if totals[e] - totals[f] >= OBJECT_PIXELS]


def object_views(image: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [V, H, W, 3]: the image, then, when it holds objects that stand apart side by side
    (`object_groups`), each group alone: the columns from the middle of the gap on its left to the middle of the
    gap on its right kept, the rest painted the border's colour. Objects keep their size and place and no object
    is cut; an image with one group (or none) gives the image alone (V = 1)."""
    bg, groups = object_groups(image)
    if len(groups) < 2:
        return image[None]
    views = np.empty((len(groups) + 1, *image.shape), np.uint8)
    views[0], views[1:] = image, bg
    for i, (first, end) in enumerate(groups):
        lo = 0 if i == 0 else (groups[i - 1][1] + first) // 2
        hi = image.shape[1] if i == len(groups) - 1 else (end + groups[i + 1][0]) // 2
        views[i + 1, :, lo:hi] = image[:, lo:hi]
    return views


def letterbox(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [size, size, 3]: padded to a centred square with mid-grey (128), then resized
    (bicubic). The guard sees the whole image: nothing is cropped away. Grey, not black: in a check on 48
    ShapeWorld scenes cut to 180x256, black bars made the tiny image classifier call 34 of the 42 clean ones
    `nudity`, grey bars none, and both caught the 6 bare figures (tests/test_filter_dataset.py keeps the grey
    half of that check). A size x size image passes unchanged."""
    h, w, _ = image.shape
    if h == w == size:
        return image
    side = max(h, w)
    square = np.full((side, side, 3), 128, np.uint8)
    top, left = (side - h) // 2, (side - w) // 2
    square[top:top + h, left:left + w] = image
    return np.asarray(Image.fromarray(square).resize((size, size), Image.BICUBIC), dtype=np.uint8)
