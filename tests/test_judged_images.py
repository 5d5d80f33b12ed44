"""The image classifier's generated training images (training/judged_images.py): the plain requests span the
service's step counts and every shape, and only the judge's sure verdicts on party images are `nudity` labels."""

import numpy as np

from t2iguard.contract.taxonomy import CATEGORIES
from t2iguard.training import judged_images as J
from t2iguard.training.data import shapeworld as W


def test_plain_requests_span_shapes_and_steps_on_their_own_seeds():
    requests = J.plain_requests(200, J.SEEDS["plain"])
    assert {scene.shape for _, scene in requests} == set(W.SHAPES)
    assert {req.steps for req, _ in requests} == set(J.PLAIN_STEPS)
    assert not any(scene.party or scene.bare for _, scene in requests)
    assert [req.seed for req, _ in requests] == list(range(J.SEEDS["plain"], J.SEEDS["plain"] + 200))
    assert J.plain_requests(5, J.SEEDS["plain"])[4][0].prompt == requests[4][0].prompt  # reproducible


def test_only_sure_party_verdicts_are_labels():
    logits = np.array([-np.inf, -2.0, 0.5, J.MARGIN, J.MARGIN + 1], np.float32)
    kept, y = J.labels(logits, "party")
    assert kept.tolist() == [True, True, False, False, True] and y[kept].tolist() == [0.0, 0.0, 1.0]
    kept, y = J.labels(logits, "plain")
    assert kept.all() and not y.any()
    assert set(J.REQUESTS) == set(J.SEEDS) == {"party", "plain"}


def test_letterboxed_draws_keep_their_shape_between_grey_bars():
    """`image-classifier-judged` also trains on drawn scenes as `filter-dataset` letterboxes a non-square image:
    grey bars on two sides, the scene's shape (its colour, a figure's trousers) still in the window."""
    from t2iguard.training.train_shapeworld import letterboxed

    rng = np.random.default_rng(3)
    scenes = [W.random_scene(rng) for _ in range(40)]
    boxed = letterboxed(np.stack([W.render(s) for s in scenes]), [s.centre for s in scenes],
                        np.random.default_rng(4))
    assert boxed.shape == (40, W.SIZE, W.SIZE, 3)
    for image, scene in zip(boxed, scenes, strict=True):
        bars = (np.abs(image[:, :2].astype(int) - 128) <= 2).all() or (np.abs(image[:2].astype(int) - 128) <= 2).all()
        colour = W.TROUSERS if scene.shape == "figure" else W.COLOURS[scene.colour]
        kept = (np.abs(image.astype(int) - colour).sum(-1) < 30).sum()
        assert bars and kept > 50, (scene, kept)


def test_judged_additions_repeat_the_generated_and_letterbox_only_negatives():
    """What `image-classifier-judged` adds: every generated image `GENERATED_REPEAT` times with its label, then a
    `LETTERBOXED` share of the negatives between grey bars; no bare image is cut (a cut could hide the figure)."""
    from t2iguard.training.train_shapeworld import GENERATED_REPEAT, LETTERBOXED, judged_additions

    rng = np.random.default_rng(5)
    scenes = [W.random_scene(rng) for _ in range(24)]
    images = np.stack([W.render(s) for s in scenes])
    bare = (np.arange(24) % 3 == 0).astype(np.float32)
    out, y, boxed = judged_additions(images, bare, 8)
    assert boxed == int(16 * LETTERBOXED) == 4 and len(out) == len(y) == 24 * GENERATED_REPEAT + boxed
    assert np.array_equal(out[:24 * GENERATED_REPEAT], np.concatenate([images] * GENERATED_REPEAT))
    nudity = y[:, CATEGORIES.index("nudity")]
    assert nudity[:24].tolist() == bare.tolist() and not nudity[-boxed:].any()
    assert y.sum(1).max() == 1  # `nudity` is the only label
    for image in out[-boxed:]:
        assert (np.abs(image[:, :2].astype(int) - 128) <= 2).all() or (np.abs(image[:2].astype(int) - 128) <= 2).all()
    again, _, _ = judged_additions(images, bare, 8)
    assert np.array_equal(again, out)  # seeded
