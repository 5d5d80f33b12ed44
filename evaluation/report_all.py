"""`t2iguard eval all`: every evaluation at one size, in one run; one HTML report and one JSON of headline figures.

Sections, each also a command of its own (the report names the one that reproduces it alone):

| section | what | how it runs |
| --- | --- | --- |
| `prompt-classifier` | `prompt_classifier.py`: prompt_guard vs a keyword blocklist (+ real-data study) | in-process |
| `rewriter` | `rewriter.py`: diversity, no-op precision, anonymisation, grounding | in-process |
| `regeneration` | `regeneration.py`: guided regeneration on ShapeWorld | in-process |
| `watermark` | `benchmarks/watermark_robustness.py`: the mark under re-encoding, resizing, crops | a subprocess |
| `redteam` | `redteam.py`: the automated attacker, ASR per layer | over gRPC, a served stack |

Each section writes what its own command writes into `OUT/<section>/` (report.md among them); `report.json`
keeps each section's headline figures, read back from those files (stable keys, for tracking across versions),
with the provenance (version, commit, policy and weights digests, date); `report.html` is one self-contained
page: the provenance, a summary, then per section its command, notes, error if any, its tables and its plots
(PNG, embedded). A section that raises is reported with its error and the others still run; a section whose
inputs are absent (the benchmarks of a source checkout; the data cache of the real-data study) says what was
skipped, why, and the command that fetches what is missing.

Nothing here starts a server (evaluation does not import the triton layer): the caller passes `served`, a
function that returns a gRPC URL, starting a server on first use.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

SIZES = ("small", "full")
#: the source checkout (benchmarks/ lives there, not in a wheel)
CHECKOUT = Path(__file__).resolve().parents[1]
WATERMARK_SCRIPT = CHECKOUT / "benchmarks" / "watermark_robustness.py"


class Skipped(Exception):
    """A section (or a part of one) whose inputs are absent: the message says why and how to get them."""


class Progress(Protocol):
    def start(self, key: str, title: str) -> None: ...
    def say(self, key: str, message: str) -> None: ...
    def done(self, key: str, status: str, seconds: float) -> None: ...


@dataclass
class Context:
    """What every section gets: the built repository, a served stack on demand, the invocation's names."""
    repository: Path
    served: Callable[[], str]  # returns a gRPC URL, starting a server on the first call
    url_given: str | None = None  # --url, when the caller was given one

    def served_command(self, *args) -> str:
        """A command against the served stack: on --url, or on one `t2iguard serve` (a server started here is
        gone by the time anyone reads the report)."""
        if self.url_given:
            return _cmd(*args[:2], "--url", self.url_given, *args[2:])
        return (_cmd("t2iguard", "serve", "--repository", self.repository) + "   # then, in another shell:\n"
                + _cmd(*args[:2], "--url", "localhost:8001", *args[2:]))


@dataclass(frozen=True)
class Section:
    """One evaluation: `run(ctx, params, out, say) -> notes` writes its outputs into `out`; `figures(out)` reads
    the headline figures back; `command(ctx, params, out)` is the command that reproduces it alone."""
    key: str
    title: str
    params: dict[str, tuple]  # name -> (small, full); a value's type is the small value's type
    run: Callable[[Context, dict, Path, Callable[[str], None]], list[str]]
    figures: Callable[[Path], dict]
    command: Callable[[Context, dict, Path], str]
    help: str = ""


def _cmd(*parts) -> str:
    return " ".join(shlex.quote(str(p)) for p in parts)


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def _pick(d: dict, *keys: str) -> dict:
    return {k: d[k] for k in keys if k in d}


# ---------------------------------------------------------------------------------------- prompt classifier

def _real_data_note(params: dict) -> str | None:
    """Why the real-data study will not run, or None when it will."""
    if not params["real_data"]:
        return ("real-data study (leave-one-source-out, held-out sources, calibration) not run at this size "
                "(`--set prompt-classifier.real_data=true`, or `--size full`)")
    from t2iguard.training.data.sources import cache_dir, verify

    status = verify()
    if not status.present:
        return (f"real-data study skipped: the data cache {cache_dir()} holds none of the public sources; fetch "
                "them with `t2iguard data download` (or `t2iguard data import --mirror DIR`)")
    return None


