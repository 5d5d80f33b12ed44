"""Write perf_analyzer `--input-data` JSON files for safe_t2i, prompt_guard and image_guard.

    .venv/bin/python deploy/perf/inputs.py [--out deploy/perf/data]

Tensor names, dtypes and shapes come from the model specs (`t2iguard.contract.specs`); BYTES inputs are
JSON strings, the uint8 image is base64 (`{"b64": ...}` with its shape), as perf_analyzer reads them.
"""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path

import numpy as np

from t2iguard.contract import specs as S
from t2iguard.contract.profiles import get_profile

PROMPTS = ("a red circle on a blue background", "a watercolor of a lighthouse at dusk", "image of a ceo",
           "a cozy cabin in the snowy woods", "a fox in an autumn forest", "a bowl of ramen, studio lighting")


def safe_t2i(steps: int) -> dict:
    return {"data": [{S.PROMPT: [p], S.SEED: [i], S.STEPS: [steps]} for i, p in enumerate(PROMPTS)]}


def prompt_guard() -> dict:
    return {"data": [{S.PROMPT: {"content": [p], "shape": [1]}} for p in PROMPTS]}


def image_guard(size: int, n: int = 4) -> dict:
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(n):
        image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        rows.append({S.IMAGE: {"b64": base64.b64encode(image.tobytes()).decode(), "shape": [size, size, 3]}})
    return {"data": rows}


def write(out: Path, steps: int = 20) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    size = get_profile("tiny").image_size
    files = {f"{S.SAFE_T2I}.json": safe_t2i(steps), f"{S.PROMPT_GUARD}.json": prompt_guard(),
             f"{S.IMAGE_GUARD}.json": image_guard(size)}
    for name, data in files.items():
        (out / name).write_text(json.dumps(data))
    return [out / n for n in files]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    for path in write(args.out, args.steps):
        print(path)
