"""`t2iguard eval rewriter`: the served prompt_rewrite logic (tagger ONNX + rewrite_apply, run
in-process on a built repository) measured on prompts it was not trained on.

- diversity: 20 held-out occupation prompts x 500 seeds; distribution of the inserted descriptors
  per attribute against the policy's configured distribution (entropy ratio, max share);
- no-op precision: prompts that state demographics, name no private person and frame no group
  must come back byte-identical;
- anonymisation: recall of held-out names, addresses, phones, emails (names and streets never in
  training), and the share of public figures, places and brands left intact;
- grounding / neutralising: examples, and how often the prompt classifier still flags the result;
- held-out public lists (`public_heldout`, where the sources cache holds them): names never trained on,
  from public first-name and surname lists, in usual and unusual positions (anonymisation recall per
  position); public figures never trained on (left intact); occupations outside every hand list (the
  diversity rewrite fires, and puts its descriptor before the occupation) and the same occupations with
  stated demographics (no-op precision).
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
from t2iguard.training.data.lexicons import Lexicon
from t2iguard.training.data.sources import cache_dir as sources_cache


class Rewriter:
    """The prompt_rewrite ensemble's two halves, so that one tagging serves many seeds."""

    def __init__(self, runner: LocalRunner, profile, policy: Policy):
        self.runner, self.profile, self.apply = runner, profile, RewriteApply(profile, policy)

    def tag(self, prompts: list[str], batch: int = 256) -> dict[str, np.ndarray]:
        """The tagger's outputs for `prompts`, run `batch` prompts at a time, with offsets and prompts."""
        ids, mask, offsets = tokenize_with_offsets(prompts, self.profile.seq_len)
        parts = [self.runner.infer(S.REWRITE_TAGGER, {S.INPUT_IDS: ids[i:i + batch],
                                                      S.ATTENTION_MASK: mask[i:i + batch]},
                                   [S.REWRITE_TAG_SCORES, S.TOKEN_TAG_PROBS]) for i in range(0, len(prompts), batch)]
        out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
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
    private = [D.private(rng, D.HAND_HELDOUT, unusual=False) for _ in range(n)]
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


#: where a held-out name sits in the measured prompts; "usual" is the generator's own positions, the
#: others use wordings the generator does not ("{role}": a held-out occupation, "{place}": a public place)
NAME_POSITIONS = {
    "after a person word": ("a person {name} in the office", "a man {name} waiting at the train station",
                            "someone {name} buying groceries", "the woman {name} at the bus stop"),
    "before an apposition": ("{name}, {a_role}, in the office", "{name}, an old friend, at the airport"),
    "portrait at a public place": ("portrait of {name} at {place}", "a snapshot of {name} in front of {place}"),
    "at the start": ("{name} walking a dog in the park", "{name} reading a newspaper on the train"),
    "at the end": ("a greeting card addressed to {name}", "a handwritten note signed by {name}"),
}
#: held-out public figures in the same kinds of positions: they must stay
FIGURE_POSITIONS = ("a portrait of {name} on a magazine cover", "{name} waving to fans", "a photo of {name} at {place}",
                    "an oil painting of {name}")
#: held-out occupations per position ("{a_role}": "an architect", "{Role}": "Architect")
OCCUPATION_POSITIONS = {"a photo of": "a photo of {a_role}",
                        "in context": "portrait of {a_role} at the end of a long day, 4k",
                        "capitalised, at the start": "{Role} at work"}


def _occurrences(word: str, text: str) -> int:
    return len(re.findall(rf"(?<!\w){re.escape(word)}(?!\w)", text))


def _a(word: str) -> str:
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def heldout_names(lexicon, rng: random.Random) -> list[str]:
    """"First Last" names that use every held-out first name and surname at least once (shuffled, cycled)."""
    first, last = rng.sample(lexicon.first, len(lexicon.first)), rng.sample(lexicon.last, len(lexicon.last))
    return [f"{first[i % len(first)]} {last[i % len(last)]}" for i in range(max(len(first), len(last)))]


def _anonymised(rw: Rewriter, cases: list[tuple[str, str]]) -> tuple[float, list]:
    """(prompt, name) pairs -> (share whose name was removed, up to 10 misses)."""
    out = rw.rewrite(rw.tag([p for p, _ in cases]), np.arange(len(cases)))
    removed = [_occurrences(name, text) < _occurrences(name, p)
               for (p, name), (text, _) in zip(cases, out, strict=True)]
    return float(np.mean(removed)), [c for c, ok in zip(cases, removed, strict=True) if not ok][:10]


