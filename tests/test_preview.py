"""The epoch preview under the training bars: what is drawn, its size, and who draws it."""

import io
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from rich.console import Console

from tests.helpers import TINY_FLAGS, PtyResult, QuietProgress, run_cli_in_pty
from train.data import load_dataset
from train.loop import StopFlag
from train.preview import Preview
from train.progress import PlainProgress, RichProgress, make_progress


def drawn(preview: Preview, width: int = 80, height: int = 24) -> list[list]:
    console = Console(file=io.StringIO(), width=width, height=height, force_terminal=True, color_system="truecolor")
    return console.render_lines(preview, console.options, pad=False)


def cells(line: list) -> list[tuple[str, tuple, tuple]]:
    """A line's cells as (character, foreground rgb, background rgb)."""
    out = []
    for segment in line:
        style = segment.style
        colours = [c.get_truecolor() if c else None for c in (style.color, style.bgcolor)] if style else [None, None]
        out += [(ch, tuple(colours[0] or ()), tuple(colours[1] or ())) for ch in segment.text]
    return out


def test_a_known_epoch_is_drawn_cell_by_cell_at_80x24() -> None:
    white, black = torch.ones(3, 28, 28), torch.zeros(3, 28, 28)
    upper_white = black.clone()
    upper_white[:, torch.arange(28) % 4 < 2] = 1.0  # two rows white, two black: at 2:1, each cell white over black
    preview = Preview(4, white, black, upper_white, per_class=False)
    lines = drawn(preview)
    assert "".join(s.text for s in lines[0]).startswith("epoch 4: test images beside their reconstructions")
    assert len(lines) == 2 * (1 + 7) <= 24 - 6  # 2:1 at 80x24: two rows of 14 px images under captions
    first = cells(lines[1])
    white_cell, black_cell = ("▀", (255, 255, 255), (255, 255, 255)), ("▀", (0, 0, 0), (0, 0, 0))
    assert first[:14] == [white_cell] * 14 and first[14:28] == [black_cell] * 14  # original | reconstruction
    assert first[28][0] == " " and first[29:43] == [white_cell] * 14  # the next pair after one blank column
    assert len(first) == 2 * 28 + 1  # two pairs fit 78 columns, the third does not (three are given)
    sample = cells(lines[9])
    assert sample[:14] == [("▀", (255, 255, 255), (0, 0, 0))] * 14  # upper pixel white, lower black
    assert "samples (prior draws)" in "".join(s.text for s in lines[8])


def test_a_big_terminal_gets_the_images_at_their_size_and_a_tiny_one_nothing() -> None:
    preview = Preview(1, torch.rand(8, 28, 28), torch.rand(8, 28, 28), torch.rand(10, 28, 28), per_class=True)
    lines = drawn(preview, width=200, height=60)
    assert len(lines) == 2 * (1 + 14) and len(cells(lines[1])) == 3 * 56 + 2  # 28 px; three pairs in 200 columns
    assert len(cells(lines[16])) == 6 * 28 + 5 and "one per class" in "".join(s.text for s in lines[15])
    assert drawn(preview, width=80, height=20) == []  # 14 rows left for 16: nothing rather than a cut picture


@pytest.mark.slow
def test_training_hands_each_epoch_its_preview(make_trainer: Callable, mnist_dir: Path, tmp_path: Path) -> None:
    previews = []

    class Watching(QuietProgress):
        def preview(self, preview: Preview) -> None:
            previews.append(preview)

    trainer = make_trainer(tmp_path / "run", model="cvae", epochs=2)
    trainer.progress = Watching()
    trainer.run(StopFlag())
    assert [p.epoch for p in previews] == [1, 2]
    first, test = previews[0], load_dataset("mnist", data_dir=mnist_dir).test
    assert torch.equal(first.originals, test.images[:64].float() / 255)
    assert first.samples.shape == (10, 28, 28) and first.per_class  # the CVAE: one sample per class


def test_piped_output_and_no_preview_draw_no_pictures(tmp_path: Path) -> None:
    piped = make_progress(Console(file=io.StringIO()))
    assert type(piped) is PlainProgress  # its preview() draws nothing
    quiet = make_progress(Console(file=io.StringIO(), force_terminal=True), preview=False)
    assert isinstance(quiet, RichProgress)
    quiet.preview(Preview(1, torch.ones(1, 28, 28), torch.ones(1, 28, 28), torch.ones(1, 28, 28), per_class=False))
    assert quiet.bars.shown_preview is None


@pytest.mark.slow
def test_a_terminal_run_shows_the_last_preview_when_it_ends(
    trained_in_a_terminal: tuple[PtyResult, Path], tmp_path: Path
) -> None:
    result, folder = trained_in_a_terminal  # 2 epochs on the tiny dataset in folder/data
    assert result.code == 0, result.output
    lines = result.screen(80).lines()
    assert "epoch 1: test images beside their reconstructions" in result.output
    assert "epoch 2: test images beside their reconstructions" in lines
    data = str(folder / "data")
    args = ["train", *TINY_FLAGS, "--epochs", "1", "--data-dir", data, "--out", "q", "--no-preview"]
    quiet = run_cli_in_pty(args, tmp_path)
    assert quiet.code == 0 and "test images beside" not in quiet.output
