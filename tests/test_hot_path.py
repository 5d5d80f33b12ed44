"""The hot path's concurrency and caches keep failing closed: prompt screening and rewriting are issued
together (and an edit's image and transform checks), the empty negative prompt is encoded once. A scripted
runner checks the orchestration; the served tests unload a guard model under concurrent requests."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from t2iguard.contract import specs as S
from t2iguard.contract.errors import GuardFailure
from t2iguard.contract.profiles import get_profile
from t2iguard.contract.report import PromptScreen
from t2iguard.contract.taxonomy import CATEGORIES, TRANSFORM_CLASSES
from t2iguard.runtime.pipeline import GenerateRequest, SafeT2IPipeline
from t2iguard.runtime.runners import ModelCallError

STEPS = 4


class Runner:
    """Scripted models; `together` makes prompt_guard and prompt_rewrite (or image_guard and
    image_preprocess) wait for each other, so they pass only when issued at the same time."""

    def __init__(self, answers: dict, together: tuple[str, str] | None = None):
        self.answers, self.calls, self.lock = answers, [], threading.Lock()
        self.barrier = threading.Barrier(2, timeout=10) if together else None
        self.together = together or ()

    def infer(self, model, inputs, outputs):
        with self.lock:
            self.calls.append((model, {k: np.asarray(v).shape for k, v in inputs.items()}))
        if model in self.together:
            self.barrier.wait()  # BrokenBarrierError (a failure) when the other never comes
        answer = self.answers[model]
        if isinstance(answer, Exception):
            raise answer
        return answer(inputs)


def _screen(decision: str, flagged=()) -> dict:
    report = PromptScreen(normalized_prompt="p", decision=decision, scores=dict.fromkeys(CATEGORIES, 0.0),
                          flagged=list(flagged), policy_version="t").model_dump_json().encode()
    return {S.PROMPT_REPORT: np.array([[report]], np.object_)}


def _models(screen="allow", **over) -> dict:
    base = {
        S.PROMPT_GUARD: lambda _: _screen(screen, ["violence"] if screen == "block" else []),
        S.PROMPT_REWRITE: lambda _: {S.REWRITTEN_PROMPT: np.array([[b"p"]], np.object_),
                                     S.REWRITES: np.array([[b"[]"]], np.object_)},
        S.TEXT_ENCODER: lambda x: {S.TEXT_EMBEDDINGS: np.full((x[S.INPUT_IDS].shape[0], 77, 384),
                                                              x[S.INPUT_IDS][:, 1:2, None], np.float32)},
        S.IMAGE_GUARD: lambda _: {S.IMAGE_SCORES: np.zeros((1, len(CATEGORIES)), np.float32)},
        S.IMAGE_PREPROCESS: lambda x: {S.CLASSIFIER_PIXELS: np.zeros((2, 3, 64, 64), np.float32)},
        S.TRANSFORM_CLASSIFIER: lambda _: {S.TRANSFORM_PROBS: np.array([[1.0, 0.0, 0.0]], np.float32)},
        S.WATERMARK: lambda x: {S.WATERMARKED_IMAGE: x[S.IMAGE]},
    }
    return {**base, **over}


def _pipeline(runner, policy) -> SafeT2IPipeline:
    pipe = SafeT2IPipeline(runner, get_profile("tiny"), policy, "x")
    pipe.generate = lambda *a, **k: np.zeros((256, 256, 3), np.uint8)
    return pipe


def test_screen_and_rewrite_are_issued_together(policy):
    runner = Runner(_models(), together=(S.PROMPT_GUARD, S.PROMPT_REWRITE))
    png, report = _pipeline(runner, policy)(GenerateRequest(request_id="r", prompt="a cat", seed=1))
    assert png is not None and report.decision == "allowed"
    assert {"prompt_guard", "prompt_rewrite"} <= set(report.timings_ms)


@pytest.mark.parametrize("failing", [S.PROMPT_GUARD, S.PROMPT_REWRITE])
def test_either_guard_failing_fails_the_request_closed(policy, failing):
    runner = Runner(_models(**{failing: ModelCallError(failing, "model unloaded", "NOT_FOUND")}))
    with pytest.raises(GuardFailure, match=f"{failing}.*fail closed"):
        _pipeline(runner, policy)(GenerateRequest(request_id="r", prompt="a cat", seed=1))
    assert [m for m, _ in runner.calls if m == S.TEXT_ENCODER] == []  # nothing generated


def test_a_blocked_prompt_is_refused_whatever_its_rewrite_did(policy):
    runner = Runner(_models("block", **{S.PROMPT_REWRITE: ModelCallError(S.PROMPT_REWRITE, "boom")}))
    png, report = _pipeline(runner, policy)(GenerateRequest(request_id="r", prompt="x", seed=1))
    assert png is None and report.refusal.stage == "prompt" and report.attempts == []


def test_an_edits_image_and_transform_checks_run_together_and_fail_closed(policy):
    image = np.zeros((256, 256, 3), np.uint8)
    req = GenerateRequest(request_id="r", prompt="p", init_image=image, mask=np.ones((256, 256), np.float32))
    runner = Runner(_models(), together=(S.IMAGE_GUARD, S.IMAGE_PREPROCESS))
    scores, tscores, _ = _pipeline(runner, policy).check_image(image, req, np.zeros((1, 384), np.float32))
    assert set(tscores) == set(TRANSFORM_CLASSES) and set(scores) == set(CATEGORIES)
    failing = Runner(_models(**{S.TRANSFORM_CLASSIFIER: ModelCallError(S.TRANSFORM_CLASSIFIER, "boom")}))
    with pytest.raises(GuardFailure, match="transform_classifier"):
        _pipeline(failing, policy).check_image(image, req, np.zeros((1, 384), np.float32))


def test_the_empty_negative_prompt_is_encoded_once(policy):
    runner = Runner(_models())
    pipe = _pipeline(runner, policy)
    first = pipe.encode_prompt("a red circle", "")
    again = pipe.encode_prompt("a blue square", "")
    rows = [shape[S.INPUT_IDS][0] for m, shape in runner.calls if m == S.TEXT_ENCODER]
    assert rows == [1, 1, 1]  # "" once, then one row per prompt
    assert np.array_equal(first[1], again[1])
    cond, uncond, _ = pipe.encode_prompt("a red circle", "blurry")  # any other negative: encoded with the prompt
    assert [shape[S.INPUT_IDS][0] for m, shape in runner.calls if m == S.TEXT_ENCODER][-1] == 2
    assert not np.array_equal(uncond, first[1]) and np.array_equal(cond, first[0])


@pytest.mark.parametrize("model", [S.PROMPT_GUARD, S.PROMPT_REWRITE])
def test_concurrent_requests_fail_closed_when_a_guard_model_is_unloaded(triton, url, model):
    """Screening and rewriting run side by side inside safe_t2i: with either guard gone, every
    one of several concurrent requests ends without an image, and the next ones are served again."""
    from t2iguard.client import AsyncSafeT2IClient

    async def send(n: int):
        async with AsyncSafeT2IClient(url) as c:
            return await asyncio.gather(*(c.generate(f"a red circle number {i}", seed=i, steps=STEPS)
                                          for i in range(n)), return_exceptions=True)

    triton.unload_model(model)
    try:
        results = asyncio.run(send(4))
    finally:
        triton.load_model(model)
    assert all(isinstance(r, GuardFailure) and "fail closed" in str(r) for r in results), results
    assert all(r.image_png for r in asyncio.run(send(2)))
