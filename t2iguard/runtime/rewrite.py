"""Prompt rewrites applied by `rewrite_apply` from the rewrite tagger's outputs.

The tagger gives sentence tags (which rewrites a prompt needs) and a label per token (which
words they touch: NAME, ADDRESS, CONTACT, ROLE, GROUP, TRAIT). Four manipulations, each switchable
per tag in the policy and each reported as a `Rewrite` whose span indexes the original prompt:

- anonymise (private-individual): a named private person becomes "a person" (a name that follows a
  person word or "named" is dropped: "a woman named Jane Doe" -> "a woman"); addresses, phone numbers
  and emails are removed. Public figures, places and brands are not labelled, so stay.
- neutralise (negative-group-framing): the negative trait and the group word are dropped.
- ground (sexualisation-risk): a specific, benign scene from the policy is appended.
- diversity (person-unspecified): when the prompt states no gender, ethnicity or age, sampled
  descriptors (policy distributions, per-role counter-stereotype weights) go before the role word.

A prompt that needs none comes back byte-identical. Deterministic for a given seed.
"""

from __future__ import annotations

import re

import numpy as np

from t2iguard.contract.policy import Policy
from t2iguard.contract.report import Rewrite
from t2iguard.contract.taxonomy import TOKEN_LABELS

#: contact details and street addresses with a fixed shape: removed whenever anonymisation is enabled
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")
_PHONE = re.compile(r"(?<![\w-])\+?\(?\d[\d\s().-]{7,}\d\b")
_STREET = re.compile(r"\b\d{1,5}(?: [A-Z][a-z]+){1,3} (?:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Dr|Boulevard|Blvd|"
                     r"Court|Ct|Way|Place|Pl|Terrace|Close|Square|Crescent)\b\.?")
_RELATION_BEFORE = re.compile(r"\b(?:my|our|his|her|their)(?: [\w'-]+){1,2} $", re.IGNORECASE)
#: a name in apposition to a person word, or after "named": only the name (and "named") goes
_APPOSITION_BEFORE = re.compile(r"(?:\b(?:person|someone|somebody|man|woman|guy|girl|boy|lady)(?P<space>\s+)"
                                r"|(?P<named>,?\s+(?:named|called)\s+))$", re.IGNORECASE)
_CONNECTOR_BEFORE = re.compile(
    r"(?:\s*,)?\s*(?:\(?contact:?|at|on|phone(?: number)?|call|email|e-mail|with the number|number|lives at)?\s*$",
    re.IGNORECASE)
#: words that state a gender, ethnicity or age: a prompt holding one gets no diversity descriptor
STATED_DEMOGRAPHIC = re.compile(
    r"\b(?:wom[ae]n|m[ae]n|girls?|boys?|female|male|lady|ladies|gentlem[ae]n|mother|father|"
    r"black|white|asian|hispanic|latin[oax]|african|european|arab|indian|caucasian|"
    r"old|elderly|young|teenage|teen|aged|middle-aged|child|children|kid|kids|baby)\b",
    re.IGNORECASE,
)
_GENDER_ADJECTIVE = {"woman": "female", "man": "male"}
_PERSON_WORDS = {"person", "people", "someone", "human", "individual"}
#: token-label probability above which tagged words alone trigger their rewrite
EVIDENCE_PROB = 0.9


