"""Synchronous client."""

from __future__ import annotations

import random
import time

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from t2iguard.client import wire
from t2iguard.client.results import GenerateResult, RewriteResult, ScreenResult
from t2iguard.contract import specs as S
from t2iguard.runtime.runners import infer_in_batches, screen_prompts


class SafeT2IClient:
    """Talks gRPC to a t2iguard Triton server.

    Args:
        url: `host:port` of Triton's gRPC endpoint.
        timeout_s: client-side deadline per call.
        client_id: sent as the request parameter `client`: rate limits, strikes and the audit trail name it.
        retries: retries of a call refused as overload (exponential backoff, full jitter) or rate-limited
            (after the retry-after it names, when at most `wire.MAX_RETRY_WAIT_S`); 0: none.
        backoff_s: the first overload backoff's upper bound.
    """

    def __init__(self, url: str = "localhost:8001", timeout_s: float = 300.0, client_id: str | None = None,
                 retries: int = 3, backoff_s: float = 0.25):
        self.url, self.timeout_s, self.client_id = url, timeout_s, client_id
        self.retries, self.backoff_s, self._rng = retries, backoff_s, random.Random()
        self._client = grpcclient.InferenceServerClient(url)
        self._max_batch: dict[str, int] = {}

    def __enter__(self) -> SafeT2IClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def ready(self) -> bool:
        try:
            return bool(self._client.is_server_ready())
        except InferenceServerException:
            return False

    def generate(self, prompt: str, *, negative_prompt: str | None = None, image: wire.ImageLike | None = None,
                 mask: wire.ImageLike | None = None, seed: int | None = None, steps: int | None = None,
                 guidance_scale: float | None = None, request_id: str | None = None) -> GenerateResult:
        """Generate (or, with `image` and `mask`, inpaint) through the safe_t2i orchestrator.

        Returns a result whose `decision` is allowed, rewritten or refused; raises InvalidInput
        (bad request), GuardFailure (a safety component failed: no image), Overloaded, or
        T2IGuardError."""
        inputs, outputs, rid = wire.generate_request(prompt, negative_prompt, image, mask, seed, steps,
                                                     guidance_scale, request_id)
        response = self._call(self._client.infer, S.SAFE_T2I, inputs, outputs=outputs, request_id=rid,
                              client_timeout=self.timeout_s, parameters=self._parameters())
        return wire.generate_result(response, rid)

    def screen(self, prompts: list[str]) -> list[ScreenResult]:
        """Screen prompts with the prompt_guard ensemble (no generation), in requests of the served
        ensemble's max_batch_size."""
        return wire.screen_results(prompts, screen_prompts(self.infer, prompts, self.max_batch(S.PROMPT_GUARD)))

    def rewrite(self, prompts: list[str], seed: int = 0) -> list[RewriteResult]:
        """Run the prompt_rewrite ensemble only (no screening, no generation), in requests of its max_batch_size."""
        outputs = infer_in_batches(self.infer, S.PROMPT_REWRITE, wire.rewrite_inputs(prompts, seed),
                                   wire.REWRITE_OUTPUTS, self.max_batch(S.PROMPT_REWRITE))
        return wire.rewrite_results(prompts, outputs)

    def max_batch(self, model: str) -> int:
        """The served `model`'s max_batch_size (its config, read once per client): the most rows one request
        may carry."""
        if model not in self._max_batch:
            config = self._call(self._client.get_model_config, model, as_json=True, client_timeout=self.timeout_s)
            self._max_batch[model] = wire.max_batch_size(config)
        return self._max_batch[model]

    def infer(self, model: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        """One request to `model` (a `Runner`'s infer over gRPC). The request names no outputs and `outputs`
        are read from the response: Triton 2.51 ensembles report a deadlock when a request names only some."""
        response = self._call(self._client.infer, model, wire.infer_inputs(inputs), client_timeout=self.timeout_s)
        return wire.outputs_of(response, outputs)

    def _call(self, method, *args, **kwargs):
        """A tritonclient call, its exception translated to the error table's; overload and rate limits are
        retried as `wire.retry_delay` says."""
        for attempt in range(self.retries + 1):
            try:
                return method(*args, **kwargs)
            except InferenceServerException as e:
                err = wire.translate(e)
            delay = wire.retry_delay(err, attempt, self.backoff_s, self._rng) if attempt < self.retries else None
            if delay is None:
                raise err from None
            time.sleep(delay)

    def _parameters(self) -> dict | None:
        return {"client": self.client_id} if self.client_id else None
