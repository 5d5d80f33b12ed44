"""The prompt-classifier corpus: the cached public sources plus the project's own data, with every
near-duplicate of an evaluation set dropped.

`load_corpus()` reads the files `training.data.sources` laid into the cache (each format parsed: csv,
tsv, txt, jsonl, json, ToxiGen few-shot blocks), maps their labels onto the twelve categories
(SOURCES.md says how), adds the project's own data (the template generator `training.data.prompts`,
the counterfactual twins and hard negatives of `training.data.twins`), removes duplicates by normalised
text, and drops every example that is a near-duplicate of an `eval` source:

1. hash: the same normalised text (`t2iguard.runtime.text.normalize`, lower-cased, punctuation and
   spacing collapsed) as any evaluation prompt;
2. embedding: frozen MiniLM (the classifier's own encoder) cosine similarity >= `NEAR_DUP_COSINE` with
   any evaluation prompt. Embeddings are cached on disk (`embedding_dir()`) keyed by text digest.

Without the cache, `load_corpus` returns the project's own data only and says so. Splits: a fixed hash of
the normalised text (80/10/10); twins split by pair, so both sides of a pair land together.
`leave_one_source_out` holds out one repository (or id) for a generalisation check.
"""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import html
import io
import json
import logging
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from t2iguard.contract.taxonomy import CATEGORIES
from t2iguard.export.build import cache_root
from t2iguard.runtime.text import normalize
from t2iguard.training.data import sources as S
from t2iguard.training.data.prompts import generate
from t2iguard.training.data.stance import affirm_twins, counter_speech, stance_twins, target_twins
from t2iguard.training.data.twins import hard_negatives, twins

log = logging.getLogger(__name__)
csv.field_size_limit(1 << 30)

#: cosine similarity of MiniLM mean-pooled embeddings at or above which a training text counts as a
#: near-duplicate of an evaluation prompt (paraphrases and light edits of one prompt sit above ~0.9;
#: different prompts on one topic mostly below 0.85)
NEAR_DUP_COSINE = 0.90
EMBED_SEQ_LEN = 64
GROUPS = ("benign", "hard-negative", "unsafe")
OWN = {"own-templates": "training/data/prompts.py", "own-template-twins": "training/data/template_twins.py",
       "own-twins": "training/data/twins.py",
       "own-hard-negatives": "training/data/twins.py", "own-stance": "training/data/stance.py"}
#: rows of the licence-unstated prompt collections read as benign only when they carry none of these words
#: (unreviewed rows that name harm, drugs, nudity or public figures are dropped rather than guessed)
RISKY = re.compile(r"\b(nude|naked|nsfw|sex|sexy|porn|topless|nipple|boob|breast|gore|blood|bloody|corpse|dead|"
                   r"kill|murder|gun|rifle|drug|cocaine|heroin|nazi|hitler|trump|biden|putin|obama|suicide|"
                   r"hentai|lingerie|erotic|torture|war)\w*", re.I)
EXPLICIT = re.compile(r"\b(sex|porn|fuck|cum|cock|pussy|dick|penis|vagina|blowjob|orgasm|hentai|erotic|"
                      r"masturbat)\w*", re.I)


@dataclass(frozen=True)
class Example:
    text: str
    labels: tuple[str, ...]  # categories in CATEGORIES order; empty = benign
    group: str  # benign | hard-negative | unsafe
    source: str  # a manifest id, or an `OWN` id (own-templates, own-twins, ...)
    split: str  # train | val | test (held-out sources: held-out)
    weak: bool = False  # labels from a coarse mapping (image-derived labels, "offensive" as harassment)
    pair: str = ""  # twins: the id both sides share

    @property
    def target(self) -> list[float]:
        return [1.0 if c in self.labels else 0.0 for c in CATEGORIES]


