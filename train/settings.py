"""TrainSettings: what `vae-tui train` takes that shapes the result, validated."""

import math
from dataclasses import dataclass, fields

from models import ModelConfig, UserError


@dataclass(frozen=True)
class TrainSettings:
    """Everything `vae-tui train` takes that shapes the result; stored in each checkpoint."""

    model: str = "vae"
    dataset: str = "fashion-mnist"
    epochs: int = 20
    batch_size: int = 128  # the demo's
    lr: float = 1e-3  # the demo's Adam learning rate
    latent_dim: int = 20
    hidden_dim: int = 400
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "latent_dim", "hidden_dim"):
            if getattr(self, name) <= 0:
                raise UserError(f"--{name.replace('_', '-')} must be a positive number, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise UserError(f"--lr must be a positive number, got {self.lr}")

    @classmethod
    def from_dict(cls, values: dict) -> "TrainSettings":
        """Settings from a checkpoint's `training` metadata; unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def model_config(self, num_classes: int) -> ModelConfig:
        """The model these settings describe."""
        return ModelConfig(
            kind=self.model, hidden_dim=self.hidden_dim, latent_dim=self.latent_dim, num_classes=num_classes
        )
