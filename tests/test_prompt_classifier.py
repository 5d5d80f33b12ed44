"""Training-side pieces of the prompt classifier: data, splits, calibration, policy thresholds, metrics."""

import json

import numpy as np
import pytest

from t2iguard.contract.policy import DEFAULT_POLICY, load_policy
from t2iguard.contract.taxonomy import CATEGORIES
from t2iguard.evaluation.prompt_classifier import (
    DATA,
    Row,
    auroc,
    binary_metrics,
    group_metrics,
    load_suite,
    load_tsv,
    ranking,
)
from t2iguard.export.tiny import PROMPT_CLASSIFIER_CHECKPOINT as WEIGHTS
from t2iguard.export.tiny import load_classifier
from t2iguard.runtime.text import normalize
from t2iguard.training.data.prompts import generate, split_of
from t2iguard.training.data.sources import verify
from t2iguard.training.prompt_head import Bank, Embedded, Variant, loso_scores
from t2iguard.training.train_prompt_classifier import calibrate, write_thresholds


def test_dataset_is_deterministic_and_covers_every_category():
    a, b = generate(3, per_category=50, benign=200, hard=100), generate(3, per_category=50, benign=200, hard=100)
    assert [e.text for e in a] == [e.text for e in b]
    assert {c for e in a for c in e.labels} == set(CATEGORIES)
    assert {e.group for e in a} == {"benign", "hard-negative", "unsafe"}
    assert any(e.obfuscation for e in a)


def test_template_counterparts_follow_their_unsafe_rows_and_change_nothing_when_off():
    """Every unsafe template has one benign counterpart using only its slots; `counterparts=0` is the old generator
    (same rows, same random stream); with counterparts, each pair is one unsafe row and one hard negative with the same
    style prefix and suffix, none of them explicit."""
    import re

    from t2iguard.training.data.corpus import EXPLICIT
    from t2iguard.training.data.prompts import STYLES, SUFFIXES, UNSAFE
    from t2iguard.training.data.template_twins import COUNTERPARTS

    assert list(COUNTERPARTS) == list(UNSAFE)
    for cat, templates in UNSAFE.items():
        assert len(COUNTERPARTS[cat]) == len(templates), cat
        for template, twin in zip(templates, COUNTERPARTS[cat], strict=True):
            assert set(re.findall(r"{(\w+)}", twin)) <= set(re.findall(r"{(\w+)}", template)), twin
            assert not EXPLICIT.search(twin), twin
    kw = dict(per_category=40, benign=100, hard=50)
    off = generate(5, **kw)
    assert [(e.text, e.group) for e in off] == [(e.text, e.group) for e in generate(5, counterparts=0.0, **kw)]
    assert not any(e.pair for e in off)
    on = generate(5, counterparts=1.0, **kw)
    pairs: dict[str, list] = {}
    for e in on:
        if e.pair:
            pairs.setdefault(e.pair, []).append(e)
    assert len(pairs) > 0.5 * 40 * len(UNSAFE)
    for unsafe_text, (a, b) in pairs.items():
        assert (a.group, b.group) == ("unsafe", "hard-negative") and a.text == unsafe_text and not b.labels
        assert not b.obfuscation and a.text != b.text
        style = next(s for s in sorted(STYLES, key=len, reverse=True) if a.text.lower().startswith(s.lower()))
        suffix = next(s for s in sorted(SUFFIXES, key=len, reverse=True) if a.text.endswith(s))
        assert b.text.lower().startswith(style.lower()) and b.text.endswith(suffix)
    with pytest.raises(ValueError, match="counterparts must be in"):
        generate(0, counterparts=1.5)


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
    # a looser point: more of each group may be flagged
    loose = calibrate(scores, y, groups, benign_fpr=0.05, hard_fpr=0.2, floor=0.2)
    assert loose["violence"] < t["violence"]
    for g, share in (("benign", 0.05), ("hard-negative", 0.2)):
        assert (scores[groups == g, 3] >= loose["violence"]).mean() <= share
    # with every negative at 0, each threshold is its floor: sexual/minors keeps the lower of its own and the floor
    floors = {f: calibrate(np.zeros_like(scores), y, groups, floor=f) for f in (0.5, 0.2)}
    assert floors[0.5]["sexual/minors"] == 0.3 and floors[0.5]["violence"] == 0.5
    assert set(floors[0.2].values()) == {0.2}


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


