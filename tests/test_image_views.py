"""image_guard's views (policy `image.views`): with `objects`, the whole image and then each group of objects that
stands apart side by side, alone on the border's colour; a category's score is its largest over the views. The
served weights on a committed, eye-labelled image: a bare second figure beside a clothed one, which the whole image
passes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from t2iguard.contract.report import SafetyReport
from t2iguard.evaluation.judge_sample import BODIES_SLD5_SAMPLE_DIR
from t2iguard.runtime.images import OBJECT_GAP, object_groups, object_views
from t2iguard.runtime.pipeline import GenerateRequest, Refused, SafeT2IPipeline
from t2iguard.runtime.runners import LocalRunner
from tests.test_pipeline_policy import _with


def _scene(*spans: tuple[int, int]) -> np.ndarray:
    """A 64 x 96 grey image with a dark object in each column span [a, b)."""
    image = np.full((64, 96, 3), 120, np.uint8)
    for a, b in spans:
        image[20:50, a:b] = (10, 60, 200)
    return image


def test_objects_apart_are_seen_alone_and_none_is_cut():
    image = _scene((10, 30), (60, 80))
    views = object_views(image)
    assert views.shape == (3, 64, 96, 3) and views.dtype == np.uint8
    assert (views[0] == image).all()
    # each group keeps its columns up to the middle of the gap (30 + 60) // 2 = 45; the rest is the background's
    assert (views[1, :, :45] == image[:, :45]).all() and (views[1, :, 45:] == 120).all()
    assert (views[2, :, 45:] == image[:, 45:]).all() and (views[2, :, :45] == 120).all()


@pytest.mark.parametrize("spans", [((10, 30),), ((10, 30), (30 + OBJECT_GAP - 1, 50)), ()],
                         ids=["one object", "a gap too narrow", "background only"])
def test_one_group_of_objects_is_the_image_alone(spans):
    image = _scene(*spans)
    views = object_views(image)
    assert views.shape == (1, *image.shape) and (views[0] == image).all()


def test_object_groups_are_the_objects_columns_and_a_background_holds_none():
    bg, groups = object_groups(_scene((10, 30), (60, 80)))
    assert groups == [(10, 30), (60, 80)] and bg.tolist() == [120, 120, 120]
    assert object_groups(_scene())[1] == []
    speck = _scene()
    speck[30:33, 40:43] = (10, 60, 200)  # 9 pixels: under OBJECT_PIXELS
    assert object_groups(speck)[1] == []


@pytest.mark.parametrize("keep", [True, False])
def test_a_regeneration_that_loses_the_subject_is_not_delivered(repository, profile, policy, keep):
    """Seed 65005 of the regeneration eval's party requests (range 65000+): attempt 1, a small bare figure, is
    flagged `nudity`, and SLD at strong erases the figure with its bare torso, a blank image the check passes.
    Under `regeneration.keep_subject` that image is not delivered and the loop goes on; without it, it is."""
    from t2iguard.training.train_dpo import party_requests

    req, _ = party_requests(6, 65000)[5]
    chosen = _with(policy, profile_regeneration__tiny__keep_subject=keep)
    pipe = SafeT2IPipeline(LocalRunner(repository, profile, chosen), profile, chosen, "x")
    cond, uncond, pooled = pipe.encode_prompt(req.prompt, "")
    report, images = SafetyReport.model_construct(attempts=[]), []
    try:
        delivered = pipe.generate_checked(req, cond, uncond, pooled, report, {}, trace=images)
    except Refused:
        delivered = None
    assert object_groups(images[0])[1] and "nudity" in report.attempts[0].flagged
    assert not object_groups(images[1])[1] and report.attempts[1].flagged == []
    assert report.attempts[1].subject_lost is keep
    if keep:
        assert report.attempts[1].action == "regenerate" and len(images) > 2
        assert delivered is None or object_groups(delivered)[1]
        # no attempt left after the blank one: refused, saying why
        once = _with(chosen, profile_regeneration__tiny__max_attempts=1)
        pipe = SafeT2IPipeline(LocalRunner(repository, profile, once), profile, once, "x")
        with pytest.raises(Refused, match="after 2 attempts: nudity.*lost the prompt's subject"):
            pipe.generate_checked(req, cond, uncond, pooled, SafetyReport.model_construct(attempts=[]), {})
    else:
        assert report.attempts[1].action == "pass" and len(images) == 2 and np.array_equal(delivered, images[1])


@pytest.mark.parametrize(("views", "flagged"), [("objects", True), ("whole", False)])
def test_a_bare_second_figure_is_flagged_on_its_own(repository, profile, policy, views, flagged):
    """sld5's tile 55 (labelled bare by eye): a purple-shirted figure and, to its right, one with a pale peach
    torso. The whole image scores nudity about 0.2, under the first-attempt bar (0.3); the second figure alone
    reaches it."""
    image = np.asarray(Image.open(BODIES_SLD5_SAMPLE_DIR / "t2i-40-a1.png").convert("RGB"))
    assert len(object_views(image)) == 3
    chosen = _with(policy, image__views=views)
    pipe = SafeT2IPipeline(LocalRunner(repository, profile, chosen), profile, chosen, "x")
    scores, _, _ = pipe.check_image(image, GenerateRequest(request_id="r", prompt="p"), np.zeros((1, 384)))
    assert ("nudity" in chosen.decide_image(scores, first_attempt=True).flagged) is flagged


def test_many_objects_are_scored_in_batches_within_image_guards_bound(profile, policy):
    """A row of 20 objects: 21 views, sent in calls of at most the profile's batch bound; each category's largest
    score over every call wins."""
    from t2iguard.contract import specs as S
    from t2iguard.contract.taxonomy import CATEGORIES
    from tests.test_pipeline_policy import ScriptedRunner

    image = np.full((64, 256, 3), 120, np.uint8)
    for k in range(20):
        image[20:50, 4 + 12 * k:8 + 12 * k] = (10, 60, 200)
    assert len(object_views(image)) == 21
    batches = []

    def guard(inputs):
        rows = np.full((len(inputs[S.IMAGE]), len(CATEGORIES)), 0.1, np.float32)
        batches.append(len(rows))
        if len(batches) == 2:  # the last view, in the second call, scores violence high
            rows[-1, CATEGORIES.index("violence")] = 0.9
        return {S.IMAGE_SCORES: rows}

    chosen = _with(policy, image__views="objects")
    pipe = SafeT2IPipeline(ScriptedRunner(**{S.IMAGE_GUARD: guard}), profile, chosen, "x")
    scores, _, _ = pipe.check_image(image, GenerateRequest(request_id="r", prompt="p"), np.zeros((1, 384)))
    assert batches == [profile.max_batch, 21 - profile.max_batch]
    assert scores["violence"] == pytest.approx(0.9) and scores["nudity"] == pytest.approx(0.1)
