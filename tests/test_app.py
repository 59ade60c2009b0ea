"""The explorer through Pilot: every key changes the state and what is drawn; a tiny terminal, a thousand keys at
once, a checkpoint deleted while open, and a crash inside are survived or reported."""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import textual.constants
import torch
from PIL import Image
from textual import events
from textual.command import CommandList, CommandPalette

from models import load_checkpoint
from tests.helpers import hostile_checkpoint, resize, write_dataset
from tests.test_app_screen import type_quickly
from train.grids import to_image
from vae_tui.app import ExplorerApp, create_app
from vae_tui.cli import main
from vae_tui.commands.explore import pretrained_path
from vae_tui.decoding import Decoder
from vae_tui.exports import read_export
from vae_tui.screens.explorer import ExplorerScreen
from vae_tui.screens.help import HelpScreen, truecolor_hint
from vae_tui.screens.value import ValueScreen
from vae_tui.widgets.image_view import ImageView
from vae_tui.widgets.latent_panel import LatentPanel
from vae_tui.widgets.thumbnails import Thumbnails

pytestmark = pytest.mark.usefixtures("truecolor")


def drawn_image(app: ExplorerApp) -> list:
    """The preview's cells as (text, style) pairs: what the terminal shows."""
    view = app.explorer.query_one(ImageView)
    return [(seg.text, seg.style) for y in range(view.size.height) for seg in view.render_line(y)]


def drawn_strip(app: ExplorerApp) -> list:
    """The cells of the strips under the preview (those displayed)."""
    views = [view for view in app.explorer.query(Thumbnails) if view.display and view.size.area]
    return [(seg.text, seg.style) for view in views for y in range(view.size.height) for seg in view.render_line(y)]


@pytest.mark.parametrize("kind", ["vae", "cvae"])
def test_bundled_weights_load(kind: str) -> None:
    checkpoint = load_checkpoint(pretrained_path(kind), expect_kind=kind)
    assert checkpoint.dataset == "fashion-mnist" and checkpoint.epoch in (19, 20)
    assert checkpoint.config.latent_dim == 20 and checkpoint.metrics["test_loss"] < 243
    assert checkpoint.atlas is not None and len(checkpoint.atlas.mu) == 2000 and len(checkpoint.atlas.images) == 500
    assert pretrained_path(kind).stat().st_size < 3_500_000  # float32 weights (2.6 MB) and the atlas (0.6 MB)


@pytest.mark.parametrize("kind", ["vae", "cvae"])
def test_bundled_conv_weights_load(kind: str) -> None:
    """The conv models: 20 epochs of the conv recipe, float16 weights (train/bundle.py): at most 7 MB of the file,
    and under 8 MB with the atlas."""
    checkpoint = load_checkpoint(pretrained_path(f"{kind}-conv"), expect_kind=kind)
    assert checkpoint.config.arch == "conv" and checkpoint.training["arch"] == "conv"
    assert checkpoint.dataset == "fashion-mnist" and checkpoint.training["epochs"] == 20
    mlp = load_checkpoint(pretrained_path(kind))
    assert checkpoint.metrics["test_loss"] < mlp.metrics["test_loss"]
    size = pretrained_path(f"{kind}-conv").stat().st_size
    assert checkpoint.atlas is not None and len(checkpoint.atlas.mu) == 2000 and len(checkpoint.atlas.images) == 500
    atlas_bytes = sum(t.numel() * t.element_size() for t in checkpoint.atlas.tensors().values())
    assert size - atlas_bytes <= 7_000_000 and size < 8_000_000


