"""Prompt rewrites applied by `rewrite_apply` from the rewrite tagger's outputs.

The tagger gives sentence tags (which rewrites a prompt needs) and a label per token (which
words they touch: NAME, ADDRESS, CONTACT, ROLE, GROUP, TRAIT). Four manipulations, each switchable
per tag in the policy and each reported as a `Rewrite` whose span indexes the original prompt:

- anonymise (private-individual): a named private person becomes "a person"; addresses, phone
  numbers and emails are removed. Public figures, places and brands are not labelled, so stay.
- neutralise (negative-group-framing): the negative trait and the group word are dropped.
- ground (sexualisation-risk): a specific, benign scene from the policy is appended.
- diversity (person-unspecified): when the prompt states no gender, ethnicity or age, sampled
  descriptors (policy distributions, per-role counter-stereotype weights) go before the role word.

A prompt that needs none comes back byte-identical. Deterministic for a given seed.
"""

from __future__ import annotations

import re

import numpy as np

from t2iguard.policy import Policy
from t2iguard.report import Rewrite
from t2iguard.taxonomy import TOKEN_LABELS

#: PII with a fixed shape, removed whenever private-individual fires even if the tagger missed it
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")
_PHONE = re.compile(r"(?<![\w-])\+?\(?\d[\d\s().-]{7,}\d\b")
_RELATION_BEFORE = re.compile(r"\b(?:my|our|his|her|their)(?: [\w'-]+){1,2} $", re.IGNORECASE)
_CONNECTOR_BEFORE = re.compile(
    r"(?:\s*,)?\s*(?:\(?contact:?|at|on|phone(?: number)?|call|email|e-mail|with the number|number|lives at)?\s*$",
    re.IGNORECASE)
_DEMOGRAPHIC = re.compile(
    r"\b(?:wom[ae]n|m[ae]n|girls?|boys?|female|male|lady|ladies|gentlem[ae]n|mother|father|"
    r"black|white|asian|hispanic|latin[oax]|african|european|arab|indian|caucasian|"
    r"old|elderly|young|teenage|teen|aged|middle-aged|child|children|kid|kids|baby)\b",
    re.IGNORECASE,
)
_GENDER_ADJECTIVE = {"woman": "female", "man": "male"}
_PERSON_WORDS = {"person", "people", "someone", "human", "individual"}


def token_spans(probs: np.ndarray, offsets: np.ndarray, text: str) -> list[tuple[int, int, str]]:
    """float32 [L, K] label probabilities and int32 [L, 2] offsets -> merged (start, end, label)
    character spans; consecutive tokens with one label join across whitespace only."""
    spans: list[list] = []
    for (start, end), row in zip(offsets, probs, strict=True):
        if end <= start:
            continue
        label = TOKEN_LABELS[int(row.argmax())]
        if label == "O":
            continue
        if spans and spans[-1][2] == label and not text[spans[-1][1]:start].strip():
            spans[-1][1] = int(end)
        else:
            spans.append([int(start), int(end), label])
    # extend to whole words (a name split into word pieces ends mid-word only if the tagger split it)
    out = []
    for s, e, label in spans:
        while s > 0 and (text[s - 1].isalnum() or text[s - 1] in "'-"):
            s -= 1
        while e < len(text) and (text[e].isalnum() or text[e] in "'-"):
            e += 1
        out.append((s, e, label))
    return out


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _sample(dist: dict[str, float], rng: np.random.Generator) -> str:
    names, weights = list(dist), np.asarray(list(dist.values()), dtype=np.float64)
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def diversity_descriptor(role: str, policy: Policy, rng: np.random.Generator) -> tuple[str, str]:
    """(age ethnicity gender-adjective, age ethnicity gender-noun) for `role`, sampled from the policy's
    distributions with the role's counter-stereotype weights multiplied in."""
    picks = {}
    for attribute, dist in policy.rewrite.diversity.items():
        weights = dict(dist)
        for value, factor in policy.rewrite.counter_stereotype.get(role.lower(), {}).get(attribute, {}).items():
            weights[value] = weights.get(value, 0.0) * factor
        picks[attribute] = _sample(weights, rng)
    gender = picks.pop("gender", "")
    parts = [picks[a] for a in ("age", "ethnicity") if a in picks]
    return (" ".join([*parts, _GENDER_ADJECTIVE.get(gender, gender)]).strip(),
            " ".join([*parts, gender or "person"]).strip())


