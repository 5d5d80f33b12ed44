"""The labelled judge sample (issue 23): complete labels, lossless images, the agreement figures the docs
state, the labelling tool's checks, and the located oracle exact on drawn scenes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from t2iguard.evaluation.judge_agreement import agreement, confusion, render
from t2iguard.evaluation.judge_sample import (
    BODIES_FRESH2_SAMPLE_DIR,
    BODIES_FRESH3_SAMPLE_DIR,
    BODIES_FRESH4_SAMPLE_DIR,
    BODIES_FRESH5_SAMPLE_DIR,
    BODIES_RESEED_SAMPLE_DIR,
    BODIES_SAMPLE_DIR,
    BODIES_SLD2_SAMPLE_DIR,
    BODIES_SLD3_SAMPLE_DIR,
    BODIES_SLD4_SAMPLE_DIR,
    BODIES_SLD5_SAMPLE_DIR,
    BODIES_SLD6_SAMPLE_DIR,
    BODIES_SLD_SAMPLE_DIR,
    BODIES_TEST_SAMPLE_DIR,
    SAMPLE_DIR,
    current_oracles,
    load_image,
    load_sample,
)
from t2iguard.evaluation.label_tool import FIELDS, VALUES, load_labels, numbering, parse, sheets
from t2iguard.training.data import shapeworld as W
from t2iguard.training.data.judges import located_figures, oracle_bare, oracle_bare_located

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "2026-12-03-judge-validation.md"


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return load_sample()


def test_every_image_is_labelled_once_with_valid_fields(rows):
    labels = load_labels()
    assert len(rows) >= 300
    assert sorted(lab["id"] for lab in labels) == sorted(r["id"] for r in rows)
    by_id = {r["id"]: r for r in rows}
    for lab in labels:
        assert lab["set"] == by_id[lab["id"]]["set"]
        assert all(lab[f] in VALUES for f in FIELDS[lab["set"]])
        assert lab["harmful"] in ("yes", "no", "unsure")
    for kind in ("t2i", "edits"):  # first attempts and regenerated deliveries of both sets
        assert any(r["set"] == kind and r["attempt"] == 1 for r in rows)
        assert any(r["set"] == kind and r["attempt"] > 1 and r["delivered"] for r in rows)


@pytest.mark.parametrize(("folder", "sure_bare"), [(BODIES_SAMPLE_DIR, 5), (BODIES_RESEED_SAMPLE_DIR, 5),
                                                   (BODIES_TEST_SAMPLE_DIR, 5), (BODIES_FRESH2_SAMPLE_DIR, 5),
                                                   (BODIES_FRESH3_SAMPLE_DIR, 4), (BODIES_FRESH4_SAMPLE_DIR, 5),
                                                   (BODIES_FRESH5_SAMPLE_DIR, 3), (BODIES_SLD_SAMPLE_DIR, 4),
                                                   (BODIES_SLD2_SAMPLE_DIR, 3), (BODIES_SLD3_SAMPLE_DIR, 3),
                                                   (BODIES_SLD4_SAMPLE_DIR, 2), (BODIES_SLD5_SAMPLE_DIR, 2),
                                                   (BODIES_SLD6_SAMPLE_DIR, 4)],
                         ids=["guided", "reseeded", "fresh", "fresh2", "fresh3", "fresh4", "fresh5", "sld", "sld2",
                              "sld3", "sld4", "sld5", "sld6"])
def test_the_text_to_image_samples_of_the_bodies_decoder_are_labelled_once(folder, sure_bare):
    """The text-to-image samples generated through the `vae-bodies` decoder (classifier guidance; reseeding):
    every image labelled, first attempts and regenerated deliveries, and sure bare figures among the labels (the
    third fresh sample, generated through a classifier retrained on judged images, delivered none: its 4 are
    first attempts)."""
    rows, labels = load_sample(folder), load_labels(folder)
    assert sum(r["attempt"] == 1 for r in rows) >= 50 and {r["set"] for r in rows} == {"t2i"}
    assert sorted(lab["id"] for lab in labels) == sorted(r["id"] for r in rows)
    assert all(lab[f] in VALUES for lab in labels for f in FIELDS["t2i"])
    assert any(r["attempt"] > 1 and r["delivered"] for r in rows)
    assert sum(lab["bare"] == "y" for lab in labels) >= sure_bare


def test_the_two_bodies_samples_share_their_first_attempts():
    """Same seeds, same repository: the methods differ only from the first regeneration on."""
    guided = {r["id"]: r for r in load_sample(BODIES_SAMPLE_DIR) if r["attempt"] == 1}
    reseeded = {r["id"]: r for r in load_sample(BODIES_RESEED_SAMPLE_DIR) if r["attempt"] == 1}
    assert guided.keys() == reseeded.keys()
    for key, row in guided.items():
        assert np.array_equal(load_image(row, BODIES_SAMPLE_DIR), load_image(reseeded[key], BODIES_RESEED_SAMPLE_DIR))


SAMPLES = [SAMPLE_DIR, BODIES_SAMPLE_DIR, BODIES_RESEED_SAMPLE_DIR, BODIES_TEST_SAMPLE_DIR, BODIES_FRESH2_SAMPLE_DIR,
           BODIES_FRESH3_SAMPLE_DIR, BODIES_FRESH4_SAMPLE_DIR, BODIES_FRESH5_SAMPLE_DIR, BODIES_SLD_SAMPLE_DIR,
           BODIES_SLD2_SAMPLE_DIR, BODIES_SLD3_SAMPLE_DIR, BODIES_SLD4_SAMPLE_DIR, BODIES_SLD5_SAMPLE_DIR,
           BODIES_SLD6_SAMPLE_DIR]
SAMPLE_IDS = ["sample", "bodies", "bodies-reseed", "bodies-fresh", "bodies-fresh2", "bodies-fresh3", "bodies-fresh4",
              "bodies-fresh5", "bodies-sld", "bodies-sld2", "bodies-sld3", "bodies-sld4", "bodies-sld5",
              "bodies-sld6"]


@pytest.mark.parametrize("folder", SAMPLES, ids=SAMPLE_IDS)
def test_images_are_the_generated_ones_losslessly(folder):
    """The oracles recomputed from the PNGs say what they said on the generated arrays."""
    for r in load_sample(folder):
        image = load_image(r, folder)
        assert image.shape == (256, 256, 3) and image.dtype == np.uint8
        assert current_oracles(image, r) == r["oracle"], r["id"]


@pytest.mark.parametrize("folder", SAMPLES, ids=SAMPLE_IDS)
def test_agreement_reproduces_the_documented_tables(folder):
    text = DOC.read_text()
    tables = render(agreement(folder))
    for line in tables.splitlines():
        assert line in text, f"not in {DOC.name}: {line}"
    assert (folder / "README.md").exists()


@pytest.mark.parametrize("folder", [BODIES_FRESH4_SAMPLE_DIR, BODIES_FRESH5_SAMPLE_DIR], ids=["fresh4", "fresh5"])
def test_rescoring_with_the_committed_classifier_gives_the_served_flags(folder):
    """`rescored` (torch, another weights folder) on the committed weights says what the served classifier said
    when the samples generated through it (the fourth and fifth fresh samples) were made: the same confusion
    counts, stage by stage."""
    from t2iguard.evaluation.judge_agreement import STAGES, rescored
    from t2iguard.export.tiny import CHECKPOINT_DIR

    rows, labels = load_sample(folder), {lab["id"]: lab for lab in load_labels(folder)}
    served = [{"stage": stage, **confusion([("nudity" in r["flagged"], labels[r["id"]]["bare"])
                                            for r in rows if pick(r)])} for stage, pick in STAGES.items()]
    assert rescored(folder, CHECKPOINT_DIR) == served


@pytest.mark.parametrize("folder", SAMPLES[1:6], ids=SAMPLE_IDS[1:6])
def test_the_committed_classifier_on_the_earlier_samples_is_documented(folder):
    """The samples made before the classifier was retrained on judged images recorded the earlier classifier's
    flags; the committed one's flags on their images are the table the docs state for each."""
    from t2iguard.evaluation.judge_agreement import render_rescored, rescored
    from t2iguard.export.tiny import CHECKPOINT_DIR

    text = DOC.read_text()
    for line in render_rescored(rescored(folder, CHECKPOINT_DIR), CHECKPOINT_DIR).splitlines()[2:]:
        assert line in text, f"not in {DOC.name}: {line}"


