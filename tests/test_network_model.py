"""The `cpu` target's network models and its one-process ensembles answer per request: one bad request of a
dynamic batch fails alone, with its own error kind."""

from __future__ import annotations

import asyncio

import numpy as np
import tritonclient.grpc.aio as grpcaio
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.utils import InferenceServerException

from t2iguard.contract import specs as S


def test_one_bad_request_does_not_fail_its_batch(url, profile):
    """Token ids past MiniLM's vocabulary make onnxruntime's Gather fail; sent at once with good requests (the
    dynamic batcher gathers them into one run), only the bad one errors."""

    def request(ids: np.ndarray) -> list[InferInput]:
        tensors = []
        for name, value in ((S.INPUT_IDS, ids), (S.ATTENTION_MASK, np.ones_like(ids))):
            t = InferInput(name, list(value.shape), "INT64")
            t.set_data_from_numpy(value)
            tensors.append(t)
        return tensors

    good = np.full((1, profile.seq_len), 1037, np.int64)  # a real token
    bad = np.full((1, profile.seq_len), 10_000_000, np.int64)

    async def run() -> list:
        client = grpcaio.InferenceServerClient(url)
        try:
            calls = [client.infer(S.PROMPT_CLASSIFIER, request(bad if i == 3 else good),
                                  outputs=[InferRequestedOutput(S.PROMPT_SCORES)]) for i in range(8)]
            return await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await client.close()

    for _ in range(3):  # a few rounds: the batcher gathers at least one of them
        results = asyncio.run(run())
        assert isinstance(results[3], InferenceServerException) and S.PROMPT_CLASSIFIER in results[3].message()
        for i, r in enumerate(results):
            if i != 3:
                assert not isinstance(r, Exception), f"request {i} failed with the bad one: {r}"
                assert r.as_numpy(S.PROMPT_SCORES).shape[0] == 1



def test_one_bad_prompt_does_not_fail_the_screens_batched_with_it(url):
    """prompt_guard on `cpu` runs normalise -> classify -> policy in one process on the whole batch: a prompt that
    is not UTF-8, sent at once with good ones, gets its own INVALID_ARGUMENT naming the field; the others their
    screens."""

    def request(text: bytes) -> list[InferInput]:
        t = InferInput(S.PROMPT, [1, 1], "BYTES")
        t.set_data_from_numpy(np.array([[text]], dtype=np.object_))
        return [t]

    async def run() -> list:
        client = grpcaio.InferenceServerClient(url)
        try:
            texts = [b"\xff" if i == 2 else b"a cat on a sofa" for i in range(8)]
            return await asyncio.gather(*(client.infer(S.PROMPT_GUARD, request(t)) for t in texts),
                                        return_exceptions=True)
        finally:
            await client.close()

    for _ in range(3):
        results = asyncio.run(run())
        bad = results[2]
        assert isinstance(bad, InferenceServerException) and bad.status() == "StatusCode.INVALID_ARGUMENT", bad
        assert "`PROMPT` is not valid UTF-8" in bad.message()
        for i, r in enumerate(results):
            if i != 2:
                assert not isinstance(r, Exception), f"request {i} failed with the bad one: {r}"
                assert r.as_numpy(S.PROMPT_DECISION)[0, 0] == b"allow"
