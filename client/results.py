"""Typed results of the client calls."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from t2iguard.contract.report import Decision, PromptScreen, Rewrite, SafetyReport


@dataclass(frozen=True)
class GenerateResult:
    """`image_png` is None exactly when the request was refused (no pixels leave the server)."""

    request_id: str
    decision: Decision
    image_png: bytes | None
    report: SafetyReport

    @property
    def refused(self) -> bool:
        return self.decision == "refused"

    def image(self) -> np.ndarray | None:
        """The returned image as uint8 [H, W, 3] RGB, or None when refused."""
        if self.image_png is None:
            return None
        from PIL import Image

        return np.asarray(Image.open(io.BytesIO(self.image_png)).convert("RGB"))

    def save(self, out_dir: str | Path) -> list[Path]:
        """Write `<request_id>.json` (the report) and `<request_id>.png` when an image came back."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / f"{self.request_id}.json"]
        paths[0].write_text(self.report.model_dump_json(indent=2))
        if self.image_png is not None:
            paths.append(out / f"{self.request_id}.png")
            paths[1].write_bytes(self.image_png)
        return paths


@dataclass(frozen=True)
class RewriteResult:
    """One prompt through the prompt_rewrite ensemble; `rewritten == prompt` when nothing changed."""

    prompt: str
    rewritten: str
    rewrites: list[Rewrite]

    def as_json(self) -> dict:
        return {"prompt": self.prompt, "rewritten": self.rewritten,
                "rewrites": [r.model_dump() for r in self.rewrites]}


@dataclass(frozen=True)
class ScreenResult:
    """One prompt screened by the prompt_guard ensemble."""

    prompt: str
    screen: PromptScreen

    @property
    def decision(self) -> str:
        return self.screen.decision

    def as_json(self) -> dict:
        return {"prompt": self.prompt, "normalized_prompt": self.screen.normalized_prompt,
                "decision": self.screen.decision, "scores": self.screen.scores, "flagged": self.screen.flagged,
                "policy_version": self.screen.policy_version}
