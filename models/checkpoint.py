"""The checkpoint format: one safetensors file with weights, resume state and JSON metadata.

Layout of the tensors: ``model.<param>`` (weights), ``class_centroids`` (num_classes,
latent_dim), ``atlas.<field>`` (models/atlas.py; checkpoints written before it have none),
and for resumable checkpoints ``optimizer.<index>.<key>`` and ``resume.<name>``.
The header's ``__metadata__["vae_tui"]`` holds a JSON object with the format version, the
model config, dataset, class names, epoch, metrics, training settings, package version and
a SHA-256 of the data section, so that a flipped byte in the weights is caught on load.
Loading never executes code: safetensors holds only tensors and strings. Every float is checked as
the float32 it becomes, finite and within what training writes (models/bounds.py).
"""

import hashlib
import json
import math
import struct
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from models.atlas import Atlas, atlas_from, check_atlas_layout
from models.atomic import write_atomic
from models.bounds import MAX_ENCODING, MAX_WEIGHT, float32_problem
from models.checkpoint_file import MAX_HEADER_BYTES, METADATA_KEY, Layout, read_layout, read_tensors
from models.errors import CheckpointError, UserError
from models.limits import IMAGE_CHANNELS, MAX_IMAGE_SIZE, MAX_SIZE, MIN_IMAGE_SIZE, shown
from models.registry import skeleton
from models.resume import ResumeState, parameter_index, resume_state
from models.text import mostly_control, printable
from models.vae import ARCHS, MODEL_KINDS, VAE, ModelConfig
from models.version import package_version

__all__ = ["MAX_HEADER_BYTES", "METADATA_KEY", "Checkpoint", "ResumeState", "load_checkpoint", "save_checkpoint"]

# 2: the model config names its arch (mlp or conv). Version 1 files, all MLPs, still load; a
# vae-tui that reads only version 1 refuses a version 2 file with "upgrade vae-tui".
# 3: the atlas stores each point's loss and reconstruction term, and every point's image (models/atlas.py);
# version 2 files load without them.
# 4: models of any image size (8 to 128) and 1 or 3 channels; the atlas's images are (M, C, H, W), not (M, 28, 28).
# Version 3 files (and the bundled weights) load unchanged.
FORMAT_VERSION = 4
SUFFIX = ".safetensors"


@dataclass
class Checkpoint:
    """A trained model with everything the explorer, eval and resume need to know about it."""

    model: VAE
    dataset: str
    class_names: list[str]
    epoch: int
    class_centroids: torch.Tensor  # (num_classes, latent_dim): mean mu over each class's training images
    metrics: dict[str, float] = field(default_factory=dict)
    training: dict = field(default_factory=dict)  # settings it was trained with: lr, batch_size, seed ...
    package_version: str = field(default_factory=package_version)
    resume: ResumeState | None = None
    path: Path | None = None
    sha256: str | None = None  # of the tensor data, as the file stores it (checked on load)
    atlas: Atlas | None = None  # the test set's encodings and images, per-dimension stats; None in older files

    @property
    def config(self) -> ModelConfig:
        """The model's sizes and kind."""
        return self.model.config


