"""Which held-out twin frames a prompt-classifier file flags on their benign side, at a policy's thresholds.

    python benchmarks/twin_flags.py WEIGHTS POLICY [WEIGHTS POLICY ...] [--seed 10000] [--top 12]

Scores every benign side of the held-out twins (`training.data.twins.twins(seed, held_out=True)`: the held-out
frames and seeds, 1,440 pairs; the rule's own-twins row samples 1,000 of them with their unsafe sides) as served
(`served_scores` at the served window) and prints, per (weights, policy), the share flagged, the flags by the
category that flagged them, and the frames with the most flags. A frame is named by its benign element; a frame
whose benign side is flagged again and again names the word the file has made a trigger (the study's
2026-12-07 sections). About 20 s per file on 2 cores.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from t2iguard.contract.taxonomy import CATEGORIES
from t2iguard.export.tiny import classifier_policy_pairs
from t2iguard.training.data.twins import EVAL_SEEDS, Twin, frames, twins


def frame_of(twin: Twin) -> str:
    """The benign element of the held-out frame `twin` was drawn from ("?" if none matches its text)."""
    text = twin.benign.lower()
    for _frame, good, _bad, _extra in frames(twin.category, held_out=True):
        head = good.split("{")[0].lower()  # the element's words before its first slot
        if head and head in text:
            return good
    return "?"


def flags_by_frame(pairs: list[Twin], risk: np.ndarray, top: int) -> list[tuple[str, str, int, int]]:
    """(category, benign element, flagged, drawn) for the `top` frames with the most benign sides at risk >= 1;
    `risk` float32 [len(pairs)]."""
    drawn, flagged = Counter(), Counter()
    for twin, r in zip(pairs, risk, strict=True):
        key = (twin.category, frame_of(twin))
        drawn[key] += 1
        flagged[key] += bool(r >= 1)
    return [(cat, good, n, drawn[cat, good]) for (cat, good), n in flagged.most_common(top) if n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path, help="WEIGHTS POLICY pairs")
    ap.add_argument("--seed", type=int, default=EVAL_SEEDS.start, help="held-out twins' seed (in EVAL_SEEDS)")
    ap.add_argument("--top", type=int, default=12, help="frames listed per file")
    args = ap.parse_args()
    if args.seed not in EVAL_SEEDS:
        ap.error(f"--seed must lie in {EVAL_SEEDS} (the held-out twins' seeds), got {args.seed}")
    try:  # seconds, before the scoring
        classifiers = classifier_policy_pairs(args.files)
    except ValueError as e:
        ap.error(str(e))

    from prompt_guard_compare import thresholds_of  # a sibling script: benchmarks/ is on sys.path when run

    from t2iguard.export.modules import PROMPT_WINDOW
    from t2iguard.training.train_prompt_classifier import served_scores

    pairs = twins(args.seed, held_out=True)
    texts = [t.benign for t in pairs]
    for weights, policy in classifiers:
        scaled = served_scores(texts, weights, window=PROMPT_WINDOW) / thresholds_of(policy)  # float32, as the rule
        risk = scaled.max(1)
        by_category = Counter(CATEGORIES[i] for i in scaled.argmax(1)[risk >= 1])
        print(f"## {weights.name} @ {policy.name}: {int((risk >= 1).sum())} of {len(texts)} benign sides flagged "
              f"({(risk >= 1).mean():.1%})\n")
        print("flagged as: " + ", ".join(f"{c} {n}" for c, n in by_category.most_common()) + "\n")
        print("| category | frame's benign element | flagged / drawn |\n| --- | --- | --- |")
        for cat, good, n, m in flags_by_frame(pairs, risk, args.top):
            print(f"| {cat} | {good} | {n} / {m} |")
        print()


if __name__ == "__main__":
    main()
