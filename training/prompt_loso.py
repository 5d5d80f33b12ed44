"""Leave-one-source-out for the served prompt classifier (MiniLM + LoRA + head, scored over windows), issue 21.

The frozen-encoder study (`prompt_head.py`) fits a head in seconds; the served model fine-tunes the encoder, so
every fold is a training run. Each fold follows the shipped recipe (`train_prompt_classifier`: the corpus rows
capped per cell, weak rows weighted, thresholds calibrated on the validation split as served) without one unit,
and scores that unit's rows (every split, at most `per_group` rows per group, seeded) as served. To fit a 2-core
machine every fold trains `steps` steps of 64 prompts (the shipped model: 826), so a reference fold trained on
every unit at the same budget scores each unit's test split: the in-distribution figure at equal budget. The
held-out minus the reference is what an unseen source costs; both sit below the shipped model's full budget.

Units: each public repository and each own-data family (`corpus.source_of`); the four benign caption
repositories are held out together (`CAPTIONS`), which is stricter than one at a time. Every fold's scores are
kept under `cache_root()/loso-lora/` (with its training checkpoint), so an interrupted run resumes and the
table is rebuilt from them in seconds.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from t2iguard.contract.policy import load_policy
from t2iguard.contract.profiles import get_profile
from t2iguard.contract.taxonomy import CATEGORIES
from t2iguard.export.build import cache_root
from t2iguard.export.modules import PROMPT_WINDOW, MLPHead, SentenceScorer
from t2iguard.export.tiny import (
    ADAPTERS,
    LOW_RANK,
    PROMPT_CLASSIFIER_CHECKPOINT,
    apply_low_rank,
    load_minilm,
    low_rank_change,
)
from t2iguard.training.data.corpus import digest
from t2iguard.training.embed import score
from t2iguard.training.train_prompt_classifier import (
    DATASETS,
    HIDDEN,
    Dataset,
    _fit,
    calibrate,
    corpus_dataset,
    served_scores,
    twin_pairs,
)

#: benign caption repositories, held out as one unit
CAPTIONS = ("Karine-Huang/T2I-CompBench", "krea-ai/open-prompts", "dbsxodud-11/PAG", "rohitgandikota/erasing")
REFERENCE = "(none: every unit)"
STEPS = 150
PER_GROUP = 1500
GROUPS = ("benign", "hard-negative", "unsafe")
#: the training sets a fold can be cut from: the corpus variants of `train prompt-classifier --data` (every one has
#: sources to hold out; "templates" has none)
FOLD_DATA = tuple(k for k in DATASETS if k.startswith("corpus"))
#: every category's threshold capped at each of these: what a lower operating point buys out of source
CAPS = (0.8, 0.7, 0.6, 0.5)


def unit_of(source: np.ndarray) -> np.ndarray:
    """str [N] sources -> str [N] LOSO units (the caption repositories folded into one)."""
    return np.where(np.isin(source, CAPTIONS), "public captions (4 repositories)", source)


#: labels made by reading the text (does the text itself ask for harm in one of the twelve categories?) of a seeded
#: sample of a unit whose own labels describe the images generated from it (`text_label_sample`)
TEXT_EVIDENT = {"lzws/ErasureBenchmark": Path(__file__).parent / "data" / "erasurebench_text_evident.jsonl"}


def text_label_sample(ds: Dataset, units: np.ndarray, unit: str, n: int = 150, seed: int = 21) -> np.ndarray:
    """int [n] sorted indices into `ds`: the rows of `unit` drawn for labelling by reading, the `n` whose texts (as
    normalised, `ds.original`) hash lowest under `seed`. Each row's place in the draw depends on its own text only, so
    rows moving between splits or other sources' rows changing leave the sample as it is. (seed 21 drew the
    committed ErasureBench sample; print `ds.original[i]` with `corpus.digest` to label a new one.)"""
    rows = np.flatnonzero(units == unit)
    rank = np.array([hashlib.sha256(f"{seed}\n{ds.original[i]}".encode()).hexdigest() for i in rows])
    return np.sort(rows[np.argsort(rank)[:n]])


def text_evident_rates(fold: Fold, texts: np.ndarray, labels_file: Path) -> dict:
    """Flagged share of the fold's scored rows that carry a reading label, split by it: {"text-evident": (share,
    n), "image-only": (share, n)}. `texts`: str [n] the fold's scored texts, in its row order."""
    labels = {r["digest"]: bool(r["text_evident"]) for r in map(json.loads, labels_file.read_text().splitlines())}
    t = np.array([fold.thresholds[c] for c in CATEGORIES])
    flagged = (fold.scores >= t).any(1)
    known = np.array([digest(x) in labels for x in texts])
    evident = np.array([labels.get(digest(x), False) for x in texts])
    return {name: (float(flagged[known & m].mean()), int((known & m).sum()))
            for name, m in (("text-evident", evident), ("image-only", ~evident)) if (known & m).any()}


