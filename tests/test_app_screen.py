"""What the explorer draws as a whole: the first screen, text at 80 columns, strips, toasts, big terminals, mouse."""

import html
import re
from collections.abc import Callable

import pytest
from textual.command import CommandList

from vae_tui.app import ExplorerApp
from vae_tui.keys import APP_KEYS, EXPLORER_KEYS

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
