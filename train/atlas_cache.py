"""The atlas of a model that has no checkpoint (one written elsewhere), computed in stages and cached in the user cache
under a digest of its weights and its data: the second start on the same model and data encodes nothing."""

import contextlib
import hashlib
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import safetensors
import safetensors.torch
import torch
from torch import nn

from models.atlas import Atlas, atlas_float_problem, atlas_from, check_atlas_layout
from models.atomic import write_atomic
from models.errors import CheckpointError
from models.loss import kl_per_dimension
from train.atlas import build_atlas, image_losses
from train.cache import user_cache_dir
from train.evaluate import eval_batch

CACHE_VERSION = 1  # part of every key: a change of what the cache holds makes the old files unused, not misread
CENTROID_IMAGES = 10_000  # the training images whose encodings give the class centroids (the first of the split)


@dataclass
class CachedAtlas:
    """What the explorer needs of a model's data: the atlas and the class centroids (num_classes, latent_dim)."""

    atlas: Atlas
    class_centroids: torch.Tensor


# A stage begins: its name and how many images it goes through; then the images done so far.
Stage = Callable[[str, int], None]
Done = Callable[[int], None]


def atlases_dir() -> Path:
    """Where cached atlases live: the user cache's vae-tui/atlases."""
    return user_cache_dir() / "atlases"


def weights_digest(model: object) -> str | None:
    """SHA-256 of a module's state (every tensor's name, dtype, shape and bytes, buffers included: BatchNorm's
    running statistics change what it encodes; other state by its repr) and of its class's source, so that fixing
    the code of encode gives another key; None for a model that is no nn.Module (nothing to digest)."""
    if not isinstance(model, nn.Module):
        return None
    hasher = hashlib.sha256()
    kind = type(model)
    hasher.update(f"{kind.__module__}.{kind.__qualname__}".encode())
    with contextlib.suppress(OSError, TypeError):  # a class made at run time has no source file
        hasher.update(inspect.getsource(kind).encode())
    for name, value in sorted(model.state_dict().items()):
        if not isinstance(value, torch.Tensor):  # a module's extra state (get_extra_state): anything
            hasher.update(json.dumps([name, repr(value)]).encode())
            continue
        value = value.detach().cpu().contiguous()
        hasher.update(json.dumps([name, str(value.dtype), list(value.shape)]).encode())
        hasher.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return hasher.hexdigest()


def tensor_digest(*tensors: torch.Tensor) -> str:
    """SHA-256 of tensors' dtypes, shapes and bytes: the identity of images handed over in memory."""
    hasher = hashlib.sha256()
    for tensor in tensors:
        value = tensor.detach().cpu().contiguous()
        hasher.update(json.dumps([str(value.dtype), list(value.shape)]).encode())
        hasher.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return hasher.hexdigest()


def cache_key(weights: str, data: str, decoder_output: str, config: object) -> str:
    """The cache file's name: the weights' digest, the data's identity, how outputs are read, the model's sizes."""
    text = json.dumps([CACHE_VERSION, weights, data, decoder_output, repr(config)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def load_cached(key: str, latent_dim: int, image_shape: tuple[int, int, int], num_classes: int) -> CachedAtlas | None:
    """The atlas cached under key, checked as a checkpoint's atlas is; None when there is none. A damaged file is a
    CheckpointError (the caller computes the atlas again and replaces it)."""
    path = atlases_dir() / f"{key}.safetensors"
    if not path.is_file():
        return None
    try:
        tensors = safetensors.torch.load_file(path)
    except (OSError, safetensors.SafetensorError) as e:
        raise CheckpointError(f"the cached atlas {path} is damaged ({type(e).__name__})") from None
    check_atlas_layout(tensors, latent_dim, image_shape, path)
    atlas = atlas_from(tensors, num_classes, path)
    centroids = tensors.get("class_centroids")
    if atlas is None or centroids is None or tuple(centroids.shape) != (num_classes, latent_dim):
        raise CheckpointError(f"the cached atlas {path} is incomplete")
    if centroids.dtype != torch.float32 or not torch.isfinite(centroids).all():
        raise CheckpointError(f"the cached atlas {path} has centroids that are not finite float32")
    return CachedAtlas(atlas, centroids.clone())


def save_cached(key: str, cached: CachedAtlas) -> Path:
    """Write the atlas and centroids under key, atomically."""
    tensors = cached.atlas.tensors()
    tensors["class_centroids"] = cached.class_centroids.detach().float().cpu().contiguous()
    atlases_dir().mkdir(parents=True, exist_ok=True)
    return write_atomic(atlases_dir() / f"{key}.safetensors", safetensors.torch.save(tensors))


@torch.no_grad()
def compute_atlas(
    model: nn.Module,
    test: tuple[torch.Tensor, torch.Tensor],
    train: tuple[torch.Tensor, torch.Tensor],
    stage: Stage,
    done: Done,
) -> CachedAtlas:
    """The atlas of model (vae-tui's interface: encode(x, y) of pixels in [0, 1]) on the test split's uint8 images
    and labels, and the class centroids of the training split's first CENTROID_IMAGES, in stages: encodings (with
    the KL of each dimension), the principal plane, the picker images' losses, the centroids. A CheckpointError if
    the encodings are not what a checkpoint may carry (a diverged model's)."""
    images, labels = test
    x, y = images.reshape(len(images), -1), labels.long()
    batch = eval_batch(x.shape[1])
    stage("encodings and KL per dimension", len(x))
    mus, kl_sums = [], torch.zeros(model.config.latent_dim)
    for start in range(0, len(x), batch):
        mu, logvar = model.encode(x[start : start + batch].float() / 255, y[start : start + batch])
        kl_sums += kl_per_dimension(mu, logvar).sum(0).cpu()
        mus.append(mu.cpu())
        done(start + len(mu))
    stage("principal plane", 0)
    atlas = build_atlas(torch.cat(mus), kl_sums / len(x), images, y)
    stage("picker images", len(atlas.indices))
    losses, recons = [], []
    for start in range(0, len(atlas.indices), batch):
        rows = atlas.indices[start : start + batch]
        loss, recon = image_losses(model, x[rows].float() / 255, y[rows])
        losses.append(loss.float().cpu())
        recons.append(recon.float().cpu())
        done(start + len(rows))
    atlas.loss, atlas.recon = torch.cat(losses), torch.cat(recons)
    if found := atlas_float_problem(atlas):
        raise CheckpointError(f"the model's atlas is unusable: {' '.join(found)}")
    return CachedAtlas(atlas, class_centroids_of(model, train, stage, done))


def class_centroids_of(
    model: nn.Module, train: tuple[torch.Tensor, torch.Tensor], stage: Stage, done: Done
) -> torch.Tensor:
    """The mean encoding of each class over the training split's first CENTROID_IMAGES uint8 images."""
    images, labels = train[0][:CENTROID_IMAGES], train[1][:CENTROID_IMAGES].long()
    x, num_classes = images.reshape(len(images), -1), model.config.num_classes
    sums = torch.zeros(num_classes, model.config.latent_dim)
    batch = eval_batch(x.shape[1])
    stage("class centroids", len(x))
    for start in range(0, len(x), batch):
        yb = labels[start : start + batch]
        mu, _ = model.encode(x[start : start + batch].float() / 255, yb)
        sums.index_add_(0, yb, mu.float().cpu())
        done(start + len(yb))
    return sums / torch.bincount(labels, minlength=num_classes).clamp(min=1).unsqueeze(1)