@dataclass
class Report:
    """What was read, kept and dropped, per source; and the corpus per category and split."""
    cache: str
    cache_present: bool
    read: Counter = field(default_factory=Counter)
    kept: Counter = field(default_factory=Counter)
    dropped: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))  # source -> reason -> n
    embedding_checked: Counter = field(default_factory=Counter)  # source -> texts compared by embedding
    categories: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))  # split -> category -> n
    groups: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))  # source -> group -> n
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = {k: dict(x) for k, x in v.items()} if isinstance(v, defaultdict) else (
                dict(v) if isinstance(v, Counter) else v)
        return json.loads(json.dumps(out))

    @classmethod
    def from_json(cls, d: dict, into: Report | None = None) -> Report:
        r = into or cls(cache=d["cache"], cache_present=d["cache_present"])
        r.cache, r.cache_present, r.notes = d["cache"], d["cache_present"], list(d["notes"])
        for name in ("read", "kept", "embedding_checked"):
            getattr(r, name).update(d[name])
        for name in ("dropped", "categories", "groups"):
            for k, v in d[name].items():
                getattr(r, name)[k].update(v)
        return r

    def categories_total(self) -> Counter:
        out = Counter()
        for c in self.categories.values():
            out.update(c)
        return out

    def card_tables(self) -> dict[str, str]:
        """The data card's generated sections (`notes`, `per-source`, `per-category`) as Markdown."""
        notes = "\n".join(f"- {n}" for n in self.notes) or \
            "- (none: every training and evaluation text was embedded and checked)"
        rows = ["| source | read | kept | dropped (reason: n) | embedding-checked | kept by group |",
                "|---|---|---|---|---|---|"]
        for src, n in self.read.items():
            dropped = ", ".join(f"{k}: {v}" for k, v in sorted(self.dropped.get(src, {}).items())) or "-"
            groups = ", ".join(f"{g} {self.groups[src][g]}" for g in GROUPS if self.groups.get(src, {}).get(g))
            rows.append(f"| {src} | {n} | {self.kept.get(src, 0)} | {dropped} | "
                        f"{self.embedding_checked.get(src, 0)} | {groups} |")
        rows.append(f"| **total** | {sum(self.read.values())} | {sum(self.kept.values())} | | "
                    f"{sum(self.embedding_checked.values())} | |")
        splits = ("train", "val", "test")
        cats = ["| category | " + " | ".join(splits) + " | all |", "|---|---|---|---|---|"]
        for c in ("benign", *CATEGORIES):
            n = [self.categories.get(s, {}).get(c, 0) for s in splits]
            cats.append(f"| {c} | " + " | ".join(map(str, n)) + f" | {sum(n)} |")
        return {"notes": notes, "per-source": "\n".join(rows), "per-category": "\n".join(cats)}

    @staticmethod
    def _section(text: str, name: str) -> tuple[int, int] | None:
        """(start, end) of the text between `<!-- BEGIN name -->` and the next `<!-- END name -->`, or None."""
        begin = f"<!-- BEGIN {name} -->\n"
        i = text.find(begin)
        j = text.find(f"<!-- END {name} -->", i + len(begin)) if i >= 0 else -1
        return (i + len(begin), j) if j >= 0 else None

    def missing_sections(self, text: str) -> list[str]:
        """The generated sections (`card_tables`) whose BEGIN/END markers `text` lacks."""
        return [name for name in self.card_tables() if self._section(text, name) is None]

    def write_card(self, card: Path) -> None:
        """Replace the text of each generated section in `card` with `card_tables()[name]`; ValueError naming the
        first section whose markers are missing (nothing written)."""
        text = card.read_text()
        if missing := self.missing_sections(text):
            name = missing[0]
            raise ValueError(f"{card}: no '<!-- BEGIN {name} -->' ... '<!-- END {name} -->' section")
        for name, body in self.card_tables().items():
            i, j = self._section(text, name)
            text = text[:i] + body + "\n" + text[j:]
        card.write_text(text)


@dataclass
class Corpus:
    examples: list[Example]
    report: Report


# ---------------------------------------------------------------------------------------------------------
# keys and splits
# ---------------------------------------------------------------------------------------------------------
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


_normalize = functools.lru_cache(maxsize=1 << 18)(normalize)


def key(text: str) -> str:
    """The duplicate key: normalised text, lower-cased, every run of non-alphanumerics one space."""
    return _NON_ALNUM.sub(" ", _normalize(text).lower()).strip()


def split_for(text: str) -> str:
    """`training.data.prompts.split_of` (80/10/10 by a hash of the normalised text), memoised."""
    h = int(hashlib.sha256(_normalize(text).lower().encode()).hexdigest()[:8], 16) % 10
    return "train" if h < 8 else ("val" if h == 8 else "test")


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# ---------------------------------------------------------------------------------------------------------
# readers: one cached file -> (text, labels, group, weak)
# ---------------------------------------------------------------------------------------------------------
Row = tuple[str, tuple[str, ...], str, bool]
_MENTION = re.compile(r"(?:\bRT\s+)?@\w+:?|https?://\S+|#(?=\w)")


def _tweet(text: str) -> str:
    """Tweets as prompt-like text: entities decoded, mentions, RT markers and links removed."""
    return _SPACES.sub(" ", _MENTION.sub(" ", html.unescape(html.unescape(text)))).strip(" :\"'")


_SPACES = re.compile(r"\s+")


def _read_text(src: S.Source, root: Path) -> str:
    return src.cached(root).read_bytes().decode("utf-8-sig", "replace")