def save_checkpoint(path: str | Path, checkpoint: Checkpoint, weight_dtype: torch.dtype = torch.float32) -> Path:
    """Write checkpoint to path atomically and return the path; weight_dtype float16 halves the weights' bytes
    (the bundled conv models: train/bundle.py); they load as float32."""
    tensors = {
        f"model.{name}": t.detach().to(weight_dtype).cpu().contiguous()
        for name, t in checkpoint.model.state_dict().items()
    }
    tensors["class_centroids"] = checkpoint.class_centroids.detach().float().cpu().contiguous()
    if checkpoint.atlas is not None:
        tensors.update(checkpoint.atlas.tensors())
    info = {
        "format_version": FORMAT_VERSION,
        "model": checkpoint.config.to_dict(),
        "dataset": checkpoint.dataset,
        "class_names": list(checkpoint.class_names),
        "epoch": checkpoint.epoch,
        "metrics": checkpoint.metrics,
        "training": checkpoint.training,
        "package_version": checkpoint.package_version,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if checkpoint.resume is not None:
        optimizer_tensors, optimizer_info = _flatten_optimizer(checkpoint.resume.optimizer)
        tensors.update(optimizer_tensors)
        tensors.update({f"resume.{k}": v.detach().cpu().contiguous() for k, v in checkpoint.resume.tensors.items()})
        info["optimizer"] = optimizer_info
        info["resume"] = checkpoint.resume.progress
    unsigned = safetensors.torch.save(tensors)
    info["sha256"] = hashlib.sha256(unsigned[_data_offset(unsigned) :]).hexdigest()
    blob = safetensors.torch.save(tensors, metadata={METADATA_KEY: json.dumps(_finite(info), allow_nan=False)})
    return write_atomic(path, blob)


def load_checkpoint(path: str | Path, expect_kind: str | None = None, with_resume: bool = False) -> Checkpoint:
    """Read and verify a checkpoint; raise CheckpointError with a one-line reason if it is not usable.

    The metadata and the header are checked against the model they describe before any data is
    read, so a file's size alone costs no memory: what is read is what a model of the stated
    (bounded) sizes needs.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}" if not path.exists() else f"{path} is not a file")
    try:
        with path.open("rb") as file:
            layout = read_layout(file, path)
            _check_version(layout.info, path)
            config = _config_from(layout.info, path)
            if expect_kind is not None and config.kind != expect_kind:
                raise CheckpointError(f"{path} holds a {config.kind.upper()}, but a {expect_kind.upper()} was expected")
            described = _described(layout.info, config, path)
            model = skeleton(config)  # shapes only: sizes from a damaged header must not allocate gigabytes
            expected = model.state_dict()
            _check_layout(layout, expected, config, path)
            tensors = read_tensors(file, layout, path)
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    model.load_state_dict(_model_state(tensors, expected, path), assign=True)
    shape = (config.num_classes, config.latent_dim)
    centroids = _tensor(tensors, "class_centroids", shape, MAX_ENCODING, path).clone()
    checkpoint = Checkpoint(
        model=model.eval(),
        class_centroids=centroids,
        path=path,
        sha256=layout.info["sha256"],
        atlas=atlas_from(tensors, config.num_classes, path),
        **described,
    )
    if with_resume:
        _check_running_sums(tensors, path)
        checkpoint.resume = resume_state(layout.info, tensors, [tuple(t.shape) for t in expected.values()], path)
    return checkpoint


def _described(info: dict, config: ModelConfig, path: Path) -> dict[str, Any]:
    """What the metadata says about the model, checked: dataset, class names, epoch, metrics, settings, version."""
    class_names = info.get("class_names")
    if not (
        isinstance(class_names, list)
        and len(class_names) == config.num_classes
        and all(isinstance(c, str) for c in class_names)
    ):
        raise CheckpointError(f"{path} has malformed metadata: class_names must be {config.num_classes} strings")
    epoch = _typed(info, "epoch", int, path)
    if epoch < 0:
        raise CheckpointError(f"{path} has malformed metadata: epoch {epoch}")
    return {
        "dataset": _readable(_typed(info, "dataset", str, path), "dataset", path),
        "class_names": [_readable(name, f"class name {i}", path) for i, name in enumerate(class_names)],
        "epoch": epoch,
        "metrics": _typed(info, "metrics", dict, path),
        "training": _typed(info, "training", dict, path),
        "package_version": _typed(info, "package_version", str, path),
    }


def _data_offset(blob: bytes) -> int:
    """Where the tensor bytes begin in a safetensors blob."""
    return 8 + struct.unpack("<Q", blob[:8])[0]


def _check_version(info: dict, path: Path) -> None:
    """The metadata's format version: one this vae-tui reads."""
    file_version = info.get("format_version")
    if type(file_version) is not int or file_version < 1:
        raise CheckpointError(f"{path} has malformed metadata: bad format_version {shown(file_version)}")
    if file_version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} uses checkpoint format {file_version}, newer than this vae-tui reads ({FORMAT_VERSION}):"
            " upgrade vae-tui"
        )


def _typed(info: dict, key: str, kind: type, path: Path) -> Any:
    """info[key], checked to be of type kind."""
    value = info.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise CheckpointError(f"{path} has malformed metadata: {key} should be a {kind.__name__}")
    return value


def _readable(name: str, what: str, path: Path) -> str:
    """A name from the metadata, its control characters replaced; refused when it is mostly control characters."""
    if mostly_control(name):
        raise CheckpointError(f"{path} has malformed metadata: its {what} is mostly control characters")
    return printable(name)