async def test_keys_change_the_state_and_the_screen(make_app: Callable, settle: Callable, wait_until: Callable) -> None:
    """The CVAE at 100x32, one session from its start, each part beginning where the one before left off:
    1. the nudge keys (h/l, left/right one step; H/L, shift+left/right five) move the selected dimension by the
       step, and the preview and the latent panel's row show the new value;
    2. actions only change the state; the screen's one listener asks for one redraw per key and per round of
       messages, and a text-only change (the step) is drawn too;
    3. the command palette finds "Double the step" by its name and runs it;
    4. a thousand keys as fast as they come: stale frames are dropped, and the newest frame is of the newest state.
    """
    app = make_app("cvae")
    async with app.run_test(size=(100, 32)) as pilot:
        # 1. the nudge keys
        await settle(app, pilot)
        screen = app.explorer
        state = screen.state
        d = state.selected
        before = drawn_image(app)
        assert any(style.color.triplet != style.bgcolor.triplet for _, style in before if style), "a picture drawn"
        for key, expected in [
            ("l", 0.25),
            ("right", 0.5),
            ("h", 0.25),
            ("left", 0.0),
            ("L", 1.25),
            ("shift+right", 2.5),
            ("H", 1.25),
            ("shift+left", 0.0),
        ]:
            await pilot.press(key)
            assert state.z[d] == pytest.approx(expected), f"nudge: {key}"
        await pilot.press("L")
        await settle(app, pilot)
        assert drawn_image(app) != before, "nudge: the preview redrawn"
        assert "+1.25" in screen.query_one(LatentPanel).line_text(d), "nudge: the row shows the value"

        # 2. one redraw per change, through the one listener
        assert state.step == 0.25
        redraws = []
        shown = screen._show_state
        screen._show_state = lambda: (redraws.append(screen.state.version), shown())
        for key in ("down", "right", "x", "3", "r", "u", "right_square_bracket", "backspace"):
            before = len(redraws)
            await pilot.press(key)
            await pilot.pause()
            assert len(redraws) == before + 1, f"one redraw: {key}"
        assert "step 0.5" in str(screen.query_one("#latent-title").render()), "one redraw: a text-only change drawn"
        before = len(redraws)
        state.select(1), state.nudge(2), state.pick_class(5)  # three changes, one handler
        await pilot.pause()
        assert redraws[before:] == [state.version], "one redraw for three changes in a round"
        await settle(app, pilot)
        assert screen.frame.version == state.version and state.label == 5, "one redraw: the newest frame"
        del screen._show_state  # the method again

        # 3. the command palette runs an action
        step = state.step
        await pilot.press("ctrl+p")
        type_quickly(app, "Double the step")
        commands = app.screen.query_one(CommandList)

        def first_match() -> str:
            index = commands.highlighted
            return "" if index is None else str(commands.get_option_at_index(index).prompt)

        await wait_until(pilot, lambda: "Double the step" in first_match(), "the palette offering the command")
        await pilot.press("enter")
        await wait_until(pilot, lambda: state.step != step, "the command changing the step")
        assert state.step == 2 * step and not isinstance(app.screen, CommandPalette), "palette: the step doubled"

        # 4. a thousand keys at once
        keys = ["l", "j", "h", "k", "r", "u", "right_square_bracket", "left_square_bracket", "3", "l"]
        frames, acted = [], len(state.history)
        screen.frame_listeners.append(lambda frame: frames.append(frame.version))
        for i in range(1000):
            key = keys[i % len(keys)]
            app.post_message(events.Key(key, key if len(key) == 1 else None))
        await settle(app, pilot)
        await settle(app, pilot)
        assert len(state.history) > acted and state.label == 3, "a thousand keys: all of them acted"
        assert frames and frames[-1] == state.version and len(frames) < 1000, "a thousand keys: stale frames dropped"


