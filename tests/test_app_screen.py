"""What the explorer draws as a whole: the first screen, text at 80 columns, strips, toasts, big terminals, mouse,
and names and paths drawn literally."""

from argparse import Namespace
from collections.abc import Callable
from pathlib import Path

import pytest
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.command import CommandList
from textual.pilot import Pilot

from models.text import PLACEHOLDER
from tests.helpers import (  # test_runs.py imports screen_text from here
    CONTROL_BYTES,
    hostile_checkpoint,
    resize,
    screen_text,
)
from vae_tui.app import ExplorerApp, create_app
from vae_tui.commands.explore import resolve
from vae_tui.keys import APP_KEYS, EXPLORER_KEYS
from vae_tui.screens.help import HelpScreen
from vae_tui.screens.value import ValueScreen
from vae_tui.widgets.class_list import ClassList
from vae_tui.widgets.footer import KeysFooter
from vae_tui.widgets.image_view import ImageView
from vae_tui.widgets.latent_panel import BAR_HALF, BAR_START, LatentPanel
from vae_tui.widgets.thumbnails import Thumbnails
from vae_tui.widgets.title_bar import fit, source_name

pytestmark = pytest.mark.usefixtures("truecolor")


def on_screen(app: ExplorerApp, text: str) -> int:
    """How many times text is drawn on the terminal (within a line), dialogs and toasts included."""
    return sum(line.count(text) for line in screen_text(app))


def selected_row_drawn(app: ExplorerApp) -> bool:
    """Whether the latent panel draws the selected dimension's row (marked with '>')."""
    panel = app.explorer.query_one(LatentPanel)
    rows = ["".join(s.text for s in panel.render_line(y)) for y in range(panel.size.height)]
    return any(row.startswith(f"> z{app.explorer.state.selected} ") for row in rows)


async def first_screen_shows_the_selected_row(app: ExplorerApp, pilot: Pilot, settle: Callable, kind: str) -> None:
    """The first screen of the bundled kind: the start rule selects the most varied dimension, and the latent panel
    draws its row (marked >) on the first screen and after each resize."""
    await settle(app, pilot)
    assert app.explorer.state.selected == {"cvae": 16, "vae": 4}[kind], "the start rule: the most varied dim"
    assert selected_row_drawn(app), "the selected row drawn"
    assert any(f"> z{app.explorer.state.selected} " in line for line in screen_text(app)), "the selected row shown"
    for size in [(100, 20), (80, 22), (120, 40), (80, 24)]:
        await resize(app, pilot, *size)
        await pilot.pause()
        assert selected_row_drawn(app), f"the selected row drawn at {size}"


