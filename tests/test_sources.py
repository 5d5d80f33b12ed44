"""The public-source manifest, its data card, the cache it lays out, and `t2iguard data`.

The card-vs-manifest checks always run; digest checks of cached files run where the cache is present
(CI machines may not have it) and skip with the reason otherwise."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess

import pytest
from typer.testing import CliRunner

from t2iguard.cli.data import app
from t2iguard.training.data import sources as S

#: the evaluation sets the issue names: never trained on; each must be listed in the card
EVAL_SETS = ("I2P", "Ring-A-Bell", "MMA-Diffusion", "T2I-RiskyPrompt", "OVERT", "OR-Bench", "XSTest", "UnsafeBench",
             "HarmBench", "PartiPrompts", "DrawBench", "COCO captions")
CARD = S.CARD.read_text()


def licence_name(src: S.Source) -> str:
    """The licence as the card's tables write it: the manifest's licence up to its parenthesis."""
    return src.licence.split(" (")[0].strip()


def test_manifest_records_facts_only():
    manifest = S.load_manifest()
    assert len(manifest) >= 10
    for s in manifest:
        assert re.fullmatch(r"[0-9a-f]{40}", s.commit), s.id
        assert re.fullmatch(r"[0-9a-f]{64}", s.sha256), s.id
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", s.repo), s.id
        assert s.licence and s.path and s.rows > 0 and s.bytes > 0, s.id
        assert s.eval_set is None or s.eval_set in EVAL_SETS, s.id
    # no third-party text: only short descriptive strings, nothing row-sized
    raw = json.loads(S.MANIFEST.read_text())
    assert S.MANIFEST.stat().st_size < 100_000
    assert all(len(v) < 400 for e in raw["sources"] for v in e.values() if isinstance(v, str))


def test_card_names_every_source_with_commit_and_licence():
    section = CARD.split("## Sources", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip().strip("`"): line for line in section.splitlines()
            if line.startswith("|") and line.count("|") > 5}
    for s in S.load_manifest():
        assert s.id in rows, f"SOURCES.md has no table row for {s.id}"
        row = rows[s.id]
        assert s.commit in row, f"{s.id}: the card's row lacks commit {s.commit}"
        assert s.repo in row and s.path in row, f"{s.id}: the card's row lacks {s.repo} / {s.path}"
        assert licence_name(s) in row, f"{s.id}: the card's row lacks licence {licence_name(s)!r}"
        assert s.sha256[:16] in row, f"{s.id}: the card's row lacks the sha256 prefix {s.sha256[:16]}"


def test_card_lists_every_evaluation_set_as_eval_only():
    section = CARD.split("## Evaluation sets", 1)[1].split("\n## ", 1)[0]
    for name in EVAL_SETS:
        assert name in section, f"SOURCES.md's evaluation section does not name {name}"
    for s in S.load_manifest():
        if s.kind == "eval":
            assert s.use == "eval"


def test_cached_files_match_their_digests():
    status = S.verify()
    if not status.present and not status.mismatched:
        pytest.skip(f"no sources cached under {S.cache_dir()} (run `t2iguard data import --mirror DIR`)")
    assert not status.mismatched, [(s.id, found) for s, found in status.mismatched]
    for s in status.present[:5]:  # verify() itself hashes every file; spot-check its answer independently
        assert hashlib.sha256(s.cached().read_bytes()).hexdigest() == s.sha256


def _bare_repo(tmp_path, files: dict[str, bytes]) -> tuple[str, str]:
    """A bare repository under tmp_path/mirror/owner+name/repo holding `files`; (mirror root, commit)."""
    work = tmp_path / "work"
    work.mkdir()
    for name, data in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(data)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "HOME": str(tmp_path), "PATH": "/usr/bin:/bin:/usr/local/bin"}
    run = lambda *a, cwd=work: subprocess.run(["git", *a], cwd=cwd, env=env, check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    run("add", ".")
    run("commit", "-qm", "data")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, capture_output=True, text=True,
                            check=True).stdout.strip()
    run("clone", "-q", "--bare", str(work), str(tmp_path / "mirror" / "owner+name" / "repo"), cwd=tmp_path)
    return str(tmp_path / "mirror"), commit


def _source(commit: str, data: bytes, path: str = "data/prompts.txt", **kw) -> S.Source:
    fields = dict(id="test-prompts", kind="t2i-prompts", use="train", repo="owner/name", commit=commit, path=path,
                  licence="MIT", sha256=hashlib.sha256(data).hexdigest(), bytes=len(data), rows=2, format="txt")
    fields.update(kw)
    return S.Source(**fields)


def test_import_from_mirror_writes_the_exact_bytes_and_refuses_a_different_digest(tmp_path):
    data = b"a red bicycle\na lighthouse at dusk\n"
    mirror, commit = _bare_repo(tmp_path, {"data/prompts.txt": data})
    root = tmp_path / "cache"
    good = _source(commit, data)
    st = S.import_from_mirror(mirror, [good], root=root)
    assert [s.id for s in st.present] == ["test-prompts"] and st.complete
    assert good.cached(root).read_bytes() == data
    assert S.verify([good], root).complete

    bad = _source(commit, data, id="test-tampered", sha256="0" * 64)
    st = S.import_from_mirror(mirror, [bad], root=root)
    assert [s.id for s, _ in st.mismatched] == ["test-tampered"] and not bad.cached(root).exists()

    absent = _source(commit, data, id="test-absent", path="data/nope.txt")
    st = S.import_from_mirror(mirror, [absent], root=root)
    assert [s.id for s in st.missing] == ["test-absent"]

    good.cached(root).write_bytes(b"edited\n")  # a cached file edited by hand is reported, then re-imported
    assert [s.id for s, _ in S.verify([good], root).mismatched] == ["test-prompts"]
    assert S.import_from_mirror(mirror, [good], root=root).complete
    assert good.cached(root).read_bytes() == data


def test_cache_dir_follows_t2iguard_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("T2IGUARD_CACHE", str(tmp_path))
    assert S.cache_dir() == tmp_path / "sources"


def test_data_cli_help_and_status_without_a_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("T2IGUARD_CACHE", str(tmp_path))
    runner = CliRunner()
    out = runner.invoke(app, ["--help"]).output
    for command in ("import", "download", "status", "corpus"):
        assert command in out
    assert "--mirror" in runner.invoke(app, ["import", "--help"]).output
    r = runner.invoke(app, ["status", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert not d["present"] and len(d["missing"]) == len(S.load_manifest()) and not d["mismatched"]
    r = runner.invoke(app, ["import", "--mirror", str(tmp_path / "no-such-dir")])
    assert r.exit_code == 2


def test_corpus_report_rewrites_only_the_cards_generated_sections(tmp_path):
    from t2iguard.training.data.corpus import Report

    rep = Report(cache="", cache_present=True)
    rep.read.update({"own-stance": 10, "edos-aggregated": 5})
    rep.kept.update({"own-stance": 9, "edos-aggregated": 5})
    rep.dropped["own-stance"]["eval embedding: hatecheck"] = 1
    rep.embedding_checked.update({"own-stance": 10, "edos-aggregated": 5})
    rep.groups["own-stance"].update({"hard-negative": 6, "unsafe": 3})
    rep.groups["edos-aggregated"].update({"hard-negative": 5})
    rep.categories["train"].update({"benign": 11, "hate": 3})
    sections = "".join(f"<!-- BEGIN {n} -->\nold {n}\n<!-- END {n} -->\nhand-written {n}\n"
                       for n in ("notes", "per-source", "per-category"))
    card = tmp_path / "SOURCES.md"
    card.write_text("# card\n" + sections)
    rep.write_card(card)
    text = card.read_text()
    assert "old " not in text and text.startswith("# card\n") and text.count("hand-written") == 3
    assert "| own-stance | 10 | 9 | eval embedding: hatecheck: 1 | 10 | hard-negative 6, unsafe 3 |" in text
    assert "| edos-aggregated | 5 | 5 | - | 5 | hard-negative 5 |" in text
    assert "| **total** | 15 | 14 | | 15 | |" in text and "| hate | 3 | 0 | 0 | 3 |" in text
    rep.write_card(card)
    assert card.read_text() == text  # idempotent
    card.write_text("# a card without the markers\n")
    with pytest.raises(ValueError, match="BEGIN notes"):
        rep.write_card(card)
    r = CliRunner().invoke(app, ["corpus", "--card", str(tmp_path / "none.md")])
    assert r.exit_code == 2 and "--card" in r.output and "not a file" in r.output
    r = CliRunner().invoke(app, ["corpus", "--card", str(card)])  # named before the corpus is built
    assert r.exit_code == 2 and "no '<!-- BEGIN notes -->'" in r.output
    card.write_text("<!-- BEGIN notes -->\n<!-- BEGIN per-source -->\n<!-- END per-source -->\n")
    with pytest.raises(ValueError, match="BEGIN notes"):  # a BEGIN without its END
        rep.write_card(card)
