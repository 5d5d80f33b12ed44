"""Invisible watermark: a fixed 48-bit message in invisible-watermark's `dwtDctSvd` format.

Images are uint8 [H, W, 3] RGB with H, W >= 256 (invisible-watermark refuses smaller images). Any
holder of invisible-watermark reads it: `WatermarkDecoder("bits", 48).decode(bgr, "dwtDctSvd")`.

Why not `dwtDct`, which diffusers' SDXL watermarker uses: it writes each bit into the largest
coefficient of a 4x4 block of the chroma (U) band's LL, chosen by argmax. In a flat block every
coefficient is equal, the written one may stop being the largest, and the decoder then reads an
unwritten one: the message is lost on flat images of many colours. `dwtDctSvd` writes the block's
first singular value, which has no such ambiguity. `embed` says how the bits are written around
the library's coder and why; `benchmarks/watermark.py` measures every choice (table in the README).

The served `dwtDctSvd` coder and its read-back run over every 4x4 block at once (`encode_blocks`,
`read_blocks`: one batched DCT, first singular triplet (`top_singular`) and inverse per image, where the
library loops over the 1024 blocks of a 256x256 image in Python). They are the library's arithmetic in another
order: the DCT as the orthonormal DCT-II matrix product that cv2.dct computes, the same singular-value rule;
the coded LL band is within 1e-11 of the library's `encode_frame`, and the bits read are the library decoder's
(tests/test_watermark_speed.py checks both against the library on marked, unmarked and drawn images).
"""

from __future__ import annotations

import numpy as np

from t2iguard.contract.errors import GuardFailure
from t2iguard.contract.policy import WatermarkConfig

#: the 48-bit message (diffusers' SDXL WATERMARK_MESSAGE), as bits
WATERMARK_MESSAGE = 0b101100111110110010010000011110111011000110011110
WATERMARK_BITS = [int(b) for b in bin(WATERMARK_MESSAGE)[2:]]
METHOD = "dwtDctSvd"
#: the library's defaults: quantisation step of the U channel's coder and its block side (LL coefficients)
SCALE, BLOCK = 36, 4
#: d(B, G, R) / dU of OpenCV's YUV->BGR (BT.601): a change of U alone leaves Y and V as they were
U_TO_BGR = np.array([2.032, -0.395, 0.0])
#: after one full step, rounds and gain of the feedback that makes the decoder's (integer) U hit the target
#: (gain 1 oscillates; a first full step then half steps converge in about 3 rounds on drawn images)
FEEDBACK_ROUNDS, FEEDBACK_GAIN = 8, 0.5
MIN_SIDE = 256
#: grey levels kept free at both ends so the embedding's chroma change stays inside the gamut
#: (`benchmarks/watermark.py`: at 0 white, yellow, blue lose it; at 2, 8 of 144 gamut-face colours; at 4, none)
HEADROOM = 4
#: the policy's default pass mark (`watermark.min_match`): the fraction of the message bits an embedded
#: image must give back; below it, no image leaves (fail closed). The served value is the policy's.
MIN_MATCH: float = WatermarkConfig.model_fields["min_match"].default


#: the orthonormal DCT-II of a BLOCK-point signal (what cv2.dct computes on a BLOCK x BLOCK float block)
_K, _N = np.arange(BLOCK)[:, None], np.arange(BLOCK)[None, :]
DCT = np.cos(np.pi * (2 * _N + 1) * _K / (2 * BLOCK)) * np.where(_K == 0, np.sqrt(1 / BLOCK), np.sqrt(2 / BLOCK))


def _blocks(band: np.ndarray) -> np.ndarray:
    """float [R*B, C*B] -> the blocks in the library's order (row by row): [R*C, B, B]."""
    r, c = band.shape[0] // BLOCK, band.shape[1] // BLOCK
    return band[:r * BLOCK, :c * BLOCK].reshape(r, BLOCK, c, BLOCK).swapaxes(1, 2).reshape(r * c, BLOCK, BLOCK)


def haar_ll(u: np.ndarray) -> np.ndarray:
    """float64 [2R, 2C] -> its one-level Haar LL band [R, C] (what `pywt.dwt2(u, "haar")[0]` computes on even
    sides, within float rounding): each 2x2 cell's sum over 2."""
    return (u[0::2, 0::2] + u[0::2, 1::2] + u[1::2, 0::2] + u[1::2, 1::2]) / 2


