"""The atlas a checkpoint carries: where the test set lives in latent space, test images, per-dimension stats.

Stored as ``atlas.<field>`` tensors beside the weights, so the explorer's map and picker work
with no dataset installed. Format 3 adds each point's loss and reconstruction term (``loss``,
``recon``) and stores every point's image; a format 2 atlas lacks the losses (and keeps images
of a quarter of its points), and the explorer then leaves out what needs them. Every field is
checked on load like the weights: names, dtypes, shapes against the model's sizes (before any
data is read), label and index ranges, and each float field finite and within what training
writes after its cast to float32 (models/bounds.py).
"""

from dataclasses import dataclass, fields

import torch

from models.bounds import KL_ROUNDING, MAX_AXIS_LENGTH, MAX_ENCODING, MAX_KL, MAX_VARIANCE, float32_problem
from models.errors import CheckpointError
from models.limits import IMAGE_SIDE

MAX_POINTS = 1 << 16  # encodings or images: far more than the 2,000 training writes, a bound nonetheless
# A point's loss or reconstruction term, nats: 784 pixels' BCE reaches a few thousand for a model that fits nothing,
# plus the KL, which MAX_KL bounds per dimension; a bound far above both that keeps float32 sums finite.
MAX_IMAGE_LOSS = 1e9
MAX_TEST_INDEX = 1 << 24


@dataclass
class Atlas:
    """Test-set encodings and images, the plane of their first two principal components, stats per dimension."""

    mu: torch.Tensor  # (N, latent_dim) float32: encodings of N test images
    labels: torch.Tensor  # (N,) int64: their classes
    indices: torch.Tensor  # (N,) int64: their positions in the test set
    images: torch.Tensor  # (M, H, W) grey or (M, 3, H, W) RGB, uint8: test images for the picker
    image_labels: torch.Tensor  # (M,) int64
    image_indices: torch.Tensor  # (M,) int64
    pca_mean: torch.Tensor  # (latent_dim,) float32: the mean encoding
    pca_axes: torch.Tensor  # (2, latent_dim) float32: the first two principal directions, unit length
    variance: torch.Tensor  # (latent_dim,) float32: Var(mu) over the whole test set (active above 0.01)
    kl: torch.Tensor  # (latent_dim,) float32: mean KL per dimension over the whole test set
    # format 3 (None in older atlases): each point's negative ELBO with z at its mean, and its reconstruction term
    loss: torch.Tensor | None = None  # (N,) float32, nats
    recon: torch.Tensor | None = None  # (N,) float32, nats

    def tensors(self) -> dict[str, torch.Tensor]:
        """The fields as the checkpoint stores them: atlas.<field>, contiguous on the CPU; the images as (M, C, H, W)
        (format 4)."""
        stored = {
            f"atlas.{f.name}": value.detach().cpu().contiguous()
            for f in fields(self)
            if (value := getattr(self, f.name)) is not None
        }
        if self.images.dim() == 3:  # grey: the channel's axis
            stored["atlas.images"] = stored["atlas.images"][:, None]
        return stored

    @property
    def has_losses(self) -> bool:
        """Whether each point's loss is stored (format 3)."""
        return self.loss is not None and self.recon is not None

    def loss_percentile(self, loss: float) -> float:
        """The share of the stored test images, in percent, whose loss is at most loss (has_losses must hold)."""
        return 100.0 * (self.loss <= loss).float().mean().item()


OPTIONAL_FIELDS = ("loss", "recon")  # both or neither
FIELDS = tuple(f.name for f in fields(Atlas) if f.name not in OPTIONAL_FIELDS)
# Each float field's range as float32: (low, high); pca_axes are unit vectors, their lengths checked beside.
FLOAT_FIELDS = {
    "mu": (-MAX_ENCODING, MAX_ENCODING),
    "pca_mean": (-MAX_ENCODING, MAX_ENCODING),
    "pca_axes": (-MAX_AXIS_LENGTH, MAX_AXIS_LENGTH),
    "variance": (0.0, MAX_VARIANCE),
    "kl": (-KL_ROUNDING, MAX_KL),
    "loss": (-KL_ROUNDING, MAX_IMAGE_LOSS),
    "recon": (-KL_ROUNDING, MAX_IMAGE_LOSS),
}
INDEX_FIELDS = ("labels", "indices", "image_labels", "image_indices")


