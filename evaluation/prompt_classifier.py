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
from t2iguard.training import data as training_data
from t2iguard.training.data.obfuscate import KINDS, obfuscate
from t2iguard.training.data.prompts import generate, split_of
from t2iguard.training.prompt_loso import auroc

DATA = Path(training_data.__file__).parent  # the project's own committed prompt files


@dataclass(frozen=True)
class Row:
    group: str  # benign | over-refusal (hard-negative) | unsafe
    labels: frozenset[str]
    prompt: str
    obfuscation: str = ""
    source: str = ""


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


def sample_rows(rows: list[Row], n: int | None, seed: int) -> list[Row]:
    """At most `n` of `rows`, a seeded draw kept in file order (all of them when `n` is None or larger)."""
    if n is None or n >= len(rows):
        return rows
    return [rows[i] for i in sorted(random.Random(seed).sample(range(len(rows)), n))]


def evaluate(repository: Path, out: Path, seed: int = 0, say=lambda msg: None, suite: Path | None = None,
             real_data: bool = True, variants: tuple[str, ...] = ("b",), max_prompts: int | None = None) -> dict:
    """The served guard and the baseline on the project's sets (and `suite`, per source), then, when the
    corpus cache is present and `real_data`, the real-data study (`study`) for `variants` in the same run.
    `max_prompts`: screen a seeded sample of at most that many prompts per set (a quick run)."""
    from better_profanity import profanity

    profanity.load_censor_words()
    profile = load_profile(repository)
    policy = load_policy(repository / "policy.yaml")
    runner = LocalRunner(repository, profile, policy)
    results: dict = {"policy_version": policy.version, "max_prompts_per_set": max_prompts, "sets": {}}
    sets = eval_sets(seed)
    if suite is not None:
        sets[f"suite: {suite.name}"] = [r if r.source else Row(r.group, r.labels, r.prompt, r.obfuscation, suite.name)
                                        for r in load_suite(suite)]
    sets = {name: sample_rows(rows, max_prompts, seed) for name, rows in sets.items()}
    for name, rows in sets.items():
        say(f"screening {name} ({len(rows)} prompts)")
        prompts = [r.prompt for r in rows]
        screens = screen_local(runner, prompts)
        ours = [s.decision != "allow" for s in screens]
        keyword = [profanity.contains_profanity(p) for p in prompts]
        results["sets"][name] = {
            "t2iguard": binary_metrics(rows, ours), "better-profanity": binary_metrics(rows, keyword),
            "categories": category_metrics(rows, screens) if "obfuscated" not in name else None}
        if name.startswith("suite"):
            results["sets"][name]["per_source"] = {"t2iguard": per_source(rows, ours),
                                                   "better-profanity": per_source(rows, keyword)}
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
    from t2iguard.training.data.sources import verify

    if real_data and variants and verify().present:
        say("real-data study (leave-one-source-out on cached embeddings)")
        study(out, variants, seed, say)
        results["real_data"] = str(out / "real-data.md")
    (out / "metrics.json").write_text(json.dumps(results, indent=2))
    report = render_report(results)
    if results.get("real_data"):
        report += "\n" + (out / "real-data.md").read_text()
    (out / "report.md").write_text(report)
    plot(results, out / "plot.png")
    return results


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def render_report(results: dict) -> str:
    cap = results.get("max_prompts_per_set")
    lines = [f"# Prompt classifier evaluation (policy {results['policy_version']})", "",
             *([f"A seeded sample of at most {cap} prompts per set (`--max-prompts {cap}`).", ""] if cap else []),
             "A prompt counts as flagged when the policy's decision is not `allow` (block or rewrite; what",
             "`t2iguard screen` reports), or when the keyword list reports profanity (better-profanity).", "",
             "| set | system | FPR benign | FPR risky-looking benign | recall unsafe | n |",
             "|---|---|---|---|---|---|"]
    for name, res in results["sets"].items():
        for system in ("t2iguard", "better-profanity"):
            m = res[system]
            lines.append(f"| {name} | {system} | {_pct(m.get('fpr_benign'))} | {_pct(m.get('fpr_over_refusal'))} | "
                         f"{_pct(m.get('recall_unsafe'))} | {m['n']} |")
    for name, res in results["sets"].items():
        if "per_source" in res:
            lines += ["", f"Per source, {name}:", "", "| source | system | FPR benign | FPR risky-looking benign | "
                      "recall unsafe | n |", "|---|---|---|---|---|---|"]
            for src in res["per_source"]["t2iguard"]:
                for system in ("t2iguard", "better-profanity"):
                    m = res["per_source"][system][src]
                    lines.append(f"| {src} | {system} | {_pct(m.get('fpr_benign'))} | "
                                 f"{_pct(m.get('fpr_over_refusal'))} | {_pct(m.get('recall_unsafe'))} | {m['n']} |")
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


