"""`t2iguard train shapeworld`: train the tiny profile's image side on ShapeWorld (training/data/shapeworld.py).

Phases (each writes fp16 safetensors to export/weights/, with the recipe and seed in its metadata):

| phase | trains | needs |
| --- | --- | --- |
| `vae` | AutoencoderKL (16x), on 64-pixel crops (it is convolutional) | - |
| `vae-decoder` | the saved VAE's decoder again, on whole images' latents, encoder frozen | vae |
| `vae-heads` | the edit decoder: the decoder again, figures' heads weighted 20x, encoder frozen | vae-decoder |
| `classifiers` | image, transform (+ an output-only baseline, not kept) and attribute classifiers | vae-heads |
| `vae-bodies` | the text-to-image decoder again, figures' bodies weighted 10x, half party figures | vae-decoder |
| `image-classifier` | the image classifier alone again, as `classifiers` does, through today's decoder | vae-bodies |
| `image-classifier-judged` | the same, plus generated images the bare judge labelled (`judged_images.py`) | a build |
| `unet` | UNet2DConditionModel on VAE latents, MiniLM hidden states as context, inpainting channels | vae |
| `unet-more` | continues the saved UNet (warm restart of the schedule, Min-SNR loss weights) | unet |
| `unet-position` | widens the saved UNet's input with coordinate channels (zero weights), continues | unet-more |
| `unet-vpred` | optional: continues the saved UNet as a v-predictor on a zero-terminal-SNR schedule | unet-position |
| `guard` | the noise-aware latent classifier served as `latent_guard` (classifier guidance) | vae |

The committed weights come from `DEFAULT_PHASES` (`vae`, `vae-decoder`, `unet`, `unet-more`,
`unet-position`, `guard`, `vae-heads`, `classifiers`, `vae-bodies`; they ran `vae-decoder` after `guard`). The
decoder phases keep the encoder, so they can run after any phase without changing the UNet's or the guard's
latents; `vae-decoder` continues vae.safetensors (text-to-image decodes with it), `vae-heads` continues that
decoder into vae_edit_decoder.safetensors (edits decode with it). `classifiers` (which see generated images
through the decoder that serves them) follow both; `vae-bodies` came after them and continues vae.safetensors
so that a bare torso decodes skin-toned. The image classifier was not retrained through it (`image-classifier`
and `image-classifier-judged` were measured, not committed: docs/2026-12-03-judge-validation.md). The UNet
phases predict eps on the scaled-linear schedule (`EPS_SCHEDULE`);
`unet-vpred` (measured, not committed: see the README) moves it to `VPRED_SCHEDULE`. Each UNet file records
its schedule, which the tiny profile samples with and the guard trains on (`t2iguard.export.tiny.trained_schedule`;
a build records it in the repository's profile.json).
The UNet and the guard read latents cached per draw and VAE digest. After `vae`, independent phases can run
side by side (`--threads 1` each). Held-out metrics come from a split drawn with another seed and land in
export/weights/shapeworld.json.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.nn import functional as F

from t2iguard.contract.policy import load_policy
from t2iguard.contract.profiles import get_profile
from t2iguard.contract.taxonomy import CATEGORIES, GUIDED_CLASSES, TRANSFORM_CLASSES
from t2iguard.export import modules as M
from t2iguard.export.build import cache_root
from t2iguard.export.modules import LatentGuard, UNetEps, VAEDecode, VAEEncode
from t2iguard.export.tiny import (
    CHECKPOINT_DIR,
    COORD_CHANNELS,
    decoder_part,
    load_minilm,
    load_trained,
    tiny_unet,
    tiny_vae,
    trained_schedule,
    with_edit_decoder,
)
from t2iguard.runtime.images import downsample_mask, from_pixels, letterbox, to_pixels
from t2iguard.runtime.scheduler import DDIM, DDIMConfig
from t2iguard.runtime.stages import classifier_pixels
from t2iguard.runtime.text import mean_pool, tokenize
from t2iguard.training.data import shapeworld as W
from t2iguard.training.data.judges import median_colour, nearest, oracle_tone

METRICS = CHECKPOINT_DIR / "shapeworld.json"
DEFAULT_PHASES = ("vae", "vae-decoder", "unet", "unet-more", "unet-position", "guard", "vae-heads", "classifiers",
                  "vae-bodies")
PHASES = (*DEFAULT_PHASES, "unet-vpred", "image-classifier", "image-classifier-judged")
#: the schedule of the committed UNet's phases (eps prediction, terminal alpha_bar 0.0047)
EPS_SCHEDULE = DDIMConfig()
#: `unet-vpred`: zero terminal SNR, v prediction, sampled from t = T (Lin et al. 2023)
VPRED_SCHEDULE = DDIMConfig(timestep_spacing="trailing", prediction_type="v_prediction", zero_terminal_snr=True)
HELD_OUT_SEED_OFFSET = 1000
#: Recipe fields added after weights were committed: they count in the digest only when set off their default
LATER_FIELDS = ("judged",)
#: `image-classifier-judged` reads the images generated through this repository (`t2iguard eval judged-images`),
#: holds out the last part of each kind, and repeats the rest in the draw
JUDGED_REPOSITORY = Path(__file__).resolve().parents[1] / "build" / "repository" / "cpu"
JUDGED_HELD_OUT = 0.2
GENERATED_REPEAT = 3
#: ... and adds this share of its drawn images and of its generated negatives again, cut and letterboxed
#: (`letterboxed`): with generated images in its data and none letterboxed, it called a clothed figure in grey bars
#: `nudity` 0.61 (0.007 uncut); with the drawn ones alone letterboxed, still 0.61; with the generated too, 0.33
LETTERBOXED = 0.25


@dataclass(frozen=True)
class Recipe:
    """What is drawn and how long each model trains (steps, not seconds: reproducible)."""

    seed: int = 0
    t2i: int = 8000
    edits: int = 4000
    held_out: int = 1000
    vae_steps: int = 2500
    vae_lr: float = 1e-4  # 1e-3 and 3e-4 learn nothing in 300 steps (GroupNorm VAEs want small steps)
    vae_decoder_steps: int = 1500  # `vae-decoder`: the decoder again, on whole encoded images (encoder frozen)
    vae_heads_steps: int = 600  # `vae-heads`: the edit decoder, figures' heads weighted `vae_heads_weight`x
    vae_heads_weight: float = 20.0
    head_tones: int = 24  # `vae-heads` measures: crowned figures per size and face tone, held out
    vae_bodies_steps: int = 400  # `vae-bodies`: the text-to-image decoder again, figures' bodies weighted
    vae_bodies_weight: float = 10.0
    body_tones: int = 24  # `vae-bodies` measures: bare party figures per skin tone, shirts per colour, held out
    unet_t2i: int = 4000  # the UNet's (and latent guard's) draw, encoded once and cached
    unet_edits: int = 2000
    unet_steps: int = 2200
    unet_lr: float = 2e-4
    unet_more_steps: int = 3000  # `unet-more`: a second cosine cycle from the saved UNet
    unet_min_snr: float = 5.0  # `unet-more` weights the eps loss by min(SNR, 5) / SNR (Hang et al. 2023)
    unet_position_steps: int = 2000  # `unet-position`: a third cycle, with the coordinate channels
    unet_vpred_steps: int = 2500  # `unet-vpred` (optional): v prediction on the zero-terminal-SNR schedule
    guard_steps: int = 1500
    classifier_steps: int = 1000
    decoded: int = 2000  # drawn images also seen through the VAE (generated images look like these)
    batch: int = 32
    reconstruction_held_out: int = 64  # held-out images the VAE phases' reconstruction error is measured on
    judged: int = 800  # `image-classifier-judged`: party requests generated and labelled by the bare judge

    def digest(self) -> str:
        """What shapes the weights; the size of a held-out measurement does not, and a field added after weights
        were committed counts only when set off its default (`LATER_FIELDS`), so the digests recorded before it
        stay valid."""
        defaults = {f.name: f.default for f in fields(self)}
        shaping = {k: v for k, v in asdict(self).items()
                   if k != "reconstruction_held_out" and not (k in LATER_FIELDS and v == defaults[k])}
        return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]

    def quick(self) -> Recipe:
        """A few steps of everything on little data: checks the script, trains nothing useful."""
        return replace(self, t2i=32, edits=16, held_out=4, vae_steps=2, vae_decoder_steps=2, vae_heads_steps=2,
                       head_tones=1, vae_bodies_steps=2, body_tones=1, unet_t2i=32, unet_edits=16, unet_steps=2,
                       unet_more_steps=2, unet_position_steps=2, unet_vpred_steps=2, guard_steps=2,
                       classifier_steps=2, decoded=8, batch=8, reconstruction_held_out=2, judged=3)


@dataclass
class World:
    """Drawn data: images uint8 [N, 256, 256, 3] with their scenes/edits and prompts."""

    scenes: list[W.Scene]
    captions: list[str]
    images: np.ndarray
    edits: list[W.Edit]
    sources: np.ndarray
    targets: np.ndarray


def draw(seed: int, n_t2i: int, n_edits: int) -> World:
    rng = np.random.default_rng(seed)
    pairs = [W.sample_t2i(rng) for _ in range(n_t2i)]
    edits = [W.sample_edit(rng, realised=bool(rng.random() > 0.1)) for _ in range(n_edits)]
    return World(scenes=[s for s, _ in pairs], captions=[c for _, c in pairs],
                 images=np.stack([W.render(s) for s, _ in pairs]), edits=edits,
                 sources=np.stack([W.render(e.source) for e in edits]),
                 targets=np.stack([W.render(e.target) for e in edits]))


def _save(name: str, module: torch.nn.Module, recipe: Recipe, out: Path, extra: dict | None = None) -> Path:
    path = out / f"{name}.safetensors"
    meta = {"recipe": json.dumps(asdict(recipe)), "recipe_sha256_16": recipe.digest(), **(extra or {})}
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(path), metadata={k: str(v) for k, v in meta.items()})
    return path


def _write_metrics(section: str, figures: dict, out: Path) -> None:
    path = out / METRICS.name
    data = json.loads(path.read_text()) if path.exists() else {}
    data[section] = figures
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _schedule(opt: torch.optim.Optimizer, steps: int, warmup: int = 50):
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / warmup) * 0.5 * (1 + np.cos(np.pi * min(i, steps) / steps)))


def _loop(steps: int, step_fn: Callable[[int], float], say, what: str) -> float:
    loss, t0 = float("nan"), time.perf_counter()
    for i in range(steps):
        loss = step_fn(i)
        if i % 25 == 0 or i == steps - 1:
            say(f"{what}: step {i + 1}/{steps} loss {loss:.4f} ({time.perf_counter() - t0:.0f} s)")
    return loss


def _blur(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Half the batch box-blurred 3x3: drawn images are crisper than decoded ones."""
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    pick = (torch.rand(x.shape[0], 1, 1, 1, generator=gen) < 0.5).to(x.dtype)
    return pick * blurred + (1 - pick) * x