async def test_vae_class_keys_jump_to_centroids_and_selection_keys_scroll(make_app: Callable, settle: Callable) -> None:
    """The VAE at 80x24, one session from its start: 1. it starts at class 0's centroid, a class key jumps to that
    class's centroid, which becomes the start point (backspace goes back to it); 2. j/down and k/up move the
    selection (stopping at z0), the traversal follows it, and the latent panel scrolls to keep z19 in view."""
    app = make_app("vae")
    async with app.run_test(size=(80, 24)) as pilot:
        # 1. class keys: centroids
        state = app.explorer.state
        centroids = app.checkpoint.class_centroids
        assert state.z == pytest.approx(centroids[0].tolist()), "starts at class 0's centroid"
        await pilot.press("1")
        assert state.label == 1 and state.z == pytest.approx(centroids[1].tolist()), "1: class 1's centroid"
        await pilot.press("l", "backspace")
        assert state.z == pytest.approx(centroids[1].tolist()), "the class's centroid is the new start"

        # 2. selection keys and scrolling
        await settle(app, pilot)
        await pilot.press(*["up"] * 20)
        strip_before = drawn_strip(app)
        for key, expected in [("j", 1), ("down", 2), ("k", 1), ("up", 0), ("up", 0)]:
            await pilot.press(key)
            assert state.selected == expected, f"selection: {key}"
        await pilot.press("j")
        await settle(app, pilot)
        assert drawn_strip(app) != strip_before, "the traversal follows the selected dimension"
        for _ in range(25):
            await pilot.press("j")
        assert state.selected == 19
        panel = app.explorer.query_one(LatentPanel)
        assert panel.scroll_offset.y > 0, "the panel scrolled"
        assert any(seg.text.startswith("> z19") for y in range(panel.size.height) for seg in panel.render_line(y))


async def test_undo_class_step_value_and_repeated_keys_then_help_strips_and_quit(
    make_app: Callable, settle: Callable
) -> None:
    """The CVAE at 80x24, one session from its start, each part beginning where the one before left off:
    1. r draws z from the prior, backspace goes back to the start point (z = 0) and keeps the class, and u undoes
       each change in turn back to the start;
    2. a class key changes the class and the image but keeps z, and the preview's title names the class;
    3. [ and ] halve and double the step, l nudges by it, x sets the dimension to 0, = types an exact value, and the
       latent panel's title shows the step;
    4. key repeat is absorbed: 60 nudges end at the limit (10), and the newest frame shown is of the newest state;
    5. under the help (?) the main screen's keys do nothing, escape closes it, t shows the other strip, q quits
       with code 0."""
    app = make_app("cvae")
    async with app.run_test(size=(80, 24)) as pilot:
        # 1. random, reset, undo
        state = app.explorer.state
        d = state.selected
        await pilot.press("r")
        drawn = list(state.z)
        assert any(v != 0 for v in drawn), "r draws z"
        await pilot.press("l", "l", "3")
        await pilot.press("backspace")
        assert state.z == [0.0] * 20 and state.label == 3, "backspace: the start point, the class kept"
        for expected_label, expected_z0 in [
            (3, drawn[d] + 0.5),
            (0, drawn[d] + 0.5),
            (0, drawn[d] + 0.25),
            (0, drawn[d]),
        ]:
            await pilot.press("u")
            assert (state.label, state.z[d]) == (expected_label, pytest.approx(expected_z0)), "undo, in turn"
        await pilot.press("u")
        assert state.z == [0.0] * 20, "undo back to the start"

        # 2. class keys keep z (the CVAE)
        await settle(app, pilot)
        await pilot.press("L")
        before = drawn_image(app)
        await pilot.press("7")
        await settle(app, pilot)
        assert state.label == 7 and state.z[d] == 1.25, "7: the class changes, z is kept"
        assert drawn_image(app) != before, "7: the image changes"
        assert "7 Sneaker" in str(app.explorer.query_one("#preview-title").render())

        # 3. step, zero and value keys
        await pilot.press("left_square_bracket")
        assert state.step == 0.125, "[ halves the step"
        await pilot.press("right_square_bracket", "right_square_bracket")
        assert state.step == 0.5, "] doubles the step"
        value = state.z[d]
        await pilot.press("l")
        assert state.z[d] == value + 0.5, "l nudges by the step"
        await pilot.press("x")
        assert state.z[d] == 0.0, "x sets 0"
        await pilot.press("equals_sign")
        assert isinstance(app.screen, ValueScreen), "= opens the value dialog"
        await pilot.press(*"-1.75", "enter")
        assert not isinstance(app.screen, ValueScreen)
        assert state.z[d] == -1.75, "= sets the value typed"
        await settle(app, pilot)
        assert "step 0.5" in str(app.explorer.query_one("#latent-title").render())

        # 4. key repeat is absorbed
        shown = []
        app.explorer.frame_listeners.append(lambda frame: shown.append(frame.version))
        await pilot.press(*["l"] * 60)
        await settle(app, pilot)
        assert max(state.z) == pytest.approx(10.0), "60 steps, clamped at the limit"
        assert shown[-1] == state.version and app.explorer.frame.version == state.version, "the newest frame"

        # 5. help, strip toggle, quit
        await pilot.press("x")  # off the limit, where l would change z
        z = list(state.z)
        assert z[d] == 0.0
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen), "? opens the help"
        await pilot.press("l")  # keys of the main screen do nothing under the help
        assert state.z == z, "l under the help does nothing"
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen), "escape closes the help"
        before = drawn_strip(app)
        await pilot.press("t")
        await pilot.pause()
        assert drawn_strip(app) != before, "t shows the other strip"
        await pilot.press("q")
    assert app.return_code == 0


