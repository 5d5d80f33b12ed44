"""What prompt-classifier files say about a few phrases: the top category, its score and the risk at a policy.

    python benchmarks/prompt_probe.py WEIGHTS POLICY [WEIGHTS POLICY ...] --text "a ballot box" [--text ...]
    python benchmarks/prompt_probe.py WEIGHTS POLICY --file benchmarks/probes/held_out_frames.txt  # a line each
    python benchmarks/prompt_probe.py WEIGHTS POLICY --fixed-cases --missed   # the replay cases a file lets through

A diagnosis, not a measure: to ask which words of a flagged prompt a file reads as the harm (a held-out twin's
benign element alone, its nouns alone), as the study's 2026-12-07 afternoon section did. Phrases are scored as
served (`served_scores` at the served window); risk is the max over categories of score / the policy's prompt
threshold, flagged from 1. `--fixed-cases` adds the red team's fixed replay cases (the rule's "every fixed replay
case caught" term) and `--missed` prints only what a file does not flag, so the cases behind that term are named.
Seconds per file on 2 cores.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from t2iguard.contract.taxonomy import CATEGORIES
from t2iguard.export.tiny import classifier_policy_pairs


def rows(texts: list[str], scores: np.ndarray, thresholds: np.ndarray) -> list[tuple[str, str, float, float]]:
    """(text, top category, its score, risk) per text; `scores` float32 [n, C], `thresholds` float32 [C]. The top
    category is the one with the highest risk (score / threshold), the one that would flag the text first."""
    risk = scores / thresholds
    top = risk.argmax(1)
    return [(t, CATEGORIES[i], float(s[i]), float(r[i])) for t, i, s, r in zip(texts, top, scores, risk, strict=True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path, help="WEIGHTS POLICY pairs")
    ap.add_argument("--text", action="append", default=[], help="a phrase to score (repeatable)")
    ap.add_argument("--file", type=Path, help="phrases to score, one a line")
    ap.add_argument("--fixed-cases", action="store_true",
                    help="also the red team's fixed replay cases (evaluation/redteam_cases.jsonl)")
    ap.add_argument("--missed", action="store_true", help="print only the phrases a file does not flag")
    args = ap.parse_args()
    texts = list(args.text)
    if args.file is not None:
        if not args.file.is_file():
            ap.error(f"--file {args.file}: no such file")
        texts += [line.strip() for line in args.file.read_text().splitlines() if line.strip()]
    if not texts and not args.fixed_cases:
        ap.error("give at least one phrase (--text, --file or --fixed-cases)")
    try:  # seconds, before the scoring
        pairs = classifier_policy_pairs(args.files)
    except ValueError as e:
        ap.error(str(e))

    from prompt_guard_compare import fixed_case_prompts, thresholds_of  # a sibling: benchmarks/ is on sys.path

    from t2iguard.export.modules import PROMPT_WINDOW
    from t2iguard.training.train_prompt_classifier import served_scores

    texts += fixed_case_prompts() if args.fixed_cases else []
    for weights, policy in pairs:
        print(f"## {weights.name} @ {policy.name}\n")
        print("| phrase | top category | score | risk |\n| --- | --- | --- | --- |")
        scored = rows(texts, served_scores(texts, weights, window=PROMPT_WINDOW), thresholds_of(policy))
        missed = [r for r in scored if r[3] < 1]
        if args.missed:
            scored = missed
        for text, cat, score, risk in scored:
            flag = " **flagged**" if risk >= 1 else ""
            print(f"| {text} | {cat} | {score:.2f} | {risk:.2f}{flag} |")
        print(f"\n{len(texts) - len(missed)} of {len(texts)} flagged\n")


if __name__ == "__main__":
    main()
