"""Public word lists for the rewrite tagger: first names, surnames, occupations and public figures.

The manifest's `lexicon` sources whose mapping names one of `FIELDS` are read from the cache
(`training.data.sources`; third-party text stays there). Each cell is cleaned (`clean`) and each entry
lands, by a fixed hash of its lower-cased text, in the train part or, for `HELDOUT_PERCENT` % of
entries, in the held-out part (`is_heldout`; a name word by word): the same word falls on the same side
in every list (a first name that is also a surname), so the two parts never share a name word. The
rewrite generator
(`training.data.rewrites.public_vocab`) drops entries that collide with its own hand-written lists.
Without the cache every list is empty.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from t2iguard.training.data import sources as S
from t2iguard.training.data.corpus import texts_of

#: manifest mapping ("*" -> this text) -> the `Lexicon` field its entries fill
FIELDS = {"first name (NAME)": "first", "surname (NAME)": "last", "occupation (ROLE)": "occupations",
          "public figure (left intact)": "figures"}
#: share of entries held out, in percent
HELDOUT_PERCENT = 25
_SALT = "t2iguard/rewriter-lexicon"
_ENTRY = re.compile(r"[^\W\d_](?:[^\W\d_]|[' .-])*[^\W\d_]")  # letters, inner ' . - and spaces


@dataclass(frozen=True)
class Lexicon:
    """Sorted, de-duplicated (case-insensitively) entries per field."""
    first: tuple[str, ...] = ()
    last: tuple[str, ...] = ()
    occupations: tuple[str, ...] = ()
    figures: tuple[str, ...] = ()


def clean(cell: str) -> list[str]:
    """One cell of a list -> its entries: `a/b` variants split, no-break and outer spaces removed; an entry
    has two characters or more, starts and ends with a letter and holds only letters, spaces, hyphens,
    apostrophes and periods."""
    out = []
    for part in cell.replace("\xa0", " ").split("/"):
        entry = " ".join(part.split())
        if _ENTRY.fullmatch(entry):
            out.append(entry)
    return out


def is_heldout(entry: str) -> bool:
    """True for the `HELDOUT_PERCENT` % of entries (by sha256 of the lower-cased entry) never trained on."""
    h = int(hashlib.sha256(f"{_SALT}:{entry.lower()}".encode()).hexdigest()[:8], 16)
    return h % 100 < HELDOUT_PERCENT


def _side(field: str, entry: str) -> bool | None:
    """Held out (True), train (False), or neither (None: a name whose words fall on both sides, such as
    "Maria Alice" with "Maria" in training, so that no held-out name shares a word with a trained one).
    Occupations and public figures are split as whole entries."""
    words = entry.split() if field in ("first", "last") else [entry]
    sides = {is_heldout(w) for w in words}
    return sides.pop() if len(sides) == 1 else None


def lexicon_sources() -> list[S.Source]:
    """The manifest's word lists that fill a `Lexicon` field."""
    return [s for s in S.load_manifest() if s.use == "lexicon" and s.mapping.get("*") in FIELDS]


def read_lexicons(root: Path | None = None) -> tuple[Lexicon, tuple[str, ...]]:
    """(every cached entry per field, the ids of the sources read); missing or altered files are skipped."""
    found: dict[str, dict[str, str]] = {f: {} for f in FIELDS.values()}
    present = S.verify(lexicon_sources(), root).present
    for src in present:
        into = found[FIELDS[src.mapping["*"]]]
        for cell in texts_of(src, root):
            for entry in clean(cell):
                into.setdefault(entry.lower(), entry)
    return Lexicon(**{f: tuple(sorted(v.values(), key=str.lower)) for f, v in found.items()}), \
        tuple(s.id for s in present)


def split(lexicon: Lexicon) -> tuple[Lexicon, Lexicon]:
    """(train part, held-out part) of every field, by `is_heldout`."""
    parts = [{f: tuple(e for e in getattr(lexicon, f) if _side(f, e) is held) for f in FIELDS.values()}
             for held in (False, True)]
    return Lexicon(**parts[0]), Lexicon(**parts[1])
