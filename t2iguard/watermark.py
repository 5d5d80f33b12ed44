"""Invisible watermark, as diffusers' SDXL watermarker applies it: DWT-DCT, a fixed 48-bit message.

Images are uint8 [H, W, 3] RGB with H, W >= 256 (invisible-watermark refuses smaller images).
"""

from __future__ import annotations

import numpy as np

#: the 48-bit message (diffusers' SDXL WATERMARK_MESSAGE), as bits
WATERMARK_MESSAGE = 0b101100111110110010010000011110111011000110011110
WATERMARK_BITS = [int(b) for b in bin(WATERMARK_MESSAGE)[2:]]
METHOD = "dwtDct"
MIN_SIDE = 256


def apply_watermark(image: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] RGB -> the same image carrying the 48-bit watermark."""
    from imwatermark import WatermarkEncoder

    if min(image.shape[:2]) < MIN_SIDE:
        raise ValueError(f"watermarking needs images of at least {MIN_SIDE}x{MIN_SIDE}, got {image.shape[:2]}")
    enc = WatermarkEncoder()
    enc.set_watermark("bits", WATERMARK_BITS)
    bgr = np.ascontiguousarray(image[:, :, ::-1])  # the library works on BGR (OpenCV order)
    return np.ascontiguousarray(enc.encode(bgr, METHOD)[:, :, ::-1])


def watermark_match(image: np.ndarray) -> float:
    """Fraction of the 48 message bits recovered from uint8 [H, W, 3] RGB (1.0 = intact,
    about 0.5 = absent)."""
    from imwatermark import WatermarkDecoder

    dec = WatermarkDecoder("bits", len(WATERMARK_BITS))
    bits = dec.decode(np.ascontiguousarray(image[:, :, ::-1]), METHOD)
    return float(np.mean(np.asarray(bits, dtype=int) == np.asarray(WATERMARK_BITS)))
