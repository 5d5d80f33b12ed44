"""`t2iguard filter-dataset`: pre-training data filtering with the stack's own guards, and the rebalancing
weights that undo what the filter skewed.

DALL·E 2's pre-training filter for sexual content removed images of women more often than images of men, and
the model trained on the filtered set drew fewer women; OpenAI reweighted the filtered data to restore the
distribution. This module does both halves on any image–caption dataset:

1. **Read** one of three forms (`open_dataset`), each row `Row(id, caption, image)` with the image as
   uint8 [H, W, 3] RGB (any size) and optional string attributes:
   - a folder: `<stem>.png|jpg|jpeg|webp` with its caption in `<stem>.txt` and, optionally, attributes in
     `<stem>.json` (a flat JSON object), at any depth; the id is the stem's path under the folder;
   - a CSV manifest with `image` (a path, relative to the manifest's folder or absolute) and `caption` columns,
     an optional `id` column (else the `image` value is the id); every other column is an attribute;
   - WebDataset tar shards (a `.tar` file, or a folder of them): members `<key>.png|jpg|jpeg|webp`, `<key>.txt`
     and, optionally, `<key>.json` (attributes), read with the standard library's `tarfile`; the id is the key.
   A row that cannot be read (an undecodable image, a missing or empty caption, a broken sidecar, an unreadable
   shard) is written to the removed manifest with a reason `unreadable: ...`; the run goes on.
2. **Score** captions with the prompt_guard ensemble (long captions as overlapping windows, as the served
   pipeline screens prompts: `t2iguard.runtime.runners.screen_texts`) and images with image_guard
   (`score_images`; images letterboxed with grey to the profile's square size: nothing is cropped away), in
   batches of the models' max_batch_size, through any `Infer`: `LocalRunner.infer` (in-process over a built
   repository) or `SafeT2IClient.infer` (a served stack).
3. **Decide** per row with the policy (`Policy.decide_prompt`, `Policy.decide_image` after the nudity fusion):
   a row is removed when any category's prompt or image score reaches its threshold under a rule whose action
   is not `log` (block, rewrite, regenerate); `log` categories are recorded and keep the row.
4. **Rebalance** (`rebalance`): rows carry attributes (manifest columns, sidecar JSON); for the attributes named
   by `balance_by`, each kept row's weight is p_before(cell) / p_after(cell) for its cell (the tuple of its
   values of those attributes; a missing value is its own value, `(missing)`): the importance weight that makes
   the weighted kept set's cell distribution, hence each attribute's, equal to the dataset's before filtering.
   Weights above `max_weight` are clipped (a few rows of a nearly emptied cell would otherwise dominate
   training); a cell whose rows were all removed cannot be restored. Both are reported.

Outputs (`write_outputs`): kept.csv and removed.csv (id, source, caption, reasons, logged, a `prompt:<category>`
and an `image:<category>` score column per category, NudeNet's `detector:<class>` columns when the repository
has the detector, then the dataset's attribute columns), weights.csv (id, weight, the balanced attributes) and
stats.json.
"""

from __future__ import annotations

import csv
import io
import json
import tarfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from t2iguard.contract.errors import InvalidInput
from t2iguard.contract.policy import Policy
from t2iguard.contract.profiles import Profile
from t2iguard.contract.taxonomy import CATEGORIES, NUDE_CLASSES
from t2iguard.runtime.images import letterbox
from t2iguard.runtime.runners import Infer, score_images, screen_texts
from t2iguard.runtime.stages import decode_text
from t2iguard.runtime.text import screening_windows

IMAGE_EXTS = ("png", "jpg", "jpeg", "webp")
FORMS = ("folder", "csv", "webdataset")
#: the value of an attribute a row does not carry
MISSING = "(missing)"
#: the default clip of the rebalancing weights
MAX_WEIGHT = 10.0
#: rows read and scored per step (several model requests each)
CHUNK = 64
#: the manifests' fixed columns, before the scores and the attributes
BASE_COLUMNS = ("id", "source", "caption", "reasons", "logged")