def _csv_rows(src: S.Source, root: Path) -> list[dict]:
    delimiter = {"tsv": "\t", "csv-semicolon": ";"}.get(src.format, ",")
    return list(csv.DictReader(io.StringIO(_read_text(src, root)), delimiter=delimiter))


def _jsonl(src: S.Source, root: Path) -> list[dict]:
    data = src.cached(root).read_bytes()
    text = (gzip.decompress(data) if src.format == "jsonl-gz" else data).decode("utf-8-sig", "replace")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


#: Adversarial Nibbler's image failure types -> our categories (bias and "other" have none)
NIBBLER = {"image_failure_sexual": "nudity", "image_failure_violent": "violence", "image_failure_hate": "hate"}
_NA = {"", "na", "n/a", "none", "-", "."}


def _nibbler(src: S.Source, root: Path) -> dict[str, set[str]]:
    """Adversarial Nibbler's submitted examples: each distinct `rewritten_prompt` (the submitter's plain
    description of the harm the image shows) -> the union of the failure types given with it."""
    d = json.loads(_read_text(src, root))
    out: dict[str, set[str]] = {}
    for i in d["prompt"]:
        ann = d["submission_annotations"][i]
        ann = json.loads(ann) if isinstance(ann, str) else ann
        text = _SPACES.sub(" ", (ann.get("rewritten_prompt") or "")).strip()
        kinds = ann.get("image_failure_type") or []
        if text.lower() not in _NA:
            out.setdefault(text, set()).update([kinds] if isinstance(kinds, str) else kinds)
    return out


def texts_of(src: S.Source, root: Path | None = None) -> list[str]:
    """Every text of one cached file, unlabelled (eval copies, benign collections, lexicons)."""
    root = root or S.cache_dir()
    if src.format in ("csv", "tsv", "csv-semicolon"):
        rows = _csv_rows(src, root)
        if src.id == "eval-ring-a-bell-concept-nudity-prompt":  # columns of a sentence: nudity, people, clothes, place
            return [" ".join(r[c].strip() for c in ("nudity", "people", "clothes", "location")
                             if r.get(c) and r[c].strip() != "None") for r in rows]
        out = [r[src.text_column] for r in rows]
        if src.id == "eval-ring-a-bell-concept-violence-30":  # the safe twin of each prompt is part of the set
            out += [r["prompt1"] for r in rows if r.get("prompt1")]
        return out
    if src.format in ("jsonl", "jsonl-gz"):
        return [r[src.text_column] for r in _jsonl(src, root)]
    if src.format == "nibbler":
        return list(_nibbler(src, root))
    if src.format == "json":
        return list(json.loads(_read_text(src, root))[src.text_column])
    if src.format == "toxigen":  # each line: few-shot statements separated by a literal "\n-"
        out, seen = [], set()
        for line in _read_text(src, root).splitlines():
            for s in line.split("\\n"):
                s = s.strip().lstrip("-").strip()
                if s and s not in seen:
                    seen.add(s)
                    out.append(s)
        return out
    return [line.rstrip("\r") for line in _read_text(src, root).split("\n") if line.strip()]


def _rows_erasure(src: S.Source, root: Path) -> Iterator[Row]:
    """ErasureBenchmark: only the 4chan and Lexica rows (Unsafe Diffusion's prompts; the I2P rows are the
    evaluation set). Each prompt appears once per seed with per-image labels: the max over its copies."""
    merged: dict[str, dict[str, int]] = {}
    for r in _csv_rows(src, root):
        if r["source"] not in ("4chan", "Lexica"):
            continue
        m = merged.setdefault(r["prompt"], Counter())
        for c in ("Nudity", "Violence", "Horror", "NSFW"):
            m[c] = max(m[c], int(r[c] or 0))
    for text, m in merged.items():
        labels = set()
        if m["Nudity"]:
            labels.add("nudity")
            if EXPLICIT.search(text):
                labels.add("sexual")
        if m["Violence"]:
            labels.add("violence")
        if m["Horror"]:
            labels.add("violence/graphic")
        yield text, _ordered(labels), "unsafe" if labels else "", True


def _rows_davidson(src: S.Source, root: Path) -> Iterator[Row]:
    for r in _csv_rows(src, root):
        cls = r["class"]
        labels = {"0": ("hate",), "1": ("harassment",), "2": ()}[cls]
        # "neither" tweets are no ordinary benign text: 7 of 15 drawn at random carry a slur or an insult used
        # without hate or offence (the card's sample), so they are the risky-looking benign rows of this source
        yield _tweet(r["tweet"]), labels, "unsafe" if labels else "hard-negative", cls == "1"


