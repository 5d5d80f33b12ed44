"""Request/response encoding shared by the sync and asyncio clients (names from `t2iguard.contract.specs`)."""

from __future__ import annotations

import json
import random
import secrets
from pathlib import Path

import numpy as np
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from t2iguard.client.results import GenerateResult, RewriteResult, ScreenResult
from t2iguard.contract import specs as S
from t2iguard.contract.errors import (
    BAD_INPUT,
    GUARD_FAILURE,
    OVERLOAD,
    RATE_LIMITED,
    Overloaded,
    RateLimited,
    T2IGuardError,
    kind_for_status,
)
from t2iguard.contract.report import PromptScreen, Rewrite, SafetyReport
from t2iguard.runtime.images import encode_png
from t2iguard.runtime.tensors import bytes_column

ImageLike = bytes | str | Path | np.ndarray

_ERRORS = {BAD_INPUT.kind: "InvalidInput", GUARD_FAILURE.kind: "GuardFailure", OVERLOAD.kind: "Overloaded",
           RATE_LIMITED.kind: "RateLimited"}


def infer_inputs(arrays: dict[str, np.ndarray]) -> list[InferInput]:
    """numpy arrays by tensor name -> tritonclient inputs (the Triton dtype follows the numpy one)."""
    inputs = []
    for name, x in arrays.items():
        i = InferInput(name, list(x.shape), np_to_triton_dtype(x.dtype))
        i.set_data_from_numpy(x)
        inputs.append(i)
    return inputs


def outputs_of(response, names: list[str]) -> dict[str, np.ndarray]:
    return {n: response.as_numpy(n) for n in names}


def max_batch_size(config: dict) -> int:
    """`get_model_config(..., as_json=True)` -> the rows one request may carry: the model's max_batch_size
    (1 for a model without batching)."""
    return max(1, int(config["config"].get("max_batch_size", 0)))


def image_bytes(image: ImageLike, field: str = "image") -> bytes:
    """Path, encoded bytes or an array -> encoded image bytes. Arrays: uint8 [H, W, 3] or [H, W] (0-255), or bool /
    float [H, W(, 3)] in [0, 1] as diffusers' masks and images are (scaled to 0-255); anything else raises
    ValueError naming `field`."""
    if isinstance(image, np.ndarray):
        if image.dtype == bool or np.issubdtype(image.dtype, np.floating):
            x = image.astype(np.float64)
            if not np.isfinite(x).all() or x.min(initial=0.0) < 0.0 or x.max(initial=0.0) > 1.0:
                raise ValueError(f"{field}: a float array must hold values in [0, 1]")
            image = np.rint(x * 255.0).astype(np.uint8)
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise ValueError(f"{field}: expected uint8 [H, W, 3] or [H, W] (or float in [0, 1]), got {image.dtype} "
                             f"{list(image.shape)}")
        return encode_png(np.repeat(image[..., None], 3, -1) if image.ndim == 2 else image)
    if isinstance(image, (str, Path)):
        return Path(image).read_bytes()
    return bytes(image)


def generate_request(prompt: str, negative_prompt: str | None, image: ImageLike | None, mask: ImageLike | None,
                     seed: int | None, steps: int | None, guidance_scale: float | None,
                     request_id: str | None) -> tuple[list[InferInput], list[InferRequestedOutput], str]:
    """Inputs of one safe_t2i request: each tensor has shape [1, 1] (a batch of one: safe_t2i's max batch size is 1,
    which gives it a bounded queue); unset ones are left out."""
    texts = {S.PROMPT: prompt, S.NEGATIVE_PROMPT: negative_prompt,
             S.INIT_IMAGE: None if image is None else image_bytes(image, "image"),
             S.MASK_IMAGE: None if mask is None else image_bytes(mask, "mask")}
    arrays = {name: bytes_column([v]).reshape(1, 1) for name, v in texts.items() if v is not None}
    scalars = ((S.SEED, seed, np.int64), (S.STEPS, steps, np.int32), (S.GUIDANCE_SCALE, guidance_scale, np.float32))
    arrays.update({name: np.array([[v]], dtype) for name, v, dtype in scalars if v is not None})
    outputs = [InferRequestedOutput(S.IMAGE_PNG), InferRequestedOutput(S.SAFETY_REPORT)]
    return infer_inputs(arrays), outputs, request_id or secrets.token_hex(8)


def generate_result(response, request_id: str) -> GenerateResult:
    report = SafetyReport.model_validate_json(bytes(response.as_numpy(S.SAFETY_REPORT).reshape(-1)[0]))
    png = bytes(response.as_numpy(S.IMAGE_PNG).reshape(-1)[0]) or None
    return GenerateResult(request_id=report.request_id or request_id, decision=report.decision,
                          image_png=png if report.decision != "refused" else None, report=report)


def screen_results(prompts: list[str], screens: list[PromptScreen]) -> list[ScreenResult]:
    return [ScreenResult(p, screen) for p, screen in zip(prompts, screens, strict=True)]


#: what the clients read from a prompt_rewrite response
REWRITE_OUTPUTS = [S.REWRITTEN_PROMPT, S.REWRITES]


def rewrite_inputs(prompts: list[str], seed: int) -> dict[str, np.ndarray]:
    """prompt_rewrite's inputs: a batch of prompts, all with `seed`."""
    return {S.PROMPT: bytes_column(prompts), S.SEED: np.full((len(prompts), 1), seed, dtype=np.int64)}


def rewrite_results(prompts: list[str], outputs: list[dict[str, np.ndarray]]) -> list[RewriteResult]:
    """prompt_rewrite's outputs, request after request -> one RewriteResult per prompt."""
    texts = [t for out in outputs for t in out[S.REWRITTEN_PROMPT].reshape(-1)]
    lists = [js for out in outputs for js in out[S.REWRITES].reshape(-1)]
    return [RewriteResult(p, bytes(t).decode("utf-8"), [Rewrite.model_validate(r) for r in json.loads(bytes(js))])
            for p, t, js in zip(prompts, texts, lists, strict=True)]


def translate(e: InferenceServerException) -> T2IGuardError:
    """tritonclient's exception -> the error table's exception (status kept in the message)."""
    from t2iguard.contract import errors

    status = (e.status() or "").replace("StatusCode.", "")
    message = e.message() or ""
    kind = kind_for_status(status, message)
    cls = getattr(errors, _ERRORS.get(kind.kind, "T2IGuardError"))
    err = cls(f"[{status or 'UNKNOWN'}] {message}")
    err.status = status
    return err


#: the longest a client waits before retrying: a longer retry-after (a suspension) is raised at once
MAX_RETRY_WAIT_S = 10.0


def retry_delay(err: T2IGuardError, attempt: int, backoff_s: float, rng: random.Random) -> float | None:
    """Seconds to wait before retry `attempt` (0-based) of a call that raised `err`, or None: do not retry.

    Only overload and rate limits are retried. A rate limit names its wait: that, plus up to 20% jitter; an
    overload backs off exponentially with full jitter (uniform in [0, backoff_s * 2**attempt])."""
    if isinstance(err, RateLimited):
        wait = err.retry_after_s
        return None if wait is None or wait > MAX_RETRY_WAIT_S else wait * (1 + 0.2 * rng.random())
    if isinstance(err, Overloaded):
        return min(MAX_RETRY_WAIT_S, backoff_s * 2 ** attempt) * rng.random()
    return None
