"""`t2iguard eval prompt-classifier`: the served prompt_guard (normaliser -> ONNX classifier ->
policy, run in-process on a built repository) against the better-profanity keyword blocklist,
in the same run, on the same prompts.

Sets: the generated test split (in distribution), the hand-written held-out test prompts
(`training/data/test_prompts.tsv`, never trained or tuned on), the same with every obfuscation
applied, and the hand-written development prompts (`dev_prompts*.tsv`, used for error analysis).
Writes `report.md`, `metrics.json` and `plot.png` under the output directory.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from t2iguard.contract import specs as S
from t2iguard.contract.policy import load_policy
from t2iguard.contract.profiles import load_profile
from t2iguard.contract.report import PromptScreen
from t2iguard.contract.taxonomy import CATEGORIES
from t2iguard.runtime.runners import LocalRunner, screen_prompts
from t2iguard.training.data.obfuscate import KINDS, obfuscate
from t2iguard.training.data.prompts import generate, split_of

DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Row:
    group: str  # benign | over-refusal (hard-negative) | unsafe
    labels: frozenset[str]
    prompt: str
    obfuscation: str = ""


def load_tsv(path: Path) -> list[Row]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        group, cats, prompt = line.split("\t")
        rows.append(Row(group, frozenset() if cats == "-" else frozenset(cats.split(",")), prompt))
    return rows


def obfuscated(rows: list[Row], seed: int) -> list[Row]:
    """Every row under every obfuscation (rows an obfuscation leaves unchanged are skipped)."""
    rng = random.Random(seed)
    out = []
    for r in rows:
        for kind in KINDS:
            text = obfuscate(r.prompt, kind, rng)
            if text != r.prompt:
                out.append(Row(r.group, r.labels, text, kind))
    return out


def eval_sets(seed: int = 0) -> dict[str, list[Row]]:
    generated = [Row("over-refusal" if e.group == "hard-negative" else e.group, e.labels, e.text, e.obfuscation)
                 for e in generate(seed, benign=8000, hard=5000) if split_of(e.text) == "test"]
    test = load_tsv(DATA / "test_prompts.tsv")
    return {
        "held-out (hand-written)": test,
        "held-out, obfuscated": obfuscated(test, seed),
        "generated test split": generated,
        "development (hand-written)": load_tsv(DATA / "dev_prompts.tsv") + load_tsv(DATA / "dev_prompts_2.tsv"),
    }


def screen_local(runner: LocalRunner, prompts: list[str]) -> list[PromptScreen]:
    """prompt_guard in-process, in batches of its spec's max_batch_size (as a server batches)."""
    return screen_prompts(runner.infer, prompts, runner.specs[S.PROMPT_GUARD].max_batch_size)


def binary_metrics(rows: list[Row], flagged: list[bool]) -> dict[str, float | int]:
    f = np.array(flagged)
    g = np.array([r.group for r in rows])
    m: dict[str, float | int] = {"n": len(rows)}
    for group, key in (("benign", "fpr_benign"), ("over-refusal", "fpr_over_refusal"), ("unsafe", "recall_unsafe")):
        if (g == group).any():
            m[key] = float(f[g == group].mean())
            m[f"n_{group}"] = int((g == group).sum())
    kinds = sorted({r.obfuscation for r in rows if r.obfuscation and r.group == "unsafe"})
    for kind in kinds:
        sel = np.array([r.obfuscation == kind and r.group == "unsafe" for r in rows])
        m[f"recall_{kind}"] = float(f[sel].mean())
    return m


def category_metrics(rows: list[Row], screens: list[PromptScreen]) -> dict[str, dict[str, float]]:
    out = {}
    for cat in CATEGORIES:
        truth = np.array([cat in r.labels for r in rows])
        pred = np.array([cat in s.flagged for s in screens])
        tp, fp, fn = int((truth & pred).sum()), int((~truth & pred).sum()), int((truth & ~pred).sum())
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        out[cat] = {"precision": p, "recall": r, "f1": f1, "support": int(truth.sum())}
    return out