def _rows_tweeteval(src: S.Source, root: Path, manifest: dict[str, S.Source]) -> Iterator[Row]:
    labels_src = manifest[src.id.replace("-text", "-labels")]
    texts = _read_text(src, root).split("\n")
    labels = [x.strip() for x in _read_text(labels_src, root).split("\n") if x.strip()]
    cat = "hate" if "-hate-" in src.id else "harassment"
    for t, y in zip(texts, labels, strict=False):
        yield _tweet(t), (cat,) if y == "1" else (), "unsafe" if y == "1" else "benign", cat == "harassment"


def _rows_hatecheck(src: S.Source, root: Path) -> Iterator[Row]:
    for r in _csv_rows(src, root):
        hateful = r["label_gold"] == "hateful"
        yield r["test_case"], ("hate",) if hateful else (), "unsafe" if hateful else "hard-negative", False


def _rows_conan(src: S.Source, root: Path) -> Iterator[Row]:
    """Multitarget-CONAN's pairs: the hate speech aimed at a group -> hate, its counter-narrative -> hard negative
    (counter-speech naming the same group); a text is given once (one hate speech has up to several replies)."""
    seen = set()
    for r in _csv_rows(src, root):
        for text, row in ((r["HATE_SPEECH"], (("hate",), "unsafe", False) if r["TARGET"] != "other" else None),
                          (r["COUNTER_NARRATIVE"], ((), "hard-negative", False))):
            if row is not None and text not in seen:
                seen.add(text)
                yield (text, *row)


def _rows_nibbler(src: S.Source, root: Path) -> Iterator[Row]:
    for text, kinds in _nibbler(src, root).items():
        labels = {NIBBLER[k] for k in kinds if k in NIBBLER}
        if "nudity" in labels and EXPLICIT.search(text):
            labels.add("sexual")
        yield text, _ordered(labels), "unsafe" if labels else "", True


def _rows_ethos(src: S.Source, root: Path) -> Iterator[Row]:
    for r in _csv_rows(src, root):
        p = float(r["isHate"])
        group = "unsafe" if p >= 0.5 else "hard-negative" if p == 0 else ""
        yield r["comment"], ("hate",) if p >= 0.5 else (), group, False


def _rows_surge(src: S.Source, root: Path) -> Iterator[Row]:
    for r in _csv_rows(src, root):
        toxic = r["is_toxic"] == "Toxic"
        text = _SPACES.sub(" ", r["text"]).strip()
        yield text, ("harassment",) if toxic else (), "unsafe" if toxic else "benign", toxic


#: CoProv2's `category` of an unsafe row -> our category ("sexual" has none: most of its rows are not sexual)
COPRO = {"Hate": "hate", "Harrasment": "harassment", "Violence": "violence", "Shocking": "violence/graphic",
         "Illegal Activity": "illicit", "self-harm": "self-harm"}
NUDE = re.compile(r"\b(nude|naked|topless|nipple|breast|boob|genital)\w*", re.I)


def _rows_copro(src: S.Source, root: Path) -> Iterator[Row]:
    """CoProv2 (SafetyDPO): LLM-written unsafe T2I prompts (`image` u_*), each followed by its safe rewrite
    (s_*). The category field is often wrong, so every unsafe label is weak and the sexual ones come from words."""
    for r in _csv_rows(src, root):
        text = _SPACES.sub(" ", r["prompt"]).strip()
        if r["image"].startswith("s_"):
            yield text, (), "" if EXPLICIT.search(text) else "hard-negative", False
            continue
        labels = {COPRO[r["category"]]} if r["category"] in COPRO else set()
        if EXPLICIT.search(text):
            labels.add("sexual")
        if NUDE.search(text):
            labels.add("nudity")
        yield text, _ordered(labels), "unsafe" if labels else "", True


_EDOS_MASK = re.compile(r"\[(USER|URL)\]")


def _rows_edos(src: S.Source, root: Path) -> Iterator[Row]:
    """EDOS (SemEval-2023 task 10): Gab and Reddit comments; sexist -> hate, not sexist -> hard negative."""
    for r in _csv_rows(src, root):
        text = _SPACES.sub(" ", _EDOS_MASK.sub(" ", r["text"])).strip()
        sexist = r["label_sexist"] == "sexist"
        yield text, ("hate",) if sexist else (), "unsafe" if sexist else "hard-negative", False


#: OpenAI's moderation test set: label key -> our category (H2 is hate that threatens: hate)
MODERATION = {"S": "sexual", "S3": "sexual/minors", "H": "hate", "H2": "hate", "HR": "harassment", "SH": "self-harm",
              "V": "violence", "V2": "violence/graphic"}


