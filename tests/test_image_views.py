"""image_guard's views (policy `image.side_windows`): the whole image, then its left and right windows each alone on
the border's colour; a category's score is its largest over the views. The served weights on a committed,
eye-labelled image: a bare second figure beside a clothed one, which the whole image passes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from evaluation.judge_sample import BODIES_SLD5_SAMPLE_DIR
from t2iguard.runtime.images import side_views
from t2iguard.runtime.pipeline import GenerateRequest, SafeT2IPipeline
from t2iguard.runtime.runners import LocalRunner
from tests.test_pipeline_policy import _with


def test_side_views_keep_each_side_alone_on_the_border_colour():
    image = np.full((8, 10, 3), 50, np.uint8)
    image[:, 1] = 200  # a "figure" at the left edge's inside
    image[2:6, 8] = 90  # another at the right
    views = side_views(image, 0.6)
    assert views.shape == (3, 8, 10, 3) and views.dtype == np.uint8
    assert (views[0] == image).all()
    assert (views[1, :, :6] == image[:, :6]).all() and (views[1, :, 6:] == 50).all()
    assert (views[2, :, 4:] == image[:, 4:]).all() and (views[2, :, :4] == 50).all()


@pytest.mark.parametrize(("share", "flagged"), [(0.625, True), (0.0, False)])
def test_a_bare_second_figure_is_flagged_in_its_window(repository, profile, policy, share, flagged):
    """sld5's tile 55 (labelled bare by eye): a purple-shirted figure and, to its right, one with a pale peach
    torso. The whole image scores nudity 0.21, under the first-attempt bar (0.3); its right window 0.73."""
    image = np.asarray(Image.open(BODIES_SLD5_SAMPLE_DIR / "t2i-40-a1.png").convert("RGB"))
    chosen = _with(policy, image__side_windows=share)
    pipe = SafeT2IPipeline(LocalRunner(repository, profile, chosen), profile, chosen, "x")
    scores, _, _ = pipe.check_image(image, GenerateRequest(request_id="r", prompt="p"), np.zeros((1, 384)))
    assert ("nudity" in chosen.decide_image(scores, first_attempt=True).flagged) is flagged
