"""TrainSettings: what `vae-tui train` takes that shapes the result, checked as flags and as checkpoint metadata."""

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import torch

from models import MODEL_KINDS, CheckpointError, ModelConfig, UserError, parameter_count
from models.limits import (
    MAX_EPOCHS,
    MAX_SIZE,
    available_memory,
    finite_number,
    gigabytes,
    seed_problem,
    shown,
)
from models.names import FOLDER_PREFIX, LR_SCHEDULES, MAX_FOLDER_NAME
from models.text import printable
from models.vae import ARCHS
from train.data import CLASS_NAMES, DATASET_NAMES, check_model_fits_data
from train.evaluate import eval_batch

if TYPE_CHECKING:
    from models import Checkpoint

FLOAT_BYTES = 4
# Per parameter in training: the weight, its gradient and Adam's two moments (Kingma & Ba, 2015).
TRAINING_COPIES = 4
# Per image in a batch, the floats a step keeps for the backward pass: input and logits, two hidden
# layers, mu, logvar and z; tripled for the gradients and the temporaries of the loss.
ACTIVATION_COPIES = 3
MAX_BETA = 1000.0
# Per arch, the defaults of the flags left out: the MLP keeps the demo's recipe; the conv recipe's
# schedule is the one measured best, its hidden width 384 a step 9% cheaper than 512 for 0.3 nats
# of test loss (README, "Architectures").
ARCH_DEFAULTS = {
    "mlp": {"hidden_dim": 400, "lr_schedule": "constant"},
    "conv": {"hidden_dim": 384, "lr_schedule": "cosine"},
}
# Fields older checkpoints lack, with the value those runs were trained with.
ADDED_FIELDS = {"arch": "mlp", "beta": 1.0, "kl_warmup": 0, "lr_schedule": "constant"}


@dataclass(frozen=True)
class TrainSettings:
    """Everything `vae-tui train` takes that shapes the result; stored in each checkpoint."""

    model: str = "vae"
    dataset: str = "fashion-mnist"
    arch: str = "mlp"  # the demo's MLP, or convolutions (models/conv.py)
    epochs: int = 20
    batch_size: int = 128  # the demo's
    lr: float = 1e-3  # the demo's Adam learning rate; with the cosine schedule, its first value
    lr_schedule: str | None = None  # constant, or cosine decay to 0 over the epochs; None: the arch's default
    latent_dim: int = 20
    hidden_dim: int | None = None  # None: the arch's default (400 for the MLP, the demo's width)
    seed: int = 0
    beta: float = 1.0  # weight of the KL term in the training loss (Higgins et al., 2017); 1 is the ELBO
    kl_warmup: int = 0  # epochs over which that weight ramps linearly from 0 to beta, step by step

    def __post_init__(self) -> None:
        if (arch_defaults := ARCH_DEFAULTS.get(self.arch)) is not None:
            for name, value in arch_defaults.items():
                if getattr(self, name) is None:
                    object.__setattr__(self, name, value)
        if found := _first_problem(self.__dict__):
            name, problem = found
            raise UserError(f"--{name.replace('_', '-')} {problem}")

    @classmethod
    def from_dict(cls, values: object, source: str = "the checkpoint") -> "TrainSettings":
        """Settings from a checkpoint's `training` metadata, every field checked; unknown keys are ignored."""
        if not isinstance(values, dict):
            raise CheckpointError(f"{source} has malformed training settings: {shown(values)}")
        values = {**ADDED_FIELDS, **values}
        if found := _first_problem(values):
            name, problem = found
            raise CheckpointError(f"{source} has malformed training settings: {name} {problem}")
        if missing := [f.name for f in fields(cls) if f.name not in values]:
            raise CheckpointError(f"{source} has malformed training settings: {', '.join(missing)} missing")
        return cls(**{f.name: float(values[f.name]) if f.name in FLOAT_FIELDS else values[f.name] for f in fields(cls)})

    @classmethod
    def from_checkpoint(cls, checkpoint: "Checkpoint") -> "TrainSettings":
        """The settings a resumable checkpoint was trained with, checked against its model and dataset."""
        settings = cls.from_dict(checkpoint.training, str(checkpoint.path))
        config = checkpoint.config
        stored = {"model": settings.model, "arch": settings.arch, "hidden_dim": settings.hidden_dim}
        actual = {"model": config.kind, "arch": config.arch, "hidden_dim": config.hidden_dim}
        stored["latent_dim"], actual["latent_dim"] = settings.latent_dim, config.latent_dim
        stored["dataset"], actual["dataset"] = settings.dataset, checkpoint.dataset
        for name, value in stored.items():
            if value != actual[name]:
                raise CheckpointError(
                    f"{checkpoint.path}: its training settings say {name} {shown(value)}, but its model and"
                    f" metadata say {shown(actual[name])}"
                )
        check_model_fits_data(checkpoint)
        return settings

    def model_config(self, num_classes: int, channels: int = 1, image_size: int = 28) -> ModelConfig:
        """The model these settings describe, for images of channels x image_size x image_size."""
        return ModelConfig.for_images(
            channels,
            image_size,
            kind=self.model,
            arch=self.arch,
            hidden_dim=self.hidden_dim,
            latent_dim=self.latent_dim,
            num_classes=num_classes,
        )


