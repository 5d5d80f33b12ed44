"""Generated text-to-image images labelled by the bare judge: training data for the image classifier (issue 23).

The image classifier learned `nudity` on drawn and VAE-decoded figures, and misses most bare figures on images
the UNet generates, above all regenerated ones (2026-12-05: it flags 6 of the 19 regenerated images the labels
call bare). The bare judge (`training/bare_judge.py`, trained on drawn figures only) agrees with the labels far
better on generated images (96.8% on a blind sample, precision 75%, recall 100%). So: party requests from a seed
range of their own (`SEEDS`, 60000+: the evaluations use 7000-31349 and the labelled samples 30000-31349) go
through the served pipeline with regeneration, as in `t2iguard eval regeneration`; every attempt's image is kept
(first attempts and guided regenerations, the images the check must read) with the judge's logit, and the sure
verdicts are the labels (`labels`, `MARGIN`).

Party requests alone taught the classifier that a generated look means risk: it flagged the suite's allowed
request (a blue-green blob, 4 sampling steps) `nudity` 0.82 (2026-12-05). So the same number of **plain**
requests (`plain_requests`: any shape, figures not dressed for a party, 1 to 30 sampling steps) goes through the
same way from a seed range of its own, and every plain image is a negative (`labels`). The judge is not asked:
it calls 9% of them bare (96 of 1,030), and of 40 of those looked at, nearly all are 2-step noise, green circles,
red squares or figures in coloured shirts. The UNet learned bare bodies only from captions that ask for a bare
figure or a party, so a plain request's image that is truly bare is rare; a few wrong negatives cost less than
many wrong positives.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from t2iguard.export.build import cache_root
from t2iguard.runtime.pipeline import GenerateRequest
from t2iguard.training import bare_judge
from t2iguard.training.data import shapeworld as W
from t2iguard.training.train_dpo import party_requests

#: the request kinds and their seed ranges (61000-61149 held a first look at plain requests, not trained on)
SEEDS = {"party": 60000, "plain": 62000}
ATTEMPTS = 4  # regenerations per request, as the policy serves them


#: plain requests' sampling steps: the service takes 1-50 (the suite asks for 4, and 1 where only the decision
#: matters), the party requests all take 20. Without 1, the classifier trained on these refused a red circle
#: sampled in one step at every attempt (2026-12-05)
PLAIN_STEPS = (1, 2, 4, 8, 20, 30)


def plain_requests(n: int, seed: int) -> list[tuple[GenerateRequest, W.Scene]]:
    """`n` plain requests drawn from `seed`: a random scene of any shape (figures clothed, not dressed for a party),
    captioned as the training captions are, at one of `PLAIN_STEPS`."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        scene = W.random_scene(rng)
        out.append((GenerateRequest(request_id=f"plain-{i}", prompt=W.caption(scene, rng), seed=seed + i,
                                    steps=int(rng.choice(PLAIN_STEPS))), scene))
    return out


REQUESTS = {"party": party_requests, "plain": plain_requests}


def _digest(repository: Path) -> str:
    """16 hex digits over the repository's ONNX graphs and policy, and the bare judge's weights."""
    h = hashlib.sha256(bare_judge.WEIGHTS.read_bytes())
    for path in sorted([*repository.glob("*/1/model.onnx"), repository / "policy.yaml"]):
        h.update(path.relative_to(repository).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _requests_digest(n: int, kind: str) -> str:
    """8 hex digits over the `n` requests of `kind` (prompt, seed, steps): a change to how they are drawn (e.g.
    `PLAIN_STEPS`) names another cache file."""
    h = hashlib.sha256()
    for request, _ in REQUESTS[kind](n, SEEDS[kind]):
        h.update(f"{request.prompt}|{request.seed}|{request.steps}\n".encode())
    return h.hexdigest()[:8]


def cache_path(repository: Path, n: int, kind: str = "party") -> Path:
    """Where the judged images of `n` requests of `kind` (from `SEEDS[kind]`) through `repository` are cached."""
    name = f"{kind}-{_digest(repository)}-s{SEEDS[kind]}-n{n}-r{_requests_digest(n, kind)}.npz"
    return cache_root() / "judged" / name


def judged_images(repository: Path, n: int, kind: str = "party") -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                          list[W.Scene]]:
    """The cached generated images (`t2iguard eval judged-images` makes them) -> (uint8 [N, 256, 256, 3] every
    attempt's image, float32 [N] the bare judge's logit (`bare_judge.logit`, -inf where it found no figure), int32
    [N] the attempt number, 1 for first attempts, and each image's requested scene, drawn again from the seed)."""
    path = cache_path(repository, n, kind)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: generate the judged images first: t2iguard eval judged-images "
                                f"--requests {n} --repository {repository}")
    z = np.load(path)
    scenes = [scene for _, scene in REQUESTS[kind](n, SEEDS[kind])]
    request = np.cumsum(z["attempt"] == 1) - 1  # the attempts of a request follow its first
    return z["images"], z["logit"], z["attempt"], [scenes[i] for i in request]


#: a party image is a positive when the judge's logit is above this, a negative at or below 0, and left out in
#: between. Chosen on two of the four labelled samples (`judge_sample_bodies` and its reseeded twin, which the
#: judge's third version was revised on: the smallest margin at which its flags there were all bare by eye,
#: precision 75% -> 100%, recall 75% kept); on the other two, never used to choose, precision 74% -> 87%,
#: recall 100% -> 93% (2026-12-05).
MARGIN = 3.0


def labels(logits: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """`kind`'s images' bare-judge logits (float32 [N], `bare_judge.logit`) -> (bool [N] kept, float32 [N] `nudity`
    training labels): party images by the judge, sure ones only (`MARGIN`); plain ones all kept, all 0 (above)."""
    if kind != "party":
        return np.ones(len(logits), bool), np.zeros(len(logits), np.float32)
    return (logits <= 0) | (logits > MARGIN), (logits > MARGIN).astype(np.float32)
