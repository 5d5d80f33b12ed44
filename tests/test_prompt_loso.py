"""Leave-one-source-out for the served LoRA classifier (training/prompt_loso.py): the folds never train on the
unit they score, and a short study runs end to end (real training steps, real scoring)."""

import dataclasses
import json

import numpy as np
import pytest

from t2iguard.contract.taxonomy import CATEGORIES
from t2iguard.training import prompt_loso as L
from t2iguard.training.data.augment import SHARE
from t2iguard.training.data.corpus import OWN, digest
from t2iguard.training.train_prompt_classifier import Dataset, corpus_dataset


@pytest.fixture(scope="module")
def dataset():
    ds = corpus_dataset(0)
    return ds, L.unit_of(ds.source)


def test_no_fold_trains_or_calibrates_on_the_unit_it_scores(dataset):
    ds, units = dataset
    names = sorted(set(units))
    assert set(OWN) - {"own-template-twins"} <= set(names)  # the templates' counterparts: an option, off by default
    for unit in names:
        rows = L.fold_rows(ds, units, unit, seed=0, per_group=200)
        assert not (units[rows["train"]] == unit).any() and not (units[rows["val"]] == unit).any()
        assert (units[rows["scored"]] == unit).all() and len(rows["scored"]) > 0
        assert (ds.split[rows["train"]] == "train").all() and (ds.split[rows["val"]] == "val").all()
        for g in L.GROUPS:
            assert (ds.groups[rows["scored"]] == g).sum() <= 200
    ref = L.fold_rows(ds, units, L.REFERENCE, seed=0, per_group=50)
    assert (ds.split[ref["scored"]] == "test").all()
    assert set(units[ref["scored"]]) == {u for u in names if ((units == u) & (ds.split == "test")).any()}


def test_the_dataset_augments_only_public_training_rows_and_keeps_their_originals(dataset):
    ds, _ = dataset
    public = (ds.split == "train") & ~np.isin(ds.source, list(OWN))
    if not public.any():
        pytest.skip("no public sources in the cache (run `t2iguard data import --mirror DIR`)")
    changed = ds.texts != ds.original
    assert not (changed & ~public).any()
    # at most SHARE; fewer, because the rows are compared normalised, and the normaliser undoes most obfuscations
    assert 0.1 < changed[public].mean() <= SHARE
    verbatim = changed & np.array([o in t for o, t in zip(ds.original, ds.texts, strict=True)])
    assert verbatim.sum() > 0.3 * changed.sum()  # dilutions and frames keep the original row verbatim


def test_rates_count_a_prompt_flagged_by_any_category():
    scores = np.zeros((4, len(CATEGORIES)), np.float32)
    scores[0, 0], scores[1, 3], scores[2, 3] = 0.9, 0.6, 0.4
    groups = np.array(["unsafe", "unsafe", "benign", "benign"])
    thresholds = dict.fromkeys(CATEGORIES, 0.5)
    assert L.rates(scores, None, groups, thresholds) == {"benign": (0.0, 2), "unsafe": (1.0, 2)}
    assert L.rates(scores, None, groups, 0.3) == {"benign": (0.5, 2), "unsafe": (1.0, 2)}


def test_held_out_auroc_ranks_by_risk_over_the_thresholds_and_skips_one_sided_units():
    scores = np.zeros((4, len(CATEGORIES)), np.float32)
    scores[:, 0] = [0.45, 0.2, 0.3, 0.1]  # category 0 at threshold 0.9: risks 0.5, 0.22, 0.33, 0.11
    scores[2, 1] = 0.4  # category 1 at threshold 0.5: risk 0.8, above the first unsafe row's
    thresholds = dict.fromkeys(CATEGORIES, 0.5) | {CATEGORIES[0]: 0.9}
    fold = L.Fold("u", scores, None, np.array(["unsafe", "unsafe", "hard-negative", "benign"]), thresholds, 0.0)
    assert L.held_out_auroc(fold) == 0.5  # unsafe 0.5 beats 0.11 only; unsafe 0.22 beats 0.11 only
    fold.groups = np.array(["unsafe"] * 4)
    assert L.held_out_auroc(fold) is None


