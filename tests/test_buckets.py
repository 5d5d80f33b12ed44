"""Sequence length follows the prompt: the screening text models take the token axis in length buckets
(the spec's `seq_buckets`), and a prompt scores the same in its bucket as padded to `seq_len` (within 1e-4),
in-process and through Triton's dynamic batcher."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from t2iguard.contract import specs as S
from t2iguard.contract.taxonomy import CATEGORIES
from t2iguard.export.render import render
from t2iguard.export.trt import engine_profiles
from t2iguard.runtime.runners import ort_session
from t2iguard.runtime.text import normalize, tokenize, tokenize_with_offsets

#: prompts whose token counts land in every bucket (12, 16, 24, 32, 64, 77 and truncated past 77)
PROMPTS = ["a cat on a sofa", "a photo of a person killing another person",
           "a quiet harbour town at dawn, fishing boats and gulls",
           "a watercolor of a lighthouse at dusk with seagulls over a calm sea and fishing boats in the harbour",
           "a watercolor of a lighthouse at dusk with seagulls over a calm sea, fishing boats in the harbour "
           "and a kite",
           "portrait of my neighbour Jennifer Walsh at 42 Oak Street, " * 3,
           "a beautiful landscape with mountains and rivers and trees and flowers, " * 5,
           "a red circle " * 40]


def test_text_models_share_the_specs_buckets(profile):
    specs = S.build_specs(profile)
    buckets = S.seq_buckets(profile)
    assert buckets == (12, 16, 24, 32, 64, 77) and buckets[-1] == profile.seq_len
    for name in (S.TEXT_NORMALIZE, S.TEXT_TOKENIZE, S.PROMPT_CLASSIFIER, S.REWRITE_TAGGER):
        assert specs[name].seq_buckets == buckets, name
    assert not specs[S.TEXT_ENCODER].seq_buckets  # the UNet's context stays seq_len long
    cfg = render(specs[S.PROMPT_CLASSIFIER], "cpu")
    assert [list(i.dims) for i in cfg.input] == [[-1], [-1]]
    assert [list(i.dims) for i in render(specs[S.TEXT_ENCODER], "cpu").input] == [[77], [77]]
    trt = render(specs[S.PROMPT_CLASSIFIER], "trt")
    assert list(trt.instance_group[0].profile) == [str(i) for i in range(len(buckets))]
    profiles = engine_profiles(specs[S.PROMPT_CLASSIFIER])
    assert [p[S.INPUT_IDS] for p in profiles] == [[[1, b], [1, b], [profile.max_batch, b]] for b in buckets]
    assert len(engine_profiles(specs[S.UNET])) == 1


def test_bucketed_tokens_are_the_padded_tokens_cut_short(profile):
    buckets = S.seq_buckets(profile)
    ids, mask, offsets = tokenize_with_offsets(PROMPTS, profile.seq_len)
    for prompt, i, m, o in zip(PROMPTS, ids, mask, offsets, strict=True):
        bi, bm, bo = tokenize_with_offsets([prompt], profile.seq_len, buckets)
        n = int(m.sum())
        assert bi.shape[1] == S.bucket_length(n, buckets) >= n
        cut = bi.shape[1]
        assert (bi[0] == i[:cut]).all() and (bm[0] == m[:cut]).all() and (bo[0] == o[:cut]).all()
        assert not i[bi.shape[1]:].any()  # nothing cut but padding
    assert tokenize(PROMPTS[:3], profile.seq_len, buckets)[0].shape == (3, 16)  # a batch: its longest row's bucket
    assert tokenize(PROMPTS, profile.seq_len, buckets)[0].shape == (len(PROMPTS), 77)


@pytest.mark.parametrize("model", [S.PROMPT_CLASSIFIER, S.REWRITE_TAGGER])
def test_each_bucket_scores_as_the_padded_graph(model, repository, profile):
    spec = S.build_specs(profile)[model]
    sess = ort_session(repository / model / "1" / "model.onnx", spec.threads)
    names = [t.name for t in spec.outputs]
    texts = [normalize(p) for p in PROMPTS]
    ids, mask = tokenize(texts, profile.seq_len)
    padded = sess.run(names, {S.INPUT_IDS: ids, S.ATTENTION_MASK: mask})
    seen = set()
    for k, text in enumerate(texts):
        bi, bm = tokenize([text], profile.seq_len, spec.seq_buckets)
        seen.add(bi.shape[1])
        got = sess.run(names, {S.INPUT_IDS: bi, S.ATTENTION_MASK: bm})
        for name, want, have in zip(names, padded, got, strict=True):
            want = want[k:k + 1, :bi.shape[1]] if name == S.TOKEN_TAG_PROBS else want[k:k + 1]
            assert np.abs(have - want).max() < 1e-4, f"{model} {name}, {bi.shape[1]} tokens"
    assert seen == set(spec.seq_buckets)
    # a batch of mixed lengths padded to its longest row's bucket: the same scores again
    bi, bm = tokenize(texts[:3], profile.seq_len, spec.seq_buckets)
    got = sess.run(names, {S.INPUT_IDS: bi, S.ATTENTION_MASK: bm})
    assert np.abs(got[0] - padded[0][:3]).max() < 1e-4


def test_a_batch_runs_each_row_at_its_own_bucket(repository, profile, policy):
    """LocalRunner (the cpu target's fused ensembles, in-process evaluation) runs a mixed batch of the classifier
    as groups of one length bucket each: the graph is called once per bucket, at that bucket's length, and every
    row scores as the padded graph; the rewrite tagger (per-token outputs) runs the batch whole."""
    from t2iguard.runtime.runners import LocalRunner, run_by_length, splits_by_length

    specs = S.build_specs(profile)
    assert splits_by_length(specs[S.PROMPT_CLASSIFIER])
    assert not splits_by_length(specs[S.REWRITE_TAGGER]) and not splits_by_length(specs[S.TEXT_ENCODER])
    spec = specs[S.PROMPT_CLASSIFIER]
    sess = ort_session(repository / S.PROMPT_CLASSIFIER / "1" / "model.onnx", spec.threads)
    texts = [normalize(p) for p in PROMPTS]
    ids, mask = tokenize(texts, profile.seq_len)
    want = sess.run([S.PROMPT_SCORES], {S.INPUT_IDS: ids, S.ATTENTION_MASK: mask})[0]
    order = [7, 0, 3, 1, 5, 2, 4, 0, 6]  # every bucket, interleaved, one prompt twice
    bi, bm = tokenize([texts[k] for k in order], profile.seq_len, spec.seq_buckets)
    calls = []

    def run(x):
        calls.append(x[S.INPUT_IDS].shape)
        return sess.run([S.PROMPT_SCORES], x)

    got = run_by_length(run, {S.INPUT_IDS: bi, S.ATTENTION_MASK: bm}, spec.seq_buckets)[0]
    assert np.abs(got - want[order]).max() < 1e-4
    assert sorted(calls) == [(1, 16), (1, 24), (1, 32), (1, 77), (2, 64), (3, 12)]
    calls.clear()
    run_by_length(run, {S.INPUT_IDS: bi[[1, 3]], S.ATTENTION_MASK: bm[[1, 3]]}, spec.seq_buckets)
    assert calls == [(2, 12)]  # cut to the rows' own bucket, one call
    for threads in (None, 1):  # the spec's threads, and one (what the served prompt_guard's instances run)
        runner = LocalRunner(repository, profile, policy, threads)
        scores = runner.infer(S.PROMPT_CLASSIFIER, {S.INPUT_IDS: bi, S.ATTENTION_MASK: bm}, [S.PROMPT_SCORES])
        assert np.abs(scores[S.PROMPT_SCORES] - want[order]).max() < 1e-4
        options = runner._sessions[S.PROMPT_CLASSIFIER].get_session_options()
        assert options.intra_op_num_threads == (threads or spec.threads)


def test_served_screening_in_buckets_scores_as_the_padded_graph(url, repository, profile):
    """Through prompt_guard, prompts of every bucket sent at once (the dynamic batcher batches equal lengths):
    each prompt's scores are the padded graph's."""
    from t2iguard.client import AsyncSafeT2IClient

    spec = S.build_specs(profile)[S.PROMPT_CLASSIFIER]
    sess = ort_session(repository / S.PROMPT_CLASSIFIER / "1" / "model.onnx", spec.threads)
    ids, mask = tokenize([normalize(p) for p in PROMPTS], profile.seq_len)
    want = sess.run([S.PROMPT_SCORES], {S.INPUT_IDS: ids, S.ATTENTION_MASK: mask})[0]

    async def run():
        async with AsyncSafeT2IClient(url) as c:
            return await asyncio.gather(*(c.screen([p]) for p in PROMPTS * 3))

    results = [r[0] for r in asyncio.run(run())]
    for k, r in enumerate(results):
        for j, c in enumerate(CATEGORIES):
            if c not in r.screen.blocklist:  # a blocklist hit sets its category to 1
                assert abs(r.screen.scores[c] - want[k % len(PROMPTS), j]) < 1e-4 + 5e-5  # reports round to 1e-4