@dataclass
class Row:
    """One dataset row. `image`: uint8 [H, W, 3] RGB as decoded (any size), None when unreadable; `error`: why
    the row cannot be screened (`unreadable: ...`, `duplicate: ...`), None when it can."""

    id: str
    source: str
    caption: str | None
    image: np.ndarray | None
    attributes: dict[str, str] = field(default_factory=dict)
    error: str | None = None


@dataclass
class Dataset:
    """An opened dataset: its form (`folder`, `csv`, `webdataset`), row count, attribute names (manifest
    columns or sidecar keys, known before reading) and `rows()`, a fresh iterator over its rows."""

    path: Path
    form: str
    total: int
    attributes: tuple[str, ...]
    rows: Callable[[], Iterator[Row]]


# --- reading -------------------------------------------------------------------------------------
def open_dataset(path: Path) -> Dataset:
    """The dataset at `path`: a `.csv` manifest, a `.tar` shard, or a folder (of `.tar` shards when it holds
    shards and no images, else of images with captions). Raises FileNotFoundError for a missing path,
    ValueError for a form it cannot read (naming what it expected)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset {path} does not exist")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".csv":
            return _csv_dataset(path)
        if suffix == ".tar":
            return _tar_dataset(path, [path])
        if suffix == ".parquet":
            raise ValueError(f"{path}: parquet manifests need pyarrow, which this installation does not have; "
                             "write the manifest as CSV (columns image, caption[, id, attributes...])")
        raise ValueError(f"{path}: give a folder of images with .txt captions, a .csv manifest or .tar shards")
    shards = sorted(p for p in path.rglob("*.tar") if p.is_file())
    if shards and not any(p.suffix.lower().lstrip(".") in IMAGE_EXTS for p in path.rglob("*") if p.is_file()):
        return _tar_dataset(path, shards)
    return _folder_dataset(path)


def decode(data: bytes) -> np.ndarray:
    """Encoded image bytes (any format Pillow reads) -> uint8 [H, W, 3] RGB. Raises ValueError with Pillow's
    reason when the bytes do not decode."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except UnidentifiedImageError:  # its message names the in-memory buffer, not the file
        raise ValueError("UnidentifiedImageError: not an image format Pillow reads") from None
    except Exception as e:  # noqa: BLE001 - any decoder failure (truncated, unknown format, bomb) is a bad row
        raise ValueError(f"{e.__class__.__name__}: {e}") from None


def _caption(data: bytes | None, where: str) -> str:
    """A caption file's bytes -> its text; ValueError (the row's `unreadable:` reason) when absent, not UTF-8
    or empty."""
    if data is None:
        raise ValueError(f"no caption ({where} missing)")
    try:
        text = data.decode("utf-8-sig").strip()
    except UnicodeDecodeError as e:
        raise ValueError(f"caption {where} is not UTF-8 (byte {e.start})") from None
    if not text:
        raise ValueError(f"empty caption ({where})")
    return text


def _attributes(data: bytes, where: str) -> dict[str, str]:
    """A sidecar's bytes (a flat JSON object) -> {name: value as text}; ValueError when it is not one."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"attributes {where} are not JSON ({e})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"attributes {where} are not a JSON object")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in obj.items()}


def _read_row(rid: str, source: str, image: Callable[[], bytes] | None, caption: Callable[[], bytes | None],
              caption_where: str, sidecar: Callable[[], bytes] | None, attributes: dict[str, str]) -> Row:
    """One row from its parts (callables read lazily); the first failure becomes the row's reason."""
    row = Row(rid, source, None, None, dict(attributes))
    try:
        if sidecar is not None:
            row.attributes.update(_attributes(sidecar(), f"{rid}.json"))
        row.caption = _caption(caption(), caption_where)
        if image is None:
            raise ValueError("no image for this caption")
        row.image = decode(image())
    except (ValueError, OSError) as e:
        row.error = f"unreadable: {e}"
    return row


