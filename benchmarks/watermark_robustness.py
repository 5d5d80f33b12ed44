"""Does the served watermark survive what happens to shared images? Bit accuracy and detection per transform.

    .venv/bin/python benchmarks/watermark_robustness.py [--images 24] [--rivagan 0] [--seed 3] \
        [--json OUT.json] [--plot OUT.png]

Draws `--images` 512x512 images of four kinds (ShapeWorld scenes, drawn at 256 and doubled by pixel repetition;
colour gradients and smooth colour noise from `benchmarks/watermark.py`; a photo-like landscape drawn here), marks
them with the served path (`apply_watermark`: the 48-bit `dwtDctSvd` mark, read back), applies each transform and
reads the mark with `t2iguard.runtime.verify.verify` (what `t2iguard verify` runs). 512x512 so that halving still
leaves the 256x256 the decoder needs; resized and cropped images are read at their new size (what a re-poster
shares), and one row scales back up to 512 to show what a verifier that knew the original size would get.

Prints a Markdown table: per transform and image kind, the mean bit accuracy and the detection rate at the
1e-6 false-positive threshold (`t2iguard.runtime.verify.THRESHOLD` of 48 bits); then the false positives among
the same images unmarked, under every transform. `--rivagan N` adds the same table for invisible-watermark's
`rivaGan` (its 32-bit learned mark; the ONNX encoder and decoder ship inside the package) on the first N images
of each kind, whose false positives are counted on the untransformed unmarked images only (its decoder takes
seconds per image here).
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter
from rich.console import Console
from rich.progress import track
from watermark import gradients, smooth_noise  # benchmarks/watermark.py, beside this script

from t2iguard.runtime.verify import FALSE_POSITIVE_RATE, p_value, threshold, verify
from t2iguard.runtime.watermark import MIN_SIDE, WATERMARK_BITS, apply_watermark
from t2iguard.training.data import shapeworld as W

SIDE = 2 * MIN_SIDE
#: rivaGan's only message length (the library refuses others): the served message's first 32 bits
RIVAGAN_BITS = WATERMARK_BITS[:32]


def field(rng: np.random.Generator, cells: int, side: int = SIDE) -> np.ndarray:
    """Standard normal noise on a cells x cells grid, bicubically upsampled: float32 [side, side]."""
    grid = rng.normal(0, 1, (cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(grid, "F").resize((side, side), Image.BICUBIC))


def photo_like(rng: np.random.Generator, side: int = SIDE) -> np.ndarray:
    """A landscape drawn in code, smooth and noisy as a photograph: a sky gradient with clouds and a sun glow, a
    hilly horizon, textured ground hazier towards the horizon, a few dark trees, lens blur and sensor noise.
    uint8 [side, side, 3] RGB."""
    y, x = np.mgrid[0:side, 0:side] / side
    fractal = sum(field(rng, c, side) * (4 / c) for c in (4, 8, 16, 32, 64, 128))
    clouds = np.clip(sum(field(rng, c, side) * (4 / c) for c in (4, 8, 16, 32)) - 0.3, 0, 0.8)[..., None]
    horizon = rng.uniform(0.4, 0.6) + 0.05 * field(rng, 6, side)[0]  # [side]: one height per column
    top, low = rng.uniform((30, 70, 150), (90, 130, 210)), rng.uniform((170, 190, 205), (230, 235, 245))
    t = np.clip(y / horizon, 0, 1)[..., None]
    sky = top * (1 - t) + low * t
    sky += (255 - sky) * clouds
    sx, sy = rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.3)
    sky += (255 - sky) * 0.8 * np.exp(-((x - sx) ** 2 + (y - sy) ** 2) / 0.005)[..., None]
    ground = rng.uniform((50, 70, 25), (120, 140, 70)) * (1 + 0.3 * fractal)[..., None]
    haze = np.exp(-np.clip(y - horizon, 0, None) * 6)[..., None]
    ground = ground * (1 - 0.6 * haze) + low * 0.6 * haze
    scene = np.where((y < horizon)[..., None], sky, ground)
    for _ in range(rng.integers(2, 7)):
        cx, r = rng.uniform(0.05, 0.95), rng.uniform(0.02, 0.08)
        cy = horizon[int(cx * side)] + rng.uniform(0, 0.1)
        tree = ((x - cx) / r) ** 2 + ((y - cy + r) / (1.8 * r)) ** 2 < 1
        scene[tree] = rng.uniform((15, 35, 10), (45, 75, 30)) * (1 + 0.2 * fractal[tree])[:, None]
    scene = scene.clip(0, 255).astype(np.uint8)
    blurred = np.asarray(Image.fromarray(scene).filter(ImageFilter.GaussianBlur(1.2)), np.float64)
    return (blurred + rng.normal(0, 2, blurred.shape)).round().clip(0, 255).astype(np.uint8)


def kinds(rng: np.random.Generator, n: int) -> dict[str, list[np.ndarray]]:
    """Image kind -> n uint8 [SIDE, SIDE, 3] RGB images."""
    scale = SIDE // W.SIZE
    shapes = [W.render(W.sample_t2i(rng)[0]).repeat(scale, 0).repeat(scale, 1) for _ in range(n)]
    return {"ShapeWorld": shapes, "gradient": gradients(rng, n, SIDE), "smooth noise": smooth_noise(rng, n, SIDE),
            "photo-like": [photo_like(rng) for _ in range(n)]}


def _round_trip(img: Image.Image, **save) -> np.ndarray:
    buf = io.BytesIO()
    img.save(buf, **save)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """JPEG at `quality` (Pillow's default 4:2:0 chroma subsampling), decoded."""
    return _round_trip(Image.fromarray(image), format="JPEG", quality=quality)


def png_rgba(image: np.ndarray) -> np.ndarray:
    """Lossless: converted to RGBA, saved as PNG, decoded back to RGB."""
    return _round_trip(Image.fromarray(image).convert("RGBA"), format="PNG")


def screenshot(image: np.ndarray) -> np.ndarray:
    """The image shown in a window and captured whole: a 32-pixel title bar and a 6-pixel frame around it, RGBA
    PNG, decoded to RGB. The verifier reads the whole capture (the image is not cut out again)."""
    h, w = image.shape[:2]
    window = Image.new("RGBA", (w + 12, h + 38), (236, 236, 236, 255))
    window.paste(Image.new("RGBA", (w + 12, 32), (60, 60, 64, 255)), (0, 0))
    window.paste(Image.fromarray(image).convert("RGBA"), (6, 32))
    return _round_trip(window, format="PNG")


def resize(image: np.ndarray, factor: float, back: bool = False) -> np.ndarray:
    """Bicubic resize by `factor`; with `back`, bicubically up to the original size again."""
    h, w = image.shape[:2]
    small = Image.fromarray(image).resize((round(w * factor), round(h * factor)), Image.BICUBIC)
    return np.asarray(small.resize((w, h), Image.BICUBIC) if back else small)


def crop(image: np.ndarray, cut: float) -> np.ndarray:
    """The centre, `cut` of each side removed (half at each edge): 10% of 512 leaves 461x461."""
    h, w = image.shape[:2]
    top, left = round(h * cut / 2), round(w * cut / 2)
    return image[top:top + round(h * (1 - cut)), left:left + round(w * (1 - cut))]


def brightness(image: np.ndarray, factor: float) -> np.ndarray:
    """Pillow's ImageEnhance.Brightness: every channel times `factor`, clipped."""
    return np.asarray(ImageEnhance.Brightness(Image.fromarray(image)).enhance(factor))


TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda image: image,
    "PNG re-encode (RGBA, lossless)": png_rgba,
    "screenshot (window frame, PNG)": screenshot,
    "JPEG q90": partial(jpeg, quality=90),
    "JPEG q75": partial(jpeg, quality=75),
    "JPEG q50": partial(jpeg, quality=50),
    "resize 0.75": partial(resize, factor=0.75),
    "resize 0.5": partial(resize, factor=0.5),
    "resize 0.5, back to 512": partial(resize, factor=0.5, back=True),
    "crop 10%": partial(crop, cut=0.10),
    "crop 25%": partial(crop, cut=0.25),
    "brightness +10%": partial(brightness, factor=1.1),
    "brightness -10%": partial(brightness, factor=0.9),
}


