"""`SafeT2IPipeline.generate` split the diffusers way (prepare_inpaint_condition, prepare_latents,
prepare_guidance, denoise_step, keep_source, decode_latents) draws exactly what the one-loop generate drew,
and an edit's source is VAE-encoded once per request however many attempts it takes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from t2iguard.contract import specs as S
from t2iguard.contract.policy import Policy
from t2iguard.contract.report import SafetyReport
from t2iguard.contract.taxonomy import GUIDED_CLASSES
from t2iguard.runtime.guidance import SLDGuidance, cfg, classifier_guided
from t2iguard.runtime.images import downsample_mask, from_pixels, to_pixels
from t2iguard.runtime.pipeline import GenerateRequest, Guidance, Refused, SafeT2IPipeline, strength_steps
from t2iguard.runtime.runners import LocalRunner

STEPS = 4


def reference_generate(pipe: SafeT2IPipeline, req: GenerateRequest, cond, uncond, guidance=None) -> np.ndarray:
    """The generate this refactoring replaced, as one straightforward loop (kept verbatim in substance)."""
    p, sch = pipe.profile, pipe.scheduler
    rng = np.random.default_rng(req.seed)
    latents = rng.standard_normal((1, p.latent_channels, p.latent_size, p.latent_size)).astype(np.float32)
    h = p.latent_size
    if not req.is_edit:
        inpaint = np.concatenate([np.zeros((1, p.latent_channels, h, h), np.float32),
                                  np.ones((1, 1, h, h), np.float32)], axis=1)
    else:
        source = pipe.runner.infer(S.VAE_ENCODER, {S.PIXELS: to_pixels(req.init_image[None])}, [S.LATENTS])[S.LATENTS]
        mask = downsample_mask(req.mask, p.vae_factor)[None, None]
        inpaint = np.concatenate([source, mask], axis=1).astype(np.float32)
    sld = concept = weights = None
    if guidance is not None and guidance.method == "sld":
        concept, sld = pipe.concept_embedding(guidance.categories), SLDGuidance(guidance.preset, req.steps)
    elif guidance is not None and guidance.method == "classifier":
        weights = np.array([[float(c in guidance.categories) for c in GUIDED_CLASSES]], np.float32)
    context = np.concatenate([uncond, cond] + ([concept] if concept is not None else []), axis=0)
    timesteps = sch.timesteps(req.steps)
    if req.is_edit:
        source, source_noise = inpaint[:, :p.latent_channels], rng.standard_normal(latents.shape).astype(np.float32)
        keep = 1.0 - downsample_mask(req.mask, p.vae_factor)[None, None]
        if guidance is not None and guidance.strength < 1.0:
            timesteps = timesteps[len(timesteps) - strength_steps(guidance.strength, len(timesteps)):]
            latents = sch.add_noise(source, latents, int(timesteps[0]))
    n = context.shape[0]
    stride = sch.config.num_train_timesteps // req.steps
    for i, t in enumerate(timesteps, start=req.steps - len(timesteps)):
        unet_in = {S.SAMPLE: np.repeat(latents, n, axis=0), S.TIMESTEP: np.full((n, 1), t, np.float32),
                   S.ENCODER_HIDDEN_STATES: context, S.INPAINT_COND: np.repeat(inpaint, n, axis=0)}
        pred = pipe.runner.infer(S.UNET, unet_in, [S.NOISE_PRED])[S.NOISE_PRED]
        per_output = sch.eps_per_output(int(t))
        if sld is not None:
            guided = sld(i, pred[0:1], pred[1:2], pred[2:3], req.guidance_scale, per_output)
        else:
            guided = cfg(pred[0:1], pred[1:2], req.guidance_scale)
        if weights is not None and per_output > 0.0:
            grad = pipe.runner.infer(S.LATENT_GUARD, {S.SAMPLE: latents, S.TIMESTEP: np.full((1, 1), t, np.float32),
                                                      S.INPAINT_COND: inpaint, S.GUIDE_WEIGHTS: weights},
                                     [S.GUIDE_GRADIENT])[S.GUIDE_GRADIENT]
            guided = classifier_guided(guided, grad, float(sch.alphas_cumprod[int(t)]), guidance.preset, per_output)
        latents = sch.step(guided, int(t), latents, req.steps)
        if req.is_edit:
            t_prev = int(t) - stride
            known = source if t_prev < 0 else sch.add_noise(source, source_noise, t_prev)
            latents = (keep * known + (1.0 - keep) * latents).astype(np.float32)
    decoder = S.VAE_EDIT_DECODER if req.is_edit else S.VAE_DECODER
    image = from_pixels(pipe.runner.infer(decoder, {S.LATENTS: latents}, [S.PIXELS])[S.PIXELS])[0]
    return np.where(req.mask[..., None] > 0, image, req.init_image) if req.is_edit else image


class CountingRunner:
    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def infer(self, model, inputs, outputs):
        self.calls.append(model)
        return self.inner.infer(model, inputs, outputs)


@pytest.fixture(scope="module")
def edit_request():
    from t2iguard.evaluation.regeneration import edit_requests

    (req, _), = edit_requests(1, seed=321)
    return replace(req, steps=STEPS, seed=7)


T2I_CASES = [None, Guidance("sld", "strong", ["nudity", "violence/graphic"]), Guidance("sld", "max", ["nudity"]),
             Guidance("classifier", "strong", ["nudity"])]
EDIT_CASES = [None, Guidance("classifier", "medium", ["unintended-edit"], 0.9),
              Guidance("sld", "strong", ["unsafe-edit"]), Guidance("reseed", None, [], 0.5)]


@pytest.mark.parametrize("schedule", ["trained", "v-prediction"])
def test_generate_draws_what_the_one_loop_generate_drew(repository, profile, policy, edit_request, schedule):
    """Bit for bit, text-to-image and edits, every guidance method, on the trained schedule and on a
    v-predicting zero-terminal-SNR one (where classifier guidance skips the pure-noise step)."""
    if schedule == "v-prediction":
        profile = replace(profile, prediction_type="v_prediction", zero_terminal_snr=True,
                          timestep_spacing="trailing")
    pipe = SafeT2IPipeline(LocalRunner(repository, profile, policy), profile, policy, "trained")
    t2i = GenerateRequest(request_id="r", prompt="a red circle on the left, sky background", seed=5, steps=STEPS)
    for req, cases in ((t2i, T2I_CASES), (edit_request, EDIT_CASES)):
        cond, uncond, _ = pipe.encode_prompt(req.prompt, req.negative_prompt)
        for guidance in cases:
            image = pipe.generate(req, cond, uncond, guidance)
            assert image.dtype == np.uint8 and image.shape == (profile.image_size, profile.image_size, 3)
            assert np.array_equal(image, reference_generate(pipe, req, cond, uncond, guidance)), guidance


def test_an_edit_encodes_its_source_once_however_many_attempts(repository, profile, policy, edit_request):
    """Every attempt flagged (threshold 0): 3 attempts, one VAE encoder call; each attempt's image is what
    generating it alone (its own encoding) gives."""
    data = policy.model_dump()
    data["categories"]["unintended-edit"]["image"]["threshold"] = 0.0
    data["regeneration"]["max_attempts"] = 2
    strict = Policy.model_validate(data)
    runner = CountingRunner(LocalRunner(repository, profile, strict))
    pipe = SafeT2IPipeline(runner, profile, strict, "trained")
    cond, uncond, pooled = pipe.encode_prompt(edit_request.prompt, "")
    report, images = SafetyReport.model_construct(attempts=[]), []
    runner.calls.clear()
    with pytest.raises(Refused, match="still flagged after 3 attempts"):
        pipe.generate_checked(edit_request, cond, uncond, pooled, report, {}, trace=images)
    assert runner.calls.count(S.VAE_ENCODER) == 1 and len(images) == 3
    assert runner.calls.count(S.VAE_EDIT_DECODER) == 3
    regen = pipe.policy.regeneration
    start, _ = pipe.policy.regeneration_ladder(report.attempts[0].flagged, edit=True)
    second = Guidance(regen.guidance, start, report.attempts[0].flagged, regen.edit_strength)
    assert report.attempts[1].guidance == second.label
    alone = pipe.generate(replace(edit_request, seed=report.attempts[1].seed), cond, uncond, second)
    assert np.array_equal(images[1], alone)
