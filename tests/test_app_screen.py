"""What the explorer draws as a whole: the first screen, text at 80 columns, strips, toasts, big terminals, mouse."""

import html
import re
from collections.abc import Callable

import pytest
from textual.command import CommandList

from vae_tui.app import ExplorerApp
from vae_tui.keys import APP_KEYS, EXPLORER_KEYS
from vae_tui.screens.help import HelpScreen
from vae_tui.screens.value import ValueScreen
from vae_tui.widgets.latent_panel import LatentPanel
from vae_tui.widgets.title_bar import fit, source_name

pytestmark = pytest.mark.usefixtures("truecolor")

SVG_CELL_WIDTH = 12.2  # Rich's SVG export: 0.61 x the 20 px font size per column


def screen_text(app: ExplorerApp) -> list[str]:
    """The terminal's lines as drawn, dialogs and toasts included (read back from Textual's SVG screenshot)."""
    width, height = app.size
    lines = [[" "] * width for _ in range(height)]
    pattern = r'<text[^>]* x="([\d.]+)" [^>]*clip-path="url\(#[\w-]+-line-(\d+)\)">([^<]*)</text>'
    for x, row, text in re.findall(pattern, app.export_screenshot()):
        column = round(float(x) / SVG_CELL_WIDTH)
        for offset, char in enumerate(html.unescape(text).replace("\xa0", " ")):
            if column + offset < width:
                lines[int(row)][column + offset] = char
    return ["".join(line).rstrip() for line in lines]


def on_screen(app: ExplorerApp, text: str) -> int:
    """How many times text is drawn on the terminal (within a line)."""
    return sum(line.count(text) for line in screen_text(app))


def selected_row_drawn(app: ExplorerApp) -> bool:
    """Whether the latent panel draws the selected dimension's row (marked with '>')."""
    panel = app.explorer.query_one(LatentPanel)
    rows = ["".join(s.text for s in panel.render_line(y)) for y in range(panel.size.height)]
    return any(row.startswith(f"> z{app.explorer.state.selected} ") for row in rows)


@pytest.mark.parametrize("kind", ["cvae", "vae"])
async def test_first_screen_shows_the_selected_row(make_app: Callable, settle: Callable, kind: str) -> None:
    app = make_app(kind)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert app.explorer.state.selected == {"cvae": 16, "vae": 4}[kind]  # the start rule: the most varied dim
        assert selected_row_drawn(app)
        assert any(f"> z{app.explorer.state.selected} " in line for line in screen_text(app))
        for size in [(100, 20), (80, 22), (120, 40), (80, 24)]:
            await pilot.resize_terminal(*size)
            await pilot.pause()
            assert selected_row_drawn(app), size


async def test_text_reads_whole_at_80x24_in_256_colours(
    monkeypatch: pytest.MonkeyPatch, make_app: Callable, settle: Callable, wait_until: Callable
) -> None:
    monkeypatch.delenv("COLORTERM")
    app = make_app("cvae")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await settle(app, pilot)
        lines = screen_text(app)
        assert lines[0].startswith(" bundled CVAE · fashion-mnist · epoch 20 · loss 238.7")
        assert lines[0].endswith("256 colours · ? to fix")
        assert not any("Truecolor" in line for line in lines)  # no toast over the preview
        footer = lines[-1]
        for label in ("↑↓ dim", "←→ nudge", "[ ] step", "r random", "u undo", "s save", "? help", "q quit"):
            assert label in footer
        assert footer.endswith("^p palette")
        await pilot.press("equals_sign")
        await wait_until(pilot, lambda: isinstance(app.screen, ValueScreen), "the value dialog")
        await pilot.pause()
        assert on_screen(app, "z16, in prior sigmas") == on_screen(app, "enter: set · escape: cancel") == 1
        await pilot.press("escape", "question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
        await pilot.pause()
        assert on_screen(app, "COLORTERM=truecolor vae-tui explore") == 1
        assert on_screen(app, "set -as terminal-features ',*:RGB'") == 1


async def test_truecolor_has_no_mark(make_app: Callable, settle: Callable, wait_until: Callable) -> None:
    app = make_app("vae")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        title = " vae-tui  VAE · fashion-mnist · epoch 19 · test loss 242.1 · bundled pretrained VAE"
        assert screen_text(app)[0] == title
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
        assert not app.screen.query("#colour-hint")


def test_titles_shorten_to_the_run_name() -> None:
    assert source_name("bundled pretrained CVAE") == "bundled CVAE"
    assert source_name("runs/cvae-fashion-mnist-1128/best.safetensors") == "cvae-fashion-mnist-1128"
    assert source_name("runs/cvae-x/last.safetensors") == "cvae-x/last"
    assert source_name("model.safetensors") == "model"
    assert fit(["a long title", "short"], 8) == "short"
    assert fit(["a long title", "short one"], 5) == "shor\u2026"


async def test_one_toast_for_ten_repeated_undos(make_app: Callable, settle: Callable, wait_until: Callable) -> None:
    app = make_app("vae")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await settle(app, pilot)
        await pilot.press("u")
        await wait_until(pilot, lambda: on_screen(app, "Nothing to undo") == 1, "the first toast")
        await pilot.press(*["u"] * 9)
        await pilot.pause()
        await pilot.pause()
        assert on_screen(app, "Nothing to undo") == 1
        await pilot.press("l", "s")  # other messages still show beside it
        await wait_until(pilot, lambda: on_screen(app, "Saved") == 1, "the save toast")
        assert on_screen(app, "Nothing to undo") == 1


@pytest.mark.parametrize("word", sorted({k.footer for k in EXPLORER_KEYS + APP_KEYS} - {"", "palette"}))
async def test_palette_finds_each_footer_word(make_app: Callable, wait_until: Callable, word: str) -> None:
    app = make_app("cvae")
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("ctrl+p", *word)
        commands = app.screen.query_one(CommandList)

        def first_match() -> str:
            index = commands.highlighted
            return "" if index is None else str(commands.get_option_at_index(index).prompt).lower()

        await wait_until(pilot, lambda: word in first_match(), f"the palette offering a command for {word!r}")
        if word == "random":
            await pilot.press("enter")
            await wait_until(pilot, lambda: any(app.explorer.state.z), "the command sampling z")


async def test_keys_panel_closes_with_escape(make_app: Callable, wait_until: Callable) -> None:
    app = make_app("vae")
    async with app.run_test(size=(100, 32)) as pilot:
        app.action_show_help_panel()
        await wait_until(pilot, lambda: bool(app.screen.query("HelpPanel")), "the keys panel open")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not app.screen.query("HelpPanel"), "the keys panel closed")
        await pilot.press("escape")  # with no panel, escape does nothing
        assert app.is_running