def apply_rewrites(prompt: str, tags: dict[str, float], token_probs: np.ndarray, offsets: np.ndarray, seed: int,
                   policy: Policy) -> tuple[str, list[Rewrite]]:
    """Prompt + tagger outputs -> (rewritten prompt, rewrites with spans in the original prompt)."""
    spans = token_spans(token_probs, offsets, prompt)
    edits: list[tuple[int, int, str, str, str]] = []  # start, end, replacement, kind, reason

    def fires(tag: str) -> str | None:
        score = tags.get(tag, 0.0)
        return f"{tag}={score:.2f}" if policy.tag_fires(tag, score) else None

    if reason := fires("private-individual"):
        found = [(s, e, label) for s, e, label in spans if label in ("NAME", "ADDRESS", "CONTACT")]
        found += [(m.start(), m.end(), "CONTACT") for pat in (_EMAIL, _PHONE) for m in pat.finditer(prompt)]
        for s, e, label in found:
            if label == "NAME":
                cue = _RELATION_BEFORE.search(prompt[:s])
                edits.append((cue.start() if cue else s, e, "a person", "anonymise", f"{reason}: private name"))
            else:
                s = _CONNECTOR_BEFORE.search(prompt[:s]).start()
                edits.append((s, e, "", "anonymise", f"{reason}: {label.lower()}"))
    if reason := fires("negative-group-framing"):
        for s, e, label in spans:
            if label in ("TRAIT", "GROUP"):
                e2 = e + 1 if prompt[e:e + 1] == " " else e
                edits.append((s, e2, "", "neutralise", f"{reason}: {label.lower()} word"))
    rng = np.random.default_rng(seed)
    if (reason := fires("person-unspecified")) and not _DEMOGRAPHIC.search(prompt):
        role = next(((s, e) for s, e, label in spans if label == "ROLE"), None)
        if role is not None:
            s, e = role
            word = prompt[s:e]
            adjective, noun = diversity_descriptor(word, policy, rng)
            if word.lower() in _PERSON_WORDS:
                edits.append((s, e, noun, "diversity", reason))
            else:
                edits.append((s, s, adjective + " ", "diversity", reason))
            art = re.search(r"\b(a|an) (?=\S*$)", prompt[:s]) if prompt[:s].endswith(" ") else None
            if art and prompt[art.end():s].strip() == "":
                new = _article(noun if word.lower() in _PERSON_WORDS else adjective)
                if new != art.group(1).lower():
                    edits.append((art.start(1), art.end(1), new, "diversity", f"{reason}: article"))
        else:
            _, noun = diversity_descriptor("", policy, rng)
            edits.append((len(prompt), len(prompt), f", depicted as {_article(noun)} {noun}", "diversity", reason))
    if reason := fires("sexualisation-risk"):
        scene = policy.rewrite.grounding_scenes[int(rng.integers(len(policy.rewrite.grounding_scenes)))]
        edits.append((len(prompt), len(prompt), f", {scene}", "ground", reason))
    return _apply(prompt, edits)


def _apply(prompt: str, edits: list[tuple[int, int, str, str, str]]) -> tuple[str, list[Rewrite]]:
    """Apply non-overlapping edits right to left (earlier, wider edits win overlaps)."""
    kept: list[tuple[int, int, str, str, str]] = []
    for edit in sorted(edits, key=lambda x: (x[0], -(x[1] - x[0]))):
        if kept and edit[0] < kept[-1][1] and edit[1] > edit[0]:
            continue
        kept.append(edit)
    if not kept:
        return prompt, []
    text = prompt
    for s, e, replacement, _, _ in sorted(kept, key=lambda x: (x[0], x[1]), reverse=True):
        text = text[:s] + replacement + text[e:]
    text = re.sub(r"\s{2,}", " ", text).strip()
    text = re.sub(r"\s+([,.)])", r"\1", text).strip(" ,")
    rewrites = [Rewrite(kind=kind, span=(s, e), original=prompt[s:e], replacement=replacement, reason=reason)
                for s, e, replacement, kind, reason in kept]
    return text, rewrites
