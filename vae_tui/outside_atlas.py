"""The data a model written elsewhere is explored or evaluated on (an image folder, an installed dataset, or images
in memory) and its atlas: computed with its stages shown on stderr, cached under a digest of the weights and data."""

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from models.errors import UserError
from models.names import DATASET_NAMES
from models.text import printable

if TYPE_CHECKING:
    import torch

    from models import Checkpoint
    from train.data import Dataset
    from train.progress import EvalProgress


@dataclass
class OutsideData:
    """A dataset and what the atlas cache takes of it to know it again."""

    dataset: "Dataset"
    identity: str


def folder_source(args: argparse.Namespace, shape: tuple[int, int, int]) -> OutsideData:
    """args.data, an image folder read as `train --data` reads it (its folder flags where args has them), made the
    model's image size and channels unless those flags say otherwise: the folder's test split is the atlas'."""
    from vae_tui.commands.data import folder_data

    channels, size, _ = shape
    folder = argparse.Namespace(
        data=args.data,
        image_size=getattr(args, "image_size", None) or size,
        channels=getattr(args, "channels", None) or channels,
        resize=getattr(args, "resize", None),
        test_fraction=getattr(args, "test_fraction", None),
        skip_damaged=getattr(args, "skip_damaged", False),
        threads=getattr(args, "threads", None),
    )
    dataset = folder_data(folder, seed=0)
    return OutsideData(dataset, "folder " + json.dumps(dataset.record, sort_keys=True))


def dataset_source(name: str, data_dir: str | None = None, download: bool = False) -> OutsideData:
    """An installed dataset (fashion-mnist or mnist): found as train finds it."""
    from train.atlas_cache import CENTROID_IMAGES
    from train.data import load_dataset

    dataset = load_dataset(name, data_dir, download)
    centroid_images = min(len(dataset.train.labels), CENTROID_IMAGES)
    return OutsideData(dataset, f"dataset {name}: test {len(dataset.test.labels)}, train {centroid_images}")


def tensor_source(images: "torch.Tensor", labels: "torch.Tensor | None" = None) -> OutsideData:
    """Images in memory, (N, C, H, W) or (N, H, W): uint8 levels, or floats in [0, 1]; labels (N,) their classes
    (none: one class). They are both splits: the atlas' test images and the centroids' training images."""
    import torch

    from train.atlas_cache import tensor_digest
    from train.data import Dataset, Split

    if not isinstance(images, torch.Tensor) or images.dim() not in (3, 4) or not len(images):
        raise UserError(f"data: expected images (N, C, H, W) as a tensor, not {describe(images)}")
    if images.is_floating_point():
        if not torch.isfinite(images).all() or images.min() < 0 or images.max() > 1:
            raise UserError("data: float images must lie in [0, 1] (a tanh model's batch in [-1, 1]: (x + 1) / 2)")
        images = (images.detach().float().cpu() * 255).round().to(torch.uint8)
    elif images.dtype != torch.uint8:
        raise UserError(f"data: images must be uint8 levels or floats in [0, 1], not {images.dtype}")
    images = images.detach().cpu()
    if images.dim() == 4 and images.shape[1] == 1:
        images = images[:, 0]  # grey as (N, H, W), as the datasets hold them
    if labels is None:
        labels = torch.zeros(len(images), dtype=torch.long)
    if not isinstance(labels, torch.Tensor) or labels.shape != (len(images),) or labels.is_floating_point():
        raise UserError(f"data: labels must be integers (N,) = ({len(images)},), not {describe(labels)}")
    labels = labels.detach().long().cpu()
    if labels.min() < 0:
        raise UserError("data: labels must be class numbers from 0")
    count = int(labels.max()) + 1
    names = ["all images"] if count == 1 else [str(c) for c in range(count)]
    split = Split(images, labels)
    dataset = Dataset("images", names, split, split, f"{len(images)} images in memory")
    return OutsideData(dataset, "tensor " + tensor_digest(images, labels))


def describe(value: object) -> str:
    """A value for a message: a tensor's shape and dtype, else its type."""
    from models.outside import describe as described

    return described(value)


def data_of(data: object, shape: tuple[int, int, int], threads: int | None = None) -> OutsideData | None:
    """vae_tui.explore's data: None, a dataset's name, an image folder's path, images, or (images, labels)."""
    import torch

    if data is None:
        return None
    if isinstance(data, str) and data in DATASET_NAMES:
        return dataset_source(data)
    if isinstance(data, (str, Path)):
        if not Path(data).is_dir():
            raise UserError(f"data: {printable(str(data))} is not a folder (nor one of {', '.join(DATASET_NAMES)})")
        return folder_source(argparse.Namespace(data=str(data), threads=threads), shape)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return tensor_source(*data)
    if isinstance(data, torch.Tensor):
        return tensor_source(data)
    names = " or ".join(DATASET_NAMES)
    raise UserError(f"data: expected a folder, {names}, or images as a tensor, not {describe(data)}")