async def test_the_cvae_s_first_screen_the_mouse_a_big_terminal_and_the_strips_labels(
    make_app: Callable, settle: Callable
) -> None:
    """The CVAE, opened at 80x24, one session, each part beginning where the one before left off:
    1. the first screen shows the selected row (first_screen_shows_the_selected_row), back at 80x24 after the
       resizes;
    2. the mouse selects rows, sets values on the bar, and picks a traversal value and a class by clicking their
       thumbnails or labels;
    3. back at the start point (class 0, z = 0, z16 selected, the traversal shown), a big terminal (200x60) uses
       the space: the preview at 3x, the class grid beside it in three columns, every empty cell black; at 120x40
       the classes move below;
    4. at 80x24 again, the strips are labelled under each thumbnail and mark the current value and class."""
    app = make_app("cvae")
    async with app.run_test(size=(80, 24)) as pilot:
        await first_screen_shows_the_selected_row(app, pilot, settle, "cvae")

        await settle(app, pilot)
        state, panel = app.explorer.state, app.explorer.query_one(LatentPanel)
        top = panel.scroll_offset.y
        await pilot.click(LatentPanel, offset=(2, 1))  # the name of the second row shown
        assert state.selected == top + 1 and state.z == [0.0] * 20, "a click on a name selects its row"
        await pilot.click(LatentPanel, offset=(BAR_START + 2 * BAR_HALF, 3))  # the bar's right end
        assert state.selected == top + 3 and state.z[top + 3] == 3.0, "a click on the bar's end sets +3"
        await pilot.click(LatentPanel, offset=(BAR_START + BAR_HALF - 3, 3))  # halfway left of the centre
        assert state.z[top + 3] == -1.5, "a click halfway left sets -1.5"
        await settle(app, pilot)
        assert "> z" + f"{top + 3:<3}" + "---===|------  -1.50" in "".join(screen_text(app))
        traversal = app.explorer.query_one("#traversal", Thumbnails)
        size = traversal.grid.size
        await pilot.click("#traversal", offset=(5 * (size + 1) + 2, 2))  # the sixth thumbnail: +2
        assert state.z[top + 3] == 2.0, "a click on the sixth thumbnail sets +2"
        await pilot.click("#traversal", offset=(0, traversal.size.height - 1))  # the first label: -3
        assert state.z[top + 3] == -3.0, "a click on the first label sets -3"
        await pilot.press("t")
        await settle(app, pilot)
        classes = app.explorer.query_one("#classes-below", Thumbnails)
        await pilot.click("#classes-below", offset=(7 * (classes.grid.size + 1) + 1, 1))
        assert state.label == 7, "a click on class 7's thumbnail picks it"
        await settle(app, pilot)
        assert "[7]" in strip_lines(app, "#classes-below")[-1]

        # back to the start: class 0, z = 0, z16 selected, the traversal shown
        moves = 16 - state.selected
        await pilot.press("0", "backspace", "t", *(["j"] * moves if moves > 0 else ["k"] * -moves))
        await settle(app, pilot)
        assert state.label == 0 and state.z == [0.0] * 20 and state.selected == 16, "back at the start"
        assert app.explorer.query_one("#traversal").display

        # a big terminal
        await resize(app, pilot, 200, 60)
        await settle(app, pilot)
        image = app.explorer.query_one(ImageView)
        assert image.scale == 3
        drawn_rows = [y for y in range(image.size.height) if any(s.text.strip() for s in image.render_line(y))]
        assert len(drawn_rows) == 42, "28 pixel rows x 3, two per cell"
        traversal, classes = (app.explorer.query_one(s, Thumbnails) for s in ("#traversal", "#classes-beside"))
        assert (traversal.grid.size, classes.grid.size, classes.grid.columns) == (26, 18, 3)
        assert classes.region.x > image.region.x and classes.region.y == image.region.y, "beside the preview"
        assert strip_lines(app, "#classes-beside")[-1].strip() == "9 Ankle boot"
        assert "[0 T-shirt/top]" in strip_lines(app, "#classes-beside")[10]
        black = (0, 0, 0)
        blank_cells = [s for y in range(image.size.height) for s in image.render_line(y) if not s.text.strip()]
        assert blank_cells and all(s.style.bgcolor.get_truecolor() == black for s in blank_cells), "black around"
        panel = app.explorer.query_one(LatentPanel)
        below_rows = panel.render_line(panel.size.height - 1)  # past z19: empty
        assert all(s.style.bgcolor.get_truecolor() == black for s in below_rows), "black below z19"
        await resize(app, pilot, 120, 40)
        await settle(app, pilot)
        assert not classes.display and app.explorer.query_one("#classes-below").display, "120x40: classes below"

        # the strips at 80x24
        await resize(app, pilot, 80, 24)
        await settle(app, pilot)
        assert strip_lines(app, "#traversal")[-1].split() == ["-3", "-2", "-1", "[0]", "+1", "+2", "+3"]
        assert on_screen(app, "-3         -2         -1        [0]         +1") == 1, "under each thumbnail"
        await pilot.press("L")  # z16 = +1.25: +1 is the nearest value
        await settle(app, pilot)
        assert strip_lines(app, "#traversal")[-1].split() == ["-3", "-2", "-1", "0", "[+1]", "+2", "+3"]
        await pilot.press("t", "7")  # only one strip fits at 80x24: t shows the classes
        await settle(app, pilot)
        assert strip_lines(app, "#classes-below")[0] == "Every class at this z  (t: other strip)"
        assert strip_lines(app, "#classes-below")[-1].split() == [*"0123456", "[7]", "8", "9"]
        assert on_screen(app, "[7]") == 1


