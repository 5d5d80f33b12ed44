"""The safe text-to-image pipeline: the request's steps 1-8 (README, "The request"), driven through a `Runner`.

`SafeT2IPipeline.__call__` reads as one numbered script, each step a named method. The same code
runs inside the `safe_t2i` BLS model (runner = Triton BLS) and in-process (runner = LocalRunner).
Fail closed: any error in a safety component (prompt guard, rewriter, image guard, transform
classifier, watermark) ends the request without an image.
"""

from __future__ import annotations

import json
import secrets
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np

from t2iguard.contract import specs as S
from t2iguard.contract.errors import GuardFailure, InvalidInput, Overloaded, T2IGuardError
from t2iguard.contract.policy import Policy
from t2iguard.contract.profiles import Profile
from t2iguard.contract.report import Attempt, PromptScreen, Refusal, Rewrite, SafetyReport, report_decision
from t2iguard.contract.taxonomy import GUIDED_CLASSES, TRANSFORM_CLASSES
from t2iguard.runtime.audit import JsonlAuditSink, audit_event
from t2iguard.runtime.guidance import SLD_PRESETS, SLDGuidance, cfg, classifier_guided, regeneration_step, sld_warmup
from t2iguard.runtime.images import (
    decode_image,
    downsample_mask,
    encode_png,
    from_pixels,
    identity_region,
    mask_from_image,
    object_groups,
    object_views,
    to_pixels,
)
from t2iguard.runtime.runners import ModelCallError, Runner, score_images, screen_texts
from t2iguard.runtime.scheduler import DDIM, schedule_of
from t2iguard.runtime.stages import decode_text
from t2iguard.runtime.tensors import bytes_column
from t2iguard.runtime.text import mean_pool, tokenize
from t2iguard.runtime.watermark import METHOD, WATERMARK_BITS

#: documented request limits (README, "Request limits and errors")
STEPS_RANGE = (1, 50)
DEFAULT_STEPS = 20
GUIDANCE_RANGE = (0.0, 20.0)
DEFAULT_GUIDANCE = 5.0
SEED_RANGE = (0, 2**63 - 1)
GUARD_MODELS = frozenset({S.PROMPT_GUARD, S.PROMPT_REWRITE, S.IMAGE_GUARD, S.IMAGE_PREPROCESS,
                          S.TRANSFORM_CLASSIFIER, S.WATERMARK, S.LATENT_GUARD})


@dataclass(frozen=True)
class GenerateRequest:
    """A validated request. Images are uint8 [H, W, 3]; the mask float32 [H, W] in {0, 1}."""

    request_id: str
    prompt: str
    negative_prompt: str = ""
    init_image: np.ndarray | None = None
    mask: np.ndarray | None = None
    seed: int = 0
    steps: int = DEFAULT_STEPS
    guidance_scale: float = DEFAULT_GUIDANCE
    client: str = "anonymous"

    @property
    def is_edit(self) -> bool:
        return self.init_image is not None


def _scalar(values: np.ndarray | None, field: str, dtype: type, default):
    if values is None:
        return default
    if values.size != 1:
        raise InvalidInput(f"`{field}` must hold exactly 1 value, got shape {list(values.shape)}")
    return dtype(values.reshape(-1)[0])


def parse_request(raw: dict[str, np.ndarray | None], profile: Profile, request_id: str = "",
                  client: str = "anonymous") -> GenerateRequest:
    """Step 1: validate raw tensors (as the `safe_t2i` spec declares them) into a request.

    Raises InvalidInput with a message naming the field and the limit.
    """
    def one(name: str) -> bytes | None:
        v = raw.get(name)
        if v is None:
            return None
        if v.size != 1:
            raise InvalidInput(f"`{name}` must hold exactly 1 element, got shape {list(v.shape)}")
        return v.reshape(-1)[0]

    prompt = decode_text(one(S.PROMPT) if raw.get(S.PROMPT) is not None else b"", S.PROMPT)
    neg_raw = one(S.NEGATIVE_PROMPT)
    negative = decode_text(neg_raw, S.NEGATIVE_PROMPT, allow_empty=True) if neg_raw is not None else ""
    steps = _scalar(raw.get(S.STEPS), S.STEPS, int, profile.default_steps)
    if not STEPS_RANGE[0] <= steps <= STEPS_RANGE[1]:
        raise InvalidInput(f"`{S.STEPS}` is {steps}; it must be in [{STEPS_RANGE[0]}, {STEPS_RANGE[1]}]")
    scale = _scalar(raw.get(S.GUIDANCE_SCALE), S.GUIDANCE_SCALE, float, profile.default_guidance)
    if not GUIDANCE_RANGE[0] <= scale <= GUIDANCE_RANGE[1]:
        raise InvalidInput(f"`{S.GUIDANCE_SCALE}` is {scale}; it must be in [{GUIDANCE_RANGE[0]}, {GUIDANCE_RANGE[1]}]")
    seed = _scalar(raw.get(S.SEED), S.SEED, int, None)
    if seed is None:
        seed = secrets.randbelow(2**31)
    elif not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise InvalidInput(f"`{S.SEED}` is {seed}; it must be in [0, 2**63-1]")
    image_raw, mask_raw = one(S.INIT_IMAGE), one(S.MASK_IMAGE)
    if (image_raw is None) != (mask_raw is None):
        given, missing = (S.INIT_IMAGE, S.MASK_IMAGE) if image_raw is not None else (S.MASK_IMAGE, S.INIT_IMAGE)
        raise InvalidInput(f"`{given}` was given without `{missing}`; an edit needs both")
    init_image = mask = None
    if image_raw is not None and not profile.trained_image_side:
        raise InvalidInput(f"`{S.INIT_IMAGE}`: profile {profile.name} serves text-to-image only (its checkpoint has "
                           "no transform classifier to check edits)")
    if image_raw is not None:
        init_image = decode_image(bytes(image_raw), S.INIT_IMAGE, profile.image_size, "RGB")
        mask = mask_from_image(decode_image(bytes(mask_raw), S.MASK_IMAGE, profile.image_size, "L"))
        if not mask.any():
            raise InvalidInput(f"`{S.MASK_IMAGE}` selects no pixel; white (>= 128) marks the region to repaint")
    return GenerateRequest(request_id=request_id or secrets.token_hex(8), prompt=prompt, negative_prompt=negative,
                           init_image=init_image, mask=mask, seed=seed, steps=steps, guidance_scale=scale,
                           client=client)


