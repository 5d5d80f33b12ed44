from t2iguard.rewrite import apply_rewrites
from t2iguard.taxonomy import REWRITE_TAGS

NONE = dict.fromkeys(REWRITE_TAGS, 0.0)


def test_no_tag_is_byte_identical(policy):
    prompt = "a red circle  on a blue background "
    assert apply_rewrites(prompt, NONE, 0, policy) == (prompt, [])


def test_anonymise_names_and_addresses(policy):
    tags = {**NONE, "private-individual": 0.9}
    text, rewrites = apply_rewrites("portrait of my neighbour Jennifer Walsh at 42 Oak Street, call 555-123-4567",
                                    tags, 0, policy)
    assert "Jennifer" not in text and "Oak Street" not in text and "555" not in text
    assert "a person" in text
    assert {r.kind for r in rewrites} == {"anonymise"}
    assert any(r.original == "my neighbour Jennifer Walsh" for r in rewrites)


def test_diversity_is_seeded_and_skips_stated_demographics(policy):
    tags = {**NONE, "person-unspecified": 0.9}
    a = apply_rewrites("image of a ceo", tags, 7, policy)
    assert a == apply_rewrites("image of a ceo", tags, 7, policy)
    assert a[0].startswith("image of a ceo, depicted as a ") and a[1][0].kind == "diversity"
    seen = {apply_rewrites("image of a ceo", tags, s, policy)[0] for s in range(40)}
    assert len(seen) > 10  # a batch of seeds is diverse
    assert apply_rewrites("a black woman ceo", tags, 7, policy) == ("a black woman ceo", [])


def test_disabled_tag_does_nothing(policy):
    data = policy.model_dump()
    data["rewrite"]["tags"]["person-unspecified"]["enabled"] = False
    off = type(policy).model_validate(data)
    assert apply_rewrites("image of a ceo", {**NONE, "person-unspecified": 0.9}, 0, off) == ("image of a ceo", [])