def served_matches(image: np.ndarray) -> int:
    return verify(image).matched


def rivagan_mark(image: np.ndarray) -> np.ndarray:
    """invisible-watermark's `rivaGan` encode of RIVAGAN_BITS, uint8 RGB in and out (the library works in BGR)."""
    from imwatermark import WatermarkEncoder

    enc = WatermarkEncoder()
    enc.set_watermark("bits", RIVAGAN_BITS)
    return np.ascontiguousarray(enc.encode(np.ascontiguousarray(image[:, :, ::-1]), "rivaGan")[:, :, ::-1])


def rivagan_matches(image: np.ndarray) -> int:
    """Bits of RIVAGAN_BITS that invisible-watermark's `rivaGan` decoder reads back from uint8 RGB."""
    from imwatermark import WatermarkDecoder

    bits = WatermarkDecoder("bits", len(RIVAGAN_BITS)).decode(np.ascontiguousarray(image[:, :, ::-1]), "rivaGan")
    return int(np.sum(np.asarray(bits) == RIVAGAN_BITS))


def measure(bits: int, images: dict[str, list[np.ndarray]], mark: Callable[[np.ndarray], np.ndarray],
            matches: Callable[[np.ndarray], int], unmarked_transforms: bool, label: str = "") -> dict:
    """Mark every image, apply each transform, count the bits read back. Returns {bits, threshold, images: {kind:
    n}, transforms: {transform: {kind: {bit_accuracy, detected, n}}}, false_positives: {kind: {detected, n,
    most_bits}}, unmarked_transforms, seconds}; detected = matches >= threshold(bits)."""
    k = threshold(bits)
    start = time.perf_counter()
    found = {t: {kind: [] for kind in images} for t in TRANSFORMS}
    false_pos = {kind: [] for kind in images}
    for kind, ims in images.items():
        for image in track(ims, description=f"{label}: {kind}", transient=True, console=Console(stderr=True)):
            marked = mark(image)
            for t, fn in TRANSFORMS.items():
                found[t][kind].append(matches(fn(marked)))
                if unmarked_transforms or t == "none":
                    false_pos[kind].append(matches(fn(image)))
    return {"bits": bits, "threshold": k, "images": {kind: len(ims) for kind, ims in images.items()},
            "transforms": {t: {kind: {"bit_accuracy": float(np.mean(m)) / bits,
                                      "detected": int(sum(x >= k for x in m)), "n": len(m)}
                               for kind, m in per.items()} for t, per in found.items()},
            "false_positives": {kind: {"detected": int(sum(x >= k for x in m)), "n": len(m), "most_bits": int(max(m))}
                                for kind, m in false_pos.items()},
            "unmarked_transforms": unmarked_transforms, "seconds": round(time.perf_counter() - start, 1)}


