"""What the normaliser changes in real text (needs the data cache: `t2iguard data import`).

Over the unseen evaluation sets and the corpus's raw texts, every whitespace token that `normalize` reads differently
on its own, most frequent first (the count is of texts holding the token); and, against a saved run, how many texts
of each set read differently: the before and after of a normaliser change.

    python benchmarks/normaliser_audit.py                    # tokens with a digit, a symbol or a run of one character
    python benchmarks/normaliser_audit.py --words            # all-letter tokens of 6+ letters (run-together splits)
    python benchmarks/normaliser_audit.py --save before.pkl  # change the normaliser, then
    python benchmarks/normaliser_audit.py --against before.pkl

Measured with it: docs/2026-12-03-prompt-guard-real-data.md, "Update, 2026-12-08 (morning)".
"""

from __future__ import annotations

import argparse
import collections
import pickle
import re
from pathlib import Path

from t2iguard.runtime.text import normalize

#: a token worth auditing for leetspeak and repeats: a digit, a leet symbol or a run of one character
_LEETISH = re.compile(r"[\d@$!|+]|(.)\1\1")


def texts_by_set() -> dict[str, list[str]]:
    """{set name: raw texts}: each unseen set, and the corpus per source (`corpus: SOURCE`)."""
    from t2iguard.evaluation.prompt_classifier import unseen_sets
    from t2iguard.training.data.corpus import load_corpus

    out = {u.name: list(u.texts) for u in unseen_sets()}
    for e in load_corpus(seed=0, embedding="cached"):
        out.setdefault(f"corpus: {e.source}", []).append(e.text)
    return out


def changed_tokens(texts: list[str], words: bool) -> collections.Counter:
    """(token, its reading) -> texts holding it; `words`: all-letter tokens of 6+ letters, else leet-ish ones."""
    count: collections.Counter = collections.Counter()
    for text in texts:
        for tok in set(text.split()):
            if words:
                tok = tok.strip(".,;:?!\"'()[]")
                if not (tok.isalpha() and tok.isascii() and len(tok) >= 6):
                    continue
            elif not _LEETISH.search(tok):
                continue
            read = normalize(tok)
            if read != tok:
                count[(tok.lower(), read.lower())] += 1
    return count


def read_differently(before: dict[str, list[str]], after: dict[str, list[str]]) -> dict[str, tuple[int, int]]:
    """{set: (texts read differently, texts)}, comparing the two runs' normalised texts as multisets (the corpus's
    order may differ between runs)."""
    return {name: (sum((collections.Counter(before[name]) - collections.Counter(after[name])).values()),
                   len(after[name])) for name in after if name in before}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--words", action="store_true", help="audit all-letter tokens of 6+ letters (splits)")
    ap.add_argument("--most", type=int, default=80, help="how many token changes to list")
    ap.add_argument("--save", type=Path, help="write every set's normalised texts here")
    ap.add_argument("--against", type=Path, help="a file --save wrote: count the texts each set reads differently")
    args = ap.parse_args()
    sets = texts_by_set()
    if args.save or args.against:
        normalised = {name: [normalize(t) for t in texts] for name, texts in sets.items()}
        if args.save:
            args.save.write_bytes(pickle.dumps(normalised))
        if args.against:
            for name, (n, total) in read_differently(pickle.loads(args.against.read_bytes()), normalised).items():
                if n:
                    print(f"{name}: {n} of {total} ({100 * n / total:.1f}%)")
        return
    texts = [t for group in sets.values() for t in group]
    count = changed_tokens(texts, args.words)
    print(f"{len(texts)} texts; {len(count)} distinct tokens read differently")
    for (tok, read), n in count.most_common(args.most):
        print(f"{n:6d}  {tok!r} -> {read!r}")


if __name__ == "__main__":
    main()