def top_singular(m: np.ndarray, squarings: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float64 [N, B, B] -> each matrix's first singular value [N] and its left and right singular vectors
    [N, B], to float rounding what `np.linalg.svd` gives (the pair's joint sign aside, which the coder does not
    see). Power iteration on M^T M squared `squarings` times (the DC term dominates a chroma block's spectrum,
    so it converges at once), then two Rayleigh steps; a matrix whose result is not an eigenpair to 1e-10 goes
    to LAPACK's SVD. Several times faster than the batched LAPACK call on 1024 blocks of 4x4."""
    with np.errstate(invalid="ignore", divide="ignore"):  # a zero block gives NaN here: LAPACK takes it
        a = np.swapaxes(m, 1, 2) @ m
        p = a / np.trace(a, axis1=1, axis2=2)[:, None, None]
        for _ in range(squarings):  # p -> (a / lambda_1)^(2^squarings) at trace 1: the top eigenvector's projector
            p = p @ p
            p /= np.trace(p, axis1=1, axis2=2)[:, None, None]
        k = np.argmax(np.diagonal(p, axis1=1, axis2=2), axis=1)
        v = np.take_along_axis(p, k[:, None, None], axis=2)[:, :, 0]
        for _ in range(2):
            v = (a @ v[:, :, None])[:, :, 0]
            v /= np.linalg.norm(v, axis=1, keepdims=True)
        av = (a @ v[:, :, None])[:, :, 0]
        lam = np.einsum("ni,ni->n", v, av)
        s0 = np.sqrt(np.maximum(lam, 0.0))
        u = (m @ v[:, :, None])[:, :, 0] / np.where(s0 > 0, s0, 1.0)[:, None]
    bad = ~(np.linalg.norm(av - lam[:, None] * v, axis=1) <= 1e-10 * lam)  # NaN (a zero block) included
    if bad.any():
        uu, ss, vt = np.linalg.svd(m[bad])
        s0[bad], u[bad], v[bad] = ss[:, 0], uu[:, :, 0], vt[:, 0, :]
    return s0, u, v


def encode_blocks(ll: np.ndarray, bits: list[int], scale: float = SCALE) -> None:
    """invisible-watermark's `EmbedDwtDctSvd.encode_frame` over every block at once, in place on the LL band
    `ll` (float64): block k carries bit k mod len(bits) in its DCT's first singular value,
    s0 <- (s0 // scale + 0.25 + 0.5 * bit) * scale (M = U S V^T with S[0] changed is M + (s0' - s0) u0 v0^T)."""
    r, c = ll.shape[0] // BLOCK, ll.shape[1] // BLOCK
    m = DCT @ _blocks(ll) @ DCT.T
    s0, u, v = top_singular(m)
    bit = np.asarray(bits, dtype=np.float64)[np.arange(r * c) % len(bits)]
    shift = (s0 // scale + 0.25 + 0.5 * bit) * scale - s0
    coded = DCT.T @ (m + shift[:, None, None] * u[:, :, None] * v[:, None, :]) @ DCT
    ll[:r * BLOCK, :c * BLOCK] = coded.reshape(r, c, BLOCK, BLOCK).swapaxes(1, 2).reshape(r * BLOCK, c * BLOCK)


def read_blocks(ll: np.ndarray, n: int, scale: float = SCALE) -> np.ndarray:
    """invisible-watermark's `EmbedDwtDctSvd.decode` on the LL band `ll` over every block at once: per block
    (s0 mod scale) > scale / 2, averaged over the blocks of each of the `n` bits, > 127/255 -> int [n]."""
    s0 = top_singular(DCT @ _blocks(ll) @ DCT.T)[0]
    score = ((s0 % scale) > scale * 0.5).astype(np.float64)
    which = np.arange(len(s0)) % n
    mean = np.bincount(which, score, n) / np.bincount(which, None, n)
    return (mean * 255 > 127).astype(int)


class WatermarkError(GuardFailure):
    """The watermark could not be embedded so that it reads back (fail closed: no image)."""


def embed(image: np.ndarray, bits: list[int], method: str = METHOD, headroom: int = HEADROOM) -> np.ndarray:
    """uint8 [H, W, 3] RGB -> uint8 [H, W, 3] RGB carrying `bits` as invisible-watermark's `method` writes
    them (its per-block coder on the Haar LL band of the U channel), so its decoder reads them.

    Around that coder, the library's own `encode` damages images, so this does the rest itself: the
    library converts to uint8 YUV and back (saturated colours leave V's range: spring green (0, 255, 128)
    comes back 18 levels redder), truncates instead of rounding, and swaps the horizontal and vertical detail
    bands when inverting the DWT (edges move in chroma). Here the coder runs on the U channel as the
    decoder computes it (OpenCV, uint8), and only its change dU goes back into the pixels, along the
    YUV->RGB matrix's U column (B += 2.032 dU, G -= 0.395 dU: Y and V stay). Rounding to uint8 moves
    the U the decoder computes by about one level, which on a flat image moves every block the same
    way and can flip every bit; so after that full step what is still missing is fed back at half gain,
    on the pixels that miss it, until the decoder's U is the target (about 3 rounds). Pixels
    are first clipped to [headroom, 255 - headroom] so that the change stays inside the RGB gamut.
    No read-back check; `apply_watermark` is the served path."""
    import cv2  # cv2 ships with invisible-watermark, whose decoder converts colours with it

    if method not in ("dwtDct", METHOD):
        raise ValueError(f"method must be 'dwtDct' or {METHOD!r}, not {method!r}")
    if min(image.shape[:2]) < MIN_SIDE:
        raise ValueError(f"watermarking needs images of at least {MIN_SIDE}x{MIN_SIDE}, got {image.shape[:2]}")
    bgr = np.ascontiguousarray(np.clip(image[:, :, ::-1], headroom, 255 - headroom))  # OpenCV order
    h, w = (s // BLOCK * BLOCK for s in image.shape[:2])
    u = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV)[:h, :w, 1].astype(np.float64)
    ll = haar_ll(u)
    coded = ll.copy()
    if method == METHOD:  # in place, one bit per 4x4 block of LL: the library's coder, every block at once
        encode_blocks(coded, bits)
    else:  # the library's own coder; imported only here: the package's __init__ imports torch (for rivaGan)
        from imwatermark.maxDct import EmbedMaxDct

        EmbedMaxDct(bits, wmLen=len(bits), block=BLOCK).encode_frame(coded, SCALE)
    # the inverse DWT with LL changed by d and the detail bands kept moves each pixel of a 2x2 cell by d / 2;
    # the decoder reads integer U
    target = np.rint(u + np.repeat(np.repeat((coded - ll) / 2, 2, axis=0), 2, axis=1))
    # B and G move with U, R does not: one full step along the U column (dU = 1.00 per unit, Y and V kept),
    # then what rounding left missing fed back at half gain on the pixels that still miss it
    marked = bgr.copy()
    planes = [(target - u) * U_TO_BGR[ch] + bgr[:h, :w, ch] for ch in (0, 1)]  # B, G as float64 [h, w]
    for ch in (0, 1):
        marked[:h, :w, ch] = _to_uint8(planes[ch])
    for _ in range(FEEDBACK_ROUNDS):
        missing = target - cv2.cvtColor(marked, cv2.COLOR_BGR2YUV)[:h, :w, 1]
        ys, xs = np.nonzero(missing)
        if not ys.size:
            break  # converged: the decoder's U is the target everywhere
        fed_back = missing[ys, xs] * FEEDBACK_GAIN
        for ch in (0, 1):
            planes[ch][ys, xs] += fed_back * U_TO_BGR[ch]
            marked[ys, xs, ch] = _to_uint8(planes[ch][ys, xs])
    return np.ascontiguousarray(marked[:, :, ::-1])


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """float64 -> uint8, rounded half to even and clipped to [0, 255]; `x` is left as it was (the unrounded
    values the feedback keeps adding to). np.clip is slower on float64."""
    out = np.rint(x)
    np.maximum(out, 0, out=out)
    np.minimum(out, 255, out=out)
    return out.astype(np.uint8)


def read_bits(image: np.ndarray, n: int, method: str = METHOD) -> np.ndarray:
    """uint8 [H, W, 3] RGB -> int [n]: the bits invisible-watermark's `method` reads from it (`dwtDctSvd`:
    its decoder's arithmetic over every block at once, `read_blocks`)."""
    if method == METHOD:
        import cv2

        h, w = (s // BLOCK * BLOCK for s in image.shape[:2])
        u = cv2.cvtColor(np.ascontiguousarray(image[:, :, ::-1]), cv2.COLOR_BGR2YUV)[:h, :w, 1]
        return read_blocks(haar_ll(u.astype(np.float64)), n)
    from imwatermark import WatermarkDecoder

    return np.asarray(WatermarkDecoder("bits", n).decode(np.ascontiguousarray(image[:, :, ::-1]), method), dtype=int)


def apply_watermark(image: np.ndarray, min_match: float = MIN_MATCH) -> np.ndarray:
    """uint8 [H, W, 3] RGB -> the same image carrying the 48-bit watermark, checked by reading it back
    (`WatermarkError`, a guard failure, when fewer than `min_match` of the bits come back). The caller
    passes the policy's `watermark.min_match`; the default is the policy schema's."""
    marked = embed(image, WATERMARK_BITS)
    match = watermark_match(marked)
    if match < min_match:
        raise WatermarkError(f"watermark reads back {match:.2f} of its bits (< {min_match}); no image is returned")
    return marked


def watermark_match(image: np.ndarray) -> float:
    """Fraction of the 48 message bits recovered from uint8 [H, W, 3] RGB (1.0 = intact,
    about 0.5 = absent)."""
    return float(np.mean(read_bits(image, len(WATERMARK_BITS)) == np.asarray(WATERMARK_BITS)))
