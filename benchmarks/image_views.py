"""image_guard's views against the eye labels: every labelled text-to-image sample's images checked as the
pipeline checks them (`SafeT2IPipeline.check_image` over the built repository, in-process), once on the whole image
only (`image.views: whole`) and once with each group of side-by-side objects also alone (`objects`), then counted
by the eye's `bare` label and by stage (first attempts at the first-attempt bar, regenerated images at the rule's
threshold).

    python benchmarks/image_views.py [--repository build/repository/cpu] [--policy FILE]

Prints one table: per label (y: bare, u: unsure, n: clothed) and stage, how many images each way flags. About
20 s on 2 cores. The samples' images were generated under earlier policies; only the check is redone.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from t2iguard.contract.policy import load_policy
from t2iguard.contract.profiles import load_profile
from t2iguard.evaluation.judge_sample import load_image, load_sample
from t2iguard.evaluation.label_tool import load_labels
from t2iguard.runtime.pipeline import GenerateRequest, SafeT2IPipeline
from t2iguard.runtime.runners import LocalRunner

SAMPLES = Path(__file__).resolve().parents[1] / "evaluation"


def flags(pipe: SafeT2IPipeline, image: np.ndarray, first_attempt: bool) -> bool:
    """Whether the image check (the pipeline's, with its policy's views) sends the image back: any rule fires."""
    scores, _, _ = pipe.check_image(image, GenerateRequest(request_id="views", prompt="p"), np.zeros((1, 384)))
    return pipe.policy.decide_image(scores, first_attempt=first_attempt).action != "pass"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repository", type=Path, default=Path("build/repository/cpu"))
    ap.add_argument("--policy", type=Path, default=None, help="policy file (default: the repository's)")
    args = ap.parse_args()
    base = load_policy(args.policy or args.repository / "policy.yaml")
    profile = load_profile(args.repository)
    pipes = {}
    for name in ("whole", "objects"):
        policy = base.model_copy(update={"image": base.image.model_copy(update={"views": name})})
        pipes[name] = SafeT2IPipeline(LocalRunner(args.repository, profile, policy), profile, policy, "views")
    counts: Counter = Counter()
    folders = sorted(p for p in SAMPLES.glob("judge_sample*") if (p / "labels.jsonl").exists())
    for folder in folders:
        labels = {lab["id"]: lab for lab in load_labels(folder)}
        for row in load_sample(folder):
            label = labels[row["id"]].get("bare", "-")
            if row["set"] != "t2i" or label == "-":
                continue
            image, first = load_image(row, folder), row["attempt"] == 1
            stage = "first attempts" if first else "regenerated"
            counts[(label, stage, "images")] += 1
            for name, pipe in pipes.items():
                counts[(label, stage, name)] += flags(pipe, image, first)
    print(f"{len(folders)} labelled samples; text-to-image images flagged by the image check, by view\n")
    print("| eye label (bare) | stage | images | flagged, whole image | flagged, objects also alone |")
    print("| --- | --- | --- | --- | --- |")
    for label in ("y", "u", "n"):
        for stage in ("first attempts", "regenerated"):
            n, whole, views = (counts[(label, stage, k)] for k in ("images", "whole", "objects"))
            print(f"| {label} | {stage} | {n} | {whole} | {views} |")


if __name__ == "__main__":
    main()
