"""The one image opener: allowed raster formats only, regular files only, sizes checked from the header."""

import os
import subprocess
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import EpsImagePlugin, Image

from tests.helpers import EPS, png_header
from train.image_file import ImageRefused, open_image
from vae_tui.run_view import grid_pixels


def refused(path: Path, **limits: int) -> str:
    """The one-line message open_image refuses path with (decoding it inside the block)."""
    with pytest.raises(ImageRefused) as caught, open_image(path, **limits) as image:
        image.load()
    message = str(caught.value)
    assert "\n" not in message and "\x1b" not in message
    return message


def test_an_eps_named_png_never_reaches_ghostscript(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow would open this file with its EPS plugin, whose load() runs Ghostscript: the opener never tries it."""
    started: list = []
    eps_opened: list = []

    def no_process(*args: object, **kwargs: object) -> None:
        started.append(args)
        raise AssertionError("a process was started")

    original_open = EpsImagePlugin.EpsImageFile._open
    monkeypatch.setattr(subprocess, "Popen", no_process)
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", no_process)
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", lambda self: eps_opened.append(1) or original_open(self))
    cat = tmp_path / "cat.png"
    cat.write_bytes(EPS)
    with Image.open(cat) as image:  # the test can tell: Pillow on its own picks the EPS plugin by content
        assert image.format == "EPS" and eps_opened
    eps_opened.clear()
    assert "is not an image vae-tui can read" in refused(cat)
    assert not eps_opened and not started


@pytest.mark.parametrize("kind", ["ICO", "ICNS", "TGA", "XBM"])
def test_formats_off_the_allow_list_are_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "picture.png"
    Image.new("RGB" if kind != "XBM" else "1", (32, 32)).save(path, format=kind)
    assert "is not an image vae-tui can read" in refused(path)


@pytest.mark.parametrize("kind", ["PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "PPM"])
def test_allowed_formats_open_whatever_their_name(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "picture.dat"
    Image.new("RGB", (20, 10), (200, 100, 50)).save(path, format=kind)
    with open_image(path) as image:
        assert image.format == kind and image.convert("RGB").size == (20, 10)


def in_thread(call: Callable[[], object], seconds: float = 10.0) -> object:
    """call()'s result or exception, or a failure if it has not returned within seconds (a daemon thread)."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as e:  # noqa: BLE001 - handed to the test
            outcome.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still blocked after {seconds} s"
    return outcome[0]


def test_special_files_are_refused_without_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "grid.png"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.png"
    zero.symlink_to("/dev/zero")
    for path in (fifo, zero, tmp_path):
        outcome = in_thread(lambda path=path: refused(path))
        assert isinstance(outcome, str) and "is not a file" in outcome
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert "is empty" in refused(empty)
    assert "No such file" in refused(tmp_path / "missing.png")


@pytest.mark.parametrize("side", [10_000, 30_000])  # past Pillow's warning (89 MP) and its error (179 MP)
def test_a_header_claiming_too_many_pixels_is_refused_before_decoding_and_silently(tmp_path: Path, side: int) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(side, side))
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        assert f"is {side}x{side}, over 50 megapixels" in refused(path)
        assert grid_pixels(path) is None  # a run folder's grid: skipped, not a crash
    assert not shown


def test_a_file_over_the_byte_cap_is_refused_by_its_size(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.effect_noise((64, 64), 50).save(path)
    assert "larger than an image vae-tui reads" in refused(path, max_bytes=100)


@pytest.mark.parametrize("cut", [60, 200])
def test_damaged_images_are_one_line(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "cut.png"
    Image.effect_noise((64, 64), 50).save(path)
    path.write_bytes(path.read_bytes()[:cut])
    assert "damaged or truncated" in refused(path)
