"""The JSON safety report returned with every generation (and the prompt screening report).

`None` means "not checked"; an empty list/dict means "checked, nothing found".
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Decision = Literal["allowed", "rewritten", "refused"]


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
    decision: Literal["allow", "rewrite", "block"]
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
    action: Literal["pass", "regenerate", "block"]
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
