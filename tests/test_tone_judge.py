"""The second, independently trained judge of edits (issue 23) on drawn scenes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from safetensors import safe_open

from t2iguard.training import tone_judge as T
from t2iguard.training.data import shapeworld as W


@pytest.fixture(scope="module")
def judge():
    return T.load()


def test_the_weights_name_their_script_seed_and_drawn_figure():
    with safe_open(str(T.WEIGHTS), "pt") as f:
        meta = f.metadata()
    assert meta["script"] == "training/tone_judge.py" and int(meta["seed"]) == T.SEED
    assert float(meta["held_out_drawn_accuracy"]) >= 0.97


def test_the_judge_sees_a_drawn_tone_change_and_nothing_else(judge):
    """On clean drawn edits, each figure in every tone: a face tone changed is seen; a hat, a crown, or the
    same image are not (the crown is gold, near the palest tones: the judge must not take it for one)."""
    rng = np.random.default_rng(5)
    wrong = []
    for tone in W.TONE_NAMES:
        source_scene = replace(W.random_scene(rng, "figure"), tone=tone, hazard=False)
        source = W.render(source_scene)
        other = "dark" if tone in ("pale", "light", "tan") else "pale"
        cases = {"tone": (replace(source_scene, tone=other), True), "hat": (replace(source_scene, hat="blue"), False),
                 "crown": (replace(source_scene, crown=True), False), "same": (source_scene, False)}
        for name, (target, changed) in cases.items():
            if T.judge(judge, source, W.render(target), source_scene) != changed:
                wrong.append((tone, name))
    assert not wrong, wrong


def test_the_judge_holds_on_drawn_edits_it_never_saw(judge):
    """400 drawn edits from a seed range apart from training's, roughened as a decoder would."""
    x, y = T.drawn_pairs(400, 990000)
    import torch

    with torch.no_grad():
        said = (judge(torch.from_numpy(x)) > 0).numpy()
    assert (said == (y > 0.5)).mean() >= 0.95