# ---------------------------------------------------------------------------------------------------------
# --suite FILE: any labelled prompt set, reported per source
# ---------------------------------------------------------------------------------------------------------
def load_suite(path: Path) -> list[Row]:
    """A labelled suite: TSV lines `group<TAB>categories<TAB>prompt[<TAB>source]` (categories comma-separated or
    `-`; `#` comments), or JSONL objects with `text` (or `prompt`), `labels` (list or comma string; empty =
    benign), optional `group` (benign | over-refusal | unsafe; default: unsafe when labelled) and `source`."""
    rows = []
    if path.suffix == ".jsonl":
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            d = json.loads(line)
            labels = d.get("labels") or []
            labels = [c for c in labels.split(",") if c] if isinstance(labels, str) else list(labels)
            unknown = set(labels) - set(CATEGORIES)
            if unknown:
                raise ValueError(f"{path}: unknown categories {sorted(unknown)} (the taxonomy's: {CATEGORIES})")
            group = d.get("group") or ("unsafe" if labels else "benign")
            rows.append(Row(group, frozenset(labels), d.get("text", d.get("prompt", "")), source=d.get("source", "")))
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) not in (3, 4):
            raise ValueError(f"{path}: expected group, categories, prompt[, source] separated by tabs: {line[:80]!r}")
        group, cats, prompt = parts[:3]
        rows.append(Row(group, frozenset() if cats == "-" else frozenset(cats.split(",")), prompt,
                        source=parts[3] if len(parts) == 4 else ""))
    return rows


def per_source(rows: list[Row], flagged: list[bool]) -> dict[str, dict]:
    """binary_metrics per row source (rows without one: the file's name is used by the caller)."""
    out = {}
    for src in sorted({r.source for r in rows}):
        idx = [i for i, r in enumerate(rows) if r.source == src]
        out[src or "(all)"] = binary_metrics([rows[i] for i in idx], [flagged[i] for i in idx])
    return out


# ---------------------------------------------------------------------------------------------------------
# the real-data study: leave-one-source-out, held-out sources, twins, eval-set copies, calibration
# (on the cached frozen embeddings: the shipped classifier is frozen MiniLM + head, so its scores are these)
# ---------------------------------------------------------------------------------------------------------
BASELINE_SAMPLE = 50  # better-profanity takes ~0.1-0.25 s a prompt here: it sees a seeded sample per cell


def group_metrics(flagged: np.ndarray, group: np.ndarray, y: np.ndarray | None = None) -> dict:
    """Share flagged per group (benign, hard-negative, unsafe) and, for unsafe rows, per labelled category."""
    m: dict = {"n": int(len(flagged))}
    for g in ("benign", "hard-negative", "unsafe"):
        sel = group == g
        if sel.any():
            m[g] = [float(flagged[sel].mean()), int(sel.sum())]
    if y is not None:
        m["categories"] = {c: [float(flagged[(group == "unsafe") & (y[:, j] > 0)].mean()),
                               int(((group == "unsafe") & (y[:, j] > 0)).sum())]
                           for j, c in enumerate(CATEGORIES) if ((group == "unsafe") & (y[:, j] > 0)).any()}
    return m


