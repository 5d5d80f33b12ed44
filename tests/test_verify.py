"""`t2iguard verify` and `t2iguard.runtime.verify`: served marks verify as marked (also after JPEG q90),
unmarked images do not, unreadable files and too-small images get the unreadable exit code with a message naming
the limit, and the p-value is the binomial tail. (The robustness table: `benchmarks/watermark_robustness.py`.)"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from t2iguard.cli.app import app
from t2iguard.contract.errors import BAD_INPUT, NOT_MARKED, OK, InvalidInput
from t2iguard.runtime.verify import FALSE_POSITIVE_RATE, THRESHOLD, p_value, threshold, verify
from t2iguard.runtime.watermark import MIN_SIDE, WATERMARK_BITS, apply_watermark
from t2iguard.training.data import shapeworld as W


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """A ShapeWorld scene doubled to 512x512 (flat colours: JPEG's hardest kind in the robustness table)."""
    return W.render(W.sample_t2i(np.random.default_rng(5))[0]).repeat(2, 0).repeat(2, 1)


@pytest.fixture(scope="module")
def files(scene, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("verify")
    marked = apply_watermark(scene)
    paths = {name: d / name for name in ("marked.png", "marked_q90.jpg", "unmarked.png", "truncated.png",
                                         "small.png", "text.png")}
    Image.fromarray(marked).save(paths["marked.png"])
    Image.fromarray(marked).save(paths["marked_q90.jpg"], quality=90)
    Image.fromarray(scene).save(paths["unmarked.png"])
    png = paths["marked.png"].read_bytes()
    paths["truncated.png"].write_bytes(png[:len(png) // 2])
    Image.fromarray(marked[:MIN_SIDE - 1, :300]).save(paths["small.png"])  # 300x255: one side too short
    paths["text.png"].write_text("not an image")
    return paths


def _verify(*args: Path | str):
    return CliRunner().invoke(app, ["verify", *map(str, args)], env={"COLUMNS": "200"})


def _binomial_tail(k: int, n: int) -> Fraction:
    """P(X >= k), X ~ Binomial(n, 1/2), from Pascal's triangle built by additions."""
    row = [1]
    for _ in range(n):
        row = [a + b for a, b in zip([0, *row], [*row, 0], strict=True)]
    return Fraction(sum(row[k:]), 2**n)


def test_p_value_is_the_binomial_tail_and_the_threshold_its_first_k_under_the_rate():
    for n in (8, 32, 48):
        for k in range(n + 1):
            assert p_value(k, n) == pytest.approx(float(_binomial_tail(k, n)), rel=1e-12, abs=0)
    assert p_value(48, 48) == 2.0**-48 and p_value(0, 48) == 1.0
    assert p_value(THRESHOLD, 48) <= FALSE_POSITIVE_RATE < p_value(THRESHOLD - 1, 48)
    assert THRESHOLD == threshold(48) == 41  # p(41) = 3.1e-7, p(40) = 1.7e-6
    assert threshold(32) == 30 and threshold(8) == 9  # 8 bits can never reach 1e-6
    with pytest.raises(ValueError, match=r"\[0, 48\]"):
        p_value(49, 48)


def test_the_help_states_the_computed_threshold():
    out = CliRunner().invoke(app, ["verify", "--help"], env={"COLUMNS": "200"}).output
    assert f"at least {THRESHOLD} of {len(WATERMARK_BITS)} bits match" in out
    assert "0 every image is marked, 5 one is not marked, 2 one cannot be read" in out
    assert (OK.exit_code, NOT_MARKED.exit_code, BAD_INPUT.exit_code) == (0, 5, 2)


def test_a_served_mark_verifies_and_the_unmarked_scene_does_not(files, scene):
    r = _verify(files["marked.png"])
    assert r.exit_code == OK.exit_code, r.output
    assert r.output == f"{files['marked.png']}: marked, 48/48 bits (100.0%), p = 3.6e-15\n"
    r = _verify(files["marked.png"], files["unmarked.png"])
    assert r.exit_code == NOT_MARKED.exit_code, r.output
    line = r.output.splitlines()[1]
    assert line.startswith(f"{files['unmarked.png']}: not marked, ")
    unmarked = verify(scene)
    assert not unmarked.marked and unmarked.matched < THRESHOLD
    assert f"{unmarked.matched}/48 bits" in line and f"p = {unmarked.p_value:.2g}" in line


def test_jpeg_q90_of_a_marked_512_image_still_verifies(files):
    r = _verify(files["marked_q90.jpg"])
    assert r.exit_code == OK.exit_code, r.output
    assert ": marked, " in r.output


def test_unreadable_files_and_small_images_get_the_bad_input_code_naming_the_limit(files):
    r = _verify(files["truncated.png"])
    assert r.exit_code == BAD_INPUT.exit_code
    assert r.output.startswith(f"{files['truncated.png']}: unreadable: image file is truncated")
    r = _verify(files["small.png"])
    assert r.exit_code == BAD_INPUT.exit_code
    assert "unreadable: the image is 300x255 pixels; the watermark is read from images of at least 256x256" in r.output
    assert _verify(files["text.png"]).exit_code == BAD_INPUT.exit_code
    assert _verify(files["text.png"].with_name("missing.png")).exit_code == BAD_INPUT.exit_code
    with pytest.raises(InvalidInput, match="at least 256x256"):
        verify(np.zeros((MIN_SIDE, MIN_SIDE - 1, 3), np.uint8))


def test_json_lists_every_image_and_unreadable_wins_over_not_marked(files):
    r = _verify("--json", files["marked.png"], files["unmarked.png"], files["small.png"])
    assert r.exit_code == BAD_INPUT.exit_code
    out = json.loads(r.output)
    assert (out["bits"], out["threshold"], out["false_positive_rate"]) == (48, THRESHOLD, FALSE_POSITIVE_RATE)
    marked, unmarked, small = out["images"]
    assert marked == {"path": str(files["marked.png"]), "marked": True, "matched": 48, "bits": 48, "accuracy": 1.0,
                      "p_value": 2.0**-48}
    assert unmarked["marked"] is False and unmarked["p_value"] == p_value(unmarked["matched"], 48)
    assert set(small) == {"path", "error"} and "256x256" in small["error"]


def test_verify_takes_uint8_rgb_and_a_flat_image_is_not_marked():
    with pytest.raises(ValueError, match="uint8"):
        verify(np.zeros((MIN_SIDE, MIN_SIDE, 3), np.float32))
    flat = verify(np.full((MIN_SIDE, MIN_SIDE, 3), 128, np.uint8))  # every bit reads alike: 27 or 21 match
    assert not flat.marked and flat.matched in (sum(WATERMARK_BITS), len(WATERMARK_BITS) - sum(WATERMARK_BITS))