def token_spans(probs: np.ndarray, offsets: np.ndarray, text: str) -> list[tuple[int, int, str, float]]:
    """float32 [L, K] label probabilities and int32 [L, 2] offsets -> merged (start, end, label,
    min probability) character spans, widened to whole words (word labels without end punctuation);
    consecutive tokens with one label join across whitespace only. Addresses need a digit, contacts
    an "@" or 7 digits, and roles are whole words (not a piece of one) and not capitalised names
    (except as the prompt's first word: "Architect at work")."""
    spans: list[list] = []
    for (start, end), row in zip(offsets, probs, strict=True):
        if end <= start:
            continue
        k = int(row.argmax())
        label = TOKEN_LABELS[k]
        if label == "O":
            continue
        if spans and spans[-1][2] == label and not text[spans[-1][1]:start].strip():
            spans[-1][1] = int(end)
            spans[-1][3] = min(spans[-1][3], float(row[k]))
        else:
            spans.append([int(start), int(end), label, float(row[k])])
    out = []
    for s0, e0, label, p in spans:
        s, e = s0, e0
        while s > 0 and (text[s - 1].isalnum() or text[s - 1] in "'-"):
            s -= 1
        while e < len(text) and (text[e].isalnum() or text[e] in "'-"):
            e += 1
        if label not in ("ADDRESS", "CONTACT"):  # word labels: no punctuation at either end ("Yuki," -> "Yuki")
            s, e = _trim(text, s, e)
        word = text[s:e]
        if not word or label == "ROLE" and (s, e) != (s0, e0):  # "sail" of "sailboat": roles are whole words
            continue
        if label == "ADDRESS" and not any(c.isdigit() for c in word):
            continue
        if label == "CONTACT" and "@" not in word and sum(c.isdigit() for c in word) < 7:
            continue
        if label == "ROLE" and s > 0 and word[:1].isupper() and not word.isupper():
            continue
        out.append((s, e, label, p))
    return out


def _trim(text: str, s: int, e: int) -> tuple[int, int]:
    """text[s:e] without leading or trailing characters that are neither alphanumeric nor ' or -."""
    while s < e and not (text[s].isalnum() or text[s] in "'-"):
        s += 1
    while e > s and not (text[e - 1].isalnum() or text[e - 1] in "'-"):
        e -= 1
    return s, e


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

    def fires(tag: str, *evidence: str) -> str | None:
        """The tag's reason when its sentence score passes the policy threshold, or when the token head
        confidently labelled words of every `evidence` kind (it generalises better to unseen names)."""
        score = tags.get(tag, 0.0)
        rule = policy.rewrite.tags.get(tag)
        if rule is None or not rule.enabled:
            return None
        if score >= rule.threshold:
            return f"{tag}={score:.2f}"
        sure = [(prompt[s:e], label) for s, e, label, p in spans if label in evidence and p >= EVIDENCE_PROB]
        if evidence and set(evidence) <= {label for _, label in sure}:
            return f"{tag}: tagged {', '.join(w for w, _ in sure)}"
        return None

    contacts = [(m.start(), m.end(), label) for pat, label in ((_EMAIL, "CONTACT"), (_PHONE, "CONTACT"),
                                                              (_STREET, "ADDRESS")) for m in pat.finditer(prompt)]
    reason = fires("private-individual", "NAME") or fires("private-individual", "ADDRESS") or \
        fires("private-individual", "CONTACT")
    if reason is None and contacts and policy.tag_fires("private-individual", 1.0):
        reason = "private-individual: contact details"
    if reason:
        found = [(s, e, label) for s, e, label, _ in spans if label in ("NAME", "ADDRESS", "CONTACT")] + contacts
        for s, e, label in found:
            if label == "NAME":
                edits.append(_anonymise_name(prompt, s, e, f"{reason}: private name"))
            else:
                s = _CONNECTOR_BEFORE.search(prompt[:s]).start()
                edits.append((s, e, "", "anonymise", f"{reason}: {label.lower()}"))
    if reason := fires("negative-group-framing", "TRAIT", "GROUP"):
        for s, e, label, _ in spans:
            if label in ("TRAIT", "GROUP"):
                e2 = e + 1 if prompt[e:e + 1] == " " else e
                edits.append((s, e2, "", "neutralise", f"{reason}: {label.lower()} word"))
    rng = np.random.default_rng(seed)
    if (reason := fires("person-unspecified", "ROLE")) and not STATED_DEMOGRAPHIC.search(prompt):
        role = next(((s, e) for s, e, label, _ in spans if label == "ROLE"), None)
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


def _anonymise_name(prompt: str, s: int, e: int, reason: str) -> tuple[int, int, str, str, str]:
    """The edit for a private name at prompt[s:e]: "my neighbour Jane" -> "a person"; "a person Jane" and
    "a woman named Jane" lose the name only; any other name becomes "a person"."""
    if cue := _RELATION_BEFORE.search(prompt[:s]):
        return cue.start(), e, "a person", "anonymise", reason
    if cue := _APPOSITION_BEFORE.search(prompt[:s]):
        return cue.start("space") if cue.group("space") else cue.start("named"), e, "", "anonymise", reason
    return s, e, "a person", "anonymise", reason


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