def test_a_short_study_runs_and_resumes_from_its_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(L, "cache_root", lambda: tmp_path)
    res = L.study(seed=0, steps=2, per_group=12, only=["own-twins"])
    r = res["units"]["own-twins"]
    assert r["held_out"]["unsafe"][1] == 12 and r["held_out"]["hard-negative"][1] == 12
    assert "own-twins" in L.markdown(res) and "AUROC" in L.markdown(res)
    assert 0.0 <= r["held_out_auroc"] <= 1.0
    assert "out_of_source" not in r  # one unit: no other unit to find its cap on
    assert "out_of_source_cap" in res  # ... but its own rows give the cap for a model trained on every unit
    assert "out_of_source_point" in res and "out_of_source_point" not in r  # and the point, likewise
    point = {"benign_fpr": 0.002, "hard_fpr": 0.05, "floor": 0.3}
    assert ("each on its own, at 0.2% / 5%, floor 0.3: the point for a model"
            in L.markdown(dict(res, out_of_source_point=point)))
    assert "No operating point makes" in L.markdown(dict(res, out_of_source_point=None))
    header = "| held-out unit | T | unsafe caught | risky-looking benign flagged | benign flagged |"
    two = {"seed": 0, "steps": 2, "per_group": 12, "data_sha256_16": "d", "units": {"u": dict(r, out_of_source={
        "cap": 0.5, "rates": {"hard-negative": (0.25, 4), "unsafe": (0.5, 4)}})}}
    assert f"{header}\n|---|---|---|---|---|\n| u | 0.50 | 50.0% (4) | 25.0% (4) | - |" in L.markdown(two)
    assert "each on its own, at T = 0.62: the cap for a model" in L.markdown(dict(two, out_of_source_cap=0.62))
    assert "No cap makes every held-out unit's rows meet" in L.markdown(dict(two, out_of_source_cap=None))
    assert set(r["thresholds"]) == set(CATEGORIES)
    for g in ("unsafe", "hard-negative"):  # a lower cap can only flag more
        flagged = [r["held_out"][g][0]] + [r["held_out_capped"][str(c)][g][0] for c in L.CAPS]
        assert flagged == sorted(flagged)
    assert set(r["shipped"]) == {"hard-negative", "unsafe"}  # the committed classifier on the same test rows
    cached = sorted(p.suffix for p in (tmp_path / "loso-lora").iterdir())
    assert cached == [".npy", ".npz", ".npz"]  # the folds' checkpoints removed, their scores kept
    assert L.study(seed=0, steps=2, per_group=12, only=["own-twins"]) == res
    alone = L.study(seed=0, steps=2, per_group=12, only=["own-twins"], reference=False)["units"]["own-twins"]
    assert alone["held_out"] == r["held_out"] and alone["reference"] == alone["shipped"] == {}
    with pytest.raises(L.UnknownUnit, match="no such unit: microsoft/toxigen; the units are .*own-twins"):
        L.study(seed=0, steps=2, per_group=12, only=["own-twins", "microsoft/toxigen"])  # a unit's name, miscased


def test_folds_cut_from_another_training_set_hold_out_its_units_and_are_kept_apart(tmp_path, monkeypatch):
    """`--data corpus-template-twins`: the folds are cut from that set (its own unit, the counterparts, can be held
    out; the plain corpus has no such unit), cached under its key, and the report names the set; a set without
    sources is refused before any corpus is read."""
    monkeypatch.setattr(L, "cache_root", lambda: tmp_path)
    with pytest.raises(ValueError, match="data must be one of corpus, corpus-no-templates, corpus-template-twins"):
        L.study(data="templates")
    res = L.study(seed=0, steps=2, per_group=12, only=["own-template-twins"], reference=False,
                  data="corpus-template-twins")
    r = res["units"]["own-template-twins"]
    assert r["held_out"]["hard-negative"][1] == 12 and "unsafe" not in r["held_out"]  # counterparts: benign only
    assert res["data"] == "corpus-template-twins" and "(data corpus-template-twins, " in L.markdown(res)
    assert res["data_key"] in next((tmp_path / "loso-lora").glob("*.npz")).name
    with pytest.raises(L.UnknownUnit, match="no such unit: own-template-twins"):
        L.study(seed=0, steps=2, per_group=12, only=["own-template-twins"], reference=False)


