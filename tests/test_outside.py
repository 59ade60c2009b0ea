"""Models written elsewhere (models/outside.py, vae_tui/outside.py): the protocol's adapter, `explore --code` with
its one-line refusals, and the explorer on such a model."""

import copy
import os
import re
import sys
import warnings
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from models.outside import OutsideModelError, OutsideVAE
from tests import outside_models
from tests.helpers import run_in_pty, screen_text
from tests.outside_models import FAR, Fragile, Gated, TanhVAE, squares
from train.atlas import atlas_of
from train.grids import PAD_VALUE
from vae_tui.app import ExplorerApp, create_app
from vae_tui.model_calls import on_its_thread
from vae_tui.outside import outside_checkpoint
from vae_tui.screens.help import HelpScreen, keys_table
from vae_tui.screens.picker import PickerScreen
from vae_tui.widgets.image_view import ImageView
from vae_tui.widgets.title_bar import TitleBar

MODELS = Path(outside_models.__file__)
TRAIN = outside_models.trained  # the real training, before a test's patch
_TRAINED: dict[int, tuple[TanhVAE, torch.Tensor]] = {}  # by steps: the trained model, torch's generator state after


def trained(steps: int = 30) -> TanhVAE:
    """outside_models.trained(steps), trained once a process: a copy of that model, and torch's global generator
    left as the training leaves it (it seeds the generator first, so every training gives the same of both)."""
    if steps not in _TRAINED:
        _TRAINED[steps] = TRAIN(steps), torch.get_rng_state()
    model, generator = _TRAINED[steps]
    torch.set_rng_state(generator)
    return copy.deepcopy(model)


