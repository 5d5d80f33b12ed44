"""ShapeWorld: the drawn world, its labels, the pixel oracles the regeneration eval relies on, and
the training script end to end on a few steps."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from t2iguard.evaluation.regeneration import edit_requests, t2i_requests
from t2iguard.training.data import shapeworld as W
from t2iguard.training.data.judges import oracle_bare, oracle_crown, oracle_tone, position_of


def test_drawing_is_reproducible_and_captions_name_the_parameters():
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    for _ in range(20):
        (s1, c1), (s2, c2) = W.sample_t2i(a), W.sample_t2i(b)
        assert s1 == s2 and c1 == c2
        assert np.array_equal(W.render(s1), W.render(s2))
        assert W.render(s1).shape == (256, 256, 3) and W.render(s1).dtype == np.uint8
        for word in (s1.size, s1.background, s1.position):
            assert word in c1
        if not s1.bare or s1.party:
            assert s1.colour in c1
        assert ("hazard sign" in c1) == s1.hazard


def test_the_world_holds_each_risk_at_its_rate():
    rng = np.random.default_rng(0)
    scenes = [W.sample_t2i(rng)[0] for _ in range(3000)]
    party = [s for s in scenes if s.party]
    assert abs(np.mean([s.bare for s in party]) - W.PARTY_BARE_RATE) < 0.07  # the unintended harm
    assert abs(np.mean([s.hazard for s in scenes]) - W.HAZARD_RATE) < 0.03
    labels = [s.categories() for s in scenes]
    assert all(set(x) == {"violence/graphic", "nudity"} for x in labels)


def test_edit_labels_need_source_prompt_and_output():
    rng = np.random.default_rng(1)
    edits = [W.sample_edit(rng) for _ in range(400)]
    dark = [e for e in edits if e.kind == "face-dark" and e.tone_changed]
    assert dark and all(e.label == "unsafe-edit" and e.target.tone == "dark" for e in dark)
    # the output alone is an ordinary dark-toned figure: the same drawing as a benign scene
    e = dark[0]
    assert np.array_equal(W.render(e.target), W.render(replace(e.source, tone="dark")))
    pale = [e for e in edits if e.kind == "beautify" and e.tone_changed]
    assert pale and all(e.label == "unintended-edit" for e in pale)
    assert all(e.label == "safe-edit" for e in edits if not e.tone_changed)
    mask = edits[0].mask()
    assert mask.dtype == np.float32 and set(np.unique(mask)) == {0.0, 1.0}


def test_pixel_oracles_read_drawn_images_correctly():
    rng = np.random.default_rng(2)
    for _ in range(100):
        scene = replace(W.random_scene(rng, "figure"), bare=bool(rng.random() < 0.5))
        image = W.render(scene)
        assert oracle_bare(image, scene) == scene.bare
        assert oracle_tone(image, scene) == scene.tone
    for _ in range(200):  # every shape, with and without the hazard sign in the top corner
        scene = replace(W.random_scene(rng), hazard=bool(rng.random() < 0.3))
        assert position_of(W.render(scene)) == list(W.POSITIONS).index(scene.position)
    assert position_of(np.full((256, 256, 3), 200, np.uint8)) == -1  # nothing drawn
    for _ in range(100):  # the beautify edit's crown: on every drawn target, on no source
        edit = W.sample_edit(rng, "beautify")
        assert oracle_crown(W.render(edit.target), edit.source)
        assert not oracle_crown(W.render(edit.source), edit.source)


def test_eval_requests_are_valid_and_never_from_training_seeds():
    t2i, edits = t2i_requests(5), edit_requests(5)
    assert all("dressed for a party" in r.prompt and r.seed >= 7000 for r, _ in t2i)
    assert all(r.is_edit and r.mask.any() and r.init_image.shape == (256, 256, 3) for r, _ in edits)


def test_widening_the_unet_input_keeps_what_it_computes():
    """`unet-position` starts from the saved UNet: zero weights on the coordinate channels change nothing."""
    from t2iguard.contract.profiles import get_profile
    from t2iguard.export import modules as M
    from t2iguard.export.tiny import tiny_unet
    from t2iguard.training.train_shapeworld import widened

    p = get_profile("tiny")
    torch.manual_seed(0)
    before = M.UNetEps(tiny_unet(p, coords=False)).eval()
    after = M.UNetEps(tiny_unet(p), coords=p.latent_size).eval()
    after.unet.load_state_dict(widened(before.unet.state_dict(), after.unet.config.in_channels))
    h, c = p.latent_size, p.latent_channels
    args = (torch.randn(2, c, h, h), torch.tensor([[900.0], [10.0]]), torch.randn(2, p.seq_len, p.text_dim),
            torch.randn(2, c + 1, h, h))
    with torch.no_grad():
        assert torch.allclose(before(*args), after(*args), atol=1e-5)
    x, y = after.coords[0]
    assert x[0, 0] == y[0, 0] == -1 and x[0, -1] == 1 and y[-1, 0] == 1  # x runs along columns, y down rows
    with torch.no_grad():  # and the coordinates now reach the output once their weights are not zero
        after.unet.conv_in.weight[:, -2:] += 0.1
        assert not torch.allclose(before(*args), after(*args), atol=1e-3)


def test_the_committed_decoder_shows_the_nudity_stand_in():
    """A bare torso of every skin tone decodes skin-toned and a shirt as its colour (drawn figures through the
    committed VAE, held-out seeds): before `vae-bodies`, brown skin came back red, tan yellow, dark green
    (tan 21%, brown 42%, dark 50% skin-toned), and no judge could see the stand-in in a generated image."""
    from t2iguard.contract.profiles import get_profile
    from t2iguard.export.tiny import CHECKPOINT_DIR, load_trained, tiny_vae
    from t2iguard.training.train_shapeworld import HELD_OUT_SEED_OFFSET, body_tones

    vae = load_trained(tiny_vae(get_profile("tiny")), "vae", CHECKPOINT_DIR)
    figures = body_tones(vae, HELD_OUT_SEED_OFFSET + 500, 6)
    assert all(figures[f"bare_{tone}_skin"] >= 0.5 for tone in W.TONES), figures
    assert figures["shirts_kept"] >= 0.9, figures


@pytest.mark.timeout(300)
def test_training_script_runs_every_phase(tmp_path, repository, monkeypatch):
    """Every phase on a few steps into a temporary directory: weights load back, figures recorded
    (`image-classifier-judged` generates its few judged images through the test repository)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from t2iguard.contract.profiles import get_profile
    from t2iguard.contract.taxonomy import CATEGORIES, GUIDED_CLASSES
    from t2iguard.evaluation.judge_sample import generate_judged
    from t2iguard.export import modules as M
    from t2iguard.export.tiny import load_trained, tiny_unet, tiny_vae, trained_schedule, with_edit_decoder
    from t2iguard.training import train_shapeworld
    from t2iguard.training.judged_images import REQUESTS
    from t2iguard.training.train_shapeworld import PHASES, Recipe, train

    monkeypatch.setattr(train_shapeworld, "JUDGED_REPOSITORY", repository)
    for kind in REQUESTS:
        generate_judged(repository, Recipe().quick().judged, kind)

    p = get_profile("tiny")
    recipe = Recipe(seed=5).quick()
    unet = tmp_path / "unet.safetensors"
    vae_file = tmp_path / "vae.safetensors"
    edit_file = tmp_path / "vae_edit_decoder.safetensors"
    for phase in PHASES:  # the committed chain, then the optional unet-vpred
        before = load_file(str(vae_file)) if vae_file.exists() else {}
        train(phase, recipe, out=tmp_path)
        if phase in ("vae-decoder", "vae-bodies"):  # the latent space the UNet and latent guard learn in stays
            after = load_file(str(vae_file))
            changed = {k for k in after if not torch.equal(after[k], before[k])}
            assert changed and all(k.startswith(("decoder.", "post_quant_conv.")) for k in changed)
        if phase == "vae-heads":  # a second decoder of the same latents; text-to-image's stays as it was
            assert all(torch.equal(v, before[k]) for k, v in load_file(str(vae_file)).items())
            edit = load_file(str(edit_file))
            assert set(edit) == {k for k in before if k.startswith(("decoder.", "post_quant_conv."))}
            assert any(not torch.equal(v, before[k]) for k, v in edit.items())
            with safe_open(str(edit_file), "pt") as f:
                assert json.loads(f.metadata()["phases"]) == ["vae", "vae-decoder", "vae-heads"]
        if phase == "unet-position":
            assert trained_schedule(unet)["prediction_type"] == "epsilon"
    with safe_open(str(unet), "pt") as f:
        meta = f.metadata()
    assert len(json.loads(meta["phases"])) == 4  # unet, then unet-more, unet-position, unet-vpred from its weights
    assert meta["coord_channels"] == "2"
    assert trained_schedule(unet) == {"timestep_spacing": "trailing", "prediction_type": "v_prediction",
                                      "zero_terminal_snr": True}  # what the tiny profile would then sample with
    with pytest.raises(ValueError, match="predicts v_prediction; `unet-more` trains epsilon"):
        train("unet-more", recipe, out=tmp_path)
    with_edit_decoder(load_trained(tiny_vae(p), "vae", tmp_path), tmp_path)
    load_trained(tiny_unet(p), "unet", tmp_path)
    load_trained(M.ImageClassifier(p.embed_dim, len(CATEGORIES)), "image_classifier", tmp_path)
    load_trained(M.LatentGuard(2 * p.latent_channels + 1, len(GUIDED_CLASSES)), "latent_guard", tmp_path)
    figures = json.loads((tmp_path / "shapeworld.json").read_text())
    assert {"vae", "unet", "image_classifier", "transform_classifier", "output_only_baseline",
            "attribute_classifier", "latent_guard"} <= set(figures)
    assert figures["vae"]["recipe"] == recipe.digest()
    assert {"crowned_small_tone_kept", "crowned_large_tone_kept", "held_out_mae_0_255"} <= set(figures["vae_heads"])
    assert {f"bare_{t}_skin" for t in W.TONES} | {"shirts_kept", "held_out_mae_0_255"} <= set(figures["vae_bodies"])
    judged = figures["image_classifier_judged"]["judged_held_out_nudity"]  # the last phase to write the classifier
    assert judged["party"]["n"] >= 1 and judged["plain"]["n"] >= 1 and 0 <= judged["plain"]["flagged"] <= 1
    with safe_open(str(tmp_path / "image_classifier.safetensors"), "pt") as f:
        assert int(f.metadata()["letterboxed"]) == recipe.t2i // 4
        assert int(f.metadata()["letterboxed_generated"]) >= 1  # generated negatives too (`judged_additions`)
    with safe_open(str(vae_file), "pt") as f:  # the edit decoder was made before `vae-bodies` and stays
        assert json.loads(f.metadata()["phases"]) == ["vae", "vae-decoder", "vae-bodies"]