def fit_to_data(checkpoint: "Checkpoint", data: OutsideData, keep_names: bool) -> None:
    """Check the data's images against the model's; an unconditional model takes the data's classes (they name the
    map's colours and the class keys' centroids) and, unless keep_names, their names."""
    model, config, dataset = checkpoint.model, checkpoint.config, data.dataset
    if dataset.image_shape != config.image_shape:
        raise UserError(f"the data's images are {dataset.image_shape}, the model's {config.image_shape}")
    if model.conditional and len(dataset.class_names) != config.num_classes:
        raise UserError(f"the data has {len(dataset.class_names)} classes, the model {config.num_classes}")
    if not len(dataset.test.labels):
        raise UserError(f"the data has no test images: {printable(dataset.source)}")
    if not model.conditional:
        model.use_classes(len(dataset.class_names))
        checkpoint.class_centroids = checkpoint.class_centroids.new_zeros(len(dataset.class_names), config.latent_dim)
    if not keep_names:
        checkpoint.class_names = list(dataset.class_names)


def can_encode(checkpoint: "Checkpoint", who: str) -> bool:
    """Whether the model has an encoder, to map its data; a note on stderr when it has none."""
    if not checkpoint.model.has_encoder:
        sys.stderr.write(f"{who}: the model has no encode(x): no map, picker or --image (data unused)\n")
    return checkpoint.model.has_encoder


def add_outside_atlas(
    checkpoint: "Checkpoint", data: OutsideData, who: str, what: str | None = None, debug: bool = False
) -> None:
    """Give the outside model's checkpoint its atlas and class centroids on data: from the cache when the same
    weights met the same data before, else computed (its stages on stderr) and cached. who prefixes the lines
    ("vae-tui explore"); what names the model when its code raises ("--code FILE:FUNC": one line, with debug the
    traceback first), None lets the exception through as it is (a script's own)."""
    from models.errors import CheckpointError
    from models.outside import OutsideModelError
    from train.atlas_cache import cache_key, compute_atlas, load_cached, save_cached, weights_digest
    from vae_tui.outside import user_failure

    model, config = checkpoint.model, checkpoint.config
    try:
        weights = weights_digest(model.inner)
    except Exception:  # a state the digest cannot read: no cache, the atlas is still computed
        weights = None
    key = cache_key(weights, data.identity, model.decoder_output, config) if weights else None
    cached = None
    if key is not None:
        try:
            cached = load_cached(key, config.latent_dim, config.image_shape, config.num_classes)
        except CheckpointError as e:
            sys.stderr.write(f"{who}: {printable(str(e))}: computing it again\n")
    if cached is not None:
        sys.stderr.write(f"{who}: the atlas of this model and data, found in the cache\n")
    else:
        test, train = data.dataset.test, data.dataset.train
        sys.stderr.write(f"{who}: computing the atlas of {len(test.labels):,} test images (cached for next time)\n")
        try:
            with stage_progress(who) as progress:
                splits = (test.images, test.labels), (train.images, train.labels)
                cached = compute_atlas(model, *splits, progress.stage, progress.images_done)
        except CheckpointError as e:
            sys.stderr.write(f"{who}: {printable(str(e))}: no map or picker\n")
            return
        except OutsideModelError:
            raise
        except Exception as e:  # the user's encode or decode raised
            if what is None:
                raise
            raise user_failure(f"{what}: its model raised", e, debug) from None
        if key is not None:
            try:
                save_cached(key, cached)
            except OSError as e:  # a read-only cache: the atlas is used all the same
                sys.stderr.write(f"{who}: the atlas could not be cached ({e.strerror or e})\n")
    checkpoint.atlas, checkpoint.class_centroids = cached.atlas, cached.class_centroids


def stage_progress(who: str) -> "EvalProgress":
    """The atlas' stages on stderr: bars on a terminal, a line per stage otherwise."""
    from rich.console import Console

    from train.progress import EvalProgress, RichEvalProgress

    console = Console(stderr=True)
    if console.is_terminal:
        return RichEvalProgress(console)

    class StageLines(EvalProgress):
        def stage(self, description: str, images: int | None = None) -> None:
            count = f" ({images:,} images)" if images else ""
            sys.stderr.write(f"{who}: atlas: {description}{count}\n")

    return StageLines()