async def test_the_vae_s_first_screen_title_keys_panel_and_one_toast_for_ten_undos(
    make_app: Callable, settle: Callable, wait_until: Callable
) -> None:
    """The VAE, opened at 80x24 with truecolor on: 1. the first screen shows the selected row
    (first_screen_shows_the_selected_row); 2. at 120x40 the title reads whole, with no colour mark, and the help has
    no colour hint; 3. escape closes Textual's keys panel, and with no panel it does nothing; 4. back at 80x24, ten
    undos with nothing to undo show one toast, and another message replaces it (notices never stack, issue 23)."""
    app = make_app("vae")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await first_screen_shows_the_selected_row(app, pilot, settle, "vae")

        # truecolor: no mark
        await resize(app, pilot, 120, 40)
        await settle(app, pilot)
        title = " vae-tui  VAE · fashion-mnist · epoch 19 · test loss 242.1 · bundled pretrained VAE"
        assert screen_text(app)[0] == title
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
        assert not app.screen.query("#colour-hint"), "truecolor: no colour hint"
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is app.explorer, "the help closed")

        # the keys panel closes with escape
        app.action_show_help_panel()
        await wait_until(pilot, lambda: bool(app.screen.query("HelpPanel")), "the keys panel open")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not app.screen.query("HelpPanel"), "the keys panel closed")
        await pilot.press("escape")  # with no panel, escape does nothing
        assert app.is_running

        # one toast for ten undos
        await resize(app, pilot, 80, 24)
        await settle(app, pilot)
        assert not app.explorer.state.history, "nothing to undo yet"
        await pilot.press("u")
        await wait_until(pilot, lambda: on_screen(app, "Nothing to undo") == 1, "the first toast")
        await pilot.press(*["u"] * 9)
        await pilot.pause()
        await pilot.pause()
        assert on_screen(app, "Nothing to undo") == 1, "one toast for ten undos"
        await pilot.press("l", "s")  # another message replaces it: notices never stack (issue 23)
        await wait_until(pilot, lambda: on_screen(app, "Saved") == 1, "the save toast")
        assert on_screen(app, "Nothing to undo") == 0, "the save notice replaced it"


def first_match(app: ExplorerApp) -> str:
    """The command the palette offers first (highlighted), in lower case; "" while it offers none."""
    commands = app.screen.query_one(CommandList)
    index = commands.highlighted
    return "" if index is None else str(commands.get_option_at_index(index).prompt).lower()


async def test_text_reads_whole_at_80x24_in_256_colours_and_the_palette_finds_each_footer_word(
    monkeypatch: pytest.MonkeyPatch, make_app: Callable, settle: Callable, wait_until: Callable
) -> None:
    """The CVAE at 80x24 without COLORTERM, one session from its start: 1. the title, the footer, the value dialog
    and the help (with its colour hint) read whole, and no toast covers the preview; 2. each word of the footer,
    typed into a palette opened afresh, offers its command first."""
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

        # 2. the palette finds each footer word
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is app.explorer, "the help closed")
        assert len(FOOTER_WORDS) >= 9 and not any(app.explorer.state.z)
        for word in FOOTER_WORDS:
            await pilot.press("ctrl+p")
            type_quickly(app, word)
            offered = f"the palette offering a command for {word!r}"
            await wait_until(pilot, lambda word=word: word in first_match(app), offered)
            if word == "random":
                await pilot.press("enter")
                await wait_until(pilot, lambda: any(app.explorer.state.z), "the command sampling z")
            else:
                await pilot.press("escape")
                await wait_until(pilot, lambda: app.screen is app.explorer, f"the palette closed after {word!r}")


def test_titles_shorten_to_the_run_name() -> None:
    assert source_name("bundled pretrained CVAE") == "bundled CVAE"
    assert source_name("runs/cvae-fashion-mnist-1128/best.safetensors") == "cvae-fashion-mnist-1128"
    assert source_name("runs/cvae-x/last.safetensors") == "cvae-x/last"
    assert source_name("model.safetensors") == "model"
    assert fit(["a long title", "short"], 8) == "short"
    assert fit(["a long title", "short one"], 5) == "shor\u2026"


def type_quickly(app: ExplorerApp, text: str) -> None:
    """Type text as a fast typist does: its keys queue up at once (Pilot.press lets the app go idle after each key,
    so each one costs a search and a frame of its own); wait for what they do with wait_until."""
    for char in text:
        app.post_message(events.Key("space" if char == " " else char, char))


