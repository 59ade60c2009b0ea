"""What a format 3 atlas adds to the explorer (the map coloured by a value, the test image under the cursor, the
nearest test images, a picked image's fit), and how a format 2 atlas (the bundled weights) does without it."""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from models import load_checkpoint, save_checkpoint
from train.atlas import atlas_of
from vae_tui.app import create_app
from vae_tui.screens.explorer import ordinal
from vae_tui.widgets.map_view import RAMP, ramp_steps


@pytest.fixture(scope="module")
def format_3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small CVAE with a format 3 atlas over 300 random test images of 10 classes."""
    from tests.conftest import _make_checkpoint

    checkpoint = _make_checkpoint("cvae")
    generator = torch.Generator().manual_seed(3)
    images = (torch.rand(300, 28, 28, generator=generator) * 255).to(torch.uint8)
    labels = torch.arange(300) % 10
    checkpoint.atlas = atlas_of(checkpoint.model, images.reshape(300, -1).float() / 255, labels, images)
    return save_checkpoint(tmp_path_factory.mktemp("extras") / "best.safetensors", checkpoint)


def test_ordinals() -> None:
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 40, 100, 101)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "40th", "100th", "101st"
    ]  # fmt: skip


def test_ramp_steps_spread_the_middle_and_keep_the_extremes_at_the_ends() -> None:
    values = torch.cat([torch.linspace(0, 1, 98), torch.tensor([-1000.0, 1000.0])])
    steps, edges = ramp_steps(values)
    assert len(edges) == len(RAMP) + 1 and steps.min() == 0 and steps.max() == len(RAMP) - 1
    assert len(set(steps[:98].tolist())) == len(RAMP)  # the outliers do not squeeze the rest into one colour
    assert ramp_steps(torch.ones(5))[0].tolist() == [0] * 5  # one value: one colour, no division by zero


async def test_c_colours_the_map_by_value_and_error_and_i_shows_the_test_image_under_the_cursor(
    format_3: Path, tmp_path: Path, settle: Callable
) -> None:
    checkpoint = load_checkpoint(format_3)
    assert checkpoint.atlas.has_losses
    app = create_app(checkpoint, str(format_3), tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        screen = app.explorer
        await pilot.press("m", "c")
        await pilot.pause()
        legend = str(screen.query_one("#legend").render())
        assert screen.map.colouring == "value" and legend.startswith(f"colour: z{screen.state.selected}")
        map_view = screen.query_one("MapView")
        assert map_view.ramp and int(map_view.labels.max()) < len(RAMP)
        await pilot.press("c")
        await pilot.pause()
        assert screen.map.colouring == "error" and "colour: error" in str(screen.query_one("#legend").render())
        expected, _ = ramp_steps(checkpoint.atlas.recon)
        assert torch.equal(map_view.labels, expected)
        await pilot.press("c")
        await pilot.pause()
        assert screen.map.colouring == "class" and not map_view.ramp
        await pilot.press("i")
        await pilot.pause()
        plane = screen.map.axes.plane(screen.state.selected)
        image = screen.map.axes.nearest_image(plane, *plane.coordinates(screen.state.z))
        title = str(screen.query_one("#map-image-title").render())
        assert title.startswith(f"Test #{int(checkpoint.atlas.image_indices[image])} · ")
        shown = screen.query_one("#map-image").pixels
        assert torch.equal(shown, checkpoint.atlas.images[image].float() / 255)
        z = list(screen.state.z)
        await pilot.press("right", "right", "right")  # the image follows the cursor, z moves, nothing jumps
        await pilot.pause()
        assert screen.state.z != z and screen.reference is None


async def test_n_shows_the_nearest_test_images_and_clicking_one_starts_there_with_its_fit(
    format_3: Path, tmp_path: Path, settle: Callable, wait_until: Callable, toast_shows: Callable
) -> None:
    checkpoint = load_checkpoint(format_3)
    app = create_app(checkpoint, str(format_3), tmp_path)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await settle(app, pilot)
        screen = app.explorer
        await pilot.press("n")
        await pilot.pause()
        atlas = checkpoint.atlas
        distances = ((atlas.mu - torch.tensor(screen.state.z)) ** 2).sum(1)
        nearest = distances.argsort()[:7]
        strip = screen.query_one("#traversal")
        assert "nearest to z" in strip.caption
        expected = atlas.images[nearest].float() / 255  # format 3: every point has its image, in the same order
        assert torch.equal(strip.images, expected)
        strip.post_message(strip.Picked(strip, 0))
        await wait_until(pilot, lambda: screen.reference is not None, "the nearest image picked")
        index = int(atlas.indices[nearest[0]])
        assert screen.reference.index == index
        share = atlas.loss_percentile(atlas.loss[nearest[0]].item())
        await wait_until(pilot, lambda: toast_shows(app, f"Test #{index}: loss "), "the fit notice")
        assert toast_shows(app, f"fits like the {ordinal(round(share))} percentile")


async def test_a_format_2_atlas_says_what_needs_format_3_and_n_on_the_map_says_the_strip_is_hidden(
    make_app: Callable, settle: Callable, wait_until: Callable, toast_shows: Callable
) -> None:
    """The bundled CVAE (a format 2 atlas, kept bit for bit) in one explorer: on the map, c cycles class -> value ->
    class with a notice that error colouring needs per-image losses (and how to add them); n on the map says to
    leave it first and shows no nearest strip; a picked image's fit notice says no test images' losses are
    stored."""
    app = make_app("cvae")
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await settle(app, pilot)
        await pilot.press("m", "c", "c")  # class -> value -> (no error colouring) class
        await wait_until(pilot, lambda: toast_shows(app, "no per-image losses"), "the notice")
        assert toast_shows(app, "python -m train.bundle CKPT OUT") and app.explorer.map.colouring == "class"
        await pilot.press("n")
        await wait_until(pilot, lambda: toast_shows(app, "leave the map (m) first"), "the notice of n on the map")
        assert not app.explorer.nearest_strip, "n on the map shows no nearest strip"
        await pilot.press("escape", "o", "enter")
        await wait_until(pilot, lambda: toast_shows(app, "stores no test images' losses"), "the fit notice")


def test_a_picked_image_s_three_pictures_take_the_columns_that_draw_them_largest() -> None:
    from vae_tui.screens.explorer import best_columns

    assert best_columns((28, 28), 140, 60) == 3  # a wide preview: side by side
    assert best_columns((28, 28), 30, 28) == 2  # 80x24: two, and one below (14 px a picture, not 9)
    assert best_columns((28, 28), 30, 120) == 1  # tall and narrow: one above the other


async def test_at_80x24_a_picked_image_is_drawn_two_by_two(make_app: Callable, settle: Callable) -> None:
    from train.grids import grid

    app = make_app("cvae")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("o", "enter")
        await settle(app, pilot)
        screen = app.explorer
        reference, shown = screen.reference, screen.query_one("#image").pixels
        expected = grid(torch.stack([reference.original, reference.decoded, screen.frame.image]), 2)
        assert torch.equal(shown, expected)


async def test_the_title_bar_s_news_stays_whole_at_60_columns(make_app: Callable, settle: Callable) -> None:
    app = make_app("cvae")
    async with app.run_test(size=(60, 20)) as pilot:
        await settle(app, pilot)
        title = app.explorer.query_one("TitleBar")
        title.flash("reloaded epoch 12")
        await pilot.pause()
        shown = title.render().plain
        assert shown.endswith("reloaded epoch 12") and len(shown) <= title.content_size.width
