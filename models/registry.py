"""Models by name: each (kind, arch) to the class that builds it, and parameter counts from the built module."""

import torch

from models.conv import ConvCVAE, ConvVAE
from models.vae import CVAE, VAE, ModelConfig

BUILDERS: dict[tuple[str, str], type[VAE]] = {
    ("vae", "mlp"): VAE,
    ("cvae", "mlp"): CVAE,
    ("vae", "conv"): ConvVAE,
    ("cvae", "conv"): ConvCVAE,
}


def build_model(config: ModelConfig) -> VAE:
    """A fresh model of config's kind (VAE or CVAE) and arch (MLP or conv)."""
    return BUILDERS[(config.kind, config.arch)](config)


def parameter_count(config: ModelConfig) -> int:
    """How many weights and biases build_model(config) has: built on the meta device, where no memory is taken
    (milliseconds, whatever the sizes)."""
    with torch.device("meta"):
        model = build_model(config)
    return sum(p.numel() for p in model.parameters())