def _finite(value: Any) -> Any:
    """value with every NaN or infinite float as None (JSON null): standard JSON has neither."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _config_from(info: dict, path: Path) -> ModelConfig:
    """The ModelConfig stored in the metadata, validated."""
    raw = _typed(info, "model", dict, path)
    if raw.get("kind") not in MODEL_KINDS:
        raise CheckpointError(f"{path} has malformed metadata: unknown model kind {raw.get('kind')!r}")
    raw = {"arch": "mlp", **raw}  # version 1 files have no arch: they are all MLPs
    if raw["arch"] not in ARCHS:
        raise CheckpointError(f"{path} holds a model of arch {shown(raw['arch'])}, unknown to this vae-tui: upgrade it")
    sizes = ("input_dim", "hidden_dim", "latent_dim", "num_classes")
    image = {"channels": IMAGE_CHANNELS, "image_size": range(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE + 1)}
    if not {"kind", "arch", *sizes} <= set(raw) <= {"kind", "arch", *sizes, *image} or not all(
        type(raw[s]) is int and 0 < raw[s] <= MAX_SIZE for s in sizes
    ):
        raise CheckpointError(f"{path} has malformed metadata: bad model sizes {shown(raw)}")
    if not all(type(raw.get(k, values[0])) is int and raw.get(k, values[0]) in values for k, values in image.items()):
        raise CheckpointError(f"{path} has malformed metadata: bad image shape {shown(raw)}")
    try:
        return ModelConfig(**raw)
    except UserError as e:
        raise CheckpointError(f"{path} has malformed metadata: {e}") from None


def _check_layout(layout: Layout, expected: dict[str, torch.Tensor], config: ModelConfig, path: Path) -> None:
    """The header's tensors against the model's config, before their data is read.

    The weights and centroids must have the config's shapes, Adam's state the shape of its
    parameter (or none: its step), and resume tensors (RNG states, running sums) stay small.
    """
    shapes = {f"model.{name}": tuple(t.shape) for name, t in expected.items()}
    shapes["class_centroids"] = (config.num_classes, config.latent_dim)
    for name, shape in shapes.items():
        if name not in layout.entries:
            raise CheckpointError(f"{path} is missing the tensor {name.removeprefix('model.')}")
        if layout.entries[name].shape != shape:
            raise CheckpointError(
                f"{path}: {name.removeprefix('model.')} has shape {layout.entries[name].shape}, expected {shape}"
            )
    check_atlas_layout(layout.entries, config.latent_dim, config.image_shape, path)
    parameters = [tuple(t.shape) for t in expected.values()]  # in the order Adam numbers them
    max_resume = max(config.num_classes * config.latent_dim, 1 << 16)
    for name, entry in layout.entries.items():
        if name in shapes or name.startswith("atlas."):
            continue
        kind, _, rest = name.partition(".")
        index, _, key = rest.partition(".")
        position = parameter_index(index, len(parameters))
        if kind == "model":
            raise CheckpointError(f"{path} has weights this model does not: {shown(rest)}")
        if kind == "optimizer" and position is not None and key:
            if entry.shape not in ((), parameters[position]):
                raise CheckpointError(f"{path} has malformed optimizer state: {shown(name)} has shape {entry.shape}")
        elif kind == "resume" and rest:
            if math.prod(entry.shape) > max_resume:
                raise CheckpointError(f"{path} has a resume tensor larger than any vae-tui writes: {shown(name)}")
        else:
            raise CheckpointError(f"{path} has a tensor vae-tui does not write: {shown(name)}")
    channels, height, width = config.image_shape
    if config.input_dim != channels * height * width:
        raise CheckpointError(
            f"the model's images have {config.input_dim} pixels, not the {channels}x{height}x{width} ="
            f" {channels * height * width} its config names ({path})"
        )


def _tensor(tensors: dict, name: str, shape: tuple[int, ...], bound: float, path: Path) -> torch.Tensor:
    """tensors[name] as float32 of the given shape, finite and within +-bound after the cast."""
    if name not in tensors:
        raise CheckpointError(f"{path} is missing the tensor {name}")
    t = tensors[name]
    if tuple(t.shape) != tuple(shape):
        raise CheckpointError(f"{path}: {name} has shape {tuple(t.shape)}, expected {tuple(shape)}")
    if problem := float32_problem(t, bound):
        raise CheckpointError(f"{path}: {name} {problem}")
    return t.float()


def _model_state(tensors: dict, expected: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """The model's weights as float32 within +-MAX_WEIGHT, copied out of the file's buffer (which then goes once the
    load ends)."""
    stored = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    return {name: _tensor(stored, name, tuple(t.shape), MAX_WEIGHT, path).clone() for name, t in expected.items()}


def _check_running_sums(tensors: dict, path: Path) -> None:
    """The resume state's floating tensors (the stopped epoch's sums), finite as the float32 training adds them to."""
    sums = {name: t for name, t in tensors.items() if name.startswith("resume.") and t.is_floating_point()}
    for name, t in sums.items():
        if problem := float32_problem(t, torch.finfo(torch.float32).max):
            raise CheckpointError(f"{path}: {shown(name)} {problem}")


def _flatten_optimizer(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state_dict into tensors and JSON-able rest."""
    tensors, scalars = {}, {}
    for index, param_state in state_dict["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}
