"""The checkpoint format: one safetensors file with weights, resume state and JSON metadata.

Layout of the tensors: ``model.<param>`` (weights), ``class_centroids`` (num_classes,
latent_dim), and for resumable checkpoints ``optimizer.<index>.<key>`` and ``resume.<name>``.
The header's ``__metadata__["vae_tui"]`` holds a JSON object with the format version, the
model config, dataset, class names, epoch, metrics, training settings, package version and
a SHA-256 of the data section, so that a flipped byte in the weights is caught on load.
Loading never executes code: safetensors holds only tensors and strings.
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
from safetensors import SafetensorError

from models.atomic import write_atomic
from models.errors import CheckpointError
from models.text import mostly_control, printable
from models.vae import MODEL_KINDS, VAE, ModelConfig, build_model
from models.version import package_version

FORMAT_VERSION = 1
METADATA_KEY = "vae_tui"
MAX_HEADER_BYTES = 1 << 20  # our headers are a few KB; anything near this is not ours
SUFFIX = ".safetensors"


@dataclass
class ResumeState:
    """What training needs to continue bit for bit: optimizer, RNG states and progress."""

    optimizer: dict  # torch.optim state_dict
    tensors: dict[str, torch.Tensor]  # RNG states, running sums ...
    progress: dict  # JSON-able: epoch, step within the epoch ...


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

    @property
    def config(self) -> ModelConfig:
        """The model's sizes and kind."""
        return self.model.config


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> Path:
    """Write checkpoint to path atomically and return the path."""
    tensors = {
        f"model.{name}": t.detach().float().cpu().contiguous() for name, t in checkpoint.model.state_dict().items()
    }
    tensors["class_centroids"] = checkpoint.class_centroids.detach().float().cpu().contiguous()
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
    """Read and verify a checkpoint; raise CheckpointError with a one-line reason if it is not usable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}" if not path.exists() else f"{path} is not a file")
    try:
        blob = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror}") from None
    info = _read_info(blob, path)
    try:
        tensors = safetensors.torch.load(blob)
    except (SafetensorError, ValueError, RuntimeError, TypeError, KeyError, OverflowError) as e:
        raise CheckpointError(
            f"{path} is corrupted: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        ) from None
    config = _config_from(info, path)
    if expect_kind is not None and config.kind != expect_kind:
        raise CheckpointError(f"{path} holds a {config.kind.upper()}, but a {expect_kind.upper()} was expected")
    with torch.device("meta"):  # shapes only: sizes from a damaged header must not allocate gigabytes
        expected = build_model(config).state_dict()
    state = _model_state(tensors, expected, path)
    model = build_model(config)
    model.load_state_dict(state)
    class_names = info.get("class_names")
    if not (
        isinstance(class_names, list)
        and len(class_names) == config.num_classes
        and all(isinstance(c, str) for c in class_names)
    ):
        raise CheckpointError(f"{path} has malformed metadata: class_names must be {config.num_classes} strings")
    class_names = [_readable(name, f"class name {i}", path) for i, name in enumerate(class_names)]
    centroids = _tensor(tensors, "class_centroids", (config.num_classes, config.latent_dim), path)
    checkpoint = Checkpoint(
        model=model.eval(),
        dataset=_readable(_typed(info, "dataset", str, path), "dataset", path),
        class_names=class_names,
        epoch=_typed(info, "epoch", int, path),
        class_centroids=centroids,
        metrics=_typed(info, "metrics", dict, path),
        training=_typed(info, "training", dict, path),
        package_version=_typed(info, "package_version", str, path),
        path=path,
    )
    if with_resume:
        checkpoint.resume = _resume_state(info, tensors, path)
    return checkpoint


def _data_offset(blob: bytes) -> int:
    """Where the tensor bytes begin in a safetensors blob."""
    return 8 + struct.unpack("<Q", blob[:8])[0]


def _read_info(blob: bytes, path: Path) -> dict:
    """Parse the safetensors header, check format version and checksum, return our metadata."""
    if len(blob) < 8:
        raise CheckpointError(f"{path} is empty or truncated ({len(blob)} bytes): not a vae-tui checkpoint")
    header_len = struct.unpack("<Q", blob[:8])[0]
    if 8 + header_len > len(blob):
        raise CheckpointError(f"{path} is truncated or not a safetensors file")
    if header_len > MAX_HEADER_BYTES:
        raise CheckpointError(f"{path} has a {header_len}-byte header, larger than any vae-tui checkpoint's")
    try:
        header = json.loads(blob[8 : 8 + header_len].decode("utf-8"))
        raw_info = header["__metadata__"][METADATA_KEY]
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError, KeyError, RecursionError):
        raise CheckpointError(f"{path} is not a vae-tui checkpoint (no vae-tui metadata in its header)") from None
    try:
        info = json.loads(raw_info)
    except (json.JSONDecodeError, TypeError, RecursionError):
        info = None
    if not isinstance(info, dict):
        raise CheckpointError(f"{path} has corrupted metadata")
    file_version = info.get("format_version")
    if not isinstance(file_version, int) or file_version < 1:
        raise CheckpointError(f"{path} has malformed metadata: bad format_version {file_version!r}")
    if file_version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} uses checkpoint format {file_version}, newer than this vae-tui reads ({FORMAT_VERSION}):"
            " upgrade vae-tui"
        )
    if hashlib.sha256(blob[8 + header_len :]).hexdigest() != info.get("sha256"):
        raise CheckpointError(f"{path} is corrupted or truncated: its weights do not match their checksum")
    return info


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
    sizes = ("input_dim", "hidden_dim", "latent_dim", "num_classes")
    if set(raw) != {"kind", *sizes} or not all(type(raw[s]) is int and 0 < raw[s] <= 1 << 16 for s in sizes):
        raise CheckpointError(f"{path} has malformed metadata: bad model sizes {raw}")
    return ModelConfig(**raw)


def _tensor(tensors: dict, name: str, shape: tuple[int, ...], path: Path) -> torch.Tensor:
    """tensors[name] as finite float32 of the given shape."""
    if name not in tensors:
        raise CheckpointError(f"{path} is missing the tensor {name}")
    t = tensors[name]
    if tuple(t.shape) != tuple(shape):
        raise CheckpointError(f"{path}: {name} has shape {tuple(t.shape)}, expected {tuple(shape)}")
    if not t.is_floating_point():
        raise CheckpointError(f"{path}: {name} is {t.dtype}, expected floating point")
    t = t.float()
    if not torch.isfinite(t).all():
        raise CheckpointError(f"{path}: {name} contains NaN or infinite values")
    return t


def _model_state(tensors: dict, expected: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """The model's weights from tensors, each checked against the shapes the config implies."""
    stored = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    unexpected = sorted(set(stored) - set(expected))
    if unexpected:
        raise CheckpointError(f"{path} has weights this model does not: {', '.join(unexpected[:3])}")
    return {name: _tensor(stored, name, tuple(t.shape), path) for name, t in expected.items()}


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


