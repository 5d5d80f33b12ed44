"""`t2iguard train dpo`: safety fine-tuning of the tiny UNet with Diffusion-DPO (Wallace et al. 2023).

1. Pairs: benign prompts of the regeneration eval's `t2i` kind ("a figure dressed for a party ...", the
   unintended harm's stand-in) on ShapeWorld draws from `PAIR_SEED` (50000+: no training draw, no eval or
   tuning range uses them), each run through the served steps 4-6 in-process (`SafeT2IPipeline` on a built
   repository, the tiny policy's guided regeneration). A pair is kept when attempt 1 was flagged by the
   image classifier and a later attempt of the same request (same prompt, same request seed) passed:
   winner = the delivered regeneration, loser = attempt 1 (`select_pair`). Their final latents (the sampler's
   x0, before decoding) and the prompt's text-encoder states are cached under the export cache.
2. Fine-tune: the committed UNet, against a frozen copy of itself, with the Diffusion-DPO loss (`dpo_loss`)
   on the eps target (the committed UNet predicts eps), one timestep and one noise per pair shared by winner
   and loser. Seeded; checkpoints under the cache's `checkpoints/dpo/`, resumed when present.
3. Measure (evaluation/dpo.py, which drives the whole stage) on held-out requests (the eval's own draws,
   7000+, which no pair comes from), before (the built repository) and after (a copy whose `unet` graph is
   the fine-tuned UNet, exported and parity-checked): flagged at attempt 1 (image classifier; both pixel
   oracles, which training never saw), still flagged after N regenerations and refusals, attribute
   accuracy and retention, edits, prompt following.
4. `evaluation.dpo.improved` says whether every held-out figure held or improved; only then (and with
   `commit`) are the weights copied to export/weights/unet.safetensors.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.nn import functional as F

from t2iguard.contract import specs as S
from t2iguard.contract.policy import load_policy
from t2iguard.contract.profiles import Profile, load_profile
from t2iguard.contract.report import SafetyReport
from t2iguard.export.build import cache_root
from t2iguard.export.modules import UNetEps
from t2iguard.export.tiny import CHECKPOINT_DIR, load_trained, tiny_unet
from t2iguard.runtime.pipeline import GenerateRequest, Refused, SafeT2IPipeline
from t2iguard.runtime.runners import LocalRunner
from t2iguard.runtime.scheduler import DDIM, DDIMConfig
from t2iguard.training.data import shapeworld as W
from t2iguard.training.data.judges import oracle_bare, oracle_bare_located

PAIR_SEED = 50000  # training 0/1000/2, eval 7000+, tuning 9000+/9300+, judges 30000+/32000: pairs 50000+
CHECKPOINT_EVERY = 50


@dataclass(frozen=True)
class DPORecipe:
    """What the pairs are drawn from and how the UNet is fine-tuned (steps, not seconds: reproducible)."""

    seed: int = 0
    prompts: int = 160  # requests generated for pairs (about a third are flagged at attempt 1)
    pair_seed: int = PAIR_SEED
    steps: int = 100
    batch: int = 4  # pairs per step (8 UNet rows: winners and losers)
    lr: float = 1e-6
    beta: float = 5000.0  # beta * T of the paper, on per-element mean squared errors (as diffusers' beta_dpo)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Pairs:
    """winner, loser: float32 [N, C, h, w] x0 latents; context: float16 [N, L, D] text-encoder states;
    per pair its prompt, request seed and whether the pixel oracles agree (loser bare, winner not)."""

    winner: torch.Tensor
    loser: torch.Tensor
    context: torch.Tensor
    prompts: list[str]
    seeds: list[int]
    oracle_agrees: list[bool]
    located_agrees: list[bool]
    requests: int
    flagged_first: int


def party_requests(n: int, seed: int) -> list[tuple[GenerateRequest, W.Scene]]:
    """`n` benign party-figure requests drawn from `seed`: the DPO pairs' prompts, and the regeneration eval's
    `t2i` set (`evaluation.regeneration.t2i_requests`) on its own seed range."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        scene = replace(W.random_scene(rng, "figure"), party=True)
        out.append((GenerateRequest(request_id=f"t2i-{i}", prompt=W.caption(scene, rng), seed=seed + i), scene))
    return out


def select_pair(flagged: list[list[str]]) -> tuple[int, int] | None:
    """(winner, loser) attempt indices of one request's attempts (each its flagged categories, in order),
    or None: the loser is attempt 1 when flagged, the winner the first later attempt flagged for nothing."""
    if not flagged or not flagged[0]:
        return None
    for i, f in enumerate(flagged[1:], start=1):
        if not f:
            return i, 0
    return None


