"""asyncio client: the same calls as `SafeT2IClient`, awaitable, for many requests in flight."""

from __future__ import annotations

import asyncio
import random

import numpy as np
import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import InferenceServerException

from t2iguard.client import wire
from t2iguard.client.results import GenerateResult, RewriteResult, ScreenResult
from t2iguard.contract import specs as S
from t2iguard.runtime.runners import screen_inputs, screen_reports
from t2iguard.runtime.tensors import split_rows


class AsyncSafeT2IClient:
    """See `SafeT2IClient` (the same arguments)."""

    def __init__(self, url: str = "localhost:8001", timeout_s: float = 300.0, client_id: str | None = None,
                 retries: int = 3, backoff_s: float = 0.25):
        self.url, self.timeout_s, self.client_id = url, timeout_s, client_id
        self.retries, self.backoff_s, self._rng = retries, backoff_s, random.Random()
        self._client = grpcaio.InferenceServerClient(url)
        self._max_batch: dict[str, int] = {}

    async def __aenter__(self) -> AsyncSafeT2IClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        await self._client.close()

    async def generate(self, prompt: str, *, negative_prompt: str | None = None,
                       image: wire.ImageLike | None = None, mask: wire.ImageLike | None = None,
                       seed: int | None = None, steps: int | None = None, guidance_scale: float | None = None,
                       request_id: str | None = None) -> GenerateResult:
        """See `SafeT2IClient.generate`."""
        inputs, outputs, rid = wire.generate_request(prompt, negative_prompt, image, mask, seed, steps,
                                                     guidance_scale, request_id)
        response = await self._call(self._client.infer, S.SAFE_T2I, inputs, outputs=outputs, request_id=rid,
                                    client_timeout=self.timeout_s,
                                    parameters={"client": self.client_id} if self.client_id else None)
        return wire.generate_result(response, rid)

    async def rewrite(self, prompts: list[str], seed: int = 0) -> list[RewriteResult]:
        """See `SafeT2IClient.rewrite`; the requests go out concurrently."""
        outputs = await self._batched(S.PROMPT_REWRITE, wire.rewrite_inputs(prompts, seed), wire.REWRITE_OUTPUTS)
        return wire.rewrite_results(prompts, outputs)

    async def screen(self, prompts: list[str]) -> list[ScreenResult]:
        """See `SafeT2IClient.screen`; the requests go out concurrently."""
        outputs = await self._batched(S.PROMPT_GUARD, screen_inputs(prompts), [S.PROMPT_REPORT])
        return wire.screen_results(prompts, screen_reports(outputs))

    async def max_batch(self, model: str) -> int:
        """See `SafeT2IClient.max_batch`."""
        if model not in self._max_batch:
            config = await self._call(self._client.get_model_config, model, as_json=True,
                                      client_timeout=self.timeout_s)
            self._max_batch[model] = wire.max_batch_size(config)
        return self._max_batch[model]

    async def infer(self, model: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        """See `SafeT2IClient.infer`."""
        response = await self._call(self._client.infer, model, wire.infer_inputs(inputs), client_timeout=self.timeout_s)
        return wire.outputs_of(response, outputs)

    async def _batched(self, model: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> list[dict]:
        """`inputs` in requests of the model's max_batch_size rows, all in flight at once; their outputs in order."""
        requests = split_rows(inputs, await self.max_batch(model))
        return list(await asyncio.gather(*(self.infer(model, x, outputs) for x in requests)))

    async def _call(self, method, *args, **kwargs):
        """See `SafeT2IClient._call`."""
        for attempt in range(self.retries + 1):
            try:
                return await method(*args, **kwargs)
            except InferenceServerException as e:
                err = wire.translate(e)
            delay = wire.retry_delay(err, attempt, self.backoff_s, self._rng) if attempt < self.retries else None
            if delay is None:
                raise err from None
            await asyncio.sleep(delay)