def _rows_moderation(src: S.Source, root: Path) -> Iterator[Row]:
    """A row is unsafe when any known label is 1, benign when every label is known and 0; otherwise unlabelled."""
    for r in _jsonl(src, root):
        known = [k for k in MODERATION if r.get(k) is not None]
        labels = {MODERATION[k] for k in known if int(r[k])}
        group = "unsafe" if labels else "benign" if len(known) == len(MODERATION) else ""
        yield _SPACES.sub(" ", r["prompt"]).strip(), _ordered(labels), group, False


def rows_of(src: S.Source, root: Path | None = None, manifest: dict[str, S.Source] | None = None) -> Iterator[Row]:
    """Labelled rows of one cached training or held-out source; a row with group "" has no mappable label."""
    root = root or S.cache_dir()
    if src.id == "erasurebench-nsfw":
        yield from _rows_erasure(src, root)
    elif src.id == "davidson-hate-offensive":
        yield from _rows_davidson(src, root)
    elif src.id.startswith("tweeteval-") and src.id.endswith("-text"):
        yield from _rows_tweeteval(src, root, manifest or {s.id: s for s in S.load_manifest()})
    elif src.id == "hatecheck":
        yield from _rows_hatecheck(src, root)
    elif src.id == "multitarget-conan":
        yield from _rows_conan(src, root)
    elif src.format == "nibbler":
        yield from _rows_nibbler(src, root)
    elif src.id == "ethos-binary":
        yield from _rows_ethos(src, root)
    elif src.id == "surge-toxicity":
        yield from _rows_surge(src, root)
    elif src.id == "coprov2-train":
        yield from _rows_copro(src, root)
    elif src.id == "edos-aggregated":
        yield from _rows_edos(src, root)
    elif src.id == "openai-moderation":
        yield from _rows_moderation(src, root)
    elif src.id.startswith("toxigen-"):
        hate = src.id.startswith("toxigen-hate-")
        for t in texts_of(src, root):
            yield t, ("hate",) if hate else (), "unsafe" if hate else "hard-negative", False
    elif src.kind == "t2i-prompts":
        for t in texts_of(src, root):
            if src.use == "benign-only" and RISKY.search(t):
                yield t, (), "", False  # unreviewed and risky-looking: neither benign nor labelled
            else:
                yield t, (), "benign", False


def _ordered(labels: Iterable[str]) -> tuple[str, ...]:
    s = set(labels)
    return tuple(c for c in CATEGORIES if c in s)