@pytest.fixture(autouse=True)
def trained_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The models of tests/outside_models.py built in this process (decoder_only(), breakable() ...) start from
    trained() above; `--code FILE.py:FUNC` loads the file afresh and trains."""
    monkeypatch.setattr(outside_models, "trained", trained)


def outside_app(model: nn.Module, tmp_path: Path, data: bool = False) -> ExplorerApp:
    """The explorer on model (a tanh model of 3x16x16 images, written elsewhere), exporting into tmp_path/exports;
    with data, an atlas of 40 squares of 4 classes (the model needs encode)."""
    outside = OutsideVAE(model, decoder_output="tanh")
    checkpoint = outside_checkpoint(outside, Namespace(class_names=None))
    if data:
        images, labels = squares(40, seed=3)
        outside.use_classes(4)
        checkpoint.class_names = ["red", "green", "blue", "yellow"]
        checkpoint.class_centroids = torch.zeros(4, outside.latent_dim)
        levels = (images * 255).round().to(torch.uint8)
        checkpoint.atlas = atlas_of(outside, levels.reshape(40, -1).float() / 255, labels, levels)
    return create_app(checkpoint, "--code tests", tmp_path / "exports")


def test_a_tanh_model_is_seen_as_logits_of_its_pixels_and_its_encoder_gets_inputs_in_its_range() -> None:
    model = trained()
    outside = OutsideVAE(model, decoder_output="tanh")
    assert outside.config.image_shape == (3, 16, 16) and outside.config.latent_dim == 8 and not outside.conditional
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = (model.decode(z) + 1) / 2
    torch.testing.assert_close(torch.sigmoid(outside.decode(z)).view(5, 3, 16, 16), expected, atol=2e-6, rtol=0)
    images = squares(6, seed=2)[0]
    mu, logvar = outside.encode(images.reshape(6, -1))
    with torch.no_grad():
        own_mu, own_logvar = model.encode(images * 2 - 1)
    assert torch.equal(mu, own_mu) and torch.equal(logvar, own_logvar) and outside.has_logvar


def test_what_the_protocol_does_not_allow_is_one_line() -> None:
    with pytest.raises(OutsideModelError, match="has no latent_dim attribute: give its size with --latent-dim"):
        OutsideVAE(outside_models.NoLatentDim())
    assert OutsideVAE(outside_models.NoLatentDim(), latent_dim=3).config.image_shape == (1, 28, 28)
    for make, message in [
        (outside_models.returns_a_list, "decode(z) returned a list: expected a tensor of images"),
        (outside_models.wrong_shape, "decode(z) returned a tensor of shape (1, 5, 7) (float32): expected"),
    ]:
        with pytest.raises(OutsideModelError, match=re.escape(message)):
            OutsideVAE(make())
    with pytest.raises(OutsideModelError, match="decode\\(z\\) returned NaN or infinite values"):
        OutsideVAE(outside_models.nan_images())  # the first decode is checked as every one is


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("nothere.py:load", "--code nothere.py:load: no file nothere.py"),
        ("{models}:missing", "--code {models}:missing: {models} has no function missing"),
        ("{models}:raises", "--code {models}:raises: raises() raised FileNotFoundError: weights.pt (--debug shows"),
        ("{models}:returns_a_list", "decode(z) returned a list: expected a tensor of images"),
        ("{models}:nan_images", "decode(z) returned NaN or infinite values"),
        ("{syntax}:load", "--code {syntax}:load: {syntax}, line 1 has a syntax error invalid syntax"),
        ("no_colon", "--code takes FILE.py:FUNC or package.module:FUNC, not 'no_colon'"),
        ("no.such.module:f", "--code no.such.module:f: no module named no"),
    ],
    ids=["no file", "no func", "func raises", "not a tensor", "nan", "syntax error", "no colon", "no module"],
)
def test_explore_code_failures_are_one_line(
    tmp_path: Path, run_cli: Callable, monkeypatch: pytest.MonkeyPatch, code: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    syntax = tmp_path / "broken.py"
    syntax.write_text("def load(:\n")
    fill = {"models": str(MODELS), "syntax": str(syntax)}
    run_cli("explore", "--code", code.format(**fill)).assert_one_line_error(message.format(**fill))


async def test_the_explorer_draws_an_outside_model_maps_its_encodings_and_an_encoder_that_fails_leaves_z(
    tmp_path: Path, settle: Callable, wait_until: Callable, toast_shows: Callable
) -> None:
    """A tanh VAE trained for a few steps, with an atlas of its data: the preview is its own decode of z, a nudge
    changes it, and the map and picker have its encodings. Then its encoder fails (outside_models.breakable): an
    image picked in the picker is a notice naming what the encoder did and z stays where it was; once it works, the
    pick starts from the image's encoding."""
    model = outside_models.breakable()  # the trained tanh VAE, whose encode raises while model.broken
    app = outside_app(model, tmp_path, data=True)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await settle(app, pilot)
        screen = app.explorer
        before = screen.frame.image
        await pilot.press("l", "l", "l", "l")
        await settle(app, pilot)
        with torch.no_grad():
            expected = (trained().decode(torch.tensor([screen.state.z])) + 1) / 2
        torch.testing.assert_close(screen.frame.image, expected[0], atol=1e-5, rtol=0)
        assert not torch.equal(before, screen.frame.image), "a nudge changes the preview"
        await pilot.press("m")
        await settle(app, pilot)
        assert screen.map.shown and screen.query_one("#map-image", ImageView).pixels.shape == (3, 16, 16)
        await pilot.press("m")
        await settle(app, pilot)

        z = list(screen.state.z)
        model.broken = True
        await pilot.press("o")
        await wait_until(pilot, lambda: isinstance(app.screen, PickerScreen), "the picker")
        await pilot.press("enter")
        message = "The model's encode(x) raised RuntimeError: the encoder's weights are gone; z does not start from"
        await wait_until(pilot, lambda: toast_shows(app, message), "a notice naming what the encoder did")
        assert screen.state.z == z and screen.reference is None, "a failed encode leaves z where it was"
        model.broken = False
        await pilot.press("o", "enter")
        await wait_until(pilot, lambda: screen.reference is not None, "the picked image's encoding")


# --- a model that misbehaves while the explorer runs -------------------------------------------------------------


class Exits(outside_models.DecoderOnly):
    """A decoder that calls sys.exit() past z0 = 1 and raises a ValueError of two lines past 2."""

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if z[0, 0] > 2:
            raise ValueError("first line\nsecond line")
        if z[0, 0] > 1:
            sys.exit(3)
        return super().decode(z)


def test_whatever_the_model_raises_on_its_thread_is_one_line() -> None:
    calls = on_its_thread(OutsideVAE(Exits(trained()), decoder_output="tanh"))
    assert calls.decode(torch.zeros(1, 8)).shape == (1, 768) and calls.thread.daemon
    with pytest.raises(OutsideModelError, match="^decode\\(z\\) raised SystemExit: 3$"):
        calls.decode(torch.full((1, 8), 1.5))
    with pytest.raises(OutsideModelError, match="^decode\\(z\\) raised ValueError: first line$") as raised:
        calls.decode(torch.full((1, 8), 2.5))
    assert isinstance(raised.value.__cause__, ValueError)  # its traceback, for the log
    assert calls.decode(torch.zeros(1, 8)).shape == (1, 768)  # the thread goes on
    calls.thread.close()


