"""The explorer's interpolation: a and b mark two ends, the strip shows the path, p plays it, G saves a GIF.

The marks and the path are an Interpolation, a playing path a Playback; the explorer screen binds the keys."""

import time
from pathlib import Path

import torch
from textual.timer import Timer
from textual.widget import Widget

from models.text import printable
from train.grids import save_gif
from vae_tui.decoding import Decoder, End
from vae_tui.widgets.image_view import ImageView

PATH_FRAMES = 16  # frames of the played path and of the GIF, a to b
PATH_STRIP = 7  # images of the path in the strip
PLAY_FPS = 15  # at most; a slow terminal shows fewer, never a backlog
GIF_SCALE = 4
PATH_LABELS = ["a", *(f"{i / (PATH_STRIP - 1):.2f}".lstrip("0") for i in range(1, PATH_STRIP - 1)), "b"]


def ping_pong(count: int) -> list[int]:
    """Frame indices that go 0 .. count-1 and back to 1, so a loop of them never shows an end twice in a row."""
    return [*range(count), *range(count - 2, 0, -1)]


class Player:
    """Which frame of a ping-pong loop is due at a time: frames are dropped, not queued, when drawing is slow."""

    def __init__(self, frames: torch.Tensor, start: float) -> None:
        self.frames, self.start = frames, start
        self.order = ping_pong(len(frames))
        self.shown: int | None = None  # the loop position last put on screen
        self.count = 0  # frames put on screen

    def due(self, now: float) -> int | None:
        """The loop position due at now, or None when it is the one already shown."""
        position = int((now - self.start) * PLAY_FPS) % len(self.order)
        return None if position == self.shown else position


class Interpolation:
    """The a and b marks and the decoded path strip between them; the screen draws them and plays the path."""

    def __init__(self) -> None:
        self.ends: dict[str, End | None] = {"a": None, "b": None}
        self.path_strip: torch.Tensor | None = None  # (PATH_STRIP, H, W) once both ends are marked

    @property
    def marked(self) -> bool:
        """Whether a or b is marked (escape then clears them)."""
        return any(end is not None for end in self.ends.values())

    @property
    def complete(self) -> bool:
        return self.ends["a"] is not None and self.ends["b"] is not None

    def ends_with(self, name: str, z: list[float], label: int) -> dict[str, End | None]:
        """The ends once z and label are marked as end name ("a" or "b")."""
        return {**self.ends, name: End(tuple(z), label)}

    def set_ends(self, ends: dict[str, End | None], path_strip: torch.Tensor | None) -> None:
        """Mark ends (ends_with's), with the strip of their path (decode_path's: None unless both are marked)."""
        self.ends, self.path_strip = ends, path_strip

    def redecode(self, decoder: Decoder) -> None:
        """The path strip decoded again, by another model's weights (a reloaded checkpoint)."""
        self.path_strip = decode_path(self.ends, decoder)

    def clear(self) -> None:
        self.ends = {"a": None, "b": None}
        self.path_strip = None

    def end_text(self, name: str, class_names: list[str]) -> str:
        end = self.ends[name]
        if end is None:
            return f"{name}: not marked"
        norm = torch.tensor(end.z).norm().item()
        if len(class_names) < 2:  # one class (a folder without classes): nothing to tell the ends apart by
            return f"{name}: |z| {norm:.2f}"
        return f"{name}: {end.label} {printable(class_names[end.label])}, |z| {norm:.2f}"

    def caption(self, class_names: list[str]) -> str | None:
        """The strip's caption while a or b is marked (None: neither is)."""
        if not self.marked:
            return None
        if self.path_strip is None:
            missing = "b" if self.ends["b"] is None else "a"
            return f"{self.end_text('a' if missing == 'b' else 'b', class_names)} · {missing}: mark the other end"
        if len(class_names) < 2:
            return "Path a -> b · p: play · G: GIF · escape: clear"
        a, b = (f"{end.label} {printable(class_names[end.label])}" for end in (self.ends["a"], self.ends["b"]))
        return f"Path a ({a}) -> b ({b}) · p: play · G: GIF · escape: clear"


def decode_path(ends: dict[str, End | None], decoder: Decoder, count: int = PATH_STRIP) -> torch.Tensor | None:
    """count images along the path from end a to end b (None unless both are marked)."""
    a, b = ends["a"], ends["b"]
    return None if a is None or b is None else decoder.path(a, b, count)


class Playback:
    """The path a -> b played in an image view, at most PLAY_FPS, until stop(); on_stop runs after."""

    def __init__(self, host: Widget, frames: torch.Tensor, view: ImageView) -> None:
        self.player = Player(frames, time.monotonic())
        self.view = view
        self.timer: Timer = host.set_interval(1 / (2 * PLAY_FPS), self.tick)  # twice the rate: no frame is late
        self.host = host
        self.tick()

    def tick(self) -> None:
        player = self.player
        position = player.due(time.monotonic())
        if position is None:
            return
        player.shown = position
        self.view.show(player.frames[player.order[position]])
        self.host.call_after_refresh(self._count_frame)

    def _count_frame(self) -> None:
        self.player.count += 1

    def stop(self) -> None:
        self.timer.stop()


def save_path_gif(path: Path, frames: torch.Tensor, record: str) -> Path:
    """The path a -> b and back (frames: PATH_FRAMES images a to b) as a looping GIF at path, record (JSON: what
    drew it) in its comment."""
    return save_gif(path, frames[ping_pong(len(frames))], GIF_SCALE, round(1000 / PLAY_FPS), comment=record)
