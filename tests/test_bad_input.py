"""Bad input -> INVALID_ARGUMENT naming the field and the limit; the server keeps serving."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from PIL import Image
from tritonclient.utils import InferenceServerException

from t2iguard.cli.demo import centre_mask
from t2iguard.contract import specs as S
from t2iguard.runtime.images import MAX_IMAGE_BYTES, encode_png
from t2iguard.runtime.text import MAX_PROMPT_CHARS


def _bytes(name, value: bytes, shape=(1, 1)):
    i = grpcclient.InferInput(name, list(shape), "BYTES")
    i.set_data_from_numpy(np.array([value] * int(np.prod(shape)), dtype=np.object_).reshape(shape))
    return i


def _num(name, value, dtype, np_dtype):
    i = grpcclient.InferInput(name, [1, 1], dtype)
    i.set_data_from_numpy(np.array([[value]], dtype=np_dtype))
    return i


def _png(size=256, mode="RGB"):
    return encode_png(np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)) if mode == "RGB" \
        else encode_png(np.repeat(centre_mask(size)[..., None], 3, -1))


def _jpeg_bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (256, 256)).save(buf, format="PNG")
    return buf.getvalue() + b"\0" * (MAX_IMAGE_BYTES + 1)


PROMPT_OK = _bytes(S.PROMPT, b"a red circle")
CASES = {
    "empty prompt": ([_bytes(S.PROMPT, b"   ")], r"`PROMPT` is empty"),
    "prompt over limit": ([_bytes(S.PROMPT, b"a" * (MAX_PROMPT_CHARS + 1))],
                          rf"`PROMPT` has {MAX_PROMPT_CHARS + 1} characters; the limit is {MAX_PROMPT_CHARS}"),
    "invalid utf-8": ([_bytes(S.PROMPT, b"a red \xff\xfe circle")], r"`PROMPT` is not valid UTF-8 .*offset 6"),
    "negative prompt invalid utf-8": ([PROMPT_OK, _bytes(S.NEGATIVE_PROMPT, b"\xc3")], r"`NEGATIVE_PROMPT`"),
    "wrong dtype": ([PROMPT_OK, _num(S.STEPS, 4.0, "FP32", np.float32)],
                    r"'STEPS' data-type is 'FP32', but model 'safe_t2i' expects 'INT32'"),
    "wrong shape": ([_bytes(S.PROMPT, b"a", shape=(1, 2))], r"input 'PROMPT' .*Expected \[-1,1\], got \[1,2\]"),
    "batch of two": ([_bytes(S.PROMPT, b"a", shape=(2, 1))], r"batch-size must be <= 1"),
    "steps out of range": ([PROMPT_OK, _num(S.STEPS, 0, "INT32", np.int32)], r"`STEPS` is 0; it must be in \[1, 50\]"),
    "too many steps": ([PROMPT_OK, _num(S.STEPS, 51, "INT32", np.int32)], r"`STEPS` is 51"),
    "guidance out of range": ([PROMPT_OK, _num(S.GUIDANCE_SCALE, 99.0, "FP32", np.float32)],
                              r"`GUIDANCE_SCALE` is 99.0; it must be in \[0.0, 20.0\]"),
    "negative seed": ([PROMPT_OK, _num(S.SEED, -1, "INT64", np.int64)], r"`SEED` is -1"),
    "not an image": ([PROMPT_OK, _bytes(S.INIT_IMAGE, b"hello"), _bytes(S.MASK_IMAGE, _png(mode="L"))],
                     r"`INIT_IMAGE` is not a decodable PNG/JPEG"),
    "oversized image": ([PROMPT_OK, _bytes(S.INIT_IMAGE, _jpeg_bomb()), _bytes(S.MASK_IMAGE, _png(mode="L"))],
                        rf"`INIT_IMAGE` is \d+ bytes; the limit is {MAX_IMAGE_BYTES} bytes"),
    "image of the wrong size": ([PROMPT_OK, _bytes(S.INIT_IMAGE, _png(300)), _bytes(S.MASK_IMAGE, _png(mode="L"))],
                                r"`INIT_IMAGE` is 300x300 pixels; this profile takes 256x256"),
    "mask does not match": ([PROMPT_OK, _bytes(S.INIT_IMAGE, _png()), _bytes(S.MASK_IMAGE, _png(128))],
                            r"`MASK_IMAGE` is 128x128 pixels; this profile takes 256x256"),
    "mask without image": ([PROMPT_OK, _bytes(S.MASK_IMAGE, _png(mode="L"))],
                           r"`MASK_IMAGE` was given without `INIT_IMAGE`"),
    "empty mask": ([PROMPT_OK, _bytes(S.INIT_IMAGE, _png()),
                    _bytes(S.MASK_IMAGE, encode_png(np.zeros((256, 256, 3), np.uint8)))],
                   r"`MASK_IMAGE` selects no pixel"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_invalid_argument(triton, case):
    inputs, message = CASES[case]
    with pytest.raises(InferenceServerException) as info:
        triton.infer(S.SAFE_T2I, inputs)
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT", info.value
    assert re.search(message, info.value.message()), info.value.message()


def test_server_serves_after_bad_input(triton, client):
    for case in ("invalid utf-8", "not an image", "wrong dtype"):
        with pytest.raises(InferenceServerException):
            triton.infer(S.SAFE_T2I, CASES[case][0])
    assert client.generate("a red circle", seed=1, steps=2).image_png


def test_screen_rejects_invalid_utf8(triton):
    i = grpcclient.InferInput(S.PROMPT, [1, 1], "BYTES")
    i.set_data_from_numpy(np.array([[b"\xff"]], dtype=np.object_))
    with pytest.raises(InferenceServerException) as info:
        triton.infer(S.PROMPT_GUARD, [i])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT" and "`PROMPT` is not valid UTF-8" in str(info.value)