async def fails_at_some_z(app: ExplorerApp, pilot: object, message: str, waits: tuple[Callable, ...]) -> None:
    """The checks of a model failing where z0 passes 1.5: the traversal's +2 and +3 are blank (said), an image there
    is not updated (message says why, no traceback, its z shown), and the next z where it works is drawn."""
    settle, wait_until, toast_shows = waits
    await settle(app, pilot)
    screen = app.explorer
    strip = screen.frame.traversal  # z0 at -3 .. +3
    assert torch.equal(strip[5:], torch.full_like(strip[5:], PAD_VALUE)) and (strip[:5] != PAD_VALUE).any()
    blank = "2 of the strips' 7 images are drawn blank"
    await wait_until(pilot, lambda: toast_shows(app, blank), "a notice of the blank images")
    shown = screen.frame
    screen.state.set_value(2.5)
    await wait_until(pilot, lambda: toast_shows(app, message), "a notice naming what the model did")
    assert screen.frame is shown and "Traceback" not in "".join(screen_text(app))
    app.clear_notifications()  # the toast covers z0's row
    await wait_until(pilot, lambda: not app.screen.query("Toast"), "the toast gone")
    assert any("> z0 " in line and "+2.50" in line for line in screen_text(app))  # where it failed
    await pilot.press("x")  # z0 = 0, where the model works
    await settle(app, pilot)
    assert screen.frame.version > shown.version and torch.equal(screen.frame.image, shown.image)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("nan", "The model's decode(z) returned NaN or infinite values; the image is not updated"),
        (
            "shape",
            "The model's decode(z) returned a tensor of shape (1, 3, 8, 8) (float32), not (1, 3, 16, 16) as before; "
            "the image is not updated",
        ),
    ],
)
async def test_a_model_failing_at_some_z_is_a_notice_and_the_explorer_goes_on(
    tmp_path: Path, settle: Callable, wait_until: Callable, toast_shows: Callable, kind: str, message: str
) -> None:
    """The model fails where z0 passes 1.5 (NaN images, images of another shape; one that raises: the next test):
    the traversal's +2 and +3 are blank, an image there is not updated (its z is shown), and the next z where it
    works is drawn."""
    app = outside_app(Fragile(trained(), kind), tmp_path)
    async with app.run_test(size=(100, 32), notifications=True) as pilot:
        await fails_at_some_z(app, pilot, message, (settle, wait_until, toast_shows))


async def test_a_model_raising_at_some_z_or_at_each_call_is_a_notice_and_changes_nothing(
    tmp_path: Path, settle: Callable, wait_until: Callable, toast_shows: Callable
) -> None:
    """One explorer on a model that raises where z0 passes 1.5: the checks of the test above, for a raise. Then s, g,
    p, G and a decode, with the model raising everywhere: each gets a notice saying what did not happen, and nothing
    changes; once the model works again, s saves."""
    model = Fragile(trained(), "raise")
    app = outside_app(model, tmp_path)
    async with app.run_test(size=(100, 32), notifications=True) as pilot:
        message = "The model's decode(z) raised ValueError: z0 = 2.50 is past 1.5; the image is not updated"
        await fails_at_some_z(app, pilot, message, (settle, wait_until, toast_shows))
        screen = app.explorer
        await pilot.press("a", "l", "b")
        await wait_until(pilot, lambda: screen.path.path_strip is not None, "the path a -> b")
        model.far = -10.0  # the model fails everywhere from now on
        for key, consequence in [
            ("s", "the image is not saved"),
            ("g", "the image is not saved"),
            ("p", "the path is not played"),
            ("G", "the GIF is not saved"),
            ("a", "a is not marked"),
        ]:
            await pilot.press(key)
            shown = f"raised ValueError: z0 = 3.00 is past -10.0; {consequence}" if key == "g" else consequence
            await wait_until(pilot, lambda shown=shown: toast_shows(app, shown), f"{key}: {consequence}")
        assert not (tmp_path / "exports").exists() and screen.playback is None
        assert screen.path.ends["a"].z[0] == 0 and screen.path.path_strip is not None
        model.far = FAR
        await pilot.press("s")
        await wait_until(pilot, lambda: toast_shows(app, "Saved"), "the image saved once the model works again")


