"""rewrite_apply's logic on hand-built tagger outputs (the served tagger is tested in test_serving)."""

import numpy as np

from t2iguard.contract.taxonomy import REWRITE_TAGS, TOKEN_LABELS
from t2iguard.runtime.rewrite import apply_rewrites, token_spans
from t2iguard.runtime.text import tokenize_with_offsets

NONE = dict.fromkeys(REWRITE_TAGS, 0.0)


def tagged(prompt: str, labels: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Token probabilities that label every token inside the given substrings."""
    _, _, offsets = tokenize_with_offsets([prompt], 77)
    probs = np.zeros((77, len(TOKEN_LABELS)), np.float32)
    probs[:, 0] = 1.0
    for sub, label in labels.items():
        s = prompt.index(sub)
        for j, (a, b) in enumerate(offsets[0]):
            if b > a and a >= s and b <= s + len(sub):
                probs[j] = 0.0
                probs[j, TOKEN_LABELS.index(label)] = 1.0
    return probs, offsets[0]


def test_no_tag_is_byte_identical(policy):
    prompt = "a red circle  on a blue background "
    probs, off = tagged(prompt, {})
    assert apply_rewrites(prompt, NONE, probs, off, 0, policy) == (prompt, [])


def test_token_spans_merge_word_pieces():
    prompt = "my neighbour Jennifer Walsh"
    probs, off = tagged(prompt, {"Jennifer Walsh": "NAME"})
    assert token_spans(probs, off, prompt) == [(13, 27, "NAME", 1.0)]


def test_a_role_is_a_whole_word():
    prompt = "a photo of a sailboat and a sailor"
    probs, off = tagged(prompt, {"sail": "ROLE", "sailor": "ROLE"})
    assert token_spans(probs, off, prompt) == [(28, 34, "ROLE", 1.0)]


def test_anonymise_names_addresses_contacts(policy):
    prompt = "portrait of my neighbour Jennifer Walsh at 42 Oak Street, call 555-123-4567"
    probs, off = tagged(prompt, {"Jennifer Walsh": "NAME", "42 Oak Street": "ADDRESS"})
    text, rewrites = apply_rewrites(prompt, {**NONE, "private-individual": 0.9}, probs, off, 0, policy)
    assert text == "portrait of a person"
    assert [r.original for r in rewrites] == ["my neighbour Jennifer Walsh", " at 42 Oak Street",
                                              ", call 555-123-4567"]
    assert all(prompt[r.span[0]:r.span[1]] == r.original for r in rewrites)


def test_a_name_after_a_person_word_or_named_loses_only_the_name(policy):
    tags = {**NONE, "private-individual": 0.9}
    for prompt, expected in (("a person Amara Mensah in the office", "a person in the office"),
                             ("a woman named Amara Mensah at the park", "a woman at the park"),
                             ("Amara Mensah walking a dog", "a person walking a dog")):
        probs, off = tagged(prompt, {"Amara Mensah": "NAME"})
        text, rewrites = apply_rewrites(prompt, tags, probs, off, 0, policy)
        assert text == expected and [r.kind for r in rewrites] == ["anonymise"], prompt


def test_a_capitalised_role_counts_only_as_the_first_word(policy):
    tags = {**NONE, "person-unspecified": 0.9}
    probs, off = tagged("Architect at work", {"Architect": "ROLE"})
    text, rewrites = apply_rewrites("Architect at work", tags, probs, off, 0, policy)
    assert text.endswith(" Architect at work") and rewrites[0].span == (0, 0)
    probs, off = tagged("a photo of Baker at work", {"Baker": "ROLE"})
    text, rewrites = apply_rewrites("a photo of Baker at work", tags, probs, off, 0, policy)
    assert "Baker" in text and ", depicted as" in text  # a name-like word: no descriptor before it


def test_punctuation_labelled_with_a_name_does_not_swallow_the_contact(policy):
    prompt = "my landlord Yuki, call +1 555 503 9089, highly detailed"
    probs, off = tagged(prompt, {"Yuki,": "NAME", "+1 555 503 9089": "CONTACT"})
    text, _ = apply_rewrites(prompt, {**NONE, "private-individual": 0.9}, probs, off, 0, policy)
    assert text == "a person, highly detailed"


def test_public_names_stay(policy):
    prompt = "Barack Obama at the Eiffel Tower"
    probs, off = tagged(prompt, {})
    assert apply_rewrites(prompt, {**NONE, "private-individual": 0.9}, probs, off, 0, policy)[0] == prompt


def test_neutralise_negative_group_framing(policy):
    prompt = "a lazy mexican person taking a nap"
    probs, off = tagged(prompt, {"lazy": "TRAIT", "mexican": "GROUP"})
    text, rewrites = apply_rewrites(prompt, {**NONE, "negative-group-framing": 0.9}, probs, off, 0, policy)
    assert text == "a person taking a nap" and {r.kind for r in rewrites} == {"neutralise"}


def test_diversity_before_the_role_is_seeded(policy):
    prompt = "image of a ceo"
    probs, off = tagged(prompt, {"ceo": "ROLE"})
    tags = {**NONE, "person-unspecified": 0.9}
    a = apply_rewrites(prompt, tags, probs, off, 7, policy)
    assert a == apply_rewrites(prompt, tags, probs, off, 7, policy)
    assert a[0].startswith("image of ") and a[0].endswith(" ceo") and a[1][0].kind == "diversity"
    assert a[0].split()[2] in ("a", "an") and a[0].split()[2] == ("an" if a[0].split()[3][0] in "aeiou" else "a")
    seen = {apply_rewrites(prompt, tags, probs, off, s, policy)[0] for s in range(60)}
    assert len(seen) > 15


def test_stated_demographics_are_left_alone(policy):
    prompt = "a black woman ceo"
    probs, off = tagged(prompt, {"ceo": "ROLE"})
    assert apply_rewrites(prompt, {**NONE, "person-unspecified": 0.9}, probs, off, 0, policy) == (prompt, [])


def test_grounding_appends_a_policy_scene(policy):
    prompt = "woman dressed for a date"
    probs, off = tagged(prompt, {})
    text, rewrites = apply_rewrites(prompt, {**NONE, "sexualisation-risk": 0.9}, probs, off, 3, policy)
    assert text.startswith(prompt + ", ") and text[len(prompt) + 2:] in policy.rewrite.grounding_scenes
    assert rewrites[0].kind == "ground" and rewrites[0].span == (len(prompt), len(prompt))


def test_disabled_tag_does_nothing(policy):
    data = policy.model_dump()
    data["rewrite"]["tags"]["person-unspecified"]["enabled"] = False
    off_policy = type(policy).model_validate(data)
    probs, off = tagged("image of a ceo", {"ceo": "ROLE"})
    assert apply_rewrites("image of a ceo", {**NONE, "person-unspecified": 0.9}, probs, off, 0, off_policy)[1] == []


def test_counter_stereotype_weights_shift_the_distribution(policy):
    from t2iguard.runtime.rewrite import diversity_descriptor

    rng = np.random.default_rng(0)
    ceo = [diversity_descriptor("ceo", policy, rng)[0].endswith("female") for _ in range(3000)]
    plain = [diversity_descriptor("pilot", policy, rng)[0].endswith("female") for _ in range(3000)]
    assert abs(np.mean(plain) - 0.5) < 0.04 and abs(np.mean(ceo) - 0.6) < 0.04  # 1.5 : 1


def test_a_number_is_not_a_contact(policy):
    prompt = "a shape number 3"
    probs, off = tagged(prompt, {"number 3": "CONTACT"})
    assert apply_rewrites(prompt, {**NONE, "private-individual": 0.1}, probs, off, 0, policy) == (prompt, [])