def test_folds_with_the_ranking_loss_draw_no_held_out_twins_and_are_kept_apart(dataset, tmp_path):
    """`--pair-weight`: a fold draws twin pairs only from its training units, is cached apart from the plain fold
    and learns something else; the report names the loss."""
    ds, units = dataset
    train = L.fold_rows(ds, units, "own-stance", 0, 12)["train"]
    pairs = L.twin_pairs(ds.pair[train], ds.groups[train])
    assert len(pairs) and "own-stance" not in set(units[train][pairs].ravel())  # the held-out unit's twins: none
    assert {"own-twins"} <= set(units[train][pairs].ravel())  # ... the other units' twins are drawn
    plain, ranked = (L.run_fold(ds, units, "own-stance", 0, 2, 12, tmp_path, pair_weight=w) for w in (0.0, 1.0))
    folds = sorted(p.name for p in tmp_path.glob("*.npz"))
    assert len(folds) == 2 and sum("-pairs1" in f for f in folds) == 1  # cached apart, never mixed up
    assert not np.allclose(plain.scores, ranked.scores)  # the loss changed what the fold learnt
    res = {"seed": 0, "steps": 2, "per_group": 12, "data_sha256_16": "d", "units": {}}
    assert "the twins' ranking loss x1," in L.markdown(dict(res, pair_weight=1.0))
    assert "ranking loss" not in L.markdown(res)


def test_each_adapter_trains_its_own_encoder_weights(dataset):
    """`--adapter`: the shipped LoRA trains only its query/value adapters, `all-r16` adapters on every linear
    layer, `full` every encoder weight."""
    import torch

    from t2iguard.export.tiny import ADAPTERS, LOW_RANK, load_minilm
    from t2iguard.training.train_prompt_classifier import _fit

    ds, _ = dataset
    rows = np.flatnonzero(ds.split == "train")[:16]
    base = {k: v.clone() for k, v in load_minilm().state_dict().items()}
    for name, (config, lr) in ADAPTERS.items():
        if name in LOW_RANK:  # trained as `full`, then cut (test_low_rank_...)
            continue
        encoder, _ = _fit(list(ds.texts[rows]), ds.y[rows], ds.w[rows], 0, 1, 32, lambda m: None, max_steps=1,
                          adapter=config, encoder_lr=lr)
        state = encoder.state_dict()
        if config is None:
            moved = {k for k, v in state.items() if k in base and not torch.equal(v, base[k])}
            assert any("attention.self.query" in k for k in moved) and any("intermediate.dense" in k for k in moved)
            continue
        adapted = {k.split(".lora_")[0] for k in state if "lora_A" in k}
        assert all(any(k.endswith(t) for t in config["target_modules"]) for k in adapted)
        assert any("intermediate.dense" in k for k in adapted) == (name == "all-r16")
        frozen = {k[len("base_model.model."):].replace(".base_layer", ""): v for k, v in state.items()
                  if "lora_" not in k}
        assert all(torch.equal(v, base[k]) for k, v in frozen.items() if k in base)


def test_a_probed_head_is_where_fine_tuning_starts(dataset):
    """`--head-init probe` (LP-FT): the head is fitted on the frozen encoder's embeddings first, and fine-tuning
    starts from it: after one step the head is within one optimiser step of the probe, not at a random init."""
    from t2iguard.training.train_prompt_classifier import _fit, probe_head, train

    ds, _ = dataset
    rows = np.flatnonzero(ds.split == "train")[:32]
    texts, y, w = list(ds.texts[rows]), ds.y[rows], ds.w[rows]
    probe = probe_head(texts, y, w, seed=0)
    _, random_start = _fit(texts[:8], y[:8], w[:8], 0, 1, 32, lambda m: None, max_steps=1)
    _, probed = _fit(texts[:8], y[:8], w[:8], 0, 1, 32, lambda m: None, max_steps=1, head_state=probe)
    for name, p in probe.items():
        assert (probed.state_dict()[name] - p).abs().max() <= 2e-3  # one AdamW step at 1e-3 moves a weight ~1e-3
    far = max((random_start.state_dict()[n] - p).abs().max() for n, p in probe.items() if n.endswith("weight"))
    assert far > 0.05
    with pytest.raises(ValueError, match="head_init must be one of random, probe"):
        train(head_init="zeros")  # named before any data is read