def _run_prompt_classifier(ctx: Context, params: dict, out: Path, say) -> list[str]:
    from t2iguard.evaluation.prompt_classifier import evaluate

    note = _real_data_note(params)
    variants = tuple(v.strip() for v in params["variants"].split(",") if v.strip())
    evaluate(ctx.repository, out, say=say, real_data=note is None, variants=variants,
             max_prompts=params["max_prompts"] or None)
    from t2iguard.training.data.sources import cache_dir, verify

    missing = verify().missing if note is None else []
    if missing:
        note = (f"real-data study ran without {len(missing)} missing source(s) in {cache_dir()} "
                "(`t2iguard data status`; fetch with `t2iguard data download`)")
    return [note] if note else []


def _figures_prompt_classifier(out: Path) -> dict:
    m = _read(out / "metrics.json")
    figures = {"policy_version": m["policy_version"], "max_prompts_per_set": m.get("max_prompts_per_set"),
               "sets": {name: {system: _pick(s[system], "n", "fpr_benign", "fpr_over_refusal", "recall_unsafe")
                               for system in ("t2iguard", "better-profanity")} for name, s in m["sets"].items()},
               "latency_ms_p50": m["latency_ms_p50"], "real_data": None}
    if m.get("real_data"):
        rd = _read(out / "real-data.json")
        key = rd["shipped"] if rd["shipped"] in rd["variants"] else next(iter(rd["variants"]))
        figures["real_data"] = {"variant": key, "examples": rd["examples"], "unseen": {
            name: {g: v[g][0] for g in ("benign", "hard-negative", "unsafe") if g in v}
            for name, v in rd["variants"][key]["unseen"].items()}}
    return figures


def _command_prompt_classifier(ctx: Context, p: dict, out: Path) -> str:
    return _cmd("t2iguard", "eval", "prompt-classifier", "--repository", ctx.repository, "--out", out,
                *(["--max-prompts", p["max_prompts"]] if p["max_prompts"] else []),
                "--real-data" if p["real_data"] else "--no-real-data", "--variants", p["variants"])


# ------------------------------------------------------------------------------------------------- rewriter

def _run_rewriter(ctx: Context, params: dict, out: Path, say) -> list[str]:
    from t2iguard.evaluation.rewriter import evaluate

    evaluate(ctx.repository, out, seeds=params["seeds"], say=say, no_op_prompts=params["no_op_prompts"],
             anonymisation_prompts=params["anonymisation_prompts"], public_names=params["public_names"])
    return []


def _figures_rewriter(out: Path) -> dict:
    m = _read(out / "metrics.json")
    d = m["diversity"]
    return {"policy_version": m["policy_version"],
            "diversity": {**_pick(d, "prompts", "seeds", "coverage"),
                          "entropy_ratio": {a: v["entropy_ratio"] for a, v in d["attributes"].items()},
                          "max_share": {a: v["max_share"] for a, v in d["attributes"].items()}},
            "no_op": _pick(m["no_op"], "n", "unchanged"),
            "anonymisation": _pick(m["anonymisation"], "n", "recall", "recall_by_label", "public_names_kept"),
            "grounding": {g["kind"]: _pick(g, "n", "rewritten", "flagged_before", "flagged_after")
                          for g in m["grounding"]["sets"]},
            "latency_ms_p50_in_process": m["latency_ms_p50_in_process"]}


def _command_rewriter(ctx: Context, p: dict, out: Path) -> str:
    return _cmd("t2iguard", "eval", "rewriter", "--repository", ctx.repository, "--out", out, "--seeds", p["seeds"],
                "--no-op-prompts", p["no_op_prompts"], "--anonymisation-prompts", p["anonymisation_prompts"],
                "--public-names", p["public_names"])


# --------------------------------------------------------------------------------------------- regeneration

def _run_regeneration(ctx: Context, params: dict, out: Path, say) -> list[str]:
    from t2iguard.evaluation.regeneration import evaluate

    methods = tuple(m.strip() for m in params["methods"].split(",") if m.strip())
    evaluate(ctx.repository, out, n=params["requests"], attempts=params["attempts"], seed=params["seed"],
             methods=methods, say=say)
    return []


def _figures_regeneration(out: Path) -> dict:
    m = _read(out / "metrics.json")
    keys = ("flagged_first_attempt", "still_flagged_after", "relative_cut", "refused", "attribute_retention",
            "latency_ratio")
    return {**_pick(m, "requests_per_set", "max_attempts", "steps", "seed"),
            "methods": {method: {kind: {**_pick(s, *keys), "oracle": _pick(s["oracle"], "first_attempt", "delivered")}
                                 for kind, s in sets.items()} for method, sets in m["methods"].items()},
            "prompt_following": _pick(m.get("prompt_following", {}), "generated", "drawn", "chance")}


