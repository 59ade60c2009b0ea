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
from textual.command import CommandList, CommandPalette

from models import load_checkpoint
from tests.helpers import hostile_checkpoint
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


async def test_nudge_keys(make_app: Callable, settle: Callable) -> None:
    app = make_app("cvae")
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(app, pilot)
        state = app.explorer.state
        d = state.selected
        before = drawn_image(app)
        assert any(style.color.triplet != style.bgcolor.triplet for _, style in before if style)
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
            assert state.z[d] == pytest.approx(expected), key
        await pilot.press("L")
        await settle(app, pilot)
        assert drawn_image(app) != before
        assert "+1.25" in app.explorer.query_one(LatentPanel).line_text(d)


async def test_selection_keys_and_scrolling(make_app: Callable, settle: Callable) -> None:
    app = make_app("vae")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        state = app.explorer.state
        await pilot.press(*["up"] * 20)
        strip_before = drawn_strip(app)
        for key, expected in [("j", 1), ("down", 2), ("k", 1), ("up", 0), ("up", 0)]:
            await pilot.press(key)
            assert state.selected == expected, key
        await pilot.press("j")
        await settle(app, pilot)
        assert drawn_strip(app) != strip_before  # the traversal follows the selected dimension
        for _ in range(25):
            await pilot.press("j")
        assert state.selected == 19
        panel = app.explorer.query_one(LatentPanel)
        assert panel.scroll_offset.y > 0
        assert any(seg.text.startswith("> z19") for y in range(panel.size.height) for seg in panel.render_line(y))


async def test_step_zero_value_keys(make_app: Callable, settle: Callable) -> None:
    app = make_app("cvae")
    async with app.run_test(size=(80, 24)) as pilot:
        state = app.explorer.state
        d = state.selected
        await pilot.press("left_square_bracket")
        assert state.step == 0.125
        await pilot.press("right_square_bracket", "right_square_bracket")
        assert state.step == 0.5
        await pilot.press("l")
        assert state.z[d] == 0.5
        await pilot.press("x")
        assert state.z[d] == 0.0
        await pilot.press("equals_sign")
        assert isinstance(app.screen, ValueScreen)
        await pilot.press(*"-1.75", "enter")
        assert not isinstance(app.screen, ValueScreen)
        assert state.z[d] == -1.75
        await settle(app, pilot)
        assert "step 0.5" in str(app.explorer.query_one("#latent-title").render())


async def test_class_keys_cvae_keep_z(make_app: Callable, settle: Callable) -> None:
    app = make_app("cvae")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        state = app.explorer.state
        d = state.selected
        await pilot.press("L")
        before = drawn_image(app)
        await pilot.press("7")
        await settle(app, pilot)
        assert state.label == 7 and state.z[d] == 1.25
        assert drawn_image(app) != before
        assert "7 Sneaker" in str(app.explorer.query_one("#preview-title").render())


async def test_class_keys_vae_jump_to_centroid(make_app: Callable) -> None:
    app = make_app("vae")
    async with app.run_test(size=(80, 24)) as pilot:
        state = app.explorer.state
        centroids = app.checkpoint.class_centroids
        assert state.z == pytest.approx(centroids[0].tolist())
        await pilot.press("1")
        assert state.label == 1 and state.z == pytest.approx(centroids[1].tolist())
        await pilot.press("l", "backspace")
        assert state.z == pytest.approx(centroids[1].tolist())  # the class's centroid is the new start


async def test_random_reset_undo(make_app: Callable) -> None:
    app = make_app("cvae")
    async with app.run_test(size=(80, 24)) as pilot:
        state = app.explorer.state
        d = state.selected
        await pilot.press("r")
        drawn = list(state.z)
        assert any(v != 0 for v in drawn)
        await pilot.press("l", "l", "3")
        await pilot.press("backspace")
        assert state.z == [0.0] * 20 and state.label == 3
        for expected_label, expected_z0 in [
            (3, drawn[d] + 0.5),
            (0, drawn[d] + 0.5),
            (0, drawn[d] + 0.25),
            (0, drawn[d]),
        ]:
            await pilot.press("u")
            assert (state.label, state.z[d]) == (expected_label, pytest.approx(expected_z0))
        await pilot.press("u")
        assert state.z == [0.0] * 20


async def test_save_image_png_matches_the_decode(
    tmp_path: Path, make_app: Callable, settle: Callable, wait_until: Callable, toast_shows: Callable
) -> None:
    app = make_app("cvae")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await pilot.press("L", "4", "s")
        await settle(app, pilot)
        (path,) = (tmp_path / "exports").glob("*.png")
        assert "class4" in path.name
        saved = Image.open(path)
        assert saved.size == (280, 280)
        assert app.explorer.frame.version == app.explorer.state.version
        expected = to_image(app.explorer.frame.image, scale=10)
        assert saved.tobytes() == expected.tobytes()
        await wait_until(pilot, lambda: toast_shows(app, f"Saved {path}"), "a notification naming the PNG")


