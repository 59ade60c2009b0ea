"""The explorer's state: z, class, selected dimension, step, and the undo history."""

from collections.abc import Callable
from dataclasses import dataclass

import torch

from models.names import ACTIVE_VARIANCE

Z_LIMIT = 10.0  # |z| beyond this decodes to nothing the model has seen
STEP_RANGE = (1 / 64, 4.0)
DEFAULT_STEP = 0.25
HISTORY_LIMIT = 1000


def within_limit(value: float) -> float:
    """value clamped to +-Z_LIMIT; NaN (from a damaged projection) becomes 0, the prior's mean."""
    value = float(value)
    return 0.0 if value != value else min(max(value, -Z_LIMIT), Z_LIMIT)


def nearest_index(values: tuple[float, ...], value: float) -> int:
    """The index of the value in values nearest to value (the first on a tie)."""
    return min(range(len(values)), key=lambda i: abs(values[i] - value))


@dataclass(frozen=True)
class Snapshot:
    """An undoable point: z and class."""

    z: tuple[float, ...]
    label: int


class ExplorerState:
    """Pure state and its transitions; the app renders it, the tests drive it.

    Every transition that changes anything calls the listeners (watch()) once: the explorer redraws from there, in
    one place. `version` counts the changes that alter the picture (z, class, selected dimension, weights); the
    step and the hidden dimensions change only text.
    """

    def __init__(
        self,
        class_centroids: torch.Tensor,
        conditional: bool,
        label: int = 0,
        variance: torch.Tensor | None = None,
        kl: torch.Tensor | None = None,
    ) -> None:
        self.class_centroids = class_centroids  # (num_classes, latent_dim)
        self.conditional = conditional
        self.latent_dim = class_centroids.shape[1]
        self.num_classes = class_centroids.shape[0]
        self.label = label
        self.z = self._start_for(label)
        self.start = list(self.z)
        # Var(mu) over the test set (the checkpoint's atlas): a dimension at or below ACTIVE_VARIANCE does nothing
        # the decoder notices (Burda et al., 2016). Unknown (an older checkpoint): every dimension counts as active.
        self.active: list[bool] = [True] * self.latent_dim
        self.kl: list[float] | None = None  # mean KL per dimension, nats
        if variance is not None:
            self.active = (variance > ACTIVE_VARIANCE).tolist()
        if kl is not None:
            self.kl = kl.tolist()
        self.hide_inactive = False
        self.by_kl = False  # the panel lists the dimensions by KL, the most informative first, not z0, z1, ...
        self._shown: list[int] | None = None  # shown, kept until the order or the hidden dimensions change
        # start on the active dimension that separates the classes most: the one most worth nudging
        spread = class_centroids.var(dim=0) if self.num_classes > 1 else torch.zeros(self.latent_dim)
        candidates = [d for d in range(self.latent_dim) if self.active[d]] or list(range(self.latent_dim))
        self.selected = max(candidates, key=lambda d: (spread[d].item(), -d))
        self.step = DEFAULT_STEP
        self.history: list[Snapshot] = []
        self.version = 0  # bumped on every change that alters the picture
        self.listeners: list[Callable[[], None]] = []

    def watch(self, listener: Callable[[], None]) -> None:
        """Call listener after every change."""
        self.listeners.append(listener)

    def _announce(self) -> None:
        for listener in self.listeners:
            listener()

    def set_statistics(self, variance: torch.Tensor, kl: torch.Tensor) -> None:
        """Var(mu) and the mean KL of each dimension over the test set (the checkpoint's atlas)."""
        self.active = (variance > ACTIVE_VARIANCE).tolist()
        self.kl = kl.tolist()
        self._shown = None

    def redraw(self) -> None:
        """The picture must be drawn again with z unchanged (other weights)."""
        self._changed()

    def _start_for(self, label: int) -> list[float]:
        """The CVAE starts at the prior's mean; the VAE at the class's centroid."""
        return [0.0] * self.latent_dim if self.conditional else self.class_centroids[label].tolist()

    def _remember(self) -> None:
        self.history.append(Snapshot(tuple(self.z), self.label))
        del self.history[:-HISTORY_LIMIT]

    def _changed(self) -> None:
        self.version += 1
        self._announce()

    def ordered(self) -> list[int]:
        """Every dimension in the panel's order: z0, z1, ..., or by KL (active dimensions first, then the largest
        mean KL, ties by number)."""
        if not self.by_kl or self.kl is None:
            return list(range(self.latent_dim))
        kl, active = self.kl, self.active
        return sorted(range(self.latent_dim), key=lambda d: (not active[d], -kl[d], d))

    @property
    def shown(self) -> list[int]:
        """The dimensions the latent panel lists, in its order: all, or the active ones while inactive ones are
        hidden. Kept between changes (the panel asks for every row it draws): do not modify it."""
        if self._shown is None:
            every = self.ordered()
            active = [d for d in every if self.active[d]]
            self._shown = active if self.hide_inactive and active else every
        return self._shown

    def select(self, delta: int) -> None:
        """Move the selection by delta rows of the shown dimensions, stopping at the ends."""
        shown = self.shown
        row = shown.index(self.selected) if self.selected in shown else 0
        selected = shown[min(max(row + delta, 0), len(shown) - 1)]
        if selected != self.selected:
            self.selected = selected
            self._changed()  # the traversal strip follows the selection

    def select_dimension(self, dim: int) -> None:
        """Select dimension dim (a click on its row)."""
        if 0 <= dim < self.latent_dim and dim != self.selected:
            self.selected = dim
            self._changed()

    def toggle_inactive(self) -> bool:
        """Hide or show the inactive dimensions; a hidden selection moves to the nearest active one. False when
        there is nothing to hide (every dimension active, or none)."""
        if all(self.active) or not any(self.active):
            return False
        self.hide_inactive = not self.hide_inactive
        self._shown = None
        if not self.active[self.selected]:  # the active dimension on the nearest row, the upper one on a tie
            rows = self.ordered()
            row = rows.index(self.selected)
            nearest = min((i for i, d in enumerate(rows) if self.active[d]), key=lambda i: abs(i - row))
            self.selected = rows[nearest]
            self._changed()
        else:
            self._announce()
        return True

    def toggle_order(self) -> bool:
        """List the dimensions by KL, or back in their natural order; the selection stays. False without KL
        statistics (no atlas)."""
        if self.kl is None:
            return False
        self.by_kl = not self.by_kl
        self._shown = None
        self._announce()
        return True

    def set_value(self, value: float) -> None:
        """Set the selected dimension to value (clamped to +-Z_LIMIT)."""
        value = within_limit(value)
        if value != self.z[self.selected]:
            self._remember()
            self.z[self.selected] = value
            self._changed()

    def set_z(self, z: list[float]) -> None:
        """Set every dimension at once (the map's cursor), each clamped to +-Z_LIMIT."""
        z = [within_limit(v) for v in z]
        if z != self.z:
            self._remember()
            self.z = z
            self._changed()

    def start_from(self, z: list[float], label: int) -> None:
        """Jump to z with class label (a test image's encoding), which becomes the start point."""
        self._remember()
        self.z = [within_limit(v) for v in z]
        self.label = label if 0 <= label < self.num_classes else self.label
        self.start = list(self.z)
        self._changed()

    def nudge(self, steps: int) -> None:
        """Move the selected dimension by steps times the current step."""
        self.set_value(self.z[self.selected] + steps * self.step)

    def scale_step(self, factor: float) -> None:
        """Multiply the step by factor, within STEP_RANGE."""
        step = min(max(self.step * factor, STEP_RANGE[0]), STEP_RANGE[1])
        if step != self.step:
            self.step = step
            self._announce()

    def pick_class(self, label: int) -> None:
        """CVAE: change the condition, keep z. VAE: jump to the class's centroid, which becomes the start."""
        if not 0 <= label < self.num_classes:
            return
        self._remember()
        self.label = label
        if not self.conditional:
            self.z = self._start_for(label)
            self.start = list(self.z)
        self._changed()

    def randomize(self, generator: torch.Generator) -> None:
        """Draw z from the prior N(0, I)."""
        self._remember()
        self.z = torch.randn(self.latent_dim, generator=generator).tolist()
        self._changed()

    def reset(self) -> None:
        """Back to the start point."""
        self._remember()
        self.z = list(self.start)
        self._changed()

    def undo(self) -> bool:
        """Restore the state before the last change; False when there is nothing to undo."""
        if not self.history:
            return False
        snapshot = self.history.pop()
        self.z, self.label = list(snapshot.z), snapshot.label
        self._changed()
        return True
