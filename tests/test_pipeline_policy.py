"""The pipeline asks the policy: nudity fusion, the re-screen of a required rewrite, the report's decision,
and regeneration seeds derived from (request seed, attempt). A scripted runner stands in for the models
(no repository needed): these test the orchestration, not the networks."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from t2iguard.contract import specs as S
from t2iguard.contract.policy import Policy
from t2iguard.contract.profiles import get_profile
from t2iguard.contract.report import PromptScreen, SafetyReport
from t2iguard.contract.taxonomy import CATEGORIES, NUDE_CLASSES
from t2iguard.runtime.guidance import fresh_seed
from t2iguard.runtime.pipeline import GenerateRequest, InpaintCondition, Refused, SafeT2IPipeline


class ScriptedRunner:
    """Answers each model from a table of {model: callable(inputs) -> outputs}; records the calls."""

    def __init__(self, **answers):
        self.answers, self.calls = answers, []

    def infer(self, model, inputs, outputs):
        self.calls.append(model)
        return self.answers[model](inputs)


def _image_scores(**scores) -> dict:
    row = np.array([[scores.get(c.replace("/", "_").replace("-", "_"), 0.0) for c in CATEGORIES]], np.float32)
    return {S.IMAGE_SCORES: row}


def _screen(decision: str, flagged: list[str]) -> bytes:
    return PromptScreen(normalized_prompt="x", decision=decision, scores=dict.fromkeys(CATEGORIES, 0.0),
                        flagged=flagged, policy_version="t").model_dump_json().encode()


def _with(policy: Policy, **sections) -> Policy:
    data = policy.model_dump()
    for path, value in sections.items():
        *parents, leaf = path.split("__")
        node = data
        for p in parents:
            node = node[p]
        node[leaf] = value
    return Policy.model_validate(data)


@pytest.mark.parametrize(("fusion", "expected"), [("max", 0.8), ("classifier", 0.2)])
def test_nudity_fusion_is_the_policys(policy, fusion, expected):
    profile = replace(get_profile("tiny"), nude_detector=True)
    nude = np.zeros((1, len(NUDE_CLASSES)), np.float32)
    nude[0, 1] = 0.8
    runner = ScriptedRunner(**{S.IMAGE_GUARD: lambda _: {**_image_scores(nudity=0.2), S.NUDE_SCORES: nude}})
    pipe = SafeT2IPipeline(runner, profile, _with(policy, image__nudity_fusion=fusion), "x")
    req = GenerateRequest(request_id="r", prompt="p")
    scores, tscores, detector = pipe.check_image(np.zeros((256, 256, 3), np.uint8), req, np.zeros((1, 384)))
    assert scores["nudity"] == pytest.approx(expected, abs=1e-4)
    assert detector["FEMALE_GENITALIA_EXPOSED"] == pytest.approx(0.8, abs=1e-4) and tscores is None
    decision = pipe.policy.decide_image(scores)
    assert ("nudity" in decision.flagged) == (fusion == "max")


@pytest.mark.parametrize("rescreen", [True, False])
def test_a_required_rewrite_clears_a_re_screen_when_the_policy_says_so(policy, rescreen):
    rewrites = [{"kind": "anonymise", "span": [0, 4], "original": "Jane", "replacement": "a woman",
                 "reason": "private individual"}]
    runner = ScriptedRunner(**{
        S.PROMPT_REWRITE: lambda _: {S.REWRITTEN_PROMPT: np.array([[b"a woman at home"]], np.object_),
                                     S.REWRITES: np.array([[json.dumps(rewrites).encode()]], np.object_)},
        S.PROMPT_GUARD: lambda _: {S.PROMPT_REPORT: np.array([[_screen("rewrite", ["privacy"])]], np.object_)}})
    pipe = SafeT2IPipeline(runner, get_profile("tiny"), _with(policy, rewrite__rescreen=rescreen), "x")
    screen = PromptScreen.model_validate_json(_screen("rewrite", ["privacy"]))
    if rescreen:  # the rewritten prompt still screens `rewrite`: refused
        with pytest.raises(Refused, match="no rewrite cleared it"):
            pipe.rewrite_prompt("Jane at home", 1, screen)
        assert runner.calls == [S.PROMPT_REWRITE, S.PROMPT_GUARD]
    else:
        assert pipe.rewrite_prompt("Jane at home", 1, screen)[0] == "a woman at home"
        assert runner.calls == [S.PROMPT_REWRITE]  # no re-screen


def _flagging_pipeline(policy, **image_scores):
    runner = ScriptedRunner(**{S.IMAGE_GUARD: lambda _: _image_scores(**image_scores)})
    pipe = SafeT2IPipeline(runner, get_profile("tiny"), policy, "x")
    seeds: list[int] = []

    def generate(req, cond, uncond, guidance=None, inpaint=None, record=None, resume=None):
        seeds.append(req.seed)
        return np.zeros((256, 256, 3), np.uint8)

    pipe.generate = generate
    return pipe, seeds


def test_regeneration_seeds_are_derived_from_the_request_seed_and_the_attempt(policy):
    """With the tiny ladder (strong, ceiling strong) attempt 2 reruns the request's seed and attempts 3+
    draw fresh noise: attempt k's seed is fresh_seed(request seed, k), whatever earlier attempts drew (it
    used to chain from the previous attempt's seed from attempt 4 on)."""
    pipe, seeds = _flagging_pipeline(policy, violence=0.9)
    assert (pipe.policy.regeneration.preset, pipe.policy.regeneration.ceiling) == ("strong", "strong")
    req = GenerateRequest(request_id="r", prompt="p", seed=1234)
    report = SafetyReport.model_construct(attempts=[])
    with pytest.raises(Refused, match="still flagged after 5 attempts"):
        pipe.generate_checked(req, None, None, None, report, {})
    expected = [1234, 1234] + [fresh_seed(1234, a) for a in (3, 4, 5)]
    assert seeds == [a.seed for a in report.attempts] == expected
    assert len(set(expected[1:])) == 4