def test_a_warm_start_begins_at_the_file_it_continues(dataset, tmp_path, monkeypatch):
    """`--init FILE`: the adapters (at the file's own rank) and head start where the file is: a run of zero steps
    writes the file's own weights back, with the file's seed, so a soup with it finds a shared start; a step at
    `WARM_LR` moves it a little; a file without adapters, and an `out` that is the file itself, are named."""
    import shutil

    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from t2iguard.contract.policy import DEFAULT_POLICY
    from t2iguard.export.modules import PROMPT_WINDOW, SentenceScorer
    from t2iguard.export.tiny import PROMPT_CLASSIFIER_CHECKPOINT, load_classifier
    from t2iguard.training import prompt_soup
    from t2iguard.training import train_prompt_classifier as T
    from t2iguard.training.embed import score
    from t2iguard.training.train_prompt_classifier import _fit, train, warm_start

    shipped = PROMPT_CLASSIFIER_CHECKPOINT
    start = warm_start(shipped)
    assert start.config["r"] == 16 and all(v.shape[0] == 16 for k, v in start.adapters.items() if "lora_A" in k)
    ds, _ = dataset
    rows = np.concatenate([np.flatnonzero(ds.split == "train")[:8]]
                          + [np.flatnonzero((ds.split == "val") & (ds.groups == g))[:100]
                             for g in ("benign", "hard-negative", "unsafe")])
    small = Dataset(ds.texts[rows], ds.y[rows], ds.w[rows], ds.split[rows], ds.groups[rows], ds.source[rows],
                    ds.digest)
    monkeypatch.setitem(T.DATASETS, "corpus", lambda seed: small)
    monkeypatch.setattr(T, "cache_root", lambda: tmp_path)  # its checkpoint, not the user's
    policy, out = tmp_path / "policy.yaml", tmp_path / "continued.safetensors"
    shutil.copy(DEFAULT_POLICY, policy)
    train(seed=3, init=shipped, max_steps=0, out=out, policy=policy)
    before, after = load_file(str(shipped)), load_file(str(out))
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
    assert (meta["seed"], meta["run_seed"], json.loads(meta["init"])["file"]) == ("0", "3", shipped.name)
    prompt_soup._shared_start(shipped, out, 0.5)  # raises unless the two share a start

    texts, y, w = list(ds.texts[rows[:8]]), ds.y[rows[:8]], ds.w[rows[:8]]
    stepped = _fit(texts, y, w, 0, 1, 32, lambda m: None, max_steps=1, adapter=start.config,
                   encoder_state=start.adapters, head_state=start.head, encoder_lr=T.WARM_LR, head_lr=T.WARM_LR)
    probe = ["a knight fighting a dragon", "a bowl of fruit on a table", *texts[:4]]
    as_served, moved = (score(SentenceScorer(*m, window=PROMPT_WINDOW).eval(), probe, 32)
                        for m in (load_classifier(shipped), stepped))
    assert 1e-5 < np.abs(moved - as_served).max() < 0.2

    bare = tmp_path / "bare.safetensors"
    save_file({"head.net.0.weight": torch.zeros(1)}, str(bare),
              metadata={"lora": "null", "categories": json.dumps(CATEGORIES), "hidden": "256", "seed": "0"})
    with pytest.raises(ValueError, match="carries no LoRA adapters"):
        warm_start(bare)
    with pytest.raises(ValueError, match="out is the file init continues"):
        train(init=shipped, out=shipped)
    with pytest.raises(ValueError, match="takes no head_init or adapter"):
        train(init=shipped, head_init="probe")


def test_low_rank_keeps_the_change_at_its_rank_and_drops_the_embeddings():
    """`full-r8`: every block weight's change from MiniLM has rank <= 8 after the cut, the leading directions of a
    change are kept, the embeddings are pretrained again, and the count of carried numbers is the factors'."""
    import torch

    from t2iguard.export.tiny import load_minilm

    base = load_minilm().state_dict()
    encoder = load_minilm()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in encoder.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 1e-2)
        q = encoder.encoder.layer[0].attention.self.query.weight
        strong = torch.outer(torch.randn(q.shape[0], generator=gen), torch.randn(q.shape[1], generator=gen))
        q.add_(strong)
    carried = L.low_rank(encoder, 8)
    state = encoder.state_dict()
    blocks = {k for k, v in state.items() if k.startswith("encoder.") and v.ndim == 2}
    assert all(torch.linalg.matrix_rank(state[k] - base[k]) <= 8 for k in blocks)
    assert all(torch.equal(state[k], base[k]) for k in state if "embeddings" in k)
    change = state["encoder.layer.0.attention.self.query.weight"] - base["encoder.layer.0.attention.self.query.weight"]
    assert torch.nn.functional.cosine_similarity(change.flatten(), strong.flatten(), dim=0) > 0.99
    small = sum(v.numel() for k, v in state.items() if k.startswith("encoder.") and v.ndim == 1)
    assert carried == small + sum(8 * sum(state[k].shape) for k in blocks)



