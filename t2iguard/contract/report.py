"""The JSON safety report returned with every generation (and the prompt screening report).

`None` means "not checked"; an empty list/dict means "checked, nothing found".

Three decision vocabularies, one mapping (`report_decision`, the only place they meet):

| vocabulary | values | who says it |
| --- | --- | --- |
| `PromptVerdict` | allow, rewrite, block | the policy, on the prompt's scores (`Policy.decide_prompt`) |
| `ImageVerdict` | pass, regenerate, block | the policy, on each attempt's image scores (`Policy.decide_image`) |
| `Decision` | allowed, rewritten, refused | the report, for the request as a whole |
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, Field

PromptVerdict = Literal["allow", "rewrite", "block"]
ImageVerdict = Literal["pass", "regenerate", "block"]
Decision = Literal["allowed", "rewritten", "refused"]


def report_decision(prompt: PromptVerdict, rewritten: bool, image: ImageVerdict | None) -> Decision:
    """The request's decision from the prompt's verdict, whether the rewriter changed the prompt, and the
    last attempt's image verdict (None: no image was generated). An image leaves only on `pass`:

    | prompt verdict | rewriter changed the prompt | last image verdict | report decision |
    | --- | --- | --- | --- |
    | block | (not run) | None: nothing generated | refused |
    | allow, rewrite | either | None: a required rewrite did not clear its re-screen | refused |
    | allow, rewrite | either | block | refused |
    | allow, rewrite | either | regenerate: still flagged when the attempts ran out | refused |
    | allow, rewrite | no | pass | allowed |
    | allow, rewrite | yes | pass | rewritten |

    Raises ValueError on a value outside the vocabularies."""
    if prompt not in get_args(PromptVerdict):
        raise ValueError(f"prompt verdict {prompt!r}; known: {', '.join(get_args(PromptVerdict))}")
    if image is not None and image not in get_args(ImageVerdict):
        raise ValueError(f"image verdict {image!r}; known: {', '.join(get_args(ImageVerdict))}")
    if prompt == "block" or image != "pass":
        return "refused"
    return "rewritten" if rewritten else "allowed"


class Rewrite(BaseModel):
    """One change the rewriter made: `span` is [start, end) in the original prompt."""

    kind: Literal["diversity", "anonymise", "neutralise", "ground"]
    span: tuple[int, int]
    original: str
    replacement: str
    reason: str


class PromptScreen(BaseModel):
    """Output of the prompt_guard ensemble (also what `t2iguard screen` prints)."""

    normalized_prompt: str
    decision: PromptVerdict
    scores: dict[str, float]
    flagged: list[str]
    logged: list[str] = Field(default_factory=list)
    blocklist: dict[str, list[str]] = Field(default_factory=dict)
    policy_version: str


class Attempt(BaseModel):
    """One generation and its image check. Attempt 1 is unguided; later ones use safety guidance."""

    attempt: int
    guidance: str | None
    seed: int
    image_scores: dict[str, float]
    transform_scores: dict[str, float] | None = None
    #: NudeNet's exposed-class scores, when the repository was built with its detector
    detector_scores: dict[str, float] | None = None
    flagged: list[str]
    action: ImageVerdict
    #: a regeneration that left no object where attempt 1 held one (policy `regeneration.keep_subject`): `action`
    #: is then `regenerate` though nothing was flagged
    subject_lost: bool = False
    ms: float


class Refusal(BaseModel):
    stage: Literal["prompt", "image"]
    categories: list[str]
    message: str


class SafetyReport(BaseModel):
    request_id: str
    decision: Decision
    refusal: Refusal | None = None
    prompt: str
    normalized_prompt: str
    rewritten_prompt: str | None = None
    negative_prompt: str = ""
    prompt_scores: dict[str, float]
    prompt_flagged: list[str]
    prompt_logged: list[str] = Field(default_factory=list)
    rewrites: list[Rewrite] = Field(default_factory=list)
    edit: bool = False
    attempts: list[Attempt] = Field(default_factory=list)
    image_logged: list[str] = Field(default_factory=list)
    seed: int
    steps: int
    guidance_scale: float
    watermark: str | None = None
    timings_ms: dict[str, float] = Field(default_factory=dict)
    policy_version: str
    profile: str
    weights: str
