"""The test-image picker (o): by class and paged; choosing one starts z from its encoding."""

from collections.abc import Callable

import pytest
import torch

from vae_tui.screens.picker import PAGE, PickerScreen
from vae_tui.widgets.image_view import ImageView
from vae_tui.widgets.thumbnails import Thumbnails

pytestmark = pytest.mark.usefixtures("truecolor")


async def test_picking_a_test_image_starts_from_its_encoding(make_app: Callable, settle: Callable) -> None:
    app = make_app("cvae")
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(app, pilot)
        await pilot.press("o")
        picker = app.screen
        assert isinstance(picker, PickerScreen) and picker.label == 0
        await pilot.press("3", "right", "right", "pagedown", "down")
        await pilot.pause()
        thumbnails = picker.query_one(Thumbnails)
        expected = 2 + PAGE + thumbnails.grid.columns  # two right, a page, a row down
        assert picker.position == expected and "page 2 of 5" in str(picker.query_one("#picker-title").content)
        atlas = app.explorer.checkpoint.atlas
        image = picker.by_class[3][expected]
        shown = atlas.images[picker.by_class[3][PAGE : 2 * PAGE]].float() / 255
        assert torch.equal(thumbnails.images, shown) and thumbnails.current == expected - PAGE
        await pilot.press("enter")
        await settle(app, pilot)
        state, model = app.explorer.state, app.explorer.checkpoint.model
        pixels = atlas.images[image].float() / 255
        mu, _ = model.encode(pixels.reshape(1, -1), torch.tensor([3]))
        assert state.label == 3 and state.z == pytest.approx(mu[0].tolist(), abs=1e-6)
        assert state.start == state.z  # backspace comes back to the image's encoding
        preview = app.explorer.query_one("#image", ImageView).pixels
        decoded = app.explorer.decoder.images(mu, torch.tensor([3]))[0]
        # at 100x32 the three take two columns, the edit below the original (vae_tui.screens.explorer.best_columns)
        assert torch.equal(preview[2:30, 2:30], pixels) and torch.allclose(preview[2:30, 32:60], decoded, atol=1e-6)
        assert torch.equal(preview[32:60, 2:30], app.explorer.frame.image)
        assert f"Test #{int(atlas.image_indices[image])}" in str(app.explorer.query_one("#preview-title").content)


async def test_escape_leaves_the_picker_without_a_change(make_app: Callable, settle: Callable) -> None:
    app = make_app("vae")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        z = list(app.explorer.state.z)
        await pilot.press("o", "right", "escape")
        await pilot.pause()
        assert app.screen is app.explorer and app.explorer.state.z == z and app.explorer.reference is None


async def test_a_click_on_a_thumbnail_picks_it(make_app: Callable, settle: Callable) -> None:
    app = make_app("vae")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("o", "5")
        await pilot.pause()
        picker = app.screen
        size = picker.query_one(Thumbnails).grid.size
        await pilot.click("#picker-images", offset=(size + 2, 2))  # the second thumbnail
        await settle(app, pilot)
        assert app.screen is app.explorer and app.explorer.state.label == 5
        assert app.explorer.reference.index == int(app.explorer.checkpoint.atlas.image_indices[picker.by_class[5][1]])
