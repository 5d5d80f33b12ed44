"""Runners: how the pipeline calls a model by name. The served runner (Triton BLS) lives in
`t2iguard.triton.backend`; `LocalRunner` runs the same built repository in-process (onnxruntime for
networks, `t2iguard.runtime.stages` for python models, spec steps for ensembles), so the pipeline can be
driven with or without a server and the two compared."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

import numpy as np

from t2iguard.contract import specs as S
from t2iguard.contract.policy import Policy
from t2iguard.contract.profiles import Profile
from t2iguard.contract.report import PromptScreen
from t2iguard.contract.specs import ModelSpec, build_specs
from t2iguard.contract.taxonomy import CATEGORIES, NUDE_CLASSES
from t2iguard.runtime.stages import STAGES
from t2iguard.runtime.tensors import bytes_column, split_rows
from t2iguard.runtime.text import normalize, screening_windows


class ModelCallError(Exception):
    """A model call failed; `model` names it, `status` is the Triton error kind if known."""

    def __init__(self, model: str, message: str, status: str = "INTERNAL"):
        super().__init__(f"{model}: {message}")
        self.model, self.status = model, status


class Runner(Protocol):
    def infer(self, model: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        """Run `model` on a batch; raises ModelCallError."""
        ...


#: a Runner's `infer` (or any callable like it: a client's, the pipeline's timed call)
Infer = Callable[[str, dict[str, np.ndarray], list[str]], dict[str, np.ndarray]]


def infer_in_batches(infer: Infer, model: str, inputs: dict[str, np.ndarray], outputs: list[str],
                     max_batch: int) -> list[dict[str, np.ndarray]]:
    """`model` on `inputs` through `infer`, one request per `max_batch` rows (the model's max_batch_size);
    each request's outputs, in order."""
    return [infer(model, x, outputs) for x in split_rows(inputs, max_batch)]


def screen_prompts(infer: Infer, prompts: list[str], max_batch: int) -> list[PromptScreen]:
    """Screen `prompts` with the prompt_guard ensemble through `infer`, one request per `max_batch`
    prompts (the served ensemble's `max_batch_size`); one PromptScreen per prompt, in order."""
    return screen_reports(infer_in_batches(infer, S.PROMPT_GUARD, screen_inputs(prompts), [S.PROMPT_REPORT], max_batch))


def screen_texts(infer: Infer, prompts: list[str], max_batch: int, seq_len: int, policy: Policy
                 ) -> list[PromptScreen]:
    """Screen prompts of any length: a prompt that fits the classifier's `seq_len` tokens is one row, a longer
    one its overlapping word windows (`screening_windows`); the windows of all `prompts` go to prompt_guard
    together, `max_batch` per request. A windowed prompt's screens merge into one: the max score per category,
    decided by `policy`, the blocklist hits of every window. One PromptScreen per prompt, in order."""
    windows = [screening_windows(p, seq_len) or [p] for p in prompts]
    screens = iter(screen_prompts(infer, [w for ws in windows for w in ws], max_batch))
    out = []
    for prompt, ws in zip(prompts, windows, strict=True):
        mine = [next(screens) for _ in ws]
        out.append(mine[0] if len(mine) == 1 else _merge_screens(prompt, mine, policy))
    return out


def _merge_screens(prompt: str, screens: list[PromptScreen], policy: Policy) -> PromptScreen:
    scores = {c: max(sc.scores[c] for sc in screens) for c in screens[0].scores}
    decision = policy.decide_prompt(scores)
    blocklist: dict[str, list[str]] = {}
    for sc in screens:
        for cat, terms in sc.blocklist.items():
            blocklist[cat] = sorted(set(blocklist.get(cat, [])) | set(terms))
    return PromptScreen(normalized_prompt=normalize(prompt), decision=decision.action, scores=scores,
                        flagged=decision.flagged, logged=decision.logged, blocklist=blocklist,
                        policy_version=policy.version)


def score_images(infer: Infer, images: np.ndarray, max_batch: int, nude_detector: bool
                 ) -> list[tuple[dict[str, float], dict[str, float] | None]]:
    """image_guard on uint8 [N, S, S, 3] RGB images (S: the profile's `image_size`), one request per `max_batch`
    images. Per image, in order: (the classifier's score per policy category, NudeNet's score per exposed class
    or None when the repository has no detector), each rounded to 4 places; the policy fuses and decides."""
    outputs = [S.IMAGE_SCORES, S.NUDE_SCORES] if nude_detector else [S.IMAGE_SCORES]
    results: list[tuple[dict[str, float], dict[str, float] | None]] = []
    for out in infer_in_batches(infer, S.IMAGE_GUARD, {S.IMAGE: images}, outputs, max_batch):
        for i, row in enumerate(out[S.IMAGE_SCORES]):
            nude = None
            if nude_detector:
                nude = {c: round(float(v), 4) for c, v in zip(NUDE_CLASSES, out[S.NUDE_SCORES][i], strict=True)}
            results.append(({c: round(float(v), 4) for c, v in zip(CATEGORIES, row, strict=True)}, nude))
    return results


def screen_inputs(prompts: list[str]) -> dict[str, np.ndarray]:
    """prompt_guard's inputs for a batch of prompts."""
    return {S.PROMPT: bytes_column(prompts)}


def screen_reports(outputs: Iterable[dict[str, np.ndarray]]) -> list[PromptScreen]:
    """prompt_guard's outputs, request after request -> one PromptScreen per prompt."""
    return [PromptScreen.model_validate_json(bytes(r)) for out in outputs for r in out[S.PROMPT_REPORT].reshape(-1)]


def ort_session(path: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    # idle threads sleep instead of spinning: on a few shared cores a spinning pool steals the time its own
    # peers (and the other models' sessions) need (measured in deploy/perf/RESULTS.md)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def splits_by_length(spec: ModelSpec) -> bool:
    """Whether a batch of `spec` can run as groups of rows of one length bucket each: a network over token
    inputs only (every input variable on its token axis), with one output row per input row and no token axis
    in its outputs (the prompt classifier; not the rewrite tagger, whose per-token outputs follow the padding)."""
    return (spec.kind == "network" and bool(spec.seq_buckets) and all(t.variable for t in spec.inputs)
            and not any(t.variable for t in spec.outputs))


def run_by_length(run: Callable[[dict[str, np.ndarray]], list[np.ndarray]], inputs: dict[str, np.ndarray],
                  buckets: tuple[int, ...]) -> list[np.ndarray]:
    """`run` over a batch of token inputs ({name: int64 [B, L]}, right-padded, `S.ATTENTION_MASK` among them),
    each row at its own length bucket: the rows grouped by the smallest bucket holding their tokens, each group's
    padding cut off, one `run` per group, the outputs ([B, ...] each) put back in row order.

    A batch of captions padded to the bucket of its longest row (one 17-token caption takes 31 others of 8-12
    tokens to 24) runs most rows at 12 this way: with the 12 bucket, the graph on the 512 captions of
    `deploy/perf/hot_path.py` went from 382-413 to 511-513 prompts/s in its two before/after runs
    (deploy/perf/RESULTS.md). Rows are scored as when padded further (mean pooling and the windows mask the
    padding; tests/test_buckets.py)."""
    mask = inputs[S.ATTENTION_MASK]
    own = np.array([S.bucket_length(int(n), buckets) for n in mask.sum(1)], dtype=np.int64)
    if (own == mask.shape[1]).all():
        return run(inputs)
    out: list[np.ndarray] = []
    for length in np.unique(own):
        rows = np.flatnonzero(own == length)
        part = run({k: v[rows, :length] for k, v in inputs.items()})  # a copy, C-contiguous
        if not out:
            out = [np.empty((len(mask), *p.shape[1:]), p.dtype) for p in part]
        for whole, p in zip(out, part, strict=True):
            whole[rows] = p
    return out


class LocalRunner:
    """In-process execution of a built repository (see `t2iguard build`)."""

    def __init__(self, repository: Path, profile: Profile, policy: Policy, threads: int | None = None):
        """`threads`: the intra-op threads of every network session (None: each spec's own `threads`)."""
        self.specs = build_specs(profile)
        self.profile, self.policy, self.threads = profile, policy, threads
        self._sessions = {}
        self._stages = {}
        self.repository = Path(repository)

    def _session(self, spec: ModelSpec):
        if spec.name not in self._sessions:
            self._sessions[spec.name] = ort_session(self.repository / spec.name / "1" / "model.onnx",
                                                    self.threads or spec.threads)
        return self._sessions[spec.name]

    def _stage(self, model: str):
        if model not in self._stages:
            self._stages[model] = STAGES[model](self.profile, self.policy)
        return self._stages[model]

    def load(self, model: str) -> None:
        """Build what `model` runs (its onnxruntime session or stage, its steps' for an ensemble) now rather than
        on its first call: a served ensemble then fails to load on a missing graph, and its first request pays
        nothing extra."""
        spec = self.specs[model]
        if spec.kind == "network":
            self._session(spec)
        elif spec.kind == "python":
            self._stage(model)
        for step in spec.steps:
            self.load(step.model)

    def infer(self, model: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        spec = self.specs[model]
        try:
            if spec.kind == "network":
                run = self._session(spec).run
                if splits_by_length(spec):
                    values = run_by_length(lambda x: run(outputs, x), inputs, spec.seq_buckets)
                else:
                    values = run(outputs, dict(inputs))
                return dict(zip(outputs, values, strict=True))
            if spec.kind == "python":
                result = self._stage(model)(inputs)
                return {k: result[k] for k in outputs}
        except ModelCallError:
            raise
        except Exception as e:  # the served runner reports these as per-request errors
            code = getattr(getattr(e, "kind", None), "triton_code", None) or "INTERNAL"
            raise ModelCallError(model, str(e), code) from e
        tensors = dict(inputs)
        for step in spec.steps:
            tensors.update(self.infer(step.model, {n: tensors[n] for n in step.inputs}, list(step.outputs)))
        return {k: tensors[k] for k in outputs}
