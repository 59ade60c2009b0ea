"""Snapshots of the explorer at fixed sizes with the bundled weights; z is set by keys, so it is seeded."""

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from models import load_checkpoint
from vae_tui.app import ExplorerApp, create_app
from vae_tui.commands.explore import pretrained_path

pytestmark = pytest.mark.usefixtures("truecolor")


def app(kind: str) -> ExplorerApp:
    return create_app(load_checkpoint(pretrained_path(kind)), f"bundled pretrained {kind.upper()}", Path("exports"))


@pytest.fixture
def keys_then_frame(settle: Callable) -> Callable:
    """keys_then_frame(*keys): press keys, then wait until the newest decoded frame is drawn (decoding runs in a
    thread)."""

    def make(*keys: str) -> Callable:
        async def run_before(pilot: Pilot) -> None:
            await pilot.press(*keys)
            await settle(pilot.app, pilot)

        return run_before

    return make


def test_cvae_at_80x24(snap_compare: Callable, keys_then_frame: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CVAE as it opens at 80x24 without COLORTERM, the smallest supported size: the header reads "bundled CVAE
    · fashion-mnist · epoch 20 · loss 238.7" with "256 colours · ? to fix" on the right (no toast); class 0
    T-shirt/top, z all 0; the latent panel scrolled to z6-z19 so the start selection z16 (marked >) is in view,
    each row ending in its mean-KL level (z16's the largest, a full block) or a dimmed · for the inactive z9, z11,
    z13, z17 and z19 (the scrollbar's thumb beside z10); the preview at 1x; below, the traversal of z16 alone with
    "(t: other strip)", its 10 px thumbnails labelled -3 ... +3 with [0] marked; the compact footer whole, "↑↓ dim"
    to "q quit" and "^p palette"."""
    monkeypatch.delenv("COLORTERM")
    assert snap_compare(app("cvae"), terminal_size=(80, 24), run_before=keys_then_frame())


def test_cvae_nudged_at_120x40(snap_compare: Callable, keys_then_frame: Callable) -> None:
    """The CVAE at 120x40 after L, 7, j: z16 (the start selection) nudged to +1.25, class 7 Sneaker, then z17
    selected, dimmed and marked · as inactive like z0, z1, z4, z9, z11, z13 and z19; the preview at 1x (a larger
    one would leave the strips thumbnails under 10 px); below, the traversal of z17 (16 px thumbnails, -3 ... +3
    with [0] marked) and every class at this z (10 px, digits 0-9, [7] marked)."""
    assert snap_compare(app("cvae"), terminal_size=(120, 40), run_before=keys_then_frame("L", "7", "j"))


def test_cvae_at_200x60(snap_compare: Callable, keys_then_frame: Callable) -> None:
    """The CVAE as it opens at 200x60: the preview at 3x (84x42 cells); beside it the class grid, three columns of
    18 px thumbnails labelled "0 T-shirt/top" to "9 Ankle boot" with [0 T-shirt/top] marked; below, the traversal of
    z16 at 26 px, -3 ... +3 with [0] marked; every empty area black, like the images' background."""
    assert snap_compare(app("cvae"), terminal_size=(200, 60), run_before=keys_then_frame())


def test_vae_class_centroid(snap_compare: Callable, keys_then_frame: Callable) -> None:
    """The VAE at 100x32 on the class 8 Bag centroid, the selection moved down twice from z4 (the start) to z6, an
    inactive dimension (marked ·, like z1, z3, z10, z11, z14, z15 and z17; z13 has the largest KL level); the
    preview at 1x; below, the traversal of z6 in 13 px thumbnails, -3 ... +3 with [0] marked (z6 is +0.02)."""
    assert snap_compare(app("vae"), terminal_size=(100, 32), run_before=keys_then_frame("8", "j", "j"))


def test_help_screen(snap_compare: Callable, keys_then_frame: Callable) -> None:
    """The help over the VAE at 100x32 with truecolor on, so without the colour hint: the keys from up / k (and /,
    after 0-9; S, sort by KL, after v) to o with what they do, the rest (m, the map's with c, i and n, the
    interpolation's, the app's) further down, the scrollbar's thumb near the top of the box's right edge and
    "up/down, pgup/pgdn: scroll · escape: close" in its bottom border; under the box, the traversal's labels with
    [+1] marked (z4 starts at +0.72)."""
    assert snap_compare(app("vae"), terminal_size=(100, 32), run_before=keys_then_frame("question_mark"))


def test_map_at_80x24(snap_compare: Callable, keys_then_frame: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    """The VAE's map at 80x24 without COLORTERM after m: the latent panel on the left (class list hidden), then
    "Map · x PC1 · y PC2" highlighted (it has the keys) over the scatter of the 2,000 stored encodings in the ten
    class colours (trousers yellow and dresses purple to the right, T-shirts red below them, sneakers olive to the
    upper left, ankle boots teal below), the current z (the T-shirt/top centroid) marked by a black + on white among
    the red T-shirts, a faint grey line through the empty cells of its row and a tick at its column on the top and
    bottom rows where those are empty; on the right "Image" with the decoded image shrunk to 16 px and the legend,
    0 T-shirt/top in reverse video."""
    monkeypatch.delenv("COLORTERM")
    assert snap_compare(app("vae"), terminal_size=(80, 24), run_before=keys_then_frame("m"))


def test_map_latent_axes_at_120x40(snap_compare: Callable, keys_then_frame: Callable) -> None:
    """The VAE's map at 120x40 after m, A, L, L, K: latent axes, "Map · x z4 · y z0 · A: next y axis · tab: latent
    panel"; the cursor moved ten steps right and five up, so z4 reads +2.07 and z0 +0.53 in the latent panel and the +
    sits right of the cloud's middle, a faint grey line through the empty cells of its row and ticks at its column
    on the top and bottom rows; beside the map the decoded image at 28 px and the legend."""
    assert snap_compare(app("vae"), terminal_size=(120, 40), run_before=keys_then_frame("m", "A", "L", "L", "K"))


def test_picker_at_100x32(snap_compare: Callable, keys_then_frame: Callable) -> None:
    """The picker over the CVAE at 100x32 after o, 3, right, right: "Start from a test image" in the border,
    "Class 3 Dress · page 1 of 5 · image 3 of 50" above two rows of five dress thumbnails labelled with their
    test-set indices, the third, [#32], marked; the keys' hint at the bottom."""
    assert snap_compare(app("cvae"), terminal_size=(100, 32), run_before=keys_then_frame("o", "3", "right", "right"))


def test_picked_image_and_path_at_120x40(snap_compare: Callable, keys_then_frame: Callable) -> None:
    """The CVAE at 120x40 after a (z = 0, class 0 marked), o, 7, enter (test image #9, a sneaker, picked), b:
    the preview titled "Test #9: original · reconstruction · edit" with the three sneakers in a grey frame; the
    strip captioned "Path a (0 T-shirt/top) -> b (7 Sneaker) · p: play · G: GIF · escape: clear" shows seven
    images from a T-shirt to the sneaker, labelled a, .17 ... .83, b; under it every class at this z, [7]
    marked. One notice, "Interpolation / Marked b: 7 Sneaker, |z| 2.45", at the top left from the row under the
    title bar, over the class list and the latent panel: it replaced the picked image's fit and a's mark, and covers
    neither the preview nor the strips."""
    keys = ("a", "o", "7", "enter", "b")
    assert snap_compare(app("cvae"), terminal_size=(120, 40), run_before=keys_then_frame(*keys))