def _latency(fn, prompts: list[str], n: int = 100) -> float:
    times = []
    for p in (prompts * (n // max(len(prompts), 1) + 1))[:n]:
        t0 = time.perf_counter()
        fn(p)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def evaluate(repository: Path, out: Path, seed: int = 0, say=lambda msg: None) -> dict:
    from better_profanity import profanity

    profanity.load_censor_words()
    profile = load_profile(repository)
    policy = load_policy(repository / "policy.yaml")
    runner = LocalRunner(repository, profile, policy)
    results: dict = {"policy_version": policy.version, "sets": {}}
    for name, rows in eval_sets(seed).items():
        say(f"screening {name} ({len(rows)} prompts)")
        prompts = [r.prompt for r in rows]
        screens = screen_local(runner, prompts)
        ours = [s.decision != "allow" for s in screens]
        keyword = [profanity.contains_profanity(p) for p in prompts]
        results["sets"][name] = {
            "t2iguard": binary_metrics(rows, ours), "better-profanity": binary_metrics(rows, keyword),
            "categories": category_metrics(rows, screens) if "obfuscated" not in name else None}
        results["sets"][name]["errors"] = [
            {"prompt": r.prompt, "group": r.group, "labels": sorted(r.labels), "flagged": s.flagged,
             "top": max(s.scores.items(), key=lambda kv: kv[1])}
            for r, s, f in zip(rows, screens, ours, strict=True) if f != (r.group == "unsafe")][:40]
    sample = [r.prompt for r in load_tsv(DATA / "test_prompts.tsv")[:50]]
    results["latency_ms_p50"] = {
        "t2iguard (in-process: normalise + ONNX classifier + policy, 1 prompt)":
            _latency(lambda p: screen_local(runner, [p]), sample),
        "better-profanity (1 prompt)": _latency(profanity.contains_profanity, sample),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(results, indent=2))
    (out / "report.md").write_text(render_report(results))
    plot(results, out / "plot.png")
    return results


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def render_report(results: dict) -> str:
    lines = [f"# Prompt classifier evaluation (policy {results['policy_version']})", "",
             "A prompt counts as flagged when the policy's decision is not `allow` (block or rewrite; what",
             "`t2iguard screen` reports), or when the keyword list reports profanity (better-profanity).", "",
             "| set | system | FPR benign | FPR risky-looking benign | recall unsafe | n |",
             "|---|---|---|---|---|---|"]
    for name, res in results["sets"].items():
        for system in ("t2iguard", "better-profanity"):
            m = res[system]
            lines.append(f"| {name} | {system} | {_pct(m.get('fpr_benign'))} | {_pct(m.get('fpr_over_refusal'))} | "
                         f"{_pct(m.get('recall_unsafe'))} | {m['n']} |")
    obf = results["sets"]["held-out, obfuscated"]
    kinds = sorted(k[len("recall_"):] for k in obf["t2iguard"] if k.startswith("recall_") and k != "recall_unsafe")
    lines += ["", "Recall on the held-out unsafe prompts per obfuscation:", "",
              "| system | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    for system in ("t2iguard", "better-profanity"):
        lines.append(f"| {system} | " + " | ".join(_pct(obf[system][f"recall_{k}"]) for k in kinds) + " |")
    for name in ("held-out (hand-written)", "generated test split"):
        lines += ["", f"Per category, {name} (t2iguard):", "", "| category | precision | recall | F1 | support |",
                  "|---|---|---|---|---|"]
        for cat, m in results["sets"][name]["categories"].items():
            lines.append(f"| {cat} | {_pct(m['precision'])} | {_pct(m['recall'])} | {_pct(m['f1'])} | "
                         f"{m['support']} |")
    lines += ["", "Latency, p50 per prompt on this machine:", "", "| system | ms |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in results["latency_ms_p50"].items()]
    lines += ["", "Errors on the held-out set (t2iguard):", ""]
    lines += [f"- [{e['group']}] {e['prompt']} -> flagged {e['flagged'] or '-'}, top {e['top'][0]} {e['top'][1]:.2f}"
              for e in results["sets"]["held-out (hand-written)"]["errors"]]
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = ["held-out (hand-written)", "held-out, obfuscated", "generated test split"]
    metrics = [("fpr_benign", "FPR benign"), ("fpr_over_refusal", "FPR risky-looking benign"),
               ("recall_unsafe", "recall unsafe")]
    fig, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 3.6), sharey=True)
    for ax, name in zip(axes, sets, strict=True):
        x = np.arange(len(metrics))
        for i, (system, color) in enumerate((("t2iguard", "#2b7bb9"), ("better-profanity", "#d95f02"))):
            vals = [results["sets"][name][system].get(k, np.nan) for k, _ in metrics]
            ax.bar(x + (i - 0.5) * 0.38, vals, 0.38, label=system, color=color)
        ax.set_xticks(x, [label for _, label in metrics], rotation=15, fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.set_ylim(0, 1)
    axes[0].legend(fontsize=8)
    fig.suptitle("prompt screening: t2iguard vs keyword blocklist")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
