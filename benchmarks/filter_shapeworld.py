"""Does `t2iguard filter-dataset` skew a dataset's attributes, and do its weights undo the skew? Measured on
ShapeWorld, whose every attribute and every unsafe element is known.

    .venv/bin/python benchmarks/filter_shapeworld.py [--rows 1500] [--seed 0] [--form csv] \\
        [--repository build/repository/cpu] [--out build/filter-shapeworld] [--plot docs/filter-shapeworld.png]

The dataset mirrors DALL·E 2's lesson (filtering sexual content removed images of women more often, so the
filtered data held fewer women): the unsafe content correlates with attributes. Scenes are drawn uniformly over
shapes and colours (`shapeworld.random_scene`), then
- figures are bare (the `nudity` stand-in) in 45% of cases: 25% with an explicit caption ("a bare figure with no
  shirt"), 20% captioned innocently ("dressed for a party": the unintended kind only the image shows); another
  15% are clothed party figures. Only figures can be bare, so a nudity filter removes figures: `shape` skews;
- a hazard sign (the `violence/graphic` stand-in, named in the caption) is drawn on 40% of red scenes and 6% of
  the others: `colour` skews.
The rows are written as a dataset of `--form` (manifest columns or sidecar JSON carry `shape`, `colour`, the
figure's `kind` and the true categories, `truth`), filtered by the command (in-process models of the built
repository) with `--balance-by shape --balance-by colour`, and the script prints two Markdown tables: each
attribute value's share before filtering, after, and after rebalancing (weighted by weights.csv, read back
here); and the filter's precision and recall per category against the scenes' labels (`Scene.categories`), for
the caption (prompt classifier), the image (image classifier) and either. `study.json` under --out keeps them.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from t2iguard.cli.filter import FORMS, write_dataset
from t2iguard.training.data import shapeworld as W

EXPLICIT_BARE, PARTY_BARE, PARTY_CLOTHED = 0.25, 0.20, 0.15
HAZARD_RED, HAZARD_OTHER = 0.40, 0.06
CATEGORIES = ("nudity", "violence/graphic")  # what ShapeWorld draws (Scene.categories)


def draw(rows: int, seed: int) -> list[tuple[str, str, np.ndarray, dict[str, str]]]:
    """`rows` (id, caption, uint8 [256, 256, 3] image, attributes) samples with the correlations above."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(rows):
        scene, kind = W.random_scene(rng), ""
        if scene.shape == "figure":
            u = rng.random()
            kind = ("bare" if u < EXPLICIT_BARE else "party-bare" if u < EXPLICIT_BARE + PARTY_BARE
                    else "party" if u < EXPLICIT_BARE + PARTY_BARE + PARTY_CLOTHED else "plain")
            scene = replace(scene, bare=kind.endswith("bare"), party=kind.startswith("party"))
        if rng.random() < (HAZARD_RED if scene.colour == "red" else HAZARD_OTHER):
            scene = replace(scene, hazard=True)
        truth = ";".join(c for c, v in scene.categories().items() if v)
        samples.append((f"sw{i:05d}", W.caption(scene, rng), W.render(scene),
                        {"shape": scene.shape, "colour": scene.colour, "kind": kind, "truth": truth}))
    return samples


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def shares_table(kept: list[dict], removed: list[dict], weights: dict[str, float], attribute: str) -> list[dict]:
    """Per value of `attribute`: its share of all rows, of the kept rows, and of the kept rows' total weight."""
    rows = kept + removed
    total_w = sum(weights[r["id"]] for r in kept)
    return [{"attribute": attribute, "value": v,
             "before": sum(r[attribute] == v for r in rows) / len(rows),
             "after": sum(r[attribute] == v for r in kept) / len(kept),
             "weighted": sum(weights[r["id"]] for r in kept if r[attribute] == v) / total_w}
            for v in sorted({r[attribute] for r in rows})]