def _resume_state(info: dict, tensors: dict, path: Path) -> ResumeState:
    """Rebuild the optimizer state_dict, RNG states and progress of a resumable checkpoint."""
    if "resume" not in info or "optimizer" not in info:
        raise CheckpointError(f"{path} holds weights only, no training state to resume from (use last.safetensors)")
    try:
        optimizer_info = info["optimizer"]
        state: dict[int, dict] = {}
        for index, values in optimizer_info["scalars"].items():
            state.setdefault(int(index), {}).update(values)
        for name, value in tensors.items():
            if name.startswith("optimizer."):
                _, index, key = name.split(".", 2)
                state.setdefault(int(index), {})[key] = value
        if any(
            not math.isfinite(v.float().sum())
            for s in state.values()
            for v in s.values()
            if isinstance(v, torch.Tensor)
        ):
            raise CheckpointError(f"{path}: its optimizer state contains NaN or infinite values")
        # JSON turned Adam's betas tuple into a list; torch wants the tuple back
        groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in optimizer_info["param_groups"]]
        optimizer = {"state": state, "param_groups": groups}
    except (KeyError, ValueError, TypeError, AttributeError):
        raise CheckpointError(f"{path} has malformed optimizer state") from None
    extra = {k.removeprefix("resume."): v for k, v in tensors.items() if k.startswith("resume.")}
    progress = _typed(info, "resume", dict, path)
    if "best_test_loss" in progress and progress["best_test_loss"] is None:  # no epoch finished: written as null
        progress = {**progress, "best_test_loss": math.inf}
    kinds = {"epoch": int, "step": int, "best_epoch": int, "best_test_loss": (int, float)}
    if any(not isinstance(progress.get(k), t) or isinstance(progress.get(k), bool) for k, t in kinds.items()):
        raise CheckpointError(f"{path} has malformed resume metadata: {progress}")
    if progress["epoch"] < 1 or progress["step"] < 0:
        raise CheckpointError(
            f"{path} has malformed resume metadata: epoch {progress['epoch']}, step {progress['step']}"
        )
    return ResumeState(optimizer=optimizer, tensors=extra, progress=progress)
