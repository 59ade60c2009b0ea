"""`vae-tui explore --image FILE`: a user's picture made grey, fitted, centred, inverted when dark on light."""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

import train.image_file
from models import load_checkpoint
from tests.helpers import EPS, png_header
from vae_tui.app import create_app
from vae_tui.commands.explore import pretrained_path
from vae_tui.user_image import best_class, load_user_image
from vae_tui.widgets.image_view import ImageView


def picture(path: Path, size: tuple[int, int], background: str, shape: str, mode: str = "RGB") -> Path:
    """A filled rectangle in the middle half of a picture; saved as PNG or JPEG by the suffix."""
    image = Image.new(mode, size, background)
    w, h = size
    ImageDraw.Draw(image).rectangle([w // 4, h // 4, w - w // 4 - 1, h - h // 4 - 1], fill=shape)
    image.save(path)
    return path


def test_dark_on_light_is_inverted_and_light_on_dark_kept(tmp_path: Path) -> None:
    dark_on_light = load_user_image(picture(tmp_path / "a.png", (56, 56), "white", "black"))
    light_on_dark = load_user_image(picture(tmp_path / "b.png", (56, 56), "black", "white"))
    assert dark_on_light.shape == (28, 28) and torch.equal(dark_on_light, light_on_dark)
    assert dark_on_light[0, 0] == 0 and dark_on_light[14, 14] == 1  # light on dark, like the datasets
    kept = load_user_image(tmp_path / "a.png", invert=False)
    assert kept[0, 0] == 1 and kept[14, 14] == 0


def test_a_non_square_picture_is_fitted_with_its_aspect_and_centred(tmp_path: Path) -> None:
    pixels = load_user_image(picture(tmp_path / "wide.jpg", (280, 140), "black", "white", mode="L"))
    rows = (pixels > 0.5).any(1).nonzero().squeeze(1)  # the rectangle: the middle half of a 28 x 14 fit
    columns = (pixels > 0.5).any(0).nonzero().squeeze(1)
    assert columns.tolist() == list(range(7, 21))
    assert rows.tolist() == list(range(10, 18))  # rows 3.5-10.5 of the 14, centred: 7 rows down
    assert pixels[:7].max() < 0.1 and pixels[21:].max() < 0.1  # above and below: the border's dark level


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"not an image at all", "is not an image vae-tui can read"),
        (EPS, "is not an image vae-tui can read"),  # Ghostscript's input, named .png: never decoded
        (png_header(30_000, 30_000), "is 30000x30000, over 50 megapixels"),
        (None, "No such file"),
    ],
)
def test_bad_files_get_one_line(tmp_path: Path, run_cli: Callable, content: bytes | None, message: str) -> None:
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    run_cli("explore", "--pretrained", "vae", "--image", str(path)).assert_one_line_error(message)


def test_a_truncated_png_gets_one_line(tmp_path: Path, run_cli: Callable) -> None:
    path = picture(tmp_path / "cut.png", (200, 200), "black", "white")
    path.write_bytes(path.read_bytes()[:120])
    run_cli("explore", "--pretrained", "vae", "--image", str(path)).assert_one_line_error("cut.png")


def test_a_picture_over_the_pixel_limit_is_refused(
    tmp_path: Path, run_cli: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(train.image_file, "MAX_PIXELS", 100 * 100)
    path = picture(tmp_path / "big.png", (101, 100), "black", "white")
    run_cli("explore", "--pretrained", "vae", "--image", str(path)).assert_one_line_error("101x100", "megapixels")
    run_cli("explore", "--pretrained", "vae", "--no-invert").assert_one_line_error("--no-invert goes with --image")


@pytest.mark.usefixtures("truecolor")
async def test_the_explorer_starts_from_the_picture(tmp_path: Path, settle: Callable) -> None:
    checkpoint = load_checkpoint(pretrained_path("cvae"))
    pixels = load_user_image(picture(tmp_path / "mine.png", (90, 120), "white", "black"))
    app = create_app(checkpoint, "test", tmp_path / "exports", start_image=("mine.png", pixels))
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(app, pilot)
        screen, state = app.explorer, app.explorer.state
        label = best_class(checkpoint.model, pixels)
        mu, _ = checkpoint.model.encode(pixels.reshape(1, -1), torch.tensor([label]))
        assert state.label == label and state.z == pytest.approx(mu[0].tolist(), abs=1e-6)
        shown = screen.query_one("#image", ImageView).pixels
        assert torch.equal(shown[2:30, 2:30], pixels)
        assert str(screen.query_one("#preview-title").content).startswith("mine.png: original")