CHOICES = {"model": MODEL_KINDS, "dataset": DATASET_NAMES, "arch": ARCHS, "lr_schedule": LR_SCHEDULES}
FLOAT_FIELDS = ("lr", "beta")


def _first_problem(values: dict) -> tuple[str, str] | None:
    """(field, why it is wrong) for the first field in values that TrainSettings would not take, or None."""
    for name, value in values.items():
        if (problem := _problem(name, value)) is not None:
            return name, problem
    return None


def folder_dataset_name(value: object) -> bool:
    """Whether value names a dataset read from an image folder: "folder:" and the folder's name, printable, at most
    MAX_FOLDER_NAME characters, no slash."""
    if type(value) is not str or not value.startswith(FOLDER_PREFIX):
        return False
    name = value.removeprefix(FOLDER_PREFIX)
    return 0 < len(name) <= MAX_FOLDER_NAME and printable(name) == name and "/" not in name


def _problem(name: str, value: object) -> str | None:
    """Why value is not one the field name takes, or None (also for names that are no field)."""
    if name == "dataset" and folder_dataset_name(value):
        return None
    if name in CHOICES:
        ok = type(value) is str and value in CHOICES[name]
        return None if ok else f"must be one of {', '.join(CHOICES[name])}, got {shown(value)}"
    if name == "seed":
        return seed_problem(value)
    if name == "lr":
        ok = finite_number(value) and value > 0
        return None if ok else f"must be a positive number, got {shown(value)}"
    if name == "beta":
        ok = finite_number(value) and 0 <= value <= MAX_BETA
        return None if ok else f"must be a number from 0 to {MAX_BETA:g}, got {shown(value)}"
    high = {"epochs": MAX_EPOCHS, "batch_size": MAX_SIZE, "latent_dim": MAX_SIZE, "hidden_dim": MAX_SIZE}.get(name)
    low = 1
    if name == "kl_warmup":
        high, low = MAX_EPOCHS, 0
    if high is None:
        return None
    if type(value) is not int:
        return f"must be an integer, got {shown(value)}"
    if value < low:
        return f"must be a positive number, got {value}" if low else f"must be 0 or more, got {value}"
    return f"must be at most {high}, got {shown(value)}" if value > high else None


def training_bytes(
    settings: TrainSettings,
    num_classes: int | None = None,
    image_shape: tuple[int, int, int] = (1, 28, 28),
    images: tuple[int, int] = (60_000, 10_000),
) -> int:
    """About how much memory training with settings needs: parameters with Adam's state, the largest batch's
    activations (a training step, or an evaluation batch), and the dataset of images of image_shape (C, H, W):
    bytes on the host, and on the device the training split's bytes and the test split's floats (num_classes,
    image_shape, images (training, test): an image folder's)."""
    channels, size, _ = image_shape
    config = settings.model_config(num_classes or len(CLASS_NAMES.get(settings.dataset, range(10))), channels, size)
    state = TRAINING_COPIES * parameter_count(config) * FLOAT_BYTES
    pixels = config.input_dim
    per_image = 2 * pixels + 2 * config.hidden_dim + 3 * config.latent_dim
    if config.arch == "conv":  # every stage's feature maps, in the encoder and the decoder
        from models.conv import CHANNELS, stages

        side = size
        for stage in range(stages(size)):
            side = (side + 1) // 2
            per_image += 2 * CHANNELS[stage] * side * side
    batch = max(settings.batch_size, eval_batch(pixels))
    train, test = images
    data = (train + test) * pixels + train * pixels + test * pixels * FLOAT_BYTES
    return state + ACTIVATION_COPIES * batch * per_image * FLOAT_BYTES + data


def device_memory(device: torch.device) -> int:
    """Bytes free for tensors on device: the GPU's free memory on CUDA, else the machine's available memory."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return available_memory()


def check_memory(
    settings: TrainSettings,
    device: torch.device,
    num_classes: int | None = None,
    image_shape: tuple[int, int, int] = (1, 28, 28),
    images: tuple[int, int] = (60_000, 10_000),
) -> None:
    """Refuse, naming the size flags, settings whose training would not fit in device's free memory."""
    need, free = training_bytes(settings, num_classes, image_shape, images), device_memory(device)
    if need > free:
        raise UserError(
            f"--hidden-dim {settings.hidden_dim} with --latent-dim {settings.latent_dim} and --batch-size"
            f" {settings.batch_size} needs about {gigabytes(need)} for the model, Adam's state and activations;"
            f" {device} has {gigabytes(free)} free: lower them"
        )
