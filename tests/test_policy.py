import pytest
import yaml

from t2iguard.contract.policy import DEFAULT_POLICY, Policy, load_policy
from t2iguard.contract.taxonomy import CATEGORIES


def test_default_policy_covers_the_taxonomy(policy):
    assert set(CATEGORIES) <= set(policy.categories)
    assert policy.version


def test_prompt_precedence_block_over_rewrite(policy):
    scores = dict.fromkeys(CATEGORIES, 0.0)
    assert policy.decide_prompt(scores).action == "allow"
    scores["privacy"] = 0.9
    d = policy.decide_prompt(scores)
    assert (d.action, d.flagged) == ("rewrite", ["privacy"])
    scores["violence"] = 0.9
    d = policy.decide_prompt(scores)
    assert d.action == "block" and d.flagged == ["privacy", "violence"]


def test_log_action_never_blocks(policy):
    data = policy.model_dump()
    data["categories"]["public-figures"]["prompt"]["action"] = "log"
    d = Policy.model_validate(data).decide_prompt({"public-figures": 0.99})
    assert d.action == "allow" and d.logged == ["public-figures"] and d.flagged == []


def test_image_decision_and_threshold_edge(policy):
    t = policy.categories["violence"].image.threshold
    assert policy.decide_image({"violence": t - 1e-6}).action == "pass"
    assert policy.decide_image({"violence": t}).action == "regenerate"
    assert policy.decide_image({"sexual/minors": 0.99, "violence": 0.99}).action == "block"
    assert policy.decide_image({"unsafe-edit": 0.99}).flagged == ["unsafe-edit"]


def test_a_first_attempt_is_held_to_its_own_lower_bar_and_regenerations_to_the_ordinary_one(policy):
    """2026.12.04-2: an edit's first attempt is regenerated from `first_attempt_threshold`; a regenerated attempt
    passes under `threshold` as before (a lower bar for every attempt refused 5% of tuning edits)."""
    rule = policy.categories["unsafe-edit"].image
    low, bar = rule.first_attempt_threshold, rule.threshold
    assert low is not None and low < bar
    between = {"unsafe-edit": (low + bar) / 2}
    assert policy.decide_image(between, first_attempt=True).action == "regenerate"
    assert policy.decide_image(between).action == "pass"
    assert policy.decide_image({"unsafe-edit": low - 1e-6}, first_attempt=True).action == "pass"
    t = policy.categories["violence"].image.threshold  # no first-attempt bar: the same on every attempt
    assert policy.decide_image({"violence": t - 1e-6}, first_attempt=True).action == "pass"


def test_the_first_attempt_bar_follows_an_operators_edits_of_the_rule(policy):
    """Attempt 1's bar is the lower of the two thresholds and only `regenerate` rules have one: an operator who
    lowers `threshold` (or turns the rule to `log`) need not touch `first_attempt_threshold`."""
    data = policy.model_dump()
    data["categories"]["unsafe-edit"]["image"]["threshold"] = 0.0
    assert Policy.model_validate(data).decide_image({"unsafe-edit": 0.0}, first_attempt=True).action == "regenerate"
    data = policy.model_dump()
    data["categories"]["unintended-edit"]["image"]["action"] = "log"
    logged = Policy.model_validate(data).decide_image({"unintended-edit": 0.2}, first_attempt=True)
    assert logged.action == "pass" and logged.logged == []  # 0.2 is under the rule's own 0.5: no log either
    data["categories"]["unsafe-edit"]["image"]["first_attempt_threshold"] = 1.5
    with pytest.raises(ValueError, match="first_attempt_threshold"):
        Policy.model_validate(data)


def test_prompt_thresholds_are_the_decisions_edges(policy):
    thresholds = policy.prompt_thresholds()
    assert set(CATEGORIES) <= set(thresholds)  # and the edit classes, which have no prompt rule
    for cat, t in thresholds.items():
        if t == float("inf"):  # no prompt rule: nothing fires
            assert policy.decide_prompt({cat: 1.0}).action == "allow"
        else:
            assert cat in policy.decide_prompt({cat: t}).flagged
            assert cat not in policy.decide_prompt({cat: t - 1e-3}).flagged


def test_unknown_category_is_rejected(tmp_path):
    data = yaml.safe_load(DEFAULT_POLICY.read_text())
    data["categories"]["weather"] = {"prompt": {"threshold": 0.5, "action": "block"}}
    bad = tmp_path / "p.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match="unknown categories.*weather"):
        load_policy(bad)