def _command_regeneration(ctx: Context, p: dict, out: Path) -> str:
    return _cmd("t2iguard", "eval", "regeneration", "--repository", ctx.repository, "--out", out,
                "--requests", p["requests"], "--attempts", p["attempts"], "--methods", p["methods"],
                "--seed", p["seed"])


# ------------------------------------------------------------------------------------------------ watermark

def _watermark_args(p: dict, out: Path) -> list[str]:
    return [str(WATERMARK_SCRIPT), "--images", str(p["images"]), "--rivagan", str(p["rivagan"]),
            "--seed", str(p["seed"]), "--json", str(out / "robustness.json"), "--plot", str(out / "plot.png")]


def _run_watermark(ctx: Context, params: dict, out: Path, say) -> list[str]:
    if not WATERMARK_SCRIPT.is_file():
        raise Skipped(f"{WATERMARK_SCRIPT} is not here: the benchmarks ship with a source checkout of t2iguard, "
                      "not with its wheel (`git clone` the project and run from there)")
    import os

    # the script imports benchmarks/watermark.py from beside itself: Python's safe-path mode would hide it
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSAFEPATH"}
    say(f"{params['images']} images per kind, 13 transforms")
    proc = subprocess.run([sys.executable, *_watermark_args(params, out)], cwd=CHECKOUT, env=env,
                          capture_output=True, text=True)
    (out / "stderr.log").write_text(proc.stderr)
    if proc.returncode:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{WATERMARK_SCRIPT.name} exited with {proc.returncode}:\n{tail}")
    (out / "report.md").write_text(proc.stdout)
    return []


def _figures_watermark(out: Path) -> dict:
    m = _read(out / "robustness.json")
    marks = {}
    for key, r in m["marks"].items():
        def share(cells: dict, what: str) -> float:
            return round(sum(c[what] for c in cells.values()) / sum(c["n"] for c in cells.values()), 4)

        marks[key] = {"bits": r["bits"], "threshold": r["threshold"], "images": sum(r["images"].values()),
                      "detected": {t: share(cells, "detected") for t, cells in r["transforms"].items()},
                      "false_positives": {"detected": sum(c["detected"] for c in r["false_positives"].values()),
                                          "n": sum(c["n"] for c in r["false_positives"].values())}}
    return {"seed": m["seed"], "marks": marks}


def _command_watermark(ctx: Context, p: dict, out: Path) -> str:
    return _cmd("python", *_watermark_args(p, out)).replace(shlex.quote(str(WATERMARK_SCRIPT)),
                                                            "benchmarks/watermark_robustness.py")


# -------------------------------------------------------------------------------------------------- redteam

def _redteam_config(p: dict, url: str):
    from t2iguard.contract.taxonomy import CATEGORIES
    from t2iguard.evaluation import redteam as R

    return R.Config(tuple(c.strip() for c in p["categories"].split(",") if c.strip()) or CATEGORIES,
                    p["seeds_per_category"], p["budget"], p["beam"], p["depth"], p["variants"], p["generate"],
                    p["steps"] or None, p["seed"],
                    tuple(m.strip() for m in p["mutations"].split(",") if m.strip()) or R.MUTATIONS,
                    extra={"url": url})


def _run_redteam(ctx: Context, params: dict, out: Path, say) -> list[str]:
    from t2iguard.client import SafeT2IClient
    from t2iguard.evaluation import redteam as R
    from t2iguard.evaluation.html_report import rich_markdown

    url = ctx.served()
    with SafeT2IClient(url, client_id="eval-all") as client:
        rep = R.run(client, _redteam_config(params, url), progress=lambda phase, done, total:
                    say(f"{phase} {done}/{total}"))
    R.save(rep, out)
    (out / "report.md").write_text(f"{rep['queries']} screen queries against {url}.\n\n"
                                   + rich_markdown(R.tables(rep)))
    return [] if ctx.url_given else [f"against a tritonserver started by `eval all` over {ctx.repository} ({url})"]


def _figures_redteam(out: Path) -> dict:
    m = _read(out / "redteam.json")
    st = m["layers"]["safe_t2i"]
    return {"queries": m["queries"], "seeds": len(m["attacks"]),
            "prompt_guard": {"seeds_unmutated": m["mutations"]["none"]["asr"],
                             "search": m["layers"]["prompt_guard"]["asr"]},
            "safe_t2i": {"asr": st["asr"], "n": st["n"], "decisions": st["decisions"]},
            "mutations": {op: r["asr"] for op, r in m["mutations"].items()},
            "categories": {c: r["search"]["asr"] for c, r in m["categories"].items()}}


