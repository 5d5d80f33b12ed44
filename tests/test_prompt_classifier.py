"""Training-side pieces of the prompt classifier: data, splits, calibration, policy thresholds, metrics."""

import numpy as np

from t2iguard.contract.policy import DEFAULT_POLICY, load_policy
from t2iguard.contract.taxonomy import CATEGORIES
from t2iguard.evaluation.prompt_classifier import DATA, Row, binary_metrics, load_tsv
from t2iguard.export.tiny import PROMPT_CLASSIFIER_CHECKPOINT as WEIGHTS
from t2iguard.export.tiny import load_classifier
from t2iguard.runtime.text import normalize
from t2iguard.training.data.prompts import generate, split_of
from t2iguard.training.train_prompt_classifier import calibrate, write_thresholds


def test_dataset_is_deterministic_and_covers_every_category():
    a, b = generate(3, per_category=50, benign=200, hard=100), generate(3, per_category=50, benign=200, hard=100)
    assert [e.text for e in a] == [e.text for e in b]
    assert {c for e in a for c in e.labels} == set(CATEGORIES)
    assert {e.group for e in a} == {"benign", "hard-negative", "unsafe"}
    assert any(e.obfuscation for e in a)


def test_splits_follow_the_normalised_text():
    assert split_of("a naked woman") == split_of("a n@ked woman") == split_of("ａ ｎａｋｅｄ ｗｏｍａｎ")
    shares = np.mean([split_of(f"prompt number {i}") == "train" for i in range(2000)])
    assert 0.75 < shares < 0.85


def test_held_out_prompts_are_not_training_data():
    train = {normalize(e.text).lower() for e in generate(0, benign=8000, hard=5000)}
    for path in ("test_prompts.tsv", "dev_prompts.tsv", "dev_prompts_2.tsv"):
        rows = load_tsv(DATA / path)
        assert len(rows) > 150
        assert not [r.prompt for r in rows if normalize(r.prompt).lower() in train]


def test_calibration_meets_the_operating_point():
    rng = np.random.default_rng(0)
    n = 4000
    y = np.zeros((n, len(CATEGORIES)), np.float32)
    y[:1000, 3] = 1
    scores = rng.random((n, len(CATEGORIES))).astype(np.float32) * 0.6
    scores[:1000, 3] = 0.9
    groups = np.array(["unsafe"] * 1000 + ["benign"] * 2000 + ["hard-negative"] * 1000)
    t = calibrate(scores, y, groups)
    assert t["sexual/minors"] >= 0.3 and all(v >= 0.5 for k, v in t.items() if k != "sexual/minors")
    benign_fp = (scores[groups == "benign", 3] >= t["violence"]).mean()
    assert benign_fp <= 0.001 and t["violence"] < 0.9


def test_write_thresholds_writes_a_new_policy_version(tmp_path):
    """Calibration never edits the operator's file silently: new thresholds come with a new version."""
    import datetime

    policy = tmp_path / "policy.yaml"
    policy.write_text(DEFAULT_POLICY.read_text())
    before = load_policy(policy).version
    day = datetime.date(2031, 1, 2)
    version = write_thresholds({"violence": 0.77, "privacy": 0.61}, policy, today=day)
    p = load_policy(policy)
    assert version == p.version == "2031.01.02-1" != before
    assert p.categories["violence"].prompt.threshold == 0.77 and p.categories["privacy"].prompt.threshold == 0.61
    assert p.categories["violence"].image.threshold == load_policy().categories["violence"].image.threshold
    assert "# t2iguard policy" in policy.read_text()  # comments survive
    assert write_thresholds({"violence": 0.5}, policy, today=day) == "2031.01.02-2"  # same day: next number
    text = policy.read_text()
    assert write_thresholds({"violence": 0.5}, policy, today=day) == "2031.01.02-2"  # unchanged: no new version
    assert policy.read_text() == text


def test_binary_metrics():
    rows = [Row("benign", frozenset(), "a"), Row("over-refusal", frozenset(), "b"),
            Row("unsafe", frozenset({"violence"}), "c"), Row("unsafe", frozenset({"violence"}), "d", "leet")]
    m = binary_metrics(rows, [False, True, True, False])
    assert (m["fpr_benign"], m["fpr_over_refusal"], m["recall_unsafe"], m["recall_leet"]) == (0.0, 1.0, 0.5, 0.0)


def test_committed_weights_load():
    assert WEIGHTS.exists() and WEIGHTS.stat().st_size < 1_000_000  # adapters + head only
    encoder, head = load_classifier()
    assert not any("lora" in n for n, _ in encoder.named_parameters())  # merged for export
