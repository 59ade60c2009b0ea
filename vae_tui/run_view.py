"""One run in the runs browser: its loss curves, that epoch's grids, its settings and resume command.

Grids are decoded in thread workers that never touch a widget: they post GridsLoaded, and the screen shows the
pictures, so a slow or hostile image never holds up the keys.
"""

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.events import Resize
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Label, Static
from textual_plot import HiResMode, PlotWidget

from models.errors import CheckpointError
from models.limits import IMAGE_SIDE, MAX_IMAGE_SIZE, MIN_IMAGE_SIZE
from models.names import GRID_PAD, GRID_SCALE
from models.text import printable
from train.commands import explore_command
from train.image_file import ImageRefused, open_image
from train.runs import POLL_SECONDS, SETTINGS, Run, checkpoint_info, read_metrics
from vae_tui.widgets.footer import KeysFooter
from vae_tui.widgets.image_view import ImageView

GRID_TITLES = {"reconst": "reconstructions", "sample": "samples"}
GRID_CONTENTS = {  # what a grid's first row, the one shown, holds: by grid, and for samples by model kind
    "reconst": "test images, each beside its reconstruction",
    "vae": "draws from the prior",
    "cvae": "class 0, a draw from the prior per column",
}
GRID_MAX_PIXELS = 16_000_000  # a grid training wrote is far smaller; larger is not one


def grid_pixels(path: Path) -> torch.Tensor | None:
    """A PNG that training wrote, in [0, 1]: (3, H, W) for an RGB one (an RGB model's grids), else (H, W) grey
    levels, as a grey model's "L" grids are drawn (None if it is missing or not an image)."""
    try:
        with open_image(path, max_pixels=GRID_MAX_PIXELS, formats=("PNG",)) as image:
            colour = image.mode == "RGB"
            decoded = image.convert("RGB" if colour else "L")
    except ImageRefused:
        return None
    data = torch.frombuffer(bytearray(decoded.tobytes()), dtype=torch.uint8)
    if colour:
        data = data.view(decoded.height, decoded.width, 3).permute(2, 0, 1).contiguous()
    else:
        data = data.view(decoded.height, decoded.width)
    return data.float() / 255


def image_side(folder: Path) -> int:
    """The side of the images a run's grids hold, from its checkpoint's header (last, else best: the model's
    image_size, checked); IMAGE_SIDE when neither says (a checkpoint of 28x28 grey leaves it out, as do those
    before format 4)."""
    for name in ("last.safetensors", "best.safetensors"):
        try:
            info = checkpoint_info(folder / name)
        except CheckpointError:
            continue
        model = info.get("model")
        side = model.get("image_size", IMAGE_SIDE) if isinstance(model, dict) else IMAGE_SIDE
        return side if type(side) is int and MIN_IMAGE_SIZE <= side <= MAX_IMAGE_SIZE else IMAGE_SIDE
    return IMAGE_SIDE