def test_fresh_noise_regenerates_text_to_image_on_fresh_noise_from_the_first_regeneration(policy):
    """Policy `fresh_noise`: attempt 2 no longer reruns the request's seed; every regeneration draws
    fresh_seed(request seed, attempt), the seeds the reseed baseline would draw, with the same guidance."""
    pipe, seeds = _flagging_pipeline(_with(policy, regeneration__fresh_noise=True), violence=0.9)
    assert pipe.policy.regeneration.fresh_noise
    report = SafetyReport.model_construct(attempts=[])
    with pytest.raises(Refused, match="still flagged after 5 attempts"):
        pipe.generate_checked(GenerateRequest(request_id="r", prompt="p", seed=1234), None, None, None, report, {})
    assert seeds == [1234] + [fresh_seed(1234, a) for a in (2, 3, 4, 5)]
    assert [a.guidance for a in report.attempts[1:]] == [report.attempts[1].guidance] * 4
    assert report.attempts[1].guidance.startswith(pipe.policy.regeneration.guidance)


@pytest.mark.parametrize(("edit", "method"), [(False, "sld"), (True, "classifier")])
def test_edits_regenerate_with_the_policys_edit_guidance(policy, edit, method):
    """Policy `edit_guidance`: an edit's regenerations use it, a text-to-image request's the policy's `guidance`
    (set here through the tiny profile's table, which the pipeline merges in)."""
    tuned = _with(policy, profile_regeneration__tiny__guidance="sld",
                  profile_regeneration__tiny__edit_guidance="classifier")
    pipe, _ = _flagging_pipeline(tuned)
    pipe.prepare_inpaint_condition = lambda req: InpaintCondition(unet=None)
    pipe.keep_identity = lambda req, inpaint: (req, inpaint)
    flagged = {**dict.fromkeys(CATEGORIES, 0.0), "violence": 0.9}
    pipe.check_image = lambda image, req, pooled: (flagged, None, None)
    source = np.zeros((256, 256, 3), np.uint8) if edit else None
    req = GenerateRequest(request_id="r", prompt="p", seed=3, init_image=source,
                          mask=None if source is None else np.ones((256, 256), np.float32))
    report = SafetyReport.model_construct(attempts=[])
    with pytest.raises(Refused, match="still flagged after 5 attempts"):
        pipe.generate_checked(req, None, None, None, report, {})
    assert [a.guidance.split("-")[0].split("@")[0] for a in report.attempts[1:]] == [method] * 4


def test_a_first_attempt_under_the_ordinary_bar_is_regenerated_and_its_regeneration_delivered(policy):
    """policy 2026.12.04-2: a transform score between `first_attempt_threshold` and `threshold` sends attempt 1 to
    regeneration, and the same score on attempt 2 passes (the ordinary bar), so nothing is refused for it."""
    pipe, seeds = _flagging_pipeline(policy)
    rule = pipe.policy.categories["unsafe-edit"].image
    middle = (rule.first_attempt_threshold + rule.threshold) / 2
    no_image_flags = dict.fromkeys(CATEGORIES, 0.0)
    pipe.check_image = lambda image, req, pooled: (no_image_flags, {"safe-edit": 1 - middle, "unsafe-edit": middle,
                                                                    "unintended-edit": 0.0}, None)
    report = SafetyReport.model_construct(attempts=[])
    pipe.generate_checked(GenerateRequest(request_id="r", prompt="p", seed=7), None, None, None, report, {})
    assert [(a.action, a.flagged) for a in report.attempts] == [("regenerate", ["unsafe-edit"]), ("pass", [])]


def test_the_report_decision_comes_from_the_one_mapping(policy):
    """Image blocked after a prompt screened `allow`: the report says refused (report_decision's table)."""
    runner = ScriptedRunner(**{
        S.PROMPT_GUARD: lambda _: {S.PROMPT_REPORT: np.array([[_screen("allow", [])]], np.object_)},
        S.PROMPT_REWRITE: lambda _: {S.REWRITTEN_PROMPT: np.array([[b"p"]], np.object_),
                                     S.REWRITES: np.array([[b"[]"]], np.object_)},
        S.TEXT_ENCODER: lambda x: {S.TEXT_EMBEDDINGS: np.zeros((2, x[S.INPUT_IDS].shape[1], 384), np.float32)},
        S.IMAGE_GUARD: lambda _: _image_scores(sexual_minors=0.9)})
    pipe = SafeT2IPipeline(runner, get_profile("tiny"), policy, "x")
    pipe.generate = lambda *a, **k: np.zeros((256, 256, 3), np.uint8)
    png, report = pipe(GenerateRequest(request_id="r", prompt="p", seed=1))
    assert png is None and report.decision == "refused" and report.refusal.stage == "image"
    assert [a.action for a in report.attempts] == ["block"]