class _KeepLatents(SafeT2IPipeline):
    """The served pipeline, recording each attempt's final latents (float32 [1, C, h, w]) before decoding."""

    kept: list[np.ndarray]

    def decode_latents(self, latents: np.ndarray, req) -> np.ndarray:
        self.kept.append(latents.copy())
        return super().decode_latents(latents, req)


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def build_pairs(repository: Path, recipe: DPORecipe, say=lambda m: None) -> Pairs:
    """Preference pairs from `recipe.prompts` requests on draws `recipe.pair_seed`+, cached per draw and
    repository UNet; the requests' outcomes are kept every 10 requests, so an interrupted run (or a run with
    more prompts: the draws are sequential) resumes where it stopped."""
    unet = file_digest(repository / S.UNET / "1" / "model.onnx")
    path = cache_root() / "dpo" / f"pairs-{recipe.pair_seed}-{recipe.prompts}-{unet}.pt"
    if path.exists():
        return Pairs(**torch.load(path, weights_only=False))
    progress_path = cache_root() / "dpo" / f"pairs-{recipe.pair_seed}-{unet}-progress.pt"
    done: list[dict] = torch.load(progress_path, weights_only=False) if progress_path.exists() else []
    requests = party_requests(recipe.prompts, recipe.pair_seed)
    if len(done) < len(requests):
        profile = load_profile(repository)
        policy = load_policy(repository / "policy.yaml")
        pipe = _KeepLatents(LocalRunner(repository, profile, policy), profile, policy, "trained")
        t0 = time.perf_counter()
        for i in range(len(done), len(requests)):
            done.append(_pair_outcome(pipe, *requests[i]))
            if i % 10 == 0 or i == len(requests) - 1:
                progress_path.parent.mkdir(parents=True, exist_ok=True)
                torch.save(done, progress_path)
                kept = sum(d["winner"] is not None for d in done)
                say(f"pairs: {i + 1}/{len(requests)} requests, {kept} pairs ({time.perf_counter() - t0:.0f} s)")
    outcomes = done[:len(requests)]
    kept = [d for d in outcomes if d["winner"] is not None]
    if not kept:
        raise RuntimeError(f"no preference pairs among {len(outcomes)} requests")
    pairs = Pairs(winner=torch.from_numpy(np.stack([d["winner"] for d in kept])),
                  loser=torch.from_numpy(np.stack([d["loser"] for d in kept])),
                  context=torch.from_numpy(np.stack([d["context"] for d in kept])),
                  prompts=[d["prompt"] for d in kept], seeds=[d["seed"] for d in kept],
                  oracle_agrees=[d["oracle"] for d in kept], located_agrees=[d["located"] for d in kept],
                  requests=len(outcomes), flagged_first=sum(d["flagged_first"] for d in outcomes))
    torch.save(pairs.__dict__, path)
    return pairs


def _pair_outcome(pipe: _KeepLatents, req, scene) -> dict:
    """One request through steps 4-6: its pair's latents (None when `select_pair` keeps none), the prompt's
    text-encoder states float16 [L, D], and whether the pixel oracles agree with the classifier's pair."""
    cond, uncond, pooled = pipe.encode_prompt(req.prompt, "")
    report = SafetyReport.model_construct(attempts=[])
    images: list[np.ndarray] = []
    pipe.kept = []
    try:
        pipe.generate_checked(req, cond, uncond, pooled, report, {}, trace=images)
    except Refused:
        pass
    flagged = [a.flagged for a in report.attempts]
    out = {"prompt": req.prompt, "seed": req.seed, "flagged_first": bool(flagged[0]), "winner": None}
    picked = select_pair(flagged)
    if picked is not None:
        w, lo = picked
        out.update(winner=pipe.kept[w][0], loser=pipe.kept[lo][0], context=cond[0].astype(np.float16),
                   oracle=bool(oracle_bare(images[lo], scene) and not oracle_bare(images[w], scene)),
                   located=bool(oracle_bare_located(images[lo]) and not oracle_bare_located(images[w])))
    return out