async def test_a_slow_decode_leaves_the_keys_working_says_so_and_q_does_not_wait(
    tmp_path: Path, settle: Callable, wait_until: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decode that does not return (until the test lets it): keys act and show at once, the title bar says the
    model is slow and for how long, and q ends the app while the decode still runs (on a daemon thread, which no
    exit waits for). The title bar says so after 0.2 s here instead of 1 s (SLOW_SECONDS)."""
    monkeypatch.setattr("vae_tui.screens.explorer.SLOW_SECONDS", 0.2)
    model = Gated(trained())
    app = outside_app(model, tmp_path)
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(app, pilot)
        screen, title = app.explorer, app.explorer.query_one(TitleBar)
        calls = screen.decoder.model.thread
        model.gate.clear()
        await pilot.press("l")
        await wait_until(pilot, lambda: calls.busy() is not None, "a decode waiting for the gate")
        await pilot.press("j", "j", "l")
        assert screen.state.selected == 2 and screen.state.z[2] == 0.25
        assert any("> z2 " in line and "+0.25" in line for line in screen_text(app))  # before any frame
        slow = re.compile(r"the model is slow: decode\(z\) running \d+ s · q quits")
        await wait_until(pilot, lambda: slow.fullmatch(title.notice), "the title bar saying the model is slow")
        await pilot.press("q")
    assert app.return_code == 0 and calls.busy() is not None and calls.daemon  # quit while it still ran
    model.gate.set()


@pytest.mark.slow
def test_q_ends_the_process_while_a_decode_never_returns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`explore --code` on a model whose first frame never comes: q in the terminal ends the process, status 0.
    The process is forked from this one: the title bar says the model is slow after 0.2 s instead of 1 s."""
    monkeypatch.setattr("vae_tui.screens.explorer.SLOW_SECONDS", 0.2)
    args = ["explore", "--code", f"{MODELS}:stuck", "--decoder-output", "tanh", "--threads", "1"]
    result = run_in_pty(args, tmp_path, timeout=60, keys={"is slow": b"q"})
    assert result.code == 0 and "Traceback" not in result.output, result.output[-2000:]


def show_on_stderr(message: Warning | str, category: type[Warning], filename: str, lineno: int, *_: object) -> None:
    """warnings.showwarning as Python's own, outside pytest (which records warnings): onto sys.stderr, as it is."""
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno))