async def test_save_strip_grid(tmp_path: Path, make_app: Callable) -> None:
    app = make_app("cvae")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("g")
        (path,) = (tmp_path / "exports").glob("*strip*.png")
        image, grid = Image.open(path), (4 * (10 * 30 + 2), 4 * (2 * 30 + 2))  # traversal row and class row
        assert image.width > grid[0] and image.height > grid[1]  # the rows' labels at the left, a line under it
        export = read_export(path)
        state = app.explorer.state
        assert export.rows == (f"z{state.selected} · T-shirt/top", "classes 0-9")
        assert export.caption == f"z{state.selected} from -3 to +3, left to right; below, each class at this z"


async def test_save_into_unwritable_folder_says_why(
    tmp_path: Path, make_app: Callable, wait_until: Callable, toast_shows: Callable
) -> None:
    (tmp_path / "exports").write_text("a file where the folder should be")
    app = make_app("vae")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await pilot.press("s")
        await wait_until(pilot, lambda: toast_shows(app, "Could not save"), "a notification saying why")


async def test_help_strip_toggle_quit(make_app: Callable, settle: Callable) -> None:
    app = make_app("cvae")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("l")  # keys of the main screen do nothing under the help
        assert app.explorer.state.z == [0.0] * 20
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        before = drawn_strip(app)
        await pilot.press("t")
        await pilot.pause()
        assert drawn_strip(app) != before
        await pilot.press("q")
    assert app.return_code == 0


async def test_command_palette_runs_actions(make_app: Callable, wait_until: Callable) -> None:
    app = make_app("cvae")
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("ctrl+p")
        type_quickly(app, "Double the step")
        commands = app.screen.query_one(CommandList)

        def first_match() -> str:
            index = commands.highlighted
            return "" if index is None else str(commands.get_option_at_index(index).prompt)

        await wait_until(pilot, lambda: "Double the step" in first_match(), "the palette offering the command")
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.explorer.state.step != 0.25, "the command changing the step")
        assert app.explorer.state.step == 0.5 and not isinstance(app.screen, CommandPalette)


async def test_too_small_terminal(make_app: Callable, settle: Callable) -> None:
    app = make_app("cvae")
    async with app.run_test(size=(40, 12)) as pilot:
        await settle(app, pilot)
        assert app.explorer.has_class("too-small")
        assert "needs at least 60x20" in str(app.explorer.query_one("#too-small").render())
        await pilot.resize_terminal(100, 32)
        await pilot.pause()
        assert not app.explorer.has_class("too-small")


def test_truecolor_hint() -> None:
    assert truecolor_hint({"COLORTERM": "24bit"}) is None and truecolor_hint({"COLORTERM": "truecolor"}) is None
    hint = truecolor_hint({"TERM": "xterm-256color"})
    assert "COLORTERM=truecolor" in hint and "set -as terminal-features ',*:RGB'" in hint


async def test_key_repeat_is_absorbed(make_app: Callable, settle: Callable) -> None:
    app = make_app("cvae")
    shown = []
    async with app.run_test(size=(80, 24)) as pilot:
        app.explorer.frame_listeners.append(lambda frame: shown.append(frame.version))
        await pilot.press(*["l"] * 60)
        await settle(app, pilot)
        assert max(app.explorer.state.z) == pytest.approx(10.0)  # 60 steps of 0.25, clamped at the limit
        assert shown[-1] == app.explorer.state.version
        assert app.explorer.frame.version == app.explorer.state.version


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


async def test_only_the_strips_on_screen_are_decoded(make_app: Callable, settle: Callable) -> None:
    """Where one strip fits, the hidden one is not decoded on each step; showing it decodes it for the current z."""
    app = make_app("cvae")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        screen = app.explorer
        await pilot.press("L", "j", "L")
        await settle(app, pilot)
        assert screen.frame.traversal is not None and screen.frame.classes is None  # the traversal is shown
        await pilot.press("t")  # the class strip instead
        await settle(app, pilot)
        state, frame = screen.state, screen.frame
        whole = Decoder(screen.decoder.model).frame(0, list(state.z), state.label, state.selected)
        torch.testing.assert_close(frame.classes, whole.classes)
        torch.testing.assert_close(frame.image, whole.image)
        assert frame.traversal is None  # hidden now
        await pilot.press("L")
        await settle(app, pilot)
        assert screen.frame.traversal is None and screen.frame.classes is not None
        await pilot.resize_terminal(120, 40)  # room for both
        await settle(app, pilot)
        assert screen.frame.traversal is not None and screen.frame.classes is not None


