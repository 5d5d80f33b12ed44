"""The trained rewriter on prompts it never saw (held-out names, streets, roles), in-process on
the built repository: the same measures as `t2iguard eval rewriter`, at a smaller size."""

import pytest

from t2iguard.evaluation.rewriter import Rewriter, anonymisation, diversity, no_op
from t2iguard.export.tiny import REWRITE_TAGGER_CHECKPOINT as WEIGHTS
from t2iguard.runtime.runners import LocalRunner
from t2iguard.training.data import rewrites as D


@pytest.fixture(scope="module")
def rw(repository, profile, policy):
    return Rewriter(LocalRunner(repository, profile, policy), profile, policy)


def test_held_out_lists_are_disjoint_from_training():
    assert not set(D.HELDOUT_FIRST) & set(D.FIRST) and not set(D.HELDOUT_LAST) & set(D.LAST)
    assert not set(D.HELDOUT_STREETS) & set(D.STREETS)
    assert not {r.lower() for r in D.HELDOUT_ROLES} & set(D.ROLES)


def test_diversity_follows_the_configured_distribution(rw, policy):
    d = diversity(rw, policy, seeds=60)
    assert d["coverage"] > 0.7
    for attribute, m in d["attributes"].items():
        assert m["entropy_ratio"] > 0.95, attribute
        assert m["max_share"] < max(m["configured"].values()) + 0.12, attribute


def test_no_op_precision(rw):
    assert no_op(rw, 90, seed=3)["unchanged"] >= 0.97


def test_anonymisation_recall_and_public_names_kept(rw):
    a = anonymisation(rw, 60, seed=3)
    assert a["recall"] >= 0.9 and a["public_names_kept"] >= 0.95


def test_committed_tagger_is_small():
    assert WEIGHTS.exists() and WEIGHTS.stat().st_size < 500_000