def _command_redteam(ctx: Context, p: dict, out: Path) -> str:
    flags = {"--categories": p["categories"], "--mutations": p["mutations"],
             "--seeds-per-category": p["seeds_per_category"], "--budget": p["budget"], "--beam": p["beam"],
             "--depth": p["depth"], "--variants": p["variants"], "--generate": p["generate"],
             "--steps": p["steps"], "--seed": p["seed"]}
    args = [x for k, v in flags.items() if v not in ("", 0) or k == "--seed" for x in (k, v)]
    return ctx.served_command("t2iguard", "redteam", *args, "--out", out)


SECTIONS: dict[str, Section] = {s.key: s for s in (
    Section("prompt-classifier", "Prompt classifier (prompt_guard vs a keyword blocklist)",
            {"max_prompts": (100, 0), "real_data": (False, True), "variants": ("c", "c")},
            _run_prompt_classifier, _figures_prompt_classifier, _command_prompt_classifier,
            "max_prompts 0: every prompt"),
    Section("rewriter", "Rewriter (diversity, no-op precision, anonymisation, grounding)",
            {"seeds": (20, 500), "no_op_prompts": (60, 600), "anonymisation_prompts": (40, 400),
             "public_names": (40, 0)},
            _run_rewriter, _figures_rewriter, _command_rewriter, "public_names 0: every held-out public entry"),
    Section("regeneration", "Guided regeneration (ShapeWorld)",
            {"requests": (4, 200), "attempts": (2, 4), "methods": ("classifier,reseed", "sld,classifier,reseed"),
             "seed": (7000, 7000)},
            _run_regeneration, _figures_regeneration, _command_regeneration),
    Section("watermark", "Watermark robustness",
            {"images": (2, 24), "rivagan": (0, 2), "seed": (3, 3)},
            _run_watermark, _figures_watermark, _command_watermark, "images per kind; rivagan 0: skip it"),
    Section("redteam", "Red team (served stack, gRPC)",
            {"seeds_per_category": (1, 4), "budget": (12, 60), "beam": (2, 3), "depth": (2, 4), "variants": (1, 2),
             "generate": (2, 48), "steps": (8, 0), "seed": (0, 0), "categories": ("", ""), "mutations": ("", "")},
            _run_redteam, _figures_redteam, _command_redteam, "steps 0: the server's; empty categories and "
                                                             "mutations: all"),
)}


# ------------------------------------------------------------------------------------------------ options

def parse_value(text: str, like):
    """`text` as the type of `like` (bool: true/false/1/0/yes/no)."""
    if isinstance(like, bool):
        low = text.strip().lower()
        if low not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"{text!r} is not a boolean (true or false)")
        return low in ("true", "1", "yes")
    if isinstance(like, int):
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an integer") from None
    return text


def parse_overrides(items: list[str]) -> dict[str, dict]:
    """['regeneration.requests=2', ...] -> {'regeneration': {'requests': 2}}; unknown names raise ValueError.
    Values are typed here; whether a value makes sense is the section's own business (its error is reported)."""
    out: dict[str, dict] = {}
    for item in items:
        name, eq, text = item.partition("=")
        key, dot, param = name.strip().partition(".")
        if not eq or not dot:
            raise ValueError(f"--set {item!r}: write SECTION.PARAM=VALUE, e.g. regeneration.requests=2")
        if key not in SECTIONS:
            raise ValueError(f"--set {item!r}: no section {key!r}; sections: {', '.join(SECTIONS)}")
        defaults = SECTIONS[key].params
        if param not in defaults:
            raise ValueError(f"--set {item!r}: {key} has no parameter {param!r}; it has {', '.join(defaults)}")
        try:
            out.setdefault(key, {})[param] = parse_value(text, defaults[param][0])
        except ValueError as e:
            raise ValueError(f"--set {item!r}: {e}") from None
    return out


def parse_only(text: str) -> list[str]:
    """'a,b' -> the sections in run order; empty: every section. Unknown names raise ValueError."""
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        raise ValueError(f"--only: no section {', '.join(unknown)}; sections: {', '.join(SECTIONS)}")
    return [k for k in SECTIONS if not chosen or k in chosen]


