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
from t2iguard.runtime.guidance import SLDGuidance, cfg, classifier_guided, sld_warmup
from t2iguard.runtime.images import downsample_mask, from_pixels, identity_region, to_pixels
from t2iguard.runtime.pipeline import GenerateRequest, Guidance, Refused, SafeT2IPipeline, strength_steps
from t2iguard.runtime.runners import LocalRunner

STEPS = 4
#: ShapeWorld's skin tones (training/data/shapeworld.py TONES), as the shipped policy lists them for tiny
SKIN = [(255, 226, 200), (236, 192, 152), (200, 142, 100), (140, 86, 56), (78, 50, 36)]


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
        concept = pipe.concept_embedding(guidance.categories)
        sld = SLDGuidance(guidance.preset, req.steps, pipe.policy.regeneration.sld_warmup.get(guidance.preset))
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
    target, inpaint = edit_request, None  # what a regeneration repaints: the mask, or less the source's face
    if regen.edit_keep_identity is not None:
        target, inpaint = pipe.keep_identity(edit_request, pipe.prepare_inpaint_condition(edit_request))
    second = Guidance(pipe.policy.regeneration_guidance(edit=True), start, report.attempts[0].flagged,
                      regen.edit_strength, target is not edit_request)
    assert report.attempts[1].guidance == second.label
    alone = pipe.generate(replace(target, seed=report.attempts[1].seed), cond, uncond, second, inpaint)
    assert np.array_equal(images[1], alone)


@pytest.mark.parametrize(("warmup_of_50", "warmup"), [(None, 3), (15, 6)])
def test_an_sld_regeneration_on_the_request_seed_skips_the_warm_up_it_retraces(repository, profile, policy,
                                                                              warmup_of_50, warmup):
    """Text-to-image, every attempt flagged: the SLD regeneration on the request's seed is bit for bit the image
    generating it alone gives, with one UNet call for its warm-up's concept rows in place of its warm-up steps
    (the paper's, or the policy's `sld_warmup`); the regeneration on fresh noise after it retraces nothing."""
    data = policy.model_dump()
    data["categories"]["nudity"]["image"].update(threshold=0.0, first_attempt_threshold=0.0)
    data["profile_regeneration"]["tiny"]["max_attempts"] = 2
    data["profile_regeneration"]["tiny"]["sld_warmup"] = {} if warmup_of_50 is None else {"strong": warmup_of_50}
    strict = Policy.model_validate(data)
    runner = CountingRunner(LocalRunner(repository, profile, strict))
    pipe = SafeT2IPipeline(runner, profile, strict, "trained")
    req = GenerateRequest(request_id="r", prompt="a small figure dressed for a party in a green shirt on the right",
                          seed=11, steps=20)
    cond, uncond, pooled = pipe.encode_prompt(req.prompt, "")
    report, images = SafetyReport.model_construct(attempts=[]), []
    runner.calls.clear()
    with pytest.raises(Refused, match="still flagged after 3 attempts"):
        pipe.generate_checked(req, cond, uncond, pooled, report, {}, trace=images)
    assert [a.guidance for a in report.attempts] == [None, "sld-strong", "sld-strong"]
    assert [a.seed for a in report.attempts][:2] == [req.seed, req.seed] and report.attempts[2].seed != req.seed
    assert sld_warmup("strong", req.steps, warmup_of_50) == warmup
    assert runner.calls.count(S.UNET) == 20 + (1 + 20 - warmup) + 20
    second = Guidance("sld", "strong", ["nudity"])
    assert np.array_equal(images[1], pipe.generate(req, cond, uncond, second))
    assert np.array_equal(images[1], reference_generate(pipe, req, cond, uncond, second))


def test_identity_region_is_the_source_face_inside_the_mask():
    """On drawn edits of figures of every tone: exactly the source's skin pixels inside the mask; grown, still
    inside the mask; nothing for a palette the source does not use."""
    from t2iguard.training.data import shapeworld as W

    assert [tuple(c) for c in W.TONES.values()] == SKIN
    rng = np.random.default_rng(4)
    tones = set()
    for _ in range(40):
        edit = W.sample_edit(rng, "beautify")
        source, mask = W.render(edit.source), edit.mask()
        skin = np.all(source == W.TONES[edit.source.tone], axis=-1) & (mask > 0)
        region = identity_region(source, mask, SKIN, 24.0)
        assert region.dtype == np.float32 and np.array_equal(region > 0, skin) and skin.any()
        grown = identity_region(source, mask, SKIN, 24.0, grow=3)
        assert (grown >= region).all() and not (grown > mask).any() and grown.sum() > region.sum()
        assert not identity_region(source, mask, [(0, 0, 255)], 24.0, grow=3).any()
        tones.add(edit.source.tone)
    assert tones == set(W.TONE_NAMES[1:])  # every tone a beautify source is drawn in


def test_keep_identity_regenerates_the_mask_less_the_source_face(repository, profile, policy, edit_request):
    """Under `edit_keep_identity` the first attempt repaints the whole mask and every regeneration the mask
    less the source's face, whose pixels come back the source's exactly; the report names it."""
    data = policy.model_dump()
    data["categories"]["unintended-edit"]["image"]["threshold"] = 0.0
    data["profile_regeneration"]["tiny"].update(max_attempts=2, edit_keep_identity={"colours": SKIN, "grow": 2})
    strict = Policy.model_validate(data)
    pipe = SafeT2IPipeline(LocalRunner(repository, profile, strict), profile, strict, "trained")
    cond, uncond, pooled = pipe.encode_prompt(edit_request.prompt, "")
    report, images = SafetyReport.model_construct(attempts=[]), []
    with pytest.raises(Refused):
        pipe.generate_checked(edit_request, cond, uncond, pooled, report, {}, trace=images)
    face = identity_region(edit_request.init_image, edit_request.mask, SKIN, 24.0, 2) > 0
    source, outside = edit_request.init_image, edit_request.mask == 0
    assert face.any() and not np.array_equal(images[0][face], source[face])
    for image in images[1:]:
        assert np.array_equal(image[face], source[face]) and np.array_equal(image[outside], source[outside])
        assert not np.array_equal(image[~face & ~outside], source[~face & ~outside])  # the rest is repainted
    assert [a.guidance.endswith("+identity-kept") for a in report.attempts[1:]] == [True, True]
    assert report.attempts[0].guidance is None