def test_confusion_counts_and_leaves_out_unsure():
    m = confusion([(True, "y"), (True, "n"), (False, "y"), (False, "n"), (False, "n"), (True, "u"), (False, "-")])
    assert (m["tp"], m["fp"], m["fn"], m["tn"], m["unsure"], m["n"]) == (1, 1, 1, 2, 1, 5)
    assert (m["accuracy"], m["precision"], m["recall"]) == (0.6, 0.5, 0.5)
    assert confusion([(False, "n")])["precision"] is None


def test_recorder_checks_every_field(rows):
    ordered = numbering(rows)
    first_edit = next(i + 1 for i, r in enumerate(ordered) if r["set"] == "edits")
    label = parse(f'{first_edit} figure=y bare=n hazard=n tone=y crown=u note="a b"', ordered)
    assert (label["harmful"], label["stand_ins"], label["note"]) == ("yes", ["unintended-edit"], "a b")
    with pytest.raises(ValueError, match="fields"):
        parse("1 figure=y bare=n", ordered)
    with pytest.raises(ValueError, match="values"):
        parse(f"{first_edit} figure=y bare=n hazard=n tone=maybe crown=y", ordered)
    with pytest.raises(ValueError, match="not in the sample"):
        parse(f"{len(ordered) + 1} figure=y", ordered)
    assert numbering(rows) == ordered  # the tile numbers are fixed


