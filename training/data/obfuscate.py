"""The normaliser's inverse: obfuscations people use to slip prompts past filters.

Each function rewrites a prompt so that `t2iguard.runtime.text.normalize` should read it back; training
on them teaches robustness, and the evaluation measures recall on them separately.
"""

from __future__ import annotations

import random
import re

from t2iguard.runtime.lexicon import SENSITIVE_TERMS

_LEET = {"a": "4@", "e": "3", "i": "1!", "o": "0", "s": "5$", "t": "7"}
_FULLWIDTH = {c: chr(ord(c) + 0xFEE0) for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"}
_HOMOGLYPH = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "y": "у"}
_ZW = "\u200b"


def _targets(text: str) -> list[re.Match[str]]:
    """Word matches worth hiding: sensitive terms, else the longest words."""
    words = list(re.finditer(r"[A-Za-z]{3,}", text))
    hits = [m for m in words if m.group().lower() in SENSITIVE_TERMS]
    return hits or sorted(words, key=lambda m: -len(m.group()))[:1]


def _per_word(text: str, fn, rng: random.Random) -> str:
    targets = _targets(text)
    if not targets:
        return text
    chosen = [m for m in targets if rng.random() < 0.8] or targets[:1]
    out, last = [], 0
    for m in chosen:
        out += [text[last:m.start()], fn(m.group(), rng)]
        last = m.end()
    return "".join(out) + text[last:]


def leet(word: str, rng: random.Random) -> str:
    chars = [rng.choice(_LEET[c.lower()]) if c.lower() in _LEET and rng.random() < 0.6 else c for c in word]
    if "".join(chars) == word:  # at least one substitution
        idx = [i for i, c in enumerate(word) if c.lower() in _LEET]
        if idx:
            i = rng.choice(idx)
            chars[i] = rng.choice(_LEET[word[i].lower()])
    return "".join(chars)


def spaced(word: str, rng: random.Random) -> str:
    return rng.choice([" ", " ", ".", "-"]).join(word) if len(word) <= 10 else word


def repeated(word: str, rng: random.Random) -> str:
    vowels = [i for i, c in enumerate(word) if c.lower() in "aeiou"]
    if not vowels:
        return word
    i = rng.choice(vowels)
    return word[:i] + word[i] * rng.randint(3, 5) + word[i + 1:]


def zero_width(word: str, rng: random.Random) -> str:
    return _ZW.join(word)


def homoglyph(word: str, rng: random.Random) -> str:
    out = "".join(_HOMOGLYPH.get(c, c) if rng.random() < 0.7 else c for c in word)
    if out == word:  # at least one substitution where the word allows it
        idx = [i for i, c in enumerate(word) if c in _HOMOGLYPH]
        if idx:
            i = rng.choice(idx)
            out = word[:i] + _HOMOGLYPH[word[i]] + word[i + 1:]
    return out


def fullwidth(text: str, rng: random.Random) -> str:
    return "".join(_FULLWIDTH.get(c, c) for c in text)


def run_together(text: str, rng: random.Random) -> str:
    targets = _targets(text)
    if not targets:
        return text
    m = targets[0]
    after = text[m.end():]
    if after.startswith(" ") and re.match(r" [A-Za-z]", after):
        return text[:m.end()] + after[1:]
    before = text[:m.start()]
    return before[:-1] + text[m.start():] if before.endswith(" ") else text


WORD_OBFUSCATIONS = {"leet": leet, "spaced": spaced, "repeated": repeated, "zero-width": zero_width,
                     "homoglyph": homoglyph}
TEXT_OBFUSCATIONS = {"fullwidth": fullwidth, "run-together": run_together}
KINDS = (*WORD_OBFUSCATIONS, *TEXT_OBFUSCATIONS)


def obfuscate(text: str, kind: str, rng: random.Random) -> str:
    if kind in WORD_OBFUSCATIONS:
        return _per_word(text, WORD_OBFUSCATIONS[kind], rng)
    return TEXT_OBFUSCATIONS[kind](text, rng)
