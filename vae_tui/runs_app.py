"""The runs browser: every run under a folder in a table (vae_tui.run_view shows one run).

`e` opens the explorer on the run's best checkpoint as a screen over the browser, following it while it trains;
escape or q there come back to the browser as it was left: its sort, filter, marks, cursor and open run.
Nothing here imports torch, so the table is up before torch would have loaded; the checkpoint (and torch) load in a
thread the first time a run is explored.
"""

import time
from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.events import Resize
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Input, Label, Static

from models.errors import UserError
from models.text import printable
from train.run_delete import DeleteRefused, deletable_size, delete_run
from train.runs import POLL_SECONDS, Run, RunCache, lock_held, ordered, row_cells
from vae_tui.base_app import VaeApp
from vae_tui.widgets.footer import KeysFooter

SORTS = {"name": "name", "loss": "best loss", "date": "newest first"}
WIDE_FOOTER = 100  # narrower: the footer drops its spacing
COMPARED = (2, 4)  # how many marked runs `c` compares (vae_tui.run_view.COMPARE_COLOURS has a colour pair each)


# train.runs.COLUMNS in the browser's order: the state, the longest, last
BROWSER_COLUMNS = ("run", "model", "dataset", "epochs", "best test", "changed", "state")


def short_time(stamp: float, now: float) -> str:
    """A modification time in few columns: 16:27 today, Dec 06 this year, 2025-12-06 before."""
    when, today = time.localtime(stamp), time.localtime(now)
    if when[:3] == today[:3]:
        return time.strftime("%H:%M", when)
    return time.strftime("%b %d" if when.tm_year == today.tm_year else "%Y-%m-%d", when)


def rate_text(images_per_s: float) -> str:
    return f"{images_per_s / 1000:.1f}k img/s" if images_per_s >= 1000 else f"{images_per_s:.0f} img/s"


def eta_text(seconds: float) -> str:
    left = round(seconds)
    return f"ETA {left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}"


def progress(run: Run, spelled_out: bool = False) -> str:
    """A running run's progress, as nvitop shows a process's ("" for a run not training); spelled_out: as the line
    under the table says it, without the leading " · ". Within an epoch, from what the training writes into its
    lock file every second: the epoch of all and how far through it, the current images per second, and the time
    left (this epoch's, then the others' at the median epoch's pace, or at this speed before any epoch ended).
    Else, from the files: epochs done of planned, the last epoch's speed."""
    if run.state != "running":
        return ""
    live, seconds = run.live, run.seconds_per_epoch
    if live is not None:
        percent = 100 * live["step"] // max(live["steps"], 1)
        left = live["left_s"] + (live["epochs"] - live["epoch"]) * (seconds or live["epoch_s"])
        if spelled_out:
            where = f"epoch {live['epoch']} of {live['epochs']}, {percent}% through"
            return f"{where} · {rate_text(live['images_per_s'])} · {eta_text(left).removeprefix('ETA ')} left"
        parts = [f"{live['epoch']}/{live['epochs']} {percent}%", rate_text(live["images_per_s"]), eta_text(left)]
        return " · " + " · ".join(parts)
    if spelled_out:
        return progress(run).removeprefix(" · ")
    if run.epochs_done is None:
        return ""
    parts = [f"{run.epochs_done}/{run.epochs_planned or '?'}"]
    rates = [row["images_per_s"] for row in run.metrics if "images_per_s" in row]
    if rates:
        parts.append(rate_text(rates[-1]))
    if seconds is not None and run.epochs_planned is not None and run.epochs_planned >= run.epochs_done:
        parts.append(eta_text((run.epochs_planned - run.epochs_done) * seconds))
    return " · " + " · ".join(parts)


def changed(label: Label, text: str) -> None:
    """Show text in label unless it shows it already: an update lays the screen out again, and the table looks
    again every POLL_SECONDS."""
    if label.content != text:
        label.update(text)


