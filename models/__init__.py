"""Models, loss and checkpoint format; depends on torch (and safetensors) alone.

`from models import X` imports X's module when X is first asked for (PEP 562), not when the
package is imported, so that the torch-free modules here (errors, text, version) import
without torch: the CLI builds its parser and answers --help and --version from them.
"""

from importlib import import_module
from typing import TYPE_CHECKING

_MODULES = {
    "models.atlas": ("Atlas",),
    "models.checkpoint": ("Checkpoint", "ResumeState", "load_checkpoint", "save_checkpoint"),
    "models.errors": ("CheckpointError", "DataError", "UserError"),
    "models.loss": ("elbo_loss",),
    "models.registry": ("build_model", "parameter_count"),
    "models.vae": ("CVAE", "MODEL_KINDS", "VAE", "ModelConfig", "rows_per_class"),
}
_MODULE_OF = {name: module for module, names in _MODULES.items() for name in names}
__all__ = sorted(_MODULE_OF)

if TYPE_CHECKING:  # the same names, for editors and type checkers (tests/test_shared_parts.py compares)
    from models.atlas import Atlas  # noqa: F401
    from models.checkpoint import Checkpoint, ResumeState, load_checkpoint, save_checkpoint  # noqa: F401
    from models.errors import CheckpointError, DataError, UserError  # noqa: F401
    from models.loss import elbo_loss  # noqa: F401
    from models.registry import build_model, parameter_count  # noqa: F401
    from models.vae import CVAE, MODEL_KINDS, VAE, ModelConfig, rows_per_class  # noqa: F401


def __getattr__(name: str) -> object:
    """An exported name, imported from its module on first use."""
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_MODULE_OF[name]), name)