def test_a_low_rank_file_loads_as_the_cut_encoder(tmp_path):
    """`--adapter full-r32`'s file layout: the change cut by `low_rank_change` and saved in fp16 under `low_rank.*`
    loads (`load_classifier`) as the encoder `low_rank` cuts in place, to fp16's precision; a name MiniLM does not
    have is refused."""
    import torch
    from safetensors.torch import save_file

    from t2iguard.export.modules import MLPHead
    from t2iguard.export.tiny import apply_low_rank, load_classifier, load_minilm, low_rank_change

    encoder = load_minilm()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in encoder.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 1e-2)
    change = low_rank_change(encoder, 4)
    L.low_rank(encoder, 4)
    head = MLPHead(encoder.config.hidden_size, 16, len(CATEGORIES))
    state = {f"low_rank.{k}": v for k, v in change.items()} | {f"head.{k}": v for k, v in head.state_dict().items()}
    path = tmp_path / "classifier.safetensors"
    save_file({k: v.detach().half().contiguous() for k, v in state.items()}, str(path),
              metadata={"categories": json.dumps(CATEGORIES), "hidden": "16", "lora": "null", "low_rank": "4"})
    loaded, _ = load_classifier(path)
    expected = encoder.state_dict()
    worst = max(float((v - expected[k]).abs().max()) for k, v in loaded.state_dict().items())
    assert worst < 2e-3  # fp16 keeps about 3 decimal digits of the biases, LayerNorms and factors
    assert "encoder.layer.0.attention.self.query.weight.a" in change and not any("embeddings" in k for k in change)
    with pytest.raises(ValueError, match="does not have"):
        apply_low_rank(load_minilm(), {"encoder.layer.9.output.dense.bias": torch.zeros(384)})
    with pytest.raises(ValueError, match="without the other"):
        apply_low_rank(load_minilm(), {"encoder.layer.0.output.dense.weight.a": torch.zeros(384, 4)})


def test_text_evident_rates_split_the_labelled_rows_by_their_reading_label(tmp_path):
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"digest": digest(t), "text_evident": y}) + "\n"
                              for t, y in (("a", 1), ("b", 0), ("c", 1))))
    scores = np.zeros((4, len(CATEGORIES)), np.float32)
    scores[0, 0] = scores[1, 2] = 0.9  # "a" caught, "b" flagged, "c" missed, "d" unlabelled
    fold = L.Fold("u", scores, scores, np.array(["unsafe"] * 4), dict.fromkeys(CATEGORIES, 0.5), 0.0)
    assert L.text_evident_rates(fold, np.array(["a", "b", "c", "d"]), labels) == {
        "text-evident": (0.5, 2), "image-only": (1.0, 1)}
    r = {"text_evident": {"text-evident": (0.5, 2), "image-only": (1.0, 1)},
         "text_evident_at_0.5": {"text-evident": (1.0, 2), "image-only": (1.0, 1)}}
    assert L.text_evident_line("u", r) == (
        "u, held out, on the rows labelled by reading their text, at the calibration (at 0.5): unsafe caught where "
        "the text itself asks for harm 50.0% (2) (100.0% (2)); flagged where only the image was harmful 100.0% (1) "
        "(100.0% (1)).")


def test_the_committed_reading_labels_are_the_seeded_sample_of_their_unit(dataset):
    ds, units = dataset
    for unit, path in L.TEXT_EVIDENT.items():
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        assert len(rows) == 150 and {r["text_evident"] for r in rows} == {0, 1}
        if unit not in set(units):
            pytest.skip(f"{unit} is not cached (run `t2iguard data import --mirror DIR`)")
        sample = L.text_label_sample(ds, units, unit)
        assert sorted(digest(t) for t in ds.original[sample]) == sorted(r["digest"] for r in rows)


