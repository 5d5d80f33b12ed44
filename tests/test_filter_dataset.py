"""`t2iguard filter-dataset` on a small ShapeWorld dataset in each of its three forms, through the real
in-process models of the tiny repository (the session's `repository` fixture) and once through the session's
tritonserver: every row ends in exactly one manifest, unreadable rows are removed with their reason, the three
forms and the served stack decide alike, and the weights restore the attribute distribution the filter skewed."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from t2iguard.cli.filter import FORMS, Guards, rebalance, write_dataset
from t2iguard.contract.policy import load_policy
from t2iguard.contract.profiles import load_profile
from t2iguard.runtime.images import encode_png
from t2iguard.runtime.runners import LocalRunner
from t2iguard.training.data import shapeworld as W

#: weights.csv writes 6 significant digits (relative error <= 5e-7 per weight); a weighted share is a ratio of
#: sums of such weights, so it is off by at most about 1e-6 from the exact importance-weighted share
SHARE_TOLERANCE = 1e-5
BARE = ("bare0", "bare1")  # explicit bare figures: the image classifier flags nudity (0.78 on drawn scenes)
BROKEN, NO_CAPTION = "broken", "nocaption"


def t2iguard(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "t2iguard.cli.app", *args], capture_output=True, text=True,
                          timeout=300)


def _samples() -> list[tuple[str, str, np.ndarray, dict[str, str]]]:
    """Four plain scenes of each shape, and two bare figures: the filter removes figures more often."""
    rng = np.random.default_rng(0)
    scenes = {f"{shape}{i}": W.random_scene(rng, shape) for shape in W.SHAPES for i in range(4)}
    scenes |= {rid: replace(W.random_scene(rng, "figure"), bare=True) for rid in BARE}
    return [(rid, W.caption(s, rng), W.render(s), {"shape": s.shape}) for rid, s in scenes.items()]


def _add_bad_rows(dataset: Path, form: str) -> None:
    """An image that does not decode and an image without a caption, both with the attribute shape=circle."""
    junk, image = b"not an image", encode_png(W.render(W.random_scene(np.random.default_rng(1), "circle")))
    attrs = json.dumps({"shape": "circle"})
    if form == "folder":
        for name, data in ((f"{BROKEN}.png", junk), (f"{BROKEN}.txt", b"a red circle"), (f"{BROKEN}.json", attrs),
                           (f"{NO_CAPTION}.png", image), (f"{NO_CAPTION}.json", attrs)):
            (dataset / name).write_bytes(data if isinstance(data, bytes) else data.encode())
    elif form == "csv":
        (dataset.parent / "images" / f"{BROKEN}.png").write_bytes(junk)
        (dataset.parent / "images" / f"{NO_CAPTION}.png").write_bytes(image)
        with dataset.open("a", newline="") as f:
            csv.writer(f).writerows([[BROKEN, f"images/{BROKEN}.png", "a red circle", "circle"],
                                     [NO_CAPTION, f"images/{NO_CAPTION}.png", "", "circle"]])
    else:
        with tarfile.open(dataset / "shard-bad.tar", "w") as tar:
            for name, data in ((f"{BROKEN}.png", junk), (f"{BROKEN}.txt", b"a red circle"),
                               (f"{BROKEN}.json", attrs.encode()), (f"{NO_CAPTION}.png", image),
                               (f"{NO_CAPTION}.json", attrs.encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def runs(repository: Path, tmp_path_factory) -> dict[str, Path]:
    """Each form written, bad rows added, filtered by the command with --balance-by shape: {form: its --out}."""
    root = tmp_path_factory.mktemp("filter")
    samples = _samples()
    outs = {}
    for form in FORMS:
        dataset = write_dataset(samples, root / form, form, shard_rows=8)
        _add_bad_rows(dataset, form)
        outs[form] = root / f"out-{form}"
        done = t2iguard("filter-dataset", str(dataset), "--out", str(outs[form]), "--repository", str(repository),
                        "--balance-by", "shape")
        assert done.returncode == 0, done.stderr
    return outs


ALL_IDS = {rid for rid, *_ in _samples()} | {BROKEN, NO_CAPTION}


@pytest.mark.parametrize("form", FORMS)
def test_every_row_is_kept_or_removed_once(runs, form):
    kept, removed = _read(runs[form] / "kept.csv"), _read(runs[form] / "removed.csv")
    ids = [r["id"] for r in kept + removed]
    assert sorted(ids) == sorted(ALL_IDS)
    stats = json.loads((runs[form] / "stats.json").read_text())
    assert (stats["rows"], stats["kept"], stats["removed"], stats["unreadable"]) == (
        len(ALL_IDS), len(kept), len(removed), 2)
    assert {r["id"] for r in _read(runs[form] / "weights.csv")} == {r["id"] for r in kept}


@pytest.mark.parametrize("form", FORMS)
def test_unreadable_rows_are_removed_with_their_reason(runs, form):
    reasons = {r["id"]: r["reasons"] for r in _read(runs[form] / "removed.csv")}
    assert reasons[BROKEN].startswith("unreadable: ") and "Image" in reasons[BROKEN]  # Pillow's reason
    assert reasons[NO_CAPTION].startswith("unreadable: ") and "caption" in reasons[NO_CAPTION]


@pytest.mark.parametrize("form", FORMS)
def test_bare_figures_are_removed_by_the_image_classifier(runs, form):
    removed = {r["id"]: r for r in _read(runs[form] / "removed.csv")}
    for rid in BARE:
        assert "image:nudity=" in removed[rid]["reasons"]
        assert float(removed[rid]["image:nudity"]) >= 0.5  # the policy's image threshold for nudity


def test_the_three_forms_decide_alike(runs):
    decided = [sorted((r["id"], r["reasons"]) for r in _read(runs[form] / "removed.csv")
                      if not r["reasons"].startswith("unreadable")) for form in FORMS]
    assert decided[0] == decided[1] == decided[2]


@pytest.mark.parametrize("form", FORMS)
def test_weights_restore_the_attribute_distribution(runs, form):
    before = {rid: attrs["shape"] for rid, _, _, attrs in _samples()} | {BROKEN: "circle", NO_CAPTION: "circle"}
    shares = {v: n / len(before) for v, n in zip(*np.unique(list(before.values()), return_counts=True),
                                                  strict=True)}
    weights = _read(runs[form] / "weights.csv")
    kept_shares = {v: sum(r["shape"] == v for r in weights) / len(weights) for v in shares}
    assert kept_shares["figure"] < shares["figure"]  # the filter skewed the shapes (0.25 kept, 0.3 before) ...
    total = sum(float(r["weight"]) for r in weights)
    for value, share in shares.items():  # ... and the weights undo it
        weighted = sum(float(r["weight"]) for r in weights if r["shape"] == value) / total
        assert weighted == pytest.approx(share, abs=SHARE_TOLERANCE), value
    stats = json.loads((runs[form] / "stats.json").read_text())["balance"]
    assert stats["clipped"] == [] and stats["lost"] == []


def test_the_served_stack_decides_as_the_in_process_models(runs, repository, url, tmp_path):
    """--url: the same rows through the session's tritonserver (prompt_guard and image_guard over gRPC)."""
    dataset = runs["csv"].parent / "csv" / "manifest.csv"
    done = t2iguard("filter-dataset", str(dataset), "--out", str(tmp_path), "--url", url, "--repository",
                    str(repository), "--balance-by", "shape")
    assert done.returncode == 0, done.stderr
    for name in ("kept.csv", "removed.csv", "weights.csv"):
        assert _read(tmp_path / name) == _read(runs["csv"] / name), name