def filter_quality(kept: list[dict], removed: list[dict]) -> list[dict]:
    """Precision and recall of the filter per category and stage against the drawn truth."""
    rows = kept + removed
    out = []
    for cat in (*CATEGORIES, "any"):
        truth = np.array([bool(r["truth"]) if cat == "any" else cat in r["truth"].split(";") for r in rows])
        for stage in ("prompt", "image", "either"):
            def hit(r: dict, stage=stage, cat=cat) -> bool:
                flags = [f for f in r.get("reasons", "").split("; ") if f and not f.startswith("unreadable")]
                return any((stage == "either" or f.startswith(f"{stage}:"))
                           and (cat == "any" or f.split(":", 1)[1].startswith(f"{cat}=")) for f in flags)
            pred = np.array([hit(r) for r in rows])
            tp, fp, fn = int((truth & pred).sum()), int((~truth & pred).sum()), int((truth & ~pred).sum())
            out.append({"category": cat, "stage": stage, "positives": int(truth.sum()), "flagged": int(pred.sum()),
                        "tp": tp, "fp": fp, "fn": fn, "precision": tp / (tp + fp) if tp + fp else None,
                        "recall": tp / (tp + fn) if tp + fn else None})
    return out


def by_kind(kept: list[dict], removed: list[dict]) -> list[dict]:
    """For figures of each kind: how many, removed by the caption, by the image, at all."""
    out = []
    for kind in ("bare", "party-bare", "party", "plain"):
        rows = [r for r in kept + removed if r["kind"] == kind]
        out.append({"kind": kind, "rows": len(rows),
                    "by_caption": sum("prompt:" in r["reasons"] for r in rows),
                    "by_image": sum("image:" in r["reasons"] for r in rows),
                    "removed": sum(bool(r["reasons"]) for r in rows)})
    return out


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--form", choices=FORMS, default="csv")
    ap.add_argument("--repository", type=Path, default=Path("build/repository/cpu"))
    ap.add_argument("--out", type=Path, default=Path("build/filter-shapeworld"))
    ap.add_argument("--plot", type=Path, default=Path("docs/filter-shapeworld.png"))
    ap.add_argument("--max-weight", type=float, default=10.0)
    args = ap.parse_args()

    t0 = time.perf_counter()
    dataset = write_dataset(draw(args.rows, args.seed), args.out / "dataset" / args.form, args.form)
    drawn = time.perf_counter() - t0
    result = args.out / "result"
    cmd = [sys.executable, "-m", "t2iguard.cli.app", "filter-dataset", str(dataset), "--out", str(result),
           "--repository", str(args.repository), "--balance-by", "shape", "--balance-by", "colour",
           "--max-weight", str(args.max_weight), "--plot", str(args.plot)]
    print(f"$ {' '.join(cmd[2:])}", file=sys.stderr)
    subprocess.run(cmd, check=True)
    kept, removed = read_csv(result / "kept.csv"), read_csv(result / "removed.csv")
    weights = {r["id"]: float(r["weight"]) for r in read_csv(result / "weights.csv")}
    stats = json.loads((result / "stats.json").read_text())
    shares = [s for a in ("shape", "colour") for s in shares_table(kept, removed, weights, a)]
    quality = filter_quality(kept, removed)
    kinds = by_kind(kept, removed)

    print(f"\n{stats['rows']} ShapeWorld rows ({args.form}, seed {args.seed}, drawn in {drawn:.0f} s): "
          f"{stats['kept']} kept, {stats['removed']} removed ({stats['removed_by']['prompt']} by the caption, "
          f"{stats['removed_by']['image']} by the image); filtered in {stats['seconds']} s "
          f"({stats['rows_per_s']} rows/s); effective rows of the weighted set "
          f"{stats['balance']['effective_rows']}, {len(stats['balance']['clipped'])} cell(s) clipped at "
          f"{args.max_weight:g}, {len(stats['balance']['lost'])} lost\n")
    print("| attribute | value | before filtering | after filtering | after rebalancing (weighted) |")
    print("|---|---|---|---|---|")
    for s in shares:
        print(f"| {s['attribute']} | {s['value']} | {pct(s['before'])} | {pct(s['after'])} | {pct(s['weighted'])} |")
    print("\n| category | stage | positives | flagged | precision | recall |")
    print("|---|---|---|---|---|---|")
    for q in quality:
        print(f"| {q['category']} | {q['stage']} | {q['positives']} | {q['flagged']} | {pct(q['precision'])} | "
              f"{pct(q['recall'])} |")
    print("\n| figures | rows | removed by the caption | by the image | removed |")
    print("|---|---|---|---|---|")
    for k in kinds:
        print(f"| {k['kind']} | {k['rows']} | {k['by_caption']} | {k['by_image']} | {k['removed']} |")
    (args.out / "study.json").write_text(json.dumps({"rows": args.rows, "seed": args.seed, "form": args.form,
                                                     "stats": stats, "shares": shares, "quality": quality,
                                                     "kinds": kinds}, indent=2))
    print(f"\nwritten: {args.out / 'study.json'}, {args.plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