@dataclass(frozen=True)
class Guidance:
    """One regeneration: method (`sld` | `classifier` | `reseed`), preset (None for `reseed`), flagged
    categories, and for edits the strength it starts from (1: pure noise in the mask; below 1: the
    source latent noised that far, as diffusers' inpainting `strength`)."""

    method: str
    preset: str | None
    categories: list[str]
    strength: float = 1.0
    #: edits: the source's identity region is kept out of the repainted mask (policy `edit_keep_identity`)
    keep_identity: bool = False

    def __post_init__(self):
        if not 0.0 < self.strength <= 1.0:
            raise ValueError(f"guidance strength must be in (0, 1], got {self.strength}")

    @property
    def label(self) -> str:
        name = self.method if self.preset is None else f"{self.method}-{self.preset}"
        name = name if self.strength == 1.0 else f"{name}@{self.strength:g}"
        return f"{name}+identity-kept" if self.keep_identity else name


@dataclass(frozen=True)
class InpaintCondition:
    """What the denoising of one request reads besides the text, computed once (`prepare_inpaint_condition`)
    and reused by every attempt.

    unet: float32 [1, C + 1, h, w]: the UNet's inpainting input, the source latent and the latent mask (1:
        repaint); zeros and an all-ones mask for text-to-image; None for plain UNets (text-to-image only).
    source: float32 [1, C, h, w]: the edit's source latent (the VAE encoder's); None for text-to-image.
    keep: float32 [1, 1, h, w]: 1 where the source stays (outside the mask); None for text-to-image."""

    unet: np.ndarray | None
    source: np.ndarray | None = None
    keep: np.ndarray | None = None


@dataclass
class GuidanceState:
    """One generation's guidance (`prepare_guidance`): the UNet's text rows and what steers them.

    context: float32 [n, L, D]: the unconditional and prompt rows, and for `sld` the safety concept's
        (n = 2 or 3); the UNet runs one batch of n rows per step.
    scale: the classifier-free guidance scale.
    sld: SLD's stateful (momentum) guidance of this generation, or None.
    classifier_weights: float32 [1, K], K = len(GUIDED_CLASSES): the latent guard's weight per class for
        classifier guidance, or None; classifier_preset: its preset."""

    context: np.ndarray
    scale: float
    sld: SLDGuidance | None = None
    classifier_weights: np.ndarray | None = None
    classifier_preset: str | None = None


@dataclass
class Retrace:
    """Attempt 1's first `capacity` steps, kept for a regeneration that retraces them: SLD on the same seed and
    text rows guides nothing during its warm-up, so its latents there are attempt 1's, and only its
    safety-concept row (which its momentum reads from the first step) has to be computed (`resume_warmup`).

    latents: float32 [1, C, h, w] entering steps 0..capacity (capacity + 1 of them once full).
    preds: float32 [2, C, h, w], the UNet's unconditional and prompt rows of steps 0..capacity - 1."""

    capacity: int
    latents: list[np.ndarray] = field(default_factory=list)
    preds: list[np.ndarray] = field(default_factory=list)

    def keep(self, step: int, latents: np.ndarray, pred: np.ndarray) -> None:
        """Step `step` of attempt 1 entered at `latents` and predicted `pred` (its first two rows are kept)."""
        if step <= self.capacity:
            self.latents.append(latents)
        if step < self.capacity:
            self.preds.append(pred[0:2])

    def covers(self, steps: int) -> bool:
        """Whether the first `steps` steps (and the latents entering the next) were kept."""
        return len(self.preds) >= steps and len(self.latents) > steps


