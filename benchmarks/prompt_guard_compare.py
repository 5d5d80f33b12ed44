"""Two prompt-classifier files side by side on sets neither was trained on (held-out twins, HateCheck, TweetEval,
OpenAI moderation), and on the committed red-team bypasses.

    python benchmarks/prompt_guard_compare.py OLD.safetensors OLD_POLICY.yaml NEW.safetensors NEW_POLICY.yaml \
        [--window-a N] [--window-b N]

Each file scores as served (`training.train_prompt_classifier.served_scores`: normalise, tokenise, MiniLM, head;
the max over N-token windows too, N = 0 for the whole prompt only, as served before issue 21; default: A whole,
B the served window) at its own policy's prompt thresholds; prints, per set, the share of benign-looking rows
flagged and of unsafe rows caught, and how many of the red-team cases (`evaluation/redteam_cases.jsonl`, fixed
and open) each catches: the replay `make test` runs against the served guard, here in-process.
The tables in docs/2026-12-03-prompt-guard-real-data.md came from it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from t2iguard.contract.policy import load_policy
from t2iguard.contract.taxonomy import CATEGORIES
from t2iguard.evaluation.prompt_classifier import unseen_sets
from t2iguard.export.modules import PROMPT_WINDOW
from t2iguard.training.train_prompt_classifier import served_scores

SETS = ("own twins", "HateCheck", "TweetEval hate", "OpenAI moderation")
CASES = Path(__file__).parents[1] / "evaluation" / "redteam_cases.jsonl"


def flagged_shares(weights: Path, policy: Path, window: int | None, every: bool = False,
                   max_rows: int = 0) -> dict[str, dict[str, float]]:
    """{set: {group: % flagged}} at the policy's prompt thresholds (no prompt rule: never fires). `every`: all
    unseen sets, the eval-set copies included (measured, never tuned on); `max_rows`: a seeded sample of each
    larger set (0: all rows)."""
    thresholds = load_policy(policy).prompt_thresholds()
    t = np.array([thresholds[c] for c in CATEGORIES])
    out = {}
    for u in unseen_sets():
        if every or u.name.startswith(SETS):
            rows = np.arange(len(u.texts))
            if max_rows and len(rows) > max_rows:
                rows = np.sort(np.random.default_rng(0).choice(rows, max_rows, replace=False))
            flagged = (served_scores([u.texts[i] for i in rows], weights, window=window) >= t).any(1)
            group = u.group[rows]
            out[f"{u.name} (n={len(rows)})"] = {g: round(100 * float(flagged[group == g].mean()), 1)
                                                for g in ("benign", "hard-negative", "unsafe") if (group == g).any()}
    return out


def redteam_caught(weights: Path, policy: Path, window: int | None) -> dict[str, str]:
    """{"fixed": "caught/n", "open": "caught/n"}: the committed red-team cases the file flags at its policy's
    prompt thresholds (a fixed case must be caught; an open one is a bypass still open for the shipped model)."""
    thresholds = load_policy(policy).prompt_thresholds()
    t = np.array([thresholds[c] for c in CATEGORIES])
    cases = [json.loads(line) for line in CASES.read_text().splitlines() if line.strip()]
    flagged = (served_scores([c["prompt"] for c in cases], weights, window=window) >= t).any(1)
    status = np.array([c["status"] for c in cases])
    return {s: f"{int(flagged[status == s].sum())}/{int((status == s).sum())}" for s in ("fixed", "open")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs=4, type=Path, help="WEIGHTS_A POLICY_A WEIGHTS_B POLICY_B")
    ap.add_argument("--window-a", type=int, default=0, help="A's screening window in tokens (0: whole prompt)")
    ap.add_argument("--window-b", type=int, default=PROMPT_WINDOW, help="B's screening window (0: whole prompt)")
    ap.add_argument("--all", action="store_true", help="every unseen set, the eval-set copies included")
    ap.add_argument("--max-rows", type=int, default=0, help="a seeded sample of each larger set (0: all)")
    args = ap.parse_args()
    a = flagged_shares(*args.files[:2], window=args.window_a or None, every=args.all, max_rows=args.max_rows)
    b = flagged_shares(*args.files[2:], window=args.window_b or None, every=args.all, max_rows=args.max_rows)
    print("| set | A: flagged by group | B: flagged by group |\n| --- | --- | --- |")
    for name in a:
        print(f"| {name} | {a[name]} | {b.get(name)} |")
    ra = redteam_caught(*args.files[:2], window=args.window_a or None)
    rb = redteam_caught(*args.files[2:], window=args.window_b or None)
    print(f"| red-team cases caught | {ra} | {rb} |")


if __name__ == "__main__":
    main()