def _folder_dataset(root: Path) -> Dataset:
    parts: dict[str, dict[str, Path]] = {}
    extra: list[Path] = []  # a second image with a stem already taken
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        ext = p.suffix.lower().lstrip(".")
        kind = "image" if ext in IMAGE_EXTS else ext if ext in ("txt", "json") else None
        if kind is None:
            continue
        entry = parts.setdefault(p.relative_to(root).with_suffix("").as_posix(), {})
        if kind in entry:
            extra.append(p)
        else:
            entry[kind] = p
    keys = sorted(parts)
    names = sorted({k for key in keys if "json" in parts[key] for k in _sidecar_keys(parts[key]["json"])})

    def rows() -> Iterator[Row]:
        for key in keys:
            entry = parts[key]
            img, txt, js = entry.get("image"), entry.get("txt"), entry.get("json")
            yield _read_row(key, str(img or txt or js), img.read_bytes if img else None,
                            lambda txt=txt: txt.read_bytes() if txt else None, f"{key}.txt",
                            js.read_bytes if js else None, {})
        for p in extra:
            rid = p.relative_to(root).as_posix()
            yield Row(rid, str(p), None, None, error=f"unreadable: another image has the stem of {rid}; its "
                                                        "caption would be ambiguous")

    return Dataset(root, "folder", len(keys) + len(extra), tuple(names), rows)


def _sidecar_keys(path: Path) -> list[str]:
    try:
        return list(_attributes(path.read_bytes(), path.name))
    except (ValueError, OSError):
        return []  # the row reports it when read


def _csv_dataset(path: Path) -> Dataset:
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = tuple(reader.fieldnames or ())
        records = list(reader)
    missing = [c for c in ("image", "caption") if c not in columns]
    if missing:
        raise ValueError(f"manifest {path} has columns {list(columns)}; it needs `image` and `caption` "
                         f"(missing: {', '.join(missing)})")
    names = tuple(c for c in columns if c not in ("image", "caption", "id"))
    base = path.parent

    def rows() -> Iterator[Row]:
        for n, rec in enumerate(records, start=2):  # the header is line 1
            value = (rec.get("image") or "").strip()
            rid = (rec.get("id") or "").strip() or value or f"line-{n}"
            image = (base / value) if value else None
            text = rec.get("caption")
            yield _read_row(rid, str(image) if image else f"{path.name}:{n}", image.read_bytes if image else None,
                            lambda text=text: text.encode("utf-8") if text is not None else None,
                            f"{path.name} line {n}", None, {k: rec.get(k) or "" for k in names})

    return Dataset(path, "csv", len(records), names, rows)


def _shard_samples(tar: tarfile.TarFile) -> dict[str, dict[str, tarfile.TarInfo]]:
    """WebDataset grouping: {key: {extension: member}}, in the shard's order; the key is the member's path up
    to the first dot of its file name."""
    samples: dict[str, dict[str, tarfile.TarInfo]] = {}
    for m in tar.getmembers():
        if not m.isfile():
            continue
        folder, _, name = m.name.rpartition("/")
        stem, dot, ext = name.partition(".")
        if dot:
            samples.setdefault(f"{folder}/{stem}" if folder else stem, {})[ext.lower()] = m
    return samples


def _tar_dataset(path: Path, shards: list[Path]) -> Dataset:
    counts: dict[Path, int] = {}
    names: set[str] = set()
    for shard in shards:
        try:
            with tarfile.open(shard) as tar:
                samples = _shard_samples(tar)
                counts[shard] = len(samples)
                for parts in samples.values():
                    if "json" in parts:
                        try:
                            names.update(_attributes(tar.extractfile(parts["json"]).read(), parts["json"].name))
                        except ValueError:
                            pass  # the row reports it when read
        except (tarfile.TarError, OSError):
            counts[shard] = 1  # one row: the shard, unreadable

    def rows() -> Iterator[Row]:
        for shard in shards:
            try:
                tar = tarfile.open(shard)
                samples = _shard_samples(tar)
            except (tarfile.TarError, OSError) as e:
                yield Row(shard.name, str(shard), None, None, error=f"unreadable: shard {shard.name}: {e}")
                continue
            with tar:
                for key, parts in samples.items():
                    image = next((parts[e] for e in IMAGE_EXTS if e in parts), None)

                    def member(m: tarfile.TarInfo | None, tar=tar) -> bytes | None:
                        return None if m is None else tar.extractfile(m).read()

                    yield _read_row(key, f"{shard}:{image.name if image else key}",
                                    (lambda m=image: member(m)) if image else None,
                                    lambda m=parts.get("txt"): member(m), f"{key}.txt",
                                    (lambda m=parts["json"]: member(m)) if "json" in parts else None, {})

    return Dataset(path, "webdataset", sum(counts.values()), tuple(sorted(names)), rows)


