"""The watermark's block coder and read-back run over every block at once (`encode_blocks`, `read_blocks`);
they must be invisible-watermark's own `dwtDctSvd` arithmetic: the same coded band (within float rounding) and
the same bits read, on marked, unmarked and drawn images. Speed is measured by deploy/perf/hot_path.py, not here."""

from __future__ import annotations

import numpy as np
import pytest
import pywt
from imwatermark import WatermarkDecoder
from imwatermark.dwtDctSvd import EmbedDwtDctSvd

from t2iguard.runtime.watermark import (
    BLOCK,
    SCALE,
    WATERMARK_BITS,
    apply_watermark,
    embed,
    encode_blocks,
    read_bits,
    top_singular,
)


def _library_bits(image: np.ndarray, n: int = len(WATERMARK_BITS)) -> np.ndarray:
    return np.asarray(WatermarkDecoder("bits", n).decode(np.ascontiguousarray(image[:, :, ::-1]), "dwtDctSvd"), int)


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    flat = np.full((256, 256, 3), (40, 160, 220), np.uint8)
    scene = flat.copy()
    scene[64:192, 96:160] = (230, 30, 30)  # a red block on blue
    ramp = np.broadcast_to(np.linspace(0, 255, 320, dtype=np.uint8)[None, :, None], (264, 320, 3)).copy()
    return [noise, flat, scene, ramp]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_block_coder_is_the_librarys_per_block_coder(seed):
    band = pywt.dwt2(np.random.default_rng(seed).integers(0, 256, (256, 264)).astype(np.float64), "haar")[0]
    bits = list(np.random.default_rng(seed + 10).integers(0, 2, 48))
    want, got = band.copy(), band.copy()
    EmbedDwtDctSvd(bits, wmLen=len(bits), block=BLOCK).encode_frame(want, SCALE)
    encode_blocks(got, bits)
    assert np.abs(got - want).max() < 1e-9


@pytest.mark.parametrize("kind", ["noise", "flat", "edges", "near-degenerate", "zero"])
def test_top_singular_is_lapacks_first_singular_triplet(kind):
    """The coder's power iteration against np.linalg.svd, on blocks where it converges at once (a chroma DCT
    block's DC term dominates) and where it does not (two nearly equal singular values, a zero block: LAPACK's
    fallback): s0 to 1e-9, and the rank-one term s0 u0 v0^T (the joint sign of u0, v0 is arbitrary)."""
    rng = np.random.default_rng(7)
    m = {"noise": rng.normal(0, 40, (256, 4, 4)) + np.eye(4)[0][:, None] * np.eye(4)[0] * 600,
         "flat": np.zeros((256, 4, 4)) + np.eye(4)[0][:, None] * np.eye(4)[0] * 300,
         "edges": rng.normal(0, 200, (256, 4, 4)),
         "near-degenerate": np.stack([np.diag([5.0, 5.0 - 1e-9 * k, 1.0, 0.5]) for k in range(256)]),
         "zero": np.zeros((4, 4, 4))}[kind]
    s0, u, v = top_singular(m)
    uu, ss, vt = np.linalg.svd(m)
    assert np.abs(s0 - ss[:, 0]).max() < 1e-9 * max(1.0, ss[:, 0].max())
    if kind != "near-degenerate":  # there the first singular vectors are not unique; s0 is
        want = ss[:, 0, None, None] * uu[:, :, 0, None] * vt[:, 0, None, :]
        got = s0[:, None, None] * u[:, :, None] * v[:, None, :]
        assert np.abs(got - want).max() < 1e-8 * max(1.0, ss[:, 0].max())


def test_read_back_is_the_librarys_decoder_on_marked_and_unmarked_images():
    for image in _images():
        assert (read_bits(image, 48) == _library_bits(image)).all()  # unmarked: whatever the library reads
        marked = embed(image, WATERMARK_BITS)
        assert (read_bits(marked, 48) == _library_bits(marked)).all()
        assert (_library_bits(apply_watermark(image)) == WATERMARK_BITS).mean() >= 0.9  # still any holder's mark
    for n in (8, 32, 48):  # other message lengths group the blocks differently
        image = embed(_images()[0], [1, 0] * (n // 2))
        assert (read_bits(image, n) == _library_bits(image, n)).all()


def test_the_served_mark_loads_neither_torch_nor_the_library_package():
    """invisible-watermark's package `__init__` imports its rivaGan module and with it torch (hundreds of MB in
    the watermark stub): the served embed and read-back use only cv2, pywt and numpy."""
    import subprocess
    import sys

    code = ("import sys, numpy as np; from t2iguard.runtime.watermark import apply_watermark; "
            "apply_watermark(np.full((256, 256, 3), 128, np.uint8)); "
            "print(sorted(m for m in ('torch', 'imwatermark') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