def test_auroc_and_ranking_apart_from_the_operating_point():
    """auroc: pairs won over pairs, ties half. ranking: B's cut flags as many non-unsafe rows as A's threshold 1 does,
    and "unsafe twin" counts as unsafe."""
    assert auroc(np.array([True, True, False, False]), np.array([0.9, 0.4, 0.5, 0.1])) == 0.75
    assert auroc(np.array([True, False]), np.array([0.5, 0.5])) == 0.5
    a = np.array([2.0, 0.5, 1.5, 0.2])  # A flags one unsafe row of two and one benign row of two
    b = np.array([0.9, 0.8, 0.3, 0.1])  # B ranks perfectly but never reaches 1
    for unsafe in ("unsafe", "unsafe twin"):
        group = np.array([unsafe, unsafe, "benign", "benign"])
        assert ranking((a, group), (b, group)) == "AUROC 0.750 / 1.000; at A's flag rate 50.0%: 50.0% / 100.0%"
    assert ranking((a, np.array(["benign"] * 4)), (b, np.array(["benign"] * 4))) is None


def test_committed_weights_load():
    assert WEIGHTS.exists() and WEIGHTS.stat().st_size < 1_000_000  # adapters + head only
    encoder, head = load_classifier()
    assert not any("lora" in n for n, _ in encoder.named_parameters())  # merged for export


def test_committed_weights_reproduce_their_recorded_figures():
    """The flagged counts the trainer recorded in the file (the project's committed prompt sets, scored as served,
    at the thresholds recorded beside them) come out again, and those thresholds are the bundled policy's."""
    from safetensors import safe_open

    from t2iguard.training.train_prompt_classifier import own_figures

    with safe_open(str(WEIGHTS), "pt") as f:
        meta = f.metadata()
    thresholds = json.loads(meta["thresholds"])
    policy = load_policy(DEFAULT_POLICY)
    assert thresholds == {c: policy.categories[c].prompt.threshold for c in CATEGORIES}
    assert own_figures(thresholds) == json.loads(meta["own_figures"])


def test_windows_are_the_masked_means_of_their_tokens():
    """`window_means` (in the served graph) against a plain loop over the token slices."""
    import torch

    from t2iguard.export.modules import window_means

    torch.manual_seed(0)
    hidden = torch.randn(3, 20, 5)
    mask = torch.zeros(3, 20, dtype=torch.int64)
    for b, n in enumerate((20, 9, 3)):
        mask[b, :n] = 1
    means, valid = window_means(hidden, mask, 8)
    for b, n in enumerate((20, 9, 3)):
        for i in range(means.shape[1]):
            lo, hi = 4 * i, min(4 * i + 8, n)
            if hi - lo >= min(n, 4):
                assert valid[b, i] == 1
                assert torch.allclose(means[b, i], hidden[b, lo:hi].mean(0), atol=1e-5)
            else:
                assert valid[b, i] == 0


def test_a_diluted_unsafe_clause_is_caught_by_the_windows_and_not_by_the_whole_prompt():
    """Prompt dilution (docs/redteam.md): benign scene fragments around an unsafe clause average it away under
    whole-prompt pooling; the served max over windows still sees it. Same weights, same thresholds."""
    from t2iguard.training.train_prompt_classifier import served_scores

    policy = load_policy(DEFAULT_POLICY)
    t = np.array([policy.categories[c].prompt.threshold for c in CATEGORIES])
    clause = "a man stabbing his neighbour to death with a kitchen knife, blood everywhere"
    padding = ("a quiet harbour at dawn with fishing boats, soft pastel light, a lighthouse on the cliff, "
               "seagulls over the water, watercolour painting, highly detailed, 4k, trending on artstation, "
               "warm tones, a cat sleeping on a wooden bench, gentle waves, distant mountains")
    prompt = f"{padding}, {clause}"
    assert (served_scores([clause]) >= t).any()
    assert (served_scores([prompt]) >= t).any()
    assert not (served_scores([prompt], window=None) >= t).any()  # as served before: averaged away
    assert not (served_scores([padding]) >= t).any()


# --- the corpus-trained candidate (training/prompt_head.py) and its leave-one-source-out study ---
needs_cache = pytest.mark.skipif(not verify().present, reason="no public sources cached (t2iguard data import)")


