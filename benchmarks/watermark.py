"""Does the watermark survive flat images? Each embedding method x headroom, per image family.

    .venv/bin/python benchmarks/watermark.py [--messages 2] [--seed 1]

Draws 256x256 images of six families (flat colours, flat colours on a face of the RGB cube (one
channel at 0 or 255), flat colours with a red square, ShapeWorld scenes, linear gradients, smooth
noise), embeds random 48-bit messages with invisible-watermark's `dwtDct` (diffusers' SDXL choice)
and `dwtDctSvd` (the served one) after clipping the pixels to [headroom, 255 - headroom], once by
the library's own `encode` and once by `t2iguard.runtime.watermark.embed` (the library's per-block coder,
with colour conversion and DWT done without its losses), reads them back with the library's
decoder and prints a Markdown table: images whose read-back falls under `MIN_MATCH` (the served
check), the worst read-back, and PSNR against the unclipped original (5th percentile and median).
Then times the served path (`apply_watermark`) on the ShapeWorld images. The README's watermark
table comes from this command.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import torch
from rich.progress import track

from t2iguard.cli.bench import measure
from t2iguard.runtime.watermark import MIN_MATCH, MIN_SIDE, apply_watermark, embed, read_bits
from t2iguard.training.data import shapeworld as W

#: (embedding, method, headroom): "library" is invisible-watermark's own `encode` (as diffusers' SDXL
#: watermarker calls it), "t2iguard" is `t2iguard.runtime.watermark.embed` (the library's coder, our colour handling)
CONFIGS = (("library", "dwtDct", 0), ("library", "dwtDctSvd", 0), ("library", "dwtDctSvd", 4),
           ("t2iguard", "dwtDct", 4), ("t2iguard", "dwtDctSvd", 0), ("t2iguard", "dwtDctSvd", 2),
           ("t2iguard", "dwtDctSvd", 4))


def library_embed(image: np.ndarray, bits: list[int], method: str, headroom: int) -> np.ndarray:
    """invisible-watermark's `WatermarkEncoder.encode` on the clipped image, uint8 RGB in and out."""
    from imwatermark import WatermarkEncoder

    enc = WatermarkEncoder()
    enc.set_watermark("bits", bits)
    bgr = np.ascontiguousarray(np.clip(image[:, :, ::-1], headroom, 255 - headroom))
    return np.ascontiguousarray(enc.encode(bgr, method)[:, :, ::-1])


def families(rng: np.random.Generator) -> dict[str, list[np.ndarray]]:
    """Image family -> uint8 [256, 256, 3] RGB images."""
    corners = [np.array(c) for c in itertools.product((0, 255), repeat=3)]
    faces = rng.integers(0, 256, (72, 3))  # on a face of the RGB cube: one channel at 0 or 255
    faces[np.arange(72), rng.integers(0, 3, 72)] = rng.choice((0, 255), 72)
    flat = [np.broadcast_to(c, (MIN_SIDE, MIN_SIDE, 3)).astype(np.uint8)
            for c in corners + list(rng.integers(0, 256, (72, 3)))]
    face = [np.broadcast_to(c, (MIN_SIDE, MIN_SIDE, 3)).astype(np.uint8) for c in faces]
    squares = []
    for c in itertools.product((0, 128, 255), repeat=3):
        im = np.broadcast_to(np.array(c), (MIN_SIDE, MIN_SIDE, 3)).astype(np.uint8).copy()
        im[96:160, 96:160] = (220, 30, 30)
        squares.append(im)
    grads, noise = gradients(rng, 20), smooth_noise(rng, 20)
    drawn = [W.render(W.sample_t2i(rng)[0]) for _ in range(40)]
    return {"flat": flat, "flat, gamut face": face, "flat + square": squares, "ShapeWorld": drawn,
            "gradient": grads, "smooth noise": noise}


def gradients(rng: np.random.Generator, n: int, side: int = MIN_SIDE) -> list[np.ndarray]:
    """n linear colour gradients, corner to corner in random directions: uint8 [side, side, 3] RGB."""
    y, x = np.mgrid[0:side, 0:side] / (side - 1)
    return [(255 * (x[..., None] * a + y[..., None] * b) / (a + b + 1e-6)).clip(0, 255).astype(np.uint8)
            for a, b in zip(rng.random((n, 3)), rng.random((n, 3)), strict=True)]


def smooth_noise(rng: np.random.Generator, n: int, side: int = MIN_SIDE) -> list[np.ndarray]:
    """n images of Gaussian colour noise (mean 128, sd 60) on a 32 x 32 grid, bilinearly upsampled:
    uint8 [side, side, 3] RGB."""
    coarse = torch.from_numpy(rng.normal(128, 60, (n, 3, 32, 32)))
    smooth = torch.nn.functional.interpolate(coarse, size=(side, side), mode="bilinear", align_corners=False)
    return list(smooth.permute(0, 2, 3, 1).clamp(0, 255).to(torch.uint8).numpy())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-10))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=2, help="random 48-bit messages per image")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    fams = families(rng)
    messages = [list(m) for m in rng.integers(0, 2, (args.messages, 48))]
    print(f"| embedding | method | headroom | family | lost (< {MIN_MATCH:.0%} of bits) | worst read-back "
          "| PSNR p5 / median (dB) |")
    print("|---|---|---|---|---|---|---|")
    for how, method, headroom in CONFIGS:
        fn = embed if how == "t2iguard" else library_embed
        for name, images in fams.items():
            matches, psnrs = [], []
            cases = list(itertools.product(images, messages))
            for im, bits in track(cases, description=f"{how} {method} {headroom} {name}", transient=True):
                marked = fn(im, bits, method, headroom)
                matches.append(float(np.mean(read_bits(marked, len(bits), method) == np.asarray(bits))))
                psnrs.append(psnr(marked, im))
            lost = sum(m < MIN_MATCH for m in matches)
            print(f"| {how} | {method} | {headroom} | {name} | {lost}/{len(matches)} | {min(matches):.2f} | "
                  f"{np.percentile(psnrs, 5):.1f} / {np.median(psnrs):.1f} |", flush=True)
    shapes = fams["ShapeWorld"]
    served = measure(lambda i: apply_watermark(shapes[i]), requests=len(shapes))
    print(f"\nServed path (`apply_watermark`: embed + read-back), ShapeWorld images: "
          f"p50 {served.percentile_ms(50):.1f} ms, p90 {served.percentile_ms(90):.1f} ms (n={served.requests}).")


if __name__ == "__main__":
    main()