async def test_exports_notices_marks_and_the_strips_decoded_at_80x24(
    tmp_path: Path, make_app: Callable, settle: Callable, wait_until: Callable, toast_shows: Callable
) -> None:
    """The CVAE at 80x24, one session from its start, each part beginning where the one before left off:
    1. g saves the strips as a grid PNG (the traversal row and the class row, labelled) and records its rows and
       caption;
    2. L, 4, s save the image as a 280x280 PNG named for its class, exactly the decode of the frame shown, and a
       notice names the file;
    3. notices replace each other (s, then g: only g's shows) and never cover the image or the strips;
    4. escape closes Textual's keys panel before it clears the marks, and the palette has no Keys or Theme;
    5. only the strips on screen are decoded: where one strip fits, the hidden one is not decoded on each step, and
       showing it (t, or a terminal with room for both) decodes it for the current z."""
    exports = tmp_path / "exports"
    app = make_app("cvae")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        # 1. the strip grid
        await pilot.press("g")
        (path,) = exports.glob("*strip*.png")
        image, grid = Image.open(path), (4 * (10 * 30 + 2), 4 * (2 * 30 + 2))  # traversal row and class row
        assert image.width > grid[0] and image.height > grid[1], "the rows' labels at the left, a line under it"
        export = read_export(path)
        state = app.explorer.state
        assert export.rows == (f"z{state.selected} · T-shirt/top", "classes 0-9")
        assert export.caption == f"z{state.selected} from -3 to +3, left to right; below, each class at this z"

        # 2. the image PNG
        saved_before = set(exports.glob("*.png"))
        await pilot.press("L", "4", "s")
        await settle(app, pilot)
        (path,) = set(exports.glob("*.png")) - saved_before
        assert "class4" in path.name
        saved = Image.open(path)
        assert saved.size == (280, 280)
        assert app.explorer.frame.version == state.version
        expected = to_image(app.explorer.frame.image, scale=10)
        assert saved.tobytes() == expected.tobytes(), "the PNG is the frame's decode"
        await wait_until(pilot, lambda: toast_shows(app, f"Saved {path}"), "a notification naming the PNG")

        # 3. notices replace each other and cover neither the image nor the strips
        await settle(app, pilot)
        await pilot.press("s", "g")  # two notices of different kinds: the second replaces the first
        await wait_until(pilot, lambda: toast_shows(app, "strip"), "the strip's notice")
        await pilot.pause(0.3)
        toasts = list(app.screen.query("Toast"))
        assert len(toasts) == 1 and not toast_shows(app, "-z-2"), "s's file (...-z-<date>.png) is no longer shown"
        covered = toasts[0].region
        shown = [app.explorer.query_one(s) for s in ("#image", "#traversal", "#classes-beside", "#classes-below")]
        for widget in shown:
            if widget.display and widget.region.area:
                assert not covered.overlaps(widget.region), f"a notice over {widget.id}"

        # 4. escape: the keys panel first, then the marks
        await settle(app, pilot)
        titles = {command.title for command in app.get_system_commands(app.screen)}
        assert "Quit" in titles and not titles & {"Keys", "Theme"}, "the palette has no Keys or Theme"
        await pilot.press("a")
        app.action_show_help_panel()  # as a Textual key or a future palette entry would
        await pilot.pause()
        assert app.screen.query("HelpPanel")
        await pilot.press("escape")
        await pilot.pause()
        assert not app.screen.query("HelpPanel") and app.explorer.path.ends["a"] is not None, "the mark stays"
        await pilot.press("escape")
        await pilot.pause()
        assert app.explorer.path.ends["a"] is None, "the second escape clears the mark"

        # 5. only the strips on screen are decoded
        await settle(app, pilot)
        screen = app.explorer
        await pilot.press("L", "j", "L")
        await settle(app, pilot)
        assert screen.frame.traversal is not None and screen.frame.classes is None, "the traversal alone is shown"
        await pilot.press("t")  # the class strip instead
        await settle(app, pilot)
        state, frame = screen.state, screen.frame
        whole = Decoder(screen.decoder.model).frame(0, list(state.z), state.label, state.selected)
        torch.testing.assert_close(frame.classes, whole.classes)
        torch.testing.assert_close(frame.image, whole.image)
        assert frame.traversal is None, "the traversal is hidden now"
        await pilot.press("L")
        await settle(app, pilot)
        assert screen.frame.traversal is None and screen.frame.classes is not None, "t: the classes alone decoded"
        await resize(app, pilot, 120, 40)  # room for both
        await settle(app, pilot)
        assert screen.frame.traversal is not None and screen.frame.classes is not None, "room for both: both decoded"