def first_cells(png: torch.Tensor, cell_width: int, width_px: int, side: int = IMAGE_SIDE) -> torch.Tensor:
    """The first row of a grid PNG that training wrote (train.writes: scale GRID_SCALE, cells of side px high padded
    by GRID_PAD), (H, W) grey or (3, H, W) RGB, at its own scale, cut after the last whole cell within width_px."""
    native = png[..., ::GRID_SCALE, ::GRID_SCALE]
    step = cell_width + GRID_PAD
    cells = max(1, (width_px - GRID_PAD) // step)
    return native[..., : side + 2 * GRID_PAD, : cells * step + GRID_PAD]


@dataclass(frozen=True)
class Grid:
    """A grid asked for (its file in a run folder, how many images side by side make a cell of its first row: 2 for
    an original beside its reconstruction, the width in pixels it may take) and, once decoded, its first row (None
    when there is no picture)."""

    path: Path | None
    across: int
    width_px: int
    pixels: torch.Tensor | None = None


def load_grids(grids: list[Grid]) -> list[Grid]:
    """grids decoded (off the UI thread: a grid, and the checkpoint header that gives its images' side, are files
    anyone may have put there)."""
    loaded, sides = [], {}
    for grid in grids:
        pixels = None if grid.path is None else grid_pixels(grid.path)
        if pixels is not None:  # the grid's first row, as many cells as fit at 2:1
            folder = grid.path.parent
            if folder not in sides:
                sides[folder] = image_side(folder)
            side = sides[folder]
            pixels = first_cells(pixels, grid.across * side, grid.width_px, side)
        loaded.append(Grid(grid.path, grid.across, grid.width_px, pixels))
    return loaded


def loss_limits(losses: list[float]) -> tuple[float, float]:
    """A y range that holds every loss with a margin, never empty: the margin grows with the losses' size, so
    that 1e29 and 1e29 + 1 do not make a range of zero width in floating point."""
    low, high = min(losses), max(losses)
    margin = max(0.05 * (high - low), 0.5, 1e-3 * max(abs(low), abs(high)))
    return low - margin, high + margin


def settings_text(run: Run, keys: Iterable[str], with_time: bool = True) -> str:
    """run's settings named by keys, and (with_time) its time per epoch, on one line ("" when none is known)."""
    parts = [f"{SETTINGS[key]} {run.settings[key]}" for key in SETTINGS if key in keys and key in run.settings]
    if with_time and (seconds := run.seconds_per_epoch) is not None:
        parts.append(f"{seconds:.1f} s/epoch")
    return printable(" · ".join(parts))


def differing(runs: Sequence[Run]) -> list[str]:
    """The settings whose values are not the same in every run (one missing in a run counts as differing)."""
    return [key for key in SETTINGS if len({run.settings.get(key) for run in runs}) > 1]


class GridScreen(Screen):
    """A screen that shows grids: it asks a thread worker for them and shows what comes back."""

    @dataclass
    class GridsLoaded(Message):
        """Grids decoded by the worker, for the request numbered `request`."""

        request: int
        grids: list[Grid]

    def __init__(self) -> None:
        super().__init__()
        self.grid_request = 0  # the newest request; answers to older ones are dropped

    def ask_for_grids(self, grids: list[Grid]) -> None:
        """Decode grids in a worker; show_grids gets them (and a newer request replaces this one)."""
        self.grid_request += 1
        self._load_grids(self.grid_request, grids)

    @work(thread=True, exclusive=True, group="grids")
    def _load_grids(self, request: int, grids: list[Grid]) -> None:
        self.post_message(self.GridsLoaded(request, load_grids(grids)))

    def on_grid_screen_grids_loaded(self, message: GridsLoaded) -> None:
        if message.request == self.grid_request:
            self.show_grids(message.grids)

    def show_grids(self, grids: list[Grid]) -> None:
        """Put decoded grids on screen."""
        raise NotImplementedError


QUANTITIES = (  # what `k` cycles through: (its name in titles, the metrics keys plotted and their curve names)
    ("loss", (("test_loss", "test"), ("train_loss", "train"))),
    ("test reconstruction", (("test_reconstruction", "test recon."),)),
    ("test KL", (("test_kl", "test KL"),)),
)
MAX_X_TICKS = 8


def epoch_ticks(first: int, last: int) -> list[int]:
    """Whole epochs from first to last, at most MAX_X_TICKS of them, evenly spaced."""
    step = max(1, math.ceil((last - first + 1) / MAX_X_TICKS))
    return list(range(first, last + 1, step))


def focus_start(epochs: list[int]) -> int:
    """The first epoch the y range is fitted to: past the first tenth of the run (at least the first epoch) once
    there are 4 epochs or more, so the first epochs' large losses do not flatten the rest."""
    if len(epochs) < 4:
        return epochs[0]
    return epochs[max(1, len(epochs) // 10)]


class LossPlot(PlotWidget, can_focus=False):
    """Loss curves (or the test loss's parts) per epoch; left and right step through epochs rather than pan it.
    The margins are smaller than textual-plot's (a row at the top and the bottom: the x axis, epochs, is named in
    the screen's title), so that the plot keeps its rows at 80x24."""

    def on_mount(self) -> None:
        self.margin_top, self.margin_bottom = 1, 1

    def draw(self, curves: list[tuple[str, str, list[dict], str]], whole: bool = False) -> str | None:
        """curves: (label, colour, metrics rows, metrics key) each; rows lacking the key are left out. The y range
        fits the curves from focus_start() on (every epoch when whole) and every curve's latest value. Returns what
        the y range covers, for a title ("" when every epoch; None when no run recorded what the curves plot)."""
        self.clear()
        series = []
        for label, colour, rows, key in curves:
            points = [(row["epoch"], row[key]) for row in rows if key in row]
            if points:
                series.append((label, colour, points))
        if not series:
            return None
        for label, colour, points in series:
            epochs, values = [e for e, _ in points], [v for _, v in points]
            if len(points) == 1:  # one epoch: a marker, since a line of one point draws nothing
                self.scatter(epochs, values, marker="●", marker_style=colour, label=label)
            else:
                self.plot(epochs, values, line_style=colour, hires_mode=HiResMode.HALFBLOCK, label=label)
        epochs = sorted({e for _, _, points in series for e, _ in points})
        start = epochs[0] if whole else focus_start(epochs)
        shown = [v for _, _, points in series for e, v in points if e >= start]
        shown += [points[-1][1] for _, _, points in series]  # each curve's latest value, even a 1-epoch run's
        self.set_ylimits(*loss_limits(shown))
        first, last = epochs[0], max(epochs[-1], epochs[0] + 1)
        self.set_xlimits(first - 0.5 if len(epochs) == 1 else first, last)
        self.set_xticks(epoch_ticks(first, last))
        self.set_ylabel("nats/image")
        self.show_legend()
        return "" if start == epochs[0] else f"y from epoch {start}"


class PlotScreen(GridScreen):
    """A screen with a LossPlot: `k` cycles the plotted quantity (loss, test reconstruction, test KL) and `y` fits
    the y range to every epoch or to those after the first tenth. Subclasses give curves() and plot_title()."""

    PLOT_BINDINGS = [
        Binding("k", "quantity", "curves"),
        Binding("y", "whole", "y range"),
        Binding("question_mark", "help", "help"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.quantity, self.whole = 0, False

    def curves(self, keys: tuple[tuple[str, str], ...]) -> list[tuple[str, str, list[dict], str]]:
        """The curves of the quantity whose (metrics key, curve name) pairs are keys."""
        raise NotImplementedError

    def draw_plot(self) -> str:
        """Draw the plot; its caption for a title: the quantity per epoch, and what the y range covers."""
        name, keys = QUANTITIES[self.quantity]
        curves = self.curves(keys)
        fitted = self.query_one(LossPlot).draw(curves, self.whole)
        if fitted is None:  # no epoch yet, or runs written before vae-tui recorded this quantity
            return f"{name}: not recorded (k: next)" if any(rows for _, _, rows, _ in curves) else "no epochs yet"
        return f"{name} per epoch" + (f" · {fitted}" if fitted else "")

    def action_help(self) -> None:
        from vae_tui.runs_app import RunsHelp

        self.app.push_screen(RunsHelp())

    def action_quantity(self) -> None:
        self.quantity = (self.quantity + 1) % len(QUANTITIES)
        self.redraw()

    def action_whole(self) -> None:
        self.whole = not self.whole
        self.redraw()

    def redraw(self) -> None:
        raise NotImplementedError


class RunScreen(PlotScreen):
    """One run: train and test loss per epoch, that epoch's grids (left/right), its settings and resume command."""

    BINDINGS = [
        Binding("left,h", "epoch(-1)", "epoch"),
        Binding("right,l", "epoch(1)", "epoch", show=False),
        *PlotScreen.PLOT_BINDINGS,
        Binding("e", "explore", "explore"),
        Binding("escape,q", "app.pop_screen", "back"),
    ]
    DEFAULT_CSS = """
    RunScreen #run-title { text-style: bold; color: $accent; padding: 0 1; }
    RunScreen { overflow: hidden; }
    RunScreen LossPlot { height: 1fr; min-height: 6; }
    RunScreen #grids { height: auto; }
    RunScreen #grids ImageView { height: 8; }
    RunScreen #settings { height: auto; padding: 0 1; color: $text-muted; }
    """

    def __init__(self, run: Run) -> None:
        super().__init__()
        self.run = run
        self.rows = list(run.metrics)
        self.epoch = self.rows[-1]["epoch"] if self.rows else None
        self._metrics_seen: tuple | None = None

    def compose(self) -> ComposeResult:
        yield Label("", id="run-title", markup=False)
        yield LossPlot()
        with Vertical(id="grids"):
            yield Label("", id="reconst-title", markup=False)
            yield ImageView(id="reconst")
            yield Label("", id="sample-title", markup=False)
            yield ImageView(id="sample")
        yield Static("", id="settings", markup=False)
        yield KeysFooter()

    def on_mount(self) -> None:
        self._draw()
        self.set_interval(POLL_SECONDS, self._look)

    def on_resize(self, event: Resize) -> None:
        """The grids get a quarter of what the title, labels and settings leave; the plot the rest."""
        rows = max(2, min(8, (event.size.height - 12) // 4))
        for name in ("#reconst", "#sample"):
            self.query_one(name, ImageView).styles.height = rows
        self._draw_grids()

    def _look(self) -> None:
        """New epochs of a run still training: read metrics.jsonl again when it changed (not while the explorer is
        over this screen)."""
        if self.app.screen is not self:
            return
        path = self.run.path / "metrics.jsonl"
        try:
            stat = path.stat()
        except OSError:
            return
        seen = (stat.st_size, stat.st_mtime_ns)
        if seen != self._metrics_seen:
            self._metrics_seen = seen
            rows, _ = read_metrics(path)
            if len(rows) != len(self.rows):
                at_last = self.epoch is None or (self.rows and self.epoch == self.rows[-1]["epoch"])
                self.rows = rows
                if at_last and rows:
                    self.epoch = rows[-1]["epoch"]
                self._draw()

    def curves(self, keys: tuple[tuple[str, str], ...]) -> list[tuple[str, str, list[dict], str]]:
        return [(name, RUN_COLOURS[key], self.rows, key) for key, name in keys]

    def redraw(self) -> None:
        run, rows = self.run, self.rows
        state = f"damaged: {run.problem}" if run.state == "damaged" else run.state
        fitted = self.draw_plot()
        self.query_one("#run-title", Label).update(
            printable(" · ".join(part for part in (run.name, state, f"{len(rows)} epochs", fitted) if part))
        )

    def _draw(self) -> None:
        run = self.run
        self.redraw()
        self._draw_grids()
        what = f"model {run.model or '?'} {run.arch or ''} · dataset {run.dataset or '?'}"
        if (seconds := run.seconds_per_epoch) is not None:  # on the short first line: never split by a wrap
            what += f" · {seconds:.1f} s/epoch"
        lines = [printable(what)]
        if settings := settings_text(run, run.settings, with_time=False):
            lines.append(settings)
        if run.resume_command:
            lines.append(f"resume: {run.resume_command}")
        lines.append(f"explore: {explore_command(run.path)}")
        self.query_one("#settings", Static).update("\n".join(lines))

    def _draw_grids(self) -> None:
        """Ask for this epoch's grids; until they come, the titles say so."""
        width_px = 2 * max(1, self.size.width - 2)
        grids = []
        for name, across in (("reconst", 2), ("sample", 1)):
            path = None if self.epoch is None else self.run.path / f"{name}-{self.epoch}.png"
            grids.append(Grid(path, across, width_px))
            if path is not None:
                self.query_one(f"#{name}-title", Label).update(f"{GRID_TITLES[name]}, epoch {self.epoch}: loading")
        self.ask_for_grids(grids)

    def show_grids(self, grids: list[Grid]) -> None:
        for name, grid in zip(("reconst", "sample"), grids, strict=True):
            title = GRID_TITLES[name]
            contents = GRID_CONTENTS.get(name if name == "reconst" else self.run.model or "", "")
            shown = f"{title}, epoch {self.epoch}" if grid.pixels is not None else f"{title}: no picture"
            if grid.pixels is not None and contents:
                shown += f" ({contents})"
            self.query_one(f"#{name}-title", Label).update(shown)
            self.query_one(f"#{name}", ImageView).show(grid.pixels if grid.pixels is not None else torch.zeros(2, 2))

    def action_epoch(self, delta: int) -> None:
        epochs = [r["epoch"] for r in self.rows]
        if self.epoch in epochs:
            index = min(max(epochs.index(self.epoch) + delta, 0), len(epochs) - 1)
            self.epoch = epochs[index]
            self._draw_grids()

    def action_explore(self) -> None:
        self.app.explore(self.run)


RUN_COLOURS = {"train_loss": "#5fafff", "test_loss": "#ffaf00", "test_reconstruction": "#ffaf00", "test_kl": "#d787ff"}
# each compared run's colours: (its test curve, its train curve)
COMPARE_COLOURS = (("#ffaf00", "#875f00"), ("#5fd7ff", "#005f87"), ("#87ff5f", "#3a7f2a"), ("#ff87d7", "#87005f"))


class CompareScreen(PlotScreen):
    """Two to four runs: their loss curves on one plot, their latest sample grids one above the other."""

    BINDINGS = [*PlotScreen.PLOT_BINDINGS, Binding("escape,q", "app.pop_screen", "back")]
    DEFAULT_CSS = """
    CompareScreen { overflow: hidden; }
    CompareScreen #compare-title { text-style: bold; color: $accent; padding: 0 1; }
    CompareScreen LossPlot { height: 1fr; min-height: 6; }
    CompareScreen ImageView { height: 8; }
    """

    def __init__(self, *runs: Run) -> None:
        super().__init__()
        self.pair = runs

    def compose(self) -> ComposeResult:
        yield Label("", id="compare-title", markup=False)
        yield LossPlot()
        for i in range(len(self.pair)):
            yield Label("", id=f"samples-title-{i}", markup=False)
            yield ImageView(id=f"samples-{i}")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.redraw()

    def curves(self, keys: tuple[tuple[str, str], ...]) -> list[tuple[str, str, list[dict], str]]:
        curves = []
        for run, colours in zip(self.pair, COMPARE_COLOURS, strict=False):
            for (key, name), colour in zip(keys, colours, strict=False):  # test first: it has the bright colour
                curves.append((f"{printable(run.name)} {name}", colour, run.metrics, key))
        return curves

    def redraw(self) -> None:
        names = ", ".join(printable(run.name) for run in self.pair)
        fitted = self.draw_plot()
        self.query_one("#compare-title", Label).update(" · ".join(part for part in (names, fitted) if part))

    def on_resize(self, event: Resize) -> None:
        rows = max(2, min(8, (event.size.height - 10) // (2 * len(self.pair))))
        grids = []
        for i, run in enumerate(self.pair):
            self.query_one(f"#samples-{i}", ImageView).styles.height = rows
            epoch = self._latest_epoch(run)
            path = None if epoch is None else run.path / f"sample-{epoch}.png"
            grids.append(Grid(path, 1, 2 * max(1, event.size.width - 2)))
        self.ask_for_grids(grids)

    @staticmethod
    def _latest_epoch(run: Run) -> int | None:
        return run.metrics[-1]["epoch"] if run.metrics else None

    def show_grids(self, grids: list[Grid]) -> None:
        for i, (run, grid) in enumerate(zip(self.pair, grids, strict=True)):
            epoch = self._latest_epoch(run)
            title = (
                f"{printable(run.name)}: samples, epoch {epoch}"
                if grid.pixels is not None
                else f"{printable(run.name)}: no samples yet"
            )
            if settings := settings_text(run, differing(self.pair)):
                title += f" · {settings}"
            self.query_one(f"#samples-title-{i}", Label).update(title)
            view = self.query_one(f"#samples-{i}", ImageView)
            view.show(grid.pixels if grid.pixels is not None else torch.zeros(2, 2))