def test_the_reading_sample_follows_each_rows_own_text_not_its_place():
    texts = [f"prompt {i}" for i in range(40)]

    def dataset(order, split):
        n = len(order)
        return Dataset(np.array([texts[i] for i in order], dtype=object), np.zeros((n, len(CATEGORIES)), np.float32),
                       np.ones(n, np.float32), np.array(split), np.full(n, "unsafe"), np.full(n, "a"), "d")

    first = dataset(range(40), ["train"] * 40)
    drawn = {first.original[i] for i in L.text_label_sample(first, first.source, "a", n=10)}
    # the rows reordered, half moved to another split and one text not drawn dropped: the same ten texts
    dropped = next(t for t in texts if t not in drawn)
    order = [i for i in reversed(range(40)) if texts[i] != dropped]
    moved = dataset(order, ["val", "train"] * 19 + ["val"])
    assert {moved.original[i] for i in L.text_label_sample(moved, moved.source, "a", n=10)} == drawn
    assert drawn != {first.original[i] for i in L.text_label_sample(first, first.source, "a", n=10, seed=22)}


def test_the_out_of_source_cap_is_the_lowest_meeting_the_goals_on_each_other_unit():
    def fold(unit, risky, unsafe):  # category 0 only; every fold's own threshold 0.9
        scores = np.zeros((len(risky) + len(unsafe), len(CATEGORIES)), np.float32)
        scores[:, 0] = risky + unsafe
        groups = np.array(["hard-negative"] * len(risky) + ["unsafe"] * len(unsafe))
        return L.Fold(unit, scores, None, groups, dict.fromkeys(CATEGORIES, 0.9), 0.0)

    # 20 risky-looking benign rows: at most 2 (10%) may be flagged, so T must exceed the third-highest, 0.60
    a = fold("a", [0.1] * 17 + [0.6, 0.7, 0.8], [0.95])
    assert L.out_of_source_cap([a]) == 0.61
    assert L.out_of_source_cap([fold("b", [], [0.3])]) is None  # no benign row: no cap to find
    assert L.out_of_source_cap([fold("d", [0.99] * 3, [])]) is None  # flagged at every cap: none meets the goals
    # beside 20 low rows of another unit: each unit meets the goals on its own (pooled, 4 of 40 could be flagged,
    # and T would only clear 0.1 while "a" had 3 of its 20 flagged)
    assert L.out_of_source_cap([a, fold("c", [0.1] * 20, [])]) == 0.61
    assert L.out_of_source_cap([fold("c", [0.1] * 20, []), fold("e", [0.3] * 5, [])]) == 0.31


def test_a_changed_label_mapping_or_normaliser_names_new_folds_and_checkpoints():
    """The same raw texts with other weights or groups (a source's mapping changed) or normalised otherwise (the
    normaliser changed) get another key, the same digest."""

    def ds(w, groups, texts=("a", "b")):
        n = len(groups)
        return Dataset(np.array(texts, dtype=object), np.zeros((n, len(CATEGORIES)), np.float32),
                       np.array(w, np.float32), np.array(["train"] * n), np.array(groups), np.array(["s"] * n), "d")

    base = ds([1, 1], ["unsafe", "benign"])
    assert base.key == ds([1, 1], ["unsafe", "benign"]).key and base.key.startswith("d-")
    assert ds([0.25, 1], ["unsafe", "benign"]).key != base.key  # a source's rows no longer weak
    assert ds([1, 1], ["unsafe", "hard-negative"]).key != base.key
    assert ds([1, 1], ["unsafe", "benign"], ("a", "b!")).key != base.key  # other normalised texts, the same digest