def write_dataset(samples: Iterable[tuple[str, str, np.ndarray, dict[str, str]]], path: Path, form: str,
                  shard_rows: int = 100) -> Path:
    """Write (id, caption, uint8 [H, W, 3] RGB image, attributes) samples as a dataset of `form` under the folder
    `path`, PNG images; returns what to pass to `open_dataset`: the folder (`folder`: <id>.png, <id>.txt,
    <id>.json; `webdataset`: shard-000000.tar, ... of `shard_rows` samples, members <id>.png, <id>.txt,
    <id>.json) or the manifest (`csv`: manifest.csv with id, image, caption and the attribute columns, images
    under images/). Ids must be file-name safe."""
    from t2iguard.runtime.images import encode_png

    path.mkdir(parents=True, exist_ok=True)
    samples = list(samples)
    if form == "folder":
        for rid, caption, image, attributes in samples:
            (path / f"{rid}.png").write_bytes(encode_png(image))
            (path / f"{rid}.txt").write_text(caption, encoding="utf-8")
            if attributes:
                (path / f"{rid}.json").write_text(json.dumps(attributes), encoding="utf-8")
        return path
    if form == "csv":
        (path / "images").mkdir(exist_ok=True)
        names = list(dict.fromkeys(k for *_, attributes in samples for k in attributes))
        with (path / "manifest.csv").open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["id", "image", "caption", *names])
            for rid, caption, image, attributes in samples:
                (path / "images" / f"{rid}.png").write_bytes(encode_png(image))
                w.writerow([rid, f"images/{rid}.png", caption, *(attributes.get(k, "") for k in names)])
        return path / "manifest.csv"
    if form == "webdataset":
        for start in range(0, len(samples), shard_rows):
            with tarfile.open(path / f"shard-{start // shard_rows:06d}.tar", "w") as tar:
                for rid, caption, image, attributes in samples[start:start + shard_rows]:
                    members = [("png", encode_png(image)), ("txt", caption.encode("utf-8"))]
                    members += [("json", json.dumps(attributes).encode("utf-8"))] if attributes else []
                    for ext, data in members:
                        info = tarfile.TarInfo(f"{rid}.{ext}")
                        info.size = len(data)
                        tar.addfile(info, io.BytesIO(data))
        return path
    raise ValueError(f"unknown form {form!r}; known: {', '.join(FORMS)}")


# --- scoring and deciding -----------------------------------------------------------------------
@dataclass
class Verdict:
    """One screened row: scores per category (prompt; image after the policy's nudity fusion), NudeNet's
    classes (None: no detector), and the categories that remove it (`flagged`) or are only logged, each as
    `stage:category=score`."""

    prompt: dict[str, float]
    image: dict[str, float]
    detector: dict[str, float] | None
    flagged: list[str]
    logged: list[str]

    @property
    def removed(self) -> bool:
        return bool(self.flagged)