def test_truecolor_hint() -> None:
    assert truecolor_hint({"COLORTERM": "24bit"}) is None and truecolor_hint({"COLORTERM": "truecolor"}) is None
    hint = truecolor_hint({"TERM": "xterm-256color"})
    assert "COLORTERM=truecolor" in hint and "set -as terminal-features ',*:RGB'" in hint


@pytest.mark.parametrize(
    "content, fragment",
    [(None, "no checkpoint at"), (b"", "empty or truncated"), (b"\x10\x00\x00\x00\x00\x00\x00\x00{}", "truncated")],
)
def test_bad_checkpoint_on_the_command_line(
    tmp_path: Path, run_cli: Callable, content: bytes | None, fragment: str
) -> None:
    path = tmp_path / "model.safetensors"
    if content is not None:
        path.write_bytes(content)
    result = run_cli("explore", str(path))  # fails before the app opens
    assert result.code == 1
    result.assert_one_line_error(fragment, str(path))


def test_default_checkpoint_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from vae_tui.commands.explore import resolve

    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(checkpoint=None, pretrained=None)
    default = "bundled pretrained conv CVAE" if pretrained_path("cvae-conv").is_file() else "bundled pretrained CVAE"
    assert resolve(args)[1] == default
    assert resolve(argparse.Namespace(checkpoint=None, pretrained="vae"))[1] == "bundled pretrained VAE"
    run = tmp_path / "runs" / "vae-mnist-1"
    run.mkdir(parents=True)
    (run / "best.safetensors").write_bytes(pretrained_path("vae").read_bytes())
    checkpoint, source = resolve(args)
    assert source == str(Path("runs") / "vae-mnist-1" / "best.safetensors") and checkpoint.config.kind == "vae"
    assert resolve(argparse.Namespace(checkpoint=str(run), pretrained=None))[0].config.kind == "vae"
    assert torch.equal(checkpoint.class_centroids, load_checkpoint(pretrained_path("vae")).class_centroids)