def strength_steps(strength: float, steps: int) -> int:
    """How many of `steps` denoising steps an edit at `strength` runs: the last int(strength * steps), as
    diffusers' `get_timesteps` counts them, and at least one (a regeneration must draw an image)."""
    return max(1, min(steps, int(strength * steps + 1e-6)))


class Refused(Exception):
    """Control flow inside the pipeline: the request ends with a refusal (a report, not an error)."""

    def __init__(self, refusal: Refusal):
        self.refusal = refusal


class SafeT2IPipeline:
    """`tokenizer(texts, seq_len) -> (ids, mask)` feeds the text encoder: MiniLM's for `tiny`, the
    checkpoint's CLIP tokenizer for `sd` (`t2iguard.runtime.text.encoder_tokenizer`)."""

    def __init__(self, runner: Runner, profile: Profile, policy: Policy, weights: str,
                 audit: JsonlAuditSink | None = None, tokenizer=tokenize):
        policy = policy.for_profile(profile.name)
        self.runner, self.profile, self.policy, self.weights, self.audit = runner, profile, policy, weights, audit
        self.tokenizer = tokenizer
        self.scheduler = DDIM(schedule_of(profile))
        if "classifier" in (policy.regeneration_guidance(False), policy.regeneration_guidance(True)) \
                and not profile.trained_image_side:
            raise ValueError(f"policy asks for classifier guidance (regeneration.guidance or edit_guidance); profile "
                             f"{profile.name} has no latent guard (use sld)")
        self._concepts: dict[str, np.ndarray] = {}
        #: the empty negative prompt's encoding (the usual unconditional row), once per pipeline (one profile)
        self._empty_negative: np.ndarray | None = None
        #: calls issued together (screen + rewrite; an edit's image + transform checks): every guard's call is
        #: still awaited and its failure still fails the request (fail closed)
        self._together = ThreadPoolExecutor(max_workers=2, thread_name_prefix="t2iguard-guard")

    # --- the request ---------------------------------------------------------------------------
    def __call__(self, req: GenerateRequest) -> tuple[bytes | None, SafetyReport]:
        """Returns (PNG bytes or None when refused, report). Raises T2IGuardError on failure."""
        timings: dict[str, float] = {}
        t_start = time.perf_counter()
        # 2. Prompt guard: normalise, classify, decide (block refuses before any generation); the rewrite
        #    (step 3) is issued at the same time, since neither needs the other's output until the decision
        rewriting = self._together.submit(self._timed_call, timings, "prompt_rewrite", self.request_rewrite,
                                          req.prompt, req.seed)
        try:
            with self._timed(timings, "prompt_guard"):
                screen = self.check_prompt(req.prompt)
        finally:
            wait([rewriting])  # no call outlives its request; a failed screen fails the request as before
        report = SafetyReport(  # refused until an image passes (fail closed)
            request_id=req.request_id, decision=report_decision(screen.decision, False, None), prompt=req.prompt,
            negative_prompt=req.negative_prompt,
            normalized_prompt=screen.normalized_prompt, prompt_scores=screen.scores, prompt_flagged=screen.flagged,
            prompt_logged=screen.logged, edit=req.is_edit, seed=req.seed, steps=req.steps,
            guidance_scale=req.guidance_scale, policy_version=self.policy.version, profile=self.profile.name,
            weights=self.weights,
        )
        try:
            if screen.decision == "block":
                raise Refused(Refusal(stage="prompt", categories=screen.flagged,
                                       message=f"prompt refused by policy: {', '.join(screen.flagged)}"))
            # 3. Rewrite: diversity, anonymisation, grounding (re-screened when the policy asked for it); a failed
            #    rewrite raises here (fail closed)
            prompt, rewrites = self.rewrite_prompt(req.prompt, req.seed, screen, rewriting)
            report.rewrites = rewrites
            if rewrites:
                report.rewritten_prompt = prompt
            # 4. Encode prompt, negative prompt (unconditional) once for all attempts
            with self._timed(timings, "text_encoder"):
                cond, uncond, pooled = self.encode_prompt(prompt, req.negative_prompt)
            # 5-6. Generate, check the image, regenerate with safety guidance while flagged
            image = self.generate_checked(req, cond, uncond, pooled, report, timings)
            # 7. Watermark (the served model embeds and reads every bit back), then encode
            with self._timed(timings, "watermark"):
                marked = self.watermark(image)
            with self._timed(timings, "encode_png"):
                png = encode_png(marked)
            report.watermark = f"{METHOD}-{len(WATERMARK_BITS)}bit"
        except Refused as r:
            report.refusal, png = r.refusal, None
        last_image = report.attempts[-1].action if report.attempts else None
        report.decision = report_decision(screen.decision, bool(report.rewrites), last_image)
        timings["total"] = round((time.perf_counter() - t_start) * 1000, 1)
        report.timings_ms = timings
        return png, report

    def run(self, req: GenerateRequest) -> tuple[bytes | None, SafetyReport]:
        """`__call__` plus step 8: one audit event per request, errors included."""
        t0 = time.perf_counter()
        try:
            png, report = self(req)
        except T2IGuardError as e:
            self._audit(None, req, e.kind.kind, t0, str(e))
            raise
        self._audit(report, req, report.decision, t0)
        return png, report

    # --- steps --------------------------------------------------------------------------------
    def check_prompt(self, prompt: str) -> PromptScreen:
        """Screen the whole prompt: one row when it fits the classifier's tokens, else overlapping
        word windows in one batch, merged (max score per category; the policy decides on those)."""
        return screen_texts(self._call, [prompt], self.profile.max_batch, self.profile.seq_len, self.policy)[0]

    def request_rewrite(self, prompt: str, seed: int) -> tuple[str, list[Rewrite]]:
        """The prompt_rewrite ensemble on `prompt`: (rewritten prompt, each rewrite)."""
        out = self._call(S.PROMPT_REWRITE, {S.PROMPT: bytes_column([prompt]), S.SEED: np.array([[seed]], np.int64)},
                         [S.REWRITTEN_PROMPT, S.REWRITES])
        rewritten = bytes(out[S.REWRITTEN_PROMPT].reshape(-1)[0]).decode("utf-8")
        return rewritten, [Rewrite.model_validate(r) for r in json.loads(bytes(out[S.REWRITES].reshape(-1)[0]))]

    def rewrite_prompt(self, prompt: str, seed: int, screen: PromptScreen,
                       requested: Future | None = None) -> tuple[str, list[Rewrite]]:
        """The rewrite of `prompt` (`requested`: `request_rewrite`'s call already issued, awaited here; its
        failure raises here), re-screened when the screen asked for a rewrite and the policy for a re-screen."""
        rewritten, rewrites = requested.result() if requested is not None else self.request_rewrite(prompt, seed)
        if screen.decision == "rewrite" and self.policy.rewrite.rescreen:
            # the policy requires a rewrite and that it clear a re-screen: it must have happened and cleared it
            again = self.check_prompt(rewritten) if rewrites else screen
            if again.decision != "allow":
                raise Refused(Refusal(stage="prompt", categories=screen.flagged,
                                       message="prompt needs a rewrite for "
                                               f"{', '.join(screen.flagged)} and no rewrite cleared it"))
        return rewritten, rewrites

    def encode_prompt(self, prompt: str, negative: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """-> cond, uncond float32 [1, L, D] and the pooled prompt embedding float32 [1, D]. The empty negative
        prompt (most requests') is encoded once per pipeline and kept; any other is encoded with the prompt."""
        if negative:
            hidden, mask = self._encode([prompt, negative])
            return hidden[0:1], hidden[1:2], mean_pool(hidden[0:1], mask[0:1])
        if self._empty_negative is None:
            self._empty_negative = self._encode([""])[0][0:1]
        hidden, mask = self._encode([prompt])
        return hidden[0:1], self._empty_negative, mean_pool(hidden[0:1], mask[0:1])

    def _encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        ids, mask = self.tokenizer(texts, self.profile.seq_len)
        out = self._call(S.TEXT_ENCODER, {S.INPUT_IDS: ids, S.ATTENTION_MASK: mask}, [S.TEXT_EMBEDDINGS])
        return out[S.TEXT_EMBEDDINGS], mask

    def concept_embedding(self, categories: list[str]) -> np.ndarray:
        """The safety concept of the flagged categories, encoded: float32 [1, L, D] (cached)."""
        text = self.policy.concept_text(categories, self.profile.name) or ", ".join(categories)
        if text not in self._concepts:
            self._concepts[text] = self._encode([text])[0]
        return self._concepts[text]

    def generate_checked(self, req: GenerateRequest, cond: np.ndarray, uncond: np.ndarray, pooled: np.ndarray,
                         report: SafetyReport, timings: dict[str, float],
                         trace: list[np.ndarray] | None = None) -> np.ndarray:
        """Steps 5-6: attempt 1 unguided; while the image check says `regenerate`, try again with
        safety guidance (the policy's method; an edit's: its `edit_guidance` when set) away from everything
        flagged so far, escalating the preset
        on the request's seed (text-to-image under the policy's `fresh_noise`: on fresh seeds from the first
        regeneration), then on fresh seeds, each a function of (request seed, attempt), once at the
        flagged categories' ceiling (`guidance.regeneration_step`; edits up to the policy's `edit_ceiling`,
        each regeneration starting from the source noised to its `edit_strength`, and under the policy's
        `edit_keep_identity` repainting the mask less the source's identity region: `keep_identity`). An edit's
        source is encoded once for all attempts (`prepare_inpaint_condition`); a text-to-image request's first
        steps are kept for an SLD regeneration on its seed, which skips what they already computed (`Retrace`).
        Under the policy's `keep_subject` a regeneration that left a blank image where attempt 1 held an object
        (`subject_lost`) is not delivered: the loop goes on as if it were flagged.
        `trace`, when given, receives every attempt's image (evaluation only: they never leave the server)."""
        regen = self.policy.regeneration
        inpaint = self.prepare_inpaint_condition(req)
        regen_req, regen_inpaint = req, inpaint  # what regenerations repaint: the request's mask, or less
        flagged_so_far: list[str] = []
        retrace = self.retrace_for(req)
        first_held_object: bool | None = None  # attempt 1's image holds an object (asked once, at attempt 2)
        for attempt in range(1, regen.max_attempts + 2):
            t0 = time.perf_counter()
            guidance, seed, target, target_inpaint = None, req.seed, req, inpaint
            if attempt > 1:
                if attempt == 2 and req.is_edit and regen.edit_keep_identity is not None:
                    regen_req, regen_inpaint = self.keep_identity(req, inpaint)
                start, ceiling = self.policy.regeneration_ladder(flagged_so_far, req.is_edit)
                method = self.policy.regeneration_guidance(req.is_edit)
                preset, seed = regeneration_step(method, start, ceiling, attempt - 2, req.seed,
                                                 regen.fresh_noise and not req.is_edit)
                guidance = Guidance(method, preset, flagged_so_far,
                                    regen.edit_strength if req.is_edit else 1.0, regen_req is not req)
                target, target_inpaint = regen_req, regen_inpaint
            reuse = retrace if guidance is not None and guidance.method == "sld" and seed == req.seed else None
            with self._timed(timings, "generate" if attempt == 1 else f"regenerate_{attempt - 1}"):
                image = self.generate(replace(target, seed=seed), cond, uncond, guidance, target_inpaint,
                                      record=retrace if attempt == 1 else None, resume=reuse)
            if trace is not None:
                trace.append(image)
            with self._timed(timings, "image_guard" if attempt == 1 else f"image_guard_{attempt - 1}"):
                scores, tscores, nude = self.check_image(image, req, pooled)
            decision = self.policy.decide_image({**scores, **(tscores or {})}, first_attempt=attempt == 1)
            lost = False
            if attempt == 1:
                first_image = image
            elif decision.action == "pass" and regen.keep_subject:
                if first_held_object is None:
                    first_held_object = bool(object_groups(first_image)[1])
                lost = first_held_object and not object_groups(image)[1]
            report.attempts.append(Attempt(
                attempt=attempt, guidance=guidance.label if guidance else None, seed=seed, image_scores=scores,
                transform_scores=tscores, detector_scores=nude, flagged=decision.flagged,
                action="regenerate" if lost else decision.action, subject_lost=lost,
                ms=round((time.perf_counter() - t0) * 1000, 1)))
            report.image_logged = decision.logged
            if decision.action == "pass" and not lost:
                return image
            if decision.action == "block":
                raise Refused(Refusal(stage="image", categories=decision.flagged,
                                       message=f"image refused by policy: {', '.join(decision.flagged)}"))
            flagged_so_far = sorted(set(flagged_so_far) | set(decision.flagged))
        subject = " (the last regeneration lost the prompt's subject)" if report.attempts[-1].subject_lost else ""
        raise Refused(Refusal(stage="image", categories=flagged_so_far,
                               message=f"image still flagged after {len(report.attempts)} attempts: "
                                       f"{', '.join(flagged_so_far)}{subject}"))

    def retrace_for(self, req: GenerateRequest) -> Retrace | None:
        """What attempt 1 of `req` keeps for its regenerations: a text-to-image request whose regenerations run
        SLD on its own seed keeps as many steps as the longest SLD warm-up (the policy's `sld_warmup` included);
        None otherwise."""
        regen = self.policy.regeneration
        if req.is_edit or regen.fresh_noise or regen.max_attempts == 0 \
                or self.policy.regeneration_guidance(False) != "sld":
            return None
        return Retrace(max(sld_warmup(p, req.steps, regen.sld_warmup.get(p)) for p in SLD_PRESETS))

    def generate(self, req: GenerateRequest, cond: np.ndarray, uncond: np.ndarray,
                 guidance: Guidance | None = None, inpaint: InpaintCondition | None = None,
                 record: Retrace | None = None, resume: Retrace | None = None) -> np.ndarray:
        """One image from `req.seed`: seeded latents, the guided DDIM loop, the decoder; uint8 [H, W, 3].

        cond, uncond: float32 [1, L, D] (`encode_prompt`). `guidance` (None: plain classifier-free guidance)
        adds safety guidance (`prepare_guidance`) and, for edits, the strength to start from. `inpaint`:
        the request's `prepare_inpaint_condition`, computed here when not given (pass it to reuse an
        edit's encoded source across attempts). Edits re-impose the noised source outside the mask each step;
        pixels outside the mask are the source's exactly. Text-to-image only: `record` keeps this unguided
        generation's first steps; `resume` (what an unguided generation of the same request kept) lets SLD
        start after its warm-up (`resume_warmup`)."""
        if inpaint is None:
            inpaint = self.prepare_inpaint_condition(req)
        strength = guidance.strength if guidance is not None else 1.0
        latents, source_noise, timesteps = self.prepare_latents(req, inpaint, strength)
        guide = self.prepare_guidance(req, cond, uncond, guidance)
        first = 0
        if resume is not None and guide.sld is not None and not req.is_edit and resume.covers(guide.sld.warmup):
            first = self.resume_warmup(resume, guide, timesteps, inpaint)
            latents = resume.latents[first]
        # i: the step of the full schedule
        for i, t in enumerate(timesteps.tolist()[first:], start=req.steps - len(timesteps) + first):
            latents = self.denoise_step(latents, t, i, req.steps, guide, inpaint, record)
            if req.is_edit:
                latents = self.keep_source(latents, t, inpaint, source_noise, req.steps)
        return self.decode_latents(latents, req)

    def prepare_inpaint_condition(self, req: GenerateRequest) -> InpaintCondition:
        """What the UNet and the edit's blending read, once per request (the edit's source is VAE-encoded
        here, and only here). See `InpaintCondition` for shapes."""
        p = self.profile
        h = p.latent_size
        if not p.inpaint_channels:
            return InpaintCondition(unet=None)
        if not req.is_edit:
            return InpaintCondition(unet=np.concatenate([np.zeros((1, p.latent_channels, h, h), np.float32),
                                                         np.ones((1, 1, h, h), np.float32)], axis=1))
        source = self._call(S.VAE_ENCODER, {S.PIXELS: to_pixels(req.init_image[None])}, [S.LATENTS])[S.LATENTS]
        mask = downsample_mask(req.mask, p.vae_factor)[None, None]
        unet = np.concatenate([source, mask], axis=1).astype(np.float32)
        return InpaintCondition(unet=unet, source=unet[:, :p.latent_channels], keep=1.0 - mask)

    def keep_identity(self, req: GenerateRequest, inpaint: InpaintCondition
                      ) -> tuple[GenerateRequest, InpaintCondition]:
        """An edit's regenerations under the policy's `edit_keep_identity`: the request with its mask less the
        source's identity region (`identity_region`), and the inpainting condition of that mask (the source
        latent as encoded once). Pixels of the region stay the source's exactly (`decode_latents`); latent
        cells wholly inside it are re-imposed from the source each step (`keep_source`). When the region is
        empty, or is the whole mask, the request and its condition come back unchanged."""
        rule = self.policy.regeneration.edit_keep_identity
        region = identity_region(req.init_image, req.mask, rule.colours, rule.tolerance, rule.grow)
        mask = req.mask * (1.0 - region)
        if not region.any() or not mask.any():
            return req, inpaint
        latent_mask = downsample_mask(mask, self.profile.vae_factor)[None, None]
        unet = np.concatenate([inpaint.source, latent_mask], axis=1).astype(np.float32)
        return replace(req, mask=mask), InpaintCondition(unet=unet, source=inpaint.source, keep=1.0 - latent_mask)

    def prepare_latents(self, req: GenerateRequest, inpaint: InpaintCondition, strength: float = 1.0
                        ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """-> (latents, source noise, timesteps), all drawn from `np.random.default_rng(req.seed)` in this order:

        latents: float32 [1, C, h, w] ~ N(0, 1), the starting point; source noise: float32 [1, C, h, w], for
        edits the noise that re-noises the source to each step (None for text-to-image); timesteps: int64 [k],
        descending, the whole schedule of `req.steps`, or for an edit at `strength` < 1 its last
        `strength_steps(strength, steps)` with the latents the source noised to the first of them (SDEdit,
        diffusers' inpainting `strength`)."""
        p = self.profile
        rng = np.random.default_rng(req.seed)
        shape = (1, p.latent_channels, p.latent_size, p.latent_size)
        latents = rng.standard_normal(shape).astype(np.float32)
        source_noise = rng.standard_normal(shape).astype(np.float32) if req.is_edit else None
        timesteps = self.scheduler.timesteps(req.steps)
        if req.is_edit and strength < 1.0:
            timesteps = timesteps[len(timesteps) - strength_steps(strength, len(timesteps)):]
            latents = self.scheduler.add_noise(inpaint.source, latents, int(timesteps[0]))
        return latents, source_noise, timesteps

    def prepare_guidance(self, req: GenerateRequest, cond: np.ndarray, uncond: np.ndarray,
                         guidance: Guidance | None) -> GuidanceState:
        """One generation's guidance: the UNet's text rows and what steers them (see `GuidanceState`)."""
        if guidance is not None and guidance.method == "sld":
            concept = self.concept_embedding(guidance.categories)
            return GuidanceState(np.concatenate([uncond, cond, concept], axis=0), req.guidance_scale,
                                 sld=SLDGuidance(guidance.preset, req.steps,
                                                 self.policy.regeneration.sld_warmup.get(guidance.preset)))
        if guidance is not None and guidance.method == "classifier":
            weights = np.array([[float(c in guidance.categories) for c in GUIDED_CLASSES]], np.float32)
            return GuidanceState(np.concatenate([uncond, cond], axis=0), req.guidance_scale,
                                 classifier_weights=weights, classifier_preset=guidance.preset)
        return GuidanceState(np.concatenate([uncond, cond], axis=0), req.guidance_scale)

    def resume_warmup(self, kept: Retrace, guide: GuidanceState, timesteps: np.ndarray,
                      inpaint: InpaintCondition) -> int:
        """SLD's warm-up of a text-to-image generation that retraces `kept` (its unguided attempt on the same seed
        and text rows): one UNet batch of the safety-concept row at each warm-up step's kept latents, which feeds
        SLD's momentum with the kept unconditional and prompt rows. Returns the warm-up's length, the step
        the generation goes on from (at `kept.latents` of it)."""
        w = guide.sld.warmup
        if w == 0:
            return 0
        unet_in = {S.SAMPLE: np.concatenate(kept.latents[:w]),
                   S.TIMESTEP: timesteps[:w].astype(np.float32)[:, None],
                   S.ENCODER_HIDDEN_STATES: np.repeat(guide.context[2:3], w, axis=0)}
        if inpaint.unet is not None:
            unet_in[S.INPAINT_COND] = np.repeat(inpaint.unet, w, axis=0)
        concept = self._call(S.UNET, unet_in, [S.NOISE_PRED])[S.NOISE_PRED]
        for i, t in enumerate(timesteps[:w].tolist()):
            pred = kept.preds[i]
            guide.sld(i, pred[0:1], pred[1:2], concept[i:i + 1], guide.scale, self.scheduler.eps_per_output(t))
        return w

    def denoise_step(self, latents: np.ndarray, t: int, step: int, num_steps: int, guide: GuidanceState,
                     inpaint: InpaintCondition, record: Retrace | None = None) -> np.ndarray:
        """x_t -> x_{t-1}: float32 [1, C, h, w] at timestep `t`, `step` of the full schedule of `num_steps`
        (SLD's warm-up counts it). One UNet batch of the guidance's rows (eps or v, the profile's prediction
        type), guided (CFG, or SLD on its concept row), shifted along the latent guard's gradient for
        classifier guidance, and one DDIM update. Guidance stated on eps reads v through
        `scheduler.eps_per_output(t)`. `record` keeps the step (`Retrace.keep`)."""
        n = guide.context.shape[0]
        unet_in = {S.SAMPLE: np.repeat(latents, n, axis=0), S.TIMESTEP: np.full((n, 1), t, np.float32),
                   S.ENCODER_HIDDEN_STATES: guide.context}
        if inpaint.unet is not None:
            unet_in[S.INPAINT_COND] = np.repeat(inpaint.unet, n, axis=0)
        pred = self._call(S.UNET, unet_in, [S.NOISE_PRED])[S.NOISE_PRED]
        if record is not None:
            record.keep(step, latents, pred)
        per_output = self.scheduler.eps_per_output(t)
        if guide.sld is not None:
            guided = guide.sld(step, pred[0:1], pred[1:2], pred[2:3], guide.scale, per_output)
        else:
            guided = cfg(pred[0:1], pred[1:2], guide.scale)
        if guide.classifier_weights is not None and per_output > 0.0:  # at zero SNR x_t is pure noise: nothing to steer
            grad = self._call(S.LATENT_GUARD, {S.SAMPLE: latents, S.TIMESTEP: np.full((1, 1), t, np.float32),
                                               S.INPAINT_COND: inpaint.unet, S.GUIDE_WEIGHTS: guide.classifier_weights},
                              [S.GUIDE_GRADIENT])[S.GUIDE_GRADIENT]
            guided = classifier_guided(guided, grad, float(self.scheduler.alphas_cumprod[t]),
                                       guide.classifier_preset, per_output)
        return self.scheduler.step(guided, t, latents, num_steps)


    def keep_source(self, latents: np.ndarray, t: int, inpaint: InpaintCondition, source_noise: np.ndarray,
                    num_steps: int) -> np.ndarray:
        """Edits, after the step from `t`: outside the mask, the source latent noised to the next timestep
        (the source itself after the last); float32 [1, C, h, w]."""
        t_prev = t - self.scheduler.config.num_train_timesteps // num_steps
        known = inpaint.source if t_prev < 0 else self.scheduler.add_noise(inpaint.source, source_noise, t_prev)
        return (inpaint.keep * known + (1.0 - inpaint.keep) * latents).astype(np.float32)

    def decode_latents(self, latents: np.ndarray, req: GenerateRequest) -> np.ndarray:
        """float32 [1, C, h, w] -> uint8 [H, W, 3]; for edits the edit decoder, and outside the mask the
        source's pixels exactly."""
        decoder = S.VAE_EDIT_DECODER if req.is_edit else S.VAE_DECODER  # edits exist only where it is served
        pixels = self._call(decoder, {S.LATENTS: latents}, [S.PIXELS])[S.PIXELS]
        image = from_pixels(pixels)[0]
        if req.is_edit:
            image = np.where(req.mask[..., None] > 0, image, req.init_image)
        return image

    def check_image(self, image: np.ndarray, req: GenerateRequest, pooled: np.ndarray
                    ) -> tuple[dict[str, float], dict[str, float] | None, dict[str, float] | None]:
        """image_guard scores per category (with NudeNet's classes, when built with it, fused into `nudity`
        as the policy's `image.nudity_fusion` says), each the largest over the policy's views of the image
        (`image.views`: `objects` adds each group of objects that stands apart alone, `object_views`; the views go
        in as few image_guard calls as its batch bound allows, one for most images); the detector's classes
        (largest over the views); for edits the transform classifier's classes."""
        detector = self.profile.nude_detector
        views = object_views(image) if self.policy.image.views == "objects" else image[None]
        # an edit's transform check is issued alongside the image guard; both are awaited, either failure raises
        transform = self._together.submit(self.check_transform, image, req, pooled) if req.is_edit else None
        try:
            scored = score_images(self._call, views, self.profile.max_batch, detector)  # image_guard's batch bound
        finally:
            if transform is not None:
                wait([transform])
        fused = [self.policy.fuse_image_scores(s, n) for s, n in scored]
        scores = {c: max(f[c] for f in fused) for c in fused[0]}
        nude = {c: max(n[c] for _, n in scored) for c in scored[0][1]} if detector else None
        return scores, (transform.result() if transform is not None else None), nude

    def check_transform(self, image: np.ndarray, req: GenerateRequest, pooled: np.ndarray) -> dict[str, float]:
        """An edit's transform classifier: (source, prompt, edited image) -> a probability per TRANSFORM_CLASSES."""
        px = self._call(S.IMAGE_PREPROCESS, {S.IMAGE: np.stack([req.init_image, image])},
                        [S.CLASSIFIER_PIXELS])[S.CLASSIFIER_PIXELS]
        probs = self._call(S.TRANSFORM_CLASSIFIER, {S.SOURCE_PIXELS: px[0:1], S.EDITED_PIXELS: px[1:2],
                                                    S.PROMPT_EMBEDDING: pooled}, [S.TRANSFORM_PROBS])
        row = probs[S.TRANSFORM_PROBS][0]
        return {c: round(float(s), 4) for c, s in zip(TRANSFORM_CLASSES, row, strict=True)}

    def watermark(self, image: np.ndarray) -> np.ndarray:
        return self._call(S.WATERMARK, {S.IMAGE: image[None]}, [S.WATERMARKED_IMAGE])[S.WATERMARKED_IMAGE][0]

    # --- plumbing -----------------------------------------------------------------------------
    def _call(self, model: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        try:
            out = self.runner.infer(model, inputs, outputs)
        except ModelCallError as e:
            if e.status == "INVALID_ARG" and model in (S.PROMPT_GUARD, S.PROMPT_REWRITE):
                raise InvalidInput(str(e)) from e
            if e.status == "UNAVAILABLE":  # the called model is overloaded (no image either way): report overload
                raise Overloaded(f"{model} is overloaded, no image returned (retry later): {e}") from e
            if model in GUARD_MODELS:
                raise GuardFailure(f"safety component {model} failed, no image returned (fail closed): {e}") from e
            raise T2IGuardError(f"{model} failed: {e}") from e
        missing = [k for k in outputs if k not in out or out[k] is None]
        if missing:
            err = GuardFailure if model in GUARD_MODELS else T2IGuardError
            raise err(f"{model} returned no {', '.join(missing)} (fail closed)")
        return out

    def _timed_call(self, timings: dict[str, float], name: str, fn, *args):
        with self._timed(timings, name):
            return fn(*args)

    @contextmanager
    def _timed(self, timings: dict[str, float], name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            timings[name] = round((time.perf_counter() - t0) * 1000, 1)

    def _audit(self, report: SafetyReport | None, req: GenerateRequest, outcome: str, t0: float,
               error: str | None = None) -> None:
        if self.audit is not None:
            self.audit.write(audit_event(report, request_id=req.request_id, client=req.client, outcome=outcome,
                                         latency_ms=(time.perf_counter() - t0) * 1000, error=error,
                                         prompt=self.policy.audit.prompt))