def human_size(size: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


class ConfirmDelete(ModalScreen[bool]):
    """y deletes, anything else keeps."""

    BINDINGS = [Binding("y", "dismiss(True)", "delete"), Binding("n,escape,q", "dismiss(False)", "keep")]
    DEFAULT_CSS = """
    ConfirmDelete { align: center middle; }
    ConfirmDelete > Label { width: auto; max-width: 90%; border: round $error; padding: 1 2; background: $surface; }
    """

    def __init__(self, name: str, size: int) -> None:
        super().__init__()
        self.question = f"Delete the run {printable(name)} ({human_size(size)} on disk)? y: delete · n: keep"

    def compose(self) -> ComposeResult:
        yield Label(self.question, markup=False)


HELP = (
    ("up / down", "move between runs"),
    ("enter", "open the run: loss curves, grids (left/right: epoch), settings; escape: back"),
    ("e", "explore the run's best checkpoint, following it; escape or q there: back here"),
    ("l / t / n", "sort by best loss, by date (newest first), by name"),
    ("/", "filter the table (part of any cell); escape clears it"),
    ("space", "mark or unmark a run"),
    ("c", "compare the marked runs (2 to 4): losses on one plot, latest samples"),
    ("k / y", "in a run or a comparison: plot the loss, the test reconstruction or the test KL; y range"),
    ("d", "delete the run after a confirmation (never one that is training)"),
    ("?", "this help; escape closes it"),
    ("q", "quit"),
)


class RunsHelp(ModalScreen[None]):
    """The browser's keys."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close")]
    DEFAULT_CSS = """
    RunsHelp { align: center middle; }
    RunsHelp > Static { width: 80; max-width: 95%; border: round $accent; padding: 0 1; background: $surface; }
    """

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for key, what in HELP:
            table.add_row(key, what)
        yield Static(table)


class RunsScreen(Screen):
    """The table of runs: sortable, filterable, updated while runs train."""

    BINDINGS = [
        Binding("enter", "open", "open"),
        Binding("e", "explore", "explore"),
        Binding("l", "sort('loss')", "by loss", show=False),  # the title names the sort keys: the footer fits at 80
        Binding("t", "sort('date')", "by date", show=False),
        Binding("n", "sort('name')", "by name", show=False),
        Binding("slash", "filter", "filter"),
        Binding("escape", "clear_filter", "clear filter", show=False),
        Binding("space", "mark", "mark"),
        Binding("c", "compare", "compare"),
        Binding("d", "delete", "delete"),
        Binding("question_mark", "help", "help"),
        Binding("q", "app.quit", "quit"),
    ]
    DEFAULT_CSS = """
    RunsScreen #filter { display: none; }
    RunsScreen.filtering #filter { display: block; }
    RunsScreen #runs-title { text-style: bold; color: $accent; padding: 0 1; }
    RunsScreen #runs { height: 1fr; }
    RunsScreen #run-line { padding: 0 1; color: $text-muted; }
    """

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        self.cache = RunCache(root)
        self.runs: list[Run] = []
        self.sort, self.filter_text = "name", ""
        self.listed: list[Run] = []  # the runs in the table's order
        self.marked: set[str] = set()  # names of runs marked with space, for compare
        self.now = time.time()  # of the last scan: short_time() writes today's times as hours

    def compose(self) -> ComposeResult:
        yield Label("", id="runs-title", markup=False)
        yield Input(placeholder="filter: part of a run's name, model, dataset or state", id="filter")
        table = DataTable(cursor_type="row", zebra_stripes=True, id="runs")
        table.add_columns(*BROWSER_COLUMNS)
        yield table
        yield Label("", id="run-line", markup=False)  # the highlighted run's progress while it trains
        yield KeysFooter()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear_filter":  # Textual's keys panel, when open, closes first (the app's escape)
            return not self.query("HelpPanel")
        return True

    def on_resize(self, event: Resize) -> None:
        self.query_one(KeysFooter).compact = event.size.width < WIDE_FOOTER  # every key, help and quit too, at 80
        self._fill()  # the title for the new width

    def on_mount(self) -> None:
        self.refresh_runs()
        self.set_interval(POLL_SECONDS, self.refresh_runs)
        self.query_one(DataTable).focus()

    def shown(self) -> list[Run]:
        needle = self.filter_text.lower()
        runs = [r for r in self.runs if not needle or needle in " ".join(row_cells(r)).lower()]
        return ordered(runs, self.sort)

    def refresh_runs(self) -> None:
        """Scan again (only changed runs are read again) and redraw the table if anything differs; not while
        another screen (a run, the explorer) is over the table."""
        if self.app.screen is not self:
            return
        self.runs = self.cache.scan()
        self.now = time.time()
        self._fill()

    def _cells(self, run: Run) -> tuple[str, ...]:
        """The row as BROWSER_COLUMNS order it: the state last (it is the longest), the time short, a running
        run's progress."""
        name, model, dataset, epochs, best, state, _ = row_cells(run)
        name = f"* {name}" if run.name in self.marked else name
        return name, model, dataset, epochs, best, short_time(run.changed, self.now), state + progress(run)

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        runs = self.shown()
        rows = [self._cells(r) for r in runs]
        current = [tuple(str(c) for c in table.get_row_at(i)) for i in range(table.row_count)]
        counts = f"{len(runs)} of {len(self.runs)} runs · sorted by {SORTS[self.sort]} (l t n: loss, date, name)"
        variants = [f"{printable(str(folder))}: {counts}" for folder in (self.root, self.root.name)] + [counts]
        room = self.size.width - 2
        title = next((variant for variant in variants if len(variant) <= room), variants[-1])
        changed(self.query_one("#runs-title", Label), title)
        if rows == current:
            self._show_run_line()
            return
        highlighted = self.current()
        keep = None if highlighted is None else highlighted.name
        table.clear()
        for run, row in zip(runs, rows, strict=True):
            table.add_row(*(Text(cell) for cell in row), key=run.name)  # Text: a str cell would be read as markup
        self.listed = runs
        names = [r.name for r in runs]
        if keep in names:
            table.move_cursor(row=names.index(keep))
        self._show_run_line()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_run_line()

    def _show_run_line(self) -> None:
        """Under the table, the highlighted run's progress while it trains, whole at any width (the state column
        is the last, and cut first); no line for a run not training."""
        run = self.current()
        text = progress(run, spelled_out=True) if run is not None else ""
        line = self.query_one("#run-line", Label)
        changed(line, f"{run.name}: {text}" if text else "")
        line.display = bool(text)

    def current(self) -> Run | None:
        """The run the cursor is on, as the table shows it."""
        row = self.query_one(DataTable).cursor_row
        return self.listed[row] if 0 <= row < len(self.listed) else None

    def action_help(self) -> None:
        self.app.push_screen(RunsHelp())

    def action_mark(self) -> None:
        """Mark or unmark the highlighted run for `c` (compare)."""
        if (run := self.current()) is not None:
            self.marked.symmetric_difference_update({run.name})
            self._fill()

    def action_compare(self) -> None:
        order = {run.name: i for i, run in enumerate(self.listed)}  # the table's order; a filtered-out mark last
        marked = sorted((r for r in self.runs if r.name in self.marked), key=lambda r: order.get(r.name, len(order)))
        low, high = COMPARED
        if not low <= len(marked) <= high:
            self.notify(
                f"Mark {low} to {high} runs with space to compare them ({len(marked)} marked)", severity="warning"
            )
            return
        from vae_tui.run_view import CompareScreen

        self.app.push_screen(CompareScreen(*marked))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        if (run := self.current()) is not None:
            from vae_tui.run_view import RunScreen  # torch and the plot, only once a run is opened

            self.app.push_screen(RunScreen(run))

    def action_delete(self) -> None:
        """Delete the highlighted run after a confirmation naming it and its size; never one that is training, a
        link, or one holding another file system (train.run_delete)."""
        run = self.current()
        if run is None:
            return
        if lock_held(run.path):
            self._warn(f"{run.name} is training now: not deleted")
            return
        try:
            size = deletable_size(run.path)  # refuses a link at once, before anything is walked
        except DeleteRefused as e:
            self._warn(str(e))
            return
        except OSError as e:
            self._warn(f"could not look into {run.name}: {e.strerror or e}")
            return

        def confirmed(yes: bool | None) -> None:
            if not yes:
                return
            if lock_held(run.path):  # a training started while the question was open
                self._warn(f"{run.name} is training now: not deleted")
                return
            try:
                delete_run(run.path)
            except DeleteRefused as e:
                self._warn(str(e))
            except OSError as e:
                self.notify(
                    printable(f"could not delete {run.name}: {e.strerror or e}"), severity="error", markup=False
                )
            else:
                self.notify(printable(f"deleted {run.name}"), markup=False)
            self.refresh_runs()

        self.app.push_screen(ConfirmDelete(run.name, size), confirmed)

    def _warn(self, message: str) -> None:
        self.notify(printable(message), severity="warning", markup=False)

    def action_explore(self) -> None:
        run = self.current()
        if run is not None:
            self.app.explore(run)

    def action_sort(self, sort: str) -> None:
        self.sort = sort
        self._fill()

    def action_filter(self) -> None:
        self.set_class(True, "filtering")
        self.query_one("#filter", Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self._fill()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one(DataTable).focus()

    def action_clear_filter(self) -> None:
        self.query_one("#filter", Input).value = ""
        self.set_class(False, "filtering")
        self.query_one(DataTable).focus()


class RunsApp(VaeApp):
    """The browser's table first; runs, comparisons and explorers open as screens over it."""

    TITLE = "vae-tui runs"

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        self.opening: str | None = None  # the run whose checkpoint is loading for the explorer

    def get_default_screen(self) -> Screen:
        return RunsScreen(self.root)

    class Loaded(Message):
        """A run's checkpoint loaded for the explorer (checkpoint), or why it did not (problem)."""

        def __init__(self, name: str, best: Path, checkpoint: object = None, problem: str = "") -> None:
            super().__init__()
            self.name, self.best, self.checkpoint, self.problem = name, best, checkpoint, problem

    def explore(self, run: Run) -> None:
        """Open the explorer on run's best checkpoint, over the screen shown now, following the file; one at a
        time (a second e while one loads says so)."""
        best = run.path / "best.safetensors"
        if self.opening is not None:
            self.notify(f"still opening {printable(self.opening)}", markup=False, timeout=2)
        elif best.is_file():
            self.opening = run.name
            self.notify(f"opening {printable(run.name)} in the explorer", markup=False, timeout=2)
            self._load_explorer(run.name, best)
        else:
            self.notify(f"{printable(run.name)} has no best.safetensors yet", severity="warning", markup=False)

    @work(thread=True, group="explore")
    def _load_explorer(self, name: str, best: Path) -> None:
        """Load the checkpoint off the UI thread (torch too, the first time): the table keeps its keys meanwhile. The
        result comes back as a message, which an app that has quit meanwhile simply drops."""
        from models import load_checkpoint

        try:
            checkpoint = load_checkpoint(best)
        except (UserError, OSError, ValueError) as e:  # damaged, or replaced by something else since the scan
            self.post_message(self.Loaded(name, best, problem=str(e)))
            return
        self.post_message(self.Loaded(name, best, checkpoint))

    def on_runs_app_loaded(self, message: Loaded) -> None:
        from vae_tui.screens.explorer import ExplorerScreen

        self.opening = None
        if message.problem:
            self.notify(printable(f"could not open {message.name}: {message.problem}"), severity="error", markup=False)
            return
        best = message.best
        self.push_screen(ExplorerScreen(message.checkpoint, str(best), Path("exports"), follow=best, from_browser=True))
