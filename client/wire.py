"""Request/response encoding shared by the sync and asyncio clients (names from `t2iguard.contract.specs`)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import numpy as np
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.utils import InferenceServerException

from t2iguard.client.results import GenerateResult, RewriteResult, ScreenResult
from t2iguard.contract import specs as S
from t2iguard.contract.errors import BAD_INPUT, GUARD_FAILURE, OVERLOAD, T2IGuardError, kind_for_status
from t2iguard.contract.report import PromptScreen, Rewrite, SafetyReport
from t2iguard.runtime.images import encode_png

ImageLike = bytes | str | Path | np.ndarray

_ERRORS = {BAD_INPUT.kind: "InvalidInput", GUARD_FAILURE.kind: "GuardFailure", OVERLOAD.kind: "Overloaded"}


def _bytes_input(name: str, values: list[bytes], batched: bool) -> InferInput:
    arr = np.array([[v] for v in values] if batched else values, dtype=np.object_)
    i = InferInput(name, list(arr.shape), "BYTES")
    i.set_data_from_numpy(arr)
    return i


def _scalar_input(name: str, value, dtype: str, np_dtype) -> InferInput:
    i = InferInput(name, [1], dtype)
    i.set_data_from_numpy(np.array([value], dtype=np_dtype))
    return i


def image_bytes(image: ImageLike) -> bytes:
    """Path, encoded bytes or uint8 [H, W, 3|1] array -> encoded image bytes."""
    if isinstance(image, np.ndarray):
        return encode_png(np.repeat(image[..., None], 3, -1) if image.ndim == 2 else image)
    if isinstance(image, (str, Path)):
        return Path(image).read_bytes()
    return bytes(image)


def generate_request(prompt: str, negative_prompt: str | None, image: ImageLike | None, mask: ImageLike | None,
                     seed: int | None, steps: int | None, guidance_scale: float | None,
                     request_id: str | None) -> tuple[list[InferInput], list[InferRequestedOutput], str]:
    inputs = [_bytes_input(S.PROMPT, [prompt.encode("utf-8")], batched=False)]
    if negative_prompt is not None:
        inputs.append(_bytes_input(S.NEGATIVE_PROMPT, [negative_prompt.encode("utf-8")], batched=False))
    if image is not None:
        inputs.append(_bytes_input(S.INIT_IMAGE, [image_bytes(image)], batched=False))
    if mask is not None:
        inputs.append(_bytes_input(S.MASK_IMAGE, [image_bytes(mask)], batched=False))
    if seed is not None:
        inputs.append(_scalar_input(S.SEED, seed, "INT64", np.int64))
    if steps is not None:
        inputs.append(_scalar_input(S.STEPS, steps, "INT32", np.int32))
    if guidance_scale is not None:
        inputs.append(_scalar_input(S.GUIDANCE_SCALE, guidance_scale, "FP32", np.float32))
    outputs = [InferRequestedOutput(S.IMAGE_PNG), InferRequestedOutput(S.SAFETY_REPORT)]
    return inputs, outputs, request_id or secrets.token_hex(8)


def generate_result(response, request_id: str) -> GenerateResult:
    report = SafetyReport.model_validate_json(bytes(response.as_numpy(S.SAFETY_REPORT).reshape(-1)[0]))
    png = bytes(response.as_numpy(S.IMAGE_PNG).reshape(-1)[0]) or None
    return GenerateResult(request_id=report.request_id or request_id, decision=report.decision,
                          image_png=png if report.decision != "refused" else None, report=report)


def screen_request(prompts: list[str]) -> list[InferInput]:
    """Inputs of one prompt_guard request (a batch of prompts). Ask for no particular outputs:
    Triton 2.51 ensembles report a deadlock when a request names only some of them."""
    return [_bytes_input(S.PROMPT, [p.encode("utf-8") for p in prompts], batched=True)]


def screen_results(prompts: list[str], response) -> list[ScreenResult]:
    reports = response.as_numpy(S.PROMPT_REPORT).reshape(-1)
    return [ScreenResult(p, PromptScreen.model_validate_json(bytes(r))) for p, r in zip(prompts, reports, strict=True)]


def rewrite_request(prompts: list[str], seed: int) -> list[InferInput]:
    """Inputs of one prompt_rewrite request: a batch of prompts, all with `seed`."""
    seeds = InferInput(S.SEED, [len(prompts), 1], "INT64")
    seeds.set_data_from_numpy(np.full((len(prompts), 1), seed, dtype=np.int64))
    return [_bytes_input(S.PROMPT, [p.encode("utf-8") for p in prompts], batched=True), seeds]


def rewrite_results(prompts: list[str], response) -> list[RewriteResult]:
    texts = response.as_numpy(S.REWRITTEN_PROMPT).reshape(-1)
    lists = response.as_numpy(S.REWRITES).reshape(-1)
    return [RewriteResult(p, bytes(t).decode("utf-8"), [Rewrite.model_validate(r) for r in json.loads(bytes(js))])
            for p, t, js in zip(prompts, texts, lists, strict=True)]


def translate(e: InferenceServerException) -> T2IGuardError:
    """tritonclient's exception -> the error table's exception (status kept in the message)."""
    from t2iguard.contract import errors

    status = (e.status() or "").replace("StatusCode.", "")
    kind = kind_for_status(status)
    cls = getattr(errors, _ERRORS.get(kind.kind, "T2IGuardError"))
    err = cls(f"[{status or 'UNKNOWN'}] {e.message()}")
    err.status = status
    return err
