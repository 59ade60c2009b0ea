"""The title bar: the model and where it came from, shortened to fit the width; a mark while truecolor is off."""

import re
from pathlib import PurePath

from rich.text import Text
from textual.timer import Timer
from textual.widget import Widget

from models import Checkpoint
from models.names import OUTSIDE_ARCH
from models.text import printable

BUNDLED_PREFIX = "bundled pretrained "  # how `vae-tui explore` names the weights that ship with the package
CODE_PREFIX = "--code "  # how `vae-tui explore --code FILE.py:FUNC` names a model written elsewhere
COLOUR_MARKS = ("256 colours · ? to fix", "256 colours")  # longest first


def source_name(source: str) -> str:
    """A short name for a checkpoint's source: "bundled CVAE", the run folder's name, or folder/stem."""
    if source.startswith(BUNDLED_PREFIX):
        return "bundled " + source.removeprefix(BUNDLED_PREFIX)
    path = PurePath(source)
    folder = path.parent.name
    if not folder:
        return path.stem
    return folder if path.stem == "best" else f"{folder}/{path.stem}"


def code_name(source: str) -> str:
    """A short name for an outside model's source: "--code path/to/vae.py:load" as "--code vae.py:load"; a module
    ("--code package.vae:load") or vae_tui.explore's "vae_tui.explore(VanillaVAE)" as they are."""
    target, sep, function = source.removeprefix(CODE_PREFIX).rpartition(":")
    if not source.startswith(CODE_PREFIX) or not sep or "/" not in target:
        return source
    return f"{CODE_PREFIX}{PurePath(target).name}:{function}"


def image_text(shape: tuple[int, int, int]) -> str:
    """(C, H, W) as "64x64 RGB" or "28x28 grey"."""
    channels, height, width = shape
    return f"{width}x{height} {'RGB' if channels == 3 else 'grey'}"


def outside_variants(checkpoint: Checkpoint, source: str) -> list[str]:
    """A model written elsewhere has no epoch, loss or dataset of its own: the title says what it is (its kind,
    images and latent size) and the code it came from."""
    config = checkpoint.config
    model, image, latent = (
        f"{config.kind.upper()} (your code)",
        image_text(config.image_shape),
        f"latent {config.latent_dim}",
    )
    short = code_name(source)
    variants = [
        [f"vae-tui  {model}", image, latent, source],
        [f"vae-tui  {model}", image, latent, short],
        [model, image, latent, short],
        [model, image, latent],
        [model, latent],
        [model],
    ]
    return [printable(" · ".join(parts)) for parts in variants]


def title_variants(checkpoint: Checkpoint, source: str) -> list[str]:
    """The title from its longest to its shortest form; the bar shows the first that fits."""
    if checkpoint.config.arch == OUTSIDE_ARCH:
        return outside_variants(checkpoint, source)
    kind = checkpoint.config.kind.upper()
    if checkpoint.config.arch != "mlp":  # the demo's MLP goes unnamed
        kind = f"{checkpoint.config.arch} {kind}"
    name = source_name(source)
    model = name if re.search(rf"\b{re.escape(kind)}\b", name, re.IGNORECASE) else f"{kind} {name}"
    dataset, epoch = checkpoint.dataset, f"epoch {checkpoint.epoch}"
    loss = checkpoint.metrics.get("test_loss")
    test_loss, short_loss = ([f"test loss {loss:.1f}"], [f"loss {loss:.1f}"]) if isinstance(loss, float) else ([], [])
    variants = [
        [f"vae-tui  {kind}", dataset, epoch, *test_loss, source],
        [f"vae-tui  {model}", dataset, epoch, *test_loss],
        [f"vae-tui  {model}", dataset, epoch, *short_loss],
        [model, dataset, epoch, *short_loss],
        [model, epoch, *short_loss],
        [model, *short_loss],
        [model],
    ]
    return [printable(" · ".join(parts)) for parts in variants]


def fit(variants: list[str], width: int) -> str:
    """The first variant no wider than width; else the last one, cut with an ellipsis."""
    for variant in variants:
        if len(variant) <= width:
            return variant
    return variants[-1][: max(0, width - 1)] + "\u2026" if width > 0 else ""


class TitleBar(Widget, can_focus=False):
    """One line: the model's title on the left, the 256-colour mark on the right."""

    COMPONENT_CLASSES = {"title-bar--app", "title-bar--mark", "title-bar--notice"}
    DEFAULT_CSS = """
    TitleBar { height: 1; padding: 0 1; }
    TitleBar > .title-bar--app { text-style: bold; }
    TitleBar > .title-bar--mark { color: $text-warning; text-style: bold; }
    TitleBar > .title-bar--notice { color: $text-success; text-style: bold; }
    """
    NOTICE_SECONDS = 4.0

    def __init__(self, checkpoint: Checkpoint, source: str, colour_mark: bool, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.variants = title_variants(checkpoint, source)
        self.colour_mark = colour_mark
        self.notice = ""  # a short news item in the mark's place, for NOTICE_SECONDS ("reloaded epoch 5")
        self._notice_timer: Timer | None = None

    def flash(self, notice: str) -> None:
        """Show notice at the right for a few seconds: news that needs no toast over the pictures."""
        if self._notice_timer is not None:
            self._notice_timer.stop()
        self.notice = notice
        self._notice_timer = self.set_timer(self.NOTICE_SECONDS, self._end_notice)
        self.refresh()

    def _end_notice(self) -> None:
        self.notice, self._notice_timer = "", None
        self.refresh()

    def render(self) -> Text:
        width = self.content_size.width
        mark, mark_style = "", "title-bar--mark"
        if self.notice:  # the notice stays whole (as far as the bar is wide); the title gives way, cut if need be
            mark, mark_style = self.notice[: max(0, width - 2)], "title-bar--notice"
        elif self.colour_mark:  # the mark stays whole; the title gives way first
            mark = next((m for m in COLOUR_MARKS if len(m) + 2 + len(self.variants[-1]) <= width), COLOUR_MARKS[-1])
        title = fit(self.variants, width - (len(mark) + 2 if mark else 0))
        text = Text(title, no_wrap=True, overflow="crop")  # a Text: names from the file are never markup
        if title.startswith("vae-tui"):
            text.stylize(self.get_component_rich_style("title-bar--app"), 0, len("vae-tui"))
        if mark:
            text.append(" " * (width - len(title) - len(mark)))
            text.append(mark, self.get_component_rich_style(mark_style))
        return text
