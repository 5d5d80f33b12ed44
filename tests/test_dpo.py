"""The Diffusion-DPO stage (training/train_dpo.py) on tiny inputs: the loss, one step's direction, the frozen
reference, the pair rule, and a resumable two-step fine-tune of the committed UNet."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from safetensors import safe_open

from t2iguard.evaluation.dpo import improved
from t2iguard.export.tiny import CHECKPOINT_DIR, tiny_profile
from t2iguard.training.train_dpo import (
    DPORecipe,
    Pairs,
    dpo_loss,
    dpo_step,
    fine_tune,
    load_unet,
    select_pair,
)


def test_loss_matches_hand_computed_value():
    zero = torch.zeros(1, 1, 1, 2)
    pred_w, ref_w = torch.tensor([[[[1.0, 1.0]]]]), torch.tensor([[[[0.0, 0.0]]]])  # errors 1, 0
    pred_l, ref_l = torch.tensor([[[[2.0, 2.0]]]]), torch.tensor([[[[1.0, 1.0]]]])  # errors 4, 1
    loss, margin = dpo_loss(pred_w, pred_l, ref_w, ref_l, zero, zero, beta=0.5)
    # model diff 1 - 4 = -3, reference diff 0 - 1 = -1: margin -0.5 * 0.5 * (-3 + 1) = 0.5
    assert margin.item() == pytest.approx(0.5)
    assert loss.item() == pytest.approx(math.log1p(math.exp(-0.5)), abs=1e-6)
    # the policy equal to the reference: margin 0, loss log 2, whatever the errors
    loss, margin = dpo_loss(pred_w, pred_l, pred_w, pred_l, zero, zero, beta=7.0)
    assert margin.item() == 0.0 and loss.item() == pytest.approx(math.log(2.0))


class Toy(torch.nn.Module):
    """UNetEps's signature: (sample, t [B, 1], context [B, L, D], cond [B, C + 1, h, w]) -> eps."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2 + 3, 2, 1)

    def forward(self, sample, t, context, cond):
        return self.conv(torch.cat([sample, cond], dim=1)) + context.mean() + 0 * t.mean()


def _toy_batch():
    g = torch.Generator().manual_seed(0)
    winner, loser = torch.randn(4, 2, 4, 4, generator=g), torch.randn(4, 2, 4, 4, generator=g) + 1.0
    return winner, loser, torch.randn(4, 3, 8, generator=g), torch.ones(4, 3, 4, 4)


def test_one_step_moves_the_margin_towards_the_winner_and_keeps_the_reference_frozen():
    torch.manual_seed(0)
    reference = Toy().requires_grad_(False)
    policy = copy.deepcopy(reference).requires_grad_(True)
    frozen = {k: v.clone() for k, v in reference.state_dict().items()}
    winner, loser, context, cond = _toy_batch()
    alphas = torch.linspace(0.99, 0.05, 10)

    def margin() -> float:
        with torch.no_grad():
            return dpo_step(policy, reference, winner, loser, context, cond, alphas, 50.0,
                            torch.Generator().manual_seed(1))[1].mean().item()

    assert margin() == 0.0  # policy = reference
    opt = torch.optim.SGD(policy.parameters(), lr=1e-3)
    loss, _ = dpo_step(policy, reference, winner, loser, context, cond, alphas, 50.0, torch.Generator().manual_seed(1))
    loss.backward()
    assert all(p.grad is None for p in reference.parameters())
    opt.step()
    assert margin() > 0.0
    assert all(torch.equal(v, frozen[k]) for k, v in reference.state_dict().items())
    # the same batch's loss and the other way round: a loser preferred moves the margin the other way
    policy2 = copy.deepcopy(reference).requires_grad_(True)
    loss, _ = dpo_step(policy2, reference, loser, winner, context, cond, alphas, 50.0, torch.Generator().manual_seed(1))
    loss.backward()
    torch.optim.SGD(policy2.parameters(), lr=1e-3).step()
    with torch.no_grad():
        _, swapped = dpo_step(policy2, reference, winner, loser, context, cond, alphas, 50.0,
                              torch.Generator().manual_seed(1))
    assert swapped.mean().item() < 0.0


def _figures(flagged: float, colour: float) -> dict:
    return {"t2i": {"flagged_first_attempt": flagged, "oracle": {"first_attempt": 0.5},
                    "oracle_located_first_attempt": 0.2, "refused": 0.0,
                    "attribute_accuracy_first_attempt_all": {"shape": 0.9, "colour": colour}}}


def test_gate_wants_less_harm_and_nothing_else_worse():
    assert improved(_figures(0.35, 0.5), _figures(0.20, 0.49)) == (True, [])
    ok, failed = improved(_figures(0.35, 0.5), _figures(0.17, 0.35))  # run B's trade-off: refused
    assert not ok and failed == ["t2i attribute accuracy at attempt 1: colour: 50.0% -> 35.0%"]
    ok, failed = improved(_figures(0.35, 0.5), _figures(0.35, 0.5))
    assert not ok and failed == ["t2i flagged at attempt 1 did not fall"]


@pytest.mark.parametrize(("flagged", "expected"), [
    ([["nudity"], []], (1, 0)),  # attempt 1 flagged, the regeneration passed
    ([["nudity"], ["nudity"], ["nudity", "violence/graphic"], [], []], (3, 0)),  # the first passing attempt
    ([[]], None),  # attempt 1 clean: no loser
    ([[], []], None),
    ([["nudity"], ["nudity"], ["nudity"]], None),  # refused: no winner
    ([], None),
])
def test_pairs_keep_only_an_unflagged_winner_and_a_flagged_loser_of_one_request(flagged, expected):
    assert select_pair(flagged) == expected
    if expected is not None:
        winner, loser = expected
        assert not flagged[winner] and flagged[loser] and loser == 0


def test_fine_tune_two_steps_saves_a_servable_unet_and_resumes(tmp_path):
    torch.set_num_threads(1)
    profile = tiny_profile()
    g = torch.Generator().manual_seed(0)
    shape = (2, profile.latent_channels, profile.latent_size, profile.latent_size)
    pairs = Pairs(winner=torch.randn(shape, generator=g), loser=torch.randn(shape, generator=g),
                  context=torch.randn(2, profile.seq_len, profile.text_dim, generator=g).half(),
                  prompts=["a", "b"], seeds=[1, 2], oracle_agrees=[True, False], located_agrees=[False, False],
                  requests=2, flagged_first=2)
    recipe = DPORecipe(steps=2, batch=2, lr=1e-4)
    first = fine_tune(pairs, profile, recipe, tmp_path, progress=False)
    assert first["steps"] == 2 and math.isfinite(first["final_loss"])
    tuned = load_unet(profile, tmp_path)
    committed = load_unet(profile)
    assert any(not torch.equal(a, b) for a, b in zip(tuned.parameters(), committed.parameters(), strict=True))
    with safe_open(str(tmp_path / "unet.safetensors"), "pt") as f, \
            safe_open(str(CHECKPOINT_DIR / "unet.safetensors"), "pt") as c:
        meta, base = f.metadata(), c.metadata()
    assert meta["coord_channels"] == base["coord_channels"] and meta.get("schedule") == base.get("schedule")
    assert meta["dpo_recipe_sha256_16"] == recipe.digest()
    # a longer run of the same recipe but for steps would start over; the same recipe resumes at its end
    said = []
    fine_tune(pairs, profile, recipe, tmp_path, say=said.append, progress=False)
    assert said[0] == "resuming at step 2"