@dataclass
class Fold:
    unit: str
    scores: np.ndarray  # float32 [n, C], the scored rows of the unit
    y: np.ndarray  # float32 [n, C]
    groups: np.ndarray  # str [n]
    thresholds: dict[str, float]  # calibrated on the fold's own validation split (never the held-out unit)
    seconds: float
    val_scores: np.ndarray | None = None  # float32 [m, C]: the calibration rows (the other units' validation split)
    val_y: np.ndarray | None = None  # float32 [m, C]
    val_groups: np.ndarray | None = None  # str [m]


#: the issue's goals as an operating point found out of source: at most these shares of the other units' held-out
#: rows flagged (any category), by group
OUT_OF_SOURCE_GOALS = {"benign": 0.01, "hard-negative": 0.10}
#: the caps tried, lowest first
CAP_GRID = tuple(round(0.05 + 0.01 * i, 2) for i in range(94))


def has_goal_rows(folds: list[Fold]) -> bool:
    """Whether `folds`' held-out rows hold any benign or risky-looking benign row (a group the goals limit)."""
    return any(np.isin(f.groups, list(OUT_OF_SOURCE_GOALS)).any() for f in folds)


def out_of_source_cap(folds: list[Fold]) -> float | None:
    """The lowest cap T such that every threshold capped at T (min(fold's own, T)) flags at most
    `OUT_OF_SOURCE_GOALS` of each group's rows on every one of `folds`' held-out units, each on its own (scored by
    the fold that never trained on it). The goals hold for every unseen set: pooled, a large unit that is easy to
    keep clean (CoProv2's 1,500 safe rewrites, 0.5% flagged at 0.48) let the others' risky-looking benign rows reach
    19-29% flagged. None when the folds hold no benign or risky-looking benign row, or when no cap meets the goals
    (then the folds' own thresholds stand)."""
    if not has_goal_rows(folds):
        return None
    for cap in CAP_GRID:
        if all(share <= OUT_OF_SOURCE_GOALS[g] + 1e-9 for f in folds
               for g, (share, _) in rates(f.scores, f.y, f.groups, {c: min(t, cap) for c, t in f.thresholds.items()}
                                          ).items() if g in OUT_OF_SOURCE_GOALS):
            return cap
    return None


@dataclass(frozen=True)
class OperatingPoint:
    """A calibration, stated so that it carries from one model to another: per category, the threshold at which a
    model flags `benign_fpr` of its calibration rows' benign negatives and `hard_fpr` of their risky-looking benign
    ones, at least `floor` (`train_prompt_classifier.calibrate`). A threshold means a different point for each
    model (the shipped soup scores text that only looks hateful higher than a short fold does); a share of rows it
    never trained on means the same."""
    benign_fpr: float
    hard_fpr: float
    floor: float

    def thresholds(self, scores: np.ndarray, y: np.ndarray, groups: np.ndarray) -> dict[str, float]:
        """Per category threshold on calibration rows `scores`, `y` (float32 [m, C]), `groups` (str [m])."""
        return calibrate(scores, y, groups, self.benign_fpr, self.hard_fpr, self.floor)


#: the points tried: the shipped calibration (0.1%, 1%, floor 0.5) first, then looser shares and lower floors
POINTS = tuple(OperatingPoint(b, h, f) for f in (0.5, 0.3, 0.2, 0.1) for b in (0.001, 0.002, 0.005, 0.01)
               for h in (0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2))


def meets_goals(fold: Fold, thresholds: dict[str, float]) -> bool:
    """Whether the fold's held-out rows, flagged at `thresholds`, keep every group within `OUT_OF_SOURCE_GOALS`: one
    calibration checked from its thresholds, as a caller holding a chosen point does (the searches below check every
    candidate at once, `_most_caught`)."""
    return all(share <= OUT_OF_SOURCE_GOALS[g] + 1e-9
               for g, (share, _) in rates(fold.scores, fold.y, fold.groups, thresholds).items()
               if g in OUT_OF_SOURCE_GOALS)


def out_of_source_point(folds: list[Fold]) -> OperatingPoint | None:
    """The point of `POINTS` that catches the most (mean share of each unit's unsafe rows) while every one of
    `folds`' held-out units, each on its own, meets `OUT_OF_SOURCE_GOALS` at the thresholds that point gives the
    fold on its own calibration rows; ties go to the earlier (stricter) point. None when the folds hold no benign
    or risky-looking benign row, or no point meets the goals."""
    if not has_goal_rows(folds):
        return None
    flagged = [np.logical_or(*_flagged_by_point(f, np.zeros(len(CATEGORIES), bool))) for f in folds]
    best = _most_caught(folds, flagged)
    return None if best is None else POINTS[best[0]]