async def test_what_the_model_prints_goes_to_a_log_named_once(
    tmp_path: Path, settle: Callable, wait_until: Callable, toast_shows: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prints, writes to stderr, warnings and a logging handler set up on stderr before the app: all in the log."""
    model = outside_models.chatty()
    (handler,) = model.logger.handlers
    stream = handler.stream  # the terminal's, as basicConfig() sets it up
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        monkeypatch.setattr(warnings, "showwarning", show_on_stderr)
        app = outside_app(model, tmp_path)  # its two first decodes print on the terminal: no app is up yet
        log = app.output_log
        async with app.run_test(size=(100, 32), notifications=True) as pilot:
            await settle(app, pilot)
            await pilot.press("l")
            await settle(app, pilot)
            notice = f"What the model prints goes to {log.path}"
            await wait_until(pilot, lambda: toast_shows(app, notice), "the log's notice")
            await wait_until(pilot, lambda: log.path.read_text().count("a logged warning") == 2, "two decodes' output")
            assert not any("decoding" in line or "stderr" in line for line in screen_text(app))
    text = log.path.read_text()
    assert text.count("decoding 8 latents\n") == 1 and text.count("a line on stderr\n") == 2
    assert text.count("UserWarning: a deprecated argument") == 2
    assert log.path.parent == Path(os.environ["XDG_CACHE_HOME"]) / "vae-tui" / "logs"
    assert handler.stream is stream
    handler.close()
    model.logger.removeHandler(handler)


# --- what the model offers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "needs"),
    [
        (outside_models.decoder_only, "needs the model's encode(x): this one has decode(z) alone"),
        (trained, "needs test images to encode: start with --code and --data DIR (or --dataset)"),
    ],
    ids=["no encoder", "no data"],
)
async def test_keys_the_model_cannot_serve_are_left_out_and_say_what_they_need(
    tmp_path: Path, settle: Callable, wait_until: Callable, toast_shows: Callable, make: Callable, needs: str
) -> None:
    app = outside_app(make(), tmp_path)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await settle(app, pilot)
        screen = app.explorer
        footer = screen_text(app)[-1]
        assert "nudge" in footer and "map" not in footer
        for key, what in [("m", "The map (m)"), ("o", "The picker (o)"), ("n", "The nearest images (n)")]:
            await pilot.press(key)
            await wait_until(pilot, lambda what=what: toast_shows(app, f"{what} {needs}"), f"{key} saying why")
        await pilot.press("v")
        await wait_until(pilot, lambda: toast_shows(app, "Marking inactive dimensions (v)"), "v saying why")
        assert not screen.map.shown and not screen.nearest_strip and not screen.state.hide_inactive
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
        assert app.screen.left_out >= {"toggle_map", "open_picker", "toggle_inactive", "toggle_nearest"}
        listed = list(keys_table(app.screen.left_out).columns[0].cells)
        assert "m" not in listed and "o" not in listed and "left / h" in listed


def test_image_needs_an_encoder(tmp_path: Path, run_cli: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (16, 16)).save("cat.png")
    code = f"{MODELS}:decoder_only"
    result = run_cli("explore", "--code", code, "--decoder-output", "tanh", "--threads", "1", "--image", "cat.png")
    result.assert_one_line_error(f"--image needs the model's encode(x): --code {code} has decode(z) alone")


def test_a_decoder_that_fails_on_a_batch_but_not_on_one_z_is_decoded_one_at_a_time() -> None:
    """Every image decodes alone, so the frame is whole; what went wrong with the batch is said once."""
    from vae_tui.decoding import Decoder
    from vae_tui.model_calls import on_its_thread

    decoder = Decoder(on_its_thread(OutsideVAE(outside_models.one_at_a_time(), decoder_output="tanh")))
    frame = decoder.frame(1, [0.0] * 8, 0, 0)
    assert frame.traversal is not None and frame.traversal.shape == (7, 3, 16, 16)
    assert (frame.traversal != 0.25).flatten(1).any(1).all()  # no image was drawn blank
    assert "a batch of 8 failed, so its images were decoded one at a time" in frame.failure


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("import sys\nsys.exit(2)\n", "called sys.exit(2): does it parse the command line when imported?"),
        ("from models.mynet import Net\n", "vae-tui's own packages are named models and train and hide yours"),
    ],
    ids=["sys.exit on import", "a package named models"],
)
def test_a_module_that_exits_or_imports_a_hidden_package_is_one_line(
    tmp_path: Path, run_cli: Callable, source: str, message: str
) -> None:
    (tmp_path / "user.py").write_text(source + "def load():\n    return None\n")
    run_cli("explore", "--code", f"{tmp_path / 'user.py'}:load").assert_one_line_error(message)


def test_a_module_with_dataclasses_and_postponed_annotations_loads(tmp_path: Path) -> None:
    """The module is in sys.modules while it runs, as an import's is: @dataclass under `from __future__ import
    annotations` looks it up there."""
    from vae_tui.outside import run_user_code

    (tmp_path / "dc.py").write_text(
        "from __future__ import annotations\nfrom dataclasses import dataclass\n\n@dataclass\nclass Sizes:\n"
        "    latent: int = 3\n\ndef load():\n    return Sizes()\n"
    )
    assert run_user_code(f"{tmp_path / 'dc.py'}:load").latent == 3


def test_a_tanh_model_read_as_probs_gets_a_note_naming_the_flag() -> None:
    """Its outputs reach below 0: drawn clamped, which a user sees as washed-out images; the note says so."""
    assert OutsideVAE(trained(), decoder_output="tanh").range_note == ""
    note = OutsideVAE(trained(), decoder_output="probs").range_note
    assert "outside the [0, 1] of --decoder-output probs: they are drawn clamped (--decoder-output tanh?)" in note


async def test_the_explorer_says_when_outputs_fall_outside_the_decoder_output_range(
    tmp_path: Path, settle: Callable, toast_shows: Callable
) -> None:
    """A tanh model opened as probs: the note the command line prints also opens the explorer, where it stays."""
    from argparse import Namespace

    from vae_tui.outside import outside_checkpoint

    model = OutsideVAE(trained(), decoder_output="probs")
    app = create_app(outside_checkpoint(model, Namespace(class_names=None)), "--code tests", tmp_path / "exports")
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await settle(app, pilot)
        assert toast_shows(app, "(--decoder-output tanh?)")