# --- the loss and the fine-tuning ----------------------------------------------------------------
def dpo_loss(pred_w: torch.Tensor, pred_l: torch.Tensor, ref_w: torch.Tensor, ref_l: torch.Tensor,
             target_w: torch.Tensor, target_l: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Diffusion-DPO: -log sigmoid(-beta/2 [(e_w - e_w^ref) - (e_l - e_l^ref)]), e the per-sample mean squared
    error of a prediction to its target ([B, C, h, w] each; winner and loser noised with the same t and
    noise). Returns (the loss averaged over the batch, the implicit reward margin [B]: the sigmoid's
    argument, > 0 when the policy prefers the winner more than the reference does)."""

    def err(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred.float() - target.float()).pow(2).mean(dim=(1, 2, 3))

    model_diff = err(pred_w, target_w) - err(pred_l, target_l)
    ref_diff = err(ref_w, target_w) - err(ref_l, target_l)
    margin = -0.5 * beta * (model_diff - ref_diff)
    return -F.logsigmoid(margin).mean(), margin


def t2i_condition(profile: Profile, n: int) -> torch.Tensor:
    """float32 [n, C + 1, h, w]: text-to-image's inpainting channels (a zero latent, an all-ones mask)."""
    h = profile.latent_size
    return torch.cat([torch.zeros(n, profile.latent_channels, h, h), torch.ones(n, 1, h, h)], dim=1)


def dpo_step(policy: torch.nn.Module, reference: torch.nn.Module, winner: torch.Tensor, loser: torch.Tensor,
             context: torch.Tensor, cond: torch.Tensor, alphas: torch.Tensor, beta: float,
             gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch's DPO loss and margins: a timestep and a noise per pair, shared by its winner and loser;
    the eps target. Gradients flow into `policy` only."""
    b = winner.shape[0]
    t = torch.randint(0, len(alphas), (b,), generator=gen)
    noise = torch.randn(winner.shape, generator=gen)
    a = alphas[t][:, None, None, None]
    x_t = torch.cat([a.sqrt() * winner + (1 - a).sqrt() * noise, a.sqrt() * loser + (1 - a).sqrt() * noise])
    ts, ctx, cnd = t.float()[:, None].repeat(2, 1), context.float().repeat(2, 1, 1), cond.repeat(2, 1, 1, 1)
    pred = policy(x_t, ts, ctx, cnd)
    with torch.no_grad():
        ref = reference(x_t, ts, ctx, cnd)
    return dpo_loss(pred[:b], pred[b:], ref[:b], ref[b:], noise, noise, beta)


def load_unet(profile: Profile, weights: Path = CHECKPOINT_DIR) -> UNetEps:
    return UNetEps(load_trained(tiny_unet(profile), "unet", weights), coords=profile.latent_size)


def fine_tune(pairs: Pairs, profile: Profile, recipe: DPORecipe, out: Path, say=lambda m: None,
              progress: bool = True) -> dict:
    """Fine-tune the committed UNet on `pairs`; write `out`/unet.safetensors (fp16, the committed file's
    metadata plus the recipe). Resumes from `out`/state.pt (every `CHECKPOINT_EVERY` steps)."""
    from tqdm import tqdm

    if profile.prediction_type != "epsilon":
        raise ValueError(f"the DPO stage trains the eps target; the repository's UNet predicts "
                         f"{profile.prediction_type}")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(recipe.seed)
    reference = load_unet(profile).eval().requires_grad_(False)
    policy = copy.deepcopy(reference).train().requires_grad_(True)
    opt = torch.optim.AdamW(policy.parameters(), lr=recipe.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(recipe.seed)
    state_path, start, history = out / "state.pt", 0, []
    if state_path.exists():
        state = torch.load(state_path, weights_only=False)
        if state["recipe"] == recipe.digest():
            policy.load_state_dict(state["policy"])
            opt.load_state_dict(state["opt"])
            gen.set_state(state["gen"])
            start, history = state["step"], state["history"]
            say(f"resuming at step {start}")
    alphas = torch.from_numpy(DDIM(DDIMConfig()).alphas_cumprod).float()
    n = len(pairs.winner)
    cond = t2i_condition(profile, recipe.batch)
    bar = tqdm(range(start, recipe.steps), initial=start, total=recipe.steps, desc="dpo", disable=not progress)
    for step in bar:
        idx = torch.randint(0, n, (recipe.batch,), generator=gen)
        loss, margin = dpo_step(policy, reference, pairs.winner[idx], pairs.loser[idx], pairs.context[idx], cond,
                                alphas, recipe.beta, gen)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
        history.append((loss.item(), float((margin > 0).float().mean())))
        bar.set_postfix(loss=f"{loss.item():.4f}", acc=f"{history[-1][1]:.2f}")
        if (step + 1) % CHECKPOINT_EVERY == 0 or step + 1 == recipe.steps:
            torch.save({"recipe": recipe.digest(), "policy": policy.state_dict(), "opt": opt.state_dict(),
                        "gen": gen.get_state(), "step": step + 1, "history": history}, state_path)
            say(f"dpo: step {step + 1}/{recipe.steps}, loss {np.mean([h[0] for h in history[-50:]]):.4f}, "
                f"implicit accuracy {np.mean([h[1] for h in history[-50:]]):.2f}")
    for r, p in zip(reference.parameters(), load_unet(profile).parameters(), strict=True):
        if not torch.equal(r, p):
            raise RuntimeError("the reference UNet changed during DPO")
    save_unet(policy, recipe, out / "unet.safetensors")
    tail = history[-50:]
    return {"pairs": n, "steps": recipe.steps, "final_loss": round(float(np.mean([h[0] for h in tail])), 4),
            "implicit_accuracy": round(float(np.mean([h[1] for h in tail])), 4)}


def save_unet(model: UNetEps, recipe: DPORecipe, path: Path) -> None:
    """fp16 safetensors with the committed UNet file's metadata (schedule, coordinate channels, phases) and
    this stage's recipe."""
    committed = CHECKPOINT_DIR / "unet.safetensors"
    with safe_open(str(committed), "pt") as f:
        meta = dict(f.metadata() or {})
    phases = json.loads(meta.get("phases", "[]"))
    meta.update({"continued_from_sha256_16": file_digest(committed), "phases": json.dumps([*phases, "dpo"]),
                 "dpo_recipe": json.dumps(asdict(recipe)), "dpo_recipe_sha256_16": recipe.digest(),
                 "script": "training/train_dpo.py"})
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.unet.state_dict().items()}
    save_file(state, str(path), metadata={k: str(v) for k, v in meta.items()})
