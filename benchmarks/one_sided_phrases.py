"""Phrases the project's own rows use on the unsafe side only: triggers its templates can teach a classifier.

    python benchmarks/one_sided_phrases.py [--min 20] [--max-benign-share 0.1] [--top 40] [--public-benign 0] \
        [--counterparts 0]

Counts every content word and adjacent pair of content words (lower-cased, function words left out) in the
corpus's training split (`training.data.corpus.load_corpus`, the cached corpus the trainer reads), separately for
the project's own rows (`corpus.OWN`: templates, twins, hard negatives, stance) and the public ones, by side:
unsafe, or benign (benign and hard-negative rows). It lists the phrases the own rows put on the unsafe side at least
`--min` times and on a benign side at most `--max-benign-share` of the time, most unsafe first, with the public
rows' counts beside. A phrase that names harm ("pipe bomb") belongs there; a phrase that names an ordinary thing
("ballot boxes": 43 unsafe template rows, none benign, 2026-12-07) is a trigger the project's writing teaches, and
the held-out twins find it as a benign scene flagged again and again (`benchmarks/twin_flags.py`).
`--public-benign N` keeps only phrases public text uses on a benign side at least N times (the world's evidence
that a phrase is ordinary). `--counterparts SHARE` counts the corpus whose template rows are followed by their benign
counterparts (`training/data/template_twins.py`; `--data corpus-template-twins` trains on SHARE 1). Seconds on 2
cores once the corpus is cached (`t2iguard data corpus`; minutes to build one not yet cached).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

#: words too common to name anything: never a phrase, nor half of one
FUNCTION_WORDS = frozenset(
    "a an the of in on at to for with by from and or but is are was were be been his her their its my your our "
    "this that these those it he she they we you i as into over under about than then there here who whom which "
    "what when where how not no some any all each every one two very more most up out off down".split())
_WORD = re.compile(r"[a-z][a-z'-]*")


def phrases(text: str) -> set[str]:
    """The content words of `text` (lower-cased, function words left out) and its adjacent pairs of them."""
    words = _WORD.findall(text.lower())
    content = [w if w not in FUNCTION_WORDS else None for w in words]
    pairs = {f"{a} {b}" for a, b in zip(content, content[1:], strict=False) if a and b}
    return {w for w in content if w} | pairs


def side_counts(rows: list[tuple[str, bool, bool]]) -> dict[tuple[bool, bool], Counter]:
    """{(own, unsafe): Counter of phrases, each counted once per row} for rows of (text, own, unsafe)."""
    counts: dict[tuple[bool, bool], Counter] = {(o, u): Counter() for o in (True, False) for u in (True, False)}
    for text, own, unsafe in rows:
        counts[own, unsafe].update(phrases(text))
    return counts


def one_sided(counts: dict[tuple[bool, bool], Counter], least: int, max_benign_share: float,
              public_benign: int = 0) -> list[tuple[str, int, int, int, int]]:
    """(phrase, own unsafe, own benign, public unsafe, public benign) for the phrases the own rows use unsafely at
    least `least` times and benignly at most `max_benign_share` of their uses, most own-unsafe first."""
    out = []
    for phrase, n in counts[True, True].items():
        benign = counts[True, False][phrase]
        if n >= least and benign <= max_benign_share * (n + benign) and counts[False, False][phrase] >= public_benign:
            out.append((phrase, n, benign, counts[False, True][phrase], counts[False, False][phrase]))
    return sorted(out, key=lambda r: (-r[1], r[0]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--min", type=int, default=20, help="own unsafe rows a phrase needs to be listed")
    ap.add_argument("--max-benign-share", type=float, default=0.1,
                    help="the most of a phrase's own rows that may be benign for it to be listed")
    ap.add_argument("--public-benign", type=int, default=0,
                    help="keep only phrases public text uses on a benign side at least this many times")
    ap.add_argument("--top", type=int, default=40, help="rows printed")
    ap.add_argument("--counterparts", type=float, default=0.0,
                    help="share of unsafe template rows followed by their benign counterpart (0: the default corpus)")
    args = ap.parse_args()
    if args.min < 1:
        ap.error(f"--min must be >= 1, not {args.min}")
    if not 0 <= args.max_benign_share < 1:
        ap.error(f"--max-benign-share must be in [0, 1), not {args.max_benign_share}")
    if not 0 <= args.counterparts <= 1:
        ap.error(f"--counterparts must be in [0, 1], not {args.counterparts}")

    from t2iguard.training.data.corpus import OWN, load_corpus

    templates = {"counterparts": args.counterparts} if args.counterparts else None
    rows = [(e.text, e.source in OWN, e.group == "unsafe") for e in load_corpus(templates=templates)
            if e.split == "train"]
    listed = one_sided(side_counts(rows), args.min, args.max_benign_share, args.public_benign)
    print(f"{len(listed)} phrases the own rows use unsafely at least {args.min} times and benignly at most "
          f"{args.max_benign_share:.0%} of the time (training split, {len(rows)} rows)\n")
    print("| phrase | own unsafe | own benign | public unsafe | public benign |\n| --- | --- | --- | --- | --- |")
    for phrase, n, benign, pub_unsafe, pub_benign in listed[:args.top]:
        print(f"| {phrase} | {n} | {benign} | {pub_unsafe} | {pub_benign} |")


if __name__ == "__main__":
    main()
