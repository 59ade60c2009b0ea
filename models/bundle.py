"""Copy a trained checkpoint into the package's bundled weights, its weights stored as float16.

Usage: python -m models.bundle SRC.safetensors DST.safetensors
The copy decodes 1,000 prior draws (for a CVAE, 100 per class) and SRC's class centroids;
it is written only if every pixel is within one grey level (1/255) of SRC's, and prints
the largest difference it measured.
"""

import sys
from pathlib import Path

import torch

from models.checkpoint import load_checkpoint, save_checkpoint
from models.errors import UserError
from models.vae import VAE

GREY_LEVEL = 1 / 255


@torch.no_grad()
def decoded(model: VAE, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Pixel probabilities of z under labels (the VAE ignores them)."""
    return torch.sigmoid(model.decode(z, labels if model.conditional else None))


def largest_difference(a: VAE, b: VAE, centroids: torch.Tensor) -> float:
    """The largest pixel difference between a's and b's images of 1,000 prior draws and the class centroids."""
    classes = a.config.num_classes
    z = torch.cat([torch.randn(1000, a.config.latent_dim, generator=torch.Generator().manual_seed(0)), centroids])
    labels = torch.cat([torch.arange(1000) % classes, torch.arange(classes)])
    return (decoded(a, z, labels) - decoded(b, z, labels)).abs().max().item()


def bundle(source: Path, target: Path) -> float:
    """Write source's checkpoint to target with float16 weights; return the largest pixel difference."""
    checkpoint = load_checkpoint(source)
    temporary = target.with_name(f".{target.name}.check")
    save_checkpoint(temporary, checkpoint, weight_dtype=torch.float16)
    try:
        copy = load_checkpoint(temporary)
        difference = largest_difference(checkpoint.model, copy.model, checkpoint.class_centroids)
        if difference > GREY_LEVEL:
            raise UserError(f"float16 weights change a pixel by {difference * 255:.2f} grey levels: not bundled")
        temporary.replace(target)
    finally:
        temporary.unlink(missing_ok=True)
    return difference


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    try:
        worst = bundle(Path(sys.argv[1]), Path(sys.argv[2]))
    except UserError as e:
        sys.exit(f"models.bundle: error: {e}")
    print(f"wrote {sys.argv[2]}: largest pixel difference {worst * 255:.3f} grey levels (of 255)")