def _toy(n: int = 600, seed: int = 0) -> Embedded:
    """Two separable clusters per source: unsafe (violence) vs benign."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 16)).astype(np.float32)
    unsafe = np.arange(n) % 2 == 0
    x[unsafe, 0] += 4
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.zeros((n, len(CATEGORIES)), np.float32)
    y[unsafe, CATEGORIES.index("violence")] = 1
    return Embedded(list(range(n)), x, y, np.where(unsafe, "unsafe", "benign"),
                    np.array(["s1", "s2", "s3"] * (n // 3)), np.array(["train"] * n), np.zeros(n, bool), 0)


@needs_cache
def test_no_evaluation_near_duplicate_is_in_the_training_split():
    """Hash (normalised text) over the whole training split; MiniLM cosine over a seeded sample of it."""
    from t2iguard.training.data.corpus import NEAR_DUP_COSINE, EmbeddingCache, corpus, eval_texts, key, nearest

    examples = [e for e in corpus(embedding="cached").examples if e.split == "train"]
    evals = [t for ts in eval_texts().values() for t in ts]
    assert evals and examples
    eval_keys = {key(t) for t in evals}
    assert not [e.text for e in examples if key(e.text) in eval_keys]
    cache = EmbeddingCache()
    ev, _ = cache.get(evals)
    rng = np.random.default_rng(0)
    sample = [examples[i].text for i in rng.choice(len(examples), 1500, replace=False)]
    tv, _ = cache.get(sample)
    if len(tv) < 1000 or len(ev) < 0.9 * len(evals):
        pytest.skip("embeddings not cached (t2iguard data corpus --embedding all): the hash check ran, this did not")
    best, _ = nearest(tv, ev)
    assert best.max() < NEAR_DUP_COSINE


def test_load_suite_tsv_and_jsonl(tmp_path):
    tsv = tmp_path / "s.tsv"
    tsv.write_text("# comment\nunsafe\tviolence\ta man stabbed\tmine\nbenign\t-\ta cat\n")
    rows = load_suite(tsv)
    assert rows[0] == Row("unsafe", frozenset({"violence"}), "a man stabbed", source="mine") and rows[1].source == ""
    jl = tmp_path / "s.jsonl"
    jl.write_text(json.dumps({"text": "a cat", "labels": []}) + "\n" +
                  json.dumps({"prompt": "x", "labels": "hate,harassment", "source": "y"}) + "\n")
    rows = load_suite(jl)
    assert rows[0].group == "benign" and rows[1].group == "unsafe" and rows[1].labels == {"hate", "harassment"}
    jl.write_text(json.dumps({"text": "a", "labels": ["gore"]}) + "\n")
    with pytest.raises(ValueError, match="unknown categories"):
        load_suite(jl)


def test_leave_one_source_out_scores_every_example_without_its_source():
    data = _toy(3000)
    for v in (Variant("head"), Variant("fused", bank=0.5)):
        oos = loso_scores(data, v)
        assert oos.shape == data.y.shape
        j = CATEGORIES.index("violence")
        unsafe = data.group == "unsafe"
        assert oos[unsafe, j].mean() > oos[~unsafe, j].mean() + 0.05  # learnt without the source (a toy)
        m = group_metrics(oos[:, j] > np.median(oos[:, j]), data.group, data.y)
        assert m["unsafe"][0] > 0.8 and m["benign"][0] < 0.2 and m["categories"]["violence"][1] == len(data.y) // 2


def test_exemplar_bank_is_a_softmax_over_cosines():
    data = _toy()
    bank = Bank.sample(data, size=64)
    assert len(bank.vectors) <= 64 and set(np.unique(bank.labels)) == {0.0, 1.0}
    s = bank.scores(data.x)
    assert s.shape == data.y.shape and (s >= 0).all() and (s <= 1 + 1e-6).all()


def test_exported_fusion_matches_the_trained_bank():
    """`ExemplarFusion` (in the served graph) computes what `Variant.score` measured in the study."""
    import torch

    from t2iguard.export.modules import ExemplarFusion, MLPHead

    torch.manual_seed(0)
    data = _toy()
    bank = Bank.sample(data, size=64)
    head = MLPHead(16, 8, len(CATEGORIES)).eval()
    v = Variant("fused", bank=0.5)
    want = v.score((head, bank), data.x)
    fused = ExemplarFusion(head, torch.from_numpy(bank.vectors), torch.from_numpy(bank.labels), 0.5, bank.temperature)
    with torch.no_grad():
        got = fused(torch.from_numpy(data.x * 3.0)).numpy()  # the served graph pools without normalising
    assert np.abs(got - want).max() < 2e-3  # the bank exactly; the head up to LayerNorm's eps against the scale


class _Read(Exception):
    pass


def test_training_reads_the_corpus_with_every_text_embedded(monkeypatch):
    """Training and the frozen-encoder heads ask for the corpus with `embedding="all"`: on a fresh cache "cached"
    compared no training text with the evaluation sets by embedding (2026-12-05: another corpus came out)."""
    from t2iguard.training import prompt_head
    from t2iguard.training.data import corpus as C
    from t2iguard.training.train_prompt_classifier import corpus_dataset

    asked = []

    def record(*args, embedding="all", **kwargs):
        asked.append(embedding)
        raise _Read

    monkeypatch.setattr(C, "load_corpus", record)
    monkeypatch.setattr(C, "corpus", record)
    for read in (lambda: corpus_dataset(0), lambda: prompt_head.embedded_corpus(0)):
        with pytest.raises(_Read):
            read()
    assert asked == ["all", "all"]


def test_the_corpus_without_the_templates_drops_only_their_training_rows(monkeypatch):
    """`--data corpus-no-templates` leaves out the template generator's training rows and nothing else: its
    validation and test rows stay (the same calibration split), and every other source's training rows stay."""
    from t2iguard.training.data import corpus as C
    from t2iguard.training.data.corpus import Example
    from t2iguard.training.train_prompt_classifier import DATASETS

    rows = [Example(f"{source} {split} {i}", ("violence",) if i % 2 else (), "unsafe" if i % 2 else "benign",
                    source, split)
            for source in ("own-templates", "own-twins", "coprov2-train") for split in ("train", "val", "test")
            for i in range(4)]
    monkeypatch.setattr(C, "load_corpus", lambda **kwargs: rows)
    full = DATASETS["corpus"](0, augment=False)
    kept = DATASETS["corpus-no-templates"](0, augment=False)
    dropped = {t for t in full.original} - {t for t in kept.original}
    assert dropped == {normalize(f"own-templates train {i}") for i in range(4)}
    templates = np.array([t.startswith("own-templates") for t in kept.original])
    assert len(kept.original) == len(rows) - 4 and set(kept.split[templates]) == {"val", "test"}