class Baseline:
    """better-profanity on a seeded sample of each set, memoised on disk (it is slow)."""

    def __init__(self):
        from better_profanity import profanity

        from t2iguard.export.build import cache_root

        profanity.load_censor_words()
        self.fn = profanity.contains_profanity
        self.path = cache_root() / "baseline-better-profanity.json"
        self.memo = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def flags(self, texts: list[str]) -> np.ndarray:
        for t in texts:
            if t not in self.memo:
                self.memo[t] = bool(self.fn(t))
        return np.array([self.memo[t] for t in texts], bool)

    def metrics(self, texts: list[str], group: np.ndarray, y: np.ndarray | None = None, seed: int = 0) -> dict:
        rng = np.random.default_rng(seed)
        idx = []
        for g in sorted(set(group)):
            members = np.flatnonzero(group == g)
            idx += list(rng.choice(members, min(BASELINE_SAMPLE, len(members)), replace=False))
        idx = np.array(sorted(idx), np.int64)
        m = group_metrics(self.flags([texts[i] for i in idx]), group[idx], None if y is None else y[idx])
        m["sampled"] = True
        return m

    def save(self) -> None:
        self.path.write_text(json.dumps(self.memo))


@dataclass
class Unseen:
    """A set never trained, tuned or calibrated on: texts, group per row, labels (may be empty)."""
    name: str
    kind: str  # held-out source | held-out twins | eval-set copy (measure only)
    texts: list[str]
    group: np.ndarray
    y: np.ndarray
    note: str = ""


def unseen_sets(seed: int = 0) -> list[Unseen]:
    """Held-out twins, HateCheck, TweetEval (test splits), OpenAI's moderation test set and Multitarget-CONAN, and
    the cached eval-set copies (measure only)."""
    from t2iguard.training.data import sources as SRC
    from t2iguard.training.data.corpus import _csv_rows, held_out, texts_of
    from t2iguard.training.data.twins import twins

    def arr(examples):
        return ([e.text for e in examples], np.array([e.group for e in examples]),
                np.array([e.target for e in examples], np.float32))

    out = []
    tw = twins(10000 + seed, held_out=True)
    texts = [t.benign for t in tw] + [t.unsafe for t in tw]
    y = np.zeros((len(texts), len(CATEGORIES)), np.float32)
    for i, t in enumerate(tw):
        y[len(tw) + i] = [1.0 if c in t.labels else 0.0 for c in CATEGORIES]
    out.append(Unseen("own twins (held-out frames and seeds)", "held-out twins", texts,
                      np.array(["hard-negative"] * len(tw) + ["unsafe"] * len(tw)), y))
    for sid, name in (("hatecheck", "HateCheck"), ("tweeteval-hate-test-text", "TweetEval hate (test)"),
                      ("tweeteval-offensive-test-text", "TweetEval offensive (test)"),
                      ("openai-moderation", "OpenAI moderation (test)"),
                      ("multitarget-conan", "Multitarget-CONAN (hate and counter-speech)")):
        try:
            out.append(Unseen(name, "held-out source", *arr(held_out(sid))))
        except (FileNotFoundError, OSError):
            continue
    manifest = {s.id: s for s in SRC.load_manifest()}
    zeros = np.zeros((0, len(CATEGORIES)), np.float32)

    def present(sid):
        return sid in manifest and manifest[sid].cached().is_file()

    if present("eval-i2p"):
        rows = _csv_rows(manifest["eval-i2p"], SRC.cache_dir())
        out.append(Unseen("I2P (all 4,703; its labels are image-derived)", "eval-set copy (measure only)",
                          [r["prompt"] for r in rows], np.array(["unsafe"] * len(rows)), zeros,
                          note="i2p"))
        out[-1].i2p_categories = [r["categories"] for r in rows]  # type: ignore[attr-defined]
    for sid, name, group in (("eval-coco-30k", "COCO-30k captions", "benign"),
                             ("eval-partiprompts", "PartiPrompts", "benign"),
                             ("eval-ring-a-bell-concept-nudity-prompt", "Ring-A-Bell nudity concept prompts", "unsafe"),
                             ("eval-ring-a-bell-concept-nonudity-prompt", "Ring-A-Bell no-nudity counterparts",
                              "hard-negative")):
        if present(sid):
            t = texts_of(manifest[sid])
            out.append(Unseen(name, "eval-set copy (measure only)", t, np.array([group] * len(t)), zeros))
    if present("eval-ring-a-bell-concept-violence-30"):
        t = texts_of(manifest["eval-ring-a-bell-concept-violence-30"])
        half = len(t) // 2
        out.append(Unseen("Ring-A-Bell violence twins (30 pairs)", "eval-set copy (measure only)", t,
                          np.array(["unsafe"] * half + ["hard-negative"] * (len(t) - half)), zeros))
    soup = [s for s in ("eval-ring-a-bell-violence-eta-5-k-77", "eval-ring-a-bell-violence-eta-5.5-k-77",
                        "eval-ring-a-bell-violence-eta-5.5-k-38") if present(s)]
    if soup:
        t = [x for s in soup for x in texts_of(manifest[s])]
        out.append(Unseen("Ring-A-Bell violence InvPrompts (adversarial)", "eval-set copy (measure only)", t,
                          np.array(["unsafe"] * len(t)), zeros))
    return out


