"""Torch modules as exported: each takes and returns exactly its spec's tensors, in order.

Shapes use B for the (dynamic) batch; L = profile.seq_len, D = profile.text_dim.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class MiniLMHidden(nn.Module):
    """The text encoder: (input_ids int64 [B, L], attention_mask int64 [B, L]) -> float32 [B, L, D]."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """float32 [B, L, D], int64 [B, L] -> float32 [B, D] (sentence-transformers' mean pooling)."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


class CLIPTextHidden(nn.Module):
    """The `sd` text encoder: (input_ids int64 [B, L], attention_mask int64 [B, L]) -> float32 [B, L, D].

    Stable Diffusion's CLIP text encoder reads the padding as it was trained (diffusers passes it no
    mask); the mask stays an input (added as zeros) so every profile serves one text_encoder signature.
    """

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids).last_hidden_state
        return hidden + 0.0 * attention_mask[..., None].to(hidden.dtype)


#: the prompt classifier's screening windows, in tokens (stride: half of it). Chosen on the corpus's validation
#: split and its own-data dilutions (docs/2026-12-03-prompt-guard-real-data.md), never on the red-team cases
PROMPT_WINDOW = 12


def window_means(hidden: torch.Tensor, mask: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 [B, L, D], int64 [B, L] -> (float32 [B, N, D] masked means of windows of `window` tokens every
    `window // 2`, float32 [B, N] 1 where a window holds at least min(prompt tokens, window // 2) tokens). The
    sequence is padded with `window - 1` masked positions so that any L >= 1 has windows."""
    m = nn.functional.pad(mask.to(hidden.dtype), (0, window - 1)).unsqueeze(1)  # [B, 1, L + w - 1]
    h = nn.functional.pad((hidden * mask.unsqueeze(-1).to(hidden.dtype)).transpose(1, 2), (0, window - 1))
    sums = nn.functional.avg_pool1d(h, window, window // 2) * window  # [B, D, N]
    counts = nn.functional.avg_pool1d(m, window, window // 2) * window  # [B, 1, N]
    tokens = mask.to(hidden.dtype).sum(1, keepdim=True)  # [B, 1]
    valid = (counts.squeeze(1) >= torch.clamp(tokens, max=float(window // 2)) - 0.5).to(hidden.dtype)
    return (sums / counts.clamp(min=1.0)).transpose(1, 2), valid


class SentenceScorer(nn.Module):
    """prompt_classifier / rewrite_tagger: tokens -> MiniLM -> mean pool -> head -> float32 [B, C].

    With `window` (the prompt classifier: `PROMPT_WINDOW`) the score is the larger of the whole prompt's and its
    windows' (`window_means`, the same head on each), per category: a harmful clause inside a long benign prompt
    is not averaged away by mean pooling (prompt dilution). Still one encoder pass per prompt."""

    def __init__(self, encoder: nn.Module, head: nn.Module, window: int | None = None):
        super().__init__()
        self.encoder, self.head, self.window = encoder, head, window

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        whole = self.head(masked_mean(hidden, attention_mask))
        if self.window is None:
            return whole
        windows, valid = window_means(hidden, attention_mask, self.window)
        return torch.maximum(whole, (self.head(windows) * valid.unsqueeze(-1)).amax(1))


class UNetEps(nn.Module):
    """(sample [B, C, h, w], timestep float32 [B, 1], context [B, L, D], inpaint_cond [B, C + 1, h, w]) -> eps.

    `inpaint_cond` is the source image's latent and the latent-resolution mask (1 = repaint), as
    channels appended to the sample (Stable Diffusion inpainting's layout); text-to-image passes a
    zero latent and an all-ones mask. Plain 4-channel UNets (the `sd` family) take no `inpaint_cond`.
    With `coords` (the latent side, tiny profile) two fixed channels follow, x and y in [-1, 1]
    (float32 [1, 2, h, w], CoordConv, Liu et al. 2018): without them a convolution knows where it
    is only from the zero padding, so a prompt's "on the left" has nothing to attach to.
    """

    def __init__(self, unet: nn.Module, coords: int | None = None):
        super().__init__()
        self.unet = unet
        axis = torch.linspace(-1.0, 1.0, coords or 1)
        grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"))[None] if coords else None
        self.register_buffer("coords", grid, persistent=False)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor,
                inpaint_cond: torch.Tensor | None = None) -> torch.Tensor:
        parts = [sample] if inpaint_cond is None else [sample, inpaint_cond]
        if self.coords is not None:
            parts.append(self.coords.expand(sample.shape[0], -1, -1, -1))
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        return self.unet(x, timestep.reshape(-1), encoder_hidden_states=context, return_dict=False)[0]


class VAEEncode(nn.Module):
    """pixels float32 [B, 3, H, W] in [0, 1] -> latent mean * scaling_factor [B, C, h, w]."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae
        self.scaling_factor = float(vae.config.scaling_factor)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(pixels * 2.0 - 1.0).latent_dist.mean * self.scaling_factor


class VAEDecode(nn.Module):
    """scaled latents [B, C, h, w] -> pixels float32 [B, 3, H, W] in [0, 1]."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae
        self.scaling_factor = float(vae.config.scaling_factor)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        x = self.vae.decode(latents / self.scaling_factor, return_dict=False)[0]
        return ((x + 1.0) * 0.5).clamp(0.0, 1.0)


def prior_bias(p: float) -> float:
    """Bias giving sigmoid output p at init (the focal-loss prior init): flagged rarely, not at random."""
    return -math.log((1.0 - p) / p)


class ImageTower(nn.Module):
    """CLIP-style image tower: float32 [B, 3, S, S] -> unit embedding float32 [B, E]."""

    def __init__(self, embed_dim: int, width: int = 32):
        super().__init__()
        chans = (3, width, 2 * width, 4 * width, 4 * width)
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:], strict=True):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.GroupNorm(8, cout), nn.GELU()]
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(chans[-1], embed_dim)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(self.features(pixels).mean(dim=(2, 3))), dim=-1)


class ImageClassifier(nn.Module):
    """pixels [B, 3, S, S] -> (scores float32 [B, C] in [0, 1], embedding float32 [B, E])."""

    def __init__(self, embed_dim: int, num_categories: int, prior: float = 0.01):
        super().__init__()
        self.tower = ImageTower(embed_dim)
        self.heads = nn.Linear(embed_dim, num_categories)
        nn.init.constant_(self.heads.bias, prior_bias(prior))

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.tower(pixels)
        return torch.sigmoid(self.heads(emb)), emb


class TransformClassifier(nn.Module):
    """(source [B, 3, S, S], edited [B, 3, S, S], prompt embedding [B, D]) -> P(class) [B, K].

    Both images go through one tower; the head sees both embeddings, their difference and the
    projected prompt, so an edit that looks benign alone can still be judged against its source.
    """

    def __init__(self, embed_dim: int, text_dim: int, num_classes: int, safe_prior: float = 0.98):
        super().__init__()
        self.tower = ImageTower(embed_dim)
        self.text = nn.Linear(text_dim, embed_dim)
        self.head = nn.Sequential(nn.Linear(4 * embed_dim, embed_dim), nn.GELU(), nn.Linear(embed_dim, num_classes))
        with torch.no_grad():
            bias = torch.zeros(num_classes)
            bias[0] = math.log(safe_prior * (num_classes - 1) / (1.0 - safe_prior))
            self.head[-1].bias.copy_(bias)

    def forward(self, source: torch.Tensor, edited: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        a, b = self.tower(source), self.tower(edited)
        t = F.normalize(self.text(prompt), dim=-1)
        return torch.softmax(self.head(torch.cat([a, b, b - a, t], dim=-1)), dim=-1)


class MLPHead(nn.Module):
    """Trained multi-label head: pooled embedding float32 [B, D] -> sigmoid scores [B, C]."""

    def __init__(self, dim: int, hidden: int, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, num_labels))

    def logits(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.net(pooled)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(pooled))


class ExemplarFusion(nn.Module):
    """The prompt classifier's head with an exemplar bank: pooled embedding float32 [B, D] -> scores [B, C] =
    (1 - w) * MLP head + w * softmax(cos(prompt, bank) / temperature) @ bank labels. The bank is a stored
    [M, D] matrix of unit embeddings of labelled prompts: one matmul on the served path, no second encoder pass."""

    def __init__(self, head: MLPHead, vectors: torch.Tensor, labels: torch.Tensor, weight: float, temperature: float):
        super().__init__()
        self.head = head
        self.register_buffer("vectors", vectors)
        self.register_buffer("labels", labels)
        self.weight, self.temperature = float(weight), float(temperature)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        unit = pooled / pooled.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        near = torch.softmax(unit @ self.vectors.T / self.temperature, dim=-1) @ self.labels
        return (1.0 - self.weight) * self.head(pooled) + self.weight * near


class ContextTokenHead(nn.Module):
    """Token labels from each token's hidden state and its neighbours': hidden float32 [B, L, D] and attention mask
    [B, L] (1: token) -> logits float32 [B, L, K], a linear map of the token plus a ReLU convolution of `width`
    tokens around it. Padding is zeroed first, so a token's logits do not depend on how far its sequence was padded
    (the length buckets): past the end, a convolution reads zeros either way."""

    def __init__(self, dim: int, labels: int, hidden: int, width: int):
        super().__init__()
        self.skip = nn.Linear(dim, labels)
        self.conv = nn.Conv1d(dim, hidden, width, padding=width // 2)
        self.out = nn.Linear(hidden, labels)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = hidden * mask.unsqueeze(-1).to(hidden.dtype)
        context = torch.relu(self.conv(hidden.transpose(1, 2))).transpose(1, 2)
        return self.skip(hidden) + self.out(context)


class RewriteTagger(nn.Module):
    """tokens -> (sentence tag scores float32 [B, T] (sigmoid), token label probs float32 [B, L, K] (softmax))."""

    def __init__(self, encoder: nn.Module, sentence_head: nn.Module, token_head: ContextTokenHead):
        super().__init__()
        self.encoder, self.sentence_head, self.token_head = encoder, sentence_head, token_head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        tags = self.sentence_head(masked_mean(hidden, attention_mask))
        return tags, torch.softmax(self.token_head(hidden, attention_mask), dim=-1)


def timestep_features(timestep: torch.Tensor, dim: int = 32) -> torch.Tensor:
    """float32 [B, 1] timesteps in [0, 1000) -> sinusoidal features float32 [B, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = timestep.reshape(-1, 1) * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


class LatentGuard(nn.Module):
    """Noise-aware latent classifier: (x_t [B, C, h, w], timestep [B, 1], inpaint_cond [B, C + 1, h, w])
    -> logits float32 [B, K], K = len(GUIDED_CLASSES).

    Convolutions with SiLU and per-channel timestep biases, no normalisation, so that its input
    gradient is written out in `LatentGuardGrad` with plain convolutions (the ONNX exporters do not
    trace autograd).
    """

    def __init__(self, in_channels: int, num_classes: int, widths: tuple[int, ...] = (64, 128, 128),
                 strides: tuple[int, ...] = (1, 2, 2)):
        super().__init__()
        chans = (in_channels, *widths)
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, stride=s, padding=1)
                                   for a, b, s in zip(chans[:-1], chans[1:], strides, strict=True))
        self.time = nn.ModuleList(nn.Linear(32, w) for w in widths)
        self.head = nn.Linear(widths[-1], num_classes)

    def preactivations(self, x: torch.Tensor, timestep: torch.Tensor) -> list[torch.Tensor]:
        temb = timestep_features(timestep)
        pre, h = [], x
        for conv, time in zip(self.convs, self.time, strict=True):
            a = conv(h) + time(temb)[:, :, None, None]
            pre.append(a)
            h = F.silu(a)
        return pre

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, inpaint_cond: torch.Tensor) -> torch.Tensor:
        pre = self.preactivations(torch.cat([sample, inpaint_cond], dim=1), timestep)
        return self.head(F.silu(pre[-1]).mean(dim=(2, 3)))


def _silu_grad(a: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(a)
    return s * (1.0 + a * (1.0 - s))


class LatentGuardGrad(nn.Module):
    """Classifier guidance as a served model: (x_t [B, C, h, w], timestep [B, 1], inpaint_cond [B, C+1, h, w],
    weights float32 [B, K]) -> (gradient float32 [B, C, h, w], scores float32 [B, K]).

    gradient = d/dx_t sum_k weights_k * log(1 - sigmoid(logit_k)): the direction that makes the
    weighted classes less likely (DALL-E 3's classifier guidance steers each step along it).
    Backpropagation is spelled out (conv_transpose for each conv), checked against autograd in tests.
    """

    def __init__(self, guard: LatentGuard, sample_channels: int):
        super().__init__()
        self.guard, self.c = guard, sample_channels

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, inpaint_cond: torch.Tensor,
                weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([sample, inpaint_cond], dim=1)
        g = self.guard
        pre = g.preactivations(x, timestep)
        last = pre[-1]
        logits = g.head(F.silu(last).mean(dim=(2, 3)))
        scores = torch.sigmoid(logits)
        d_logits = -weights * scores  # d/dl log(1 - sigmoid(l)) = -sigmoid(l)
        d_h = (d_logits @ g.head.weight)[:, :, None, None] / float(last.shape[2] * last.shape[3])
        d_h = d_h.expand_as(last)
        inputs = [x] + [F.silu(a) for a in pre[:-1]]
        for i in range(len(pre) - 1, -1, -1):
            d_a = d_h * _silu_grad(pre[i])
            conv = g.convs[i]
            stride = conv.stride[0]
            out_pad = inputs[i].shape[-1] - ((d_a.shape[-1] - 1) * stride - 2 + 3)
            d_h = F.conv_transpose2d(d_a, conv.weight, stride=stride, padding=1, output_padding=out_pad)
        return d_h[:, :self.c], scores


class AttributeClassifier(nn.Module):
    """The independent judge of prompt following: float32 [B, 3, S, S] -> logits per attribute.

    Returns (shape [B, 4], colour [B, 6], position [B, 3]); trained on drawn ShapeWorld images only.
    """

    def __init__(self, num_shapes: int, num_colours: int, num_positions: int, width: int = 32):
        super().__init__()
        self.tower = ImageTower(4 * width, width)
        self.heads = nn.ModuleList(nn.Linear(4 * width, n) for n in (num_shapes, num_colours, num_positions))

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        emb = self.tower(pixels)
        return tuple(h(emb) for h in self.heads)


class SafetyCheckerScorer(nn.Module):
    """The Stable Diffusion safety checker as a scoring head: CLIP pixels float32 [B, 3, S, S] ->
    (scores float32 [B, C] in [0, 1], unit image embedding float32 [B, E]).

    Its rule (any concept's cosine similarity above that concept's threshold, thresholds lowered by
    0.01 when a special-care concept fires) becomes the score sigmoid(100 * max margin), so the policy's
    0.5 threshold reproduces the checker's decision; it feeds `categories` (sexual, nudity), the
    others score 0 (no head for them in this checkpoint).
    """

    def __init__(self, checker: nn.Module, categories: list[int], num_categories: int):
        super().__init__()
        self.checker, self.num_categories = checker, num_categories
        self.register_buffer("index", torch.tensor(categories, dtype=torch.long), persistent=False)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.checker
        emb = F.normalize(c.visual_projection(c.vision_model(pixels)[1]), dim=-1)
        special = emb @ F.normalize(c.special_care_embeds, dim=-1).T - c.special_care_embeds_weights
        adjust = 0.01 * (special > 0).any(dim=1, keepdim=True).to(emb.dtype)
        margin = (emb @ F.normalize(c.concept_embeds, dim=-1).T - c.concept_embeds_weights + adjust).amax(dim=1)
        score = torch.sigmoid(100.0 * margin)
        scores = torch.zeros(pixels.shape[0], self.num_categories, dtype=emb.dtype, device=emb.device)
        scores = scores.index_copy(1, self.index, score[:, None].expand(-1, len(self.index)).contiguous())
        return scores, emb
