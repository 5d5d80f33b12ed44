"""Generated text-to-image images labelled by the bare judge: training data for the image classifier (issue 23).

The image classifier learned `nudity` on drawn and VAE-decoded figures, and misses most bare figures on images
the UNet generates, above all regenerated ones (2026-12-05: it flags 6 of the 19 regenerated images the labels
call bare). The bare judge (`training/bare_judge.py`, trained on drawn figures only) agrees with the labels far
better on generated images (96.8% on a blind sample, precision 75%, recall 100%). So: party requests from a seed
range of their own (`SEED`, 60000+: the evaluations use 7000-31349 and the labelled samples 30000-31349) go
through the served pipeline with regeneration, as in `t2iguard eval regeneration`; every attempt's image is kept
(first attempts and guided regenerations, the images the check must read) and labelled by the judge.

The generation is evaluation code (`evaluation.judge_sample.generate_judged`, which drives the served pipeline);
the images and labels are cached under `cache_root()/judged/` by the repository's weights, the judge's weights,
the seed and the count, and the training phase reads them from there.
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


def cache_path(repository: Path, n: int = REQUESTS, seed: int = SEED) -> Path:
    """Where the judged images of `n` requests from `seed` through `repository` are cached."""
    return cache_root() / "judged" / f"t2i-{_digest(repository)}-s{seed}-n{n}.npz"


def judged_images(repository: Path, n: int = REQUESTS, seed: int = SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cached judged images (`evaluation.judge_sample.generate_judged` makes them) -> (uint8 [N, 256, 256, 3]
    every attempt's image, float32 [N] the bare judge's verdict, int32 [N] the attempt number, 1 for first
    attempts)."""
    path = cache_path(repository, n, seed)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: generate the judged images first: python -c \"from t2iguard.evaluation."
                                f"judge_sample import generate_judged; generate_judged(n={n}, seed={seed})\"")
    z = np.load(path)
    return z["images"], z["bare"], z["attempt"]
