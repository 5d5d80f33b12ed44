"""The python-backend models' logic, as plain callables over numpy batches.

Each stage maps `{input name: array [B, ...]}` to `{output name: array [B, ...]}` with the
names and dtypes of its spec (`t2iguard.contract.specs`). The thin `model_repository/*/model.py` files
wrap them for Triton; `t2iguard.runtime.runners.LocalRunner` calls them in-process, so the served and
the local pipeline run the same code.
"""

from __future__ import annotations

import json

import numpy as np

from t2iguard.contract import specs as S
from t2iguard.contract.errors import InvalidInput
from t2iguard.contract.policy import Policy
from t2iguard.contract.profiles import Profile
from t2iguard.contract.report import PromptScreen
from t2iguard.contract.taxonomy import CATEGORIES, REWRITE_TAGS
from t2iguard.runtime.lexicon import english_words, words
from t2iguard.runtime.rewrite import apply_rewrites
from t2iguard.runtime.tensors import bytes_column
from t2iguard.runtime.text import MAX_PROMPT_CHARS, normalize, tokenize, tokenize_with_offsets
from t2iguard.runtime.watermark import apply_watermark

#: CLIP's pixel statistics, used by the CLIP-style classifiers
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def decode_text(raw: bytes | str, field: str, *, allow_empty: bool = False) -> str:
    """Validate one BYTES element as a prompt: UTF-8, non-empty (unless allowed), length limit."""
    if isinstance(raw, str):
        text = raw
    else:
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidInput(f"`{field}` is not valid UTF-8 (invalid byte at offset {e.start})") from None
    if not allow_empty and not text.strip():
        raise InvalidInput(f"`{field}` is empty; give 1 to {MAX_PROMPT_CHARS} characters")
    if len(text) > MAX_PROMPT_CHARS:
        raise InvalidInput(f"`{field}` has {len(text)} characters; the limit is {MAX_PROMPT_CHARS}")
    return text


class Stage:
    def __init__(self, profile: Profile, policy: Policy):
        self.profile, self.policy = profile, policy


class TextNormalize(Stage):
    """Normalised prompts, tokenised and padded to the batch's length bucket (the spec's `seq_buckets`)."""

    def __init__(self, profile: Profile, policy: Policy):
        super().__init__(profile, policy)
        self.buckets = S.build_specs(profile)[S.TEXT_NORMALIZE].seq_buckets
        words(), english_words()  # the word lists `normalize` consults, loaded here and not by a request

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        prompts = [decode_text(x, S.PROMPT) for x in inputs[S.PROMPT].reshape(-1)]
        normalized = [normalize(p) for p in prompts]
        ids, mask = tokenize(normalized, self.profile.seq_len, self.buckets)
        return {S.NORMALIZED_PROMPT: bytes_column(normalized), S.INPUT_IDS: ids, S.ATTENTION_MASK: mask}


class PromptPolicy(Stage):
    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        decisions, reports = [], []
        for scores_row, norm in zip(inputs[S.PROMPT_SCORES], inputs[S.NORMALIZED_PROMPT].reshape(-1), strict=True):
            normalized = bytes(norm).decode("utf-8")
            scores = {c: round(float(s), 4) for c, s in zip(CATEGORIES, scores_row, strict=True)}
            hits = self.policy.blocklist_hits(normalized)
            scores.update(dict.fromkeys(hits, 1.0))  # the fast path only adds flags
            d = self.policy.decide_prompt(scores)
            screen = PromptScreen(normalized_prompt=normalized, decision=d.action, scores=scores, flagged=d.flagged,
                                  logged=d.logged, blocklist=hits, policy_version=self.policy.version)
            decisions.append(d.action)
            reports.append(screen.model_dump_json())
        return {S.PROMPT_DECISION: bytes_column(decisions), S.PROMPT_REPORT: bytes_column(reports)}


class TextTokenize(Stage):
    """The prompt as written (no normalisation), tokenised with character offsets, padded to the batch's
    length bucket (the spec's `seq_buckets`)."""

    def __init__(self, profile: Profile, policy: Policy):
        super().__init__(profile, policy)
        self.buckets = S.build_specs(profile)[S.TEXT_TOKENIZE].seq_buckets

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        prompts = [decode_text(x, S.PROMPT) for x in inputs[S.PROMPT].reshape(-1)]
        ids, mask, offsets = tokenize_with_offsets(prompts, self.profile.seq_len, self.buckets)
        return {S.INPUT_IDS: ids, S.ATTENTION_MASK: mask, S.TOKEN_OFFSETS: offsets}


class RewriteApply(Stage):
    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out_prompts, out_rewrites = [], []
        rows = zip(inputs[S.PROMPT].reshape(-1), inputs[S.REWRITE_TAG_SCORES], inputs[S.TOKEN_TAG_PROBS],
                   inputs[S.TOKEN_OFFSETS], inputs[S.SEED].reshape(-1), strict=True)
        for raw, tag_row, probs, offsets, seed in rows:
            prompt = decode_text(raw, S.PROMPT)
            tags = {t: float(v) for t, v in zip(REWRITE_TAGS, tag_row, strict=True)}
            text, rewrites = apply_rewrites(prompt, tags, probs, offsets, int(seed), self.policy)
            out_prompts.append(text)
            out_rewrites.append(json.dumps([r.model_dump() for r in rewrites]))
        return {S.REWRITTEN_PROMPT: bytes_column(out_prompts), S.REWRITES: bytes_column(out_rewrites)}


class ImagePreprocess(Stage):
    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {S.CLASSIFIER_PIXELS: classifier_pixels(inputs[S.IMAGE], self.profile.classifier_size)}


class Watermark(Stage):
    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {S.WATERMARKED_IMAGE: np.stack([apply_watermark(im, self.policy.watermark.min_match)
                                               for im in inputs[S.IMAGE]])}


def classifier_pixels(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 [B, H, W, 3] -> float32 [B, 3, size, size]: box-downsampled (bicubic where the sides do not
    divide), CLIP-normalised."""
    b, h, w, _ = images.shape
    if h % size or w % size:
        from PIL import Image

        x = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BICUBIC), np.float32)
                      for im in images]) / 255.0
    else:
        x = images.astype(np.float32).reshape(b, size, h // size, size, w // size, 3).mean(axis=(2, 4)) / 255.0
    x = (x - CLIP_MEAN) / CLIP_STD
    return x.transpose(0, 3, 1, 2).astype(np.float32).copy()


STAGES: dict[str, type[Stage]] = {
    S.TEXT_NORMALIZE: TextNormalize,
    S.TEXT_TOKENIZE: TextTokenize,
    S.PROMPT_POLICY: PromptPolicy,
    S.REWRITE_APPLY: RewriteApply,
    S.IMAGE_PREPROCESS: ImagePreprocess,
    S.WATERMARK: Watermark,
}
