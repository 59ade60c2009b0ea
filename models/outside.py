"""A VAE written elsewhere, seen through vae-tui's model interface: the protocol `--code` and `vae_tui.explore` take.

The protocol (docs/outside.md):
- required: `decode(z)` returning images (N, C, H, W), or flat (N, C*H*W) with an image shape given (or 784 values:
  1x28x28); C is 1 or 3, H = W from 8 to 128;
- optional: `encode(x)` returning mu, (mu, logvar), or a sequence whose first two items are those; a class
  condition, `decode(z, y)` and `encode(x, y)` with y one-hot (N, num_classes), when num_classes is given (the
  model's `num_classes` attribute or --num-classes); `latent_dim` (the attribute, or --latent-dim).
- decoder_output says how decoded values are pixels: "probs" in [0, 1], "tanh" in [-1, 1], "logits" through a
  sigmoid. Encoder inputs get the inverse: [0, 1] for probs and logits, [-1, 1] for tanh.

OutsideVAE wraps such a model so that everything that draws or encodes with a vae-tui model (the explorer's
decoder, the atlas, sample, eval) uses it unchanged: decode returns pixel logits (B, C*H*W), encode takes pixels
(B, C*H*W) in [0, 1] and returns (mu, logvar). The model runs in eval mode, in its own dtype, on its own device;
whatever it returns is checked (a tensor, the shape, finite) and a problem is an OutsideModelError in one line.
"""

import dataclasses
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models.errors import UserError
from models.limits import IMAGE_CHANNELS, MAX_IMAGE_SIZE, MAX_SIZE, MIN_IMAGE_SIZE
from models.names import OUTSIDE_ARCH
from models.vae import VAE, ModelConfig

DECODER_OUTPUTS = ("probs", "logits", "tanh")
PROBE_DECODES = 3  # the decodes OutsideVAE makes when it wraps a model: its shape, its values, its range
PROBABILITY_FLOOR = 1e-6  # probabilities are kept this far from 0 and 1 before their logit: finite, and the
# sigmoid of that logit gives them back to within it


class OutsideModelError(UserError):
    """The user's model did something the protocol does not allow (one line, naming what)."""


def describe(value: object) -> str:
    """What a returned value is, for a message: a tensor's shape and dtype, else its type."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} ({str(value.dtype).removeprefix('torch.')})"
    return f"a {type(value).__name__}"


def first_tensor_parts(value: object, what: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """An encoder's output as (mu, logvar or None): mu alone, or a sequence whose first two items are those."""
    if isinstance(value, torch.Tensor):
        return value, None
    if isinstance(value, Sequence) and not isinstance(value, str) and value and isinstance(value[0], torch.Tensor):
        second = value[1] if len(value) > 1 else None
        return value[0], second if isinstance(second, torch.Tensor) else None
    raise OutsideModelError(f"{what} returned {describe(value)}: expected mu, or (mu, logvar)")


