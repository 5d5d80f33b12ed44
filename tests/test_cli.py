"""The console script against the real server: files written and exit codes per the error table."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from t2iguard.cli.app import app
from t2iguard.contract.errors import (
    BAD_INPUT,
    ERROR_TABLE,
    GUARD_FAILURE,
    OK,
    OTHER,
    OVERLOAD,
    RATE_LIMITED,
    RATE_LIMITED_TAG,
    REFUSED,
    RateLimited,
    kind_for_status,
)
from t2iguard.export.tiny import PROMPT_CLASSIFIER_CHECKPOINT


def t2iguard(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "t2iguard.cli.app", *args], capture_output=True, text=True,
                          input=stdin, timeout=300)


def in_process(*args: str) -> subprocess.CompletedProcess:
    """`t2iguard` in this process (typer's runner): for checks of bad input, where a process per call would
    import torch again each time (about 3 s)."""
    r = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return subprocess.CompletedProcess(args, r.exit_code, r.stdout, r.stderr)


def test_error_table_is_one_to_one():
    assert [k.exit_code for k in ERROR_TABLE] == [0, 3, 2, 1, 1, 4, 1, 5]
    statuses = [k.grpc_status for k in (BAD_INPUT, GUARD_FAILURE, OVERLOAD)]
    assert len(set(statuses)) == 3
    for k in (BAD_INPUT, GUARD_FAILURE, OVERLOAD):
        assert kind_for_status(k.grpc_status) is k
    assert kind_for_status("DEADLINE_EXCEEDED") is OTHER
    limited = RateLimited("rate limit of client 'u' (2/s, burst 4) reached; retry after 0.37 s")
    assert str(limited).startswith(RATE_LIMITED_TAG) and limited.retry_after_s == 0.37
    assert kind_for_status("UNAVAILABLE", f"[StatusCode.UNAVAILABLE] {limited}") is RATE_LIMITED
    assert kind_for_status("UNAVAILABLE", "queue is full") is OVERLOAD


def test_generate_allowed_writes_png_and_report(url, tmp_path):
    r = t2iguard("generate", "a red circle on a blue background", "--seed", "1", "--steps", "2", "--url", url,
                 "--out", str(tmp_path))
    assert r.returncode == OK.exit_code, r.stderr
    assert r.stdout.startswith("allowed")
    pngs, reports = list(tmp_path.glob("*.png")), list(tmp_path.glob("*.json"))
    assert len(pngs) == 1 and len(reports) == 1 and pngs[0].stem == reports[0].stem
    assert json.loads(reports[0].read_text())["decision"] == "allowed"


def test_generate_refused_exit_3_and_no_png(url, tmp_path):
    r = t2iguard("generate", "a photo of a person killing another person", "--url", url, "--out", str(tmp_path))
    assert r.returncode == REFUSED.exit_code, r.stderr
    assert "violence" in r.stdout
    assert not list(tmp_path.glob("*.png")) and len(list(tmp_path.glob("*.json"))) == 1


def test_generate_bad_input_exit_2(url, tmp_path):
    r = t2iguard("generate", "a red circle", "--steps", "0", "--url", url, "--out", str(tmp_path))
    assert r.returncode == BAD_INPUT.exit_code
    assert "`STEPS` is 0" in r.stderr and "INVALID_ARGUMENT" in r.stderr


def test_eval_regeneration_names_an_unknown_method(tmp_path):
    r = in_process("eval", "regeneration", "--methods", "sld,nothing", "--out", str(tmp_path))
    assert r.returncode == BAD_INPUT.exit_code
    said = " ".join(r.stderr.replace("│", " ").split())  # rich wraps the message in a box
    assert "Invalid value for --methods: 'sld,nothing': choose from policy, sld, classifier, reseed" in said
    assert not list(tmp_path.iterdir())  # checked before anything is built or run
    r = in_process("eval", "regeneration", "--attempts", "0", "--out", str(tmp_path))
    assert r.returncode == BAD_INPUT.exit_code and "--attempts" in r.stderr and not list(tmp_path.iterdir())
    r = in_process("eval", "regeneration", "--sets", "edits,photos", "--out", str(tmp_path))
    said = " ".join(r.stderr.replace("│", " ").split())
    assert r.returncode == BAD_INPUT.exit_code and not list(tmp_path.iterdir())
    assert "Invalid value for --sets: 'edits,photos': choose from t2i, edits" in said


def test_eval_prompt_loso_names_a_training_set_without_sources(tmp_path):
    for data in ("templates", "corpus,corpus-template-twins"):
        r = in_process("eval", "prompt-loso", "--data", data, "--out", str(tmp_path / "loso"))
        said = " ".join(r.stderr.replace("│", " ").split())
        assert r.returncode == BAD_INPUT.exit_code and not (tmp_path / "loso").exists()
        assert f"Invalid value for --data: '{data}': choose from corpus, corpus-no-templates, " in said


def test_train_prompt_classifier_names_a_bad_adapter_head_init_start_or_policy(tmp_path):
    """Checked before any data is read or any weight written: the whole encoder (`full`, 87 MB) is not a file
    the project commits, and a missing policy file is named."""
    out = ("--out", str(tmp_path / "w.safetensors"))
    for args, phrases in (
            (("prompt-classifier", "--adapter", "full", *out), ("--adapter must be one of qv-r8, full-r32, full-r8",)),
            (("prompt-classifier", "--policy", str(tmp_path / "none.yaml")), ("--policy", "no such file")),
            (("prompt-classifier", "--max-steps", "0", *out), ("--max-steps", "greater than or equal to 1")),
            (("prompt-classifier", "--pair-weight", "-1", *out), ("--pair-weight", "greater than or equal to 0")),
            (("prompt-classifier", "--pair-sides", "unsafe", *out), ("--pair-sides must be one of both, benign",)),
            (("prompt-classifier", "--swap-weight", "-1", *out), ("--swap-weight", "greater than or equal to 0")),
            (("prompt-classifier", "--swap-categories", "hate,racism", *out), ("--swap-categories must be all or",)),
            (("prompt-classifier", "--pair-sides", "benign", *out), ("--pair-sides", "give --pair-weight above 0")),
            (("prompt-classifier", "--swap-categories", "hate", *out), ("--swap-categories",
                                                                         "give --swap-weight above 0")),
            (("prompt-classifier", "--head-init", "zeros", *out), ("--head-init must be one of random, probe",)),
            (("prompt-thresholds", "--hard-fpr", "0.9", "--policy", str(tmp_path / "none.yaml")),
             ("--hard-fpr", "less than or equal to 0.5")),
            (("prompt-thresholds", "--data", "templates"), ("--data", "'templates': choose from corpus, ")),
            (("prompt-thresholds", "--family-floor", "0.3"), ("--family", "--family-floor needs the categories")),
            (("prompt-thresholds", "--family", "hate,racism"), ("--family", "'hate,racism': choose from"))):
        r = in_process("train", *args)
        said = " ".join(r.stderr.replace("│", " ").split())
        assert r.returncode == BAD_INPUT.exit_code and all(p in said for p in phrases), (args, said)
    assert not list(tmp_path.iterdir())
    files = tmp_path / "files"
    files.mkdir()
    bad, policy = files / "bad.safetensors", files / "policy.yaml"
    bad.write_text("not a model")
    policy.write_text("version: x\n")  # never read: the weights are named first
    for args in (("prompt-thresholds", str(bad)), ("prompt-classifier", "--init", str(bad), "--out",
                                                   str(files / "s.safetensors")),
                 ("prompt-soup", str(bad), str(PROMPT_CLASSIFIER_CHECKPOINT), "--out",
                  str(files / "s.safetensors"))):
        r = in_process("train", *args, "--policy", str(policy))
        said = " ".join(r.stderr.replace("│", " ").split())  # named in seconds, before the corpus is read
        assert r.returncode == BAD_INPUT.exit_code and "is not a prompt-classifier file" in said, said
        assert policy.read_text() == "version: x\n" and not (files / "s.safetensors").exists()
    shutil.rmtree(files)
    weights = str(PROMPT_CLASSIFIER_CHECKPOINT)  # a soup is named the same way, before the corpus is read
    r = in_process("train", "prompt-soup", weights, weights, "--policy", str(tmp_path / "none.yaml"),
                   "--out", str(tmp_path / "soup.safetensors"))
    said = " ".join(r.stderr.replace("│", " ").split())
    assert r.returncode == BAD_INPUT.exit_code and "--policy" in said and "no such file" in said
    assert not list(tmp_path.iterdir())
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: x\n")  # never read: the start is named first
    r = in_process("train", "prompt-classifier", "--init", weights, "--head-init", "probe", "--out",
                   str(tmp_path / "w.safetensors"), "--policy", str(policy))
    said = " ".join(r.stderr.replace("│", " ").split())
    assert r.returncode == BAD_INPUT.exit_code and "--init continues the file's own adapters and head" in said
    r = in_process("train", "prompt-classifier", "--init", weights, "--policy", str(policy))  # --out: the file itself
    said = " ".join(r.stderr.replace("│", " ").split())
    assert r.returncode == BAD_INPUT.exit_code and "--out" in said and "is the file --init continues" in said
    assert [p.name for p in tmp_path.iterdir()] == ["policy.yaml"] and policy.read_text() == "version: x\n"


def test_generate_edit_needs_both_files(url, tmp_path):
    from t2iguard.cli.demo import centre_mask
    from t2iguard.runtime.images import encode_png

    mask = tmp_path / "mask.png"
    mask.write_bytes(encode_png(__import__("numpy").repeat(centre_mask(256)[..., None], 3, -1)))
    r = t2iguard("generate", "a yellow square", "--mask", str(mask), "--url", url, "--out", str(tmp_path))
    assert r.returncode == BAD_INPUT.exit_code and "`MASK_IMAGE` was given without `INIT_IMAGE`" in r.stderr


def test_generate_unreachable_server_exit_1(tmp_path):
    r = t2iguard("generate", "a red circle", "--url", "localhost:1", "--out", str(tmp_path))
    assert r.returncode == OTHER.exit_code and "error" in r.stderr


@pytest.mark.parametrize("via_stdin", [False, True])
def test_screen_jsonl(url, tmp_path, via_stdin):
    prompts = "a cat on a sofa\na photo of a person killing another person\n\n"
    src = tmp_path / "prompts.txt"
    src.write_text(prompts)
    args = ["screen", "--input", "-" if via_stdin else str(src), "--url", url, "--jsonl"]
    r = t2iguard(*args, stdin=prompts if via_stdin else None)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [d["decision"] for d in lines] == ["allow", "block"]
    assert {"prompt", "decision", "scores", "flagged"} <= set(lines[1]) and lines[1]["flagged"] == ["violence"]


def test_help_explains_commands():
    r = t2iguard("--help")
    assert r.returncode == 0
    for cmd in ("build", "serve", "generate", "screen", "demo"):
        assert cmd in r.stdout


def test_rewrite_jsonl(url):
    r = t2iguard("rewrite", "--input", "-", "--url", url, "--jsonl", "--seed", "2",
                 stdin="image of a ceo\na cat on a sofa\n")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert set(lines[0]) == {"prompt", "rewritten", "rewrites"}
    assert lines[0]["rewrites"][0]["kind"] == "diversity" and lines[1]["rewritten"] == "a cat on a sofa"
