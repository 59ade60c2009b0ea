"""Models, loss and checkpoint format; depends on torch (and safetensors) alone."""

from models.checkpoint import Checkpoint, ResumeState, load_checkpoint, save_checkpoint
from models.errors import CheckpointError, DataError, UserError
from models.loss import elbo_loss
from models.vae import CVAE, MODEL_KINDS, VAE, ModelConfig, build_model, rows_per_class

__all__ = [
    "CVAE",
    "MODEL_KINDS",
    "VAE",
    "Checkpoint",
    "CheckpointError",
    "DataError",
    "ModelConfig",
    "ResumeState",
    "UserError",
    "build_model",
    "elbo_loss",
    "load_checkpoint",
    "rows_per_class",
    "save_checkpoint",
]
