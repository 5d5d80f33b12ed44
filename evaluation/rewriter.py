"""`t2iguard eval rewriter`: the served prompt_rewrite logic (tagger ONNX + rewrite_apply, run
in-process on a built repository) measured on prompts it was not trained on.

- diversity: 20 held-out occupation prompts x 500 seeds; distribution of the inserted descriptors
  per attribute against the policy's configured distribution (entropy ratio, max share);
- no-op precision: prompts that state demographics, name no private person and frame no group
  must come back byte-identical;
- anonymisation: recall of held-out names, addresses, phones, emails (names and streets never in
  training), and the share of public figures, places and brands left intact;
- grounding / neutralising: examples, and how often the prompt classifier still flags the result.
Writes `report.md`, `metrics.json` and `plot.png`.
"""

from __future__ import annotations

import json
import math
import random
import re
import statistics
import time
from collections import Counter
from pathlib import Path

import numpy as np

from t2iguard.contract import specs as S
from t2iguard.contract.policy import Policy, load_policy
from t2iguard.contract.profiles import load_profile
from t2iguard.evaluation.prompt_classifier import screen_local
from t2iguard.runtime.runners import LocalRunner
from t2iguard.runtime.stages import RewriteApply
from t2iguard.runtime.tensors import bytes_column
from t2iguard.runtime.text import tokenize_with_offsets
from t2iguard.training.data import rewrites as D


class Rewriter:
    """The prompt_rewrite ensemble's two halves, so that one tagging serves many seeds."""

    def __init__(self, runner: LocalRunner, profile, policy: Policy):
        self.runner, self.profile, self.apply = runner, profile, RewriteApply(profile, policy)

    def tag(self, prompts: list[str]) -> dict[str, np.ndarray]:
        ids, mask, offsets = tokenize_with_offsets(prompts, self.profile.seq_len)
        out = self.runner.infer(S.REWRITE_TAGGER, {S.INPUT_IDS: ids, S.ATTENTION_MASK: mask},
                                [S.REWRITE_TAG_SCORES, S.TOKEN_TAG_PROBS])
        return {**out, S.TOKEN_OFFSETS: offsets, S.PROMPT: bytes_column(prompts)}

    def rewrite(self, tagged: dict[str, np.ndarray], seeds: np.ndarray) -> list[tuple[str, list[dict]]]:
        out = self.apply({**tagged, S.SEED: seeds.reshape(-1, 1).astype(np.int64)})
        return [(bytes(t).decode(), json.loads(bytes(r))) for t, r in
                zip(out[S.REWRITTEN_PROMPT].reshape(-1), out[S.REWRITES].reshape(-1), strict=True)]


def _entropy(p: dict[str, float]) -> float:
    total = sum(p.values())
    return -sum(v / total * math.log(v / total) for v in p.values() if v > 0)


def diversity(rw: Rewriter, policy: Policy, seeds: int) -> dict:
    prompts = [f"a photo of {'an' if r[0].lower() in 'aeiou' else 'a'} {r}" for r in D.HELDOUT_ROLES]
    tagged = rw.tag(prompts)
    counts = {a: Counter() for a in policy.rewrite.diversity}
    covered = 0
    for i in range(len(prompts)):
        one = {k: np.repeat(v[i:i + 1], seeds, axis=0) for k, v in tagged.items()}
        for _text, rewrites in rw.rewrite(one, np.arange(seeds)):
            inserted = " ".join(r["replacement"] for r in rewrites if r["kind"] == "diversity")
            if inserted:
                covered += 1
            for attribute, dist in policy.rewrite.diversity.items():
                for value in sorted(dist, key=len, reverse=True):
                    adjective = {"woman": "female", "man": "male"}.get(value, value)
                    if f" {adjective} " in f" {inserted} " or f" {value} " in f" {inserted} ":
                        counts[attribute][value] += 1
                        break
    result = {"prompts": len(prompts), "seeds": seeds, "coverage": covered / (len(prompts) * seeds),
              "attributes": {}}
    for attribute, dist in policy.rewrite.diversity.items():
        observed = {v: counts[attribute][v] for v in dist}
        n = sum(observed.values()) or 1
        result["attributes"][attribute] = {
            "configured": {v: w / sum(dist.values()) for v, w in dist.items()},
            "observed": {v: c / n for v, c in observed.items()},
            "entropy_ratio": _entropy(observed) / _entropy(dist) if _entropy(dist) else 1.0,
            "max_share": max(observed.values()) / n,
        }
    return result