def test_the_out_of_source_point_catches_most_while_each_unit_meets_the_goals_on_its_own_calibration():
    """Each fold calibrates at a point on its own calibration rows; the point is chosen on the held-out rows."""
    def fold(unit, val_risky, risky, unsafe):  # category 0 only
        def rows(xs):
            s = np.zeros((len(xs), len(CATEGORIES)), np.float32)
            s[:, 0] = xs
            return s
        val = rows(val_risky)
        groups = np.array(["hard-negative"] * len(risky) + ["unsafe"] * len(unsafe))
        return L.Fold(unit, rows(risky + unsafe), np.zeros((len(groups), len(CATEGORIES)), np.float32), groups,
                      {}, 0.0, val, np.zeros_like(val), np.array(["hard-negative"] * len(val_risky)))

    # calibration rows 0.00-0.99: a point's threshold is the (1 - hard share) quantile, 0.79 (20%) to 0.98 (1%)
    val = [i / 100 for i in range(100)]
    # held out: 20 risky-looking benign rows (at most 2 may be flagged, at any point), unsafe rows at 0.85 and 0.95
    a = fold("a", val, [0.1] * 18 + [0.8, 0.82], [0.85, 0.95])
    p = L.out_of_source_point([a])
    assert p == L.OperatingPoint(0.001, 0.15, 0.5)  # the strictest point that catches both (0.1: 0.89)
    assert p.thresholds(a.val_scores, a.val_y, a.val_groups)["sexual"] == pytest.approx(0.8425, abs=1e-3)
    # a second unit whose risky-looking rows score 0.9 binds it: 10% at most, so no looser than 7% (0.92)
    b = fold("b", val, [0.1] * 17 + [0.9] * 3, [0.95])
    q = L.out_of_source_point([a, b])
    assert q == L.OperatingPoint(0.001, 0.05, 0.5)  # catches 0.95 on both (7% catches no more)
    assert all(L.meets_goals(f, q.thresholds(f.val_scores, f.val_y, f.val_groups)) for f in (a, b))
    assert not L.meets_goals(b, p.thresholds(b.val_scores, b.val_y, b.val_groups))
    assert L.out_of_source_point([fold("c", val, [], [0.9])]) is None  # no benign row: no point to find
    assert L.out_of_source_point([fold("d", val, [0.99] * 3, [])]) is None  # flagged at every point


def test_prompt_thresholds_calibrates_the_committed_weights_at_a_point_into_a_new_policy_version(tmp_path,
                                                                                                 monkeypatch, dataset):
    """`t2iguard train prompt-thresholds`: the committed classifier scored as served on validation rows, calibrated
    at the point asked for; a looser point gives no threshold above the stricter one's, and the scores are cached."""
    from typer.testing import CliRunner

    from t2iguard.cli.app import app
    from t2iguard.contract.policy import DEFAULT_POLICY, load_policy

    monkeypatch.setattr(L, "cache_root", lambda: tmp_path)
    strict = L.served_thresholds(L.OperatingPoint(0.001, 0.01, 0.5), per_group=40, ds=dataset[0])
    loose = L.served_thresholds(L.OperatingPoint(0.01, 0.2, 0.1), per_group=40, ds=dataset[0])
    assert [p.name.split("-")[0] for p in (tmp_path / "loso-lora").iterdir()] == ["val"]  # scored once
    assert all(loose[c] <= strict[c] for c in CATEGORIES) and any(loose[c] < strict[c] for c in CATEGORIES)
    assert min(strict.values()) >= 0.3 and min(loose.values()) >= 0.1
    policy = tmp_path / "policy.yaml"
    policy.write_text(DEFAULT_POLICY.read_text())
    r = CliRunner().invoke(app, ["train", "prompt-thresholds", "--benign-fpr", "0.01", "--hard-fpr", "0.2",
                                 "--floor", "0.1", "--per-group", "40", "--policy", str(policy)])
    assert r.exit_code == 0, r.output
    written = load_policy(policy)
    assert written.version != load_policy(DEFAULT_POLICY).version
    assert {c: written.prompt_thresholds()[c] for c in CATEGORIES} == loose
    r = CliRunner().invoke(app, ["train", "prompt-thresholds", "--benign-fpr", "0.01", "--hard-fpr", "0.2", "--floor",
                                 "0.1", "--per-group", "40", "--policy", str(policy),
                                 "--data", "corpus-template-twins"])
    assert r.exit_code == 0, r.output  # the counterparts' corpus: its own validation rows, scored and cached apart
    twins_key = L.DATASETS["corpus-template-twins"](0).key
    assert sorted(twins_key in p.name for p in (tmp_path / "loso-lora").iterdir()) == [False, True]
    r = CliRunner().invoke(app, ["train", "prompt-thresholds", "--benign-fpr", "0.01", "--hard-fpr", "0.2", "--floor",
                                 "0.1", "--family", "hate,harassment", "--family-benign-fpr", "0.001",
                                 "--family-hard-fpr", "0.01", "--family-floor", "0.5", "--per-group", "40",
                                 "--policy", str(policy)])
    assert r.exit_code == 0, r.output  # a point per family: hate and harassment strict, the rest loose
    family = {c: load_policy(policy).prompt_thresholds()[c] for c in CATEGORIES}
    assert family == {c: (strict if c in ("hate", "harassment") else loose)[c] for c in CATEGORIES}
    assert family != strict and family != loose
    r = CliRunner().invoke(app, ["train", "prompt-thresholds", str(tmp_path / "missing.safetensors")])
    assert r.exit_code == 2 and "no such file" in r.output


