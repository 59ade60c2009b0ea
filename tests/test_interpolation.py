"""Interpolation in the explorer: a and b mark the ends, the strip shows the path, p plays it, G saves a GIF."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageSequence

from tests.helpers import resize
from train.grids import to_image
from vae_tui.screens.interpolation import GIF_SCALE, PATH_FRAMES, PATH_STRIP, Player, ping_pong
from vae_tui.widgets.image_view import ImageView
from vae_tui.widgets.thumbnails import Thumbnails

pytestmark = pytest.mark.usefixtures("truecolor")


def test_ping_pong_goes_there_and_back_without_repeating_an_end() -> None:
    assert ping_pong(4) == [0, 1, 2, 3, 2, 1]
    loop = ping_pong(PATH_FRAMES) * 2
    assert all(a != b for a, b in zip(loop, loop[1:], strict=False)) and len(ping_pong(PATH_FRAMES)) == 30


def test_the_player_drops_frames_rather_than_queueing_them() -> None:
    player = Player(torch.zeros(PATH_FRAMES, 2, 2), start=100.0)
    assert player.due(100.0) == 0
    player.shown = 0
    assert player.due(100.05) is None  # within the same 1/15 s: nothing new
    assert player.due(100.0 + 5 / 15 + 0.01) == 5  # a slow terminal skips to the frame due now
    assert player.due(100.0 + 31 / 15 + 0.01) == 1  # and loops


async def test_a_b_mark_the_ends_and_the_strip_shows_the_path(make_app: Callable, settle: Callable) -> None:
    app = make_app("cvae")
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(app, pilot)
        screen = app.explorer
        await pilot.press("a")
        await settle(app, pilot)
        traversal = screen.query_one("#traversal", Thumbnails)
        assert traversal.caption.startswith("a: 0 T-shirt/top, |z| 0.00 · b: mark the other end")
        await pilot.press("r", "7", "b")
        await settle(app, pilot)
        a, b = screen.path.ends["a"], screen.path.ends["b"]
        assert a.label == 0 and b.label == 7 and list(b.z) == screen.state.z
        assert torch.equal(traversal.images, screen.decoder.path(a, b, PATH_STRIP))
        assert traversal.caption.startswith("Path a (0 T-shirt/top) -> b (7 Sneaker)")
        model = screen.checkpoint.model
        ends = torch.sigmoid(model.decode(torch.tensor([a.z, b.z]), torch.tensor([0, 7]))).view(-1, 28, 28)
        assert torch.allclose(traversal.images[0], ends[0], atol=1e-6)  # the soft class is one-hot at the ends
        assert torch.allclose(traversal.images[-1], ends[1], atol=1e-6)
        await pilot.press("escape")
        await settle(app, pilot)
        assert screen.path.path_strip is None and traversal.caption.startswith("Traversal of z16")


async def test_g_saves_the_path_as_a_gif_of_the_decoded_frames_and_p_plays_it_until_a_key(
    tmp_path: Path, make_app: Callable, settle: Callable, wait_until: Callable
) -> None:
    """The VAE at 100x32, one session from its start: 1. G with no ends marked says so and saves nothing; with a and b
    marked it saves the path as a looping GIF of the decoded frames, there and back, recording what drew it; 2. at
    120x40, with new ends marked, p plays the path's frames in the preview, and any key (x) only stops it: z is
    unchanged and the preview shows the current frame again."""
    app = make_app("vae")
    async with app.run_test(size=(100, 32)) as pilot:
        # 1. G saves a GIF
        await settle(app, pilot)
        await pilot.press("G")  # no ends yet: says so, saves nothing
        assert not (tmp_path / "exports").exists(), "G without ends saves nothing"
        await pilot.press("a", "1", "b", "G")
        (path,) = (tmp_path / "exports").glob("*path*.gif")
        screen = app.explorer
        frames = screen.decoder.path(screen.path.ends["a"], screen.path.ends["b"], PATH_FRAMES)[ping_pong(PATH_FRAMES)]
        with Image.open(path) as gif:
            saved = [frame.convert("L").tobytes() for frame in ImageSequence.Iterator(gif)]
            assert gif.info["loop"] == 0
            record = json.loads(gif.info["comment"])  # what drew it, as a PNG records it
        assert saved == [to_image(frame, GIF_SCALE).tobytes() for frame in frames], "the GIF's frames: the path's"
        ends = screen.path.ends
        assert record["z"] == [list(ends["a"].z), list(ends["b"].z)] and record["class"] == [0, 1]
        assert record["sha256"] == screen.checkpoint.sha256 and record["path"]["frames"] == PATH_FRAMES

        # 2. p plays the path; any key stops it
        await resize(app, pilot, 120, 40)
        await settle(app, pilot)
        await pilot.press("a", "8", "b", "p")
        player = screen.playback.player
        frames = screen.decoder.path(screen.path.ends["a"], screen.path.ends["b"], PATH_FRAMES)
        assert torch.equal(player.frames, frames), "p plays the path's frames"
        await wait_until(pilot, lambda: player.count >= 4, "four frames on screen")
        shown = screen.query_one("#image", ImageView).pixels
        assert any(torch.equal(shown, frame) for frame in frames), "a frame of the path in the preview"
        z = list(screen.state.z)
        await pilot.press("x")  # would set z4 to 0; while playing it only stops the playback
        await settle(app, pilot)
        assert screen.playback is None and screen.state.z == z, "x only stops the playback"
        assert torch.equal(screen.query_one("#image", ImageView).pixels, screen.frame.image)
