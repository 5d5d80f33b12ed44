"""One spec per Triton model: the single source of truth for names, dtypes, dims and batching.

Every tensor name below is written once. The ONNX exporter (`t2iguard.export.onnx_export`) takes
input/output names and dynamic batch axes from here, the repository builder renders
`config.pbtxt` for each target from here, the TensorRT profiles derive from `max_batch_size`
here, and the orchestrator and clients address tensors through these constants.

Dims exclude the batch dimension when `max_batch_size > 0` (Triton convention). Every network input
declares the values it takes (`Sample`): ONNX export, parity and the fp16 check draw from them.

Sequence length follows the prompt: the screening and rewriting text models declare their token axis
variable (`Tensor.variable`, rendered -1, a dynamic ONNX axis) and the length buckets a batch is padded to
(`ModelSpec.seq_buckets`, from `seq_buckets`): the tokenisers pad a batch to the smallest bucket that holds
its longest prompt, so Triton's dynamic batcher (which batches equal shapes) batches like lengths, and
TensorRT builds one optimisation profile per bucket. The diffusion text encoder stays at `seq_len` (the
UNet's cross-attention context was trained on it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from t2iguard.contract.profiles import Profile
from t2iguard.contract.taxonomy import (
    CATEGORIES,
    GUIDED_CLASSES,
    NUDE_CLASSES,
    REWRITE_TAGS,
    TOKEN_LABELS,
    TRANSFORM_CLASSES,
)

# --- tensor names -------------------------------------------------------------------------------
PROMPT = "PROMPT"
NEGATIVE_PROMPT = "NEGATIVE_PROMPT"
NORMALIZED_PROMPT = "NORMALIZED_PROMPT"
INPUT_IDS = "INPUT_IDS"
ATTENTION_MASK = "ATTENTION_MASK"
PROMPT_SCORES = "PROMPT_SCORES"
PROMPT_DECISION = "PROMPT_DECISION"
PROMPT_REPORT = "PROMPT_REPORT"
REWRITE_TAG_SCORES = "REWRITE_TAG_SCORES"
TOKEN_TAG_PROBS = "TOKEN_TAG_PROBS"
TOKEN_OFFSETS = "TOKEN_OFFSETS"
REWRITTEN_PROMPT = "REWRITTEN_PROMPT"
REWRITES = "REWRITES"
SEED = "SEED"
STEPS = "STEPS"
GUIDANCE_SCALE = "GUIDANCE_SCALE"
TEXT_EMBEDDINGS = "TEXT_EMBEDDINGS"
SAMPLE = "SAMPLE"
TIMESTEP = "TIMESTEP"
ENCODER_HIDDEN_STATES = "ENCODER_HIDDEN_STATES"
NOISE_PRED = "NOISE_PRED"
INPAINT_COND = "INPAINT_COND"
GUIDE_WEIGHTS = "GUIDE_WEIGHTS"
GUIDE_GRADIENT = "GUIDE_GRADIENT"
LATENT_SCORES = "LATENT_SCORES"
PIXELS = "PIXELS"
LATENTS = "LATENTS"
IMAGE = "IMAGE"
CLASSIFIER_PIXELS = "CLASSIFIER_PIXELS"
IMAGE_SCORES = "IMAGE_SCORES"
IMAGE_EMBEDDING = "IMAGE_EMBEDDING"
NUDE_SCORES = "NUDE_SCORES"
SOURCE_PIXELS = "SOURCE_PIXELS"
EDITED_PIXELS = "EDITED_PIXELS"
PROMPT_EMBEDDING = "PROMPT_EMBEDDING"
TRANSFORM_PROBS = "TRANSFORM_PROBS"
WATERMARKED_IMAGE = "WATERMARKED_IMAGE"
INIT_IMAGE = "INIT_IMAGE"
MASK_IMAGE = "MASK_IMAGE"
IMAGE_PNG = "IMAGE_PNG"
SAFETY_REPORT = "SAFETY_REPORT"

# --- model names --------------------------------------------------------------------------------
TEXT_NORMALIZE = "text_normalize"
TEXT_TOKENIZE = "text_tokenize"
PROMPT_CLASSIFIER = "prompt_classifier"
PROMPT_POLICY = "prompt_policy"
PROMPT_GUARD = "prompt_guard"
REWRITE_TAGGER = "rewrite_tagger"
REWRITE_APPLY = "rewrite_apply"
PROMPT_REWRITE = "prompt_rewrite"
TEXT_ENCODER = "text_encoder"
UNET = "unet"
LATENT_GUARD = "latent_guard"
VAE_ENCODER = "vae_encoder"
VAE_DECODER = "vae_decoder"
VAE_EDIT_DECODER = "vae_edit_decoder"
IMAGE_PREPROCESS = "image_preprocess"
IMAGE_CLASSIFIER = "image_classifier"
IMAGE_GUARD = "image_guard"
NUDE_DETECTOR = "nude_detector"
TRANSFORM_CLASSIFIER = "transform_classifier"
WATERMARK = "watermark"
SAFE_T2I = "safe_t2i"

DType = Literal["BOOL", "UINT8", "INT32", "INT64", "FP16", "FP32", "BYTES"]

NUMPY_DTYPES: dict[str, type] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "BYTES": np.object_,
}


@dataclass(frozen=True)
class Sample:
    """The values a network input takes, declared with the input: sample inputs (ONNX export, parity,
    the fp16 graph check before TensorRT, GPU timings) are drawn from this, in the tensor's dtype.

    kind:
        `uniform`: floats in [lo, hi).
        `integers`: whole numbers in [lo, hi) (a float input such as a timestep takes whole values too).
        `normal`: standard normal, unbounded (latents, hidden states, embeddings, guidance weights).
        `mask`: an attention mask: per row 1 on the first n positions and 0 after (a padded tail),
            n in [lo, the row's length].
    """

    kind: Literal["uniform", "integers", "normal", "mask"]
    lo: float = 0.0
    hi: float = 1.0


#: pixels in [0, 1]
UNIT = Sample("uniform", 0.0, 1.0)
NORMAL = Sample("normal")
#: uint8 image bytes
BYTE_VALUES = Sample("integers", 0, 256)
#: word-piece ids: above the special and unused ids, under every profile's vocabulary
#: (MiniLM's 30522, CLIP's 49408)
TOKEN_IDS = Sample("integers", 1000, 20000)
#: at least 3 real tokens (e.g. [CLS] word [SEP]), then padding
PADDED = Sample("mask", 3)
#: diffusion timesteps of a 1000-step schedule, t = 0 excluded
TIMESTEPS = Sample("integers", 1, 1000)


@dataclass(frozen=True)
class Tensor:
    """One input or output: name, Triton dtype and dims (without the batch dim when batched); a network
    input also declares the values it takes (`sample`)."""

    name: str
    dtype: DType
    dims: tuple[int, ...]
    optional: bool = False
    sample: Sample | None = None
    #: axes of `dims` whose length varies up to the dim (the token axis of the screening text models):
    #: -1 in config.pbtxt, dynamic in the ONNX graph, one TensorRT profile per `ModelSpec.seq_buckets`
    variable: tuple[int, ...] = ()

    @property
    def numpy_dtype(self) -> type:
        return NUMPY_DTYPES[self.dtype]


@dataclass(frozen=True)
class EnsembleStep:
    """One step of an ensemble; tensor names map identically between step and ensemble."""

    model: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class ModelSpec:
    """A Triton model, target independent.

    kind:
        `network`: an exported torch module (ONNX -> onnxruntime/TensorRT; on the `cpu` target the
        python backend runs the ONNX with onnxruntime).
        `python`: a python-backend model whose source is `model_repository/<source>/model.py`.
        `ensemble`: a Triton ensemble of `steps` (on the `cpu` target one python model running the steps in
        order in its own process, dynamically batched with `batch_delay_us`: export/render.py).
    """

    name: str
    kind: Literal["network", "python", "ensemble"]
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    max_batch_size: int = 0
    instances: int = 1
    batch_delay_us: int | None = None
    steps: tuple[EnsembleStep, ...] = ()
    threads: int = 1
    #: `cpu` target, ensembles: the intra-op threads of each step network inside the fused ensemble's process for
    #: a batch of several rows, in place of the steps' own `threads` (None: theirs), which one row keeps. Set where
    #: `instances` stub processes share the cores.
    step_threads: int | None = None
    #: the batch one request sends (the optimum of a TensorRT profile and a CUDA graph)
    opt_batch: int = 1
    #: token lengths a batch of its variable inputs is padded to (empty: fixed shapes)
    seq_buckets: tuple[int, ...] = ()
    #: the entry point sheds overload instead of queueing forever: requests beyond `queue_batches` full batches
    #: waiting, or waiting longer than `queue_timeout_s`, are answered UNAVAILABLE at once (the client backs off
    #: and retries). None: no queue policy. Only the entry point sets one: under any queue policy Triton 2.51's
    #: batcher stops prefetching and wakes only for an instance already waiting, so a request that arrives while
    #: a one-instance model finishes its last batch (a BLS calling the UNet step after step, a client screening
    #: prompt after prompt) sleeps the batcher's 500 ms idle wait: 4 of 600 back-to-back UNet calls, 12 of 600
    #: classifier calls (deploy/perf/RESULTS.md). The models behind the entry point are reached only through
    #: its bounded concurrency. Dynamically batched models only.
    queue_batches: int | None = None
    queue_timeout_s: float = 30.0
    description: str = ""

    @property
    def source(self) -> str:
        return self.name

    def input(self, name: str) -> Tensor:
        return next(t for t in self.inputs if t.name == name)


#: token lengths below the profile's seq_len that a screening batch is padded to: captions are 8-25 tokens, most
#: of them 8-12. With a batch's rows grouped by their own bucket (`runners.run_by_length`), the 12 bucket took the
#: graph on the hot path's 512 captions from 382-413 to 511-513 prompts/s (`deploy/perf/hot_path.py`, two
#: before/after runs); a batch of 32 holding one 17-24 token caption pads to 24 rather than 32; deploy/perf/RESULTS.md
SEQ_BUCKETS = (12, 16, 24, 32, 64)


def seq_buckets(p: Profile) -> tuple[int, ...]:
    """The length buckets of profile `p`'s screening text models: SEQ_BUCKETS under `seq_len`, then `seq_len`."""
    return (*(b for b in SEQ_BUCKETS if b < p.seq_len), p.seq_len)


def bucket_length(n: int, buckets: tuple[int, ...]) -> int:
    """The smallest bucket holding `n` tokens (the largest bucket when none does: the tokeniser truncates)."""
    return next((b for b in buckets if b >= n), buckets[-1])


def build_specs(p: Profile) -> dict[str, ModelSpec]:
    """All models of the stack for profile `p`, keyed by model name."""
    seq = (p.seq_len,)
    lat = (p.latent_channels, p.latent_size, p.latent_size)
    cond = (p.inpaint_channels, p.latent_size, p.latent_size)
    img_chw = (3, p.image_size, p.image_size)
    cls_chw = (3, p.classifier_size, p.classifier_size)
    nc, nt, nx, nk = len(CATEGORIES), len(REWRITE_TAGS), len(TRANSFORM_CLASSES), len(TOKEN_LABELS)
    b = p.max_batch
    noisy, timestep = Tensor(SAMPLE, "FP32", lat, sample=NORMAL), Tensor(TIMESTEP, "FP32", (1,), sample=TIMESTEPS)
    inpaint = Tensor(INPAINT_COND, "FP32", cond, sample=NORMAL)
    # the VAE decoders: one signature, two sets of weights (VAE_DECODER, VAE_EDIT_DECODER)
    decoder = {"inputs": (Tensor(LATENTS, "FP32", lat, sample=NORMAL),), "outputs": (Tensor(PIXELS, "FP32", img_chw),),
               "max_batch_size": b, "batch_delay_us": 1000, "threads": 2}
    tokens = (Tensor(INPUT_IDS, "INT64", seq, sample=TOKEN_IDS), Tensor(ATTENTION_MASK, "INT64", seq, sample=PADDED))
    # the screening and rewriting models: the token axis follows the batch's longest prompt, in buckets
    buckets = seq_buckets(p)
    var_tokens = tuple(replace(t, variable=(0,)) for t in tokens)
    token_probs = Tensor(TOKEN_TAG_PROBS, "FP32", (p.seq_len, nk), variable=(0,))
    token_offsets = Tensor(TOKEN_OFFSETS, "INT32", (p.seq_len, 2), variable=(0,))
    specs = [
        ModelSpec(
            TEXT_NORMALIZE, "python",
            inputs=(Tensor(PROMPT, "BYTES", (1,)),),
            outputs=(Tensor(NORMALIZED_PROMPT, "BYTES", (1,)), *var_tokens),
            max_batch_size=b, instances=1, batch_delay_us=0, seq_buckets=buckets,
            description="Unicode/obfuscation normalisation and tokenisation of a prompt",
        ),
        ModelSpec(
            PROMPT_CLASSIFIER, "network", inputs=var_tokens,
            outputs=(Tensor(PROMPT_SCORES, "FP32", (nc,)),),
            max_batch_size=b, batch_delay_us=0, threads=2, seq_buckets=buckets,
            description="MiniLM encoder + multi-label head: a score in [0,1] per policy category",
        ),
        ModelSpec(
            PROMPT_POLICY, "python",
            inputs=(Tensor(PROMPT_SCORES, "FP32", (nc,)), Tensor(NORMALIZED_PROMPT, "BYTES", (1,))),
            outputs=(Tensor(PROMPT_DECISION, "BYTES", (1,)), Tensor(PROMPT_REPORT, "BYTES", (1,))),
            max_batch_size=b, batch_delay_us=0,
            description="the policy file applied to prompt scores: allow | rewrite | block",
        ),
        ModelSpec(
            PROMPT_GUARD, "ensemble",
            inputs=(Tensor(PROMPT, "BYTES", (1,)),),
            outputs=(
                Tensor(NORMALIZED_PROMPT, "BYTES", (1,)),
                Tensor(PROMPT_SCORES, "FP32", (nc,)),
                Tensor(PROMPT_DECISION, "BYTES", (1,)),
                Tensor(PROMPT_REPORT, "BYTES", (1,)),
            ),
            # cpu target: two stub processes whose classifier runs a batch on one thread each, so that one
            # instance's python steps (normalise, tokenise, policy, the responses) overlap the other's graph: c32
            # 357 -> 448, and 405 (two instances of two threads) -> 468 prompts/s; one prompt alone keeps two
            # threads (one thread cost it up to 3.8 ms) (deploy/perf/RESULTS.md, "Hot path, 2026-12-06 (night)")
            max_batch_size=b, batch_delay_us=0, instances=2, step_threads=1,
            steps=(
                EnsembleStep(TEXT_NORMALIZE, (PROMPT,), (NORMALIZED_PROMPT, INPUT_IDS, ATTENTION_MASK)),
                EnsembleStep(PROMPT_CLASSIFIER, (INPUT_IDS, ATTENTION_MASK), (PROMPT_SCORES,)),
                EnsembleStep(PROMPT_POLICY, (PROMPT_SCORES, NORMALIZED_PROMPT), (PROMPT_DECISION, PROMPT_REPORT)),
            ),
            description="prompt screening: normalise -> classify -> policy decision",
        ),
        ModelSpec(
            TEXT_TOKENIZE, "python",
            inputs=(Tensor(PROMPT, "BYTES", (1,)),),
            outputs=(*var_tokens, token_offsets),
            max_batch_size=b, batch_delay_us=0, seq_buckets=buckets,
            description="tokenisation of the prompt as written, with character offsets (for span rewrites)",
        ),
        ModelSpec(
            REWRITE_TAGGER, "network", inputs=var_tokens,
            outputs=(Tensor(REWRITE_TAG_SCORES, "FP32", (nt,)), token_probs),
            max_batch_size=b, batch_delay_us=1000, threads=2, seq_buckets=buckets,
            description="MiniLM encoder + heads: which rewrites a prompt needs, and which words they touch",
        ),
        ModelSpec(
            REWRITE_APPLY, "python",
            inputs=(Tensor(PROMPT, "BYTES", (1,)), Tensor(REWRITE_TAG_SCORES, "FP32", (nt,)),
                    token_probs, token_offsets, Tensor(SEED, "INT64", (1,))),
            outputs=(Tensor(REWRITTEN_PROMPT, "BYTES", (1,)), Tensor(REWRITES, "BYTES", (1,))),
            max_batch_size=b, batch_delay_us=0,
            description="applies tagged rewrites; reports each (kind, span, replacement, reason)",
        ),
        ModelSpec(
            PROMPT_REWRITE, "ensemble",
            inputs=(Tensor(PROMPT, "BYTES", (1,)), Tensor(SEED, "INT64", (1,))),
            outputs=(Tensor(REWRITTEN_PROMPT, "BYTES", (1,)), Tensor(REWRITES, "BYTES", (1,))),
            max_batch_size=b, batch_delay_us=0,
            steps=(
                EnsembleStep(TEXT_TOKENIZE, (PROMPT,), (INPUT_IDS, ATTENTION_MASK, TOKEN_OFFSETS)),
                EnsembleStep(REWRITE_TAGGER, (INPUT_IDS, ATTENTION_MASK), (REWRITE_TAG_SCORES, TOKEN_TAG_PROBS)),
                EnsembleStep(REWRITE_APPLY, (PROMPT, REWRITE_TAG_SCORES, TOKEN_TAG_PROBS, TOKEN_OFFSETS, SEED),
                             (REWRITTEN_PROMPT, REWRITES)),
            ),
            description="prompt rewriting: tokenise -> tag -> apply",
        ),
        ModelSpec(
            TEXT_ENCODER, "network", inputs=tokens,
            outputs=(Tensor(TEXT_EMBEDDINGS, "FP32", (p.seq_len, p.text_dim)),),
            max_batch_size=b, batch_delay_us=1000, threads=2,
            description="MiniLM last hidden states: the UNet's cross-attention context",
        ),
        ModelSpec(
            UNET, "network",
            inputs=(noisy, timestep, Tensor(ENCODER_HIDDEN_STATES, "FP32", (p.seq_len, p.text_dim), sample=NORMAL),
                    *((inpaint,) if p.inpaint_channels else ())),
            outputs=(Tensor(NOISE_PRED, "FP32", lat),),
            max_batch_size=p.unet_max_batch, batch_delay_us=2000, threads=2, opt_batch=3,
            description="text-conditioned denoiser: epsilon prediction (inpainting: source latent + mask channels)",
        ),
        ModelSpec(
            LATENT_GUARD, "network",
            inputs=(noisy, timestep, inpaint, Tensor(GUIDE_WEIGHTS, "FP32", (len(GUIDED_CLASSES),), sample=NORMAL)),
            outputs=(Tensor(GUIDE_GRADIENT, "FP32", lat), Tensor(LATENT_SCORES, "FP32", (len(GUIDED_CLASSES),))),
            max_batch_size=b, batch_delay_us=1000,
            description="noise-aware latent classifier and its input gradient: classifier guidance away from "
                        "the weighted classes",
        ),
        ModelSpec(
            VAE_ENCODER, "network",
            inputs=(Tensor(PIXELS, "FP32", img_chw, sample=UNIT),),
            outputs=(Tensor(LATENTS, "FP32", lat),),
            max_batch_size=b, batch_delay_us=1000, threads=2,
            description="pixels in [0,1] -> latent mean times the VAE's scaling_factor",
        ),
        ModelSpec(VAE_DECODER, "network", **decoder, description="scaled latents -> pixels in [0,1]"),
        ModelSpec(
            VAE_EDIT_DECODER, "network", **decoder,
            description="edits' decoder: the same latents -> pixels in [0,1], trained to draw small heads, which "
                        "is what edits repaint (a decoder of its own for inpainting, as asymmetric VQGAN has)",
        ),
        ModelSpec(
            IMAGE_PREPROCESS, "python",
            inputs=(Tensor(IMAGE, "UINT8", (p.image_size, p.image_size, 3)),),
            outputs=(Tensor(CLASSIFIER_PIXELS, "FP32", cls_chw),),
            max_batch_size=b, batch_delay_us=0,
            description="uint8 HWC RGB -> resized, normalised float CHW for the classifiers",
        ),
        ModelSpec(
            IMAGE_CLASSIFIER, "network",
            inputs=(Tensor(CLASSIFIER_PIXELS, "FP32", cls_chw, sample=UNIT),),
            outputs=(Tensor(IMAGE_SCORES, "FP32", (nc,)), Tensor(IMAGE_EMBEDDING, "FP32", (p.embed_dim,))),
            max_batch_size=b, batch_delay_us=1000,
            description="CLIP-style image tower -> unit embedding -> a score per policy category",
        ),
        ModelSpec(
            NUDE_DETECTOR, "network",
            inputs=(Tensor(IMAGE, "UINT8", (p.image_size, p.image_size, 3), sample=BYTE_VALUES),),
            outputs=(Tensor(NUDE_SCORES, "FP32", (len(NUDE_CLASSES),)),),
            max_batch_size=b, batch_delay_us=1000, threads=2,
            description="NudeNet 320n detector with resize and per-class max over anchors as graph nodes: "
                        "a score per exposed-body-part class",
        ),
        ModelSpec(
            IMAGE_GUARD, "ensemble",
            inputs=(Tensor(IMAGE, "UINT8", (p.image_size, p.image_size, 3)),),
            outputs=(Tensor(IMAGE_SCORES, "FP32", (nc,)), Tensor(IMAGE_EMBEDDING, "FP32", (p.embed_dim,)),
                     *((Tensor(NUDE_SCORES, "FP32", (len(NUDE_CLASSES),)),) if p.nude_detector else ())),
            max_batch_size=b, batch_delay_us=0,
            steps=(
                EnsembleStep(IMAGE_PREPROCESS, (IMAGE,), (CLASSIFIER_PIXELS,)),
                EnsembleStep(IMAGE_CLASSIFIER, (CLASSIFIER_PIXELS,), (IMAGE_SCORES, IMAGE_EMBEDDING)),
                *((EnsembleStep(NUDE_DETECTOR, (IMAGE,), (NUDE_SCORES,)),) if p.nude_detector else ()),
            ),
            description="image screening: preprocess -> classify (and the NudeNet detector, when built with it)",
        ),
        ModelSpec(
            TRANSFORM_CLASSIFIER, "network",
            inputs=(Tensor(SOURCE_PIXELS, "FP32", cls_chw, sample=UNIT),
                    Tensor(EDITED_PIXELS, "FP32", cls_chw, sample=UNIT),
                    Tensor(PROMPT_EMBEDDING, "FP32", (p.text_dim,), sample=NORMAL)),
            outputs=(Tensor(TRANSFORM_PROBS, "FP32", (nx,)),),
            max_batch_size=b, batch_delay_us=1000,
            description="(input image, prompt, output image) -> P(safe, unsafe, unintended edit)",
        ),
        ModelSpec(
            WATERMARK, "python",
            inputs=(Tensor(IMAGE, "UINT8", (p.image_size, p.image_size, 3)),),
            outputs=(Tensor(WATERMARKED_IMAGE, "UINT8", (p.image_size, p.image_size, 3)),),
            max_batch_size=b, batch_delay_us=0,
            description="invisible watermark (invisible-watermark's dwtDctSvd format, 48 bits)",
        ),
        ModelSpec(
            SAFE_T2I, "python",
            inputs=(
                Tensor(PROMPT, "BYTES", (1,)),
                Tensor(NEGATIVE_PROMPT, "BYTES", (1,), optional=True),
                Tensor(INIT_IMAGE, "BYTES", (1,), optional=True),
                Tensor(MASK_IMAGE, "BYTES", (1,), optional=True),
                Tensor(SEED, "INT64", (1,), optional=True),
                Tensor(STEPS, "INT32", (1,), optional=True),
                Tensor(GUIDANCE_SCALE, "FP32", (1,), optional=True),
            ),
            outputs=(Tensor(IMAGE_PNG, "BYTES", (1,)), Tensor(SAFETY_REPORT, "BYTES", (1,))),
            # max_batch_size 1: one request per execution, but Triton's queue policy (a dynamic-batcher
            # feature) bounds the requests waiting for an instance, so overload is answered UNAVAILABLE at once
            # instead of queueing without end; clients send every tensor as [1, 1]
            max_batch_size=1, instances=4, batch_delay_us=0, queue_batches=16,
            description="BLS orchestrator: validate, guard, rewrite, generate, check, regenerate, respond",
        ),
    ]
    if not p.trained_image_side:  # real checkpoints ship no transform classifier, latent guard or edit decoder
        specs = [s for s in specs if s.name not in (TRANSFORM_CLASSIFIER, LATENT_GUARD, VAE_EDIT_DECODER)]
    if not p.nude_detector:
        specs = [s for s in specs if s.name != NUDE_DETECTOR]
    return {s.name: s for s in specs}