def markdown(name: str, result: dict) -> str:
    """The Markdown table of one mark's `measure` result: rows transforms, columns image kinds, cells mean bit
    accuracy / images detected; then the false positives of the unmarked images."""
    bits, k = result["bits"], result["threshold"]
    lines = [f"**{name}**: {bits} bits, detected = at least {k} match (p = {p_value(k, bits):.1e} <= "
             f"{FALSE_POSITIVE_RATE:g} for an unmarked image's fair coins); cells: mean bit accuracy / detected", "",
             "| transform | " + " | ".join(f"{kind} ({n})" for kind, n in result["images"].items()) + " |",
             "|---" * (len(result["images"]) + 1) + "|"]
    for t, per in result["transforms"].items():
        lines.append(f"| {t} | " + " | ".join(f"{c['bit_accuracy']:.1%} / {c['detected']}/{c['n']}"
                                              for c in per.values()) + " |")
    which = "every transform" if result["unmarked_transforms"] else "untransformed"
    cells = [f"{c['detected']}/{c['n']} (most bits: {c['most_bits']}/{bits})"
             for c in result["false_positives"].values()]
    lines += [f"| false positives: unmarked, {which} | " + " | ".join(cells) + " |", "",
              f"({result['seconds']:.0f} s)"]
    return "\n".join(lines)


def plot(result: dict, title: str, path: Path) -> None:
    """PNG: per transform, the share of marked images detected, one bar per image kind (a `measure` result)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    transforms, kinds_ = list(result["transforms"]), list(result["images"])
    y = np.arange(len(transforms))
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(transforms) + 1.4))
    height = 0.8 / len(kinds_)
    for i, kind in enumerate(kinds_):
        rates = [100 * result["transforms"][t][kind]["detected"] / result["transforms"][t][kind]["n"]
                 for t in transforms]
        ax.barh(y + (i - (len(kinds_) - 1) / 2) * height, rates, height, label=f"{kind} ({result['images'][kind]})")
    ax.set_yticks(y, transforms, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel(f"marked images detected (%), at least {result['threshold']} of {result['bits']} bits")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


#: the marks measured: their key in the JSON -> their title in the tables
MARKS = {"served": "served: dwtDctSvd, 48 bits (`apply_watermark`, read by `verify`)",
         "rivagan": "invisible-watermark rivaGan, 32 bits (library encode and decode)"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=24, help="images per kind for the served mark")
    ap.add_argument("--rivagan", type=int, default=0, help="images per kind for invisible-watermark's rivaGan "
                                                           "(0: skip; about 40 s per image on 2 CPU cores)")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here: {seed, marks: {served, "
                                                             "rivagan: measure()'s dict}}")
    ap.add_argument("--plot", type=Path, default=None, help="also write a PNG of the served mark's detection rates")
    args = ap.parse_args()
    if args.images < 1:
        ap.error(f"--images must be at least 1, not {args.images}")
    rng = np.random.default_rng(args.seed)
    images = kinds(rng, args.images)
    results = {"served": measure(len(WATERMARK_BITS), images, apply_watermark, served_matches, True, "served")}
    print("\n" + markdown(MARKS["served"], results["served"]) + "\n", flush=True)
    if args.rivagan:
        from imwatermark import WatermarkEncoder

        WatermarkEncoder.loadModel()
        results["rivagan"] = measure(len(RIVAGAN_BITS), {kind: ims[:args.rivagan] for kind, ims in images.items()},
                                     rivagan_mark, rivagan_matches, False, "rivaGan")
        print("\n" + markdown(MARKS["rivagan"], results["rivagan"]) + "\n", flush=True)
    if args.plot:
        plot(results["served"], MARKS["served"], args.plot)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"seed": args.seed, "marks": results}, indent=2))


if __name__ == "__main__":
    main()
