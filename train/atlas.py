"""A checkpoint's atlas from a pass over the test set: encodings, images, the PCA plane, per-dimension stats, and
each stored point's loss."""

import torch
import torch.nn.functional as F

from models import VAE
from models.atlas import Atlas
from models.loss import kl_per_dimension
from train.evaluate import eval_batch

POINTS_PER_CLASS = 200  # encodings kept per class: 2,000 for ten classes, enough for a scatter that shows the shape
IMAGES_PER_CLASS = POINTS_PER_CLASS  # every point's test image (157 KB a class as uint8): the picker and the map


def first_of_each_class(labels: torch.Tensor, per_class: int) -> torch.Tensor:
    """Test-set positions of the first per_class images of every class, in test-set order, (K,)."""
    rank = torch.zeros_like(labels, dtype=torch.long)
    for c in labels.unique():
        where = (labels == c).nonzero().squeeze(1)
        rank[where] = torch.arange(len(where))
    return (rank < per_class).nonzero().squeeze(1)


def principal_plane(mu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean of mu (N, D) and its first two principal directions (2, D), each signed so its largest entry is
    positive (the same plane gives the same axes); a 1-D latent gets the zero vector as its second axis."""
    mean = mu.mean(0)
    _, _, vh = torch.linalg.svd((mu - mean).double(), full_matrices=False)
    axes = torch.zeros(2, mu.shape[1], dtype=torch.float64)
    axes[: min(2, len(vh))] = vh[:2]
    sign = axes.gather(1, axes.abs().argmax(1, keepdim=True)).sign()  # (2, 1): of each axis' largest entry
    sign[sign == 0] = 1
    return mean, (axes * sign).float()


@torch.no_grad()
def image_losses(model: VAE, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's negative ELBO with z at its mean mu (no sampling noise: the same number every time) and its
    reconstruction term, (N,) each in nats: x (N, pixels) in [0, 1], y (N,) its classes; in batches (eval_batch)."""
    losses, recons = [], []
    batch = eval_batch(x.shape[1])
    for start in range(0, len(x), batch):
        xb, yb = x[start : start + batch], y[start : start + batch]
        mu, logvar = model.encode(xb, yb)
        recon = F.binary_cross_entropy_with_logits(model.decode(mu, yb), xb, reduction="none").sum(1)
        losses.append(recon + kl_per_dimension(mu, logvar).sum(1))
        recons.append(recon)
    return torch.cat(losses), torch.cat(recons)


def build_atlas(
    mu: torch.Tensor,
    kl_per_dim: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    model: VAE | None = None,
    x: torch.Tensor | None = None,
) -> Atlas:
    """The atlas from the encodings mu (N, D) of the whole test set, its mean KL per dimension (D,), and its uint8
    images (N, 28, 28) and labels (N,); with the model and the test set x (N, 784, on the model's device), each
    stored point's loss too (format 3)."""
    mu, labels = mu.detach().float().cpu(), test_labels.long().cpu()
    points = first_of_each_class(labels, POINTS_PER_CLASS)
    shown = first_of_each_class(labels, IMAGES_PER_CLASS)
    mean, axes = principal_plane(mu)
    loss = recon = None
    if model is not None and x is not None:
        on_device = points.to(x.device)
        loss, recon = image_losses(model, x[on_device], test_labels.long().to(x.device)[on_device])
        loss, recon = loss.float().cpu(), recon.float().cpu()
    return Atlas(
        mu=mu[points],
        labels=labels[points],
        indices=points,
        images=test_images[shown].to(torch.uint8).cpu(),
        image_labels=labels[shown],
        image_indices=shown,
        pca_mean=mean,
        pca_axes=axes,
        variance=mu.var(0),
        kl=kl_per_dim.detach().float().cpu(),
        loss=loss,
        recon=recon,
    )


@torch.no_grad()
def encode_test_set(model: VAE, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """mu (N, D) of every test image and the mean KL of each dimension (D,)."""
    mus, kl_sums = [], torch.zeros(model.config.latent_dim, device=x.device)
    batch = eval_batch(x.shape[1])
    for start in range(0, len(x), batch):
        mu, logvar = model.encode(x[start : start + batch], y[start : start + batch])
        kl_sums += kl_per_dimension(mu, logvar).sum(0)
        mus.append(mu)
    return torch.cat(mus), kl_sums / len(x)


def atlas_of(model: VAE, x: torch.Tensor, y: torch.Tensor, test_images: torch.Tensor) -> Atlas:
    """The atlas of model on the test set: x (N, 784) in [0, 1] on the model's device, y (N,), images (N, 28, 28)."""
    mu, kl = encode_test_set(model, x, y)
    return build_atlas(mu, kl, test_images, y, model, x)
