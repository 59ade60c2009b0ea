"""The explorer's interpolation: a and b mark two ends, the strip shows the path, p plays it, G saves a GIF."""

import time
from pathlib import Path

import torch
from textual.events import Key
from textual.timer import Timer

from models.text import printable
from train.grids import save_gif
from vae_tui.decoding import End
from vae_tui.widgets.image_view import ImageView
from vae_tui.widgets.thumbnails import Thumbnails

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
    """Mixed into ExplorerScreen: the a/b marks, the path strip, playback and the GIF."""

    def init_interpolation(self) -> None:
        self.ends: dict[str, End | None] = {"a": None, "b": None}
        self.path_strip: torch.Tensor | None = None  # (PATH_STRIP, H, W) once both ends are marked
        self.player: Player | None = None
        self._play_timer: Timer | None = None

    def _end_text(self, name: str) -> str:
        end = self.ends[name]
        if end is None:
            return f"{name}: not marked"
        norm = torch.tensor(end.z).norm().item()
        return f"{name}: {end.label} {printable(self.checkpoint.class_names[end.label])}, |z| {norm:.2f}"

    def action_mark(self, name: str) -> None:
        """Mark the current z and class as end name ("a" or "b")."""
        self.ends[name] = End(tuple(self.state.z), self.state.label)
        a, b = self.ends["a"], self.ends["b"]
        self.path_strip = None if a is None or b is None else self.decoder.path(a, b, PATH_STRIP)
        self.notify(f"Marked {self._end_text(name)}", title="Interpolation", markup=False)
        self._show_strips()

    def action_clear_marks(self) -> None:
        self.ends = {"a": None, "b": None}
        self.path_strip = None
        self._show_strips()

    def path_caption(self) -> str | None:
        """The strip's caption while a or b is marked (None: neither is)."""
        if self.ends["a"] is None and self.ends["b"] is None:
            return None
        if self.path_strip is None:
            missing = "b" if self.ends["b"] is None else "a"
            return f"{self._end_text('a' if missing == 'b' else 'b')} · {missing}: mark the other end"
        a, b = (
            f"{end.label} {printable(self.checkpoint.class_names[end.label])}"
            for end in (self.ends["a"], self.ends["b"])
        )
        return f"Path a ({a}) -> b ({b}) · p: play · G: GIF · escape: clear"

    def show_path_strip(self, traversal: Thumbnails, caption: str) -> bool:
        """Show the path in the traversal's place when both ends are marked; False when they are not."""
        if self.path_strip is None:
            return False
        traversal.label_variants = [PATH_LABELS]
        traversal.show(caption, self.path_strip, None)
        return True

    def _path_or_say(self) -> bool:
        if self.ends["a"] is None or self.ends["b"] is None:
            self.notify("Mark both ends first: a at one z, b at another", severity="warning")
            return False
        return True

    def _frames(self) -> torch.Tensor:
        return self.decoder.path(self.ends["a"], self.ends["b"], PATH_FRAMES)

    def action_play(self) -> None:
        if self.player is not None or not self._path_or_say():
            return
        self.player = Player(self._frames(), time.monotonic())
        self._set_label("#preview-title", "Playing a -> b · any key stops")
        self._play_timer = self.set_interval(1 / (2 * PLAY_FPS), self._play_tick)  # twice the rate: no frame late
        self._play_tick()

    def _play_view(self) -> ImageView:
        return self.query_one("#map-image" if self.map_shown else "#image", ImageView)

    def _play_tick(self) -> None:
        player = self.player
        if player is None:
            return
        position = player.due(time.monotonic())
        if position is None:
            return
        player.shown = position
        self._play_view().show(player.frames[player.order[position]])
        self.call_after_refresh(self._count_frame, player)

    def _count_frame(self, player: Player) -> None:
        player.count += 1

    def stop_playing(self) -> None:
        if self._play_timer is not None:
            self._play_timer.stop()
        self.player, self._play_timer = None, None
        if self.frame is not None:
            self.show_frame_images(self.frame)
        self._show_text()

    def on_key(self, event: Key) -> None:
        """Any key stops the playback, and does nothing else."""
        if self.player is not None:
            event.stop()
            event.prevent_default()
            self.stop_playing()

    def action_save_gif(self) -> Path | None:
        """Save the path a -> b and back as a looping GIF into the exports folder."""
        if not self._path_or_say():
            return None
        frames = self._frames()[ping_pong(PATH_FRAMES)]
        return self.write_export("path", ".gif", lambda path: save_gif(path, frames, GIF_SCALE, round(1000 / PLAY_FPS)))
