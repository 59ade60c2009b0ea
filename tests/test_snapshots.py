"""Snapshots of the explorer at fixed sizes with the bundled weights; z is set by keys, so it is seeded."""

from pathlib import Path

import pytest

from models import load_checkpoint
from tests.test_app import settle
from vae_tui.app import create_app
from vae_tui.commands.explore import pretrained_path


@pytest.fixture(autouse=True)
def truecolor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLORTERM", "truecolor")


def app(kind: str):
    return create_app(load_checkpoint(pretrained_path(kind)), f"bundled pretrained {kind.upper()}", Path("exports"))


def keys_then_frame(*keys: str):
    """Press keys, then wait until the newest decoded frame is drawn (decoding runs in a thread)."""

    async def run_before(pilot) -> None:
        await pilot.press(*keys)
        await settle(pilot.app, pilot)

    return run_before


def test_cvae_at_80x24(snap_compare) -> None:
    """The CVAE as it opens in the smallest supported terminal: traversal strip only, latent panel scrolls."""
    assert snap_compare(app("cvae"), terminal_size=(80, 24), run_before=keys_then_frame())


def test_cvae_nudged_at_120x40(snap_compare) -> None:
    """z0 nudged by +1.25, class Sneaker: larger preview, both strips."""
    assert snap_compare(app("cvae"), terminal_size=(120, 40), run_before=keys_then_frame("L", "7", "j"))


def test_vae_class_centroid(snap_compare) -> None:
    """The VAE on the Bag centroid with the third dimension selected."""
    assert snap_compare(app("vae"), terminal_size=(100, 32), run_before=keys_then_frame("8", "j", "j"))


def test_help_screen(snap_compare) -> None:
    """Every key, listed."""
    assert snap_compare(app("vae"), terminal_size=(100, 32), run_before=keys_then_frame("question_mark"))
