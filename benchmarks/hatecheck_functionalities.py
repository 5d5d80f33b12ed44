"""HateCheck's functionalities, each flagged share, for prompt-classifier files at their policies' thresholds.

    python benchmarks/hatecheck_functionalities.py WEIGHTS POLICY [WEIGHTS POLICY ...]

HateCheck (Röttger et al. 2021; held out: measured, never trained, tuned or calibrated on) is a functional test
suite: each of its 29 functionalities is one kind of hateful text (a slur, a threat, a dehumanising comparison) or
one kind of non-hateful text that shares its words (counter-speech quoting hate, a positive statement about a group,
profanity at no group). The rule's HateCheck rows pool them; this table says which kind a file flags. Every case
(3,728) scored as served (`served_scores` at the served window); needs the data cache (`t2iguard data import`).
About 30 s per file on 2 cores.
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import numpy as np

from t2iguard.export.tiny import classifier_policy_pairs


def by_functionality(functionality: np.ndarray, flagged: np.ndarray) -> dict[str, tuple[int, int]]:
    """{functionality: (flagged, cases)}, in name order; `functionality` str [n], `flagged` bool [n]."""
    return {f: (int(flagged[functionality == f].sum()), int((functionality == f).sum()))
            for f in sorted(set(functionality))}


def hatecheck_cases() -> tuple[list[str], np.ndarray, np.ndarray]:
    """(texts, functionality str [n], gold label str [n]: hateful | non-hateful) of the cached HateCheck suite."""
    from t2iguard.training.data.sources import cache_dir, load_manifest

    src = next(s for s in load_manifest() if s.id == "hatecheck")
    path = src.cached(cache_dir())
    if not path.is_file():
        raise FileNotFoundError(f"{path}: HateCheck is not in the data cache (t2iguard data import)")
    rows = list(csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8-sig"))))
    return ([r["test_case"] for r in rows], np.array([r["functionality"] for r in rows]),
            np.array([r["label_gold"] for r in rows]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path, help="WEIGHTS POLICY pairs")
    args = ap.parse_args()
    try:  # seconds, before the scoring
        pairs = classifier_policy_pairs(args.files)
    except ValueError as e:
        ap.error(str(e))

    from prompt_guard_compare import thresholds_of  # a sibling script: benchmarks/ is on sys.path when run

    from t2iguard.export.modules import PROMPT_WINDOW
    from t2iguard.training.train_prompt_classifier import served_scores

    texts, functionality, gold = hatecheck_cases()
    tables = [by_functionality(functionality, (served_scores(texts, w, window=PROMPT_WINDOW) / thresholds_of(p))
                               .max(1) >= 1) for w, p in pairs]
    label = {f: gold[functionality == f][0] for f in tables[0]}
    print("| functionality | gold | cases | " + " | ".join(f"{w.name} @ {p.name}" for w, p in pairs) + " |")
    print("| --- | --- | --- |" + " --- |" * len(pairs))
    for f in tables[0]:
        cells = " | ".join(f"{100 * t[f][0] / t[f][1]:.0f}%" for t in tables)
        print(f"| {f} | {label[f]} | {tables[0][f][1]} | {cells} |")


if __name__ == "__main__":
    main()
