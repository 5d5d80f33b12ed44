"""Invisible watermark: a fixed 48-bit message in invisible-watermark's `dwtDctSvd` format.

Images are uint8 [H, W, 3] RGB with H, W >= 256 (invisible-watermark refuses smaller images). Any
holder of invisible-watermark reads it: `WatermarkDecoder("bits", 48).decode(bgr, "dwtDctSvd")`.

Why not `dwtDct`, which diffusers' SDXL watermarker uses: it writes each bit into the largest
coefficient of a 4x4 block of the chroma (U) band's LL, chosen by argmax. In a flat block every
coefficient is equal, the written one may stop being the largest, and the decoder then reads an
unwritten one: the message is lost on flat images of many colours. `dwtDctSvd` writes the block's
first singular value, which has no such ambiguity. `embed` says how the bits are written around
the library's coder and why; `benchmarks/watermark.py` measures every choice (table in the README).

The served `dwtDctSvd` coder and its read-back run over every 4x4 block at once (`encode_blocks`,
`read_blocks`: one batched DCT, SVD and inverse per image, where the library loops over the 1024 blocks of
a 256x256 image in Python). They are the library's arithmetic in another order: the DCT as the orthonormal
DCT-II matrix product that cv2.dct computes, the same singular-value rule; the coded LL band is within 1e-11
of the library's `encode_frame`, and the bits read are the library decoder's (tests/test_watermark_speed.py
checks both against the library on marked, unmarked and drawn images).
"""

from __future__ import annotations

import numpy as np

from t2iguard.contract.errors import GuardFailure
from t2iguard.contract.policy import WatermarkConfig

#: the 48-bit message (diffusers' SDXL WATERMARK_MESSAGE), as bits
WATERMARK_MESSAGE = 0b101100111110110010010000011110111011000110011110
WATERMARK_BITS = [int(b) for b in bin(WATERMARK_MESSAGE)[2:]]
METHOD = "dwtDctSvd"
#: the library's defaults: quantisation step of the U channel's coder and its block side (LL coefficients)
SCALE, BLOCK = 36, 4
#: d(B, G, R) / dU of OpenCV's YUV->BGR (BT.601): a change of U alone leaves Y and V as they were
U_TO_BGR = np.array([2.032, -0.395, 0.0])
#: rounds and gain of the feedback that makes the decoder's (integer) U hit the target (gain 1 oscillates)
FEEDBACK_ROUNDS, FEEDBACK_GAIN = 8, 0.5
MIN_SIDE = 256
#: grey levels kept free at both ends so the embedding's chroma change stays inside the gamut
#: (`benchmarks/watermark.py`: at 0 white, yellow, blue lose it; at 2, 8 of 144 gamut-face colours; at 4, none)
HEADROOM = 4
#: the policy's default pass mark (`watermark.min_match`): the fraction of the message bits an embedded
#: image must give back; below it, no image leaves (fail closed). The served value is the policy's.
MIN_MATCH: float = WatermarkConfig.model_fields["min_match"].default


#: the orthonormal DCT-II of a BLOCK-point signal (what cv2.dct computes on a BLOCK x BLOCK float block)
_K, _N = np.arange(BLOCK)[:, None], np.arange(BLOCK)[None, :]
DCT = np.cos(np.pi * (2 * _N + 1) * _K / (2 * BLOCK)) * np.where(_K == 0, np.sqrt(1 / BLOCK), np.sqrt(2 / BLOCK))


def _blocks(band: np.ndarray) -> np.ndarray:
    """float [R*B, C*B] -> the blocks in the library's order (row by row): [R*C, B, B]."""
    r, c = band.shape[0] // BLOCK, band.shape[1] // BLOCK
    return band[:r * BLOCK, :c * BLOCK].reshape(r, BLOCK, c, BLOCK).swapaxes(1, 2).reshape(r * c, BLOCK, BLOCK)


