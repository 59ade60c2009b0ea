"""The explorer's state: z, class, selected dimension, step, and the undo history."""

from dataclasses import dataclass

import torch

Z_LIMIT = 10.0  # |z| beyond this decodes to nothing the model has seen
STEP_RANGE = (1 / 64, 4.0)
DEFAULT_STEP = 0.25
HISTORY_LIMIT = 1000


def nearest_index(values: tuple[float, ...], value: float) -> int:
    """The index of the value in values nearest to value (the first on a tie)."""
    return min(range(len(values)), key=lambda i: abs(values[i] - value))


@dataclass(frozen=True)
class Snapshot:
    """An undoable point: z and class."""

    z: tuple[float, ...]
    label: int


class ExplorerState:
    """Pure state and its transitions; the app renders it, the tests drive it."""

    def __init__(self, class_centroids: torch.Tensor, conditional: bool, label: int = 0) -> None:
        self.class_centroids = class_centroids  # (num_classes, latent_dim)
        self.conditional = conditional
        self.latent_dim = class_centroids.shape[1]
        self.num_classes = class_centroids.shape[0]
        self.label = label
        self.z = self._start_for(label)
        self.start = list(self.z)
        # start on the dimension that separates the classes most: the one most worth nudging
        self.selected = int(class_centroids.var(dim=0).argmax()) if self.num_classes > 1 else 0
        self.step = DEFAULT_STEP
        self.history: list[Snapshot] = []
        self.version = 0  # bumped on every change that alters the picture

    def _start_for(self, label: int) -> list[float]:
        """The CVAE starts at the prior's mean; the VAE at the class's centroid."""
        return [0.0] * self.latent_dim if self.conditional else self.class_centroids[label].tolist()

    def _remember(self) -> None:
        self.history.append(Snapshot(tuple(self.z), self.label))
        del self.history[:-HISTORY_LIMIT]

    def _changed(self) -> None:
        self.version += 1

    def select(self, delta: int) -> None:
        """Move the selection by delta dimensions, stopping at the ends."""
        selected = min(max(self.selected + delta, 0), self.latent_dim - 1)
        if selected != self.selected:
            self.selected = selected
            self._changed()  # the traversal strip follows the selection

    def set_value(self, value: float) -> None:
        """Set the selected dimension to value (clamped to +-Z_LIMIT)."""
        value = min(max(float(value), -Z_LIMIT), Z_LIMIT)
        if value != self.z[self.selected]:
            self._remember()
            self.z[self.selected] = value
            self._changed()

    def nudge(self, steps: int) -> None:
        """Move the selected dimension by steps times the current step."""
        self.set_value(self.z[self.selected] + steps * self.step)

    def scale_step(self, factor: float) -> None:
        """Multiply the step by factor, within STEP_RANGE."""
        self.step = min(max(self.step * factor, STEP_RANGE[0]), STEP_RANGE[1])

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
