"""Decoding for the explorer: the current image, the traversal strip and the class strip in one batch."""

import math
from dataclasses import dataclass

import torch

from models import VAE, UserError, rows_per_class

TRAVERSAL_VALUES = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)  # in units of the prior's sigma


@dataclass(frozen=True)
class Frame:
    """What one state of the explorer shows; pixel probabilities in [0, 1]."""

    version: int
    image: torch.Tensor  # (H, W)
    traversal: torch.Tensor | None  # (7, H, W): the selected dimension at TRAVERSAL_VALUES; None: not decoded
    classes: torch.Tensor | None  # (num_classes, H, W): the current z under every class (CVAE only)

    @property
    def has_strips(self) -> bool:
        return self.traversal is not None


def image_shape(input_dim: int) -> tuple[int, int]:
    """The (H, W) of a model's images: square, H * W = input_dim; a UserError if they cannot be."""
    side = math.isqrt(input_dim)
    if side * side != input_dim:
        raise UserError(f"the model's images have {input_dim} pixels, not a square number: vae-tui cannot draw them")
    return side, side


class Decoder:
    """Turns (z, class, selected dimension) into a Frame with one decoder call."""

    def __init__(self, model: VAE) -> None:
        self.model = model.eval()
        self.image_shape = image_shape(model.config.input_dim)

    @torch.inference_mode()
    def frame(self, version: int, z: list[float], label: int, dim: int, strips: bool = True) -> Frame:
        """Decode the state's image and, unless strips is False (nothing shows them), both strips."""
        z0 = torch.tensor(z, dtype=torch.float32)  # (latent_dim,)
        if not strips:
            condition = torch.tensor([label]) if self.model.conditional else None
            image = torch.sigmoid(self.model.decode(z0[None], condition)).view(*self.image_shape)
            return Frame(version, image, None, None)
        traversal = z0.repeat(len(TRAVERSAL_VALUES), 1)
        traversal[:, dim] = torch.tensor(TRAVERSAL_VALUES)
        batch = [z0[None], traversal]
        labels = None
        if self.model.conditional:
            class_z, class_labels = rows_per_class(z0[None], torch.arange(self.model.config.num_classes))
            batch.append(class_z)
            labels = torch.cat([torch.full((1 + len(TRAVERSAL_VALUES),), label), class_labels])
        pixels = torch.sigmoid(self.model.decode(torch.cat(batch), labels)).view(-1, *self.image_shape)
        n = 1 + len(TRAVERSAL_VALUES)
        return Frame(version, pixels[0], pixels[1:n], pixels[n:] if self.model.conditional else None)

    @torch.inference_mode()
    def images(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Decode a batch z (N, latent_dim) with classes labels (N,) into images (N, H, W)."""
        condition = labels.long() if self.model.conditional else None
        return torch.sigmoid(self.model.decode(z.float(), condition)).view(-1, *self.image_shape)

    @torch.inference_mode()
    def encode(self, pixels: torch.Tensor, label: int) -> list[float]:
        """mu of one image (H, W) in [0, 1] under class label (the VAE ignores it)."""
        condition = torch.tensor([label]) if self.model.conditional else None
        mu, _ = self.model.encode(pixels.reshape(1, -1).float(), condition)
        return mu[0].tolist()

    @torch.inference_mode()
    def path(self, a: "End", b: "End", count: int) -> torch.Tensor:
        """count images (count, H, W) from a to b: z linear, and for the CVAE the one-hot class too."""
        t = torch.linspace(0, 1, count)[:, None]
        z = (1 - t) * torch.tensor(a.z) + t * torch.tensor(b.z)
        condition = None
        if self.model.conditional:
            one_hot = torch.eye(self.model.config.num_classes)
            condition = (1 - t) * one_hot[a.label] + t * one_hot[b.label]
        return torch.sigmoid(self.model.decode(z, condition)).view(-1, *self.image_shape)


@dataclass(frozen=True)
class End:
    """One end of an interpolation: z and class."""

    z: tuple[float, ...]
    label: int