def test_bad_action_names_the_field(tmp_path):
    data = yaml.safe_load(DEFAULT_POLICY.read_text())
    data["categories"]["violence"]["prompt"]["action"] = "shrug"
    with pytest.raises(ValueError, match="action"):
        Policy.model_validate(data)


def test_regeneration_ceiling_per_category(policy):
    data = policy.model_dump()
    data["regeneration"].update(preset="strong", ceiling="max")
    data["categories"]["nudity"]["image"]["ceiling"] = "strong"
    p = Policy.model_validate(data)
    assert p.regeneration_ladder(["nudity"]) == ("strong", "strong")
    assert p.regeneration_ladder(["nudity", "violence"]) == ("strong", "max")  # the highest of the flagged
    assert p.regeneration_ladder([]) == ("strong", "max")


def test_edit_guidance_applies_to_edits_only(policy):
    data = policy.model_dump()
    data["regeneration"].update(guidance="sld", edit_guidance=None)
    p = Policy.model_validate(data)
    assert (p.regeneration_guidance(edit=False), p.regeneration_guidance(edit=True)) == ("sld", "sld")
    data["regeneration"]["edit_guidance"] = "classifier"
    p = Policy.model_validate(data)
    assert (p.regeneration_guidance(edit=False), p.regeneration_guidance(edit=True)) == ("sld", "classifier")
    data["regeneration"]["edit_guidance"] = "gradient"
    with pytest.raises(ValueError, match="edit_guidance"):
        Policy.model_validate(data)


def test_edit_ceiling_caps_edits_only_and_may_start_them_lower(policy):
    data = policy.model_dump()
    data["regeneration"].update(preset="strong", ceiling="max", edit_ceiling="medium")
    p = Policy.model_validate(data)
    assert p.regeneration_ladder(["unintended-edit"], edit=True) == ("medium", "medium")
    assert p.regeneration_ladder(["violence"], edit=True) == ("medium", "medium")  # whatever was flagged
    assert p.regeneration_ladder(["violence"], edit=False) == ("strong", "max")
    data["regeneration"]["edit_ceiling"] = "max"
    data["categories"]["nudity"]["image"]["ceiling"] = "strong"
    assert Policy.model_validate(data).regeneration_ladder(["nudity"], edit=True) == ("strong", "strong")
    data["regeneration"]["edit_strength"] = 0.0
    with pytest.raises(ValueError, match="regeneration.edit_strength"):
        Policy.model_validate(data)


@pytest.mark.parametrize(("where", "message"), [
    ("regeneration", "regeneration.ceiling 'medium' is below regeneration.preset 'strong'"),
    ("nudity", "categories.nudity.image.ceiling 'medium' is below regeneration.preset 'strong'")])
def test_regeneration_ceiling_below_the_starting_preset_is_named(policy, where, message):
    data = policy.model_dump()
    data["regeneration"]["preset"] = "strong"
    (data["regeneration"] if where == "regeneration" else data["categories"][where]["image"])["ceiling"] = "medium"
    with pytest.raises(ValueError, match=message):
        Policy.model_validate(data)


def test_profile_regeneration_overrides_the_defaults_for_that_profile_only(policy):
    tiny, sd = policy.for_profile("tiny"), policy.for_profile("sd15")
    # 2026.12.05-1: tiny's text-to-image regenerations on SLD, its edits' on classifier guidance
    assert (tiny.regeneration.guidance, tiny.regeneration.ceiling) == ("sld", "strong")
    assert (tiny.regeneration_guidance(edit=False), tiny.regeneration_guidance(edit=True)) == ("sld", "classifier")
    assert (sd.regeneration.guidance, sd.regeneration.ceiling) == ("sld", "max")  # no latent guard there
    assert sd.regeneration_guidance(edit=True) == "sld"
    assert tiny.regeneration.max_attempts == policy.regeneration.max_attempts  # unset fields stay
    assert tiny.for_profile("tiny") == tiny and tiny.for_profile("sd15") == tiny  # resolved once
    assert tiny.regeneration_ladder(["violence"]) == ("strong", "strong")
    # SLD's warm-ups are the paper's everywhere; a profile's own replaces the policy's for that profile only
    assert tiny.regeneration.sld_warmup == sd.regeneration.sld_warmup == {}
    data = policy.model_dump()
    data["regeneration"]["sld_warmup"] = {"max": 5}
    data["profile_regeneration"]["tiny"]["sld_warmup"] = {"strong": 15}
    amended = Policy.model_validate(data)
    assert amended.for_profile("tiny").regeneration.sld_warmup == {"strong": 15}
    assert amended.for_profile("sd15").regeneration.sld_warmup == {"max": 5}
    # edits as tuned on the tiny weights: from the source noised to 0.9, guidance capped at medium
    assert tiny.regeneration.edit_strength == 0.9
    assert tiny.regeneration_ladder(["unintended-edit"], edit=True) == ("medium", "medium")
    assert sd.regeneration.edit_strength == 1.0 and sd.regeneration_ladder(["unintended-edit"], edit=True) == (
        "strong", "max")
    # 2026.12.04-1: tiny's edit regenerations keep the source's face (ShapeWorld's skin tones); sd has no rule
    assert len(tiny.regeneration.edit_keep_identity.colours) == 5 and sd.regeneration.edit_keep_identity is None