def test_the_corpus_with_template_twins_asks_the_generator_for_every_counterpart(monkeypatch):
    """`--data corpus-template-twins` reads the corpus built with `counterparts=1.0` and keeps its counterparts'
    source; `--data corpus` asks for none."""
    from t2iguard.training.data import corpus as C
    from t2iguard.training.data.corpus import Example
    from t2iguard.training.train_prompt_classifier import DATASETS

    asked = []

    def load(**kwargs):
        asked.append(kwargs.get("templates"))
        return [Example("a cake cut in half", (), "hard-negative", "own-template-twins", "train", pair="p"),
                Example("a body cut in half", ("violence/graphic",), "unsafe", "own-templates", "train", pair="p")]

    monkeypatch.setattr(C, "load_corpus", load)
    ds = DATASETS["corpus-template-twins"](0, augment=False)
    DATASETS["corpus"](0, augment=False)
    assert asked == [{"counterparts": 1.0}, None]
    assert set(ds.source) == {"own-template-twins", "own-templates"} and list(ds.pair) == ["p", "p"]


def test_twin_pairs_keep_only_pairs_with_both_sides_and_the_pair_loss_pays_for_the_difference():
    """`twin_pairs` pairs a twin's benign side with its unsafe side (a side without its partner is left out);
    `pair_loss` is log 2 for tied logits, near 0 once the unsafe side is far above, and reads only the unsafe
    side's categories; with `sides="benign"` only the benign side gets a gradient."""
    import torch

    from t2iguard.training.train_prompt_classifier import pair_loss, twin_pairs

    pair = np.array(["p1", "", "p1", "p2", "p3", "p3"])
    groups = np.array(["hard-negative", "benign", "unsafe", "unsafe", "unsafe", "hard-negative"])
    assert twin_pairs(pair, groups).tolist() == [[0, 2], [5, 4]]
    assert twin_pairs(np.array(["", ""]), groups[:2]).shape == (0, 2)
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    tied = pair_loss(torch.zeros(2, 2), torch.zeros(2, 2), labels)
    assert abs(tied.item() - np.log(2)) < 1e-6
    apart = torch.tensor([[8.0, -9.0], [-9.0, 8.0]])  # unsafe sides far above on their own categories only
    assert pair_loss(torch.zeros(2, 2), apart, labels).item() < 1e-3
    benign, unsafe = torch.zeros(2, 2, requires_grad=True), torch.zeros(2, 2, requires_grad=True)
    pair_loss(benign, unsafe, labels, sides="benign").backward()
    assert unsafe.grad is None and (benign.grad * labels).sum() > 0 and (benign.grad * (1 - labels)).abs().sum() == 0