class Guards:
    """The two guards a filter run calls, through `infer` (a `LocalRunner`'s or a `SafeT2IClient`'s), in
    requests of at most `prompt_batch` captions and `image_batch` images (the models' max_batch_size)."""

    def __init__(self, infer: Infer, profile: Profile, policy: Policy, prompt_batch: int, image_batch: int):
        self.infer, self.profile, self.policy = infer, profile, policy
        self.prompt_batch, self.image_batch = prompt_batch, image_batch

    def check_caption(self, caption: str) -> None:
        """Raise InvalidInput when prompt_guard would refuse the caption (its screening windows must each be a
        valid prompt: UTF-8, within the prompt length limit), so one caption never fails a whole batch."""
        for window in screening_windows(caption, self.profile.seq_len):
            decode_text(window, "caption")

    def __call__(self, captions: list[str], images: list[np.ndarray]) -> list[Verdict]:
        """Captions and their images (uint8 [H, W, 3] each, any size) -> one Verdict per row."""
        screens = screen_texts(self.infer, captions, self.prompt_batch, self.profile.seq_len, self.policy)
        size = self.profile.image_size
        pixels = np.stack([letterbox(im, size) for im in images]) if images else np.zeros((0, size, size, 3),
                                                                                         np.uint8)
        scored = score_images(self.infer, pixels, self.image_batch, self.profile.nude_detector)
        verdicts = []
        for screen, (classifier, detector) in zip(screens, scored, strict=True):
            image = self.policy.fuse_image_scores(classifier, detector)
            p, i = self.policy.decide_prompt(screen.scores), self.policy.decide_image(image)
            verdicts.append(Verdict(screen.scores, image, detector,
                                    _labels("prompt", p.flagged, screen.scores) + _labels("image", i.flagged, image),
                                    _labels("prompt", p.logged, screen.scores) + _labels("image", i.logged, image)))
        return verdicts


def _labels(stage: str, categories: list[str], scores: dict[str, float]) -> list[str]:
    return [f"{stage}:{c}={scores[c]:.2f}" for c in categories]


# --- rebalancing --------------------------------------------------------------------------------
@dataclass
class Balance:
    """Importance weights per cell (a tuple of attribute values, `by` order) and what they restore.

    `weights[cell]` = min(p_before / p_after, max_weight) for every cell with kept rows; `clipped`: the cells
    whose weight was clipped; `lost`: cells with rows before filtering and none after (not restorable).
    `shares[attribute][value]` = {"before", "after", "weighted"}: the value's share of the dataset's rows, of the
    kept rows, and of the kept rows' total weight."""

    by: tuple[str, ...]
    max_weight: float
    weights: dict[tuple[str, ...], float]
    clipped: list[tuple[str, ...]]
    lost: list[tuple[str, ...]]
    shares: dict[str, dict[str, dict[str, float]]]
    effective_rows: float

    def as_json(self, before: Counter, after: Counter) -> dict:
        cells = [{"values": dict(zip(self.by, c, strict=True)), "before": before[c], "kept": after[c],
                  "weight": self.weights.get(c), "clipped": c in self.clipped} for c in sorted(before)]
        return {"by": list(self.by), "max_weight": self.max_weight, "cells": cells,
                "clipped": [dict(zip(self.by, c, strict=True)) for c in self.clipped],
                "lost": [dict(zip(self.by, c, strict=True)) for c in self.lost],
                "effective_rows": round(self.effective_rows, 1),
                "shares": {a: {v: {k: round(x, 6) for k, x in s.items()} for v, s in values.items()}
                           for a, values in self.shares.items()}}


def rebalance(by: tuple[str, ...], before: list[tuple[str, ...]], kept: list[tuple[str, ...]],
              max_weight: float = MAX_WEIGHT) -> Balance:
    """Weights for the kept rows' cells so that the weighted kept set has the cell distribution of `before`
    (every row of the dataset), hence the same distribution of each attribute. `before` and `kept`: one cell
    (a tuple of the row's values of the attributes `by`) per row. `effective_rows`: Kish's effective sample
    size of the weighted kept set, (sum w)^2 / sum w^2."""
    nb, nk = Counter(before), Counter(kept)
    total_b, total_k = max(len(before), 1), max(len(kept), 1)
    raw = {c: (nb[c] / total_b) / (nk[c] / total_k) for c in nk}
    weights = {c: min(w, max_weight) for c, w in raw.items()}
    per_row = np.array([weights[c] for c in kept], dtype=np.float64)
    shares: dict[str, dict[str, dict[str, float]]] = {}
    for i, attr in enumerate(by):
        values = sorted({c[i] for c in nb})
        wsum = float(per_row.sum()) or 1.0
        shares[attr] = {v: {"before": sum(n for c, n in nb.items() if c[i] == v) / total_b,
                            "after": sum(n for c, n in nk.items() if c[i] == v) / total_k,
                            "weighted": sum(weights[c] * n for c, n in nk.items() if c[i] == v) / wsum}
                        for v in values}
    ess = float(per_row.sum() ** 2 / (per_row ** 2).sum()) if len(per_row) else 0.0
    return Balance(by, max_weight, weights, sorted(c for c, w in raw.items() if w > max_weight),
                   sorted(set(nb) - set(nk)), shares, ess)


