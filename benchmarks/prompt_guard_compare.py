"""Two prompt-classifier files side by side on sets neither was trained on (held-out twins, HateCheck, TweetEval,
OpenAI moderation), and on the committed red-team bypasses.

    python benchmarks/prompt_guard_compare.py OLD.safetensors OLD_POLICY.yaml NEW.safetensors NEW_POLICY.yaml \
        [--window-a N] [--window-b N]

Each file scores as served (`training.train_prompt_classifier.served_scores`: normalise, tokenise, MiniLM, head;
the max over N-token windows too, N = 0 for the whole prompt only, as served before issue 21; default: A whole,
B the served window) at its own policy's prompt thresholds; prints, per set, the share of benign-looking rows
flagged and of unsafe rows caught, and how many of the red-team cases (`evaluation/redteam_cases.jsonl`, fixed
and open) each catches: the replay `make test` runs against the served guard, here in-process. Last, per set
with both groups, the ranking apart from the operating point (`ranking`). `--plot F.png` draws B's reliability
diagram on the labelled sets and its risk on the held-out twins (`plot`); `--also-b POLICY` (repeatable) adds a
column of B's weights at another policy's thresholds, scored once.
The tables in docs/2026-12-03-prompt-guard-real-data.md came from it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from t2iguard.contract.policy import load_policy
from t2iguard.contract.taxonomy import CATEGORIES
from t2iguard.evaluation.prompt_classifier import draw_reliability, ranking, reliability, unseen_sets
from t2iguard.export.modules import PROMPT_WINDOW
from t2iguard.training.train_prompt_classifier import served_scores

SETS = ("own twins", "HateCheck", "TweetEval hate", "OpenAI moderation")
CASES = Path(__file__).parents[1] / "evaluation" / "redteam_cases.jsonl"


def thresholds_of(policy: Path) -> np.ndarray:
    """float32 [C]: the policy's prompt thresholds, in CATEGORIES order."""
    thresholds = load_policy(policy).prompt_thresholds()
    return np.array([thresholds[c] for c in CATEGORIES], np.float32)


def risk(texts: list[str], weights: Path, policy: Path, window: int | None) -> np.ndarray:
    """float32 [n]: max over categories of score / the policy's prompt threshold; flagged where >= 1."""
    return (served_scores(texts, weights, window=window) / thresholds_of(policy)).max(1)