def test_profile_edit_strength_out_of_range_is_named(policy):
    data = policy.model_dump()
    data["profile_regeneration"]["tiny"]["edit_strength"] = 1.5
    with pytest.raises(ValueError, match="profile_regeneration.tiny.edit_strength"):
        Policy.model_validate(data)


def test_profile_regeneration_ceiling_below_the_preset_is_named(policy):
    data = policy.model_dump()
    data["profile_regeneration"]["tiny"] = {"preset": "max", "ceiling": "strong"}
    with pytest.raises(ValueError, match="profile_regeneration.tiny.ceiling 'strong' is below "
                                         "profile_regeneration.tiny.preset 'max'"):
        Policy.model_validate(data)


def test_profile_tables_name_only_known_profiles(policy):
    data = policy.model_dump()
    data["profile_regeneration"]["tiy"] = {"guidance": "reseed"}
    with pytest.raises(ValueError, match=r"profile_regeneration names unknown profiles \['tiy'\]"):
        Policy.model_validate(data)


def test_concept_text_joins_flagged(policy):
    text = policy.concept_text(["violence", "nudity"], "sd15")
    assert policy.categories["violence"].concept in text and policy.categories["nudity"].concept in text
    # the tiny UNet knows ShapeWorld's words: its concepts come from `profile_concepts`
    tiny = policy.concept_text(["violence", "nudity"], "tiny")
    assert tiny == f"{policy.categories['violence'].concept}, {policy.profile_concepts['tiny']['nudity']}"
    with pytest.raises(ValueError, match="profile_concepts.tiny names unknown categories"):
        Policy.model_validate({**policy.model_dump(), "profile_concepts": {"tiny": {"gore": "x"}}})


def test_blocklist_only_adds_flags(policy):
    hits = policy.blocklist_hits("some L0li hentai".replace("0", "o"))
    assert hits == {"sexual/minors": ["loli hentai"]}
    assert policy.blocklist_hits("a loli pop candy") == {}  # whole phrases only


def test_blocklist_must_name_known_categories(tmp_path):
    data = yaml.safe_load(DEFAULT_POLICY.read_text())
    data["blocklist"] = {"weather": ["rain"]}
    with pytest.raises(ValueError, match="blocklist names unknown categories"):
        Policy.model_validate(data)


def test_decision_fields_default_to_the_behaviour_they_replaced(policy):
    """Every decision is a policy field; the default file states today's values, and a policy file written
    before they were fields loads with the same values."""
    import re

    assert re.fullmatch(r"\d{4}\.\d{2}\.\d{2}-\d+", policy.version)
    assert (policy.image.nudity_fusion, policy.rewrite.rescreen, policy.watermark.min_match) == ("max", True, 0.9)
    data = yaml.safe_load(DEFAULT_POLICY.read_text())
    for section in ("image", "watermark"):
        del data[section]
    del data["rewrite"]["rescreen"]
    del data["regeneration"]["keep_subject"]
    older = Policy.model_validate(data)
    assert (older.watermark, older.rewrite.rescreen) == (policy.watermark, True)
    # a regeneration that lost the prompt's subject: delivered before 2026.12.06-2, not since
    assert (older.regeneration.keep_subject, policy.regeneration.keep_subject) == (False, True)
    # image_guard's views: a file without them scores the whole image only, as before 2026.12.06-1
    assert older.image.model_dump() == policy.image.model_dump() | {"views": "whole"}
    assert policy.image.views == "objects"


