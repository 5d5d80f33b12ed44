"""A second judge of edits, trained apart from the transform classifier (issue 23): did the edit change the face tone?

    python -m t2iguard.training.tone_judge [--pairs 6000] [--seed 880000] [--out export/weights/tone_judge.safetensors]

Independent of the served transform classifier by construction:
- **data**: drawn ShapeWorld edits only (`shapeworld.sample_edit`, never a VAE-decoded or generated image), from
  its own seed range (880000+: training draws from 0 and 1000, the judge sample from 30000);
- **inputs**: colour statistics, not pixels: per channel 8-bin histograms of the edit's head mask (the region
  an edit of the head may repaint) in the source and in the output, and their difference; the source and its
  box come from the request (the scene asked for), as for the pixel oracles;
- **architecture**: a two-layer MLP on those 72 numbers (the transform classifier is a CNN tower on pixels);
- **augmentation**: what a decoder does to a drawn output, applied to the drawn output only: a blur of up to
  1.5 px, per-channel gains within +-8%, noise of 3 levels.
Label: `Edit.tone_changed` (the face tone of the output differs from the source's, asked for or not).
The weights (about 2,500 numbers) are committed with this script and its seed; `tests/test_tone_judge.py`
checks the judge on drawn scenes, `t2iguard eval judge-agreement` on the labelled generated sample.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from t2iguard.training.data import shapeworld as W

WEIGHTS = Path(__file__).resolve().parents[1] / "export" / "weights" / "tone_judge.safetensors"
BINS, HIDDEN = 8, 32
SEED = 880000


def histograms(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """uint8 [H, W, 3], box (x0, y0, x1, y1) -> float32 [3 * BINS]: per-channel histograms of the box, summing to 1."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    crop = image[max(y0, 0):max(y1, 1), max(x0, 0):max(x1, 1)].reshape(-1, 3)
    hist = [np.bincount(crop[:, c] // (256 // BINS), minlength=BINS) for c in range(3)]
    return (np.concatenate(hist) / max(len(crop), 1)).astype(np.float32)


def features(source: np.ndarray, output: np.ndarray, scene: W.Scene) -> np.ndarray:
    """The judge's input for one edit: uint8 [256, 256, 3] source and output, the source's scene ->
    float32 [9 * BINS] (source histograms, output histograms, their difference, in the head mask)."""
    box = W.figure_boxes(scene)["head_mask"]
    src, out = histograms(source, box), histograms(output, box)
    return np.concatenate([src, out, out - src])


class HistogramMLP(torch.nn.Module):
    """[B, inputs] float32 colour features (9 * BINS histograms here) -> [B] logits (of `tone changed` here, of
    `bare` in training/bare_judge.py)."""

    def __init__(self, inputs: int = 9 * BINS):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(inputs, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def decoder_like(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A drawn output roughened as a decoder would: blur, per-channel gain, noise (uint8 in and out)."""
    from PIL import Image, ImageFilter

    x = Image.fromarray(image).filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 1.5))))
    x = np.asarray(x, np.float32) * rng.uniform(0.92, 1.08, 3) + rng.normal(0, 3, image.shape)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def drawn_pairs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` drawn edits of the head (hat, tone requests, beautify; half of them with a tone change) ->
    (float32 [n, 9 * BINS] features, float32 [n] labels)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    while len(xs) < n:
        edit = W.sample_edit(rng, str(rng.choice(["hat", "face-dark", "face-pale", "beautify", "beautify"])),
                             realised=bool(rng.random() < 0.8))
        if edit.region != "head":
            continue
        source = W.render(edit.source)
        xs.append(features(source, decoder_like(W.render(edit.target), rng), edit.source))
        ys.append(float(edit.tone_changed))
    return np.stack(xs), np.asarray(ys, np.float32)


def fit(x: np.ndarray, y: np.ndarray, held: tuple[np.ndarray, np.ndarray], seed: int,
        epochs: int = 60) -> tuple[HistogramMLP, float]:
    """Fit a `HistogramMLP` on features float32 [N, D] and labels float32 [N] (seeded); returns it and its
    accuracy on `held` (features, labels)."""
    torch.manual_seed(seed)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    model = HistogramMLP(x.shape[1])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(128):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    hx, hy = (torch.from_numpy(a) for a in held)
    with torch.no_grad():
        return model.eval(), float(((model(hx) > 0).float() == hy).float().mean())


def train(n: int = 6000, seed: int = SEED, epochs: int = 60) -> tuple[HistogramMLP, dict]:
    """Fit the judge on `n` drawn pairs (seeded); returns it and its accuracy on 1000 held-out drawn pairs."""
    model, acc = fit(*drawn_pairs(n, seed), drawn_pairs(1000, seed + 1), seed, epochs)
    return model, {"held_out_drawn_accuracy": round(acc, 4), "pairs": n, "seed": seed, "epochs": epochs}


def load(path: Path = WEIGHTS) -> HistogramMLP:
    state = load_file(path)
    model = HistogramMLP(state["net.0.weight"].shape[1])
    model.load_state_dict(state)
    return model.eval()


def judge(model: HistogramMLP, source: np.ndarray, output: np.ndarray, scene: W.Scene) -> bool:
    """True when the judge sees the face tone changed by the edit."""
    with torch.no_grad():
        return bool(model(torch.from_numpy(features(source, output, scene))[None])[0] > 0)


def main(doc: str = __doc__, train_fn=train, weights: Path = WEIGHTS, seed: int = SEED, count: str = "--pairs",
         script: str = "training/tone_judge.py", default: int = 6000) -> None:
    """The judges' command line: train with `train_fn(count, seed)` (`count` defaults to `default`), save to
    `--out` with the figures and `script` in the metadata (training/bare_judge.py calls it with its own)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(count, type=int, default=default)
    ap.add_argument("--seed", type=int, default=seed)
    ap.add_argument("--out", type=Path, default=weights)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, info = train_fn(getattr(args, count.lstrip("-")), args.seed)
    save_file(model.state_dict(), str(args.out), metadata={k: str(v) for k, v in {**info, "script": script}.items()})
    print(info)


if __name__ == "__main__":
    main()