def encode_blocks(ll: np.ndarray, bits: list[int], scale: float = SCALE) -> None:
    """invisible-watermark's `EmbedDwtDctSvd.encode_frame` over every block at once, in place on the LL band
    `ll` (float64): block k carries bit k mod len(bits) in its DCT's first singular value,
    s0 <- (s0 // scale + 0.25 + 0.5 * bit) * scale."""
    r, c = ll.shape[0] // BLOCK, ll.shape[1] // BLOCK
    u, s, vt = np.linalg.svd(DCT @ _blocks(ll) @ DCT.T)
    bit = np.asarray(bits, dtype=np.float64)[np.arange(r * c) % len(bits)]
    s[:, 0] = (s[:, 0] // scale + 0.25 + 0.5 * bit) * scale
    coded = DCT.T @ (u @ (s[:, :, None] * vt)) @ DCT
    ll[:r * BLOCK, :c * BLOCK] = coded.reshape(r, c, BLOCK, BLOCK).swapaxes(1, 2).reshape(r * BLOCK, c * BLOCK)


def read_blocks(ll: np.ndarray, n: int, scale: float = SCALE) -> np.ndarray:
    """invisible-watermark's `EmbedDwtDctSvd.decode` on the LL band `ll` over every block at once: per block
    (s0 mod scale) > scale / 2, averaged over the blocks of each of the `n` bits, > 127/255 -> int [n]."""
    s0 = np.linalg.svd(DCT @ _blocks(ll) @ DCT.T, compute_uv=False)[:, 0]
    score = ((s0 % scale) > scale * 0.5).astype(np.float64)
    which = np.arange(len(s0)) % n
    mean = np.bincount(which, score, n) / np.bincount(which, None, n)
    return (mean * 255 > 127).astype(int)


class WatermarkError(GuardFailure):
    """The watermark could not be embedded so that it reads back (fail closed: no image)."""


def embed(image: np.ndarray, bits: list[int], method: str = METHOD, headroom: int = HEADROOM) -> np.ndarray:
    """uint8 [H, W, 3] RGB -> uint8 [H, W, 3] RGB carrying `bits` as invisible-watermark's `method` writes
    them (its per-block coder on the Haar LL band of the U channel), so its decoder reads them.

    Around that coder, the library's own `encode` damages images, so this does the rest itself: the
    library converts to uint8 YUV and back (saturated colours leave V's range: spring green (0, 255, 128)
    comes back 18 levels redder), truncates instead of rounding, and swaps the horizontal and vertical detail
    bands when inverting the DWT (edges move in chroma). Here the coder runs on the U channel as the
    decoder computes it (OpenCV, uint8), and only its change dU goes back into the pixels, along the
    YUV->RGB matrix's U column (B += 2.032 dU, G -= 0.395 dU: Y and V stay). Rounding to uint8 moves
    the U the decoder computes by about one level, which on a flat image moves every block the same
    way and can flip every bit; so what is still missing is fed back a few rounds. Pixels
    are first clipped to [headroom, 255 - headroom] so that the change stays inside the RGB gamut.
    No read-back check; `apply_watermark` is the served path."""
    import cv2  # cv2 and pywt ship with invisible-watermark, whose decoder converts colours and transforms with them
    import pywt

    if method not in ("dwtDct", METHOD):
        raise ValueError(f"method must be 'dwtDct' or {METHOD!r}, not {method!r}")
    if min(image.shape[:2]) < MIN_SIDE:
        raise ValueError(f"watermarking needs images of at least {MIN_SIDE}x{MIN_SIDE}, got {image.shape[:2]}")
    bgr = np.ascontiguousarray(np.clip(image[:, :, ::-1], headroom, 255 - headroom))  # OpenCV order
    h, w = (s // BLOCK * BLOCK for s in image.shape[:2])
    u = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV)[:h, :w, 1].astype(np.float64)
    ll, details = pywt.dwt2(u, "haar")
    if method == METHOD:  # in place, one bit per 4x4 block of LL: the library's coder, every block at once
        encode_blocks(ll, bits)
    else:  # the library's own coder; imported only here: the package's __init__ imports torch (for rivaGan)
        from imwatermark.maxDct import EmbedMaxDct

        EmbedMaxDct(bits, wmLen=len(bits), block=BLOCK).encode_frame(ll, SCALE)
    target = np.rint(pywt.idwt2((ll, details), "haar"))  # the decoder reads integer U
    out, marked = bgr.astype(np.float64), bgr.copy()
    region, gain = out[:h, :w], FEEDBACK_GAIN * U_TO_BGR  # B and G move with U, R does not (gain 0)
    for _ in range(FEEDBACK_ROUNDS):  # rounding moves the decoder's U by about 1; feed that back
        missing = target - cv2.cvtColor(marked, cv2.COLOR_BGR2YUV)[:h, :w, 1]
        if not missing.any():
            break  # converged: the remaining rounds would change nothing
        region += missing[:, :, None] * gain  # whole-array steps: where nothing is missing they add 0
        marked[:h, :w] = np.clip(np.rint(region), 0, 255)
    return np.ascontiguousarray(marked[:, :, ::-1])


def read_bits(image: np.ndarray, n: int, method: str = METHOD) -> np.ndarray:
    """uint8 [H, W, 3] RGB -> int [n]: the bits invisible-watermark's `method` reads from it (`dwtDctSvd`:
    its decoder's arithmetic over every block at once, `read_blocks`)."""
    if method == METHOD:
        import cv2
        import pywt

        h, w = (s // BLOCK * BLOCK for s in image.shape[:2])
        u = cv2.cvtColor(np.ascontiguousarray(image[:, :, ::-1]), cv2.COLOR_BGR2YUV)[:h, :w, 1]
        return read_blocks(pywt.dwt2(u, "haar")[0], n)
    from imwatermark import WatermarkDecoder

    return np.asarray(WatermarkDecoder("bits", n).decode(np.ascontiguousarray(image[:, :, ::-1]), method), dtype=int)


def apply_watermark(image: np.ndarray, min_match: float = MIN_MATCH) -> np.ndarray:
    """uint8 [H, W, 3] RGB -> the same image carrying the 48-bit watermark, checked by reading it back
    (`WatermarkError`, a guard failure, when fewer than `min_match` of the bits come back). The caller
    passes the policy's `watermark.min_match`; the default is the policy schema's."""
    marked = embed(image, WATERMARK_BITS)
    match = watermark_match(marked)
    if match < min_match:
        raise WatermarkError(f"watermark reads back {match:.2f} of its bits (< {min_match}); no image is returned")
    return marked


def watermark_match(image: np.ndarray) -> float:
    """Fraction of the 48 message bits recovered from uint8 [H, W, 3] RGB (1.0 = intact,
    about 0.5 = absent)."""
    return float(np.mean(read_bits(image, len(WATERMARK_BITS)) == np.asarray(WATERMARK_BITS)))