#: the categories a family point calibrates apart from the rest: the hate sets (tweets, comments, counter-speech)
#: and the red team's image requests pull one shared point opposite ways (the study's 2026-12-07 night section)
TEXT_HARM = ("hate", "harassment")


@dataclass(frozen=True)
class FamilyPoint:
    """Two operating points: `family`'s categories calibrated at `inside`, every other category at `outside`."""
    family: tuple[str, ...]
    inside: OperatingPoint
    outside: OperatingPoint

    def thresholds(self, scores: np.ndarray, y: np.ndarray, groups: np.ndarray) -> dict[str, float]:
        """Per category threshold on calibration rows, as `OperatingPoint.thresholds`."""
        inside, outside = (p.thresholds(scores, y, groups) for p in (self.inside, self.outside))
        return {c: (inside if c in self.family else outside)[c] for c in CATEGORIES}


def _flagged_by_point(fold: Fold, family: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """bool [len(POINTS), n] twice: the fold's held-out rows flagged by `family`'s categories (bool [C]) and by the
    others, at the thresholds each of `POINTS` gives the fold on its own calibration rows."""
    t = np.array([[p.thresholds(fold.val_scores, fold.val_y, fold.val_groups)[c] for c in CATEGORIES]
                  for p in POINTS])  # [P, C]
    over = fold.scores[None] >= t[:, None]  # [P, n, C]
    return over[:, :, family].any(2), over[:, :, ~family].any(2)


def _unit_figures(folds: list[Fold], flagged: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Of K candidate calibrations (per fold, `flagged`: bool [K, n], its held-out rows flagged by each): per fold,
    bool [K] where it breaks `OUT_OF_SOURCE_GOALS`; and float [K], the mean over the folds with unsafe rows of the
    share caught (zeros when none has any)."""
    broken, caught = [], []
    for f, rows in zip(folds, flagged, strict=True):
        b = np.zeros(len(rows), bool)
        for g, goal in OUT_OF_SOURCE_GOALS.items():
            if (f.groups == g).any():
                b |= rows[:, f.groups == g].mean(1) > goal + 1e-9
        broken.append(b)
        if (f.groups == "unsafe").any():
            caught.append(rows[:, f.groups == "unsafe"].mean(1))
    return broken, np.mean(caught, 0) if caught else np.zeros(len(flagged[0]))


def _most_caught(folds: list[Fold], flagged: list[np.ndarray]) -> tuple[int, float] | None:
    """Of K candidate calibrations (`_unit_figures`), the first that catches the most while every fold, each on its
    own, meets `OUT_OF_SOURCE_GOALS`: (its index, that mean share); None when none meets them."""
    broken, catch = _unit_figures(folds, flagged)
    best = None
    for k in np.flatnonzero(~np.any(broken, 0)):
        if best is None or catch[k] > best[1] + 1e-12:
            best = (int(k), float(catch[k]))
    return best


def out_of_source_family_point(folds: list[Fold], family: tuple[str, ...] = TEXT_HARM
                               ) -> tuple[FamilyPoint, float] | None:
    """As `out_of_source_point`, with `family`'s categories and the rest each at their own point of `POINTS` (every
    pair tried; ties go to the earlier inside point, then the earlier outside one): the pair that catches the most
    (mean share of each unit's unsafe rows) while every held-out unit, each on its own, meets `OUT_OF_SOURCE_GOALS`.
    Returns the pair and that mean share; None as `out_of_source_point`."""
    if not has_goal_rows(folds):
        return None
    flagged = [_flagged_by_point(f, np.array([c in family for c in CATEGORIES])) for f in folds]
    best = None
    for i, inside in enumerate(POINTS):
        found = _most_caught(folds, [fin[i][None] | fout for fin, fout in flagged])
        if found is not None and (best is None or found[1] > best[1] + 1e-12):
            best = (FamilyPoint(tuple(family), inside, POINTS[found[0]]), found[1])
    return best


def family_point_bounds(folds: list[Fold], point: FamilyPoint) -> tuple[int, dict[str, int]]:
    """What keeps `point`'s family strict: with every other category at `point.outside`, the number of `POINTS` that
    would catch more (mean share of each unit's unsafe rows) as the family's point, and per unit of `folds` how many
    of them it rules out (its held-out rows break `OUT_OF_SOURCE_GOALS` there). Every such point is ruled out by at
    least one unit, or the search (`out_of_source_family_point`) would have chosen it."""
    family = np.array([c in point.family for c in CATEGORIES])
    k = POINTS.index(point.outside)
    rows = [fin | fout[k] for fin, fout in (_flagged_by_point(f, family) for f in folds)]  # [P, n]: the rest at k
    broken, caught = _unit_figures(folds, rows)
    more = caught > caught[POINTS.index(point.inside)] + 1e-12
    bounds = {f.unit: int((b & more).sum()) for f, b in zip(folds, broken, strict=True) if (b & more).any()}
    return int(more.sum()), bounds


def _sample(mask: np.ndarray, groups: np.ndarray, per_group: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of at most `per_group` rows of each group among `mask`, sorted."""
    out = []
    for g in GROUPS:
        idx = np.flatnonzero(mask & (groups == g))
        out.append(idx if len(idx) <= per_group else rng.choice(idx, per_group, replace=False))
    return np.sort(np.concatenate(out))


def _slug(unit: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in unit).strip("-").lower()


def fold_rows(ds: Dataset, units: np.ndarray, unit: str, seed: int, per_group: int) -> dict[str, np.ndarray]:
    """A fold's rows, as indices into `ds`: "train" (the training split of every other unit), "val" (their
    validation split, at most `per_group` per group: the calibration rows), "scored" (every split of `unit`, at
    most `per_group` per group; REFERENCE: every unit's test split, at most `per_group` per group and unit)."""
    held = units == unit
    rng = np.random.default_rng(seed)
    val = _sample((ds.split == "val") & ~held, ds.groups, per_group, rng)
    if unit == REFERENCE:
        scored = np.concatenate([_sample((ds.split == "test") & (units == u), ds.groups, per_group, rng)
                                 for u in sorted(set(units))])
    else:
        scored = _sample(held, ds.groups, per_group, rng)
    return {"train": np.flatnonzero((ds.split == "train") & ~held), "val": val, "scored": scored}


def run_fold(ds: Dataset, units: np.ndarray, unit: str, seed: int, steps: int, per_group: int,
             folder: Path, say=lambda msg: None, adapter: str = "qv-r8", pair_weight: float = 0.0) -> Fold:
    """Train without `unit` (REFERENCE: with every unit), calibrate on the training units' validation split, score
    the unit's rows (REFERENCE: every unit's test split). `adapter`: a key of `ADAPTERS`; `pair_weight` > 0: the
    twins' ranking loss (`pair_loss`) over the training rows' twin pairs, as `train --pair-weight` adds it (a
    held-out unit's pairs are never drawn). Cached in `folder` by unit, seed, steps, data, adapter and pair weight."""
    ranked = "" if pair_weight == 0 else f"-pairs{pair_weight:g}"
    tag = ("" if adapter == "qv-r8" else f"-{adapter}") + ranked
    path = folder / f"{_slug(unit)}-{ds.key}-s{seed}-n{steps}-g{per_group}{tag}.npz"
    if path.is_file():
        z = np.load(path, allow_pickle=False)
        if "val_scores" in z:  # folds cached before the calibration rows were kept are trained again
            return Fold(unit, z["scores"], z["y"], z["groups"], json.loads(str(z["thresholds"])), float(z["seconds"]),
                        z["val_scores"], z["val_y"], z["val_groups"])
    t0 = time.perf_counter()
    seq_len = get_profile("tiny").seq_len
    rows = fold_rows(ds, units, unit, seed, per_group)
    train, v, scored = rows["train"], rows["val"], rows["scored"]
    pairs = {"pairs": twin_pairs(ds.pair[train], ds.groups[train]), "pair_weight": pair_weight}
    if adapter in LOW_RANK:
        full = folder / f"{_slug(unit)}-{ds.key}-s{seed}-n{steps}-g{per_group}-full{ranked}.trained.pt"
        encoder, head = _full_fold_model(ds, train, seed, steps, full, say, pairs)
        say(f"  {low_rank(encoder, LOW_RANK[adapter])} encoder numbers carried at rank {LOW_RANK[adapter]}")
    else:
        encoder, head = _fit(list(ds.texts[train]), ds.y[train], ds.w[train], seed, epochs=100, seq_len=seq_len,
                             say=say, checkpoint=path.with_suffix(".pt"), max_steps=steps,
                             adapter=ADAPTERS[adapter][0], encoder_lr=ADAPTERS[adapter][1], **pairs)
    model = SentenceScorer(encoder, head, window=PROMPT_WINDOW).eval()
    val_scores = score(model, list(ds.texts[v]), seq_len)
    thresholds = calibrate(val_scores, ds.y[v], ds.groups[v])
    say(f"  scoring {len(scored)} rows")
    scores = score(model, list(ds.original[scored]), seq_len)
    fold = Fold(unit, scores, ds.y[scored], ds.groups[scored], thresholds, time.perf_counter() - t0,
                val_scores, ds.y[v], ds.groups[v])
    if unit == REFERENCE:  # keep each row's unit, so the reference can be read per unit
        fold.groups = np.char.add(np.char.add(ds.groups[scored].astype(str), "|"), units[scored].astype(str))
    np.savez(path, scores=scores, y=fold.y, groups=fold.groups, thresholds=json.dumps(thresholds),
             seconds=fold.seconds, val_scores=val_scores, val_y=fold.val_y, val_groups=fold.val_groups)
    path.with_suffix(".pt").unlink(missing_ok=True)
    return fold


def _full_fold_model(ds: Dataset, train: np.ndarray, seed: int, steps: int, path: Path, say, pairs: dict):
    """(encoder, head) of a fold fine-tuned in full (`ADAPTERS["full"]`) on the rows `train` (`pairs`: `_fit`'s
    pair arguments), kept at `path` (the whole encoder, 87 MB, outside git) so that each rank of `LOW_RANK` cuts
    the same model."""
    if path.is_file():
        encoder = load_minilm()
        head = MLPHead(encoder.config.hidden_size, HIDDEN, len(CATEGORIES), dropout=0.2)
        state = torch.load(path, weights_only=True)
        encoder.load_state_dict(state["encoder"])
        head.load_state_dict(state["head"])
        return encoder.eval(), head.eval()
    config, lr = ADAPTERS["full"]
    encoder, head = _fit(list(ds.texts[train]), ds.y[train], ds.w[train], seed, epochs=100,
                         seq_len=get_profile("tiny").seq_len, say=say, checkpoint=path.with_suffix(".ckpt"),
                         max_steps=steps, adapter=config, encoder_lr=lr, **pairs)
    torch.save({"encoder": encoder.state_dict(), "head": head.state_dict()}, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)
    path.with_suffix(".ckpt").unlink(missing_ok=True)
    return encoder, head


@torch.no_grad()
def low_rank(encoder: torch.nn.Module, rank: int) -> int:
    """Cut a fine-tuned MiniLM's change in place, as a committed file would carry it (`export.tiny.low_rank_change`):
    every 2-D weight of the blocks becomes pretrained + the rank-`rank` truncated SVD of (fine-tuned - pretrained);
    the embeddings go back to pretrained; biases and LayerNorms keep their fine-tuned values. Returns how many
    numbers the file carries for the encoder (factors, biases, LayerNorms)."""
    change = low_rank_change(encoder, rank)
    encoder.load_state_dict(load_minilm().state_dict())
    apply_low_rank(encoder, change)
    return sum(v.numel() for v in change.values())


def rates(scores: np.ndarray, y: np.ndarray, groups: np.ndarray, thresholds: dict[str, float] | float) -> dict:
    """Flagged share per group ({"benign": (share, n), ...}, groups present only): flagged = any category's score
    at or above its threshold (a dict per category, or one number for all)."""
    t = np.array([thresholds[c] for c in CATEGORIES]) if isinstance(thresholds, dict) else thresholds
    flagged = (scores >= t).any(1)
    return {g: (float(flagged[groups == g].mean()), int((groups == g).sum())) for g in GROUPS if (groups == g).any()}


def auroc(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a positive row outscores a negative one, ties counting half."""
    pos, neg = score[positive], score[~positive]
    return float(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum())
                 / (len(pos) * len(neg)))


def held_out_auroc(fold: Fold) -> float | None:
    """AUROC of the fold's risk (max over categories of score / threshold) for the unit's unsafe rows against its
    benign and risky-looking benign rows: the ranking apart from the operating point; None for a one-sided unit."""
    risk = (fold.scores / np.array([fold.thresholds[c] for c in CATEGORIES])).max(1)
    unsafe = fold.groups == "unsafe"
    return auroc(unsafe, risk) if unsafe.any() and not unsafe.all() else None


def _served_cached(ds: Dataset, rows: np.ndarray, weights: Path, name: str, seed: int, per_group: int,
                   folder: Path) -> np.ndarray:
    """float32 [n, C]: `served_scores` of `ds`'s `rows` by `weights`, cached in `folder` by name and the weights'
    digest."""
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    path = folder / f"{name}-{digest}-{ds.key}-s{seed}-g{per_group}.npy"
    if not path.is_file():
        np.save(path, served_scores(list(ds.original[rows]), weights))
    return np.load(path)


def shipped_scores(ds: Dataset, units: np.ndarray, seed: int, per_group: int, folder: Path,
                   weights: Path = PROMPT_CLASSIFIER_CHECKPOINT) -> np.ndarray:
    """float32 [n, C]: the committed classifier (`weights`, its full training budget, every unit in training) on
    the reference fold's rows (every unit's test split), as served; cached by the weights' digest."""
    rows = fold_rows(ds, units, REFERENCE, seed, per_group)["scored"]
    return _served_cached(ds, rows, weights, "shipped", seed, per_group, folder)


def served_thresholds(point: OperatingPoint | FamilyPoint, weights: Path = PROMPT_CLASSIFIER_CHECKPOINT,
                      seed: int = 0, per_group: int = PER_GROUP, ds: Dataset | None = None) -> dict[str, float]:
    """The thresholds `point` (one for every category, or one per family) gives the classifier at `weights`, scored
    as served on the corpus's validation split (every unit, at most `per_group` rows per group, drawn as a fold draws
    its calibration rows): rows no committed classifier trained on, the split being fixed by each text's hash. The
    scores are cached under the cache root (`loso-lora/val-*.npy`), so a second point takes seconds once the corpus
    is read. `ds`: the corpus of `seed`, when already read."""
    ds = ds if ds is not None else corpus_dataset(seed)
    rows = _sample(ds.split == "val", ds.groups, per_group, np.random.default_rng(seed))
    folder = cache_root() / "loso-lora"
    folder.mkdir(parents=True, exist_ok=True)
    scores = _served_cached(ds, rows, weights, "val", seed, per_group, folder)
    return point.thresholds(scores, ds.y[rows], ds.groups[rows])


class UnknownUnit(ValueError):
    """`--only` named a unit the corpus does not have."""


def study(seed: int = 0, steps: int = STEPS, per_group: int = PER_GROUP, only: list[str] | None = None,
          say=lambda msg: None, adapter: str = "qv-r8", reference: bool = True, pair_weight: float = 0.0,
          data: str = "corpus") -> dict:
    """Every fold (resumed from the cache where done), then per unit: held-out and reference rates at the fold's
    calibrated thresholds and at 0.5. `only`: a subset of units, run in that order (`UnknownUnit` names any that is
    not one); the reference runs first unless `reference` is False: then the reference and committed-classifier
    columns stay empty. `adapter`: how the encoder is adapted in every fold (a key of `ADAPTERS`); `pair_weight`:
    the twins' ranking loss in every fold (`run_fold`); `data`: the training set the folds are cut from (`FOLD_DATA`,
    as `train prompt-classifier --data` names it; every fold is cached under that set's own key)."""
    if data not in FOLD_DATA:  # before minutes of corpus reading
        raise ValueError(f"data must be one of {', '.join(FOLD_DATA)}, not {data!r}")
    ds = DATASETS[data](seed)
    units = unit_of(ds.source)
    unknown = sorted(set(only or ()) - set(units))
    if unknown:
        raise UnknownUnit(f"no such unit: {', '.join(unknown)}; the units are {', '.join(sorted(set(units)))}")
    names = sorted(set(units)) if only is None else list(only)
    folder = cache_root() / "loso-lora"
    folder.mkdir(parents=True, exist_ok=True)
    out: dict = {"seed": seed, "steps": steps, "per_group": per_group, "data": data, "data_sha256_16": ds.digest,
                 "data_key": ds.key, "adapter": adapter, "pair_weight": pair_weight, "units": {}}
    folds = [REFERENCE, *names] if reference else names
    ref = shipped = None
    done: dict[str, Fold] = {}
    for i, unit in enumerate(folds):
        say(f"fold {i + 1}/{len(folds)}: without {unit}")
        fold = run_fold(ds, units, unit, seed, steps, per_group, folder, say, adapter, pair_weight)
        if unit == REFERENCE:
            ref = fold
            out["reference_thresholds"] = fold.thresholds
            say("the committed classifier on the same rows")
            shipped = shipped_scores(ds, units, seed, per_group, folder)
            continue
        out["units"][unit] = {
            "held_out": rates(fold.scores, fold.y, fold.groups, fold.thresholds),
            "held_out_at_0.5": rates(fold.scores, fold.y, fold.groups, 0.5),
            "held_out_capped": {str(cap): rates(fold.scores, fold.y, fold.groups,
                                                {c: min(t, cap) for c, t in fold.thresholds.items()})
                                for cap in CAPS},
            "held_out_auroc": held_out_auroc(fold),
            "reference": {}, "shipped": {}, "thresholds": fold.thresholds, "seconds": fold.seconds}
        if ref is not None:
            in_dist = np.char.endswith(ref.groups, "|" + unit)
            ref_groups = np.array([g.split("|")[0] for g in ref.groups[in_dist]])
            out["units"][unit]["reference"] = rates(ref.scores[in_dist], ref.y[in_dist], ref_groups, ref.thresholds)
            out["units"][unit]["shipped"] = rates(shipped[in_dist], ref.y[in_dist], ref_groups,
                                                  load_policy().prompt_thresholds())
        done[unit] = fold
        if unit in TEXT_EVIDENT:
            rows = fold_rows(ds, units, unit, seed, per_group)["scored"]
            out["units"][unit]["text_evident"] = text_evident_rates(fold, ds.original[rows], TEXT_EVIDENT[unit])
            out["units"][unit]["text_evident_at_0.5"] = text_evident_rates(
                replace(fold, thresholds=dict.fromkeys(CATEGORIES, 0.5)), ds.original[rows], TEXT_EVIDENT[unit])
    for unit, fold in done.items():  # the cap each unit would get from the other units' held-out rows alone
        others = [f for u, f in done.items() if u != unit]
        if has_goal_rows(others):
            cap = out_of_source_cap(others)  # None: no cap meets the goals on the others
            out["units"][unit]["out_of_source"] = {
                "cap": cap, "rates": rates(fold.scores, fold.y, fold.groups,
                                           {c: min(t, cap or 1.0) for c, t in fold.thresholds.items()})}
        if has_goal_rows(others):  # the calibration each unit would get from the other units' held-out rows alone
            point = out_of_source_point(others)
            out["units"][unit]["out_of_source_point"] = {
                "point": None if point is None else asdict(point),
                "rates": rates(fold.scores, fold.y, fold.groups, fold.thresholds if point is None
                               else point.thresholds(fold.val_scores, fold.val_y, fold.val_groups))}
    if has_goal_rows(list(done.values())):  # every held-out unit: the cap and the point for a model trained on all
        out["out_of_source_cap"] = out_of_source_cap(list(done.values()))
        point = out_of_source_point(list(done.values()))
        out["out_of_source_point"] = None if point is None else asdict(point)
        family = out_of_source_family_point(list(done.values()))
        out["out_of_source_family_point"] = None
        if family is not None:
            more, bounds = family_point_bounds(list(done.values()), family[0])
            out["out_of_source_family_point"] = {**asdict(family[0]), "caught": family[1], "catching_more": more,
                                                 "ruled_out_by": bounds}
    return out


def text_evident_line(unit: str, r: dict) -> str:
    """loso.md's sentence on a unit's rows labelled by reading (`text_evident`, `text_evident_at_0.5` of loso.json)."""
    ev, half = r["text_evident"], r.get("text_evident_at_0.5", {})
    return (f"{unit}, held out, on the rows labelled by reading their text, at the calibration (at 0.5): unsafe "
            f"caught where the text itself asks for harm {_cell(ev, 'text-evident')} ({_cell(half, 'text-evident')}); "
            f"flagged where only the image was harmful {_cell(ev, 'image-only')} ({_cell(half, 'image-only')}).")


def _cell(r: dict, g: str) -> str:
    return f"{100 * r[g][0]:.1f}% ({r[g][1]})" if g in r else "-"


def _point(p: dict | None) -> str:
    return ("none meets them" if p is None else
            f"{100 * p['benign_fpr']:.1f}% / {100 * p['hard_fpr']:.0f}%, floor {p['floor']:.1f}")


def family_thresholds_command(fp: dict, data: str) -> str:
    """The `t2iguard train prompt-thresholds` line that calibrates a file (WEIGHTS) at a family point (`asdict` of a
    `FamilyPoint`) on the validation split of `data`, the training set its folds were cut from."""
    def shares(p: dict, prefix: str) -> str:
        return " ".join(f"--{prefix}{k.replace('_', '-')} {p[k]:g}" for k in ("benign_fpr", "hard_fpr", "floor"))
    return (f"t2iguard train prompt-thresholds WEIGHTS {shares(fp['outside'], '')} --family {','.join(fp['family'])} "
            f"{shares(fp['inside'], 'family-')} --data {data}")


def markdown(res: dict) -> str:
    """The study as a markdown table: per unit, held-out vs reference, per group."""
    pairs = f", the twins' ranking loss x{res['pair_weight']:g}" if res.get("pair_weight") else ""
    lines = [f"Leave-one-source-out, encoder adapted by {res.get('adapter', 'qv-r8')}{pairs}, {res['steps']} steps of "
             f"64 per fold, seed {res['seed']}, at most "
             f"{res['per_group']} scored rows per group (data {res.get('data', 'corpus')}, "
             f"{res.get('data_key', res['data_sha256_16'])}).", "",
             "Each cell: held out (trained without the unit) / in-distribution at the same budget (the reference "
             "fold, the unit's test split) / the committed classifier (826 steps, every unit) on those same rows, "
             "at the bundled policy's thresholds.", "",
             "| held-out unit | benign flagged | risky-looking benign flagged | unsafe caught "
             "| unsafe caught held out, @0.5 |", "|---|---|---|---|---|"]
    for unit, r in res["units"].items():
        cols = [" / ".join(_cell(r[k], g) for k in ("held_out", "reference", "shipped")) for g in GROUPS]
        lines.append(f"| {unit} | " + " | ".join(cols) + f" | {_cell(r['held_out_at_0.5'], 'unsafe')} |")
    lines += ["", "Held out, every category's threshold capped at T: unsafe caught / benign or risky-looking benign "
              "flagged.", "", "| held-out unit | calibrated | " + " | ".join(f"T = {c}" for c in CAPS) + " |",
              "|---|---|" + "---|" * len(CAPS)]
    for unit, r in res["units"].items():
        cells = [r["held_out"], *(r["held_out_capped"][str(c)] for c in CAPS)]
        lines.append(f"| {unit} | " + " | ".join(" / ".join(f"{100 * x[g][0]:.1f}%" for g in GROUPS[::-1] if g in x)
                                                  for x in cells) + " |")
    ranked = {unit: r["held_out_auroc"] for unit, r in res["units"].items() if r.get("held_out_auroc") is not None}
    if ranked:
        lines += ["", "Held out, AUROC of unsafe rows against the unit's other rows (risk = max score / threshold): "
                  + "; ".join(f"{unit} {a:.3f}" for unit, a in ranked.items()) + "."]
    chosen = {unit: r["out_of_source"] for unit, r in res["units"].items() if "out_of_source" in r}
    if chosen:
        lines += ["", "Held out, every threshold capped at the lowest T at which each of the *other* units' held-out "
                  f"rows meets the goals (at most {100 * OUT_OF_SOURCE_GOALS['benign']:.0f}% of benign and "
                  f"{100 * OUT_OF_SOURCE_GOALS['hard-negative']:.0f}% of risky-looking benign flagged): an operating "
                  "point found out of source.", "",
                  "| held-out unit | T | unsafe caught | risky-looking benign flagged | benign flagged |",
                  "|---|---|---|---|---|"]
        for unit, o in chosen.items():
            cap = "none meets them" if o["cap"] is None else f"{o['cap']:.2f}"
            lines.append(f"| {unit} | {cap} | " + " | ".join(_cell(o["rates"], g) for g in GROUPS[::-1])
                         + " |")
    if "out_of_source_cap" in res:
        cap = res["out_of_source_cap"]
        lines += ["", "No cap makes every held-out unit's rows meet the goals." if cap is None else
                  f"Every held-out unit's rows meet the goals, each on its own, at T = {cap:.2f}: the cap for a model "
                  "trained on all of them."]
    chosen = {unit: r["out_of_source_point"] for unit, r in res["units"].items() if "out_of_source_point" in r}
    if chosen:
        lines += ["", "Held out, thresholds calibrated on the fold's own calibration rows at the operating point that "
                  "catches the most while each of the *other* units' held-out rows meets the goals (benign / "
                  "risky-looking benign shares flagged on the calibration rows, floor): a calibration found out of "
                  "source, which carries from one model to another.", "",
                  "| held-out unit | point | unsafe caught | risky-looking benign flagged | benign flagged |",
                  "|---|---|---|---|---|"]
        for unit, o in chosen.items():
            lines.append(f"| {unit} | {_point(o['point'])} | "
                         + " | ".join(_cell(o["rates"], g) for g in GROUPS[::-1]) + " |")
    if "out_of_source_point" in res:
        point = res["out_of_source_point"]
        lines += ["", f"Every held-out unit's rows meet the goals, each on its own, at {_point(point)}: the point "
                  "for a model trained on all of them." if point else
                  "No operating point makes every held-out unit's rows meet the goals."]
    if "out_of_source_family_point" in res:
        fp = res["out_of_source_family_point"]
        lines += ["", f"No pair of points (one for {', '.join(TEXT_HARM)}, one for the rest) makes every held-out "
                  "unit's rows meet the goals." if fp is None else
                  f"Each family at its own point: {', '.join(fp['family'])} at {_point(fp['inside'])}, every other "
                  f"category at {_point(fp['outside'])}; every held-out unit's rows meet the goals, each on its own, "
                  f"catching {100 * fp['caught']:.1f}% of a unit's unsafe rows on average. A file calibrated there: "
                  f"`{family_thresholds_command(fp, res.get('data', 'corpus'))}`."]
    if (fp := res.get("out_of_source_family_point") or {}).get("catching_more"):
        lines += ["", f"Of the {fp['catching_more']} points that would catch more as {', '.join(fp['family'])}'s "
                  "(the rest where they are), the held-out units that rule them out (how many each): "
                  + ", ".join(f"{u} ({n})" for u, n in sorted(fp["ruled_out_by"].items(), key=lambda x: -x[1]))
                  + "."]
    for unit, r in res["units"].items():
        if "text_evident" in r:
            lines += ["", text_evident_line(unit, r)]
    return "\n".join(lines) + "\n"
