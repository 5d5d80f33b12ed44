"""Verifying the served watermark: how many of the 48 message bits an image gives back, and how likely that
many would be by chance.

The test: an unmarked image's read-back bits are taken as independent fair coins, so the number that match
the message is X ~ Binomial(48, 1/2) and an image that matches k bits has the p-value P(X >= k). An image is
`marked` when p <= FALSE_POSITIVE_RATE (1e-6), that is when k >= THRESHOLD, the smallest k that passes:
41 of 48 (computed below by `threshold`, not written down). Real unmarked images are not coin flips (a flat
image reads its 48 bits all alike, 27 or 21 matches), so the false-positive rate is also measured on unmarked
images, transformed and not: `benchmarks/watermark_robustness.py`, table in the README.

The served pass mark (`watermark.min_match`, 0.9: 44 of 48 bits before an image may leave) is stricter than
this test on purpose: it checks a fresh, untransformed embedding; this one asks whether an image seen later
still carries the mark.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb

import numpy as np

from t2iguard.contract.errors import InvalidInput
from t2iguard.runtime.watermark import MIN_SIDE, WATERMARK_BITS, watermark_match

#: the chance, per unmarked image, of calling it marked (under the fair-coin model)
FALSE_POSITIVE_RATE = 1e-6


def p_value(matched: int, bits: int) -> float:
    """P(X >= matched) for X ~ Binomial(bits, 1/2): the chance that an image without the mark matches at least
    `matched` of `bits` message bits. Exact: an integer sum of binomial coefficients over 2**bits."""
    if not 0 <= matched <= bits:
        raise ValueError(f"matched bits must lie in [0, {bits}], got {matched}")
    return sum(comb(bits, i) for i in range(matched, bits + 1)) / 2**bits


def threshold(bits: int, false_positive_rate: float = FALSE_POSITIVE_RATE) -> int:
    """The smallest number of matching bits whose p-value is at most `false_positive_rate` (bits + 1 when even
    a full match is not that unlikely: such a message can never be detected)."""
    return next((k for k in range(bits + 1) if p_value(k, bits) <= false_positive_rate), bits + 1)


#: matching bits of the 48 that call an image marked: 41 at 1e-6
THRESHOLD = threshold(len(WATERMARK_BITS))


@dataclass(frozen=True)
class Verification:
    """The served watermark read from one image.

    matched: message bits read back as written, 0..bits; bits: the message length (48);
    p_value: P(X >= matched) for X ~ Binomial(bits, 1/2); marked: matched >= THRESHOLD (p_value <= 1e-6)."""

    matched: int
    bits: int
    p_value: float
    marked: bool

    @property
    def accuracy(self) -> float:
        """Fraction of the message bits read back (1.0 intact, about 0.5 absent)."""
        return self.matched / self.bits

    def as_json(self) -> dict:
        return {"marked": self.marked, "matched": self.matched, "bits": self.bits, "accuracy": self.accuracy,
                "p_value": self.p_value}


def verify(image: np.ndarray) -> Verification:
    """uint8 [H, W, 3] RGB -> whether it carries the served 48-bit `dwtDctSvd` mark (read by
    `watermark.read_bits`, the library decoder's arithmetic).

    Raises InvalidInput naming the limit when H or W is under MIN_SIDE (256): the decoder's block grid needs
    it, and an image is not upscaled to reach it (a mark read at another scale is not there to read)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 [H, W, 3] RGB image, got {image.dtype} {list(image.shape)}")
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise InvalidInput(f"the image is {w}x{h} pixels; the watermark is read from images of at least "
                           f"{MIN_SIDE}x{MIN_SIDE} (not upscaled)")
    bits = len(WATERMARK_BITS)
    matched = round(watermark_match(image) * bits)
    return Verification(matched, bits, p_value(matched, bits), matched >= THRESHOLD)