def test_non_square_images_are_screened_whole(repository):
    """Scenes cut to 180x256 are letterboxed to the classifier's square: clean ones pass, bare figures do not."""
    profile, rules = load_profile(repository), load_policy(repository / "policy.yaml")
    runner = LocalRunner(repository, profile, rules)
    guards = Guards(runner.infer, profile, rules, 16, 16)
    rng = np.random.default_rng(5)
    scenes = [replace(W.random_scene(rng, shape), position="center") for shape in W.SHAPES for _ in range(3)]
    scenes += [replace(W.random_scene(rng, "figure"), position="center", bare=True) for _ in range(3)]
    images = [W.render(s)[:, 38:218] for s in scenes]
    verdicts = guards(["a shape"] * len(images), images)
    assert [any(f.startswith("image:nudity=") for f in v.flagged) for v in verdicts] == [s.bare for s in scenes]


def test_weights_are_clipped_and_lost_cells_reported():
    before = [("a",)] * 50 + [("b",)] * 50 + [("c",)] * 10
    kept = [("a",)] * 50 + [("b",)] * 5
    balance = rebalance(("x",), before, kept, max_weight=2.0)
    assert balance.weights == {("a",): pytest.approx(0.5), ("b",): 2.0}  # b's raw weight is 5
    assert balance.clipped == [("b",)] and balance.lost == [("c",)]
    assert balance.shares["x"]["c"] == {"before": pytest.approx(10 / 110), "after": 0.0, "weighted": 0.0}


def test_help_names_the_outputs_and_options():
    done = t2iguard("filter-dataset", "--help")
    assert done.returncode == 0
    for word in ("--balance-by", "--max-weight", "--url", "weights.csv", "stats.json"):
        assert word in done.stdout


def test_a_missing_dataset_is_a_clear_bad_input(tmp_path):
    missing = tmp_path / "no-such-dataset"
    done = t2iguard("filter-dataset", str(missing), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert f"dataset {missing} does not exist" in done.stderr
    assert not (tmp_path / "out").exists()


def test_an_unknown_balance_attribute_names_the_known_ones(repository, tmp_path):
    dataset = write_dataset(_samples()[:2], tmp_path / "d", "csv")
    done = t2iguard("filter-dataset", str(dataset), "--out", str(tmp_path / "out"), "--repository",
                    str(repository), "--balance-by", "gender")
    assert done.returncode == 2
    assert "--balance-by gender" in done.stderr and "shape" in done.stderr