def expected_shapes(
    shapes: dict[str, tuple[int, ...]], latent_dim: int, image_shape: tuple[int, int, int], path: object
) -> dict[str, tuple[int, ...]]:
    """The shape each atlas tensor must have, given the header's shapes of mu and images; a CheckpointError if those
    two are not (N, latent_dim) and (M, C, H, W) with the model's image_shape (C, H, W), N and M from 1 to
    MAX_POINTS. Formats 1 to 3 stored (M, 28, 28): all their models are 28x28 grey."""
    mu, images = shapes.get("mu", ()), shapes.get("images", ())
    if len(mu) != 2 or mu[1] != latent_dim or not 0 < mu[0] <= MAX_POINTS:
        raise CheckpointError(f"{path} has a malformed atlas: mu has shape {mu}, expected (N, {latent_dim})")
    older = image_shape == (1, IMAGE_SIDE, IMAGE_SIDE) and tuple(images[1:]) == (IMAGE_SIDE, IMAGE_SIDE)
    if not (older or tuple(images[1:]) == image_shape) or not 0 < (images or (0,))[0] <= MAX_POINTS:
        expected = ", ".join(map(str, image_shape))
        raise CheckpointError(f"{path} has a malformed atlas: images have shape {images}, expected (M, {expected})")
    n, m, d = mu[0], images[0], latent_dim
    return {
        "mu": (n, d),
        "labels": (n,),
        "indices": (n,),
        "images": tuple(images),
        "image_labels": (m,),
        "image_indices": (m,),
        "pca_mean": (d,),
        "pca_axes": (2, d),
        "variance": (d,),
        "kl": (d,),
        "loss": (n,),
        "recon": (n,),
    }


def check_atlas_layout(entries: dict, latent_dim: int, image_shape: tuple[int, int, int], path: object) -> None:
    """The header's atlas.* entries: all fields or none, each of its shape; before any data is read."""
    names = {name.removeprefix("atlas."): entry for name, entry in entries.items() if name.startswith("atlas.")}
    if not names:
        return
    if missing := [f for f in FIELDS if f not in names]:
        raise CheckpointError(f"{path} has an incomplete atlas: {', '.join(missing)} missing")
    if len([f for f in OPTIONAL_FIELDS if f in names]) == 1:
        missing = next(f for f in OPTIONAL_FIELDS if f not in names)
        raise CheckpointError(f"{path} has an incomplete atlas: {missing} missing")
    if extra := sorted(set(names) - set(FIELDS) - set(OPTIONAL_FIELDS)):
        raise CheckpointError(f"{path} has a tensor vae-tui does not write: atlas.{extra[0][:40]}")
    shapes = expected_shapes({k: v.shape for k, v in names.items()}, latent_dim, image_shape, path)
    for name, shape in shapes.items():
        if name in names and names[name].shape != shape:
            raise CheckpointError(
                f"{path} has a malformed atlas: {name} has shape {names[name].shape}, expected {shape}"
            )


def atlas_from(tensors: dict[str, torch.Tensor], num_classes: int, path: object) -> Atlas | None:
    """The Atlas in a checkpoint's tensors (None if it has none), its values checked: dtypes, finite, ranges."""
    if "atlas.mu" not in tensors:
        return None
    values = {}
    for name in FIELDS + OPTIONAL_FIELDS:
        if (t := tensors.get(f"atlas.{name}")) is None:  # an optional field (check_atlas_layout: both or neither)
            continue
        if name in FLOAT_FIELDS:
            if problem := float_field_problem(name, t):
                raise CheckpointError(f"{path} has a malformed atlas: {name} {problem}")
            values[name] = t.float().clone()
        elif name == "images":
            if t.dtype != torch.uint8:
                raise CheckpointError(f"{path} has a malformed atlas: images must be uint8, not {t.dtype}")
            values[name] = (t[:, 0] if t.dim() == 4 and t.shape[1] == 1 else t).clone()  # grey as (M, H, W)
        else:
            if t.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
                raise CheckpointError(f"{path} has a malformed atlas: {name} must be integers, not {t.dtype}")
            high = num_classes if "labels" in name else MAX_TEST_INDEX
            if len(t) and (t.min() < 0 or t.max() >= high):
                raise CheckpointError(f"{path} has a malformed atlas: {name} must lie in 0..{high - 1}")
            values[name] = t.long().clone()
    return Atlas(**values)


def float_field_problem(name: str, t: torch.Tensor) -> str | None:
    """Why t is not what training writes as the atlas' float field name (after the cast to float32), or None."""
    low, high = FLOAT_FIELDS[name]
    if problem := float32_problem(t, high, low):
        return problem
    if name == "pca_axes" and (t.double().norm(dim=1) > MAX_AXIS_LENGTH).any():
        return "must be unit vectors"
    return None


def atlas_float_problem(atlas: Atlas) -> tuple[str, str] | None:
    """The first float field of atlas (one that is there) that is not what a checkpoint may carry, and why."""
    for name in FLOAT_FIELDS:
        value = getattr(atlas, name)
        if value is not None and (problem := float_field_problem(name, value)):
            return name, problem
    return None