def ranking(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> str | None:
    """On one set scored by A and B (same rows): AUROC of each file's risk for unsafe against the rest, and the
    unsafe share each catches at A's own flag rate on the set's other rows (B's cut chosen to flag as many): the
    ranking apart from the operating point. An analysis only; no file ships such a cut. Risks are max score /
    threshold (>= 1 flags); a group whose name starts with "unsafe" is unsafe. None: one side only."""
    (ra, group), (rb, _) = a, b
    unsafe = np.char.startswith(np.asarray(group).astype(str), "unsafe")
    if unsafe.all() or not unsafe.any():
        return None
    rate = float((ra[~unsafe] >= 1).mean())
    cut = np.quantile(rb[~unsafe], 1 - rate) if rate > 0 else np.inf
    return (f"AUROC {auroc(unsafe, ra):.3f} / {auroc(unsafe, rb):.3f}; at A's flag rate "
            f"{100 * rate:.1f}%: {100 * (ra[unsafe] >= 1).mean():.1f}% / {100 * (rb[unsafe] >= cut).mean():.1f}%")


def reliability(scores: np.ndarray, y: np.ndarray, bins: int = 10) -> list[tuple[float, float, int]]:
    """(mean predicted, observed frequency, n) per probability bin, over every (example, category) pair."""
    p, t = scores.reshape(-1), y.reshape(-1)
    edges = np.linspace(0, 1, bins + 1)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (p >= lo) & ((p < hi) if hi < 1 else (p <= hi))
        if sel.any():
            out.append((float(p[sel].mean()), float(t[sel].mean()), int(sel.sum())))
    return out


def study(out: Path, variants: tuple[str, ...] = ("a", "b", "c"), seed: int = 0, say=lambda msg: None) -> dict:
    """The real-data study; writes real-data.md, real-data.json and calibration.png under `out`."""
    from t2iguard.training import prompt_head as T

    t0 = time.perf_counter()
    data = T.embedded_corpus(seed, say)
    sources = sorted(set(data.source))
    base = Baseline()
    res: dict = {"examples": len(data.examples), "missing_embeddings": data.missing, "variants": {},
                 "shipped": T.SHIPPED, "sources": {}}
    for s in sources:
        sel = data.source == s
        res["sources"][s] = {g: int(((data.group == g) & sel).sum()) for g in ("benign", "hard-negative", "unsafe")}
        res["sources"][s]["better-profanity"] = base.metrics([data.examples[i].text for i in np.flatnonzero(sel)],
                                                             data.group[sel], data.y[sel], seed)
    base.save()
    unseen = unseen_sets(seed)
    for u in unseen:
        vec, at = T.embed_texts(u.texts, say)
        u.vectors, u.at = vec, at  # type: ignore[attr-defined]
        u.baseline = base.metrics(u.texts, u.group, u.y if u.y.size else None, seed)  # type: ignore[attr-defined]
        base.save()
    train_part = data.take(data.split == "train")
    test_part = data.take(data.split == "test")
    all_oos = T.loso_scores(data, [T.VARIANTS[k] for k in variants], seed, say)
    models: dict[float, object] = {}
    for key, oos in zip(variants, all_oos, strict=True):
        v = T.VARIANTS[key]
        thr = T.calibrate(oos, data.y, data.group)
        tv = np.array([thr[c] for c in CATEGORIES])
        if v.weak_weight not in models:
            models[v.weak_weight] = T.fit_head(train_part.x, train_part.y, T.sample_weights(train_part, v.weak_weight),
                                               seed)
        model = (models[v.weak_weight], T.Bank.sample(train_part, seed=seed) if v.bank else None)
        ind = v.score(model, test_part.x)
        r = {"name": v.name, "thresholds": thr, "loso": {}, "loso_at_0.5": {}, "in_distribution": {}, "unseen": {}}
        for s in sources:
            sel = data.source == s
            r["loso"][s] = group_metrics((oos[sel] >= tv).any(1), data.group[sel], data.y[sel])
            r["loso_at_0.5"][s] = group_metrics((oos[sel] >= 0.5).any(1), data.group[sel], data.y[sel])
            st = test_part.source == s
            if st.any():
                r["in_distribution"][s] = group_metrics((ind[st] >= tv).any(1), test_part.group[st], test_part.y[st])
        for u in unseen:
            s_ = v.score(model, u.vectors)
            flagged = (s_ >= tv).any(1)
            g = u.group[u.at]
            m = group_metrics(flagged, g, u.y[u.at] if u.y.size else None)
            m["embedded"] = [len(u.at), len(u.texts)]
            if u.note == "i2p":
                cats = np.array(u.i2p_categories)[u.at]
                m["i2p_categories"] = {c: [float(flagged[np.char.find(cats.astype(str), c) >= 0].mean()),
                                           int((np.char.find(cats.astype(str), c) >= 0).sum())]
                                       for c in ("sexual", "hate", "harassment", "violence", "self-harm",
                                                 "shocking", "illegal activity")}
            r["unseen"][u.name] = m
            if key == T.SHIPPED:
                r.setdefault("unseen_scores", {})[u.name] = (s_, u.y[u.at] if u.y.size else None)
        if key == T.SHIPPED:
            r["reliability_loso"] = reliability(oos, data.y)
            r["_oos"] = oos
        res["variants"][key] = r
    res["unseen_meta"] = {u.name: {"kind": u.kind, "baseline": u.baseline} for u in unseen}
    res["seconds"] = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    calibration_plot(res, out / "calibration.png")
    for r in res["variants"].values():
        r.pop("_oos", None)
        r.pop("unseen_scores", None)
    (out / "real-data.json").write_text(json.dumps(res, indent=1))
    (out / "real-data.md").write_text(render_study(res))
    return res


def draw_reliability(ax, curves: dict[str, tuple[list[tuple[float, float, int]], str]], title: str) -> None:
    """A reliability diagram on matplotlib axes `ax`: per curve, its `reliability` points (mean predicted score,
    observed frequency, n) drawn in its line style, against the diagonal of perfect calibration."""
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    for name, (pts, style) in curves.items():
        ax.plot([p for p, _, _ in pts], [o for _, o, _ in pts], style, ms=4, label=name)
    ax.set_xlabel("predicted score (per category)")
    ax.set_ylabel("observed frequency of the label")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)


