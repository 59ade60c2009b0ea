"""Copy a trained checkpoint into the package's bundled weights, with its atlas, its weights float16 if asked.

Usage: python -m train.bundle SRC.safetensors DST.safetensors [--float16]
A checkpoint written before the atlas gets one computed on its dataset's test set (the
dataset must be found). With --float16 the copy decodes 1,000 prior draws (for a CVAE, 100
per class) and SRC's class centroids; it is written only if every pixel is within one grey
level (1/255) of SRC's, and the largest difference measured is printed.
"""

import sys
from pathlib import Path

import torch

from models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from models.errors import UserError
from models.vae import VAE
from train.atlas import atlas_of
from train.data import load_dataset
from train.device import unit_pixels

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


def with_atlas(checkpoint: Checkpoint) -> Checkpoint:
    """checkpoint, its atlas computed on its dataset's test set if it has none."""
    if checkpoint.atlas is None:
        test = load_dataset(checkpoint.dataset).test
        checkpoint.atlas = atlas_of(checkpoint.model, unit_pixels(test.images), test.labels.long(), test.images)
    return checkpoint


def bundle(source: Path, target: Path, float16: bool = True) -> float:
    """Write source's checkpoint, with an atlas, to target (float16 weights if asked); return the largest pixel
    difference that float16 made (0 without it)."""
    checkpoint = with_atlas(load_checkpoint(source))
    if not float16:
        save_checkpoint(target, checkpoint)
        return 0.0
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
    arguments = [a for a in sys.argv[1:] if a != "--float16"]
    if len(arguments) != 2:
        sys.exit(__doc__)
    try:
        worst = bundle(Path(arguments[0]), Path(arguments[1]), float16="--float16" in sys.argv)
    except UserError as e:
        sys.exit(f"train.bundle: error: {e}")
    print(f"wrote {arguments[1]}: largest pixel difference {worst * 255:.3f} grey levels (of 255)")
