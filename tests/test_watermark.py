"""The served watermark: every bit reads back from flat images of any colour and from drawn scenes,
the embedding stays invisible, unmarked images do not read as marked, and bad sizes are refused.
(The method comparison behind these choices: `benchmarks/watermark.py`.)"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from t2iguard.contract.errors import GuardFailure
from t2iguard.runtime.watermark import (
    HEADROOM,
    MIN_MATCH,
    WATERMARK_BITS,
    WatermarkError,
    apply_watermark,
    watermark_match,
)
from t2iguard.training.data import shapeworld as W

#: the 27 colours of {0, 128, 255}^3: white, black, the primaries and secondaries, greys, mid tones
COLOURS = list(itertools.product((0, 128, 255), repeat=3))


def _flat(colour, square: bool) -> np.ndarray:
    im = np.empty((256, 256, 3), np.uint8)
    im[:] = colour
    if square:
        im[96:160, 96:160] = (220, 30, 30)
    return im


def _drawn(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    return [W.render(W.sample_t2i(rng)[0]) for _ in range(n)]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * np.log10(255**2 / float(np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.mark.parametrize("square", [False, True], ids=["flat", "flat+square"])
def test_every_bit_reads_back_from_flat_images_of_every_colour(square):
    # invisible-watermark's own dwtDct encode read back 0.44-0.56 of the bits on many of these
    for colour in COLOURS:
        image = _flat(colour, square)
        marked = apply_watermark(image)
        assert marked.shape == image.shape and marked.dtype == np.uint8
        assert watermark_match(marked) == 1.0, colour
        change = marked.astype(int) - np.clip(image, HEADROOM, 255 - HEADROOM)
        # only U moves (B += 2.032 dU, G -= 0.395 dU, |dU| <= 27 / 8 for a flat block): red stays as it was
        assert np.abs(change[..., 0]).max() <= 1, colour
        assert np.abs(change).max() <= 8, colour
        assert _psnr(marked, image) > 35, colour


def test_saturated_colours_keep_their_hue_where_the_library_encode_shifts_it():
    from imwatermark import WatermarkEncoder

    image = _flat((0, 255, 128), square=False)  # its V leaves uint8's range in the library's YUV round trip
    enc = WatermarkEncoder()
    enc.set_watermark("bits", WATERMARK_BITS)
    library = enc.encode(np.ascontiguousarray(image[:, :, ::-1]), "dwtDctSvd")[:, :, ::-1]
    assert np.abs(library[..., 0].astype(int) - image[..., 0]).max() >= 10  # measured 18 levels redder
    clipped = np.clip(image[..., 0], HEADROOM, 255 - HEADROOM).astype(int)
    assert np.abs(apply_watermark(image)[..., 0].astype(int) - clipped).max() <= 1  # the headroom clip only


def test_every_bit_reads_back_from_drawn_scenes_and_unmarked_ones_do_not_read_as_marked():
    for image in _drawn(12):
        marked = apply_watermark(image)
        assert watermark_match(marked) == 1.0
        # the library's own encode swaps the DWT's detail bands: about 33 dB on these at the 5th percentile
        assert _psnr(marked, image) > 38
        assert watermark_match(image) < MIN_MATCH  # no false positive on the same scene unmarked


def test_watermark_refuses_small_images_and_fails_closed_as_a_guard_failure():
    with pytest.raises(ValueError, match="at least 256x256"):
        apply_watermark(np.zeros((128, 256, 3), np.uint8))
    assert issubclass(WatermarkError, GuardFailure)  # the error table's guard-failure row: no image leaves


def test_the_pass_mark_is_a_parameter_and_its_default_is_the_policys(monkeypatch, policy):
    """apply_watermark refuses exactly below the `min_match` it is given (the policy's `watermark.min_match`)."""
    import t2iguard.runtime.watermark as wm

    assert MIN_MATCH == policy.watermark.min_match == 0.9
    monkeypatch.setattr(wm, "watermark_match", lambda image: 0.93)  # a read-back that lost 3 of 48 bits
    image = _flat((128, 128, 128), square=True)
    assert apply_watermark(image).shape == image.shape  # 0.93 >= 0.9
    assert apply_watermark(image, min_match=0.93).shape == image.shape
    with pytest.raises(WatermarkError, match=r"0\.93 of its bits \(< 0\.95\)"):
        apply_watermark(image, min_match=0.95)


def test_the_served_watermark_stage_reads_the_pass_mark_from_the_policy(monkeypatch, policy):
    import t2iguard.runtime.watermark as wm
    from t2iguard.contract import specs as S
    from t2iguard.contract.policy import Policy
    from t2iguard.contract.profiles import get_profile
    from t2iguard.runtime.stages import Watermark

    monkeypatch.setattr(wm, "watermark_match", lambda image: 0.93)
    strict = Policy.model_validate(policy.model_dump() | {"watermark": {"min_match": 0.95}})
    with pytest.raises(WatermarkError):
        Watermark(get_profile("tiny"), strict)({S.IMAGE: _flat((128, 128, 128), square=True)[None]})
