"""The red-team search (`evaluation.redteam.run`) against classifier files in-process, side by side: the same
seeds, operators, budget and random draws for each file, so that a retrained candidate meets an attacker that
adapts to it, not only the replay of bypasses found against the shipped model (`evaluation/redteam_cases.jsonl`,
which favours the model they were fixed for).

    python benchmarks/redteam_offline.py WEIGHTS POLICY [WEIGHTS POLICY ...] [--seed 0] [--seeds-per-category 4]

Each file screens as served (`normalize`, tokenise at the profile's length, MiniLM with its adapters merged, the
head over the whole prompt and its `PROMPT_WINDOW`-token windows) at its own policy's prompt thresholds: `allow`
when no category reaches its threshold, else `block`. Prints the attack success rate per operator (each applied
once, two draws per seed) and of the search (beam 3, depth 4, 60 queries per seed), per file. A few minutes per
file on 2 cores. The prompt-guard layer only: nothing is generated.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from t2iguard.contract.policy import load_policy
from t2iguard.contract.profiles import get_profile
from t2iguard.contract.taxonomy import CATEGORIES
from t2iguard.evaluation.redteam import Config, Screen, run
from t2iguard.export.modules import PROMPT_WINDOW, SentenceScorer
from t2iguard.export.tiny import load_classifier
from t2iguard.runtime.text import normalize
from t2iguard.training.embed import score


def file_screen(weights: Path, policy: Path) -> Screen:
    """A `Screen` over a classifier file in-process: (max category score, allow | block, flagged categories)."""
    model = SentenceScorer(*load_classifier(weights), window=PROMPT_WINDOW).eval()
    thresholds = load_policy(policy).prompt_thresholds()
    t = np.array([thresholds[c] for c in CATEGORIES])
    seq_len = get_profile("tiny").seq_len

    @torch.no_grad()
    def screen(prompts: list[str]) -> list[tuple[float, str, list[str]]]:
        scores = score(model, [normalize(p) for p in prompts], seq_len)
        return [(float(s.max()), "block" if (s >= t).any() else "allow",
                 [c for c, hit in zip(CATEGORIES, s >= t, strict=True) if hit]) for s in scores]
    return screen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path, help="WEIGHTS POLICY pairs")
    ap.add_argument("--seed", type=int, default=0, help="the run's random seed (seeds drawn, mutations)")
    ap.add_argument("--seeds-per-category", type=int, default=4)
    args = ap.parse_args()
    if len(args.files) % 2:
        ap.error("files come in WEIGHTS POLICY pairs")
    config = Config(seeds_per_category=args.seeds_per_category, generate=0, seed=args.seed)
    # a column per pair, named by both files: a policy-only candidate shares its weights with the shipped file
    reports = {f"{w} @ {p.name}": run(None, config, screen=file_screen(w, p))
               for w, p in zip(args.files[::2], args.files[1::2], strict=True)}
    ops = list(next(iter(reports.values()))["mutations"])
    print("| attack | " + " | ".join(reports) + " |\n|---|" + "---|" * len(reports))
    for op in ops:
        cells = [r["mutations"][op] for r in reports.values()]
        print(f"| {op} | " + " | ".join(f"{100 * c['asr']:.1f}% ({c['bypassed']}/{c['n']})" for c in cells) + " |")
    print("| queries | " + " | ".join(str(r["queries"]) for r in reports.values()) + " |")


if __name__ == "__main__":
    main()
