"""Test-set evaluation: ELBO with z sampled and z = mu, an importance-weighted bound, active units."""

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from models import VAE, elbo_loss
from models.loss import kl_per_dimension
from models.names import ACTIVE_VARIANCE
from train.device import pixels

EVAL_BATCH = 2000  # test-set batch of 28x28 images: large, since no gradients are kept


def eval_batch(dimensions: int) -> int:
    """The batch of images of that many pixels (and channels) that no-gradient passes take: EVAL_BATCH of 784, as
    many pixels in all for larger images (510 of 32x32 RGB, 127 of 64x64 RGB), so that their memory stays the same."""
    return max(32, EVAL_BATCH * 784 // max(dimensions, 784))


@dataclass
class Evaluation:
    """Everything `vae-tui eval` reports; losses are nats per image."""

    images: int
    elbo_sampled: dict[str, float]  # total, reconstruction, kl with z ~ q(z|x)
    elbo_mean: dict[str, float]  # the same with z = mu
    iwae_nll: float  # -log p(x) bounded with K importance samples (Burda et al., 2016)
    iwae_samples: int
    per_class: list[dict]  # class, name, images, loss (sampled z)
    active_units: int
    dimensions: list[dict]  # dim, variance of mu, mean KL, active
    # the IWAE bound and the sampled -ELBO per pixel and channel, in bits: continuous-BCE figures (pixels in [0, 1]
    # under a Bernoulli), not comparable with the discrete-likelihood bits/dim papers report
    bce_bits_per_dim: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-able form."""
        return asdict(self)


def _bernoulli_log_likelihood(x_logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x|z) per image: minus the BCE summed over pixels, (B,)."""
    return -F.binary_cross_entropy_with_logits(x_logits, x, reduction="none").sum(-1)


@torch.no_grad()
def iwae_log_likelihood(
    model: VAE,
    x: torch.Tensor,
    y: torch.Tensor,
    samples: int,
    generator: torch.Generator,
    chunk: int = 8,
    on_chunk: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """log p(x) >= log mean_k p(x|z_k) p(z_k) / q(z_k|x), z_k ~ q(z|x): per image, (B,).

    on_chunk, if given, receives the number of importance samples drawn so far after each chunk.
    """
    mu, logvar = model.encode(x, y)  # (B, D)
    std = torch.exp(0.5 * logvar)
    log_weights = []
    for start in range(0, samples, chunk):
        k = min(chunk, samples - start)
        eps = torch.randn((k, *mu.shape), generator=generator, device=x.device)  # (k, B, D)
        z = mu + eps * std
        x_logits = model.decode(z.reshape(-1, mu.shape[1]), y.repeat(k) if model.conditional else None)
        log_px_z = _bernoulli_log_likelihood(x_logits.view(k, *x.shape), x.expand(k, *x.shape))
        log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)
        log_qz_x = -0.5 * (eps.pow(2) + logvar + math.log(2 * math.pi)).sum(-1)
        log_weights.append(log_px_z + log_pz - log_qz_x)  # (k, B)
        if on_chunk is not None:
            on_chunk(start + k)
    return torch.logsumexp(torch.cat(log_weights), dim=0) - math.log(samples)


def _batch_progress(
    on_progress: Callable[[float], None] | None, done: int, size: int, samples: int
) -> Callable[[int], None] | None:
    """One batch's on_chunk: the images done before it, plus its size in proportion to the samples drawn."""
    if on_progress is None:
        return None
    return lambda drawn: on_progress(done + size * drawn / samples)


@torch.no_grad()
def evaluate_model(
    model: VAE,
    x: torch.Tensor,
    y: torch.Tensor,
    class_names: list[str],
    samples: int,
    seed: int = 0,
    batch_size: int = 500,
    on_progress: Callable[[float], None] | None = None,
) -> Evaluation:
    """Evaluate model on images x (N, input_dim) in [0, 1] with labels y (N,).

    on_progress, if given, receives the number of images done (fractional within a batch, as its
    importance samples are drawn): the IWAE bound is nearly all of the time, and a batch of it takes
    seconds with K = 1000.
    """
    model.eval()
    generator = torch.Generator(device=x.device).manual_seed(seed)
    sampled, mean, mus, kl_dims, iwae, per_image = [], [], [], [], [], []
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        mu, logvar = model.encode(xb, yb)
        kl = kl_per_dimension(mu, logvar)  # (B, D)
        z = model.reparameterize(mu, logvar, generator)
        reconstruction = -_bernoulli_log_likelihood(model.decode(z, yb), xb)
        reconstruction_mean = -_bernoulli_log_likelihood(model.decode(mu, yb), xb)
        sampled.append(torch.stack([reconstruction, kl.sum(1)]))
        mean.append(torch.stack([reconstruction_mean, kl.sum(1)]))
        per_image.append(reconstruction + kl.sum(1))
        mus.append(mu)
        kl_dims.append(kl)
        on_chunk = _batch_progress(on_progress, start, len(xb), samples)
        iwae.append(iwae_log_likelihood(model, xb, yb, samples, generator, on_chunk=on_chunk))
    sampled, mean = torch.cat(sampled, 1).mean(1), torch.cat(mean, 1).mean(1)
    per_image, mus, kl_dims = torch.cat(per_image), torch.cat(mus), torch.cat(kl_dims)
    variances = mus.var(0)
    per_class = [
        {"class": c, "name": name, "images": int((y == c).sum()), "loss": per_image[y == c].mean().item()}
        for c, name in enumerate(class_names)
        if (y == c).any()
    ]
    dimensions = dimension_rows(variances, kl_dims)
    return Evaluation(
        images=len(x),
        elbo_sampled={"total": (sampled.sum()).item(), "reconstruction": sampled[0].item(), "kl": sampled[1].item()},
        elbo_mean={"total": (mean.sum()).item(), "reconstruction": mean[0].item(), "kl": mean[1].item()},
        iwae_nll=-torch.cat(iwae).mean().item(),
        iwae_samples=samples,
        per_class=per_class,
        active_units=sum(d["active"] for d in dimensions),
        dimensions=dimensions,
        bce_bits_per_dim={
            "iwae": bits_per_dim(-torch.cat(iwae).mean().item(), x.shape[1]),
            "elbo_sampled": bits_per_dim(sampled.sum().item(), x.shape[1]),
        },
    )


def dimension_rows(variances: torch.Tensor, kl_dims: torch.Tensor) -> list[dict]:
    """Each latent dimension's row of an evaluation: its Var(mu) over the images, its mean KL (kl_dims: (N, D)),
    and whether it is active (Var(mu) > ACTIVE_VARIANCE, Burda et al., 2016)."""
    return [
        {
            "dim": d,
            "variance": variances[d].item(),
            "kl": kl_dims[:, d].mean().item(),
            "active": bool(variances[d] > ACTIVE_VARIANCE),
        }
        for d in range(kl_dims.shape[1])
    ]


def bits_per_dim(nats_per_image: float, dimensions: int) -> float:
    """A loss in nats per image as bits per pixel and channel."""
    return nats_per_image / (dimensions * math.log(2))


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> tuple[float, float, float]:
    """Negative ELBO per image (z sampled with a fixed seed), and its reconstruction and KL parts."""
    return evaluate_with_encodings(model, x, y, seed)[:3]


@torch.no_grad()
def evaluate_with_encodings(
    model: VAE, x: torch.Tensor, y: torch.Tensor, seed: int
) -> tuple[float, float, float, torch.Tensor, torch.Tensor]:
    """evaluate's three numbers, then mu of every image (N, D) and the mean KL of each dimension (D,).

    The losses are model.loss's, op for op, so they equal what it gives.
    """
    generator = torch.Generator(device=x.device).manual_seed(seed)
    sums = torch.zeros(3, device=x.device)
    mus, kl_sums = [], torch.zeros(model.config.latent_dim, device=x.device)
    batch = eval_batch(x.shape[1])
    for start in range(0, len(x), batch):
        xb, yb = x[start : start + batch], y[start : start + batch]
        x_logits, mu, logvar = model(xb, yb, generator)
        total, reconstruction, kl = elbo_loss(x_logits, xb, mu, logvar)
        sums += torch.stack([total, reconstruction, kl])
        kl_sums += kl_per_dimension(mu, logvar).sum(0)
        mus.append(mu)
    total, reconstruction, kl = (sums / len(x)).tolist()
    return total, reconstruction, kl, torch.cat(mus), kl_sums / len(x)


@torch.no_grad()
def class_centroids(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Mean of mu over each class's images x (flattened: uint8 levels or floats in [0, 1]): (num_classes,
    latent_dim)."""
    sums = torch.zeros(num_classes, model.config.latent_dim, device=x.device)
    batch = eval_batch(x.shape[1])
    for start in range(0, len(x), batch):
        mu, _ = model.encode(pixels(x[start : start + batch]), y[start : start + batch])
        sums.index_add_(0, y[start : start + batch], mu)
    return sums / torch.bincount(y, minlength=num_classes).clamp(min=1).unsqueeze(1)