FOOTER_WORDS = sorted({k.footer for k in EXPLORER_KEYS + APP_KEYS} - {"", "palette"})


def strip_lines(app: ExplorerApp, selector: str) -> list[str]:
    """The text a strip draws, line by line: its caption, then thumbnails and labels."""
    view = app.explorer.query_one(selector, Thumbnails)
    return ["".join(seg.text for seg in view.render_line(y)).rstrip() for y in range(view.size.height)]


# --- names and paths drawn literally --------------------------------------------------------------


def drawn(widget: object) -> str:
    """The characters a widget puts on the terminal, line by line."""
    return "\n".join("".join(s.text for s in widget.render_line(y)) for y in range(widget.size.height))


def drawn_screen(app: ExplorerApp) -> str:
    return "\n".join(drawn(w) for w in app.screen.walk_children() if w.size.area)


async def test_explorer_draws_names_and_paths_literally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settle: Callable, wait_until: Callable
) -> None:
    monkeypatch.chdir(tmp_path)
    hostile_checkpoint(Path("run [/]") / "run [red]x" / "best.safetensors", dataset="[/]")
    checkpoint, source = resolve(Namespace(checkpoint="run [/]/run [red]x", pretrained=None))  # as typed
    app = create_app(checkpoint, source, tmp_path / "exports [/]")
    async with app.run_test(size=(120, 32)) as pilot:
        await settle(app, pilot)
        title = drawn(app.explorer.query_one("#title"))
        assert "CVAE · [/] · epoch 1" in title and "run [/]/run [red]x/best.safetensors" in title
        classes = drawn(app.explorer.query_one(ClassList))
        assert "0 [/]" in classes and "1 [link=http://x]" in classes and "4 [red]x" in classes and "5 [b" in classes
        await pilot.press("slash")  # the class finder lists them as written too
        await wait_until(pilot, lambda: "1 [link=http://x]a[/link]" in drawn_screen(app), "the finder's list")
        assert "4 [red]x" in drawn_screen(app) and not any(c in drawn_screen(app) for c in CONTROL_BYTES)
        await pilot.press("escape")
        await pilot.press("3")
        await settle(app, pilot)
        assert f"Preview · 3 {PLACEHOLDER}[2J" in drawn(app.explorer.query_one("#preview-title"))
        saved = app.explorer.action_save_image()
        assert saved is not None and saved.parent == tmp_path / "exports [/]"  # the dataset "[/]" made no folder
        await pilot.pause()
        screen = drawn_screen(app)
        assert not any(c in screen for c in CONTROL_BYTES)
        await pilot.press("ctrl+p")
        type_quickly(app, "pick class")
        await wait_until(pilot, lambda: "Pick class 0: [/]" in drawn_screen(app), "the palette showing class 0")


async def test_the_footer_is_rebuilt_only_when_its_keys_change(wait_until: Callable) -> None:
    """KeysFooter keeps its key widgets through a bindings signal that changes nothing (each dialog, the help or the
    palette closing sends one), and is rebuilt with the new keys when they change."""

    class Keys(App):
        BINDINGS = [Binding("a", "first", "first"), Binding("b", "second", "second")]
        offer_second = True

        def compose(self) -> ComposeResult:
            yield KeysFooter()

        def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
            return self.offer_second if action == "second" else True

        def action_first(self) -> None: ...

        def action_second(self) -> None: ...

    app = Keys()
    async with app.run_test(size=(60, 5)) as pilot:
        footer = app.query_one(KeysFooter)

        def descriptions() -> list[str]:
            return [key.description for key in footer.query("FooterKey")]

        await wait_until(pilot, lambda: descriptions()[:2] == ["first", "second"], "the footer composed")
        keys = list(footer.query("FooterKey"))
        app.screen.refresh_bindings()  # nothing changed
        await pilot.pause()
        await pilot.pause()
        assert list(footer.query("FooterKey")) == keys, "the same key widgets kept"
        app.offer_second = False
        app.screen.refresh_bindings()
        await wait_until(pilot, lambda: "second" not in descriptions(), "the footer rebuilt without the second key")
        assert descriptions()[:1] == ["first"]
