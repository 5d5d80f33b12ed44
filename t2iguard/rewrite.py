"""Prompt rewrites applied by `rewrite_apply` once the tagger has said which are needed.

Three manipulations, each reported as a `Rewrite` (kind, span, original, replacement, reason):
anonymisation of private individuals and contact details, grounding of prompts prone to
unintended sexualisation, and diversity augmentation of people whose demographics are unstated.
A prompt that needs none comes back byte-identical.
"""

from __future__ import annotations

import re

import numpy as np

from t2iguard.policy import Policy
from t2iguard.report import Rewrite

_RELATION = (r"neighbou?r|co-?worker|colleague|boss|manager|friend|ex|ex-wife|ex-husband|teacher|classmate|"
             r"roommate|landlord|landlady|sister|brother|cousin|aunt|uncle|wife|husband|girlfriend|boyfriend")
_NAME = r"[A-Z][a-z]+(?: [A-Z][a-z]+){0,2}"
_PRIVATE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("email address", re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")),
    ("phone number", re.compile(r"(?<!\w)\+?\d[\d\s().-]{7,}\d\b")),
    ("street address", re.compile(r"\b(?:at |on |from )?\d{1,5} [A-Z][a-z]+(?: [A-Z][a-z]+)? "
                                  r"(?:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Dr|Boulevard|Blvd|Court|Ct|Way|Place|Pl)\b\.?")),
    ("named private individual", re.compile(rf"\b(?:my|our|his|her|their) (?:{_RELATION}) {_NAME}")),
    ("named private individual",
     re.compile(rf"\b{_NAME} (?=from (?:accounting|work|school|the office|next door|my class))")),
)
_GENERIC_PERSON = "a person"

_DEMOGRAPHIC = re.compile(
    r"\b(?:wom[ae]n|m[ae]n|girls?|boys?|female|male|lady|ladies|gentlem[ae]n|mother|father|"
    r"black|white|asian|hispanic|latin[oax]|african|european|arab|indian|caucasian|"
    r"old|elderly|young|teenage|teen|aged|middle-aged|child|children|kid|kids|baby)\b",
    re.IGNORECASE,
)

_GROUNDING = ", fully clothed, in an everyday public setting"


def _replace_spans(text: str, matches: list[tuple[int, int, str]], reason: str) -> tuple[str, list[Rewrite]]:
    """Replace non-overlapping (start, end, why) spans right to left; spans index the input text."""
    rewrites: list[Rewrite] = []
    kept: list[tuple[int, int, str]] = []
    for s, e, why in sorted(matches):
        if not kept or s >= kept[-1][1]:
            kept.append((s, e, why))
    for s, e, why in reversed(kept):
        original = text[s:e]
        replacement = _GENERIC_PERSON if why == "named private individual" else ""
        text = text[:s] + replacement + text[e:]
        rewrites.append(Rewrite(kind="anonymise", span=(s, e), original=original, replacement=replacement,
                                reason=f"{reason}: {why}"))
    return re.sub(r"\s{2,}", " ", text).strip(" ,"), rewrites[::-1]


def apply_rewrites(prompt: str, tag_scores: dict[str, float], seed: int, policy: Policy) -> tuple[str, list[Rewrite]]:
    """Prompt + tagger scores -> (rewritten prompt, rewrites). Deterministic for a given seed."""
    text, rewrites = prompt, []
    if policy.tag_fires("private-individual", tag_scores.get("private-individual", 0.0)):
        reason = f"private-individual={tag_scores['private-individual']:.2f}"
        found = [(m.start(), m.end(), why) for why, pat in _PRIVATE_PATTERNS for m in pat.finditer(text)]
        text, done = _replace_spans(text, found, reason)
        rewrites += done
    if policy.tag_fires("sexualisation-risk", tag_scores.get("sexualisation-risk", 0.0)):
        rewrites.append(Rewrite(kind="ground", span=(len(text), len(text)), original="", replacement=_GROUNDING,
                                reason=f"sexualisation-risk={tag_scores['sexualisation-risk']:.2f}"))
        text += _GROUNDING
    if (policy.tag_fires("person-unspecified", tag_scores.get("person-unspecified", 0.0))
            and not _DEMOGRAPHIC.search(text)):
        rng = np.random.default_rng(seed)
        picks = []
        for attribute in ("age", "ethnicity", "gender"):
            dist = policy.rewrite.diversity.get(attribute)
            if dist:
                names, weights = list(dist), np.asarray(list(dist.values()), dtype=np.float64)
                picks.append(names[rng.choice(len(names), p=weights / weights.sum())])
        if picks:
            addition = ", depicted as a " + " ".join(picks)
            rewrites.append(Rewrite(kind="diversity", span=(len(text), len(text)), original="", replacement=addition,
                                    reason=f"person-unspecified={tag_scores['person-unspecified']:.2f}"))
            text += addition
    return (text, rewrites) if rewrites else (prompt, [])