def test_sheets_number_the_tiles(tmp_path):
    [zoom] = sheets(tmp_path, only=[1, 200], scale=1.0)
    assert zoom.exists() and (tmp_path / "numbering.json").exists()


def _drawn_scenes(n: int, seed: int) -> list[W.Scene]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        s = W.random_scene(rng, "figure" if i % 4 else None)
        out.append(replace(s, bare=s.shape == "figure" and bool(rng.random() < 0.5),
                           hazard=bool(rng.random() < 0.3), party=bool(rng.random() < 0.5)))
    return out


def test_located_oracle_is_exact_on_drawn_scenes():
    """Every drawn figure found once, its body box within about 2 pixels of the drawn one; no figure in
    shapes; bare exactly when drawn bare, as the requested-box oracle."""
    for scene in _drawn_scenes(200, 11):
        image = W.render(scene)
        found = located_figures(image)
        if scene.shape != "figure":
            assert found == [] and not oracle_bare_located(image)
            continue
        assert len(found) == 1, scene
        assert np.abs(np.subtract(found[0]["body"], W.figure_boxes(scene)["body"])).max() <= 2.1, scene
        assert oracle_bare_located(image) == scene.bare == oracle_bare(image, scene), scene


def test_located_oracle_finds_the_figure_where_the_box_is_not():
    """A figure drawn elsewhere than the scene asked: the requested box reads background, the located
    oracle reads the figure."""
    for tone in W.TONE_NAMES:
        asked = W.Scene("figure", "red", "large", "left", "sand", tone=tone, bare=True)
        drawn = W.render(replace(asked, position="right"))
        assert oracle_bare_located(drawn)
        clothed = W.render(replace(asked, position="right", bare=False))
        assert not oracle_bare_located(clothed)
        assert oracle_bare(clothed, asked)  # the box on the left holds sand, nearer a skin tone than a shirt
