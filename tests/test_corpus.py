"""The prompt-classifier corpus: counterfactual twins, hard negatives, loading with and without the cache,
and no evaluation-set near-duplicate in the training split."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import pytest

from t2iguard.contract.taxonomy import CATEGORIES
from t2iguard.training.data import corpus as C
from t2iguard.training.data import sources as S
from t2iguard.training.data import stance as ST
from t2iguard.training.data import twins as T
from t2iguard.training.data.prompts import split_of

#: a twin's two sides differ by at most this many word tokens (the harmful element, nothing else)
MAX_TWIN_EDIT = 16


def test_twins_cover_every_category_and_differ_minimally():
    for held_out, seed in ((False, 0), (True, T.EVAL_SEEDS.start)):
        pairs = T.twins(seed, per_category=30, held_out=held_out)
        assert {t.category for t in pairs} == set(CATEGORIES)
        for t in pairs:
            assert t.benign != t.unsafe and t.category in t.labels
            assert 0 < T.token_edit_distance(t.benign, t.unsafe) <= MAX_TWIN_EDIT, (t.benign, t.unsafe)
            assert t.labels == tuple(c for c in CATEGORIES if c in t.labels)
        assert all(t.labels for t in pairs)


def test_twins_are_reproducible_and_held_out_twins_share_no_frame_with_training():
    assert T.twins(3, per_category=10) == T.twins(3, per_category=10)
    for cat in CATEGORIES:
        train, held = T.frames(cat), T.frames(cat, held_out=True)
        assert train and held and not set(train) & set(held)
    with pytest.raises(ValueError):
        T.twins(T.EVAL_SEEDS.start)  # an evaluation seed for training twins
    with pytest.raises(ValueError):
        T.twins(0, held_out=True)
    train = {t.unsafe for t in T.twins(0, per_category=60)}
    held = {t.unsafe for t in T.twins(T.EVAL_SEEDS.start, per_category=60, held_out=True)}
    assert not train & held


def test_the_held_out_twins_are_the_ones_the_recorded_figures_were_measured_on():
    """Frames are added at the end of a category, never where an index would move a held-out frame: the
    evaluation twins (`evaluation/prompt_classifier.py`, the rule's own-twins row) stay the same 1,440 pairs
    (digest of the 2026-12-07 set, before the how-to and election-routine frames were added)."""
    pairs = T.twins(T.EVAL_SEEDS.start, held_out=True)
    text = "\n".join(f"{t.benign}\t{t.unsafe}" for t in pairs)
    assert len(pairs) == 1440 and hashlib.sha256(text.encode()).hexdigest()[:16] == "7e3d8b7b991dc46c"


def test_known_misses_are_on_the_unsafe_side():
    unsafe = {cat: " | ".join(f[2] for f in frames) for cat, frames in T.FRAMES.items()}
    assert "severed human limbs" in unsafe["violence/graphic"]  # gore without an action verb
    assert "rolled-up banknote" in unsafe["illicit"]  # a drug scene by its objects
    assert "terrorist bomb" in unsafe["violence"] and "torturing" in unsafe["violence"]
    assert "killing" in unsafe["violence"]
    figure_frames = T.FRAMES["public-figures"]
    assert any("sexual" in f[3] for f in figure_frames)  # explicit requests naming a celebrity
    assert "monkey" in unsafe["public-figures"] or "humiliated" in unsafe["public-figures"]


def test_hard_negatives_span_the_contexts_in_real_user_style():
    pairs = T.hard_negatives(0, 1500)
    assert len(pairs) == 1500 and pairs == T.hard_negatives(0, 1500)
    contexts = {c for _, c in pairs}
    for c in ("history", "medicine", "news", "fiction", "games", "art", "metaphor", "education", "law", "sport",
              "cooking"):
        assert c in contexts
    texts = [t for t, _ in pairs]
    assert any("restricted card" in t for t in texts)
    assert any("trending on artstation, 8k, octane render" in t for t in texts)
    assert sum(t.count(",") >= 3 for t in texts) > 100  # long comma-separated prompts


def test_stance_twins_share_the_harmful_words_and_differ_in_stance():
    pairs = ST.stance_twins(0, 400)
    assert len(pairs) == 400 and pairs == ST.stance_twins(0, 400)
    assert {t.category for t in pairs} == {"hate", "harassment"}
    assert all(t.labels == (t.category,) and t.benign != t.unsafe for t in pairs)
    claims = {a: d for a, d in ST.HATE_CLAIMS + ST.HARASSMENT_CLAIMS}
    for t in pairs:
        asserted = [a for a in claims if a in t.unsafe]
        assert asserted, t.unsafe  # the unsafe side asserts a claim ...
        # ... and the benign side repeats it, or its denial: the words are shared, the stance differs
        assert any(a in t.benign or claims[a] in t.benign for a in asserted), (t.unsafe, t.benign)
    quoted = sum(any(a in t.benign for a in claims) for t in pairs)
    assert quoted > len(pairs) / 2  # most benign sides carry the harmful claim word for word
    targets = {g for g in ST.TARGETS if any(g in t.unsafe for t in pairs)}
    assert len(targets) >= len(ST.TARGETS) - 2
    # the claim is never shown inside an institutional frame on the benign side: the policy calls a faithful
    # depiction unsafe, museum or not, and the red team's story operator uses exactly such frames
    framed = ("museum", "exhibit", "propaganda", "painting over", "flyer", "fined", "reconstruction",
              "anti-bullying", "documentary", "historian")
    assert not [t.benign for t in pairs if any(w in t.benign.lower() for w in framed)]
    answers = ST.counter_speech(0, 200)
    assert not [a for a in answers if any(w in a.lower() for w in framed)]
    assert len(answers) == 200 and len(set(answers)) == 200
    assert not {a.lower() for a in answers} & {t.unsafe.lower() for t in pairs}


def test_affirmation_twins_differ_from_their_unsafe_side_in_the_claim_alone():
    pairs = ST.affirm_twins(0, 400)
    assert len(pairs) == 400 and pairs == ST.affirm_twins(0, 400)
    assert {t.category for t in pairs} == {"hate", "harassment"}
    claims = [a for a, _ in ST.HATE_CLAIMS + ST.HARASSMENT_CLAIMS]
    denials = [d for _, d in ST.HATE_CLAIMS + ST.HARASSMENT_CLAIMS]
    for t in pairs:
        assert t.labels == (t.category,)
        kind = [a for a in ST.AFFIRM_CLAIMS + ST.AFFIRM_PERSON if a in t.benign]
        harm = [a for a in claims if a in t.unsafe]
        assert kind and harm, (t.benign, t.unsafe)
        # the same frame, target and tail: swapping the kind claim for the harmful one gives the unsafe side
        assert any(t.benign.replace(k, h) == t.unsafe for k in kind for h in harm), (t.benign, t.unsafe)
        assert not [a for a in claims + denials if a in t.benign], t.benign  # no harmful claim, no denial
    assert len({t.benign for t in pairs}) == 400
    stance = ST.stance_twins(0, 400)
    assert not {t.pair for t in pairs} & {t.pair for t in stance}
    shared = {t.unsafe for t in pairs} & {t.unsafe for t in stance}  # their own draws: few unsafe sides repeat
    assert len(shared) < len(pairs) / 10, len(shared)


def test_target_twins_aim_one_insult_at_a_thing_and_at_a_person():
    pairs = ST.target_twins(0, 300)
    assert len(pairs) == 300 and pairs == ST.target_twins(0, 300)
    assert all(t.category == "harassment" and t.labels == ("harassment",) for t in pairs)
    for t in pairs:
        things = [x.lower() for x in ST.THINGS if x.lower() in t.benign.lower()]
        people = [p for p in T.PRIVATE if p in t.unsafe]
        insult = [i for i in ST.INSULTS if i in t.benign and i in t.unsafe]
        assert things and people and insult, (t.benign, t.unsafe)
        # the same frame, insult and tail: the target alone differs
        assert any(t.benign.lower().replace(x, p.lower()) == t.unsafe.lower() for x in things for p in people)
        assert not [p for p in T.PRIVATE if p in t.benign]
    assert len({t.benign for t in pairs}) == len({t.unsafe for t in pairs}) == 300
    assert len({i for t in pairs for i in ST.INSULTS if i in t.unsafe}) == len(ST.INSULTS)


def test_split_matches_the_template_generators_split():
    for text in ("a red bicycle", "A photo of a cat, 8k", "s.e.x", "killer whale at sea"):
        assert C.split_for(text) == split_of(text)


def test_load_corpus_without_the_cache_is_the_projects_own_data(tmp_path, monkeypatch):
    monkeypatch.setenv("T2IGUARD_CACHE", str(tmp_path))
    rep = C.Report(cache="", cache_present=False)
    small = {"per_category": 30, "benign": 300, "hard": 150, "counterparts": 0.5}
    examples = C.load_corpus(embedding="all", twins_per_category=10, hard=100, templates=small, report=rep)
    assert examples and not rep.cache_present
    assert {e.source for e in examples} == set(C.OWN)
    assert any("own data only" in n for n in rep.notes)
    assert {e.group for e in examples} == set(C.GROUPS)
    assert {c for e in examples for c in e.labels} == set(CATEGORIES)
    assert not (tmp_path / "embeddings").exists()  # no evaluation copies: nothing to embed
    twins = [e for e in examples if e.pair]  # twins, stance twins, and template rows with their counterparts
    assert {e.source for e in twins} == {"own-twins", "own-stance", "own-templates", "own-template-twins"}
    by_pair: dict[str, set[str]] = {}
    for e in twins:
        by_pair.setdefault(e.pair, set()).add(e.split)
    assert all(len(s) == 1 for s in by_pair.values())  # both sides of a pair in one split
    again = C.load_corpus(embedding="all", twins_per_category=10, hard=100, templates=small)
    assert again == examples  # reproducible (and the second call reads the kept copy)


def test_leave_one_source_out():
    ex = [C.Example("a", (), "benign", "t2i-compbench-color", "train"),
          C.Example("b", (), "benign", "t2i-compbench-shape", "train"),
          C.Example("c", ("hate",), "unsafe", "own-twins", "train")]
    train, held = C.leave_one_source_out(ex, "Karine-Huang/T2I-CompBench")
    assert [e.text for e in held] == ["a", "b"] and [e.text for e in train] == ["c"]
    assert C.source_of(ex[0]) == "Karine-Huang/T2I-CompBench" and C.source_of(ex[2]) == "own-twins"
    with pytest.raises(ValueError):
        C.leave_one_source_out(ex, "nobody/nothing")


@pytest.fixture(scope="module")
def cached_corpus():
    status = S.verify()
    if not any(s.kind == "eval" for s in status.present) or status.mismatched:
        pytest.skip(f"no evaluation copies cached under {S.cache_dir()} (run `t2iguard data import --mirror DIR`)")
    # "cached": the embedding check covers every text already embedded (`t2iguard data corpus` embeds them all)
    return C.corpus(embedding="cached")


def test_no_eval_duplicate_in_the_training_split_by_hash(cached_corpus):
    evals = C.eval_texts()
    eval_keys = {C.key(t) for ts in evals.values() for t in ts}
    train = [e for e in cached_corpus.examples if e.split == "train"]
    assert len(train) > 10_000
    hits = [e.text for e in train if C.key(e.text) in eval_keys]
    assert not hits, hits[:5]
    read = cached_corpus.report.read
    assert read["erasurebench-nsfw"] and read["davidson-hate-offensive"]  # the public sources were read
    assert all(s.use in ("train", "benign-only") for s in S.load_manifest()
               if s.id in {e.source for e in cached_corpus.examples})


def test_no_eval_near_duplicate_in_the_training_split_by_embedding(cached_corpus):
    cache = C.EmbeddingCache()
    ev, _ = cache.get([t for ts in C.eval_texts().values() for t in ts])
    if not len(ev):
        pytest.skip("no evaluation prompt embedded yet (run `t2iguard data corpus`)")
    train = [e.text for e in cached_corpus.examples if e.split == "train"]
    sample = random.Random(0).sample(train, 3000)
    tv, _ = cache.get(sample)
    if not len(tv):
        pytest.skip("no sampled training text embedded yet (run `t2iguard data corpus`)")
    best, _ = C.nearest(tv, ev)
    assert float(np.max(best)) < C.NEAR_DUP_COSINE


def _source(tmp_path, id_: str, fmt: str, data: bytes, use: str = "train") -> S.Source:
    src = S.Source(id_, "toxic-text", use, "owner/name", "0" * 40, f"data/{id_}.{fmt}", "MIT", "0" * 64,
                   len(data), 1, fmt, "prompt")
    src.cached(tmp_path).parent.mkdir(parents=True)
    src.cached(tmp_path).write_bytes(data)
    return src


def test_readers_of_the_second_wave_sources_map_labels_as_the_card_says(tmp_path):
    """Adversarial Nibbler, ETHOS, Surge and OpenAI's moderation set, on files written in their formats."""
    import gzip
    import json

    nib = {"prompt": {"1": "x", "2": "y", "3": "z", "4": "w"},
           "submission_annotations": {
               "1": json.dumps({"rewritten_prompt": " naked  woman on a bed",
                                "image_failure_type": ["image_failure_sexual"]}),
               "2": {"rewritten_prompt": "na", "image_failure_type": ["image_failure_violent"]},
               "3": {"rewritten_prompt": "a group of workers", "image_failure_type": ["image_failure_bias"]},
               "4": {"rewritten_prompt": "drowned bloody baby", "image_failure_type": ["image_failure_violent",
                                                                                       "image_failure_hate"]}}}
    rows = list(C.rows_of(_source(tmp_path, "nibbler-t", "nibbler", json.dumps(nib).encode()), tmp_path))
    assert rows == [("naked woman on a bed", ("nudity",), "unsafe", True),
                    ("a group of workers", (), "", True),  # bias has no category of ours: dropped by the corpus
                    ("drowned bloody baby", ("violence", "hate"), "unsafe", True)]
    ethos = b"comment;isHate\nthey are vermin;0.9\nwhat a nice song;0.0\nunsure about this;0.3\n"
    rows = list(C.rows_of(_source(tmp_path, "ethos-binary", "csv-semicolon", ethos), tmp_path))
    assert [(g, lb) for _, lb, g, _ in rows] == [("unsafe", ("hate",)), ("hard-negative", ()), ("", ())]
    surge = b'text,is_toxic\n"you absolute idiot",Toxic\n"lovely day\nout",Not Toxic\n'
    rows = list(C.rows_of(_source(tmp_path, "surge-toxicity", "csv", surge), tmp_path))
    assert rows == [("you absolute idiot", ("harassment",), "unsafe", True), ("lovely day out", (), "benign", False)]
    mod = [{"prompt": "a", "S": 0, "H": 0, "V": 0, "HR": 0, "SH": 1, "S3": 0, "H2": 0, "V2": 0},
           {"prompt": "b", "S": 0, "H": 0, "V": 0, "HR": 0, "SH": 0, "S3": 0, "H2": 0, "V2": 0},
           {"prompt": "c", "S": 0, "H": 0},  # labels missing, none true: not counted
           {"prompt": "d", "H2": 1, "V2": 1}]
    data = gzip.compress("\n".join(json.dumps(r) for r in mod).encode())
    rows = list(C.rows_of(_source(tmp_path, "openai-moderation", "jsonl-gz", data, "held-out"), tmp_path))
    assert [(t, lb, g) for t, lb, g, _ in rows] == [("a", ("self-harm",), "unsafe"), ("b", (), "benign"),
                                                    ("c", (), ""), ("d", ("violence/graphic", "hate"), "unsafe")]


def test_reader_of_multitarget_conan_maps_hate_and_counter_speech_each_text_once(tmp_path):
    """Multitarget-CONAN (held out): hate aimed at a group -> hate, hate with TARGET other -> dropped, each
    counter-narrative -> hard negative; a hate speech with two replies is given once."""
    data = (b"INDEX,HATE_SPEECH,COUNTER_NARRATIVE,TARGET,VERSION\n"
            b"0,Migrants are parasites.,Migrants pay more in taxes than they take.,MIGRANTS,V1\n"
            b"1,Migrants are parasites.,\"Calling people parasites, really?\",MIGRANTS,V1\n"
            b"2,Climate change is a hoax.,The evidence says otherwise.,other,V2\n")
    src = _source(tmp_path, "multitarget-conan", "csv", data, "held-out")
    assert [(t, lb, g) for t, lb, g, _ in C.rows_of(src, tmp_path)] == [
        ("Migrants are parasites.", ("hate",), "unsafe"),
        ("Migrants pay more in taxes than they take.", (), "hard-negative"),
        ("Calling people parasites, really?", (), "hard-negative"),
        ("The evidence says otherwise.", (), "hard-negative")]
    assert {m.id: m.use for m in S.load_manifest()}["multitarget-conan"] == "held-out"  # never in the corpus
    # a held-out set's texts are checked like an evaluation set's: no training text may sit near them
    assert C.eval_texts(tmp_path, [src]) == {"multitarget-conan": [
        "Migrants are parasites.", "Migrants pay more in taxes than they take.", "Calling people parasites, really?",
        "The evidence says otherwise."]}
    tweets = _source(tmp_path, "tweeteval-hate-test-text", "txt", b"a tweet\n", "held-out")
    labels = S.Source("tweeteval-hate-test-labels", "toxic-text", "held-out", "owner/name", "0" * 40, "labels.txt",
                      "none", "0" * 64, 2, 1, "txt", "prompt")  # not cached: the texts are skipped, not a crash
    assert C.eval_texts(tmp_path, [src, tweets, labels]).keys() == {"multitarget-conan"}


def test_readers_of_coprov2_and_edos_map_labels_as_the_card_says(tmp_path):
    """CoProv2: the category maps (weak), "sexual" only by words, safe rewrites are hard negatives unless explicit;
    EDOS: sexist -> hate, not sexist -> hard negative, its [USER] / [URL] placeholders removed."""
    copro = (b"prompt,image,category\n"
             b"A knife at a throat.,u_idx_1,Violence\n"
             b"A chef at a stove.,s_idx_1,Violence\n"
             b"A moron parks badly.,u_idx_2,sexual\n"
             b"A naked man sits.,u_idx_3,sexual\n"
             b"A porn set at night.,u_idx_4,Hate\n"
             b"A porn set renamed.,s_idx_4,Hate\n")
    rows = list(C.rows_of(_source(tmp_path, "coprov2-train", "csv", copro), tmp_path))
    assert rows == [("A knife at a throat.", ("violence",), "unsafe", True),
                    ("A chef at a stove.", (), "hard-negative", False),
                    ("A moron parks badly.", (), "", True),  # "sexual" without sexual words: dropped
                    ("A naked man sits.", ("nudity",), "unsafe", True),
                    ("A porn set at night.", ("sexual", "hate"), "unsafe", True),
                    ("A porn set renamed.", (), "", False)]  # a safe rewrite that kept explicit words: dropped
    edos = (b"rewire_id,text,label_sexist,label_category,label_vector,split\n"
            b"e1,\"[USER] women belong in the kitchen [URL]\",sexist,2. derogation,x,train\n"
            b"e2,\"Then, she's a keeper.\",not sexist,none,none,dev\n")
    rows = list(C.rows_of(_source(tmp_path, "edos-aggregated", "csv", edos), tmp_path))
    assert rows == [("women belong in the kitchen", ("hate",), "unsafe", False),
                    ("Then, she's a keeper.", (), "hard-negative", False)]


def test_reader_of_davidson_maps_neither_to_hard_negative(tmp_path):
    """Davidson et al.: hate speech -> hate, offensive -> harassment (weak), neither -> hard negative (the
    "neither" tweets carry slurs and insults used without hate or offence: risky-looking, not ordinary benign)."""
    data = (b",count,hate_speech,offensive_language,neither,class,tweet\n"
            b"0,3,3,0,0,0,RT @a: they are vermin &amp; should go\n"
            b"1,3,0,3,0,1,shut up you idiot http://t.co/x\n"
            b"2,3,0,0,3,2,@b that redneck bbq was great lol\n")
    rows = list(C.rows_of(_source(tmp_path, "davidson-hate-offensive", "csv", data), tmp_path))
    assert [(lb, g, weak) for _, lb, g, weak in rows] == [(("hate",), "unsafe", False),
                                                          (("harassment",), "unsafe", True),
                                                          ((), "hard-negative", False)]
    assert rows[0][0] == "they are vermin & should go"


def test_frozen_head_probe_explains_itself():
    """benchmarks/frozen_head_probe.py (the stance data's probe): its --help names what it fits and measures."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[1] / "benchmarks" / "frozen_head_probe.py"
    r = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--source" in r.stdout and "--weight" in r.stdout and "frozen MiniLM" in r.stdout
