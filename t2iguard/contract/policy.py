"""The policy: pure functions from detector scores to decisions (no I/O beyond loading the file).

Detectors only score; this module decides; the orchestrator acts. An operator edits the versioned
YAML (`t2iguard/contract/policies/default.yaml`) without touching code; every report names its version.
Every decision is a field here: per-category thresholds and actions, how detectors' scores are fused
(`image.nudity_fusion`) and over which views of an image (`image.views`), whether a required rewrite must
clear a re-screen (`rewrite.rescreen`), the regeneration ladder, and the watermark's read-back pass mark
(`watermark.min_match`).
The decisions' vocabularies and how they map to the report's are in `t2iguard.contract.report`.

Precedence when several categories fire: block > rewrite/regenerate > log > allow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from t2iguard.contract.profiles import PROFILES, SD_KINDS
from t2iguard.contract.report import ImageVerdict, PromptVerdict
from t2iguard.contract.taxonomy import CATEGORIES, REWRITE_TAGS, TRANSFORM_CLASSES
from t2iguard.contract.taxonomy import GUIDANCE_PRESETS as PRESETS

DEFAULT_POLICY = Path(__file__).parent / "policies" / "default.yaml"

PromptAction = Literal["block", "rewrite", "log"]
ImageAction = Literal["block", "regenerate", "log"]
_EDIT_CATEGORIES = TRANSFORM_CLASSES[1:]  # "safe-edit" is the complement, never a category


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PromptRule(_Strict):
    threshold: float = Field(ge=0.0, le=1.0)
    action: PromptAction


Preset = Literal["weak", "medium", "strong", "max"]


class ImageRule(_Strict):
    threshold: float = Field(ge=0.0, le=1.0)
    action: ImageAction
    #: for `regenerate`: the strongest guidance preset this category escalates to (default:
    #: regeneration.ceiling); stronger guidance removes more and keeps less of the prompt
    ceiling: Preset | None = None
    #: for `regenerate`: a first attempt scoring this much is already regenerated (a regenerated attempt
    #: still needs only to score under `threshold`): where the classifier passes harm on first attempts
    #: that regeneration removes, a lower bar for attempt 1 alone sends more of them there without
    #: refusing regenerations the ordinary bar would pass. Attempt 1's bar is the lower of the two, so an
    #: operator who lowers `threshold` lowers it too; `block` and `log` rules do not regenerate and ignore it.
    first_attempt_threshold: float | None = Field(default=None, ge=0.0, le=1.0)

    def bar(self, first_attempt: bool = False) -> float:
        """The score at which this rule fires: on a request's first attempt, for `regenerate`, the lower of
        `threshold` and `first_attempt_threshold`."""
        if first_attempt and self.action == "regenerate" and self.first_attempt_threshold is not None:
            return min(self.threshold, self.first_attempt_threshold)
        return self.threshold


class CategoryRule(_Strict):
    concept: str = Field(default="", description="text the guided regeneration steers away from")
    prompt: PromptRule | None = None
    image: ImageRule | None = None


class TagRule(_Strict):
    threshold: float = Field(ge=0.0, le=1.0)
    enabled: bool = True


class RewriteConfig(_Strict):
    tags: dict[str, TagRule]
    #: descriptor distributions for diversity augmentation: attribute -> {descriptor: weight}
    diversity: dict[str, dict[str, float]]
    #: per role, weight multipliers against known harmful skews: role -> attribute -> {descriptor: factor}
    counter_stereotype: dict[str, dict[str, dict[str, float]]] = Field(default_factory=dict)
    #: benign scenes appended to prompts prone to unintended sexualisation (one sampled per request)
    grounding_scenes: list[str] = Field(min_length=1)
    #: a prompt whose rule says `rewrite` goes on only when the rewriter changed it and the rewritten
    #: prompt screens `allow` (else it is refused); false: the rewritten prompt goes on unscreened
    rescreen: bool = True

    @field_validator("tags")
    @classmethod
    def _known_tags(cls, v: dict[str, TagRule]) -> dict[str, TagRule]:
        unknown = set(v) - set(REWRITE_TAGS)
        if unknown:
            raise ValueError(f"unknown rewrite tags {sorted(unknown)}; known: {list(REWRITE_TAGS)}")
        return v


class IdentityKeep(_Strict):
    """Edits' regenerations keep the person's identity from the source: the source's pixels inside the edit's
    mask within `tolerance` (RGB distance) of one of `colours` (a person's skin in the profile's world), grown
    by `grow` pixels, are left out of the regenerations' mask, so they stay the source's exactly
    (`t2iguard.runtime.images.identity_region`). A colour rule fits a world whose faces are drawn in a known
    palette (tiny: ShapeWorld's skin tones); photographs would need a face parser in its place."""

    colours: list[tuple[int, int, int]] = Field(min_length=1)
    tolerance: float = Field(default=24.0, gt=0.0)
    grow: int = Field(default=2, ge=0, le=32)

    @field_validator("colours")
    @classmethod
    def _rgb(cls, v: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
        bad = [c for c in v if not all(0 <= x <= 255 for x in c)]
        if bad:
            raise ValueError(f"identity colours must be RGB triples in [0, 255], got {bad}")
        return v


class RegenerationConfig(_Strict):
    max_attempts: int = Field(ge=0, le=8)
    #: sld: Safe-Latent-Diffusion concept guidance; classifier: the latent guard's gradient (DALL-E 3 style);
    #: reseed: no guidance, fresh noise each attempt (the baseline the guided methods are measured against)
    guidance: Literal["sld", "classifier", "reseed"] = "sld"
    #: edits only: the guidance of their regenerations; unset: `guidance`
    edit_guidance: Literal["sld", "classifier", "reseed"] | None = None
    preset: Preset = "strong"
    #: the strongest preset the escalation reaches (categories may set their own); attempts past it
    #: draw fresh noise at it
    ceiling: Preset = "max"
    #: edits only: regenerations start from the source latent noised to this strength (diffusers'
    #: inpainting `strength`; 1 repaints the mask from pure noise). Below 1 the masked region keeps the
    #: source's coarse content, such as a face's tone, which is what an unintended edit changed
    edit_strength: float = Field(default=1.0, gt=0.0, le=1.0)
    #: edits only: the strongest preset their regenerations use, whatever was flagged (and where they
    #: start, when below `preset`); unset: as for text-to-image
    edit_ceiling: Preset | None = None
    #: edits only: regenerations repaint the edit's mask minus the source's identity region (`IdentityKeep`),
    #: which then stays the source's; unset: the whole mask
    edit_keep_identity: IdentityKeep | None = None
    #: text-to-image only: every regeneration draws fresh noise (`guidance.fresh_seed`), guided as the ladder
    #: says; off: the escalation runs on the request's own noise first, as attempt 1 did
    fresh_noise: bool = False
    #: a regeneration whose image holds no object (`t2iguard.runtime.images.object_groups`) where attempt 1 held
    #: one lost the prompt's subject with the harm: it is not delivered, and the next attempt goes on (or, when
    #: none is left, the request is refused as still flagged)
    keep_subject: bool = False
    #: SLD's warm-up per preset, in steps of 50 before its concept acts (scaled to the request's steps), in place of
    #: the paper's (weak 15, medium 10, strong 7, max 0); presets left out keep the paper's
    sld_warmup: dict[Preset, Annotated[int, Field(ge=0, le=50)]] = Field(default_factory=dict)


#: how image_guard's `nudity` score fuses NudeNet's exposed-class scores (repositories built with
#: `--nudenet`) with the image classifier's: `max`: the largest of the classifier's and every detector
#: class's; `classifier`: the classifier's alone (the detector's classes are still reported)
NudityFusion = Literal["max", "classifier"]


#: image_guard's views of an image (`ImageConfig.views`)
ImageViews = Literal["whole", "objects"]


class ImageConfig(_Strict):
    nudity_fusion: NudityFusion = "max"
    #: what image_guard scores: `whole`, the image; `objects`, also each group of objects that stands apart
    #: side by side, alone on the background's colour (`t2iguard.runtime.images.object_views`), each category's
    #: score its largest over the views: a small second figure beside a clothed one is judged on its own
    views: ImageViews = "whole"


class WatermarkConfig(_Strict):
    #: the fraction of the message bits an embedded watermark must read back before the image leaves
    #: (below it: a guard failure, no image); an unmarked image reads about 0.5, so it must be above that
    min_match: float = Field(default=0.9, gt=0.5, le=1.0)


class Bucket(_Strict):
    """A token bucket: `rate` requests per second on average, up to `burst` at once."""

    rate: float = Field(gt=0.0)
    burst: float = Field(ge=1.0)


class StrikesConfig(_Strict):
    """Strikes on refusals: a refused prompt or image adds the largest `points` of its categories
    (`default_points` for the others); a client with `threshold` points within `window_s` is suspended for
    `suspend_s` seconds."""

    points: dict[str, float] = Field(default_factory=dict)
    default_points: float = Field(default=1.0, ge=0.0)
    threshold: float = Field(default=10.0, gt=0.0)
    window_s: float = Field(default=3600.0, gt=0.0)
    suspend_s: float = Field(default=900.0, ge=0.0)

    @field_validator("points")
    @classmethod
    def _known(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = set(v) - set(CATEGORIES) - set(_EDIT_CATEGORIES)
        if unknown:
            raise ValueError(f"strikes.points names unknown categories {sorted(unknown)}")
        return v


class LimitsPolicy(_Strict):
    """Per-client and global rate limits and strikes (t2iguard/runtime/limits.py), kept in `store`:
    `sqlite:PATH` (relative to the repository; the replicas of one machine) or `redis://HOST:PORT/DB`
    (many replicas). Clients are named by the request parameter `client` (a gateway sets it)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    enabled: bool = False
    store: str = "sqlite:limits.db"
    per_client: Bucket = Bucket(rate=2.0, burst=10.0)
    global_: Bucket = Field(default=Bucket(rate=50.0, burst=100.0), alias="global")
    strikes: StrikesConfig = StrikesConfig()


#: what an audit event keeps of the prompt: nothing, its sha256 (joins repeats without the text), the text
PromptRetention = Literal["none", "sha256", "full"]


class AuditConfig(_Strict):
    prompt: PromptRetention = "sha256"


class RegenerationOverride(_Strict):
    """The `regeneration` fields one profile's weights were tuned to; unset ones keep the policy's."""

    max_attempts: int | None = Field(default=None, ge=0, le=8)
    guidance: Literal["sld", "classifier", "reseed"] | None = None
    edit_guidance: Literal["sld", "classifier", "reseed"] | None = None
    preset: Preset | None = None
    ceiling: Preset | None = None
    edit_strength: float | None = Field(default=None, gt=0.0, le=1.0)
    edit_ceiling: Preset | None = None
    edit_keep_identity: IdentityKeep | None = None
    fresh_noise: bool | None = None
    keep_subject: bool | None = None
    sld_warmup: dict[Preset, Annotated[int, Field(ge=0, le=50)]] | None = None


class Policy(_Strict):
    version: str
    categories: dict[str, CategoryRule]
    #: terms never acceptable, per category, matched as whole words on the normalised prompt; a hit
    #: sets that category's prompt score to 1.0 (a fast path that can only add flags)
    blocklist: dict[str, list[str]] = Field(default_factory=dict)
    rewrite: RewriteConfig
    regeneration: RegenerationConfig
    image: ImageConfig = ImageConfig()
    watermark: WatermarkConfig = WatermarkConfig()
    limits: LimitsPolicy = LimitsPolicy()
    audit: AuditConfig = AuditConfig()
    #: concept texts in the vocabulary of one profile's text encoder/UNet, overriding `concept` there
    #: (the tiny UNet knows ShapeWorld's words, not the real categories' descriptions)
    profile_concepts: dict[str, dict[str, str]] = Field(default_factory=dict)
    #: `regeneration` as tuned on one profile's weights (guidance and ladder depend on the UNet); a
    #: pipeline runs `for_profile(its profile)`
    profile_regeneration: dict[str, RegenerationOverride] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_categories(self) -> Policy:
        known = set(CATEGORIES) | set(_EDIT_CATEGORIES)
        unknown = set(self.categories) - known
        if unknown:
            raise ValueError(f"unknown categories {sorted(unknown)}; known: {sorted(known)}")
        for name in _EDIT_CATEGORIES:
            if name in self.categories and self.categories[name].prompt is not None:
                raise ValueError(f"category {name!r} is an edit category: it has no prompt rule")
        unknown = set(self.blocklist) - set(CATEGORIES)
        if unknown:
            raise ValueError(f"blocklist names unknown categories {sorted(unknown)}")
        for profile, concepts in self.profile_concepts.items():
            unknown = set(concepts) - known
            if unknown:
                raise ValueError(f"profile_concepts.{profile} names unknown categories {sorted(unknown)}")
        known_profiles = {*PROFILES, *SD_KINDS}
        for table in ("profile_concepts", "profile_regeneration"):
            unknown = set(getattr(self, table)) - known_profiles
            if unknown:  # a misspelt profile would silently leave the defaults in force
                raise ValueError(f"{table} names unknown profiles {sorted(unknown)}; known: {sorted(known_profiles)}")
        own = {c: r.image.ceiling for c, r in self.categories.items() if r.image is not None and r.image.ceiling}
        ladders = {"regeneration": self.regeneration.model_dump()} | {
            f"profile_regeneration.{name}": self.regeneration.model_dump() | o.model_dump(exclude_none=True)
            for name, o in self.profile_regeneration.items()}
        for prefix, regen in ladders.items():
            ceilings = {f"{prefix}.ceiling": regen["ceiling"]} | {
                f"categories.{c}.image.ceiling": ceiling for c, ceiling in own.items()}
            for where, ceiling in ceilings.items():
                if PRESETS.index(ceiling) < PRESETS.index(regen["preset"]):
                    raise ValueError(f"{where} {ceiling!r} is below {prefix}.preset {regen['preset']!r}")
        return self

    def for_profile(self, profile: str) -> Policy:
        """This policy as `profile` runs it: its `profile_regeneration` entry merged into `regeneration`
        (and the per-profile table emptied, so applying it twice changes nothing)."""
        if not self.profile_regeneration:
            return self
        data = self.model_dump()
        own = self.profile_regeneration.get(profile)
        data["regeneration"].update(own.model_dump(exclude_none=True) if own else {})
        data["profile_regeneration"] = {}
        return Policy.model_validate(data)

    def blocklist_hits(self, normalized: str) -> dict[str, list[str]]:
        """Blocklisted terms found in a normalised prompt, per category (case-insensitive, whole words)."""
        hits = {}
        for cat, terms in self.blocklist.items():
            if not terms:
                continue
            found = sorted({m.group(0).lower() for m in _term_pattern(tuple(terms)).finditer(normalized)})
            if found:
                hits[cat] = found
        return hits

    def prompt_thresholds(self) -> dict[str, float]:
        """The prompt classifier's threshold per category, in `categories` order (inf: no prompt rule, never
        fires): what offline evaluations compare scores with."""
        return {c: rule.prompt.threshold if rule.prompt else float("inf") for c, rule in self.categories.items()}

    # ------------------------------------------------------------------------------------------
    def decide_prompt(self, scores: dict[str, float]) -> PromptDecision:
        """Scores per category (prompt classifier) -> allow | rewrite | block."""
        fired = self._fired(scores, "prompt")
        return PromptDecision(action=_strongest(fired, ("block", "rewrite")) or "allow", **_flagged_logged(fired))

    def decide_image(self, scores: dict[str, float], first_attempt: bool = False) -> ImageDecision:
        """Scores per category (image classifier, plus transform classes for edits) -> pass |
        regenerate | block. Categories without an image rule never fire. On a request's `first_attempt` a
        `regenerate` rule fires from its `first_attempt_threshold` where that is lower (`ImageRule.bar`)."""
        fired = self._fired(scores, "image", first_attempt)
        return ImageDecision(action=_strongest(fired, ("block", "regenerate")) or "pass", **_flagged_logged(fired))

    def _fired(self, scores: dict[str, float], stage: str, first_attempt: bool = False) -> dict[str, str]:
        """{category: its `stage` rule's action} for every category whose score reaches the rule's threshold
        (`first_attempt`: an image rule's `first_attempt_threshold` where set)."""
        rules = {c: getattr(r, stage) for c, r in self.categories.items()}
        return {c: rule.action for c, rule in rules.items() if rule is not None and scores.get(c, 0.0) >= (
                rule.bar(first_attempt) if isinstance(rule, ImageRule) else rule.threshold)}

    def fuse_image_scores(self, classifier: dict[str, float], detector: dict[str, float] | None
                          ) -> dict[str, float]:
        """image_guard's scores per category with the nude detector's classes (None: not built with it)
        folded into `nudity` as `image.nudity_fusion` says; a new dict."""
        scores = dict(classifier)
        if detector and self.image.nudity_fusion == "max":
            scores["nudity"] = max(scores["nudity"], *detector.values())
        return scores

    def regeneration_guidance(self, edit: bool = False) -> str:
        """The guidance method of a regeneration: regeneration.edit_guidance for an edit when set, otherwise
        regeneration.guidance."""
        return (self.regeneration.edit_guidance if edit else None) or self.regeneration.guidance

    def regeneration_ladder(self, categories: list[str], edit: bool = False) -> tuple[str, str]:
        """(start, ceiling) presets of a regeneration away from `categories`. The ceiling is the highest
        of their own ceilings, each defaulting to regeneration.ceiling; for an edit it is capped at
        regeneration.edit_ceiling when set, and the ladder then starts there if that is below
        regeneration.preset."""
        own = [self.categories[c].image.ceiling if c in self.categories and self.categories[c].image else None
               for c in categories]
        ceiling = max((c or self.regeneration.ceiling for c in own or [None]), key=PRESETS.index)
        cap = self.regeneration.edit_ceiling if edit else None
        if cap is not None:
            ceiling = min(ceiling, cap, key=PRESETS.index)
        return min(self.regeneration.preset, ceiling, key=PRESETS.index), ceiling

    def concept_text(self, categories: list[str], profile: str) -> str:
        """The safety concept for guided regeneration: the flagged categories' concepts joined,
        in `profile`'s vocabulary where the policy gives one."""
        own = self.profile_concepts.get(profile, {})
        parts = [own.get(c) or self.categories[c].concept for c in categories]
        return ", ".join(p for p in parts if p)

    def tag_fires(self, tag: str, score: float) -> bool:
        rule = self.rewrite.tags.get(tag)
        return rule is not None and rule.enabled and score >= rule.threshold


@dataclass(frozen=True)
class PromptDecision:
    action: PromptVerdict
    flagged: list[str] = field(default_factory=list)
    logged: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ImageDecision:
    action: ImageVerdict
    flagged: list[str] = field(default_factory=list)
    logged: list[str] = field(default_factory=list)


def _strongest(fired: dict[str, str], order: tuple[str, ...]) -> str | None:
    for action in order:
        if action in fired.values():
            return action
    return None


def _flagged_logged(fired: dict[str, str]) -> dict[str, list[str]]:
    """The categories that fired with an acting rule (flagged) and with `log` (logged), sorted."""
    return {"flagged": sorted(c for c, a in fired.items() if a != "log"),
            "logged": sorted(c for c, a in fired.items() if a == "log")}


@lru_cache(maxsize=64)
def _term_pattern(terms: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
    return re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)


def load_policy(path: str | Path | None = None) -> Policy:
    """Load and validate a policy YAML; raises ValueError naming the file and the problem."""
    path = Path(path) if path else DEFAULT_POLICY
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Policy.model_validate(data)
    except (OSError, yaml.YAMLError, ValueError) as e:
        raise ValueError(f"invalid policy file {path}: {e}") from e
