"""Training progress: rich bars on a terminal, plain lines in logs."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group, RenderableType
from rich.constrain import Constrain
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from models.text import printable

if TYPE_CHECKING:
    from train.preview import Preview

# Columns the bars leave free at the right edge. A line that fills the last column leaves the cursor
# waiting to wrap; the "^C" the terminal echoes then starts a new line, and every redraw lands one
# line too low: the epochs bar was printed twice after Ctrl-C.
RIGHT_MARGIN = 2
REFRESHES = 8  # redraws of the bars a second
# with the preview under them each redraw costs 2 ms more (bench/preview_cost.py): at 4 a second, 0.8% of the time
REFRESHES_WITH_PREVIEW = 4


@dataclass
class EpochResult:
    """What one epoch produced, as shown in the summary line and the metrics file."""

    epoch: int
    train_loss: float
    test_loss: float
    test_reconstruction: float
    test_kl: float
    seconds: float  # the whole epoch: training, test-set evaluation
    train_seconds: float  # the training steps alone
    images_per_s: float
    is_best: bool
    kl_weight: float = 1.0  # the KL term's weight in the training loss at the epoch's last batch
    lr: float = 1e-3  # the learning rate of the epoch's last batch
    threads: int = 0  # the CPU threads the epoch trained on (0: not recorded)
    # test_loss per pixel and channel, in bits: a continuous-BCE figure (pixels in [0, 1] under a Bernoulli), not
    # comparable with the discrete-likelihood bits/dim papers report; None: not recorded
    test_bce_bits_per_dim: float | None = None

    def summary(self, total_epochs: int, width: int = 80) -> str:
        """One line of at most width columns: epoch, losses (with the test loss's KL part), time, speed.

        Speed, then the KL part, are left out when the numbers are too wide for the line (losses past 1000).
        """
        epoch = f"epoch {self.epoch:>{len(str(total_epochs))}}/{total_epochs}"
        losses = f"train {self.train_loss:.2f}  test {self.test_loss:.2f}"
        kl, seconds = f" (kl {self.test_kl:.2f})", f"{self.seconds:.1f} s"
        speed, best = f"  {self.images_per_s / 1000:.1f}k img/s", "  best" if self.is_best else ""
        for line in (
            f"{epoch}  {losses}{kl}  {seconds}{speed}{best}",
            f"{epoch}  {losses}{kl}  {seconds}{best}",
            f"{epoch}  {losses}  {seconds}{best}",
        ):
            if len(line) <= width:
                break
        return line


class PlainProgress:
    """A line per epoch and per message: for CI logs, nohup and pipes."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.total_epochs = 0

    def start(self, total_epochs: int, first_epoch: int, steps_per_epoch: int) -> None:
        """Training is about to run epochs first_epoch..total_epochs."""
        self.total_epochs = total_epochs

    def epoch_started(self, epoch: int, first_step: int) -> None:
        """An epoch begins (at first_step when resumed mid-epoch)."""

    def batch(self, step: int, loss: float, images_per_s: float) -> None:
        """Live numbers after `step` batches of the current epoch."""

    def epoch_done(self, result: EpochResult) -> None:
        """Print the epoch's summary line."""
        self.console.print(result.summary(self.total_epochs), highlight=False, soft_wrap=True)

    def preview(self, preview: "Preview") -> None:
        """The finished epoch's pictures: only a terminal shows them."""

    def message(self, text: str) -> None:
        """Print a line that stays."""
        self.console.print(literal(text), highlight=False, soft_wrap=True, markup=False)

    def notice(self, text: str) -> None:
        """A condition that holds for now ("" when it has passed): a log gets the line when it starts."""
        if text:
            self.message(text)

    def close(self) -> None:
        """Training ended."""

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Bars(Progress):
    """rich's Progress, drawn RIGHT_MARGIN columns narrower than the terminal."""

    def __init__(self, *columns: ProgressColumn, console: Console, **options: Any) -> None:
        self.terminal = console  # Progress asks for its renderable before it knows its console
        self.shown_preview: RenderableType | None = None  # drawn under the bars, replaced each epoch
        self.notice: str = ""  # a line under the bars while it holds (the machine is busy)
        super().__init__(*columns, console=console, **options)

    def get_renderable(self) -> RenderableType:
        bars = super().get_renderable()
        if self.notice:
            bars = Group(bars, Text(self.notice, style="yellow", no_wrap=True, overflow="ellipsis"))
        if self.shown_preview is not None:
            bars = Group(bars, self.shown_preview)
        return Constrain(bars, max(20, self.terminal.width - RIGHT_MARGIN))


class RichProgress(PlainProgress):
    """A bar over epochs and one over batches with live loss, images/s and ETA."""

    def __init__(self, console: Console, show_preview: bool = True) -> None:
        super().__init__(console)
        self.show_preview = show_preview
        self.bars = Bars(
            TextColumn("[bold]{task.description:<7}"),
            BarColumn(bar_width=None),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            refresh_per_second=REFRESHES_WITH_PREVIEW if show_preview else REFRESHES,
        )
        self.epochs_task = self.batches_task = None
        self.steps_per_epoch = 0

    def start(self, total_epochs: int, first_epoch: int, steps_per_epoch: int) -> None:
        super().start(total_epochs, first_epoch, steps_per_epoch)
        self.steps_per_epoch = steps_per_epoch
        self.bars.start()
        self.epochs_task = self.bars.add_task("epochs", total=total_epochs, completed=first_epoch - 1, status="")
        self.batches_task = self.bars.add_task("batches", total=steps_per_epoch, status="")

    def epoch_started(self, epoch: int, first_step: int) -> None:
        self.bars.reset(self.batches_task, completed=first_step, status=f"epoch {epoch}", start=True)

    def batch(self, step: int, loss: float, images_per_s: float) -> None:
        self.bars.update(self.batches_task, completed=step, status=f"loss {loss:7.2f}  {images_per_s:>7,.0f} img/s")

    def epoch_done(self, result: EpochResult) -> None:
        self.bars.console.print(Text(result.summary(self.total_epochs)), highlight=False)
        # the last batches' numbers are only shown a few times a second: the finished epoch fills its bar
        status = f"loss {result.train_loss:7.2f}  {result.images_per_s:>7,.0f} img/s"  # the epoch's, as in its row
        self.bars.update(self.batches_task, completed=self.steps_per_epoch, status=status)
        self.bars.update(self.epochs_task, completed=result.epoch)
        if result.is_best:
            self.bars.update(self.epochs_task, status=f"best test {result.test_loss:.2f}")

    def preview(self, preview: "Preview") -> None:
        """Draw the epoch's pictures under the bars in place of the last epoch's (kept when training ends)."""
        if self.show_preview:
            self.bars.shown_preview = preview
            self.bars.refresh()

    def message(self, text: str) -> None:
        """Print a line that stays, wrapped between words to the terminal's width."""
        self.bars.console.print(Text(literal(text)), highlight=False)

    def notice(self, text: str) -> None:
        """One line under the bars while the condition holds; gone when it has passed."""
        self.bars.notice = literal(text)
        self.bars.refresh()

    def close(self) -> None:
        self.bars.stop()


class EvalProgress:
    """`vae-tui eval`'s stages where nobody watches (piped, --json): nothing is shown."""

    def stage(self, description: str, images: int | None = None) -> None:
        """A new stage begins; images, if given, is how many it goes through."""

    def images_done(self, done: float) -> None:
        """Images of the current stage done so far."""

    def message(self, text: str) -> None:
        """A line that stays above the bars (the thread count, when the machine is busy)."""

    def __enter__(self) -> "EvalProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class RichEvalProgress(EvalProgress):
    """`vae-tui eval` on a terminal: the stage, images done, elapsed time and ETA; erased when it ends."""

    def __init__(self, console: Console) -> None:
        self.bars = Bars(
            TextColumn("{task.description}"),
            BarColumn(bar_width=20),
            TextColumn("{task.fields[count]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            transient=True,  # the tables take its place
        )
        self.task = self.bars.add_task("", total=None, count="")
        self.images: int | None = None

    def stage(self, description: str, images: int | None = None) -> None:
        self.images = images
        self.bars.reset(self.task, description=description, total=images, count=self._count(0))

    def images_done(self, done: float) -> None:
        self.bars.update(self.task, completed=done, count=self._count(done))

    def message(self, text: str) -> None:
        self.bars.console.print(Text(literal(text)), highlight=False)

    def _count(self, done: float) -> str:
        return f"{int(done):,}/{self.images:,} images" if self.images else ""

    def __enter__(self) -> "RichEvalProgress":
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()


def make_eval_progress(console: Console, quiet: bool) -> EvalProgress:
    """Bars when the console is a terminal and not quiet, nothing otherwise."""
    return RichEvalProgress(console) if console.is_terminal and not quiet else EvalProgress()


def literal(text: str) -> str:
    """text as it should appear: its lines kept, control characters (from paths and flags) shown, not obeyed."""
    return "\n".join(printable(line) for line in text.split("\n"))


def make_progress(console: Console | None = None, preview: bool = True) -> PlainProgress:
    """Rich bars (with each epoch's preview unless preview is False) when the console is a terminal, plain lines
    otherwise."""
    console = console or Console()
    return RichProgress(console, preview) if console.is_terminal else PlainProgress(console)
