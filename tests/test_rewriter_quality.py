"""The trained rewriter on prompts it never saw (held-out names, streets, roles), in-process on
the built repository: the same measures as `t2iguard eval rewriter`, at a smaller size. The checks
of the public lists' held-out part run where the sources cache holds them and skip otherwise."""

import numpy as np
import pytest

from t2iguard.evaluation.rewriter import Rewriter, anonymisation, diversity, no_op, public_heldout
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


@pytest.fixture(scope="module")
def public():
    p = D.public_vocab()
    if not p.heldout.first:
        pytest.skip("no public name lists in the sources cache (`t2iguard data import --mirror DIR`)")
    return p


def _words(entries) -> set[str]:
    return {w.lower() for e in entries for w in e.split()}


def test_public_held_out_part_is_large_and_disjoint_from_training(public):
    held, train = public.heldout, public.train
    assert len(held.first) >= 200 and len(held.last) >= 200 and len(held.occupations) >= 100
    held_names, train_names = _words(held.first + held.last), _words(train.first + train.last)
    assert not held_names & train_names and not held_names & D.reserved_words()
    hand_roles = {r.lower() for r in D.ROLES + D.HELDOUT_ROLES}
    assert not {o.lower() for o in held.occupations} & ({o.lower() for o in train.occupations} | hand_roles)
    assert not set(held.figures) & (set(train.figures) | set(D.FIGURES))


def test_without_the_cache_training_uses_the_hand_lists(tmp_path):
    p = D.public_vocab(tmp_path)
    assert p.sources == () and not p.train.first and not p.heldout.occupations
    data = D.generate(0, n=300, vocab=D.HAND + D.Vocab.of(p.train))
    names = {e.text[s:x] for e in data for s, x, label in e.spans if label == "NAME"}
    assert names and all(w in D.FIRST + D.LAST for n in names for w in n.split())


def test_public_held_out_names_and_occupations(rw, public):
    """A small fixed sample (the first 40 entries of each held-out list; about 20 s): floors under what it
    measured with the tagger of 2026-12-04 (mean recall 76.8%, figures kept 77.5%, fires >= 85%, stated 95%;
    the token head reading its neighbours, 2026-12-05: 87.5%, 77.5%, >= 87.5%, 100%), each above the tagger
    before issue 21 item 5 on the full lists (68.3%, 50.1%, 63.1%)."""
    p = public_heldout(rw, seed=3, limit=40)
    assert p["names"]["recall_all"] >= 0.72 and p["names"]["recall"]["usual (as in training)"] >= 0.9
    assert p["names"]["figures_kept"] >= 0.65
    assert min(p["occupations"]["fires"].values()) >= 0.8 and p["occupations"]["stated_unchanged"] >= 0.9


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


def test_prompts_without_people_are_left_alone(rw):
    """Shape captions, numbered or not, name no person: no rewrite (a first mixture of the context head's training
    data tagged "a shape number 3" as an unspecified person and a private individual, and rewrote it)."""
    prompts = [f"a shape number {i}" for i in range(40)] + [
        "a red circle on a blue background", "a blue square on the left", "a shape", "number 7", "a cat on a sofa",
        "a green triangle in the center, sand background"]
    out = rw.rewrite(rw.tag(prompts), np.arange(len(prompts)))
    assert [t for t, _ in out] == prompts
