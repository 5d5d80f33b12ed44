"""The image classifier's generated training images (training/judged_images.py): the plain requests span the
service's step counts and every shape, and only the judge's sure verdicts on party images are `nudity` labels."""

import numpy as np

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