# ---------------------------------------------------------------------------------------------------------
# the project's own data
# ---------------------------------------------------------------------------------------------------------
def own_examples(seed: int = 0, twins_per_category: int = 120, hard: int = 3000,
                 templates: dict | None = None) -> list[Example]:
    """The template generator (`templates`: keyword arguments of `prompts.generate`), the counterfactual
    twins, the hard negatives, and the stance, affirmation and target twins and counter-speech
    (`training.data.stance`: a fifth of `hard` pairs each, a tenth of `hard` answers), as corpus examples."""
    out = [Example(e.text, _ordered(e.labels), e.group, "own-template-twins" if e.pair and e.group != "unsafe"
                   else "own-templates", split_for(e.pair or e.text), pair=e.pair)
           for e in generate(seed, **(templates or {}))]  # a template row and its counterpart share a split
    for t in twins(seed, twins_per_category):
        split = split_for(t.benign)  # both sides of a pair share a split
        out.append(Example(t.benign, (), "hard-negative", "own-twins", split, pair=t.pair))
        out.append(Example(t.unsafe, t.labels, "unsafe", "own-twins", split, pair=t.pair))
    out += [Example(text, (), "hard-negative", "own-hard-negatives", split_for(text))
            for text, _ctx in hard_negatives(seed, hard)]
    for t in stance_twins(seed, hard // 5) + affirm_twins(seed, hard // 5) + target_twins(seed, hard // 5):
        split = split_for(t.benign)
        out.append(Example(t.benign, (), "hard-negative", "own-stance", split, pair=t.pair))
        out.append(Example(t.unsafe, t.labels, "unsafe", "own-stance", split, pair=t.pair))
    out += [Example(text, (), "hard-negative", "own-stance", split_for(text))
            for text in counter_speech(seed, hard // 10)]
    return out


def held_out(source_id: str, root: Path | None = None) -> list[Example]:
    """A `held-out` source's rows (never part of the training corpus), e.g. `hatecheck` as a contrast set."""
    manifest = {s.id: s for s in S.load_manifest()}
    src = manifest[source_id]
    if src.use != "held-out":
        raise ValueError(f"{source_id} is a {src.use!r} source, not held-out")
    return [Example(t, labels, group, src.id, "held-out", weak) for t, labels, group, weak
            in rows_of(src, root, manifest) if group]


# ---------------------------------------------------------------------------------------------------------
# the evaluation side and the embedding cache
# ---------------------------------------------------------------------------------------------------------
def eval_texts(root: Path | None = None, sources: list[S.Source] | None = None) -> dict[str, list[str]]:
    """eval set name -> its prompts, from every cached `eval` source, and held-out source id -> its texts, from
    every cached `held-out` source (HateCheck, CONAN, ...: measured, never trained on, so checked like an
    evaluation set). Absent files are skipped."""
    out: dict[str, list[str]] = defaultdict(list)
    sources = sources or S.load_manifest()
    by_id = {s.id: s for s in sources}
    for src in sources:
        if not src.cached(root).is_file():
            continue
        if src.kind == "eval":
            out[src.eval_set] += texts_of(src, root)
        elif src.use == "held-out" and not src.id.endswith("-labels"):
            try:
                texts = [text for text, *_ in rows_of(src, root, by_id)]
            except FileNotFoundError:  # a text file whose labels file is not cached (TweetEval)
                continue
            out[src.id] += texts
    return dict(out)


def embedding_dir() -> Path:
    return cache_root() / "embeddings" / f"minilm-l6-seq{EMBED_SEQ_LEN}"


class EmbeddingCache:
    """Unit-normalised MiniLM embeddings of normalised texts, on disk as append-only float16 shards keyed by
    the text's digest: a rerun embeds only what it has not seen."""

    def __init__(self, folder: Path | None = None):
        self.folder = folder or embedding_dir()
        self.index: dict[str, tuple[int, int]] = {}
        self.shards: list[np.ndarray] = []
        self._encoder = None
        if self.folder.is_dir():
            for f in sorted(self.folder.glob("shard-*.npz")):
                with np.load(f) as z:
                    self._add(list(z["digests"]), z["vectors"])

    def _add(self, digests: list, vectors: np.ndarray) -> None:
        self.shards.append(vectors)
        n = len(self.shards) - 1
        for i, d in enumerate(digests):
            self.index.setdefault(str(d), (n, i))

    def __contains__(self, text: str) -> bool:
        return digest(_normalize(text)) in self.index

    def missing(self, texts: Iterable[str]) -> list[str]:
        seen, out = set(), []
        for t in texts:
            n = _normalize(t)
            d = digest(n)
            if d not in self.index and d not in seen:
                seen.add(d)
                out.append(n)
        return out

    def compute(self, texts: Iterable[str], batch: int = 128, shard: int = 2048,
                progress: Callable[[int, int], None] | None = None) -> int:
        """Embed every text not yet cached (shard by shard, so an interrupted run keeps what it did)."""
        todo = sorted(self.missing(texts), key=len)  # similar lengths batch with little padding
        if not todo:
            return 0
        if self._encoder is None:
            from t2iguard.export.tiny import load_minilm

            self._encoder = load_minilm()
        from t2iguard.training.embed import embed

        self.folder.mkdir(parents=True, exist_ok=True)
        for start in range(0, len(todo), shard):
            chunk = todo[start:start + shard]
            v = embed(self._encoder, chunk, EMBED_SEQ_LEN, batch=batch)
            v /= np.linalg.norm(v, axis=1, keepdims=True) + 1e-12
            digests = np.array([digest(t) for t in chunk])
            v16 = v.astype(np.float16)
            name = self.folder / f"shard-{digest(''.join(digests))[:16]}.npz"
            tmp = name.with_suffix(".tmp.npz")
            np.savez(tmp, digests=digests, vectors=v16)
            os.replace(tmp, name)
            self._add(list(digests), v16)
            if progress:
                progress(min(start + shard, len(todo)), len(todo))
        return len(todo)

    def get(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(vectors float32 [K, D] of the cached texts, their positions in `texts`)."""
        rows, where = [], []
        for i, t in enumerate(texts):
            loc = self.index.get(digest(_normalize(t)))
            if loc is not None:
                rows.append(self.shards[loc[0]][loc[1]])
                where.append(i)
        if not rows:
            return np.zeros((0, 384), np.float32), np.zeros(0, np.int64)
        return np.stack(rows).astype(np.float32), np.array(where)


def nearest(train: np.ndarray, evals: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """For each training vector: the highest cosine with any evaluation vector, and that vector's index."""
    best = np.full(len(train), -1.0, np.float32)
    arg = np.zeros(len(train), np.int64)
    if len(evals) == 0:
        return best, arg
    for i in range(0, len(train), chunk):
        sims = train[i:i + chunk] @ evals.T
        arg[i:i + chunk] = sims.argmax(1)
        best[i:i + chunk] = sims.max(1)
    return best, arg


# ---------------------------------------------------------------------------------------------------------
# the corpus
# ---------------------------------------------------------------------------------------------------------
def load_corpus(root: Path | None = None, seed: int = 0, embedding: str = "all", threshold: float = NEAR_DUP_COSINE,
                twins_per_category: int = 120, hard: int = 3000, say: Callable[[str], None] | None = None,
                report: Report | None = None, reuse: bool = True, templates: dict | None = None) -> list[Example]:
    """The training corpus (train/val/test splits of one deduplicated set). `embedding`: "all" embeds
    every text not yet in the embedding cache (minutes the first time on a CPU), "cached" compares only
    texts already embedded (the report counts them), "off" skips the embedding check. A built corpus is
    kept under `cache_root()/corpus`, keyed by everything that shapes it (`reuse=False` rebuilds).
    Pass a `Report` to receive the counts."""
    return corpus(root, seed, embedding, threshold, twins_per_category, hard, say, report, reuse, templates).examples


_SHAPING = ("corpus.py", "twins.py", "stance.py", "prompts.py", "template_twins.py", "obfuscate.py",
            "sources.json")  # next to this file


def fingerprint(root: Path, present: Iterable[str], seed: int, embedding: str, threshold: float,
                twins_per_category: int, hard: int, templates: dict | None = None) -> str:
    """Changes whenever the corpus would: the code and manifest that shape it, the cached files, the
    parameters, and (for embedding="cached") which embeddings are on disk."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256(json.dumps([str(root), sorted(present), seed, embedding, threshold, twins_per_category,
                                   hard, templates or {}], sort_keys=True).encode())
    for rel in _SHAPING:
        f = here / rel
        h.update(f.read_bytes() if f.is_file() else rel.encode())
    from t2iguard.runtime import lexicon, text

    for mod in (text, lexicon):
        h.update(Path(mod.__file__).read_bytes())
    if embedding == "cached" and embedding_dir().is_dir():
        h.update(" ".join(sorted(f.name for f in embedding_dir().glob("shard-*.npz"))).encode())
    return h.hexdigest()[:20]


def corpus(root: Path | None = None, seed: int = 0, embedding: str = "all", threshold: float = NEAR_DUP_COSINE,
           twins_per_category: int = 120, hard: int = 3000, say: Callable[[str], None] | None = None,
           report: Report | None = None, reuse: bool = True, templates: dict | None = None) -> Corpus:
    """`build_corpus`, kept on disk under `cache_root()/corpus/<fingerprint>.json.gz` and reused."""
    root = root or S.cache_dir()
    present = [s.id for s in S.verify(root=root).present]
    fp = fingerprint(root, present, seed, embedding, threshold, twins_per_category, hard, templates)
    path = cache_root() / "corpus" / f"{fp}.json.gz"
    if reuse and path.is_file():
        with gzip.open(path, "rt") as f:
            d = json.load(f)
        rep = Report.from_json(d["report"], report)
        return Corpus([Example(t, tuple(lb), g, s, sp, bool(w), pr) for t, lb, g, s, sp, w, pr in d["examples"]], rep)
    built = build_corpus(root, seed, embedding, threshold, twins_per_category, hard, say, report, templates)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt") as f:
        json.dump({"report": built.report.to_json(),
                   "examples": [[e.text, list(e.labels), e.group, e.source, e.split, e.weak, e.pair]
                                for e in built.examples]}, f)
    os.replace(tmp, path)
    return built


def build_corpus(root: Path | None = None, seed: int = 0, embedding: str = "all", threshold: float = NEAR_DUP_COSINE,
                 twins_per_category: int = 120, hard: int = 3000, say: Callable[[str], None] | None = None,
                 report: Report | None = None, templates: dict | None = None) -> Corpus:
    """`load_corpus` with its report."""
    if embedding not in ("all", "cached", "off"):
        raise ValueError(f"embedding must be 'all', 'cached' or 'off', not {embedding!r}")
    say = say or log.info
    root = root or S.cache_dir()
    manifest = S.load_manifest()
    status = S.verify(manifest, root)
    rep = report or Report(cache=str(root), cache_present=False)
    rep.cache, rep.cache_present = str(root), bool(status.present)
    for src, found in status.mismatched:
        rep.notes.append(f"{src.id}: cached file has sha256 {found}, not the manifest's: not read")
    present = {s.id for s in status.present}

    # 1. candidates: the project's own data first (curated), then the public training sources
    candidates: list[Example] = own_examples(seed, twins_per_category, hard, templates)
    for ex in candidates:
        rep.read[ex.source] += 1
    by_id = {s.id: s for s in manifest}
    for src in manifest:
        if src.use not in ("train", "benign-only") or src.id not in present:
            continue
        if src.id.startswith("tweeteval-") and src.id.endswith("-labels"):
            continue
        for text, labels, group, weak in rows_of(src, root, by_id):
            rep.read[src.id] += 1
            text = text.strip()
            if not text:
                rep.dropped[src.id]["empty"] += 1
            elif not group:
                rep.dropped[src.id]["no mappable label" if src.use == "train" else "unreviewed risky words"] += 1
            else:
                candidates.append(Example(text, labels, group, src.id, split_for(text), weak))
    if not present:
        msg = (f"no cached sources under {root}: the corpus is the project's own data only "
               f"(run `t2iguard data import --mirror DIR` or `t2iguard data download`)")
        rep.notes.append(msg)
        say(msg)

    # 2. exact duplicates (normalised text): the first occurrence stays
    seen: dict[str, Example] = {}
    unique: list[Example] = []
    keys: list[str] = []
    for ex in candidates:
        k = key(ex.text)
        if not k:
            rep.dropped[ex.source]["empty"] += 1
        elif k in seen:
            rep.dropped[ex.source]["duplicate"] += 1
        else:
            seen[k] = ex
            unique.append(ex)
            keys.append(k)

    # 3. evaluation overlap by hash
    evals = eval_texts(root, manifest)
    eval_keys = {key(t): name for name, ts in evals.items() for t in ts}
    kept = []
    for ex, k in zip(unique, keys, strict=True):
        if k in eval_keys:
            rep.dropped[ex.source][f"eval hash: {eval_keys[k]}"] += 1
        else:
            kept.append(ex)
    if not evals:
        rep.notes.append("no evaluation copies cached: the eval near-duplicate check did not run")

    # 4. evaluation overlap by embedding
    if evals and embedding != "off":
        cache = EmbeddingCache()
        eval_list = [t for ts in evals.values() for t in ts]
        eval_names = [name for name, ts in evals.items() for _ in ts]
        if embedding == "all":
            n = len(cache.missing(eval_list + [e.text for e in kept]))
            if n:
                say(f"embedding {n} texts not yet in {cache.folder} (MiniLM on CPU: minutes)")
            cache.compute(eval_list, progress=lambda i, m: say(f"  eval side {i}/{m}"))
            cache.compute([e.text for e in kept], progress=lambda i, m: say(f"  training side {i}/{m}"))
        ev, ev_at = cache.get(eval_list)
        tv, tv_at = cache.get([e.text for e in kept])
        best, arg = nearest(tv, ev)
        drop = set()
        for j, (pos, sim) in enumerate(zip(tv_at, best, strict=True)):
            rep.embedding_checked[kept[pos].source] += 1
            if sim >= threshold:
                drop.add(int(pos))
                rep.dropped[kept[pos].source][f"eval embedding: {eval_names[ev_at[arg[j]]]}"] += 1
        if len(ev_at) < len(eval_list) or len(tv_at) < len(kept):
            rep.notes.append(f"embedding check covered {len(tv_at)}/{len(kept)} training texts against "
                             f"{len(ev_at)}/{len(eval_list)} evaluation texts (embedding={embedding!r})")
        kept = [e for i, e in enumerate(kept) if i not in drop]

    for ex in kept:
        rep.kept[ex.source] += 1
        rep.groups[ex.source][ex.group] += 1
        for c in ex.labels or ("benign",):
            rep.categories[ex.split][c] += 1
    return Corpus(kept, rep)


# ---------------------------------------------------------------------------------------------------------
# source-level splits
# ---------------------------------------------------------------------------------------------------------
def source_of(example: Example) -> str:
    """The repository an example comes from ("owner/name"), or its own-data id ("own-twins", ...)."""
    if example.source in OWN:
        return example.source
    return _repos().get(example.source, example.source)


def _repos() -> dict[str, str]:
    return {s.id: s.repo for s in S.load_manifest()}


def leave_one_source_out(corpus: list[Example], source: str) -> tuple[list[Example], list[Example]]:
    """(training examples, held-out examples) holding out one repository ("owner/name") or source id:
    train on everything else, measure on what it contributed."""
    repos = _repos()

    def held(e: Example) -> bool:
        return e.source == source or repos.get(e.source) == source

    out = [e for e in corpus if held(e)]
    if not out:
        raise ValueError(f"no example comes from {source!r}")
    return [e for e in corpus if not held(e)], out