# --- the run ------------------------------------------------------------------------------------
@dataclass
class Summary:
    """What a run found: counts, removals per category and stage, and the rebalancing."""

    stats: dict
    balance: Balance | None


def filter_dataset(dataset: Dataset, guards: Guards, out: Path, balance_by: tuple[str, ...] = (),
                   max_weight: float = MAX_WEIGHT, progress: Callable[[int], None] = lambda n: None) -> Summary:
    """Screen every row of `dataset` with `guards`, writing kept.csv and removed.csv under `out` as it goes
    (`.partial` until the run completes), then weights.csv and stats.json. `progress(n)`: n more rows done.
    Raises ValueError when a `balance_by` attribute is not one of the dataset's; a guard failure (a model error
    or an unreachable server) propagates: nothing is kept unscreened."""
    unknown = [a for a in balance_by if a not in dataset.attributes]
    if unknown:
        raise ValueError(f"--balance-by {', '.join(unknown)}: not an attribute of {dataset.path}; its attributes: "
                         f"{', '.join(dataset.attributes) or 'none (add manifest columns or <id>.json sidecars)'}")
    clash = sorted(set(dataset.attributes) & set(_score_columns(guards.profile)) | (set(dataset.attributes)
                                                                                     & set(BASE_COLUMNS)))
    if clash:
        raise ValueError(f"{dataset.path}: attribute names {clash} are output columns; rename them")
    out.mkdir(parents=True, exist_ok=True)
    columns = [*BASE_COLUMNS, *_score_columns(guards.profile), *dataset.attributes]
    t0 = time.perf_counter()
    counts: Counter = Counter()
    by_category = {c: Counter() for c in CATEGORIES}
    logged = {c: Counter() for c in CATEGORIES}
    seen: set[str] = set()
    cells_before: list[tuple[str, ...]] = []
    kept_rows: list[tuple[str, tuple[str, ...]]] = []
    files = {name: (out / f"{name}.csv.partial").open("w", newline="", encoding="utf-8") for name in ("kept",
                                                                                                      "removed")}
    try:
        writers = {name: csv.DictWriter(f, columns, extrasaction="ignore") for name, f in files.items()}
        for w in writers.values():
            w.writeheader()
        for chunk in _chunks(dataset.rows(), CHUNK):
            for row in chunk:
                if row.error is None and row.id in seen:
                    row.error = f"duplicate: id {row.id!r} was read before"
                seen.add(row.id)
                if row.error is None:
                    try:
                        guards.check_caption(row.caption)
                    except InvalidInput as e:
                        row.error = f"unreadable: {e}"
            good = [r for r in chunk if r.error is None]
            verdicts = iter(guards([r.caption for r in good], [r.image for r in good]))
            for row in chunk:
                cell = tuple(row.attributes.get(a) or MISSING for a in balance_by)
                cells_before.append(cell)
                verdict = next(verdicts) if row.error is None else None
                record = {"id": row.id, "source": row.source, "caption": row.caption or "", **row.attributes}
                if verdict is None:
                    counts["unreadable" if row.error.startswith("unreadable") else "duplicate"] += 1
                    writers["removed"].writerow(record | {"reasons": row.error})
                    continue
                record |= _score_record(verdict) | {"reasons": "; ".join(verdict.flagged),
                                                    "logged": "; ".join(verdict.logged)}
                stages = {f.split(":")[0] for f in verdict.flagged}
                for c in CATEGORIES:
                    hit = {s for s in ("prompt", "image") if any(f.startswith(f"{s}:{c}=") for f in verdict.flagged)}
                    by_category[c].update(hit | ({"either"} if hit else set()))
                    hit = {s for s in ("prompt", "image") if any(f.startswith(f"{s}:{c}=") for f in verdict.logged)}
                    logged[c].update(hit)
                if verdict.removed:
                    counts["removed by prompt"] += "prompt" in stages
                    counts["removed by image"] += "image" in stages
                    counts["removed by both"] += stages == {"prompt", "image"}
                    writers["removed"].writerow(record)
                else:
                    kept_rows.append((row.id, cell))
                    writers["kept"].writerow(record)
            progress(len(chunk))
    finally:
        for f in files.values():
            f.close()
    for name in files:
        (out / f"{name}.csv.partial").replace(out / f"{name}.csv")
    balance = rebalance(balance_by, cells_before, [c for _, c in kept_rows], max_weight) if balance_by else None
    with (out / "weights.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "weight", *balance_by])
        for rid, cell in kept_rows:
            w.writerow([rid, f"{balance.weights[cell]:.6g}" if balance else "1", *cell])
    seconds = time.perf_counter() - t0
    rows = len(cells_before)
    stats = {
        "dataset": str(dataset.path), "form": dataset.form, "rows": rows, "kept": len(kept_rows),
        "removed": rows - len(kept_rows), "unreadable": counts["unreadable"], "duplicates": counts["duplicate"],
        "removed_by": {"prompt": counts["removed by prompt"], "image": counts["removed by image"],
                       "both": counts["removed by both"]},
        "categories": {c: {k: n[k] for k in ("prompt", "image", "either")} for c, n in by_category.items() if n},
        "logged": {c: {k: n[k] for k in ("prompt", "image")} for c, n in logged.items() if n},
        "policy_version": guards.policy.version, "seconds": round(seconds, 1),
        "rows_per_s": round(rows / seconds, 1) if seconds else None,
        "balance": balance.as_json(Counter(cells_before), Counter(c for _, c in kept_rows)) if balance else None,
    }
    (out / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False))
    return Summary(stats, balance)


