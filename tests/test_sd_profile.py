"""The `sd` profile family end to end with tiny random configurations of the very same classes
(UNet2DConditionModel, AutoencoderKL, CLIPTextModel + CLIPTokenizer, StableDiffusionSafetyChecker)
saved in Hugging Face layout: loading, export (parity-checked by the build), rendering and serving
are the production code; only the sizes are small."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from t2iguard.contract.profiles import load_profile
from t2iguard.contract.taxonomy import NUDE_CLASSES
from t2iguard.export.sd import profile_from_weights
from t2iguard.runtime.images import encode_png
from t2iguard.triton.server import TritonServer, free_ports

LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789,.'"


def write_checkpoint(root: Path) -> Path:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    UNet2DConditionModel(
        sample_size=32, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8).save_pretrained(root / "unet")
    AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, down_block_types=("DownEncoderBlock2D",) * 4,
                  up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
                  norm_num_groups=4, sample_size=256).save_pretrained(root / "vae")
    vocab = ["<|startoftext|>", "<|endoftext|>"] + [c for ch in LETTERS for c in (ch, ch + "</w>")]
    tok_dir = root / "tok-src"
    tok_dir.mkdir()
    (tok_dir / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (tok_dir / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"),
                  model_max_length=77).save_pretrained(root / "tokenizer")
    CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                 num_attention_heads=4, max_position_embeddings=77, bos_token_id=0,
                                 eos_token_id=1, pad_token_id=1)).save_pretrained(root / "text_encoder")
    config = CLIPConfig(text_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1,
                                     "num_attention_heads": 4},
                        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                                       "num_attention_heads": 4, "image_size": 224, "patch_size": 32},
                        projection_dim=16)
    checker = StableDiffusionSafetyChecker(config)
    with torch.no_grad():  # the checkpoint's concept embeddings are learned; ones would make every score equal
        checker.concept_embeds.normal_()
        checker.special_care_embeds.normal_()
        checker.concept_embeds_weights.fill_(0.5)
        checker.special_care_embeds_weights.fill_(0.5)
    checker.save_pretrained(root / "safety_checker")
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("sd-tiny-random"))


@pytest.fixture(scope="module")
def sd_repository(checkpoint, tmp_path_factory) -> Path:
    from t2iguard.export.build import build_repository
    from t2iguard.export.nudenet import installed_detector

    out = tmp_path_factory.mktemp("sd-repo")
    result = build_repository("sd15", "cpu", out, weights=checkpoint, nudenet=installed_detector())
    assert set(result.parity) >= {"unet", "vae_decoder", "text_encoder", "image_classifier", "nude_detector"}
    return result.path


def test_profile_is_sized_from_the_checkpoint(checkpoint):
    p = profile_from_weights("sd15", checkpoint)
    assert (p.family, p.text_dim, p.image_size, p.vae_factor, p.latent_size) == ("sd", 32, 256, 8, 32)
    assert (p.classifier_size, p.embed_dim, p.inpaint_channels, p.trained_image_side) == (224, 16, 0, False)
    turbo = profile_from_weights("sd-turbo", checkpoint)
    assert (turbo.default_steps, turbo.default_guidance, turbo.timestep_spacing) == (1, 0.0, "trailing")
    with pytest.raises(ValueError, match="not a Hugging Face-layout checkpoint: unet/config.json is missing"):
        profile_from_weights("sd15", checkpoint / "vae")


def test_the_checkpoint_scheduler_config_sets_the_schedule(checkpoint, tmp_path):
    """A v-predicting zero-terminal-SNR checkpoint (as SD 2.x, rescaled) is sampled as such; betas the DDIM
    here does not implement are a named error, not a wrong image."""
    import shutil

    from diffusers import DDIMScheduler

    root = tmp_path / "ckpt"
    shutil.copytree(checkpoint, root)
    DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction_type="v_prediction",
                  rescale_betas_zero_snr=True, timestep_spacing="trailing").save_pretrained(root / "scheduler")
    p = profile_from_weights("sd15", root)
    assert (p.prediction_type, p.zero_terminal_snr, p.timestep_spacing) == ("v_prediction", True, "trailing")
    assert p.default_steps == 30  # request defaults stay the kind's
    DDIMScheduler(beta_schedule="linear").save_pretrained(root / "scheduler")
    with pytest.raises(ValueError, match="`beta_schedule` is 'linear'"):
        profile_from_weights("sd15", root)
    DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction_type="sample"
                  ).save_pretrained(root / "scheduler")
    with pytest.raises(ValueError, match="prediction_type 'sample'"):
        profile_from_weights("sd15", root)
    DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                  rescale_betas_zero_snr=True).save_pretrained(root / "scheduler")  # eps at zero SNR: NaN at t = T
    with pytest.raises(ValueError, match="zero_terminal_snr needs prediction_type v_prediction"):
        profile_from_weights("sd15", root)


def test_sd_repository_serves_text_to_image_through_triton(sd_repository):
    from t2iguard.client import SafeT2IClient
    from t2iguard.contract.errors import InvalidInput

    profile = load_profile(sd_repository, "sd15")
    assert profile.family == "sd" and profile.nude_detector and not (sd_repository / "latent_guard").exists()
    assert (sd_repository / "text_encoder" / "1" / "tokenizer" / "tokenizer_config.json").exists()
    with TritonServer(sd_repository, free_ports()) as server, SafeT2IClient(server.grpc_url) as client:
        res = client.generate("a red circle on a blue background", seed=1, steps=2)
        assert res.report.profile == "sd15" and res.report.steps == 2 and res.report.attempts
        first = res.report.attempts[0]
        assert set(first.image_scores) >= {"sexual", "nudity"}
        # NudeNet ran inside image_guard; its largest exposed-class score counts as nudity
        assert set(first.detector_scores) == set(NUDE_CLASSES)
        assert first.image_scores["nudity"] >= max(first.detector_scores.values())
        if res.image_png is not None:
            assert res.image().shape == (256, 256, 3)
        blank = encode_png(np.zeros((256, 256, 3), np.uint8))
        with pytest.raises(InvalidInput, match="INIT_IMAGE.*text-to-image only"):
            client.generate("make it blue", image=blank, mask=np.full((256, 256), 255, np.uint8))
        default = client.generate("a red circle", seed=2)
        assert default.report.steps == 30 and default.report.guidance_scale == 7.5


@pytest.mark.parametrize("field", ["guidance", "edit_guidance"])
def test_classifier_guidance_needs_a_latent_guard(checkpoint, policy, field):
    """Either field asking for classifier guidance on a profile without a latent guard is refused at start."""
    from t2iguard.runtime.pipeline import SafeT2IPipeline

    profile = profile_from_weights("sd15", checkpoint)
    regen = policy.regeneration.model_copy(update={"guidance": "sld", field: "classifier"})
    strict = policy.model_copy(update={"regeneration": regen})
    with pytest.raises(ValueError, match="no latent guard"):
        SafeT2IPipeline(None, profile, strict, "x")


def test_a_server_reads_the_profile_the_repository_recorded(tmp_path):
    """profile.json is the one truth: a built-in default never stands in for it, and a missing file says
    what to do."""
    import json

    from t2iguard.contract.profiles import PROFILE_FILE, Profile

    recorded = Profile(name="tiny", prediction_type="v_prediction", zero_terminal_snr=True,
                       timestep_spacing="trailing", nude_detector=True)
    (tmp_path / PROFILE_FILE).write_text(recorded.to_json())
    assert load_profile(tmp_path) == recorded
    assert load_profile(tmp_path, "tiny").prediction_type == "v_prediction"
    with pytest.raises(ValueError, match="records profile 'tiny', not 'sd15'"):
        load_profile(tmp_path, "sd15")
    with pytest.raises(FileNotFoundError, match="not a built repository"):
        load_profile(tmp_path / "nowhere")
    assert json.loads((tmp_path / PROFILE_FILE).read_text())["nude_detector"] is True