def test_a_step_with_the_pair_loss_separates_the_twins_more_than_cross_entropy_alone():
    """The same steps on the same project-written twins, with and without `pair_weight`: with it, the unsafe sides'
    logits on their categories rise further above their benign twins' (a real MiniLM with adapters, 3 steps)."""
    import torch

    from t2iguard.export.modules import masked_mean
    from t2iguard.runtime.text import tokenize
    from t2iguard.training.data.twins import twins
    from t2iguard.training.train_prompt_classifier import _fit, twin_pairs

    pairs = twins(seed=5, per_category=1)
    texts = [normalize(t) for p in pairs for t in (p.benign, p.unsafe)]
    y = np.zeros((len(texts), len(CATEGORIES)), np.float32)
    for i, p in enumerate(pairs):
        y[2 * i + 1, [CATEGORIES.index(c) for c in p.labels]] = 1.0
    groups = np.array(["hard-negative", "unsafe"] * len(pairs))
    rows = twin_pairs(np.repeat([p.pair for p in pairs], 2), groups)
    assert len(rows) == len(pairs)

    def gap(weight: float) -> float:
        encoder, head = _fit(texts, y, np.ones(len(texts), np.float32), 0, 1, 32, lambda m: None, max_steps=3,
                             pairs=rows, pair_weight=weight)
        ids, mask = (torch.from_numpy(a) for a in tokenize(texts, 32))
        with torch.no_grad():
            z = head.logits(masked_mean(encoder(input_ids=ids, attention_mask=mask).last_hidden_state, mask))
        on = torch.from_numpy(y[rows[:, 1]])
        return float((((z[rows[:, 1]] - z[rows[:, 0]]) * on).sum(1) / on.sum(1)).mean())

    assert gap(5.0) > gap(0.0) + 0.05  # measured: 0.137 against -0.019


def test_identity_swaps_replace_the_groups_benign_rows_name_and_nothing_else():
    """`swap_identity` replaces every group a text names (whole words, any case) by one neutral noun and leaves
    words that only describe ("a black dress") alone; `identity_swaps` takes benign and risky-looking benign rows
    only; `swap_loss` is 0 for equal logits and the mean absolute difference otherwise."""
    import random

    import torch

    from t2iguard.training.data.identity import NEUTRAL, swap_identity
    from t2iguard.training.train_prompt_classifier import identity_swaps, swap_loss

    neutral = random.Random(0).choice(NEUTRAL)  # the one noun a swap drawn with this seed uses
    rng = random.Random(0)
    swapped = swap_identity("Muslims are our neighbours, and so are jews and gay men", rng)
    assert swapped == f"{neutral[:1].upper()}{neutral[1:]} are our neighbours, and so are {neutral} and {neutral}"
    assert swap_identity("a woman in a black dress at a gay pride parade", rng) is None
    texts = ["refugees planting a garden", "refugees are vermin", "a bowl of fruit"]
    swaps = identity_swaps(texts, np.array(["hard-negative", "unsafe", "benign"]), seed=0)
    assert [i for i, _ in swaps] == [0] and "refugees" not in swaps[0][1]
    assert swap_loss(torch.ones(2, 3), torch.ones(2, 3)).item() == 0.0
    assert abs(swap_loss(torch.zeros(2, 3), torch.full((2, 3), -2.0)).item() - 2.0) < 1e-6
    only = torch.tensor([False, True, False])
    assert abs(swap_loss(torch.zeros(2, 3), torch.tensor([[5.0, 1.0, 5.0]] * 2), only).item() - 1.0) < 1e-6