#: people words: ordinary prompts containing them are diversity targets, not no-op cases
_PEOPLE = re.compile(r"\b(?:nurse|teacher|students?|firefighters?|skateboarder|chef|farmer|scientist|businesswoman|"
                     r"doctor|dancer|violinist|knight|wizard|samurai|pirate|runner|ballerina|couple|family|"
                     r"grandmother|mother|father|child|boy|girl|man|woman|people|person|band)\b")


def no_op(rw: Rewriter, n: int, seed: int) -> dict:
    """Prompts that state demographics, show public figures/places/brands, or show no people."""
    rng = random.Random(seed)
    makers = (D.stated, D.plain, D.public_or_place)
    prompts = []
    while len(prompts) < n:
        text = makers[len(prompts) % 3](rng).text
        if makers[len(prompts) % 3] is not D.plain or not _PEOPLE.search(text):
            prompts.append(text)
    out = rw.rewrite(rw.tag(prompts), np.arange(n))
    changed = [(p, t) for p, (t, _) in zip(prompts, out, strict=True) if t != p]
    return {"n": n, "unchanged": 1 - len(changed) / n, "examples_changed": changed[:10]}


def anonymisation(rw: Rewriter, n: int, seed: int) -> dict:
    rng = random.Random(seed)
    private = [D.private(rng, heldout=True) for _ in range(n)]
    out = rw.rewrite(rw.tag([e.text for e in private]), np.arange(n))
    found, total, missed = 0, 0, []
    by_label = Counter()
    hit_label = Counter()
    for ex, (text, _) in zip(private, out, strict=True):
        for s, e, label in ex.spans:
            total += 1
            by_label[label] += 1
            if ex.text[s:e] not in text:
                found += 1
                hit_label[label] += 1
            else:
                missed.append((ex.text, ex.text[s:e]))
    public = [D.public_or_place(rng) for _ in range(n)]
    names = D.PLACES + tuple(D.FIGURES)
    out_pub = rw.rewrite(rw.tag([e.text for e in public]), np.arange(n))
    kept = [all(x in t for x in names if x in e.text) for e, (t, _) in zip(public, out_pub, strict=True)]
    return {"n": n, "recall": found / total, "recall_by_label": {k: hit_label[k] / v for k, v in by_label.items()},
            "public_names_kept": float(np.mean(kept)), "missed": missed[:10]}


def grounding(rw: Rewriter, runner: LocalRunner, seed: int) -> dict:
    rng = random.Random(seed)
    risky = sorted(set(D.RISKY_UNDERSPECIFIED))
    framing = [D.framing(rng).text for _ in range(30)]
    rows = []
    for kind, prompts in (("sexualisation-risk", risky), ("negative-group-framing", framing)):
        out = rw.rewrite(rw.tag(prompts), np.arange(len(prompts)))
        rewritten = [t for t, _ in out]
        before = [s.decision != "allow" for s in screen_local(runner, prompts)]
        after = [s.decision != "allow" for s in screen_local(runner, rewritten)]
        changed = [t != p for t, p in zip(rewritten, prompts, strict=True)]
        rows.append({"kind": kind, "n": len(prompts), "rewritten": float(np.mean(changed)),
                     "flagged_before": float(np.mean(before)), "flagged_after": float(np.mean(after)),
                     "examples": list(zip(prompts, rewritten, strict=True))[:6]})
    return {"sets": rows}


def latency(runner: LocalRunner, n: int = 100) -> dict[str, float]:
    prompts = [f"a photo of a {r} at work" for r in D.HELDOUT_ROLES]
    out = {}
    for model, extra in ((S.PROMPT_REWRITE, True), (S.PROMPT_GUARD, False)):
        times = []
        for i in range(n):
            inputs = {S.PROMPT: bytes_column([prompts[i % len(prompts)]])}
            if extra:
                inputs[S.SEED] = np.array([[i]], np.int64)
            t0 = time.perf_counter()
            runner.infer(model, inputs, [S.REWRITTEN_PROMPT] if extra else [S.PROMPT_REPORT])
            times.append((time.perf_counter() - t0) * 1000)
        out[model] = statistics.median(times)
    return out


