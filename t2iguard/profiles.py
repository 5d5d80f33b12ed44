"""Profiles: the sizes a family of weights implies (tensor dims of every spec derive from here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """Sizes shared by all models of one weight family.

    Attributes:
        name: profile id (`tiny`).
        seq_len: tokens per prompt fed to the text models (padded/truncated).
        text_dim: hidden size of the text encoder (cross-attention dim of the UNet).
        image_size: generated image side in pixels (square, RGB).
        vae_factor: spatial downsampling of the VAE (image_size / latent side).
        latent_channels: channels of the VAE latent.
        classifier_size: side of the image fed to image/transform classifiers.
        embed_dim: CLIP-style image embedding size.
        max_batch: largest batch a stateless model is configured for (dynamic batching).
    """

    name: str
    seq_len: int = 77
    text_dim: int = 384
    image_size: int = 256
    vae_factor: int = 16
    latent_channels: int = 4
    classifier_size: int = 128
    embed_dim: int = 128
    max_batch: int = 16

    @property
    def latent_size(self) -> int:
        return self.image_size // self.vae_factor

    @property
    def unet_max_batch(self) -> int:
        """UNet batch: 3 rows per request (uncond, cond, safety concept) times max_batch."""
        return 3 * self.max_batch


PROFILES: dict[str, Profile] = {"tiny": Profile(name="tiny")}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}") from None
