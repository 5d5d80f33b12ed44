"""Generated text-to-image images labelled by the bare judge: training data for the image classifier (issue 23).

The image classifier learned `nudity` on drawn and VAE-decoded figures, and misses most bare figures on images
the UNet generates, above all regenerated ones (2026-12-05: it flags 6 of the 19 regenerated images the labels
call bare). The bare judge (`training/bare_judge.py`, trained on drawn figures only) agrees with the labels far
better on generated images (96.8% on a blind sample, precision 75%, recall 100%). So: party requests from a seed
range of their own (`SEED`, 60000+: the evaluations use 7000-31349 and the labelled samples 30000-31349) go
through the served pipeline with regeneration, as in `t2iguard eval regeneration`; every attempt's image is kept
(first attempts and guided regenerations, the images the check must read) and labelled by the judge.

The images and labels are cached under `cache_root()/judged/` by the repository's weights, the judge's weights,
the seed and the count, so a rerun of the image-classifier phase does not generate again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from t2iguard.export.build import cache_root
from t2iguard.training import bare_judge

SEED = 60000
REQUESTS = 800
ATTEMPTS = 4  # regenerations per request, as the policy serves them


def _digest(repository: Path) -> str:
    """16 hex digits over the repository's ONNX graphs and policy, and the bare judge's weights."""
    h = hashlib.sha256(bare_judge.WEIGHTS.read_bytes())
    for path in sorted([*repository.glob("*/1/model.onnx"), repository / "policy.yaml"]):
        h.update(path.relative_to(repository).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def judged_images(repository: Path, n: int = REQUESTS, seed: int = SEED,
                  say=lambda msg: None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`n` party requests (seeds `seed`+) through `repository`'s pipeline with classifier guidance and up to
    `ATTEMPTS` regenerations -> (uint8 [N, 256, 256, 3] every attempt's image, float32 [N] the bare judge's
    verdict, int32 [N] the attempt number, 1 for first attempts); cached."""
    from t2iguard.evaluation.regeneration import run_method, t2i_requests

    path = cache_root() / "judged" / f"t2i-{_digest(repository)}-s{seed}-n{n}.npz"
    if path.is_file():
        z = np.load(path)
        return z["images"], z["bare"], z["attempt"]
    judge = bare_judge.load()
    images, bare, attempt = [], [], []
    for row in run_method(repository, "classifier", ATTEMPTS, t2i_requests(n, seed), say):
        for k, image in enumerate(row["images"]):
            images.append(image)
            bare.append(float(bare_judge.judge(judge, image)))
            attempt.append(k + 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = np.stack(images), np.asarray(bare, np.float32), np.asarray(attempt, np.int32)
    np.savez_compressed(path.with_suffix(".tmp.npz"), images=out[0], bare=out[1], attempt=out[2])
    path.with_suffix(".tmp.npz").replace(path)
    return out