def _score_columns(profile: Profile) -> list[str]:
    detector = [f"detector:{c}" for c in NUDE_CLASSES] if profile.nude_detector else []
    return [f"prompt:{c}" for c in CATEGORIES] + [f"image:{c}" for c in CATEGORIES] + detector


def _score_record(v: Verdict) -> dict[str, float]:
    return ({f"prompt:{c}": v.prompt[c] for c in CATEGORIES} | {f"image:{c}": v.image[c] for c in CATEGORIES}
            | {f"detector:{c}": s for c, s in (v.detector or {}).items()})


def _chunks(rows: Iterator[Row], n: int) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def shares_table(balance: Balance) -> list[tuple[str, str, float, float, float]]:
    """(attribute, value, before, after, weighted) per attribute value, shares in [0, 1]."""
    return [(a, v, s["before"], s["after"], s["weighted"]) for a, values in balance.shares.items()
            for v, s in values.items()]


def plot(balance: Balance, path: Path, title: str = "") -> None:
    """Grouped bars per balanced attribute: each value's share before filtering, after, and after rebalancing
    (weighted). Writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attrs = list(balance.shares)
    fig, axes = plt.subplots(1, len(attrs), figsize=(4.2 * len(attrs) + 1, 3.9), squeeze=False)
    for ax, attr in zip(axes[0], attrs, strict=True):
        values = list(balance.shares[attr])
        x = np.arange(len(values))
        for k, (key, label) in enumerate((("before", "before filtering"), ("after", "after filtering"),
                                          ("weighted", "after rebalancing (weighted)"))):
            ax.bar(x + (k - 1) * 0.27, [100 * balance.shares[attr][v][key] for v in values], 0.27, label=label)
        ax.set_xticks(x, values, rotation=30 if max(map(len, values)) > 6 else 0)
        ax.set_ylabel("share of rows (%)")
        ax.set_title(attr)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)

