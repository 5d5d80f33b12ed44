"""`t2iguard eval all`: one run against the real served stack (the session's tritonserver, over --url) at sizes
below `small`, with one section made to fail; the report's sections, its JSON figures against the per-eval
outputs they were read from, and a section's reproducing command. Plus the option checks, without a run."""

from __future__ import annotations

import html
import json
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from t2iguard.cli.app import app
from t2iguard.evaluation import html_report, report_all

#: below `small`: a quick run of every section (the red team screens and generates through the server)
TINY = ["prompt-classifier.max_prompts=12", "rewriter.seeds=4", "rewriter.no_op_prompts=9",
        "rewriter.anonymisation_prompts=8", "rewriter.public_names=4", "watermark.images=1",
        "redteam.categories=sexual,violence", "redteam.budget=6", "redteam.generate=1", "redteam.steps=4",
        "regeneration.methods=sld,bogus"]  # the induced failure: an unknown method


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def run(repository, url, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval-all")
    sets = [x for item in TINY for x in ("--set", item)]
    result = _invoke("eval", "all", "--repository", str(repository), "--url", url, "--out", str(out), *sets)
    return result, out, json.loads((out / "report.json").read_text())


def test_a_failing_section_is_reported_and_the_others_still_run(run, url):
    result, out, rep = run
    assert result.exit_code == 1, result.output
    assert list(rep["sections"]) == list(report_all.SECTIONS)
    status = {k: s["status"] for k, s in rep["sections"].items()}
    assert status == {"prompt-classifier": "ok", "rewriter": "ok", "regeneration": "failed", "watermark": "ok",
                      "redteam": "ok"}, rep["sections"]["regeneration"]
    assert not rep["ok"]
    failed = rep["sections"]["regeneration"]
    assert "bogus" in failed["error"] and failed["figures"] is None
    assert rep["url"] == url and rep["size"] == "small"
    assert rep["overrides"]["rewriter"] == {"seeds": 4, "no_op_prompts": 9, "anonymisation_prompts": 8,
                                            "public_names": 4}
    assert rep["policy_version"] and re.fullmatch(r"[0-9a-f]{64}", rep["weights_sha256"])
    assert {"prompt_classifier", "unet", "text_encoder"} <= set(rep["graphs_sha256"])


def test_the_html_has_every_section_its_command_error_and_plots(run):
    _, out, rep = run
    page = (out / "report.html").read_text()
    assert "<script" not in page and not re.search(r'(?:src|href)="(?!data:|#)', page)  # self-contained
    for key, entry in rep["sections"].items():
        start = page.index(f'<section id="{key}">')
        body = page[start:page.index("</section>", start)]
        assert report_all.SECTIONS[key].title in body
        assert html.escape(entry["command"]) in body
        if entry["status"] == "ok":
            assert "<table>" in body and "data:image/png;base64," in body, key
    regen = page[page.index('<section id="regeneration">'):]
    assert "[failed]" in regen[:300] and "bogus" in regen[:regen.index("</section>")]
    # every plot each ok section wrote is on the page, embedded
    pngs = [p for key, e in rep["sections"].items() if e["status"] == "ok" for p in (out / key).glob("*.png")]
    assert len(pngs) >= 4 and page.count("data:image/png;base64,") == len(pngs)
    # the small size leaves the real-data study out, and the section says so
    assert "real-data study" in rep["sections"]["prompt-classifier"]["notes"][0]


def test_the_json_figures_are_those_of_the_per_eval_outputs(run):
    _, out, rep = run
    fig = {k: s["figures"] for k, s in rep["sections"].items()}
    pc = json.loads((out / "prompt-classifier" / "metrics.json").read_text())
    for name, s in pc["sets"].items():
        for system in ("t2iguard", "better-profanity"):
            for k in ("n", "fpr_benign", "fpr_over_refusal", "recall_unsafe"):
                assert fig["prompt-classifier"]["sets"][name][system].get(k) == s[system].get(k)
        assert s["t2iguard"]["n"] == 12
    rw = json.loads((out / "rewriter" / "metrics.json").read_text())
    assert fig["rewriter"]["no_op"] == {"n": 9, "unchanged": rw["no_op"]["unchanged"]}
    assert fig["rewriter"]["anonymisation"]["recall"] == rw["anonymisation"]["recall"]
    assert fig["rewriter"]["diversity"]["entropy_ratio"] == {a: v["entropy_ratio"] for a, v in
                                                             rw["diversity"]["attributes"].items()}
    wm = json.loads((out / "watermark" / "robustness.json").read_text())["marks"]["served"]
    for transform, cells in wm["transforms"].items():
        share = sum(c["detected"] for c in cells.values()) / sum(c["n"] for c in cells.values())
        assert fig["watermark"]["marks"]["served"]["detected"][transform] == round(share, 4)
    assert fig["watermark"]["marks"]["served"]["detected"]["none"] == 1.0  # an unmodified mark always reads
    rt = json.loads((out / "redteam" / "redteam.json").read_text())
    assert fig["redteam"]["prompt_guard"]["search"] == rt["layers"]["prompt_guard"]["asr"]
    assert fig["redteam"]["safe_t2i"]["asr"] == rt["layers"]["safe_t2i"]["asr"]
    assert fig["redteam"]["mutations"] == {op: r["asr"] for op, r in rt["mutations"].items()}
    assert fig["redteam"]["seeds"] == 2 and rt["layers"]["safe_t2i"]["n"] == 1


def test_a_sections_command_reproduces_it_alone(run, tmp_path):
    """The rewriter section's command, run by itself, writes the same figures (latency aside)."""
    _, out, rep = run
    args = shlex.split(rep["sections"]["rewriter"]["command"])
    assert args[:3] == ["t2iguard", "eval", "rewriter"]
    args[args.index("--out") + 1] = str(tmp_path)
    result = _invoke(*args[1:])
    assert result.exit_code == 0, result.output
    alone, together = (json.loads((d / "metrics.json").read_text()) for d in (tmp_path, out / "rewriter"))
    for m in (alone, together):
        m.pop("latency_ms_p50_in_process")
    assert alone == together


@pytest.mark.parametrize("args, message", [
    (["--size", "huge"], "choose from small, full"),
    (["--only", "rewriter,nope"], "no section nope"),
    (["--set", "rewriter.colour=3"], "rewriter has no parameter 'colour'"),
    (["--set", "rewriter.seeds=many"], "is not an integer"),
    (["--set", "seeds=3"], "SECTION.PARAM=VALUE"),
])
def test_bad_options_exit_2_before_running(tmp_path, args, message):
    result = _invoke("eval", "all", "--out", str(tmp_path), "--repository", str(tmp_path / "none"), *args)
    assert result.exit_code == 2
    assert message in re.sub(r"\s+", " ", result.output.replace("│", " "))
    assert not (tmp_path / "none").exists() and not (tmp_path / "report.json").exists()


def test_the_real_data_study_says_how_to_fetch_a_missing_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("T2IGUARD_CACHE", str(tmp_path))
    note = report_all._real_data_note({"real_data": True})
    assert "skipped" in note and str(tmp_path / "sources") in note and "t2iguard data download" in note


def test_rich_tables_become_markdown_tables():
    from rich.table import Table

    table = Table("a", "b|c", title="t")
    table.add_row("1 | 2", "x")
    text = html_report.rich_markdown([table])
    assert text.splitlines()[:4] == ["**t**", "", "| a | b\\|c |", "|---|---|"]
    body, used = html_report.markdown_html(text, Path("."))
    assert body.count("<td>") == 2 and "<td>1 | 2</td>" in body and not used


def test_a_section_without_its_inputs_is_skipped_and_says_why(repository, tmp_path, monkeypatch):
    """No benchmarks/ (an installed wheel): the watermark section is skipped, not failed, and says why."""
    monkeypatch.setattr(report_all, "WATERMARK_SCRIPT", tmp_path / "absent.py")
    rep = report_all.run_all(repository, tmp_path / "out", served=lambda: pytest.fail("no server needed"),
                             only=["watermark"])
    entry = rep["sections"]["watermark"]
    assert rep["ok"] and list(rep["sections"]) == ["watermark"]
    assert entry["status"] == "skipped" and entry["figures"] is None and "source checkout" in entry["notes"][0]
    page = (tmp_path / "out" / "report.html").read_text()
    assert "[skipped]" in page and "source checkout" in page