class OutsideVAE(nn.Module):
    """An outside model in vae-tui's model interface (see the module's docstring)."""

    arch = OUTSIDE_ARCH
    reparameterize = staticmethod(VAE.reparameterize)  # z drawn as for vae-tui's models (eval's sampled -ELBO)

    def __init__(
        self,
        model: nn.Module,
        decoder_output: str = "probs",
        latent_dim: int | None = None,
        num_classes: int | None = None,
        image_shape: tuple[int, int, int] | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        if decoder_output not in DECODER_OUTPUTS:
            raise UserError(f"--decoder-output must be one of {', '.join(DECODER_OUTPUTS)}, not {decoder_output!r}")
        if not callable(getattr(model, "decode", None)):
            raise OutsideModelError(f"the model ({type(model).__name__}) has no decode(z) method: vae-tui needs one")
        self.device = torch.device(device)
        self.inner = model.to(self.device).eval() if isinstance(model, nn.Module) else model
        self.decoder_output = decoder_output
        self.dtype = next((p.dtype for p in self.parameters() if p.is_floating_point()), torch.float32)
        self.has_encoder = callable(getattr(model, "encode", None))
        self.has_logvar = False  # learned from the first encode
        classes = num_classes if num_classes is not None else attribute_size(model, "num_classes")
        self.conditional = bool(classes)
        latent = latent_dim if latent_dim is not None else attribute_size(model, "latent_dim")
        if latent is None:
            raise OutsideModelError(
                f"the model ({type(model).__name__}) has no latent_dim attribute: give its size with --latent-dim"
            )
        self.latent_dim, self.num_classes = latent, classes or 1
        self.image_shape = image_shape
        probe = self._call_decode(torch.zeros(1, latent), torch.zeros(1, dtype=torch.long))
        self.image_shape = self._images_shape(probe, image_shape)
        channels, height, width = self.image_shape
        self.config = ModelConfig(
            kind="cvae" if self.conditional else "vae",
            arch=OUTSIDE_ARCH,
            input_dim=channels * height * width,
            hidden_dim=1,
            latent_dim=latent,
            num_classes=self.num_classes,
            channels=channels,
            image_size=height,
        )
        self.decode(torch.zeros(1, latent))  # its values, checked as every decode's are (finite, the shape)
        self.range_note = self._range_note()

    def _range_note(self) -> str:
        """A line for a decoder whose outputs, on a few seeded prior draws, do not look like decoder_output's range
        (a tanh or logits model run as probs is drawn clamped); "" when they do."""
        z = torch.randn(8, self.latent_dim, generator=torch.Generator().manual_seed(0))
        y = torch.arange(8) % self.num_classes
        try:
            values = self._call_decode(z, y).detach().float()
        except Exception:  # advice only: a model that cannot decode a batch of 8 is told by what needs one
            return ""
        low, high = values.min().item(), values.max().item()
        expected = {"probs": (0.0, 1.0), "tanh": (-1.0, 1.0)}.get(self.decoder_output)
        if expected is None or (expected[0] - 0.01 <= low and high <= expected[1] + 0.01):
            return ""
        guess = "tanh" if low >= -1.01 and high <= 1.01 else "logits"
        return (
            f"decode(z) returns values from {low:.2f} to {high:.2f}, outside the [{expected[0]:g}, {expected[1]:g}] of"
            f" --decoder-output {self.decoder_output}: they are drawn clamped (--decoder-output {guess}?)"
        )

    def use_classes(self, count: int) -> None:
        """Give an unconditional model count classes (its data's): they name the map's colours and the class keys'
        centroids; its decoder still takes no class."""
        if self.conditional:
            raise ValueError("a conditional model's classes are its own")
        self.num_classes = count
        self.config = dataclasses.replace(self.config, num_classes=count)

    def _images_shape(self, probe: torch.Tensor, given: tuple[int, int, int] | None) -> tuple[int, int, int]:
        """(C, H, W) of the model's images, from one decode (and --image-shape for a flat output), checked."""
        if probe.dim() == 4:
            shape = tuple(probe.shape[1:])
            if given is not None and tuple(given) != shape:
                raise OutsideModelError(f"decode(z) returned images of shape {shape}, not --image-shape {given}")
        elif probe.dim() == 2 and given is not None:
            shape = tuple(given)
            if probe.shape[1] != shape[0] * shape[1] * shape[2]:
                raise OutsideModelError(
                    f"decode(z) returned {probe.shape[1]} values an image, not the {shape[0]}x{shape[1]}x{shape[2]}"
                    " of --image-shape"
                )
        elif probe.dim() == 2 and probe.shape[1] == 784:
            shape = (1, 28, 28)
        else:
            raise OutsideModelError(
                f"decode(z) returned {describe(probe)}: expected images (N, C, H, W), or flat (N, C*H*W) with"
                " --image-shape C,H,W"
            )
        channels, height, width = shape
        if channels not in IMAGE_CHANNELS or height != width or not MIN_IMAGE_SIZE <= height <= MAX_IMAGE_SIZE:
            raise OutsideModelError(
                f"decode(z) returned {channels}x{height}x{width} images: vae-tui draws square images of 1 or 3"
                f" channels, {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} pixels a side"
            )
        return shape

    def _one_hot(self, y: torch.Tensor | None, count: int) -> torch.Tensor:
        """The class condition as the model takes it: one-hot floats (count, num_classes)."""
        if y is None:
            y = torch.zeros(count, dtype=torch.long)
        if y.is_floating_point():  # already a mixture of classes (an interpolation between two)
            return y.to(self.device, self.dtype)
        return F.one_hot(y.long().cpu(), self.num_classes).to(self.device, self.dtype)

    def _call_decode(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        z = z.to(self.device, self.dtype)
        with torch.no_grad():
            out = self.inner.decode(z, self._one_hot(y, len(z))) if self.conditional else self.inner.decode(z)
        if not isinstance(out, torch.Tensor):
            raise OutsideModelError(f"decode(z) returned {describe(out)}: expected a tensor of images")
        if out.dim() == 0 or len(out) != len(z):
            raise OutsideModelError(f"decode(z) of {len(z)} latents returned {describe(out)}")
        return out

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, latent_dim) -> pixel logits (B, C*H*W), float32 on the CPU."""
        out = self._call_decode(z, y)
        expected = (len(z), *self.image_shape)
        if tuple(out.shape) != expected and tuple(out.shape) != (len(z), self.config.input_dim):
            raise OutsideModelError(f"decode(z) returned {describe(out)}, not {expected} as before")
        values = out.detach().float().cpu().reshape(len(z), -1)
        if not torch.isfinite(values).all():
            raise OutsideModelError("decode(z) returned NaN or infinite values")
        if self.decoder_output == "logits":
            return values
        probs = (values + 1) / 2 if self.decoder_output == "tanh" else values
        return torch.logit(probs.clamp(PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR))

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C*H*W) pixels in [0, 1] -> mu, logvar (B, latent_dim), float32 on the CPU; logvar is 0 for an
        encoder that returns mu alone (its KL figures are then those of unit variances)."""
        if not self.has_encoder:
            raise OutsideModelError("the model has no encode(x) method")
        images = x.reshape(len(x), *self.image_shape).to(self.device, self.dtype)
        if self.decoder_output == "tanh":
            images = images * 2 - 1
        with torch.no_grad():
            out = self.inner.encode(images, self._one_hot(y, len(x))) if self.conditional else self.inner.encode(images)
        mu, logvar = first_tensor_parts(out, "encode(x)")
        self.has_logvar = logvar is not None
        if logvar is None:
            logvar = torch.zeros_like(mu)
        for name, value in (("mu", mu), ("logvar", logvar)):
            if tuple(value.shape) != (len(x), self.latent_dim):
                expected = (len(x), self.latent_dim)
                raise OutsideModelError(f"encode(x) returned {name} as {describe(value)}, not {expected}")
            if not torch.isfinite(value).all():
                raise OutsideModelError(f"encode(x) returned NaN or infinite values in {name}")
        return mu.detach().float().cpu(), logvar.detach().float().cpu()


def attribute_size(model: object, name: str) -> int | None:
    """The model's attribute name if it is a size (a positive int up to MAX_SIZE), else None."""
    value = getattr(model, name, None)
    return value if type(value) is int and 0 < value <= MAX_SIZE else None
