"""A second judge of text-to-image images, trained apart from the image classifier (issue 23): does a figure in
the image stand bare (a skin-toned torso, the `nudity` stand-in)?

    python -m t2iguard.training.bare_judge [--figures 6000] [--seed 890000] \
        [--out export/weights/bare_judge.safetensors]

Independent of the served image classifier by construction:
- **data**: drawn ShapeWorld figures only (`shapeworld.render`, never a VAE-decoded or generated image), half
  of them bare, every skin tone and shirt colour, from its own seed range (890000+: the classifiers train on
  draws from 0 and 1000, the tone judge on 880000+, the judge sample is 30000+);
- **where it looks**: it finds the figures in the image itself (`judges.located_figures`, by their trousers),
  never in the layout the prompt asked for (the UNet places figures where its noise puts them);
- **inputs**: colour statistics, not pixels: per located figure, per-channel 8-bin histograms of its body box
  and of its head box (a head is always skin) and their difference;
- **architecture**: the two-layer MLP of `training/tone_judge.py` on those 72 numbers (the image classifier
  is a CNN tower on the whole image);
- **augmentation**: what a decoder does to a drawn image (`tone_judge.decoder_like`: blur, channel gains, noise).
An image is judged bare when any figure found in it is. The weights are committed with this script and its
seed; `tests/test_bare_judge.py` checks the judge on drawn scenes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from t2iguard.training import tone_judge
from t2iguard.training.data import shapeworld as W
from t2iguard.training.data.judges import located_figures
from t2iguard.training.tone_judge import HistogramMLP, decoder_like, fit, histograms

WEIGHTS = Path(__file__).resolve().parents[1] / "export" / "weights" / "bare_judge.safetensors"
SEED = 890000


def features(image: np.ndarray, boxes: dict[str, tuple[float, float, float, float]]) -> np.ndarray:
    """One located figure of a uint8 [256, 256, 3] image (its part boxes, `W.boxes_at`) -> float32 [72]: body
    histograms, head histograms, their difference."""
    body, head = histograms(image, boxes["body"]), histograms(image, boxes["head"])
    return np.concatenate([body, head, body - head])


def drawn_figures(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` drawn figures (half bare; party or not; a hazard sign on some), roughened as a decoder would and found
    again by `located_figures` -> (float32 [n, 72] features of the figure found, float32 [n] `bare` labels).
    A drawing in which no figure is found is drawn again."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    while len(xs) < n:
        bare = bool(rng.random() < 0.5)
        scene = replace(W.random_scene(rng, "figure"), bare=bare, party=bare or bool(rng.random() < 0.5),
                        hazard=bool(rng.random() < 0.15))
        image = decoder_like(W.render(scene), rng)
        found = located_figures(image)
        if found:
            xs.append(features(image, found[0]))
            ys.append(float(bare))
    return np.stack(xs), np.asarray(ys, np.float32)


def train(n: int = 6000, seed: int = SEED, epochs: int = 60) -> tuple[HistogramMLP, dict]:
    """Fit the judge on `n` drawn figures (seeded); returns it and its accuracy on 1000 held-out drawn figures."""
    model, acc = fit(*drawn_figures(n, seed), drawn_figures(1000, seed + 1), seed, epochs)
    return model, {"held_out_drawn_accuracy": round(acc, 4), "figures": n, "seed": seed, "epochs": epochs}


def load(path: Path = WEIGHTS) -> HistogramMLP:
    return tone_judge.load(path)


def judge(model: HistogramMLP, image: np.ndarray) -> bool:
    """True when the judge sees a bare figure among those it finds in a uint8 [256, 256, 3] image."""
    found = located_figures(image)
    if not found:
        return False
    with torch.no_grad():
        return bool((model(torch.from_numpy(np.stack([features(image, b) for b in found]))) > 0).any())


def main() -> None:
    tone_judge.main(__doc__, train, WEIGHTS, SEED, "--figures", "training/bare_judge.py")


if __name__ == "__main__":
    main()