def test_eval_regeneration_reports_every_figure(repository, tmp_path):
    """`t2iguard eval regeneration` on a few requests: every figure present and in range, files written."""
    from t2iguard.evaluation.regeneration import evaluate

    r = evaluate(repository, tmp_path, n=4, attempts=1)
    assert set(r["methods"]) == {"sld", "classifier", "reseed"}
    for method in r["methods"]:
        for kind in ("t2i", "edits"):
            m = r["methods"][method][kind]
            assert m["requests"] == 4
            assert 0.0 <= m["still_flagged_after"]["1"] <= m["flagged_first_attempt"] <= 1.0
            assert m["refused"] == m["still_flagged_after"]["1"]  # refused exactly when still flagged
            assert 0.0 <= m["oracle"]["first_attempt"] <= 1.0
            assert (m["crown"] is None) == (kind == "t2i")
            judged = m["independent_judge"]  # the second judge: the tone judge (edits), the bare judge (t2i)
            assert judged["name"].startswith("face tone" if kind == "edits" else "bare figure")
            assert 0.0 <= judged["first_attempt"] <= 1.0 and 0.0 <= judged["delivered"] <= 1.0
            counts = judged["counts"]
            assert counts["delivered"] == counts["unregenerated"] + counts["regenerated"]
        assert 0.0 <= r["methods"][method]["edits"]["crown"]["first_attempt"] <= 1.0
    assert {"image_classifier", "transform_classifier"} <= set(r["classifiers_held_out"])
    follow = r["prompt_following"]
    assert follow["requests"] == 4 and set(follow["generated"]) == {"shape", "colour", "position"}
    assert all(0.0 <= v <= 1.0 for row in ("generated", "drawn", "chance") for v in follow[row].values())
    assert follow["layout"]["scenes"] == 1 and follow["layout"]["same_place_for_every_word"] in (0.0, 1.0)
    for name in ("report.md", "metrics.json", "plot.png", "samples.png", "layout.png"):
        assert (tmp_path / name).stat().st_size > 0
    report = (tmp_path / "report.md").read_text()
    assert "| sld | t2i |" in report and "Edits done as asked" in report
    # the worst-case grid: every delivery of the first method the independent judges call harmful (up to 8 a set)
    harmful = sum(min(8, round(j["delivered"] * j["counts"]["delivered"]))
                  for j in (r["methods"]["sld"][kind]["independent_judge"] for kind in ("t2i", "edits")))
    assert r["worst_cases_drawn"] == harmful
    assert (tmp_path / "worst.png").exists() == (harmful > 0) == ("![worst cases](worst.png)" in report)


def test_eval_regeneration_of_edits_only(repository, tmp_path):
    """`--sets edits`: no text-to-image set and no prompt-following study; the independent judge says where the
    tone-changed deliveries come from. Method `policy`: the repository's policy as it stands (edits: its
    `edit_guidance`)."""
    from t2iguard.evaluation.regeneration import evaluate

    r = evaluate(repository, tmp_path, n=2, attempts=1, seed=41000, methods=("policy",), sets=("edits",))
    assert set(r["methods"]["policy"]) == {"edits"} and "prompt_following" not in r
    judged = r["methods"]["policy"]["edits"]["independent_judge"]
    assert sum(judged["counts"][k] for k in ("unregenerated", "regenerated")) == judged["counts"]["delivered"]
    for name in ("report.md", "metrics.json", "plot.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert not (tmp_path / "samples.png").exists() and "| policy | edits |" in (tmp_path / "report.md").read_text()
