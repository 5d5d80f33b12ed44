"""asyncio client: the same calls as `SafeT2IClient`, awaitable, for many requests in flight."""

from __future__ import annotations

import asyncio

import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import InferenceServerException

from t2iguard.client import wire
from t2iguard.client.results import GenerateResult, RewriteResult, ScreenResult
from t2iguard.client.sync import SCREEN_BATCH
from t2iguard.contract import specs as S


class AsyncSafeT2IClient:
    def __init__(self, url: str = "localhost:8001", timeout_s: float = 300.0, client_id: str | None = None):
        self.url, self.timeout_s, self.client_id = url, timeout_s, client_id
        self._client = grpcaio.InferenceServerClient(url)

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
        try:
            response = await self._client.infer(
                S.SAFE_T2I, inputs, outputs=outputs, request_id=rid, client_timeout=self.timeout_s,
                parameters={"client": self.client_id} if self.client_id else None)
        except InferenceServerException as e:
            raise wire.translate(e) from None
        return wire.generate_result(response, rid)

    async def rewrite(self, prompts: list[str], seed: int = 0) -> list[RewriteResult]:
        """See `SafeT2IClient.rewrite`; batches go out concurrently."""
        return await self._batched(prompts, S.PROMPT_REWRITE, lambda c: wire.rewrite_request(c, seed),
                                   wire.rewrite_results)

    async def screen(self, prompts: list[str]) -> list[ScreenResult]:
        """See `SafeT2IClient.screen`; batches go out concurrently."""
        return await self._batched(prompts, S.PROMPT_GUARD, wire.screen_request, wire.screen_results)

    async def _batched(self, prompts: list[str], model: str, request, results) -> list:
        async def one(chunk: list[str]) -> list:
            try:
                response = await self._client.infer(model, request(chunk), client_timeout=self.timeout_s)
            except InferenceServerException as e:
                raise wire.translate(e) from None
            return results(chunk, response)

        chunks = [prompts[i:i + SCREEN_BATCH] for i in range(0, len(prompts), SCREEN_BATCH)]
        return [r for batch in await asyncio.gather(*(one(c) for c in chunks)) for r in batch]
