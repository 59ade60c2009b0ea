"""vae-tui: train VAEs and CVAEs and explore their latent space from a terminal.

From Python: vae_tui.explore(model, decoder_output="probs", data=None, ...) opens the explorer on a live model,
vae_tui.sample(model, "grid.png", ...) writes a grid PNG (help() on either says more; docs/outside.md).
"""

import os

# Textual paces screen updates at TEXTUAL_FPS (60 by default) and, after a frame that ran late, waits for the
# next slot but one: at 60 that wait is up to 33 ms between a key press and its frame. 120 halves it (here,
# two runs each of bench/explorer_latency.py: a key press's p95 41-42 ms at 60, 31 ms at 120). Textual reads
# it when first imported, so it is set here, before vae-tui imports Textual; a user's own setting wins.
os.environ.setdefault("TEXTUAL_FPS", "120")

__all__ = ["UserError", "explore", "sample"]


def __getattr__(name: str) -> object:
    """explore and sample (vae_tui/api.py) and the error they raise, imported when first used: `import vae_tui`
    imports neither torch nor Textual."""
    if name == "UserError":
        from models.errors import UserError

        return UserError
    if name in __all__:
        from vae_tui import api

        return getattr(api, name)
    raise AttributeError(f"module 'vae_tui' has no attribute {name!r}")
