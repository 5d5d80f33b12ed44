"""The second, independently trained judge of text-to-image images (issue 23) on drawn scenes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors import safe_open

from t2iguard.training import bare_judge as B
from t2iguard.training.data import shapeworld as W


@pytest.fixture(scope="module")
def judge():
    return B.load()


def test_the_weights_name_their_script_seed_and_drawn_figure():
    with safe_open(str(B.WEIGHTS), "pt") as f:
        meta = f.metadata()
    assert meta["script"] == "training/bare_judge.py" and int(meta["seed"]) == B.SEED
    assert float(meta["held_out_drawn_accuracy"]) >= 0.95


def test_the_judge_sees_every_drawn_bare_figure_and_no_shirt(judge):
    """Every skin tone bare, every shirt colour dressed, both sizes, anywhere: exact on clean drawn figures,
    found where they stand (not where a prompt put them); a scene without a figure is not bare."""
    rng = np.random.default_rng(7)
    wrong = []
    for tone in W.TONE_NAMES:
        for colour in W.COLOURS:
            for size in W.SIZES:
                for bare in (False, True):
                    scene = replace(W.random_scene(rng, "figure"), tone=tone, colour=colour, size=size, bare=bare,
                                    party=True)
                    if B.judge(judge, W.render(scene)) != bare:
                        wrong.append((tone, colour, size, bare))
    assert not wrong, wrong
    for shape in ("circle", "square", "triangle"):
        assert not B.judge(judge, W.render(replace(W.random_scene(rng, shape), colour="orange")))


def test_the_judge_holds_on_drawn_figures_it_never_saw(judge):
    """400 drawn figures from a seed range apart from training's, roughened as a decoder would."""
    x, y = B.drawn_figures(400, 995000)
    with torch.no_grad():
        said = (judge(torch.from_numpy(x)) > 0).numpy()
    assert (said == (y > 0.5)).mean() >= 0.95


def test_a_body_box_holding_background_is_not_judged(judge):
    """Drawn figures on every background, of every skin tone, bare and dressed: the body box found holds little of
    the background (under 35%); with the torso painted out in the background's colour (trousers found under
    nothing, as when a dark shirt is taken for them) the box is all background and the judge skips the figure
    (-inf), where judging it anyway (`judge_background`, the labelling run's judge) gives a finite logit."""
    rng = np.random.default_rng(11)
    for background, colour in W.BACKGROUNDS.items():
        for tone in W.TONE_NAMES:
            for bare in (False, True):
                scene = replace(W.random_scene(rng, "figure"), background=background, tone=tone, bare=bare,
                                party=True, size="large")
                image = W.render(scene).copy()
                (found,) = B.located_figures(image)
                assert B.background_share(image, found["body"]) < 0.35, (background, tone, bare)
                x0, y0, x1, y1 = (int(round(v)) for v in found["body"])
                image[y0:y1, x0:x1] = colour
                assert B.background_share(image, found["body"]) == 1.0
                assert B.logit(judge, image) == float("-inf")
                assert np.isfinite(B.logit(judge, image, judge_background=True))
