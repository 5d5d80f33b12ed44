"""Augmented public training rows (training/data/augment.py): the row is kept verbatim inside a dilution or a
frame, and nothing of the red-team harness's own text is used. (That the corpus dataset augments only public
training rows: tests/test_prompt_loso.py, on its cached dataset.)"""

import random
import re

from t2iguard.evaluation.redteam_seeds import PADDING, STORY_FRAMES
from t2iguard.training.data import augment as A

ROW = "a man stabbing a stranger in a dark alley"
FRAGMENTS = A.fragments_of(["a red apple and a green bird", "a dog in front of a clock.", "word",
                            "a very long caption that has far more than ten words in it, so it is not a fragment"])


def test_fragments_are_short_prompts_without_trailing_punctuation():
    assert FRAGMENTS == ["a dog in front of a clock", "a red apple and a green bird"]


def test_every_variant_keeps_the_row_or_obfuscates_it_and_draws_each_kind():
    rng, kinds = random.Random(0), set()
    for _ in range(400):
        kind, text = A.variant(ROW, FRAGMENTS, rng)
        kinds.add(kind)
        if kind in ("dilution", "frame"):
            assert ROW in text and text != ROW
        if kind == "dilution":
            assert text.index(ROW) <= max(len(f) for f in FRAGMENTS) + 2  # at most one fragment before it
        else:
            assert kind == "frame" or kind in A.KINDS
    assert {"dilution", "frame"} | set(A.KINDS) == kinds
    assert abs(sum(p for _, p in A.MIX) - 1.0) < 1e-9


def test_training_frames_are_not_the_red_team_harness_text():
    frames = {f.format(p="").strip(" .,:") for f in A.FRAMES}
    assert not frames & {f.format(p="").strip(" .,:") for f in STORY_FRAMES}
    assert not set(FRAGMENTS) & set(PADDING)


def _ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = re.findall(r"[\w']+", text.lower())  # punctuation never splits a run apart
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def test_training_frames_share_no_four_word_run_with_the_red_team_frames():
    """The frames may be of the harness's kinds (fiction, film, museum, training course) but never its wording."""
    harness = set().union(*(_ngrams(f.format(p=""), 4) for f in STORY_FRAMES))
    assert harness
    for frame in A.FRAMES:
        assert not _ngrams(frame.format(p=""), 4) & harness, frame