@pytest.fixture
def mnist_dir(tmp_path: Path) -> Path:
    """conftest's tiny dataset made smaller for the conv CVAE trained below (128 training images, 4 batches of 32;
    64 test images): what that test checks does not depend on how well one epoch fits them."""
    write_dataset(tmp_path / "data", n_train=128, n_test=64)
    return tmp_path / "data"


@pytest.mark.slow
async def test_a_conv_cvae_explores_like_the_mlp(tmp_path: Path, run_training: Callable, settle: Callable) -> None:
    """A conv CVAE trained here: class and nudge keys change z and class, and the preview is its decoder's image."""
    from vae_tui.app import create_app

    run_training(tmp_path / "run", model="cvae", arch="conv", epochs=1)
    checkpoint = load_checkpoint(tmp_path / "run" / "best.safetensors")
    assert checkpoint.config.arch == "conv"
    app = create_app(checkpoint, str(tmp_path / "run"), tmp_path / "exports")
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(app, pilot)
        before = drawn_image(app)
        await pilot.press("4", "L", "L")
        await settle(app, pilot)
        state, frame = app.explorer.state, app.explorer.frame
        assert state.label == 4 and state.z[state.selected] == pytest.approx(2.5)
        with torch.no_grad():
            expected = torch.sigmoid(checkpoint.model.decode(torch.tensor([state.z]), torch.tensor([4]))).view(28, 28)
        torch.testing.assert_close(frame.image, expected, rtol=0, atol=1e-6)
        assert drawn_image(app) != before


async def test_inactive_dimensions_are_dimmed_marked_and_hidden_with_v(tmp_path: Path, settle: Callable) -> None:
    """The bundled conv CVAE: its atlas says which dimensions are active; v hides the others, v shows them again."""
    from vae_tui.app import create_app

    checkpoint = load_checkpoint(pretrained_path("cvae-conv"))
    active = (checkpoint.atlas.variance > 0.01).tolist()
    assert 0 < sum(active) < len(active)
    app = create_app(checkpoint, "bundled pretrained conv CVAE", tmp_path / "exports")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(app, pilot)
        state, panel = app.explorer.state, app.explorer.query_one(LatentPanel)
        assert active[state.selected]  # the start rule picks an active dimension
        inactive = active.index(False)
        assert panel.line_text(inactive).endswith(" ·")
        assert panel.line_text(state.selected)[-1] in "▁▂▃▄▅▆▇█"
        drawn = {panel.render_line(y).text.rstrip() for y in range(panel.size.height)}
        assert panel.line_text(inactive) in drawn
        styles = {seg.style for y in range(panel.size.height) for seg in panel.render_line(y)}
        assert panel.get_component_rich_style("latent-panel--inactive") in styles
        await pilot.press("v")
        await settle(app, pilot)
        assert state.shown == [d for d in range(len(active)) if active[d]]
        drawn = [panel.render_line(y).text.rstrip() for y in range(panel.size.height)]
        assert not any(line.endswith("·") for line in drawn) and sum(bool(line) for line in drawn) == sum(active)
        assert "Active z" in str(app.explorer.query_one("#latent-title").render())
        for _ in range(len(active)):
            await pilot.press("j")
            assert active[state.selected]
        await pilot.press("v")
        await settle(app, pilot)
        assert state.shown == list(range(len(active)))


async def test_v_says_why_nothing_hides(
    tmp_path: Path, settle: Callable, wait_until: Callable, toast_shows: Callable
) -> None:
    checkpoint = load_checkpoint(pretrained_path("cvae"))
    checkpoint.atlas = None  # as a checkpoint written before the atlas: no per-dimension statistics
    app = create_app(checkpoint, "old CVAE", tmp_path / "exports")
    async with app.run_test(size=(100, 32), notifications=True) as pilot:
        await settle(app, pilot)
        await pilot.press("v")
        await wait_until(
            pilot, lambda: toast_shows(app, "no atlas") and toast_shows(app, "inactive marks"), "a toast saying why"
        )
        assert not app.explorer.state.hide_inactive


