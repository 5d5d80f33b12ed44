"""Synchronous client."""

from __future__ import annotations

import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from t2iguard.client import wire
from t2iguard.client.results import GenerateResult, RewriteResult, ScreenResult
from t2iguard.contract import specs as S

#: prompts per prompt_guard request (the ensemble's max_batch_size in every profile)
SCREEN_BATCH = 16


class SafeT2IClient:
    """Talks gRPC to a t2iguard Triton server.

    Args:
        url: `host:port` of Triton's gRPC endpoint.
        timeout_s: client-side deadline per call.
        client_id: sent as the request parameter `client`, recorded in the audit trail.
    """

    def __init__(self, url: str = "localhost:8001", timeout_s: float = 300.0, client_id: str | None = None):
        self.url, self.timeout_s, self.client_id = url, timeout_s, client_id
        self._client = grpcclient.InferenceServerClient(url)

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
        try:
            response = self._client.infer(S.SAFE_T2I, inputs, outputs=outputs, request_id=rid,
                                          client_timeout=self.timeout_s, parameters=self._parameters())
        except InferenceServerException as e:
            raise wire.translate(e) from None
        return wire.generate_result(response, rid)

    def screen(self, prompts: list[str]) -> list[ScreenResult]:
        """Screen prompts with the prompt_guard ensemble (no generation), in batches."""
        results: list[ScreenResult] = []
        for i in range(0, len(prompts), SCREEN_BATCH):
            chunk = prompts[i:i + SCREEN_BATCH]
            try:
                response = self._client.infer(S.PROMPT_GUARD, wire.screen_request(chunk),
                                              client_timeout=self.timeout_s)
            except InferenceServerException as e:
                raise wire.translate(e) from None
            results += wire.screen_results(chunk, response)
        return results

    def rewrite(self, prompts: list[str], seed: int = 0) -> list[RewriteResult]:
        """Run the prompt_rewrite ensemble only (no screening, no generation), in batches."""
        results: list[RewriteResult] = []
        for i in range(0, len(prompts), SCREEN_BATCH):
            chunk = prompts[i:i + SCREEN_BATCH]
            try:
                response = self._client.infer(S.PROMPT_REWRITE, wire.rewrite_request(chunk, seed),
                                              client_timeout=self.timeout_s)
            except InferenceServerException as e:
                raise wire.translate(e) from None
            results += wire.rewrite_results(chunk, response)
        return results

    def _parameters(self) -> dict | None:
        return {"client": self.client_id} if self.client_id else None
