"""The VAE objective: Bernoulli reconstruction (BCE) plus the Gaussian KL term."""

import torch
import torch.nn.functional as F


def elbo_loss(
    x_logits: torch.Tensor,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (total, reconstruction, kl), each summed over the batch: the negative ELBO.

    Reconstruction is BCE-sum computed from logits, which equals the demo's
    binary_cross_entropy(sigmoid(logits), x) without its log(0) clamping. The KL term is
    Kingma & Welling (2014), Appendix B: -1/2 * sum(1 + log sigma^2 - mu^2 - sigma^2).
    weights (B,), if given, scales each image's terms: 0 drops the padding of a static-shape batch.
    """
    if weights is None:
        reconstruction = F.binary_cross_entropy_with_logits(x_logits, x, reduction="sum")
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    else:
        reconstruction = (F.binary_cross_entropy_with_logits(x_logits, x, reduction="none").sum(1) * weights).sum()
        kl = -0.5 * ((1 + logvar - mu.pow(2) - logvar.exp()).sum(1) * weights).sum()
    return reconstruction + kl, reconstruction, kl


def kl_per_dimension(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Each image's KL term per latent dimension, (B, D): 1/2 (mu^2 + sigma^2 - 1 - log sigma^2) (Kingma & Welling,
    2014, Appendix B); its sum over D is elbo_loss's kl for that image."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)