def params_for(key: str, size: str, overrides: dict[str, dict]) -> dict:
    index = SIZES.index(size)
    return {name: v[index] for name, v in SECTIONS[key].params.items()} | overrides.get(key, {})


def sizes_help() -> str:
    """Each section's parameters at each size, for --help."""
    def show(v) -> str:
        return "''" if v == "" else str(v)

    return "; ".join(f"{s.key}: " + ", ".join(f"{n} {show(v[0])}/{show(v[1])}" for n, v in s.params.items())
                     + (f" ({s.help})" if s.help else "") for s in SECTIONS.values())


# --------------------------------------------------------------------------------------------- provenance

def provenance(repository: Path) -> dict:
    """Version, commit, profile, policy version and digest, and the digests of every served graph."""
    from importlib.metadata import PackageNotFoundError, version

    from t2iguard.contract.policy import load_policy
    from t2iguard.training.data.sources import file_digest

    try:
        dist = version("t2iguard")
    except PackageNotFoundError:
        dist = None
    commit = None
    if (CHECKOUT / ".git").exists():
        git = ["git", "-C", str(CHECKOUT)]
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
        if head.returncode == 0:
            commit = head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    graphs = {p.parent.parent.name: file_digest(p) for p in sorted(repository.glob("*/1/model.onnx"))}
    combined = hashlib.sha256("".join(f"{k}:{v}\n" for k, v in graphs.items()).encode()).hexdigest()
    profile = json.loads((repository / "profile.json").read_text()).get("name")
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return {"t2iguard_version": dist, "commit": commit, "date": now, "repository": str(repository), "profile": profile,
            "policy_version": load_policy(repository / "policy.yaml").version,
            "policy_sha256": file_digest(repository / "policy.yaml"),
            "weights_sha256": combined, "graphs_sha256": graphs}


# ------------------------------------------------------------------------------------------------- the run

@dataclass
class Outcome:
    """One section's result, as report.json keeps it."""
    status: str  # ok | failed | skipped
    seconds: float
    command: str
    params: dict
    figures: dict | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    traceback: str | None = None

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "traceback"}


def run_section(section: Section, ctx: Context, params: dict, out: Path, say) -> Outcome:
    """Run one section into a fresh `out`; any exception becomes a failed Outcome with its error text."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    outcome = Outcome("ok", 0.0, section.command(ctx, params, out), params)
    try:
        outcome.notes = section.run(ctx, params, out, say)
        outcome.figures = section.figures(out)
    except Skipped as e:
        outcome.status, outcome.notes = "skipped", [str(e)]
    except Exception as e:  # noqa: BLE001 - reported in its section; the other sections still run
        outcome.status = "failed"
        outcome.error = "".join(traceback.format_exception_only(type(e), e)).strip()
        outcome.traceback = traceback.format_exc()
    outcome.seconds = round(time.perf_counter() - t0, 1)
    return outcome


def run_all(repository: Path, out: Path, served: Callable[[], str], size: str = "small",
            only: list[str] | None = None, overrides: dict[str, dict] | None = None, url_given: str | None = None,
            progress: Progress | None = None) -> dict:
    """Run the chosen sections at `size` (with `overrides`, from `parse_overrides`) into `out/<section>/`, then
    write `out/report.json` and `out/report.html`; returns the report dict (`ok`: no section failed)."""
    from t2iguard.evaluation.html_report import write_html

    if size not in SIZES:
        raise ValueError(f"size {size!r}: choose from {', '.join(SIZES)}")
    overrides = overrides or {}
    repository, out = repository.resolve(), Path(out)
    ctx = Context(repository, served, url_given)
    report = {"schema": 1, "size": size, "overrides": overrides, "url": url_given, **provenance(repository),
              "sections": {}}
    outcomes: dict[str, Outcome] = {}
    for key in only or list(SECTIONS):
        section = SECTIONS[key]
        if progress:
            progress.start(key, section.title)
        outcomes[key] = run_section(section, ctx, params_for(key, size, overrides), out / key,
                                    (lambda m, k=key: progress.say(k, m)) if progress else (lambda m: None))
        if progress:
            progress.done(key, outcomes[key].status, outcomes[key].seconds)
        report["sections"][key] = outcomes[key].to_json()
    report["ok"] = all(o.status != "failed" for o in outcomes.values())
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    write_html(report, {k: (SECTIONS[k].title, o.traceback) for k, o in outcomes.items()}, out, out / "report.html")
    return report
