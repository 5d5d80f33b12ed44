"""The labelled sample of generated ShapeWorld images that the judges are validated on (issue 23).

`generate` runs the two request sets of `t2iguard eval regeneration` (benign "party" prompts; "make the
figure beautiful" edits) through steps 4-6 of the served pipeline code in-process (`run_method`, classifier
guidance: the `tiny` default), on seeds of their own (`SAMPLE_SEED`), and keeps, per request, the first
attempt and, when the request was regenerated, its last attempt (the delivery, or the image that was still
flagged when it was refused). Each kept image is a lossless 256-pixel PNG in `SAMPLE_DIR`, with one line of
`sample.jsonl`: the request (prompt, seeds, the scene it was drawn from), the attempt, what the image and
transform classifiers scored and flagged, and what the pixel oracles (`training/data/judges.py`) said.
The labels made by looking at the images are in `labels.jsonl` beside them (`evaluation/label_tool.py`).

Seeds: requests draw from `SAMPLE_SEED` (30000: text-to-image 30000-30109, edits 30110-30219), disjoint
from training (0, 1000), the reported regeneration eval (7000+), the presets' tuning (9000+) and issue 23's
re-run (20000+).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

from t2iguard.evaluation.regeneration import edit_requests, run_method, t2i_requests
from t2iguard.training.data import shapeworld as W
from t2iguard.training.data.judges import oracle_bare, oracle_crown, oracle_tone

SAMPLE_DIR = Path(__file__).resolve().parent / "judge_sample"
#: the second sample: text-to-image only, generated through the `vae-bodies` decoder (seeds 31000-31069)
BODIES_SAMPLE_DIR = Path(__file__).resolve().parent / "judge_sample_bodies"
SAMPLE_SEED = 30000
METHOD = "classifier"
SETS = ("t2i", "edits")


def scene_of(row: dict) -> W.Scene:
    """A sample row's `scene` (JSON) back as the `W.Scene` it was drawn from."""
    return W.Scene(**{**row["scene"], "jitter": tuple(row["scene"]["jitter"])})


def source_of(row: dict) -> np.ndarray | None:
    """An edit's source image, uint8 [256, 256, 3], drawn again from its scene (exact); None for t2i."""
    return W.render(scene_of(row)) if row["set"] == "edits" else None


def load_sample(folder: Path = SAMPLE_DIR) -> list[dict]:
    """The rows of `sample.jsonl`, in order."""
    return [json.loads(line) for line in (folder / "sample.jsonl").read_text().splitlines() if line.strip()]


def load_image(row: dict, folder: Path = SAMPLE_DIR) -> np.ndarray:
    """A row's image, uint8 [256, 256, 3]."""
    return np.asarray(Image.open(folder / row["file"]).convert("RGB"), dtype=np.uint8)


def current_oracles(image: np.ndarray, row: dict) -> dict:
    """The pixel oracles of `eval regeneration` on one image (uint8 [256, 256, 3]), judged in the boxes of
    the scene the request asked for: t2i `bare`; edits `tone` (the head's nearest palette tone),
    `tone_changed` (against the source's tone) and `crown`."""
    scene = scene_of(row)
    if row["set"] == "t2i":
        return {"bare": bool(oracle_bare(image, scene))}
    tone = oracle_tone(image, scene)
    return {"tone": tone, "tone_changed": tone != scene.tone, "crown": bool(oracle_crown(image, scene))}


def generate(repository: Path, out: Path = SAMPLE_DIR, n: int = 110, seed: int = SAMPLE_SEED, attempts: int = 4,
             sets: tuple[str, ...] = SETS, method: str = METHOD, say=lambda m: None) -> list[dict]:
    """`n` requests per set of `sets` through the pipeline (regenerating by `method`, up to `attempts`
    regenerations); writes the kept images and `sample.jsonl` to `out` and returns its rows."""
    out.mkdir(parents=True, exist_ok=True)
    drawn = {"t2i": lambda: t2i_requests(n, seed), "edits": lambda: edit_requests(n, seed + n)}
    rows = []
    for kind in sets:
        requests = drawn[kind]()
        for r in run_method(repository, method, attempts, requests, lambda m, k=kind: say(f"{k} {m}")):
            last = len(r["images"]) - 1
            for k in sorted({0, last}):
                image = r["images"][k]
                row = {"id": f"{r['id']}-a{k + 1}", "set": kind, "request": r["id"], "request_seed": r["req"].seed,
                       "prompt": r["req"].prompt, "scene": asdict(r["scene"]), "method": method, "attempt": k + 1,
                       "attempts": last + 1, "final": k == last, "delivered": k == last and not r["refused"],
                       "refused": r["refused"], "flagged": r["flagged"][k], "scores": r["scores"][k],
                       "file": f"{r['id']}-a{k + 1}.png"}
                row["oracle"] = current_oracles(image, row)
                Image.fromarray(image).save(out / row["file"], optimize=True)
                rows.append(row)
    (out / "sample.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    return rows