def evaluate(repository: Path, out: Path, seeds: int = 500, seed: int = 1, say=lambda m: None,
             no_op_prompts: int = 600, anonymisation_prompts: int = 400) -> dict:
    """Every measure above; `seeds` per occupation prompt, and the no-op and anonymisation set sizes."""
    profile = load_profile(repository)
    policy = load_policy(repository / "policy.yaml")
    runner = LocalRunner(repository, profile, policy)
    rw = Rewriter(runner, profile, policy)
    say("diversity")
    results = {"policy_version": policy.version, "diversity": diversity(rw, policy, seeds)}
    say("no-op precision")
    results["no_op"] = no_op(rw, no_op_prompts, seed)
    say("anonymisation")
    results["anonymisation"] = anonymisation(rw, anonymisation_prompts, seed)
    say("grounding")
    results["grounding"] = grounding(rw, runner, seed)
    results["latency_ms_p50_in_process"] = latency(runner)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(results, indent=2))
    (out / "report.md").write_text(render(results))
    plot(results, out / "plot.png")
    return results


def render(r: dict) -> str:
    d = r["diversity"]
    lines = [f"# Rewriter evaluation (policy {r['policy_version']})", "",
             f"## Diversity: {d['prompts']} held-out occupation prompts x {d['seeds']} seeds", "",
             f"Prompts that received descriptors: {100 * d['coverage']:.1f}%", "",
             "| attribute | entropy / configured entropy | max share of one group | observed (configured) |",
             "|---|---|---|---|"]
    for attribute, m in d["attributes"].items():
        shares = ", ".join(f"{v} {100 * m['observed'][v]:.1f}% ({100 * m['configured'][v]:.1f}%)"
                           for v in m["configured"])
        lines.append(f"| {attribute} | {m['entropy_ratio']:.3f} | {100 * m['max_share']:.1f}% | {shares} |")
    n = r["no_op"]
    a = r["anonymisation"]
    lines += ["", "## No-op precision", "",
              f"{100 * n['unchanged']:.1f}% of {n['n']} prompts that state demographics, name no private person "
              "and frame no group came back byte-identical.", "",
              "## Anonymisation (held-out names, streets, phones, emails)", "",
              f"Recall {100 * a['recall']:.1f}% of {a['n']} prompts ("
              + ", ".join(f"{k} {100 * v:.1f}%" for k, v in a["recall_by_label"].items())
              + f"); public figures, places and brands left intact in {100 * a['public_names_kept']:.1f}% of "
              f"{a['n']} prompts.", "", "## Grounding and neutralising", "",
              "| tag | prompts | rewritten | flagged by the prompt classifier before | after |",
              "|---|---|---|---|---|"]
    for g in r["grounding"]["sets"]:
        lines.append(f"| {g['kind']} | {g['n']} | {100 * g['rewritten']:.0f}% | {100 * g['flagged_before']:.0f}% | "
                     f"{100 * g['flagged_after']:.0f}% |")
    lines += ["", "| before | after |", "|---|---|"]
    lines += [f"| {p} | {t} |" for g in r["grounding"]["sets"] for p, t in g["examples"]]
    lines += ["", "## Latency, p50, in-process (one prompt)", "", "| ensemble | ms |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in r["latency_ms_p50_in_process"].items()]
    return "\n".join(lines) + "\n"


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attrs = r["diversity"]["attributes"]
    fig, axes = plt.subplots(1, len(attrs), figsize=(4.5 * len(attrs), 3.4))
    for ax, (attribute, m) in zip(np.atleast_1d(axes), attrs.items(), strict=True):
        values = list(m["configured"])
        x = np.arange(len(values))
        ax.bar(x - 0.2, [m["configured"][v] for v in values], 0.4, label="configured", color="#bbbbbb")
        ax.bar(x + 0.2, [m["observed"][v] for v in values], 0.4, label="observed", color="#2b7bb9")
        ax.set_xticks(x, values, rotation=30, fontsize=8)
        ax.set_title(f"{attribute} (entropy ratio {m['entropy_ratio']:.2f})", fontsize=9)
    np.atleast_1d(axes)[0].legend(fontsize=8)
    d = r["diversity"]
    fig.suptitle(f"diversity augmentation: inserted descriptors, {d['prompts']} held-out occupations x "
                 f"{d['seeds']} seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


