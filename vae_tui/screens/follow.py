"""Following a run: the explorer reloads the run's best checkpoint when training replaces it.

The file is looked at once a second (its size and modification time); a changed one is loaded
in a worker thread through the same checks as any checkpoint. A file that does not load (half
written, damaged) or holds another model's shape is never shown: the explorer keeps its model
and tries again when the file changes next.
"""

import os
from pathlib import Path

from textual import work

from models import Checkpoint, load_checkpoint
from models.errors import UserError
from models.text import printable
from vae_tui.decoding import Decoder
from vae_tui.latent_map import MapAxes
from vae_tui.widgets.latent_panel import LatentPanel
from vae_tui.widgets.title_bar import TitleBar, title_variants

POLL_SECONDS = 1.0


def signature(path: Path) -> tuple[int, int] | None:
    """What tells a rewritten file apart: its size and modification time (None while it is missing)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


class Follow:
    """Mixed into ExplorerScreen: `self.follow` is the checkpoint file to watch, or None."""

    def start_following(self) -> None:
        if self.follow is not None:
            self._seen = signature(self.follow)
            self.set_interval(POLL_SECONDS, self._look)

    def _look(self) -> None:
        now = signature(self.follow)
        if now is not None and now != self._seen:
            self._seen = now  # a file that fails to load is tried again only once it changes again
            self._reload(self.follow)

    @work(thread=True, exclusive=True, group="reload")
    def _reload(self, path: Path) -> None:
        try:
            checkpoint = load_checkpoint(path)
        except (UserError, OSError, ValueError):  # half written or damaged: keep what is shown
            return
        self.app.call_from_thread(self.adopt, checkpoint)

    def adopt(self, checkpoint: Checkpoint) -> None:
        """Show checkpoint's model in place of the current one, keeping z, class and selection."""
        old = self.checkpoint.config
        new = checkpoint.config
        if (new.kind, new.latent_dim, new.num_classes, new.input_dim) != (
            old.kind,
            old.latent_dim,
            old.num_classes,
            old.input_dim,
        ):
            self.notify(
                printable(f"{self.follow} now holds a model of another shape: not reloaded"),
                severity="warning",
                markup=False,
            )
            return
        self.checkpoint, self.decoder = checkpoint, Decoder(checkpoint.model)
        atlas, state = checkpoint.atlas, self.state
        if atlas is not None:
            state.set_statistics(atlas.variance, atlas.kl)
            self.map_axes = MapAxes(atlas, state.active)
            self._map_plane_names = None  # the scatter is drawn again from the new encodings
        self.query_one(LatentPanel).statistics_changed()
        title = self.query_one(TitleBar)
        title.variants = title_variants(checkpoint, self.source)
        title.refresh()
        state.redraw()  # the same z, drawn by the new weights
        self._show_state()
        self.notify(f"reloaded epoch {checkpoint.epoch}", title="Follow", markup=False)
