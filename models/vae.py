"""The VAE of the demo (784-400-20 MLP) and its class-conditional sibling, the CVAE."""

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.errors import UserError
from models.limits import IMAGE_CHANNELS, MAX_IMAGE_SIZE, MAX_SIZE, MIN_IMAGE_SIZE
from models.loss import elbo_loss
from models.names import ARCHS, MODEL_KINDS, OUTSIDE_ARCH


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of a model; stored in every checkpoint so it can be rebuilt exactly."""

    kind: str = "vae"  # "vae", or "cvae": encoder and decoder also see the class, one-hot
    arch: str = "mlp"  # "mlp" (the demo's), or "conv": convolutions around the hidden layers
    input_dim: int = 784  # channels x image_size x image_size pixels, flattened (28x28 grey)
    hidden_dim: int = 400  # the demo's width: one hidden layer on each side
    latent_dim: int = 20  # the demo's z size
    num_classes: int = 10  # size of the CVAE's condition; the VAE ignores it
    channels: int = 1  # 1 (grey) or 3 (RGB)
    image_size: int = 28  # the images' side: square, 8 to 128

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise UserError(f"model kind must be one of {', '.join(MODEL_KINDS)}, not {self.kind!r}")
        if self.arch not in (*ARCHS, OUTSIDE_ARCH):
            raise UserError(f"model arch must be one of {', '.join(ARCHS)}, not {self.arch!r}")
        for name in ("input_dim", "hidden_dim", "latent_dim", "num_classes"):
            if getattr(self, name) <= 0:
                raise UserError(f"{name} must be positive, got {getattr(self, name)}")
            if getattr(self, name) > MAX_SIZE:
                raise UserError(f"{name} must be at most {MAX_SIZE}, got {getattr(self, name)}")
        if self.channels not in IMAGE_CHANNELS:
            raise UserError(f"channels must be 1 or 3, got {self.channels}")
        if not MIN_IMAGE_SIZE <= self.image_size <= MAX_IMAGE_SIZE:
            raise UserError(f"image_size must be {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE}, got {self.image_size}")
        if self.input_dim != self.channels * self.image_size**2 and (self.channels, self.image_size) != (1, 28):
            raise UserError(
                f"input_dim {self.input_dim} is not {self.channels} x {self.image_size} x {self.image_size} pixels"
            )

    @classmethod
    def for_images(cls, channels: int, image_size: int, **sizes: object) -> "ModelConfig":
        """The config of a model of channels x image_size x image_size images (input_dim follows)."""
        return cls(input_dim=channels * image_size * image_size, channels=channels, image_size=image_size, **sizes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of the model's images."""
        return self.channels, self.image_size, self.image_size

    @property
    def pixel_shape(self) -> tuple[int, ...]:
        """The shape of one image as vae-tui passes it around (the renderer, the atlas in memory, the explorer):
        (height, width) for grey, (3, height, width) for RGB."""
        return self.image_shape[1:] if self.channels == 1 else self.image_shape

    def to_dict(self) -> dict:
        """The config as plain JSON-able values; the image's channels and size only where they are not the 28x28
        grey of every checkpoint before them (those files stay as they were)."""
        values = asdict(self)
        if (self.channels, self.image_size) == (1, 28):
            del values["channels"], values["image_size"]
        return values


class VAE(nn.Module):
    """Gaussian encoder, standard normal prior, Bernoulli decoder (Kingma & Welling, 2014)."""

    conditional = False
    arch = "mlp"

    def __init__(self, config: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        self._check_config(config)
        self.config = config
        condition_dim = config.num_classes if self.conditional else 0
        self.encoder_hidden = nn.Linear(config.input_dim + condition_dim, config.hidden_dim)
        self.to_mu = nn.Linear(config.hidden_dim, config.latent_dim)
        self.to_logvar = nn.Linear(config.hidden_dim, config.latent_dim)
        self.decoder_hidden = nn.Linear(config.latent_dim + condition_dim, config.hidden_dim)
        self.to_logits = nn.Linear(config.hidden_dim, config.input_dim)

    def _check_config(self, config: ModelConfig) -> None:
        """config must describe this class: its kind and its arch."""
        if (config.kind, config.arch) != ("cvae" if self.conditional else "vae", self.arch):
            raise ValueError(f"{type(self).__name__} got a {config.kind!r} {config.arch!r} config: use build_model")

    def _condition(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """Append the one-hot class to h for the CVAE; the VAE returns h unchanged."""
        if not self.conditional:
            return h
        if y is None:
            raise TypeError("the CVAE needs class labels y")
        if y.is_floating_point():  # (B, num_classes): a mixture of classes, as an interpolation between two
            return torch.cat([h, y.to(h.dtype)], dim=1)
        return torch.cat([h, F.one_hot(y, self.config.num_classes).to(h.dtype)], dim=1)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, input_dim) in [0, 1] -> mu, logvar, each (B, latent_dim)."""
        h = F.relu(self.encoder_hidden(self._condition(x, y)))  # (B, hidden_dim)
        return self.to_mu(h), self.to_logvar(h)

    @staticmethod
    def reparameterize(
        mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I), differentiable in mu and logvar."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + eps * torch.exp(0.5 * logvar)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, latent_dim) -> pixel logits (B, input_dim); sigmoid gives probabilities."""
        h = F.relu(self.decoder_hidden(self._condition(z, y)))  # (B, hidden_dim)
        return self.to_logits(h)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return x_logits, mu, logvar for a batch x (B, input_dim)."""
        mu, logvar = self.encode(x, y)
        z = self.reparameterize(mu, logvar, generator)
        return self.decode(z, y), mu, logvar

    def loss(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        weights: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (total, reconstruction, kl) summed over the batch (weighted per image if given), and mu."""
        x_logits, mu, logvar = self(x, y, generator)
        return (*elbo_loss(x_logits, x, mu, logvar, weights), mu)

    @torch.no_grad()
    def sample(
        self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Decode n draws from the prior into pixel probabilities (n, input_dim).

        For the CVAE, labels (n,) picks each image's class; by default classes cycle 0, 1, 2 ...
        """
        device = self.to_mu.weight.device
        z = torch.randn((n, self.config.latent_dim), generator=generator, device=device)
        if self.conditional and labels is None:
            labels = torch.arange(n, device=device) % self.config.num_classes
        return torch.sigmoid(self.decode(z, labels if self.conditional else None))


class CVAE(VAE):
    """The VAE with the class, one-hot, as an extra input to encoder and decoder (Sohn et al., 2015)."""

    conditional = True


def rows_per_class(z: torch.Tensor, classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The CVAE's inputs for a grid with a row per class, each row decoding the same z (N, latent_dim).

    Returns z (len(classes) * N, latent_dim) and labels (len(classes) * N,), row after row.
    """
    return z.repeat(len(classes), 1), classes.repeat_interleave(len(z))
