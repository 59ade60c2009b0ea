"""Small models written the way users write theirs, for `--code tests/outside_models.py:FUNC` and vae_tui.explore:
each FUNC returns a model trained here for a few steps on seeded coloured squares (not random weights)."""

import logging
import sys
import threading
import time
import warnings

import torch
from torch import nn

from models.outside import PROBE_DECODES

SIDE = 16


def squares(count: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """count 3x16x16 images in [0, 1]: a square of a class's colour (4 classes) at a seeded place, on black."""
    generator = torch.Generator().manual_seed(seed)
    colours = torch.tensor([[1.0, 0.2, 0.2], [0.2, 1.0, 0.2], [0.2, 0.2, 1.0], [1.0, 1.0, 0.2]])
    images, labels = torch.zeros(count, 3, SIDE, SIDE), torch.arange(count) % 4
    for i in range(count):
        top, left = torch.randint(0, SIDE - 6, (2,), generator=generator).tolist()
        images[i, :, top : top + 6, left : left + 6] = colours[labels[i]][:, None, None]
    return images, labels


class TanhVAE(nn.Module):
    """An MLP VAE of 3x16x16 images with a tanh output and BatchNorm, encode returning [mu, log_var]."""

    def __init__(self, latent_dim: int = 8) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        pixels = 3 * SIDE * SIDE
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(pixels, 64), nn.BatchNorm1d(64), nn.LeakyReLU())
        self.fc_mu, self.fc_var = nn.Linear(64, latent_dim), nn.Linear(64, latent_dim)
        self.decoder = nn.Sequential(nn.Linear(latent_dim, 64), nn.LeakyReLU(), nn.Linear(64, pixels), nn.Tanh())

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.encoder(x)
        return [self.fc_mu(h), self.fc_var(h)]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).view(-1, 3, SIDE, SIDE)


def trained(steps: int = 30) -> TanhVAE:
    """The tanh VAE after steps of Adam on the squares (inputs and outputs in [-1, 1], as such models train)."""
    torch.manual_seed(0)
    model = TanhVAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    images = squares()[0] * 2 - 1
    with torch.enable_grad():  # a caller under no_grad (a test's) does not stop the training
        _train(model, optimizer, images, steps)
    return model.eval()


def _train(model: TanhVAE, optimizer: torch.optim.Optimizer, images: torch.Tensor, steps: int) -> None:
    for _ in range(steps):
        mu, log_var = model.encode(images)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * log_var)
        loss = ((model.decode(z) - images) ** 2).sum() + 0.5 * (mu**2 + log_var.exp() - 1 - log_var).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


class DecoderOnly(nn.Module):
    """A decoder with no encode, as a GAN's generator or a diffusion decoder is."""

    def __init__(self, vae: TanhVAE) -> None:
        super().__init__()
        self.latent_dim, self.decoder = vae.latent_dim, vae.decoder

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).view(-1, 3, SIDE, SIDE)


def decoder_only() -> DecoderOnly:
    """The trained tanh VAE's decoder alone: the explorer without map or picker."""
    return DecoderOnly(trained())


def raises() -> nn.Module:
    """A FUNC that fails, as one whose weights file is missing does."""
    raise FileNotFoundError("weights.pt")


class Misbehaving(nn.Module):
    """decode returns what `kind` says: a list, a wrong shape, NaN."""

    latent_dim = 4

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def decode(self, z: torch.Tensor) -> object:
        if self.kind == "list":
            return [z]
        if self.kind == "shape":
            return torch.zeros(len(z), 5, 7)
        return torch.full((len(z), 1, 28, 28), float("nan"))


def returns_a_list() -> Misbehaving:
    return Misbehaving("list")


def wrong_shape() -> Misbehaving:
    return Misbehaving("shape")


def nan_images() -> Misbehaving:
    return Misbehaving("nan")


class NoLatentDim(nn.Module):
    """A decoder that does not say its latent size."""

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(z), 1, 28, 28)


FAR = 1.5  # where z's first value passes this, the Fragile models fail


class Fragile(DecoderOnly):
    """The trained decoder, failing for a z whose first value passes `far` (FAR; not at 0, where vae-tui probes
    it) as `kind` says: "raise" a ValueError, "nan" images, "shape" images of 8x8."""

    def __init__(self, vae: TanhVAE, kind: str) -> None:
        super().__init__(vae)
        self.kind, self.far = kind, FAR

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        images = super().decode(z)
        far = z[:, 0] > self.far
        if not far.any():
            return images
        if self.kind == "raise":
            raise ValueError(f"z0 = {z[far, 0].max().item():.2f} is past {self.far}\n(a second line)")
        if self.kind == "nan":
            return images.masked_fill(far[:, None, None, None], float("nan"))
        return images[:, :, :8, :8]


def raises_far_out() -> Fragile:
    return Fragile(trained(), "raise")


def nan_far_out() -> Fragile:
    return Fragile(trained(), "nan")


def wrong_shape_far_out() -> Fragile:
    return Fragile(trained(), "shape")


class Gated(DecoderOnly):
    """The trained decoder, whose decode waits while its gate is closed (a test holds it); after its first `fast`
    calls, it also sleeps `seconds` each (None: forever)."""

    def __init__(self, vae: TanhVAE, seconds: float | None = 0.0, fast: int = PROBE_DECODES) -> None:
        super().__init__(vae)
        self.gate = threading.Event()
        self.gate.set()
        self.seconds, self.fast, self.calls = seconds, fast, 0

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.gate.wait()
        if self.calls > self.fast and self.seconds is None:
            threading.Event().wait()
        elif self.calls > self.fast:
            time.sleep(self.seconds)
        return super().decode(z)


def gated() -> Gated:
    return Gated(trained())


def slow() -> Gated:
    """Ten seconds a decode, after those vae-tui makes when it wraps the model (PROBE_DECODES)."""
    return Gated(trained(), seconds=10.0)


def stuck() -> Gated:
    """A decode that never returns, after those vae-tui makes when it wraps the model (PROBE_DECODES)."""
    return Gated(trained(), seconds=None)


class Chatty(DecoderOnly):
    """The trained decoder, which prints, writes to stderr, warns and logs on each decode, as research code does."""

    def __init__(self, vae: TanhVAE) -> None:
        super().__init__(vae)
        self.logger = logging.getLogger("vae_tui_tests.chatty")
        if not self.logger.handlers:  # set up as basicConfig() does, on the stream stderr is now
            self.logger.addHandler(logging.StreamHandler(sys.stderr))
            self.logger.propagate = False

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        print(f"decoding {len(z)} latents")
        sys.stderr.write("a line on stderr\n")
        warnings.warn("a deprecated argument", UserWarning, stacklevel=1)
        self.logger.warning("a logged warning")
        return super().decode(z)


def chatty() -> Chatty:
    return Chatty(trained())


class Breakable(TanhVAE):
    """The tanh VAE, whose encode raises once a test sets `broken`."""

    broken = False

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.broken:
            raise RuntimeError("the encoder's weights are gone")
        return super().encode(x)


def breakable() -> Breakable:
    model = Breakable()
    model.load_state_dict(trained().state_dict())
    return model.eval()


class OneAtATime(TanhVAE):
    """A decoder that takes one z at a time (as some generators do): a batch of more raises."""

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if len(z) > 1:
            raise RuntimeError("one z at a time")
        return super().decode(z)


def one_at_a_time() -> OneAtATime:
    model = OneAtATime()
    model.load_state_dict(trained().state_dict())
    return model.eval()