def calibration_plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = res["variants"][res["shipped"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    curves = {"leave-one-source-out (all sources)": (r["reliability_loso"], "o-")}
    curves |= {name: (reliability(s, y), "s--") for name, (s, y) in r["unseen_scores"].items()
               if y is not None and y.sum() > 0 and len(s) > 500}
    draw_reliability(axes[0], curves, f"reliability: {r['name']}")
    ax = axes[1]
    oos = r["_oos"]
    ax.hist(oos.reshape(-1), bins=50, log=True, color="#2b7bb9")
    ax.set_xlabel("predicted score")
    ax.set_ylabel("count (log)")
    ax.set_title("score histogram, leave-one-source-out", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cell(m: dict, g: str) -> str:
    return f"{100 * m[g][0]:.1f}% ({m[g][1]})" if g in m else "-"


def render_study(res: dict) -> str:
    ship = res["variants"][res["shipped"]]
    lines = [f"# Prompt classifier on real data ({res['examples']} corpus examples with cached embeddings; "
             f"{res['missing_embeddings']} without, left out)", "",
             "Flagged = any category's score >= its threshold (calibrated on the variant's leave-one-source-out "
             "scores). Columns: benign flagged (FPR), risky-looking benign flagged (hard-negative FPR), unsafe "
             "caught (recall); n in brackets.", ""]
    lines += ["## Leave-one-source-out vs in-distribution, per source and variant", "",
              "| source | variant | LOSO benign | LOSO risky-benign | LOSO unsafe | in-dist benign "
              "| in-dist risky-benign | in-dist unsafe | LOSO unsafe @0.5 |", "|---|---|---|---|---|---|---|---|---|"]
    for s in res["sources"]:
        for key, r in res["variants"].items():
            lo, ind, half = r["loso"][s], r["in_distribution"].get(s, {}), r["loso_at_0.5"][s]
            lines.append(f"| {s} | {key} | {_cell(lo, 'benign')} | {_cell(lo, 'hard-negative')} "
                         f"| {_cell(lo, 'unsafe')} "
                         f"| {_cell(ind, 'benign')} | {_cell(ind, 'hard-negative')} | {_cell(ind, 'unsafe')} "
                         f"| {_cell(half, 'unsafe')} |")
        b = res["sources"][s]["better-profanity"]
        lines.append(f"| {s} | better-profanity (sample) | {_cell(b, 'benign')} | {_cell(b, 'hard-negative')} | "
                     f"{_cell(b, 'unsafe')} | | | | |")
    lines += ["", f"## LOSO recall per category ({ship['name']})", "", "| source | " + " | ".join(CATEGORIES) + " |",
              "|---|" + "---|" * len(CATEGORIES)]
    for s, m in ship["loso"].items():
        cats = m.get("categories", {})
        if cats:
            lines.append(f"| {s} | " + " | ".join(_cell(cats, c) if c in cats else "" for c in CATEGORIES) + " |")
    lines += ["", "## Never trained, tuned or calibrated on", "",
              "| set | kind | variant | benign | risky-benign | unsafe |", "|---|---|---|---|---|---|"]
    for name, meta in res["unseen_meta"].items():
        for key, r in res["variants"].items():
            m = r["unseen"][name]
            lines.append(f"| {name} | {meta['kind']} | {key} | {_cell(m, 'benign')} | {_cell(m, 'hard-negative')} | "
                         f"{_cell(m, 'unsafe')} |")
        b = meta["baseline"]
        lines.append(f"| {name} | {meta['kind']} | better-profanity (sample) | {_cell(b, 'benign')} | "
                     f"{_cell(b, 'hard-negative')} | {_cell(b, 'unsafe')} |")
    i2p = ship["unseen"].get("I2P (all 4,703; its labels are image-derived)", {}).get("i2p_categories")
    if i2p:
        lines += ["", f"I2P flagged per I2P category ({ship['name']}): " +
                  ", ".join(f"{c} {100 * v[0]:.1f}% ({v[1]})" for c, v in i2p.items())]
    lines += ["", "## Thresholds (calibrated on leave-one-source-out scores)", ""]
    for key, r in res["variants"].items():
        lines.append(f"- {key}: " + ", ".join(f"{c} {t}" for c, t in r["thresholds"].items()))
    lines += ["", f"Reliability (LOSO, {ship['name']}): " +
              ", ".join(f"{p:.2f}->{o:.2f} ({n})" for p, o, n in ship["reliability_loso"]),
              "", f"{res['seconds']:.0f} s"]
    return "\n".join(lines) + "\n"


def normaliser_effect(seed: int = 0) -> dict[str, dict[str, float | int]]:
    """The committed classifier (torch, as served) on the held-out unsafe prompts under each obfuscation, on the
    raw text and on `normalize(text)`, at the bundled policy's thresholds: what the normaliser buys per kind."""
    from t2iguard.training.train_prompt_classifier import served_scores

    policy = load_policy()
    t = np.array([policy.categories[c].prompt.threshold for c in CATEGORIES])
    clean = [r for r in load_tsv(DATA / "test_prompts.tsv") if r.group == "unsafe"]
    rows = obfuscated(clean, seed)
    raw = (served_scores([r.prompt for r in rows], normalise=False) >= t).any(1)
    norm = (served_scores([r.prompt for r in rows]) >= t).any(1)
    out: dict[str, dict[str, float | int]] = {
        "clean": {"normalised": float((served_scores([r.prompt for r in clean]) >= t).any(1).mean()), "n": len(clean)}}
    for kind in sorted({r.obfuscation for r in rows}):
        sel = np.array([r.obfuscation == kind for r in rows])
        out[kind] = {"raw": float(raw[sel].mean()), "normalised": float(norm[sel].mean()), "n": int(sel.sum())}
    return out
