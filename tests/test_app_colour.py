"""The explorer on a model of other images: a 32x32 RGB conv CVAE draws its preview, strips, map image, picker and
a user's picture in colour, lays itself out for 32 px images, and saves RGB PNGs."""

from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image

from models import Checkpoint, ModelConfig
from tests.helpers import untrained_checkpoint
from train.atlas import atlas_of
from vae_tui.app import create_app
from vae_tui.screens.picker import PickerScreen
from vae_tui.user_image import load_user_image
from vae_tui.widgets.image_view import ImageView
from vae_tui.widgets.thumbnails import Thumbnails


def colour_checkpoint() -> Checkpoint:
    """An untrained 3x32x32 conv CVAE of three classes with an atlas of 30 seeded random colour test images."""
    config = ModelConfig.for_images(3, 32, kind="cvae", arch="conv", hidden_dim=16, latent_dim=4, num_classes=3)
    checkpoint = untrained_checkpoint(config)
    checkpoint.class_names = ["red", "green", "blue"]
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (30, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.arange(30) % 3
    checkpoint.atlas = atlas_of(checkpoint.model, images.reshape(30, -1).float() / 255, labels, images)
    return checkpoint


def colours(widget: object) -> set[tuple[int, int, int]]:
    """The foreground colours of the half-block cells a widget draws."""
    found = set()
    for y in range(widget.size.height):
        for segment in widget.render_line(y):
            if segment.text.startswith("\u2580") and segment.style and segment.style.color:
                found.add(segment.style.color.triplet)
    return found


def coloured(found: set[tuple[int, int, int]]) -> bool:
    """Whether any of the colours is not a grey."""
    return any(len(set(colour)) > 1 for colour in found)


async def test_a_colour_model_is_drawn_in_colour_everywhere(tmp_path: Path, settle: Callable) -> None:
    checkpoint = colour_checkpoint()
    app = create_app(checkpoint, "colour", tmp_path / "exports")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        screen = app.explorer
        assert screen.frame.image.shape == (3, 32, 32) and screen.layout_plan.preview == 32
        assert coloured(colours(screen.query_one("#image", ImageView)))
        strips = [view for view in screen.query(Thumbnails) if view.display and view.size.area]
        assert strips and all(coloured(colours(view)) for view in strips)
        await pilot.press("s")
        await settle(app, pilot)
        (saved,) = (tmp_path / "exports").glob("*.png")
        assert Image.open(saved).mode == "RGB" and Image.open(saved).size == (288, 288)  # 32 px at scale 9
        await pilot.press("m", "i")
        await settle(app, pilot)
        assert coloured(colours(screen.query_one("#map-image", ImageView)))  # the test image nearest the cursor
        await pilot.press("m", "o")
        await pilot.pause()
        assert isinstance(app.screen, PickerScreen)
        assert coloured(colours(app.screen.query_one(Thumbnails)))


async def test_a_user_picture_keeps_its_colour_at_the_model_s_size(tmp_path: Path, settle: Callable) -> None:
    """A 90x60 picture, red left and blue right, fitted to 32x32 for an RGB model: still red and blue, the aspect kept
    on a canvas of its border's mean colour; the explorer starts from its encoding and shows it beside its
    reconstruction."""
    picture = Image.new("RGB", (90, 60), (255, 0, 0))
    picture.paste((0, 0, 255), (45, 0, 90, 60))
    picture.save(tmp_path / "mine.png")
    pixels = load_user_image(tmp_path / "mine.png", side=32, channels=3)
    assert pixels.shape == (3, 32, 32)
    assert pixels[:, 16, 2].tolist() == [1.0, 0.0, 0.0] and pixels[:, 16, 29].tolist() == [0.0, 0.0, 1.0]
    assert pixels[1].max() == 0  # no green anywhere: the canvas is the border's mean, purple
    app = create_app(colour_checkpoint(), "colour", tmp_path / "exports", ("mine.png", pixels))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        assert app.explorer.reference is not None
        assert torch.equal(app.explorer.reference.original, pixels)
        assert (255, 0, 0) in colours(app.explorer.query_one("#image", ImageView))