def public_names(rw: Rewriter, lex: Lexicon, seed: int) -> dict:
    """Anonymisation recall of the held-out names of `lex` per position; its public figures and public
    places left intact."""
    rng = random.Random(seed)
    names = heldout_names(lex, rng)
    vocab = D.Vocab.of(lex) + D.Vocab(streets=(D.HELDOUT_STREETS,))
    usual = [D.private(rng, vocab, unusual=False) for _ in names]
    cases = {"usual (as in training)": [(e.text, e.text[s:x]) for e in usual for s, x, label in e.spans
                                         if label == "NAME"]}

    def fill(template: str, name: str) -> str:
        return template.format(name=name, a_role=_a(rng.choice(lex.occupations)), place=rng.choice(D.PLACES))

    for position, templates in NAME_POSITIONS.items():
        cases[position] = [(fill(rng.choice(templates), n), n) for n in names]
    lower = [(fill(rng.choice(rng.choice(list(NAME_POSITIONS.values()))), n.lower()), n.lower()) for n in names]
    cases["lowercase, any position"] = lower
    result = {"names": len(names), "first_names": len(lex.first), "surnames": len(lex.last), "recall": {},
              "missed": {}}
    for position, pairs in cases.items():
        result["recall"][position], result["missed"][position] = _anonymised(rw, pairs)
    result["recall_all"] = float(np.mean([result["recall"][k] for k in cases]))
    placed = [(fill(NAME_POSITIONS["portrait at a public place"][0], n), n) for n in names]
    out = rw.rewrite(rw.tag([p for p, _ in placed]), np.arange(len(placed)))
    result["places_kept"] = float(np.mean([any(pl in text for pl in D.PLACES if pl in p)
                                           for (p, _), (text, _) in zip(placed, out, strict=True)]))
    figures = [(fill(rng.choice(FIGURE_POSITIONS), f), f) for f in lex.figures]
    out = rw.rewrite(rw.tag([p for p, _ in figures]), np.arange(len(figures)))
    kept = [_occurrences(f, text) == _occurrences(f, p) for (p, f), (text, _) in zip(figures, out, strict=True)]
    result.update(figures=len(figures), figures_kept=float(np.mean(kept)),
                  figures_changed=[c for c, ok in zip(figures, kept, strict=True) if not ok][:10])
    return result


def public_occupations(rw: Rewriter, lex: Lexicon, seed: int) -> dict:
    """The held-out occupations of `lex`: how often the diversity rewrite fires and puts its descriptor right
    before the occupation, per position; and no-op precision when the prompt already states demographics."""
    rng = random.Random(seed)
    roles = lex.occupations
    result = {"occupations": len(roles), "fires": {}, "placed": {}, "examples": {}}
    for position, tpl in OCCUPATION_POSITIONS.items():
        prompts = [tpl.format(a_role=_a(r), Role=r[:1].upper() + r[1:]) for r in roles]
        starts = [p.lower().index(r.lower()) for p, r in zip(prompts, roles, strict=True)]
        out = rw.rewrite(rw.tag(prompts), np.arange(len(prompts)))
        fired = [[w for w in rewrites if w["kind"] == "diversity"] for _, rewrites in out]
        result["fires"][position] = float(np.mean([bool(f) for f in fired]))
        result["placed"][position] = float(np.mean([any(w["span"] == [s, s] for w in f)
                                                    for f, s in zip(fired, starts, strict=True)]))
        result["examples"][position] = [(p, text) for p, (text, _) in zip(prompts, out, strict=True)][:5]
    stated = [f"a photo of {rng.choice(D.DEMOGRAPHIC)} {r}{rng.choice(D.ROLE_CONTEXTS)}" for r in roles]
    out = rw.rewrite(rw.tag(stated), np.arange(len(stated)))
    changed = [(p, text) for p, (text, _) in zip(stated, out, strict=True) if text != p]
    result.update(stated_unchanged=1 - len(changed) / len(stated), stated_changed=changed[:10])
    return result


def public_heldout(rw: Rewriter, seed: int, limit: int | None = None) -> dict:
    """Both measures on the held-out part of the cached public lists (the first `limit` entries of each
    list, or all); {"skipped": why} without them."""
    public = D.public_vocab()
    lex = Lexicon(**{k: v[:limit] for k, v in vars(public.heldout).items()})
    if not (lex.first and lex.last and lex.occupations and lex.figures):
        return {"skipped": f"public name and occupation lists not in {sources_cache()} "
                           "(`t2iguard data import --mirror DIR`)", "sources": list(public.sources)}
    return {"sources": list(public.sources), "names": public_names(rw, lex, seed),
            "occupations": public_occupations(rw, lex, seed)}


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
             no_op_prompts: int = 600, anonymisation_prompts: int = 400, public_names: int = 0) -> dict:
    """Every measure above; `seeds` per occupation prompt, the no-op and anonymisation set sizes, and the first
    `public_names` entries of each held-out public list (0: every entry)."""
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
    say("held-out public names and occupations")
    results["public_heldout"] = public_heldout(rw, seed, public_names or None)
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
              f"{a['n']} prompts.", "", *render_public(r["public_heldout"]), "## Grounding and neutralising", "",
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


def render_public(p: dict) -> list[str]:
    """The held-out public lists' section of report.md."""
    lines = ["## Held-out public names and occupations", ""]
    if "skipped" in p:
        return [*lines, f"Skipped: {p['skipped']}.", ""]
    n, o = p["names"], p["occupations"]
    lines += [f"Sources: {', '.join(p['sources'])}. {n['names']} held-out names (\"First Last\", every one of "
              f"{n['first_names']} first names and {n['surnames']} surnames at least once), per position:", "",
              "| position | anonymisation recall |", "|---|---|"]
    lines += [f"| {k} | {100 * v:.1f}% |" for k, v in n["recall"].items()]
    lines += [f"| **mean over positions** | **{100 * n['recall_all']:.1f}%** |", "",
              f"Held-out public figures left intact: {100 * n['figures_kept']:.1f}% of {n['figures']}; public places "
              f"beside a private name left intact: {100 * n['places_kept']:.1f}%.", "",
              f"{o['occupations']} held-out occupations (outside every hand list), one prompt each per position:", "",
              "| position | diversity rewrite fires | descriptor placed before the occupation |", "|---|---|---|"]
    lines += [f"| {k} | {100 * o['fires'][k]:.1f}% | {100 * o['placed'][k]:.1f}% |" for k in o["fires"]]
    lines += ["", f"No-op precision with stated demographics: {100 * o['stated_unchanged']:.1f}% of "
              f"{o['occupations']} prompts came back byte-identical.", ""]
    return lines


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