@pytest.mark.parametrize(("path", "value", "message"), [
    (("image", "nudity_fusion"), "mean", "image.nudity_fusion"),
    (("watermark", "min_match"), 0.5, "watermark.min_match"),
    (("watermark", "min_match"), 1.01, "watermark.min_match"),
    (("rewrite", "rescreen"), "sometimes", "rewrite.rescreen"),
    (("image", "views"), "tiles", "image.views"),
    (("regeneration", "sld_warmup"), {"strong": 51}, "regeneration.sld_warmup.strong"),
    (("regeneration", "sld_warmup"), {"strong": -1}, "regeneration.sld_warmup.strong"),
    (("regeneration", "sld_warmup"), {"extreme": 10}, "regeneration.sld_warmup.extreme"),
    (("regeneration", "keep_subject"), "sometimes", "regeneration.keep_subject"),
    (("image", "fusion"), "max", "image.fusion")])
def test_bad_decision_fields_are_named(policy, path, value, message):
    data = policy.model_dump()
    data[path[0]][path[1]] = value
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        Policy.model_validate(data)


def test_nudity_fusion_is_honoured(policy):
    classifier = dict.fromkeys(CATEGORIES, 0.0) | {"nudity": 0.2}
    detector = {"FEMALE_BREAST_EXPOSED": 0.1, "MALE_GENITALIA_EXPOSED": 0.7}
    assert policy.fuse_image_scores(classifier, detector)["nudity"] == 0.7
    assert policy.fuse_image_scores(classifier, None) == classifier  # no detector built: the classifier's
    assert policy.fuse_image_scores(classifier, {"MALE_GENITALIA_EXPOSED": 0.1})["nudity"] == 0.2
    data = policy.model_dump()
    data["image"]["nudity_fusion"] = "classifier"
    assert Policy.model_validate(data).fuse_image_scores(classifier, detector) == classifier
    assert classifier["nudity"] == 0.2  # not modified in place


def test_one_mapping_of_the_three_decision_vocabularies():
    """report_decision's table, every combination: an image leaves only on `pass`; `rewritten` says the
    rewriter changed the prompt."""
    from typing import get_args

    from t2iguard.contract.policy import ImageDecision, PromptDecision
    from t2iguard.contract.report import Decision, ImageVerdict, PromptVerdict, report_decision

    assert get_args(PromptVerdict) == ("allow", "rewrite", "block")
    assert get_args(ImageVerdict) == ("pass", "regenerate", "block")
    assert get_args(Decision) == ("allowed", "rewritten", "refused")
    assert PromptDecision.__annotations__["action"] == "PromptVerdict"  # the policy speaks the same words
    assert ImageDecision.__annotations__["action"] == "ImageVerdict"
    table = {(p, r, i): report_decision(p, r, i) for p in get_args(PromptVerdict) for r in (False, True)
             for i in (None, *get_args(ImageVerdict))}
    for (prompt, rewritten, image), decision in table.items():
        if prompt == "block" or image != "pass":
            assert decision == "refused", (prompt, rewritten, image)
        else:
            assert decision == ("rewritten" if rewritten else "allowed"), (prompt, rewritten, image)
    assert set(table.values()) == set(get_args(Decision))
    with pytest.raises(ValueError, match="prompt verdict 'allowed'"):
        report_decision("allowed", False, "pass")
    with pytest.raises(ValueError, match="image verdict 'ok'"):
        report_decision("allow", False, "ok")


def test_edit_keep_identity_is_validated_and_set_per_profile(policy):
    data = policy.model_dump()
    data["regeneration"]["edit_keep_identity"] = {"colours": [[255, 226, 300]]}
    with pytest.raises(ValueError, match=r"identity colours must be RGB triples in \[0, 255\]"):
        Policy.model_validate(data)
    data["regeneration"]["edit_keep_identity"] = {"colours": []}
    with pytest.raises(ValueError, match="regeneration.edit_keep_identity.colours"):
        Policy.model_validate(data)
    data["regeneration"]["edit_keep_identity"] = None
    data["profile_regeneration"]["tiny"]["edit_keep_identity"] = {"colours": [[1, 2, 3]], "grow": 3}
    tiny = Policy.model_validate(data).for_profile("tiny").regeneration.edit_keep_identity
    assert (tiny.colours, tiny.tolerance, tiny.grow) == ([(1, 2, 3)], 24.0, 3)
    assert Policy.model_validate(data).for_profile("sd15").regeneration.edit_keep_identity is None