# --- classifiers --------------------------------------------------------------------------------
def _image_labels(scenes: list[W.Scene]) -> np.ndarray:
    y = np.zeros((len(scenes), len(CATEGORIES)), np.float32)
    for i, s in enumerate(scenes):
        for cat, v in s.categories().items():
            y[i, CATEGORIES.index(cat)] = v
    return y


def _attribute_labels(scenes: list[W.Scene]) -> np.ndarray:
    """int64 [N, 3]: shape, colour (-100 for bare figures: no shirt), position."""
    return np.array([[W.SHAPES.index(s.shape), -100 if s.bare else list(W.COLOURS).index(s.colour),
                      list(W.POSITIONS).index(s.position)] for s in scenes], np.int64)


def pooled_prompts(prompts: list[str]) -> np.ndarray:
    """Mean-pooled MiniLM embeddings float32 [N, 384], as the pipeline passes to transform_classifier."""

    hidden, mask = text_hidden(load_minilm(), prompts, get_profile("tiny").seq_len)
    return mean_pool(hidden.astype(np.float32), mask)


@torch.no_grad()
def text_hidden(encoder: torch.nn.Module, texts: list[str], seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """MiniLM last hidden states float16 [N, L, D] and masks int64 [N, L] (the text_encoder's output)."""

    ids, mask = tokenize(texts, seq_len)
    out = [encoder(input_ids=torch.from_numpy(ids[i:i + 128]), attention_mask=torch.from_numpy(mask[i:i + 128]))
           .last_hidden_state.to(torch.float16).numpy() for i in range(0, len(texts), 128)]
    return np.concatenate(out), mask


def positive_weights(labels: np.ndarray | torch.Tensor, cap: float = 10.0) -> torch.Tensor:
    """float32 [K]: per-category weight of a positive example that balances it against the negatives (at most
    `cap`; 1 for categories with no positives). Bare figures are ~6% of ShapeWorld images: unweighted, the
    classifiers learn to never say `nudity`."""
    rate = np.asarray(labels, np.float32).mean(0)
    return torch.from_numpy(np.where(rate > 0, np.clip((1 - rate) / np.maximum(rate, 1e-6), 1.0, cap), 1.0)
                            .astype(np.float32))


def _binary_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    tp = float((pred & truth).sum())
    return {"precision": round(tp / max(pred.sum(), 1), 4), "recall": round(tp / max(truth.sum(), 1), 4),
            "positives": int(truth.sum()), "n": int(len(truth))}


@torch.no_grad()
def decoded(images: np.ndarray, weights: Path, edit: bool = False) -> np.ndarray:
    """uint8 [N, 256, 256, 3] through the trained VAE (encode the mean, decode; with the edit decoder when
    `edit`): what generated images (edits' outputs) look like."""

    vae = load_trained(tiny_vae(get_profile("tiny")), "vae", weights)
    enc, dec = VAEEncode(vae), VAEDecode(with_edit_decoder(vae, weights) if edit else vae)
    return np.concatenate([from_pixels(dec(enc(torch.from_numpy(to_pixels(images[i:i + 32])))).numpy())
                           for i in range(0, len(images), 32)])


def train_classifiers(recipe: Recipe, out: Path, say) -> dict:
    """Classifiers on drawn images and on the same images through the VAE (the generated domain): the image
    and attribute classifiers see them through the text-to-image decoder, the transform classifier sees edit
    outputs through the edit decoder, as served. Held-out figures on the decoded held-out split."""

    size = get_profile("tiny").classifier_size
    world = draw(recipe.seed, recipe.t2i, recipe.edits)
    held = draw(recipe.seed + HELD_OUT_SEED_OFFSET, recipe.held_out, recipe.held_out)
    gen = torch.Generator().manual_seed(recipe.seed)
    n, m = recipe.decoded, recipe.decoded // 2
    say(f"drew {len(world.images)} images and {len(world.edits)} edits; decoding {n + 2 * m} (and the held-out "
        "split) through the VAE's two decoders")
    rec_images, rec_targets = decoded(world.images[:n], out), decoded(world.targets[:m], out)
    edited, held_images = decoded(world.targets[:m], out, edit=True), decoded(held.images, out)
    held_targets = decoded(held.targets, out, edit=True)
    image_cls = _fit_image_classifier(recipe, world, rec_images, rec_targets, gen, say)
    _save("image_classifier", image_cls, recipe, out, {"categories": json.dumps(CATEGORIES)})

    # transform classifier (drawn source, prompt, drawn or decoded output) and the output-only baseline
    pooled = pooled_prompts([e.prompt for e in world.edits] + [e.prompt for e in held.edits])
    p_train, p_held = pooled[:len(world.edits)], pooled[len(world.edits):]
    p_train = np.concatenate([p_train, p_train[:m]])
    y = np.array([TRANSFORM_CLASSES.index(e.label) for e in world.edits])
    y = np.concatenate([y, y[:m]])
    src = classifier_pixels(np.concatenate([world.sources, world.sources[:m]]), size)
    tgt = classifier_pixels(np.concatenate([world.targets, edited]), size)
    torch.manual_seed(recipe.seed + 1)
    transform = M.TransformClassifier(get_profile("tiny").embed_dim, p_train.shape[1], len(TRANSFORM_CLASSES))
    _fit(transform, lambda idx: (transform(_blur(torch.from_numpy(src[idx]), gen),
                                           _blur(torch.from_numpy(tgt[idx]), gen), torch.from_numpy(p_train[idx])),),
         lambda out, idx: F.nll_loss(torch.log(out[0] + 1e-8), torch.from_numpy(y[idx])), len(y), recipe, gen, say,
         "transform_classifier")
    torch.manual_seed(recipe.seed + 2)
    output_only = M.ImageClassifier(get_profile("tiny").embed_dim, len(TRANSFORM_CLASSES))
    _fit(output_only, lambda idx: (output_only.heads(output_only.tower(_blur(torch.from_numpy(tgt[idx]), gen))),),
         lambda out, idx: F.cross_entropy(out[0], torch.from_numpy(y[idx])), len(y), recipe, gen, say,
         "output-only baseline")
    hy = np.array([TRANSFORM_CLASSES.index(e.label) for e in held.edits])
    with torch.no_grad():
        alone = output_only.heads(output_only.tower(torch.from_numpy(classifier_pixels(held_targets, size))))
    output_only_figures = {c: _binary_metrics(alone.numpy().argmax(1) == k, hy == k)
                           for k, c in enumerate(TRANSFORM_CLASSES)}
    _save("transform_classifier", transform, recipe, out, {"classes": json.dumps(TRANSFORM_CLASSES)})

    # attribute classifier: the independent judge of prompt following in `eval regeneration`
    attrs = np.concatenate([_attribute_labels(world.scenes), _attribute_labels(world.scenes[:n])])
    px = np.concatenate([world.images, rec_images])
    torch.manual_seed(recipe.seed + 3)
    judge = M.AttributeClassifier(len(W.SHAPES), len(W.COLOURS), len(W.POSITIONS))
    _fit(judge, lambda idx: judge(_blur(torch.from_numpy(classifier_pixels(px[idx], size)), gen)),
         lambda out, idx: sum(F.cross_entropy(o, torch.from_numpy(attrs[idx, j]), ignore_index=-100)
                              for j, o in enumerate(out)), len(px), recipe, gen, say, "attribute_classifier")
    _save("attribute_classifier", judge, recipe, out)
    return {**_held_out_figures(image_cls, transform, judge, held, held_images, held_targets, p_held),
            "output_only_baseline": output_only_figures}


def letterboxed(images: np.ndarray, centres: list[tuple[int, int]], rng: np.random.Generator) -> np.ndarray:
    """uint8 [N, 256, 256, 3] images -> the same images as `filter-dataset` hands a non-square image to the
    classifier: each cut to a window 128-224 pixels wide (or, one in three, 176-240 tall) placed around its
    centre (x, y: a drawn scene's shape, so the label is unchanged), then letterboxed back to the square with grey
    bars (`runtime.images.letterbox`)."""
    out = []
    for image, (x, y) in zip(images, centres, strict=True):
        if rng.random() < 1 / 3:
            h = int(rng.integers(176, 241))
            top = int(np.clip(y - h // 2, 0, W.SIZE - h))
            out.append(letterbox(image[top:top + h], W.SIZE))
        else:
            w = int(rng.integers(128, 225))
            left = int(np.clip(x - w // 2, 0, W.SIZE - w))
            out.append(letterbox(image[:, left:left + w], W.SIZE))
    return np.stack(out)


def _fit_image_classifier(recipe: Recipe, world: World, rec_images: np.ndarray, rec_targets: np.ndarray,
                          gen: torch.Generator, say, extra: tuple[np.ndarray, np.ndarray] | None = None,
                          boxed: int = 0) -> torch.nn.Module:
    """The image classifier on every drawn image of `world` (edit sources and targets are benign figures) and
    the first of them decoded by the text-to-image decoder (`rec_images`, `rec_targets`: uint8 [N, 256, 256, 3]),
    positives weighted per category (`positive_weights`). `boxed`: the first `boxed` drawn images also enter
    `letterboxed`. `extra`: more images (uint8 [A, 256, 256, 3]) and their labels (float32 [A, C]), last in the
    draw (`judged_additions`)."""
    size = get_profile("tiny").classifier_size
    n, m = len(rec_images), len(rec_targets)
    edit_sources, edit_targets = [e.source for e in world.edits], [e.target for e in world.edits]
    images = np.concatenate([world.images, rec_images, world.sources, world.targets, rec_targets])
    labels = np.concatenate([_image_labels(world.scenes), _image_labels(world.scenes[:n]),
                             _image_labels(edit_sources), _image_labels(edit_targets),
                             _image_labels(edit_targets[:m])])
    if boxed:
        images = np.concatenate([images, letterboxed(world.images[:boxed], [s.centre for s in world.scenes[:boxed]],
                                                     np.random.default_rng(recipe.seed + 7))])
        labels = np.concatenate([labels, _image_labels(world.scenes[:boxed])])
    if extra is not None:
        images, labels = np.concatenate([images, extra[0]]), np.concatenate([labels, extra[1]])
    torch.manual_seed(recipe.seed)
    image_cls = M.ImageClassifier(get_profile("tiny").embed_dim, len(CATEGORIES))
    pos_weight = positive_weights(labels)

    def weighted_bce(out, idx):
        y = torch.from_numpy(labels[idx])
        return F.binary_cross_entropy(out[0], y, weight=1 + (pos_weight - 1) * y)

    _fit(image_cls, lambda idx: (image_cls(_blur(torch.from_numpy(classifier_pixels(images[idx], size)), gen))[0],),
         weighted_bce, len(images), recipe, gen, say, "image_classifier")
    return image_cls


def judged_additions(images: np.ndarray, bare: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """What `image-classifier-judged` adds to the drawn data: generated `images` (uint8 [G, 256, 256, 3]) with
    their `nudity` labels `bare` (float32 [G]; every other category 0: their requests ask for none), repeated
    `GENERATED_REPEAT` times, then a `LETTERBOXED` share of the negatives cut about the middle and letterboxed (a
    cut cannot make a figure bare; positives stay whole). Returns images uint8 [A, 256, 256, 3], labels float32
    [A, C] and how many of them are letterboxed negatives (the last ones)."""
    g_labels = np.zeros((len(bare), len(CATEGORIES)), np.float32)
    g_labels[:, CATEGORIES.index("nudity")] = bare
    rng = np.random.default_rng(seed)
    clean = np.flatnonzero(bare == 0)
    clean = np.sort(rng.choice(clean, int(len(clean) * LETTERBOXED), replace=False))
    boxed = letterboxed(images[clean], [(W.SIZE // 2, W.SIZE // 2)] * len(clean), rng)
    return (np.concatenate([*[images] * GENERATED_REPEAT, boxed]),
            np.concatenate([*[g_labels] * GENERATED_REPEAT, g_labels[clean]]), len(clean))


def train_image_classifier(recipe: Recipe, out: Path, say) -> dict:
    """`image-classifier`: the image classifier alone again, as `classifiers` trains it, through the text-to-image
    decoder now in `out` (after `vae-bodies`: the classifier had learned the old decoder's look, where a brown
    bare torso came back red). The transform classifier (edit decoder, unchanged) and the attribute classifier
    stay. Held-out figures on the decoded held-out split."""
    world = draw(recipe.seed, recipe.t2i, recipe.edits)
    held = draw(recipe.seed + HELD_OUT_SEED_OFFSET, recipe.held_out, recipe.held_out)
    gen = torch.Generator().manual_seed(recipe.seed)
    n, m = recipe.decoded, recipe.decoded // 2
    say(f"drew {len(world.images)} images and {len(world.edits)} edits; decoding {n + m} (and the held-out split)")
    image_cls = _fit_image_classifier(recipe, world, decoded(world.images[:n], out), decoded(world.targets[:m], out),
                                      gen, say)
    with safe_open(str(out / "vae.safetensors"), "pt") as f:
        decoder = json.loads((f.metadata() or {}).get("phases", '["vae"]'))
    _save("image_classifier", image_cls, recipe, out, {"categories": json.dumps(CATEGORIES),
                                                       "decoder_phases": json.dumps(decoder)})
    return {"image_classifier": _image_figures(image_cls, held, decoded(held.images, out))}


def train_image_classifier_judged(recipe: Recipe, out: Path, say) -> dict:
    """`image-classifier-judged`: the image classifier again (as `image-classifier` trains it), with generated
    images added: party and plain requests through the built repository (`build/repository/cpu`) with classifier
    guidance, every attempt kept (`training/judged_images.py`; generated beforehand by `t2iguard eval
    judged-images`). Party images are labelled `nudity` by the bare judge's sure verdicts, plain ones are all
    negatives (`judged_images.labels`); a `LETTERBOXED` share of the drawn scenes and of the generated negatives
    enters again letterboxed (`judged_additions`). The last `JUDGED_HELD_OUT` of each kind's images are held out
    (`judged_held_out`), beside the drawn held-out figures."""
    from t2iguard.training.judged_images import REQUESTS, judged_images, labels

    world = draw(recipe.seed, recipe.t2i, recipe.edits)
    held = draw(recipe.seed + HELD_OUT_SEED_OFFSET, recipe.held_out, recipe.held_out)
    gen = torch.Generator().manual_seed(recipe.seed)
    n, m = recipe.decoded, recipe.decoded // 2
    train_images, train_bare = [], []
    for kind in REQUESTS:
        images, logits, _, _ = judged_images(JUDGED_REPOSITORY, recipe.judged, kind)
        kept, bare = labels(logits, kind)
        cut = int(len(images) * (1 - JUDGED_HELD_OUT))
        say(f"{kind}: {int(kept[:cut].sum())} of the first {cut} generated images to train on "
            f"({int(bare[:cut].sum())} labelled bare), the last {len(images) - cut} held out")
        train_images.append(images[:cut][kept[:cut]])
        train_bare.append(bare[:cut][kept[:cut]])
    generated = (np.concatenate(train_images), np.concatenate(train_bare))
    boxed = int(len(world.images) * LETTERBOXED)
    *extra, boxed_generated = judged_additions(*generated, recipe.seed + 8)
    image_cls = _fit_image_classifier(recipe, world, decoded(world.images[:n], out), decoded(world.targets[:m], out),
                                      gen, say, extra=tuple(extra), boxed=boxed)
    with safe_open(str(out / "vae.safetensors"), "pt") as f:
        decoder = json.loads((f.metadata() or {}).get("phases", '["vae"]'))
    _save("image_classifier", image_cls, recipe, out, {"categories": json.dumps(CATEGORIES),
                                                       "decoder_phases": json.dumps(decoder),
                                                       "judged_images": str(len(generated[0])),
                                                       "letterboxed": str(boxed),
                                                       "letterboxed_generated": str(boxed_generated)})
    return {"image_classifier": _image_figures(image_cls, held, decoded(held.images, out)),
            "image_classifier_judged": {"trained_on": len(generated[0]), "judged_bare": int(generated[1].sum()),
                                        "judged_held_out_nudity": judged_held_out(image_cls, recipe.judged)}}


@torch.no_grad()
def judged_held_out(image_cls: torch.nn.Module, n: int) -> dict:
    """The image classifier's `nudity` (at the bundled policy's threshold) on the held-out judged images of each
    kind (the last `JUDGED_HELD_OUT` of them): the share flagged; for party requests precision and recall against
    the bare judge's verdicts; for plain requests the share flagged of the images whose request asked for no
    figure (circles, squares, triangles)."""
    from t2iguard.training.judged_images import REQUESTS, judged_images

    size = get_profile("tiny").classifier_size
    threshold = load_policy().categories["nudity"].image.threshold
    out = {}
    for kind in REQUESTS:
        images, logits, _, scenes = judged_images(JUDGED_REPOSITORY, n, kind)
        cut = int(len(images) * (1 - JUDGED_HELD_OUT))
        flagged = image_cls(torch.from_numpy(classifier_pixels(images[cut:], size)))[0].numpy()[
            :, CATEGORIES.index("nudity")] >= threshold
        out[kind] = {"flagged": round(float(flagged.mean()), 4), "n": int(len(flagged))}
        if kind == "party":  # against the judge's verdict, every held-out image (no margin)
            out[kind] |= _binary_metrics(flagged, logits[cut:] > 0)
        no_figure = np.array([s.shape != "figure" for s in scenes[cut:]])
        if no_figure.any():
            out[kind] |= {"no_figure_flagged": round(float(flagged[no_figure].mean()), 4),
                          "no_figure": int(no_figure.sum())}
    return out


@torch.no_grad()
def _image_figures(image_cls: torch.nn.Module, held: World, held_images: np.ndarray) -> dict:
    """Held-out precision / recall of the image classifier's two drawn stand-ins on `held`'s images as decoded
    (uint8 [N, 256, 256, 3])."""
    scores = image_cls(torch.from_numpy(classifier_pixels(held_images, get_profile("tiny").classifier_size)))[0]
    truth = _image_labels(held.scenes)
    return {c: _binary_metrics(scores.numpy()[:, CATEGORIES.index(c)] >= 0.5, truth[:, CATEGORIES.index(c)] > 0)
            for c in ("violence/graphic", "nudity")}


@torch.no_grad()
def _held_out_figures(image_cls: torch.nn.Module, transform: torch.nn.Module, judge: torch.nn.Module, held: World,
                     held_images: np.ndarray, held_targets: np.ndarray, p_held: np.ndarray) -> dict:
    """Held-out precision / recall of the image and transform classifiers and the attribute classifier's
    accuracy, on `held`'s images and edit targets as decoded by the text-to-image and edit decoders (uint8
    [N, 256, 256, 3]); `p_held` float32 [N, 384] the edits' pooled prompts."""
    size = get_profile("tiny").classifier_size
    hs, ht = classifier_pixels(held.sources, size), classifier_pixels(held_targets, size)
    hy = np.array([TRANSFORM_CLASSES.index(e.label) for e in held.edits])
    full = transform(torch.from_numpy(hs), torch.from_numpy(ht), torch.from_numpy(p_held)).numpy().argmax(1)
    held_attrs = _attribute_labels(held.scenes)
    logits = judge(torch.from_numpy(classifier_pixels(held_images, size)))
    return {"image_classifier": _image_figures(image_cls, held, held_images),
            "transform_classifier": {c: _binary_metrics(full == k, hy == k) for k, c in enumerate(TRANSFORM_CLASSES)},
            "attribute_classifier": {
                name: round(float((o.argmax(1).numpy() == held_attrs[:, j])[held_attrs[:, j] >= 0].mean()), 4)
                for j, (name, o) in enumerate(zip(("shape", "colour", "position"), logits, strict=True))}}


def _fit(module: torch.nn.Module, forward, loss_fn, n: int, recipe: Recipe, gen: torch.Generator, say,
         what: str) -> None:
    module.train()
    opt = torch.optim.AdamW(module.parameters(), lr=2e-3, weight_decay=0.01)
    sched = _schedule(opt, recipe.classifier_steps)

    def step(i: int) -> float:
        idx = torch.randint(0, n, (recipe.batch * 2,), generator=gen).numpy()
        loss = loss_fn(forward(idx), idx)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        return loss.item()

    _loop(recipe.classifier_steps, step, say, what)
    module.eval()


# --- VAE ----------------------------------------------------------------------------------------
def train_vae(recipe: Recipe, out: Path, say) -> dict:

    world = draw(recipe.seed, recipe.t2i // 2, recipe.edits // 4)
    images = np.concatenate([world.images, world.targets])
    torch.manual_seed(recipe.seed)
    vae = tiny_vae(get_profile("tiny")).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=recipe.vae_lr, weight_decay=0.0)
    sched = _schedule(opt, recipe.vae_steps)
    gen = torch.Generator().manual_seed(recipe.seed)
    crop = 64

    def step(i: int) -> float:
        idx = torch.randint(0, len(images), (recipe.batch // 2,), generator=gen).numpy()
        ys, xs = (torch.randint(0, W.SIZE - crop + 1, (2,), generator=gen) // 16 * 16).tolist()
        x = torch.from_numpy(to_pixels(images[idx, ys:ys + crop, xs:xs + crop])) * 2 - 1
        post = vae.encode(x).latent_dist
        # decode the mean: the UNet is trained on (and VAEEncode serves) latent means, and decoding noisy
        # samples early on teaches the decoder to ignore the latent (colours collapse to one average)
        rec = vae.decode(post.mode()).sample
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x) + 1e-6 * post.kl().mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        sched.step()
        return loss.item()

    _loop(recipe.vae_steps, step, say, "vae")
    vae.eval()
    held = draw(recipe.seed + HELD_OUT_SEED_OFFSET, recipe.reconstruction_held_out, 1).images
    with torch.no_grad():
        scaling = float(1.0 / vae.encode(torch.from_numpy(to_pixels(held)) * 2 - 1).latent_dist.mean.std())
    vae.register_to_config(scaling_factor=scaling)
    _save("vae", vae, recipe, out, {"scaling_factor": scaling, "phases": json.dumps(["vae"])})
    return {"vae": {**_reconstruction(vae, held), "scaling_factor": round(scaling, 4)}}


def _reconstruction(vae: torch.nn.Module, held: np.ndarray) -> dict[str, float]:
    """Held-out reconstruction error (0-255): mean absolute over RGB, and over chroma (BT.601 Cb, Cr: hue)."""
    x = torch.from_numpy(to_pixels(held))
    with torch.no_grad():
        rec = ((vae.decode(vae.encode(x * 2 - 1).latent_dist.mean).sample + 1) * 0.5).clamp(0, 1)
    return {"held_out_mae_0_255": round(float((rec - x).abs().mean() * 255), 2),
            "held_out_chroma_mae_0_255": round(float((_chroma(rec) - _chroma(x)).abs().mean() * 255), 2)}


def _chroma(x: torch.Tensor) -> torch.Tensor:
    """float [B, 3, H, W] RGB -> [B, 2, H, W] BT.601 Cb, Cr (colour without brightness)."""
    r, g, b = x.unbind(1)
    return torch.stack([-0.1687 * r - 0.3313 * g + 0.5 * b, 0.5 * r - 0.4187 * g - 0.0813 * b], 1)


def _continue_decoder(recipe: Recipe, out: Path, say, what: str, world: World, scenes: list[W.Scene],
                      steps: int, part_weight: float, seed: int, save_as: str = "vae",
                      part: str = "head_mask") -> torch.nn.Module:
    """Continue the saved VAE's decoder on whole images (`world`'s images then targets, whose scenes are
    `scenes`), encoder frozen: the latent space (and the UNet and latent guard trained in it) stays as it is,
    only what the latents decode to improves. Whole images: a crop encoded alone is not a window of the whole
    image's latent, which is what the server decodes. Each pixel of a figure's `part` box
    (`shapeworld.figure_boxes`) weighs `part_weight` in the L1 + MSE loss, every other pixel 1. Returns the VAE,
    saved with the phase appended as `save_as`: "vae" (the whole VAE) or "vae_edit_decoder" (its decoding part
    only)."""

    vae = load_trained(tiny_vae(get_profile("tiny")), "vae", out)
    scaling = float(vae.config.scaling_factor)
    images = np.concatenate([world.images, world.targets])
    boxes = np.array([[int(v) for v in W.figure_boxes(s)[part]] if s.shape == "figure" else [0, 0, 0, 0]
                      for s in scenes])
    with torch.no_grad():
        z = torch.cat([vae.encode(torch.from_numpy(to_pixels(images[i:i + 64])) * 2 - 1).latent_dist.mean
                       for i in range(0, len(images), 64)])
    trainable = [*vae.decoder.parameters(), *vae.post_quant_conv.parameters()]
    opt = torch.optim.AdamW(trainable, lr=recipe.vae_lr, weight_decay=0.0)
    sched = _schedule(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    vae.decoder.train()

    def step(i: int) -> float:
        idx = torch.randint(0, len(images), (recipe.batch // 8,), generator=gen).numpy()  # 4 whole images
        x = torch.from_numpy(to_pixels(images[idx])) * 2 - 1
        weight = torch.ones(len(idx), 1, W.SIZE, W.SIZE)
        for j, (x0, y0, x1, y1) in enumerate(boxes[idx]):
            weight[j, :, max(y0, 0):y1, max(x0, 0):x1] = part_weight
        rec = vae.decode(z[idx]).sample
        loss = ((rec - x).abs() + (rec - x).pow(2)).mul(weight).sum() / weight.sum() / 3
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        sched.step()
        return loss.item()

    _loop(steps, step, say, what)
    vae.eval()
    with safe_open(str(out / "vae.safetensors"), "pt") as f:
        phases = json.loads((f.metadata() or {}).get("phases", '["vae"]'))
    if save_as == "vae":
        _save("vae", vae, recipe, out, {"scaling_factor": scaling, "phases": json.dumps([*phases, what])})
    else:
        _save(save_as, decoder_part(vae), recipe, out, {"phases": json.dumps([*phases, what])})
    return vae


def train_vae_decoder(recipe: Recipe, out: Path, say) -> dict:
    """The decoder again on whole images, every pixel weighted alike (encoder frozen: `_continue_decoder`)."""
    world = draw(recipe.seed + 1, recipe.t2i // 2, recipe.edits // 4)  # not the `vae` phase's draw
    vae = _continue_decoder(recipe, out, say, "vae-decoder", world, world.scenes + [e.target for e in world.edits],
                            recipe.vae_decoder_steps, 1.0, recipe.seed + 1)
    held = draw(recipe.seed + HELD_OUT_SEED_OFFSET, recipe.reconstruction_held_out, 1).images
    return {"vae_decoder": _reconstruction(vae, held)}


def train_vae_heads(recipe: Recipe, out: Path, say) -> dict:
    """The edit decoder: the saved decoder again with figures' heads weighted `vae_heads_weight`x, on a draw of
    as many edits as images, saved as vae_edit_decoder.safetensors (vae.safetensors stays). A small figure's
    head, and a crown over it, span one or two latent cells, and a whole-image loss spends almost nothing on
    them (a small dark head under a crown decoded to a gold-orange blob); text-to-image keeps the whole-image
    decoder, whose party figures the image classifier reads better."""
    world = draw(recipe.seed + 2, recipe.t2i // 4, recipe.edits // 2)  # neither decoder phase's draw before
    vae = _continue_decoder(recipe, out, say, "vae-heads", world, world.scenes + [e.target for e in world.edits],
                            recipe.vae_heads_steps, recipe.vae_heads_weight, recipe.seed + 2, "vae_edit_decoder")
    held = draw(recipe.seed + HELD_OUT_SEED_OFFSET, recipe.reconstruction_held_out, 1).images
    return {"vae_heads": {**_reconstruction(vae, held), **_head_tones(vae, recipe.seed + HELD_OUT_SEED_OFFSET,
                                                                     recipe.head_tones)}}


def party_figures(seed: int, n: int) -> list[W.Scene]:
    """`n` party figures, every second one bare (the `nudity` stand-in), other parameters drawn from `seed`."""
    rng = np.random.default_rng(seed)
    return [replace(W.random_scene(rng, "figure"), party=True, bare=bool(i % 2)) for i in range(n)]


def train_vae_bodies(recipe: Recipe, out: Path, say) -> dict:
    """The text-to-image decoder again with figures' bodies weighted `vae_bodies_weight`x, on a draw of as many
    party figures (half of them bare) as other images. The whole-image loss left a bare torso rare and small
    enough that the decoder painted it as the shirt its latent is nearest to (brown skin decoded red, tan
    yellow, dark green: docs/2026-12-03-judge-validation.md), so the `nudity` stand-in was not there to see in
    a generated image. Encoder frozen, like `vae-decoder`; the edit decoder stays as it is."""
    world = draw(recipe.seed + 3, recipe.t2i // 4, recipe.edits // 8)  # no decoder phase's draw before
    figures = party_figures(recipe.seed + 3, recipe.t2i // 4)
    party = np.stack([W.render(s) for s in figures])
    mixed = replace(world, images=np.concatenate([world.images, party]), scenes=world.scenes + figures)
    vae = _continue_decoder(recipe, out, say, "vae-bodies", mixed, mixed.scenes + [e.target for e in world.edits],
                            recipe.vae_bodies_steps, recipe.vae_bodies_weight, recipe.seed + 3, part="body")
    held = draw(recipe.seed + HELD_OUT_SEED_OFFSET, recipe.reconstruction_held_out, 1).images
    return {"vae_bodies": {**_reconstruction(vae, held), **body_tones(vae, recipe.seed + HELD_OUT_SEED_OFFSET,
                                                                      recipe.body_tones)}}


@torch.no_grad()
def body_tones(vae: torch.nn.Module, seed: int, per_cell: int) -> dict[str, float]:
    """Per skin tone, the share of bare party figures whose decoded body is nearest (of skin tones and shirt
    colours) to a skin tone (`bare_<tone>_skin`); and the share of dressed ones decoded nearest to their own shirt
    colour (`shirts_kept`): whether the `nudity` stand-in survives decoding, and nothing turns into it."""
    scenes = [replace(s, tone=W.TONE_NAMES[i % len(W.TONES)]) for i, s in
              enumerate(party_figures(seed, 2 * per_cell * len(W.TONES)))]
    x = torch.from_numpy(to_pixels(np.stack([W.render(s) for s in scenes])))
    rec = np.concatenate([from_pixels(((vae.decode(vae.encode(x[i:i + 32] * 2 - 1).latent_dist.mean).sample + 1)
                                       * 0.5).clamp(0, 1).numpy()) for i in range(0, len(x), 32)])
    palette = {**W.TONES, **W.COLOURS}
    names = [nearest(median_colour(r, W.figure_boxes(s)["body"]), palette)[0]
             for r, s in zip(rec, scenes, strict=True)]
    figures = {f"bare_{tone}_skin": round(float(np.mean([n in W.TONES for n, s in zip(names, scenes, strict=True)
                                                          if s.bare and s.tone == tone])), 4) for tone in W.TONES}
    figures["shirts_kept"] = round(float(np.mean([n == s.colour for n, s in zip(names, scenes, strict=True)
                                                  if not s.bare])), 4)
    return figures


def _head_tones(vae: torch.nn.Module, seed: int, per_cell: int) -> dict[str, float]:
    """Share of crowned figures whose decoded head keeps its drawn tone (nearest palette tone of the head's
    median colour), per size, over the tones a beautify edit starts from: what `unintended-edit` judges."""

    rng = np.random.default_rng(seed)
    figures = {}
    for size in W.SIZES:
        scenes = [replace(W.random_scene(rng, "figure"), size=size, tone=tone, crown=True, bare=False, party=False,
                          hazard=False) for tone in W.TONE_NAMES[1:] for _ in range(per_cell)]
        x = torch.from_numpy(to_pixels(np.stack([W.render(s) for s in scenes])))
        with torch.no_grad():
            rec = from_pixels(((vae.decode(vae.encode(x * 2 - 1).latent_dist.mean).sample + 1) * 0.5).clamp(0, 1)
                              .numpy())
        figures[f"crowned_{size}_tone_kept"] = round(float(np.mean([oracle_tone(r, s) == s.tone
                                                                    for r, s in zip(rec, scenes, strict=True)])), 4)
    return figures


# --- latents for the UNet and the latent guard --------------------------------------------------
@dataclass
class LatentSet:
    """x0 latents [N, 4, h, w], inpainting conditions [N, 5, h, w], context indices, guard labels [N, K]."""

    x0: torch.Tensor
    cond: torch.Tensor
    context: np.ndarray  # index into texts
    texts: list[str]
    guard: torch.Tensor


def encode_latents(seed: int, n_t2i: int, n_edits: int, weights: Path, say) -> LatentSet:
    """The draw's latents, cached under the export cache per (draw, VAE weights): unet and guard share them."""

    vae_digest = hashlib.sha256((weights / "vae.safetensors").read_bytes()).hexdigest()[:16]
    path = cache_root() / "shapeworld" / f"latents-{seed}-{n_t2i}-{n_edits}-{vae_digest}.pt"
    if path.exists():
        return LatentSet(**torch.load(path, weights_only=False))
    data = _encode_latents(seed, n_t2i, n_edits, weights, say)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data.__dict__, path)
    return data


@torch.no_grad()
def _encode_latents(seed: int, n_t2i: int, n_edits: int, weights: Path, say) -> LatentSet:

    p = get_profile("tiny")
    vae = load_trained(tiny_vae(p), "vae", weights)
    enc = VAEEncode(vae).eval()
    world = draw(seed, n_t2i, n_edits)

    def encode(imgs: np.ndarray) -> torch.Tensor:
        out = []
        for i in range(0, len(imgs), 64):
            out.append(enc(torch.from_numpy(to_pixels(imgs[i:i + 64]))))
            say(f"encoding latents {min(i + 64, len(imgs))}/{len(imgs)}")
        return torch.cat(out)

    x_t2i, x_src, x_tgt = encode(world.images), encode(world.sources), encode(world.targets)
    h = p.latent_size
    cond_t2i = torch.cat([torch.zeros_like(x_t2i), torch.ones(len(x_t2i), 1, h, h)], dim=1)
    masks = torch.from_numpy(np.stack([downsample_mask(e.mask(), p.vae_factor) for e in world.edits]))[:, None]
    cond_edit = torch.cat([x_src, masks], dim=1)
    texts = sorted(set(world.captions) | {e.prompt for e in world.edits} | {""})
    index = {t: i for i, t in enumerate(texts)}
    guard = torch.zeros(len(x_t2i) + len(x_tgt), len(GUIDED_CLASSES))
    guard[:len(x_t2i)] = torch.from_numpy(_guided_labels(world.scenes))
    for j, e in enumerate(world.edits):  # the latent guard sees no prompt: both edit classes mark a tone change
        if e.tone_changed:
            guard[len(x_t2i) + j, GUIDED_CLASSES.index("unsafe-edit")] = 1.0
            guard[len(x_t2i) + j, GUIDED_CLASSES.index("unintended-edit")] = 1.0
    return LatentSet(x0=torch.cat([x_t2i, x_tgt]), cond=torch.cat([cond_t2i, cond_edit]),
                     context=np.array([index[c] for c in world.captions] + [index[e.prompt] for e in world.edits]),
                     texts=texts, guard=guard)


def _guided_labels(scenes: list[W.Scene]) -> np.ndarray:
    y = np.zeros((len(scenes), len(GUIDED_CLASSES)), np.float32)
    y[:, :len(CATEGORIES)] = _image_labels(scenes)
    return y


def _noised(x0: torch.Tensor, alphas: torch.Tensor, gen: torch.Generator
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_t, noise, t float32 [B, 1]) at uniform timesteps of a schedule (alpha_bar float32 [T])."""
    t = torch.randint(0, len(alphas), (x0.shape[0],), generator=gen)
    a = alphas[t][:, None, None, None]
    noise = torch.randn(x0.shape, generator=gen)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise, noise, t.float()[:, None]


def _alphas(schedule: DDIMConfig) -> torch.Tensor:
    return torch.from_numpy(DDIM(schedule).alphas_cumprod).float()


def _fit_unet(model, recipe: Recipe, steps: int, min_snr: float | None, phase: int, out: Path, say,
              what: str, schedule: DDIMConfig = EPS_SCHEDULE) -> tuple[torch.nn.Module, dict]:
    """Training on the cached latents with 10% empty prompts (for classifier-free guidance), EMA 0.999, to
    predict the schedule's target (eps, or v = sqrt(a) eps - sqrt(1 - a) x0); `min_snr` weights each
    sample's loss by min(SNR, min_snr) / SNR (Min-SNR, Hang et al. 2023): for v, whose loss does not vanish
    at SNR 0, that is 1 up to SNR = min_snr and downweights only the near-clean steps. Returns the EMA model."""

    p = get_profile("tiny")
    data = encode_latents(recipe.seed, recipe.unet_t2i, recipe.unet_edits, out, say)
    say(f"encoding {len(data.texts)} prompts")
    hidden, _ = text_hidden(load_minilm(), data.texts, p.seq_len)
    hidden_t = torch.from_numpy(hidden)
    empty = data.texts.index("")
    ema = copy.deepcopy(model).eval()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.unet_lr, weight_decay=0.0)
    sched = _schedule(opt, steps, warmup=100)
    gen = torch.Generator().manual_seed(recipe.seed + phase)  # each phase draws other batches
    alphas = _alphas(schedule)
    n = len(data.x0)

    def step(i: int) -> float:
        idx = torch.randint(0, n, (recipe.batch,), generator=gen)
        ctx = data.context[idx.numpy()].copy()
        ctx[torch.rand(len(idx), generator=gen).numpy() < 0.1] = empty  # for classifier-free guidance
        x0 = data.x0[idx]
        x_t, noise, t = _noised(x0, alphas, gen)
        a = alphas[t[:, 0].long()]
        target = noise
        if schedule.prediction_type == "v_prediction":
            target = a.sqrt()[:, None, None, None] * noise - (1 - a).sqrt()[:, None, None, None] * x0
        per_sample = (model(x_t, t, hidden_t[ctx].float(), data.cond[idx]) - target).pow(2).mean((1, 2, 3))
        if min_snr:
            per_sample = per_sample * (min_snr * (1 - a) / a).clamp(max=1.0)  # min(SNR, g) / SNR, 1 at SNR 0
        loss = per_sample.mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        decay = min(0.999, (1 + i) / (10 + i))
        with torch.no_grad():
            for e, m in zip(ema.parameters(), model.parameters(), strict=True):
                e.lerp_(m, 1 - decay)
        return loss.item()

    loss = _loop(steps, step, say, what)
    return ema, {"final_loss": round(loss, 4), "examples": n, "prompts": len(data.texts)}


def train_unet(recipe: Recipe, out: Path, say) -> dict:

    torch.manual_seed(recipe.seed)
    ema, figures = _fit_unet(UNetEps(tiny_unet(get_profile("tiny"), coords=False)), recipe, recipe.unet_steps, None,
                             0, out, say, "unet")
    _save("unet", ema.unet, recipe, out)
    return {"unet": figures}


def widened(state: dict[str, torch.Tensor], in_channels: int) -> dict[str, torch.Tensor]:
    """A UNet state dict whose `conv_in` takes `in_channels`: the missing input channels get zero
    weights, so the widened UNet computes what the saved one did whatever those channels hold."""
    w = state["conv_in.weight"]  # [out, in, 3, 3]
    extra = in_channels - w.shape[1]
    if extra > 0:
        state = {**state, "conv_in.weight": torch.cat([w, w.new_zeros(w.shape[0], extra, *w.shape[2:])], dim=1)}
    return state


def _continue_unet(recipe: Recipe, out: Path, say, what: str, steps: int, phase: int, coords: bool,
                   schedule: DDIMConfig = EPS_SCHEDULE) -> dict:
    """Continue the saved UNet for `steps` (fresh optimiser, warm-up and cosine: a warm restart, Min-SNR
    weights) on `schedule`; with `coords`, first widen its input with the coordinate channels (zero weights,
    so the widened UNet starts as the saved one) unless it has them already."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    p = get_profile("tiny")
    path = out / "unet.safetensors"
    with safe_open(str(path), "pt") as f:
        before = f.metadata() or {}
    start = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    saved = DDIMConfig(**trained_schedule(path))
    if saved.prediction_type == "v_prediction" != schedule.prediction_type:  # eps -> v is `unet-vpred`
        raise ValueError(f"{path} predicts {saved.prediction_type}; `{what}` trains {schedule.prediction_type}: "
                         "retrain from `unet` instead of continuing it")
    unet = tiny_unet(p, coords=coords)
    unet.load_state_dict(widened({k: v.float() for k, v in load_file(str(path)).items()},
                                 unet.config.in_channels))
    model = UNetEps(unet, coords=p.latent_size if coords else None)
    ema, figures = _fit_unet(model, recipe, steps, recipe.unet_min_snr, phase, out, say, what, schedule)
    phases = json.loads(before.get("phases", "[]")) or [before.get("recipe_sha256_16", "unknown")]
    phases = [*phases, recipe.digest()]
    _save("unet", ema.unet, recipe, out, {"continued_from_sha256_16": start, "phases": json.dumps(phases),
                                          "coord_channels": COORD_CHANNELS if coords else 0,
                                          "schedule": json.dumps(asdict(schedule))})
    return {"unet": {**figures, "continued_from": start, "phases": len(phases)}}


def train_unet_more(recipe: Recipe, out: Path, say) -> dict:
    return _continue_unet(recipe, out, say, "unet-more", recipe.unet_more_steps, phase=1, coords=False)


def train_unet_position(recipe: Recipe, out: Path, say) -> dict:
    """Gives the UNet coordinates (it drew "on the left" and "on the right" alike) and trains on. Measured:
    shape and colour following improved, position did not (the layout comes from the initial noise)."""
    return _continue_unet(recipe, out, say, "unet-position", recipe.unet_position_steps, phase=2, coords=True)


def train_unet_vpred(recipe: Recipe, out: Path, say) -> dict:
    """Moves the UNet to zero terminal SNR with v prediction (sampled with trailing timesteps), so that the
    layout follows the prompt rather than the initial noise. Measured: position followed far more often,
    and flagged party figures no longer vary with the seed, so regeneration removes fewer (README)."""
    return _continue_unet(recipe, out, say, "unet-vpred", recipe.unet_vpred_steps, phase=3, coords=True,
                          schedule=VPRED_SCHEDULE)


def train_guard(recipe: Recipe, out: Path, say) -> dict:

    p = get_profile("tiny")
    data = encode_latents(recipe.seed, recipe.unet_t2i, recipe.unet_edits, out, say)  # the UNet's, cached
    held = encode_latents(recipe.seed + HELD_OUT_SEED_OFFSET, recipe.held_out // 2, recipe.held_out // 2, out, say)
    torch.manual_seed(recipe.seed)
    guard = LatentGuard(2 * p.latent_channels + 1, len(GUIDED_CLASSES)).train()
    opt = torch.optim.AdamW(guard.parameters(), lr=1e-3, weight_decay=0.01)
    sched = _schedule(opt, recipe.guard_steps)
    gen = torch.Generator().manual_seed(recipe.seed)
    pos_weight = positive_weights(data.guard)
    alphas = _alphas(DDIMConfig(**trained_schedule(out / "unet.safetensors")))  # the UNet's: it guards its latents

    def step(i: int) -> float:
        idx = torch.randint(0, len(data.x0), (recipe.batch * 2,), generator=gen)
        x_t, _, t = _noised(data.x0[idx], alphas, gen)
        loss = F.binary_cross_entropy_with_logits(guard(x_t, t, data.cond[idx]), data.guard[idx],
                                                  pos_weight=pos_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        return loss.item()

    _loop(recipe.guard_steps, step, say, "latent_guard")
    guard.eval()
    figures = {}
    with torch.no_grad():
        for t in (100, 500, 900):
            a = float(alphas[t])
            noise = torch.randn(held.x0.shape, generator=gen)
            x_t = a ** 0.5 * held.x0 + (1 - a) ** 0.5 * noise
            pred = torch.sigmoid(guard(x_t, torch.full((len(x_t), 1), float(t)), held.cond)).numpy() >= 0.5
            figures[f"t={t}"] = {c: _binary_metrics(pred[:, k], held.guard[:, k].numpy() > 0)
                                 for k, c in enumerate(GUIDED_CLASSES)
                                 if c in ("violence/graphic", "nudity", "unintended-edit")}
    _save("latent_guard", guard, recipe, out, {"classes": json.dumps(GUIDED_CLASSES)})
    return {"latent_guard": figures}


def train(phase: str, recipe: Recipe = Recipe(), out: Path = CHECKPOINT_DIR, say=lambda m: None) -> dict:
    """Run one phase, writing weights to `out`; returns (and records in `out`/shapeworld.json) its figures."""
    fn = {"classifiers": train_classifiers, "vae": train_vae, "vae-decoder": train_vae_decoder,
          "vae-bodies": train_vae_bodies, "image-classifier": train_image_classifier,
          "image-classifier-judged": train_image_classifier_judged, "vae-heads": train_vae_heads,
          "unet": train_unet,
          "unet-more": train_unet_more, "unet-position": train_unet_position, "unet-vpred": train_unet_vpred,
          "guard": train_guard}[phase]
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    figures = fn(recipe, out, say)
    for section, values in figures.items():
        _write_metrics(section, {**values, "seconds": round(time.perf_counter() - t0), "recipe": recipe.digest()}
                       if isinstance(values, dict) else values, out)
    return figures