def set_scores(weights: Path, window: int | None, every: bool = False,
               max_rows: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """{set name (n=rows): (scores float32 [n, C], group str [n], labels float32 [n, C] or [0, C])}. `every`: all
    unseen sets, the eval-set copies included (measured, never tuned on); `max_rows`: a seeded sample of each
    larger set (0: all rows)."""
    out = {}
    for u in unseen_sets():
        if every or u.name.startswith(SETS):
            rows = np.arange(len(u.texts))
            if max_rows and len(rows) > max_rows:
                rows = np.sort(np.random.default_rng(0).choice(rows, max_rows, replace=False))
            out[f"{u.name} (n={len(rows)})"] = (served_scores([u.texts[i] for i in rows], weights, window=window),
                                                u.group[rows], u.y[rows] if len(u.y) else u.y)
    return out


def set_risks(scores: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
              policy: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{set: (risk float32 [n], group str [n])}: `set_scores` at the policy's prompt thresholds."""
    t = thresholds_of(policy)
    return {name: ((s / t).max(1), group) for name, (s, group, _) in scores.items()}


def plot(scores: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], risks: dict[str, tuple[np.ndarray, np.ndarray]],
         label: str, path: Path) -> None:
    """One file's picture: left, the reliability diagram (per (prompt, category) pair, predicted score against how
    often the label is true) on each set with category labels; right, its risk on the held-out twins, benign twin
    against unsafe twin (the twins differ only in the harmful element), with the threshold at 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
    draw_reliability(left, {name: (reliability(s, y), "o-") for name, (s, _, y) in scores.items()
                            if len(y) and y.sum() > 0}, f"reliability on sets never trained on: {label}")
    twins = next((v for k, v in risks.items() if k.startswith("own twins")), None)
    if twins is not None:
        r, group = twins
        r = np.maximum(r, 1e-4)  # the lowest bin holds everything below
        bins = np.logspace(-4, np.log10(max(float(r.max()), 2.0)), 40)
        right.hist(r[group != "unsafe"], bins=bins, alpha=0.6, label="benign twin")
        right.hist(r[group == "unsafe"], bins=bins, alpha=0.6, label="unsafe twin")
        right.axvline(1.0, color="black", ls="--", lw=1, label="flagged from here")
        right.set_xscale("log")
        right.set_xlabel("risk: max over categories of score / threshold")
        right.set_ylabel("prompts")
        right.set_title("held-out twins: the same prompt with and without the harmful element", fontsize=9)
        right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def flagged_shares(risks: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, dict[str, float]]:
    """{set: {group: % flagged}} at the policy's prompt thresholds (no prompt rule: never fires)."""
    return {name: {g: round(100 * float((r[group == g] >= 1).mean()), 1)
                   for g in ("benign", "hard-negative", "unsafe") if (group == g).any()}
            for name, (r, group) in risks.items()}


def redteam_cases() -> list[dict]:
    """The committed red-team cases (`evaluation/redteam_cases.jsonl`), each with its `prompt` and `status`."""
    return [json.loads(line) for line in CASES.read_text().splitlines() if line.strip()]


def fixed_case_prompts() -> list[str]:
    """The prompts of the red-team cases marked `fixed` (the rule's replay: each must stay caught)."""
    return [c["prompt"] for c in redteam_cases() if c["status"] == "fixed"]


def redteam_caught(weights: Path, policy: Path, window: int | None) -> dict[str, str]:
    """{"fixed": "caught/n", "open": "caught/n"}: the committed red-team cases the file flags at its policy's
    prompt thresholds (a fixed case must be caught; an open one is a bypass still open for the shipped model)."""
    cases = redteam_cases()
    flagged = risk([c["prompt"] for c in cases], weights, policy, window) >= 1
    status = np.array([c["status"] for c in cases])
    return {s: f"{int(flagged[status == s].sum())}/{int((status == s).sum())}" for s in ("fixed", "open")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs=4, type=Path, help="WEIGHTS_A POLICY_A WEIGHTS_B POLICY_B")
    ap.add_argument("--window-a", type=int, default=0, help="A's screening window in tokens (0: whole prompt)")
    ap.add_argument("--window-b", type=int, default=PROMPT_WINDOW, help="B's screening window (0: whole prompt)")
    ap.add_argument("--all", action="store_true", help="every unseen set, the eval-set copies included")
    ap.add_argument("--max-rows", type=int, default=0, help="a seeded sample of each larger set (0: all)")
    ap.add_argument("--plot", type=Path, help="B's reliability diagram and twin separation, as a PNG")
    ap.add_argument("--also-b", type=Path, action="append", default=[], metavar="POLICY",
                    help="B's weights at another policy's thresholds too, one more column each (B is scored once)")
    args = ap.parse_args()
    for policy in (args.files[1], args.files[3], *args.also_b):
        thresholds_of(policy)  # a bad policy file is named before minutes of scoring
    sa = set_scores(args.files[0], window=args.window_a or None, every=args.all, max_rows=args.max_rows)
    sb = set_scores(args.files[2], window=args.window_b or None, every=args.all, max_rows=args.max_rows)
    b_policies = [args.files[3], *args.also_b]
    a, bs = set_risks(sa, args.files[1]), [set_risks(sb, p) for p in b_policies]
    b = bs[0]
    if args.plot:
        plot(sb, b, args.files[2].name, args.plot)
    fa, fbs = flagged_shares(a), [flagged_shares(x) for x in bs]
    names = ["B"] + [f"B at {p.name}" for p in args.also_b]
    print("| set | A: flagged by group | " + " | ".join(f"{n}: flagged by group" for n in names) + " |")
    print("| --- " * (2 + len(names)) + "|")
    for name in a:
        print(f"| {name} | {fa[name]} | " + " | ".join(str(f[name]) for f in fbs) + " |")
    ra = redteam_caught(*args.files[:2], window=args.window_a or None)
    rbs = [redteam_caught(args.files[2], p, window=args.window_b or None) for p in b_policies]
    print(f"| red-team cases caught | {ra} | " + " | ".join(str(r) for r in rbs) + " |")
    print("\n| set | ranking, A / B |\n| --- | --- |")
    for name in a:
        if (line := ranking(a[name], b[name])) is not None:
            print(f"| {name} | {line} |")


if __name__ == "__main__":
    main()
