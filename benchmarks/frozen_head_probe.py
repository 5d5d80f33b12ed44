"""Does one of the project's own data sources teach what it was written to teach? A probe on frozen MiniLM.

    python benchmarks/frozen_head_probe.py [--source own-stance] [--weight 5] [--seeds 0 1 2] [--cap N]

Fits the study head of `training.prompt_head` (an MLP on the cached, frozen all-MiniLM-L6-v2 embeddings of the
corpus's training split: seconds per fit) three ways: without `--source`'s rows, with them, and with them weighted
`--weight`; scores the held-out sets that hold risky-looking benign text (HateCheck, Multitarget-CONAN: never trained
on, their near-duplicates dropped from the corpus); prints, per seed, the AUROC of the unsafe rows against the
risky-looking benign ones, by the `hate` score and by the highest score of any category. A source whose rows raise
these AUROCs teaches a representation-level separation that a longer-trained served model can learn too; one that
does not is a cue to write different data, before an hour of fine-tuning. `--cap N` fits on at most N training rows
per (manifest source, group, weak) cell, seeded, as the served recipe samples them (`train_prompt_classifier.CAP`).
A probe, not a model that is served.
"""

from __future__ import annotations

import argparse

import numpy as np

from t2iguard.contract.taxonomy import CATEGORIES
from t2iguard.training import prompt_head as H
from t2iguard.training.data.corpus import held_out
from t2iguard.training.prompt_loso import auroc

SETS = ("hatecheck", "multitarget-conan")


def held_out_set(source_id: str) -> tuple[np.ndarray, np.ndarray]:
    """(float32 [N, 384] embeddings, bool [N] unsafe) of a held-out source's unsafe and risky-looking benign rows;
    SystemExit naming the source when its cached copy lacks either group (not imported: `t2iguard data import`)."""
    rows = [e for e in held_out(source_id) if e.group in ("unsafe", "hard-negative")]
    x, at = H.embed_texts([e.text for e in rows])
    y = np.array([rows[i].group == "unsafe" for i in at], dtype=bool)
    if y.all() or not y.any():
        raise SystemExit(f"{source_id}: no cached rows of both groups (run `t2iguard data import --mirror DIR`)")
    return x, y


def capped(data: H.Embedded, cap: int, seed: int = 0) -> np.ndarray:
    """bool [N]: the training rows, at most `cap` per (manifest source, group, weak) cell (a seeded sample; one
    sample for every fit, so the spread over `--seeds` is the head's, not the sampling's)."""
    rng = np.random.default_rng(seed)
    cells: dict[tuple, list[int]] = {}
    for i in np.flatnonzero(data.split == "train"):
        cells.setdefault((data.examples[i].source, data.group[i], bool(data.weak[i])), []).append(int(i))
    keep = np.zeros(len(data.split), bool)
    for _, rows in sorted(cells.items()):
        keep[rng.choice(rows, cap, replace=False) if len(rows) > cap else rows] = True
    return keep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default="own-stance", help="an own-data id or a repository (`corpus.source_of`)")
    ap.add_argument("--weight", type=float, default=5.0, help="the third fit's loss weight of the source's rows")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--cap", type=int, default=0, help="at most this many training rows per cell (0: every row)")
    args = ap.parse_args()
    if args.cap < 0 or args.weight <= 0:
        ap.error(f"--cap must be >= 0 (got {args.cap}) and --weight > 0 (got {args.weight})")
    data = H.embedded_corpus()
    train = capped(data, args.cap) if args.cap else data.split == "train"
    of_source = data.source == args.source
    if not (train & of_source).any():
        ap.error(f"--source: no training row comes from {args.source!r}")
    sets = {s: held_out_set(s) for s in SETS}
    w = H.sample_weights(data)
    heavier = (w * np.where(of_source, args.weight, 1.0)).astype(np.float32)  # the source's rows, weak or not, x weight
    fits = {f"without {args.source}": (train & ~of_source, w), f"with {args.source}": (train, w),
            f"with {args.source} x{args.weight:g}": (train, heavier)}
    hate = CATEGORIES.index("hate")
    print("| fit | seed | " + " | ".join(f"{s} AUROC (hate / any)" for s in SETS) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in SETS) + " |")
    for name, (mask, weights) in fits.items():
        for seed in args.seeds:
            head = H.fit_head(data.x[mask], data.y[mask], weights[mask], seed=seed)
            cells = []
            for x, y in sets.values():
                s = H.head_scores(head, x)
                cells.append(f"{auroc(y, s[:, hate]):.3f} / {auroc(y, s.max(1)):.3f}")
            print(f"| {name} | {seed} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