def test_a_family_point_calibrates_hate_apart_where_one_point_cannot_serve_both():
    """Hate's held-out rows allow at most 7% of its risky-looking calibration rows flagged; the other unit's unsafe
    rows need 15%: one point catches one unit, a point per family both; each unit still meets the goals."""
    def fold(unit, category, val, risky, unsafe):
        col = CATEGORIES.index(category)
        def rows(xs):
            s = np.zeros((len(xs), len(CATEGORIES)), np.float32)
            s[:, col] = xs
            return s
        groups = np.array(["hard-negative"] * len(risky) + ["unsafe"] * len(unsafe))
        v = rows(val)
        return L.Fold(unit, rows(risky + unsafe), np.zeros((len(groups), len(CATEGORIES)), np.float32), groups,
                      {}, 0.0, v, np.zeros_like(v), np.array(["hard-negative"] * len(val)))

    val = [i / 100 for i in range(100)]  # a point's threshold: 0.94 at 5% of these flagged, 0.84 at 15%
    hate = fold("hate", "hate", val, [0.1] * 17 + [0.9] * 3, [0.95])  # 0.9 flagged breaks its goal (15% > 10%)
    images = fold("images", "sexual", val, [0.1] * 20, [0.85])
    single = L.out_of_source_point([hate, images])
    caught = [L.rates(f.scores, f.y, f.groups, single.thresholds(f.val_scores, f.val_y, f.val_groups))["unsafe"][0]
              for f in (hate, images)]
    assert caught == [1.0, 0.0]  # one point: the hate unit's goal keeps every category strict
    family, share = L.out_of_source_family_point([hate, images])
    assert family == L.FamilyPoint(L.TEXT_HARM, L.OperatingPoint(0.001, 0.05, 0.5), L.OperatingPoint(0.001, 0.15, 0.5))
    assert share == 1.0
    for f in (hate, images):
        t = family.thresholds(f.val_scores, f.val_y, f.val_groups)
        assert L.meets_goals(f, t) and L.rates(f.scores, f.y, f.groups, t)["unsafe"][0] == 1.0
    res = {"seed": 0, "steps": 2, "per_group": 12, "data_sha256_16": "d", "units": {},
           "out_of_source_family_point": {**dataclasses.asdict(family), "caught": share}}
    assert ("hate, harassment at 0.1% / 5%, floor 0.5, every other category at 0.1% / 15%, floor 0.5; every "
            "held-out unit's rows meet the goals, each on its own, catching 100.0%") in L.markdown(res)
    assert ("`t2iguard train prompt-thresholds WEIGHTS --benign-fpr 0.001 --hard-fpr 0.15 --floor 0.5 --family "
            "hate,harassment --family-benign-fpr 0.001 --family-hard-fpr 0.05 --family-floor 0.5 --data corpus`"
            ) in L.markdown(res)
    assert "No pair of points" in L.markdown(dict(res, out_of_source_family_point=None))
    no_goal_rows = fold("u", "hate", val, [], [0.95])
    assert L.out_of_source_family_point([no_goal_rows]) is None
    assert L.family_point_bounds([hate, images], family) == (0, {})  # it catches every unsafe row: nothing more
    hate = fold("hate", "hate", val, [0.1] * 17 + [0.9] * 3, [0.95, 0.87])  # 0.87 caught only where 0.9 breaks
    family, share = L.out_of_source_family_point([hate, images])
    assert share == 0.75  # half the hate unit's unsafe rows, all the other's
    more, bounds = L.family_point_bounds([hate, images], family)
    assert more > 0 and bounds == {"hate": more}  # every hate point that catches more is the hate unit's to rule out
    res["out_of_source_family_point"] = {**dataclasses.asdict(family), "caught": share, "catching_more": more,
                                         "ruled_out_by": bounds}
    assert f"Of the {more} points that would catch more as hate, harassment's" in L.markdown(res)
    assert f"rule them out (how many each): hate ({more})." in L.markdown(res)