async def test_every_state_change_redraws_once_through_the_one_listener(make_app: Callable, settle: Callable) -> None:
    """Actions only change the state; the screen's one listener asks for one redraw per round of messages."""
    app = make_app("cvae")
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(app, pilot)
        screen = app.explorer
        redraws = []
        shown = screen._show_state
        screen._show_state = lambda: (redraws.append(screen.state.version), shown())
        for key in ("down", "right", "x", "3", "r", "u", "right_square_bracket", "backspace"):
            before = len(redraws)
            await pilot.press(key)
            await pilot.pause()
            assert len(redraws) == before + 1, key
        assert "step 0.5" in str(screen.query_one("#latent-title").render())  # a text-only change is drawn too
        before = len(redraws)
        screen.state.select(1), screen.state.nudge(2), screen.state.pick_class(5)  # three changes, one handler
        await pilot.pause()
        assert redraws[before:] == [screen.state.version]
        await settle(app, pilot)
        assert screen.frame.version == screen.state.version and screen.state.label == 5


async def test_notices_replace_each_other_and_never_cover_the_image_or_the_strips_at_80x24(
    make_app: Callable, settle: Callable, wait_until: Callable, toast_shows: Callable
) -> None:
    app = make_app("cvae")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await settle(app, pilot)
        await pilot.press("s", "g")  # two notices of different kinds: the second replaces the first
        await wait_until(pilot, lambda: toast_shows(app, "strip"), "the strip's notice")
        await pilot.pause(0.3)
        toasts = list(app.screen.query("Toast"))
        assert len(toasts) == 1 and not toast_shows(app, "-z-2")  # s's file (...-z-<date>.png) is no longer shown
        covered = toasts[0].region
        shown = [app.explorer.query_one(s) for s in ("#image", "#traversal", "#classes-beside", "#classes-below")]
        for widget in shown:
            if widget.display and widget.region.area:
                assert not covered.overlaps(widget.region), widget.id


async def test_escape_closes_textual_s_keys_panel_before_it_clears_marks_and_the_palette_has_no_keys_or_theme(
    make_app: Callable, settle: Callable
) -> None:
    app = make_app("cvae")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        titles = {command.title for command in app.get_system_commands(app.screen)}
        assert "Quit" in titles and not titles & {"Keys", "Theme"}
        await pilot.press("a")
        app.action_show_help_panel()  # as a Textual key or a future palette entry would
        await pilot.pause()
        assert app.screen.query("HelpPanel")
        await pilot.press("escape")
        await pilot.pause()
        assert not app.screen.query("HelpPanel") and app.explorer.path.ends["a"] is not None  # the mark stays
        await pilot.press("escape")
        await pilot.pause()
        assert app.explorer.path.ends["a"] is None


# --- abuse: a tiny terminal, a thousand keys, a deleted checkpoint, a crash inside ----------------


async def test_tiny_terminal(make_app: Callable, settle: Callable) -> None:
    app = make_app("cvae")
    async with app.run_test(size=(20, 8)) as pilot:
        await settle(app, pilot)
        assert app.explorer.has_class("too-small")
        await pilot.press("l", "j", "r", "u")
        await settle(app, pilot)
        assert app.explorer.frame.version == app.explorer.state.version


async def test_a_thousand_keys_as_fast_as_they_come(make_app: Callable, settle: Callable) -> None:
    from textual import events

    app = make_app("cvae")
    keys = ["l", "j", "h", "k", "r", "u", "right_square_bracket", "left_square_bracket", "3", "l"]
    async with app.run_test(size=(100, 32)) as pilot:
        shown = []
        app.explorer.frame_listeners.append(lambda frame: shown.append(frame.version))
        for i in range(1000):
            key = keys[i % len(keys)]
            app.post_message(events.Key(key, key if len(key) == 1 else None))
        await settle(app, pilot)
        await settle(app, pilot)
        state = app.explorer.state
        assert len(state.history) > 0 and state.label == 3
        assert shown and shown[-1] == state.version and len(shown) < 1000  # stale frames were dropped


async def test_checkpoint_deleted_while_open(tmp_path: Path) -> None:
    from vae_tui.app import create_app

    copy = tmp_path / "model.safetensors"
    copy.write_bytes(pretrained_path("vae").read_bytes())
    app = create_app(load_checkpoint(copy), str(copy), tmp_path / "exports")
    async with app.run_test(size=(80, 24)) as pilot:
        copy.unlink()
        await pilot.press("l", "s", "g")
        assert len(list((tmp_path / "exports").glob("*.png"))) == 2


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
