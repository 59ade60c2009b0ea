"""Training output on an 80-column terminal: no line wraps, the bars end complete and green, Ctrl-C prints them once."""

import io
import re
from pathlib import Path

import pytest
from rich.console import Console
from rich.text import Text

from tests.helpers import TERMINAL_OUT as OUT
from tests.helpers import TINY_FLAGS, PtyResult, run_in_pty, write_dataset
from train.progress import EpochResult

CTRL_C = b"\x03"


def colour_code(style: str) -> str:
    """The escape sequence rich starts a character of that style with on a 256-colour terminal."""
    out = io.StringIO()
    Console(file=out, force_terminal=True, color_system="256").print(Text("x", style=style), end="")
    return out.getvalue().split("x")[0]


def last_drawn(result: PtyResult, bar: str) -> str:
    """The raw output of the last time the bar was drawn, up to the end of its line."""
    start = result.output.rindex(bar)
    return re.split(r"[\r\n]", result.output[start:], maxsplit=1)[0]


@pytest.mark.slow
def test_a_finished_run_fits_80_columns_and_its_bars_end_complete_and_green(
    trained_in_a_terminal: tuple[PtyResult, Path],
) -> None:
    result, _ = trained_in_a_terminal  # 16 batches of 32 an epoch, 2 epochs, into OUT
    assert result.code == 0, result.output
    screen = result.screen(80)
    assert not screen.wraps, screen.wraps
    lines = screen.lines()
    assert re.fullmatch(r"Training VAE \(mlp\) on mnist on cpu \(\d+ threads?\)", lines[0]), lines[0]
    assert lines[1].startswith("data: data (--data-dir), unverified")
    assert f"writing to {OUT}" in lines
    summary = re.compile(r"epoch 2/2  train [\d.]+  test [\d.]+ \(kl [\d.]+\)  [\d.]+ s  [\d.]+k img/s")
    assert any(summary.match(line) for line in lines), lines
    bars = [line for line in lines if line.startswith(("epochs ", "batches "))]
    assert len(bars) == 2 and " 2/2 " in bars[0] and " 16/16 " in bars[1], bars
    finished, unfinished = colour_code("bar.finished"), colour_code("bar.complete")
    for bar in ("epochs", "batches"):
        drawn = last_drawn(result, bar)
        assert finished in drawn and unfinished not in drawn and "╸" not in drawn and "╺" not in drawn, repr(drawn)
    assert lines[-1] == f"  vae-tui explore {OUT / 'best.safetensors'}"


@pytest.mark.slow
def test_ctrl_c_leaves_each_bar_once_and_every_line_within_80_columns(tmp_path: Path) -> None:
    write_dataset(tmp_path / "data", n_train=4096)  # 128 batches an epoch: Ctrl-C lands in a later epoch
    args = ["train", *TINY_FLAGS, "--epochs", "50", "--data-dir", "data", "--out", str(OUT)]
    result = run_in_pty(args, tmp_path, keys={"epoch  2/50": CTRL_C})
    assert result.code == 130, result.output
    assert "^C" in result.output  # the terminal echoed the key, as it does for a person
    # that echo goes out when the key is typed, which can be between any two bytes of a long write (the terminal
    # passes it on in pieces): it is taken out to see what the program wrote
    screen = PtyResult(result.code, result.output.replace("^C", "", 1)).screen(80)
    assert not screen.wraps, screen.wraps
    lines = screen.lines()
    assert [line.split()[0] for line in lines if line.startswith(("epochs ", "batches "))] == ["epochs", "batches"]
    last = OUT / "last.safetensors"
    resume = ["  vae-tui train \\", f"    --resume {last} \\", "    --data-dir data"]  # one flag a line
    assert lines[-4:] == ["SIGINT: stopped and saved. Resume with:", *resume]


def test_the_summary_line_fits_80_columns_with_wide_numbers() -> None:
    def summary(loss: float, images_per_s: float) -> str:
        result = EpochResult(100, loss, loss, loss - 99.99, 99.99, 99.9, 90.0, images_per_s, is_best=True)
        return result.summary(total_epochs=100)

    assert summary(999.99, 999_900.0) == (
        "epoch 100/100  train 999.99  test 999.99 (kl 99.99)  99.9 s  999.9k img/s  best"  # 79 columns: all of it
    )
    assert summary(123456.78, 999_900.0) == "epoch 100/100  train 123456.78  test 123456.78 (kl 99.99)  99.9 s  best"
    assert len(summary(1.5e12, 999_900.0)) <= 80 and "(kl" not in summary(1.5e12, 999_900.0)