@pytest.mark.slow
@pytest.mark.parametrize(("setting", "expected"), [(None, "120"), ("30", "30")])
def test_screen_updates_are_paced_at_120_fps_unless_the_user_sets_textual_fps(
    setting: str | None, expected: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TEXTUAL_FPS"}
    if setting is not None:
        env["TEXTUAL_FPS"] = setting
    # the runs browser, a Textual app that imports no torch (a second of start-up less); the explorer's module
    # starts the same way, with vae_tui/__init__.py
    code = "import sys, vae_tui.runs_app, textual.constants as c; print(c.MAX_FPS, 'torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.split() == [expected, "False"]


# --- abuse: a tiny terminal, a thousand keys, a deleted checkpoint, a crash inside ----------------


async def test_a_tiny_terminal_says_it_is_too_small_survives_keys_and_recovers_when_enlarged(
    make_app: Callable, settle: Callable, wait_until: Callable
) -> None:
    """The CVAE opened at 20x8, then at 40x12: the explorer says it needs at least 60x20 and survives keys (the
    newest frame is still decoded, for the newest state); enlarged to 100x32, it is no longer too small."""
    app = make_app("cvae")
    async with app.run_test(size=(20, 8)) as pilot:
        await settle(app, pilot)
        assert app.explorer.has_class("too-small"), "20x8 is too small"
        await pilot.press("l", "j", "r", "u")
        await settle(app, pilot)
        assert app.explorer.frame.version == app.explorer.state.version, "keys at 20x8: the newest frame"
        await resize(app, pilot, 40, 12)
        await settle(app, pilot)
        assert app.explorer.has_class("too-small"), "40x12 is too small"
        assert "needs at least 60x20" in str(app.explorer.query_one("#too-small").render())
        await resize(app, pilot, 100, 32)  # the size is checked once the screen is laid out at it
        await wait_until(pilot, lambda: not app.explorer.has_class("too-small"), "100x32 is not too small")


async def test_saving_into_an_unwritable_folder_says_why_and_saving_survives_the_checkpoint_deleted_while_open(
    tmp_path: Path, wait_until: Callable, toast_shows: Callable
) -> None:
    """The VAE from a copy of its checkpoint at 80x24, one session: 1. with a file where the exports folder should
    be, s says why it could not save; 2. with that file gone and the checkpoint file deleted while the explorer is
    open, l, s and g still work: two PNGs saved."""
    copy, exports = tmp_path / "model.safetensors", tmp_path / "exports"
    copy.write_bytes(pretrained_path("vae").read_bytes())
    exports.write_text("a file where the folder should be")
    app = create_app(load_checkpoint(copy), str(copy), exports)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        # 1. an unwritable folder
        await pilot.press("s")
        await wait_until(pilot, lambda: toast_shows(app, "Could not save"), "a notification saying why")

        # 2. the checkpoint deleted while open
        exports.unlink()
        copy.unlink()
        await pilot.press("l", "s", "g")
        assert len(list(exports.glob("*.png"))) == 2, "the image and the strip saved"


def test_a_crash_inside_the_explorer_is_not_a_success(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    path = hostile_checkpoint(tmp_path / "c.safetensors")

    def broken(self: ExplorerScreen) -> None:
        raise RuntimeError("a bug in the explorer")  # stands in for any unexpected error inside the app

    monkeypatch.setattr(ExplorerScreen, "on_mount", broken)
    monkeypatch.setattr(textual.constants, "DRIVER", "textual.drivers.headless_driver:HeadlessDriver")
    assert main(["explore", str(path), "--exports", str(tmp_path / "exports")]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "vae-tui explore: error: the explorer stopped on an internal error (shown above)"
    )
