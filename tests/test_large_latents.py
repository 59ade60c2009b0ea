"""Large latents (128, 512 dimensions): the latent panel sorted by KL with S, nudges, the traversal, the map and the
a -> b path at 512, and the title of a model written elsewhere."""

import argparse
import copy
import functools
from collections.abc import Callable
from pathlib import Path

import torch
from textual.pilot import Pilot

from models import Checkpoint, ModelConfig
from models.outside import OutsideVAE
from tests import outside_models
from tests.helpers import resize, untrained_checkpoint
from train.atlas import atlas_of
from vae_tui.app import ExplorerApp, create_app
from vae_tui.outside import outside_checkpoint
from vae_tui.state import ExplorerState
from vae_tui.widgets.image_view import ImageView
from vae_tui.widgets.latent_panel import LatentPanel
from vae_tui.widgets.map_view import MapView
from vae_tui.widgets.thumbnails import Thumbnails
from vae_tui.widgets.title_bar import TitleBar, fit, title_variants


@functools.cache
def large_checkpoint(latent_dim: int) -> Checkpoint:
    """An untrained MLP VAE (hidden 16) of latent_dim whose every fourth dimension is active, each by another
    gain on its mu (so their KLs differ), with an atlas of 100 seeded random images; the others are inactive."""
    checkpoint = untrained_checkpoint(ModelConfig(latent_dim=latent_dim, hidden_dim=16, input_dim=784))
    gains = torch.ones(latent_dim, 1)
    gains[::4] = torch.linspace(3, 12, len(gains[::4]))[torch.randperm(len(gains[::4]))].unsqueeze(1)
    with torch.no_grad():
        checkpoint.model.to_mu.weight.mul_(gains)
    images = torch.randint(0, 256, (100, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    checkpoint.atlas = atlas_of(checkpoint.model, images.reshape(100, -1).float() / 255, torch.arange(100) % 10, images)
    return checkpoint


def explorer(checkpoint: Checkpoint, tmp_path: Path, source: str = "runs/large/best.safetensors") -> ExplorerApp:
    return create_app(checkpoint, source, tmp_path / "exports")


def drawn_rows(panel: LatentPanel) -> list[str]:
    return [panel.render_line(y).text.rstrip() for y in range(panel.size.height)]


def latent_title(app: ExplorerApp) -> str:
    return str(app.explorer.query_one("#latent-title").render())


def test_by_kl_lists_active_dimensions_first_then_the_largest_kl() -> None:
    variance = torch.tensor([0.5, 0.001, 0.9, 0.3, 0.002])
    kl = torch.tensor([1.0, 3.0, 2.0, 1.0, 0.0])  # dimension 1 is inactive: below every active one all the same
    state = ExplorerState(torch.zeros(1, 5), conditional=False, variance=variance, kl=kl)
    assert state.shown == [0, 1, 2, 3, 4]
    assert state.toggle_order() and state.shown == [2, 0, 3, 1, 4]  # ties (0 and 3) by number
    state.select_dimension(4)
    assert state.toggle_inactive() and state.shown == [2, 0, 3]
    assert state.selected == 3  # the active dimension on the nearest row, not the nearest number (which is 2)
    assert state.toggle_order() and state.shown == [0, 2, 3] and state.selected == 3
    assert not ExplorerState(torch.zeros(1, 5), conditional=False).toggle_order()  # no KL: nothing to sort by


async def test_S_sorts_the_latent_panel_by_kl_and_selection_follows_the_order(tmp_path: Path, settle: Callable) -> None:
    checkpoint = large_checkpoint(128)
    kl, active = checkpoint.atlas.kl.tolist(), (checkpoint.atlas.variance > 0.01).tolist()
    by_kl = sorted(range(128), key=lambda d: (not active[d], -kl[d], d))
    app = explorer(checkpoint, tmp_path)
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(app, pilot)
        state, panel = app.explorer.state, app.explorer.query_one(LatentPanel)
        assert latent_title(app) == "Latent z · step 0.25"
        await pilot.press("S")
        await settle(app, pilot)
        assert state.by_kl and state.shown == by_kl and latent_title(app) == "Latent z by KL · step 0.25"
        row = by_kl.index(state.selected)
        top = panel.scroll_offset.y
        assert drawn_rows(panel) == [panel.line_text(d) for d in by_kl[top : top + panel.size.height]]
        assert drawn_rows(panel)[row - top].startswith(f"> z{state.selected} ")
        await pilot.press("down")
        assert state.selected == by_kl[row + 1]
        await pilot.press("up", "up")
        assert state.selected == by_kl[row - 1]
        z, selected = list(state.z), state.selected
        await pilot.press("right")
        await settle(app, pilot)
        assert state.z[selected] == z[selected] + 0.25 and state.z[:selected] == z[:selected]
        assert any(
            line.startswith(f"> z{selected} ") and f"{z[selected] + 0.25:+6.2f}" in line for line in drawn_rows(panel)
        )
        await pilot.press("S")
        await settle(app, pilot)
        assert not state.by_kl and state.shown == list(range(128)) and state.selected == selected
        assert latent_title(app) == "Latent z · step 0.25"
        await pilot.press("v", "S")  # hidden and sorted: the title says both in 28 columns
        await settle(app, pilot)
        assert state.shown == by_kl[:32] and latent_title(app) == "32 active by KL · step 0.25"


async def s_says_why_it_cannot_sort(
    app: ExplorerApp, pilot: Pilot, said: str, settle: Callable, wait_until: Callable, toast_shows: Callable
) -> None:
    """S on a model without an atlas: the action is not offered (out of the footer, the help and the palette), and S
    says why in a toast, leaving the panel unsorted."""
    await settle(app, pilot)
    assert not app.explorer.offers("sort_by_kl"), "S not offered"
    await pilot.press("S")
    await wait_until(pilot, lambda: toast_shows(app, said), "a toast saying why")
    assert not app.explorer.state.by_kl and "by KL" not in latent_title(app), "the panel unsorted"


async def test_S_says_why_an_older_checkpoint_cannot_sort_without_an_atlas(
    tmp_path: Path, settle: Callable, wait_until: Callable, toast_shows: Callable
) -> None:
    """A checkpoint written before the atlas, at 100x32: s_says_why_it_cannot_sort, the toast saying it has no
    atlas."""
    app = explorer(untrained_checkpoint(ModelConfig(latent_dim=128, hidden_dim=16, input_dim=784)), tmp_path)
    async with app.run_test(size=(100, 32), notifications=True) as pilot:
        await s_says_why_it_cannot_sort(app, pilot, "has no atlas", settle, wait_until, toast_shows)


async def test_at_512_dimensions_the_map_moves_z_in_its_plane_a_nudge_redraws_and_a_and_b_mark_a_path_that_p_plays(
    tmp_path: Path, settle: Callable, wait_until: Callable
) -> None:
    """A model of 512 dimensions, opened at 120x40, one session, each part beginning where the one before left off:
    1. the map opens (x PC1, y PC2), and its cursor moves z in the principal plane: along its x axis, the part of z
       off the plane unchanged;
    2. back from the map at 100x32 and at the start point: 100 rows down the panel scrolls to keep the selection in
       view, and a nudge redraws the image (the decoder's, exactly), the row and the traversal;
    3. a and b mark the ends of a path of 512-dimensional z's, which the strip shows and p plays; x stops it."""
    app = explorer(large_checkpoint(512), tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        # 1. the map
        await settle(app, pilot)
        screen = app.explorer
        await pilot.press("m")
        await settle(app, pilot)
        map_view = screen.query_one(MapView)
        assert screen.map.shown and map_view.size.area, "the map shown"
        assert str(screen.query_one("#map-title").render()).startswith("Map · x PC1 · y PC2")
        plane = screen.map.axes.plane(screen.state.selected)
        assert plane.axes.shape == (2, 512)
        await pilot.press("l")  # z = 0 lies above the view: the first move brings it in
        await settle(app, pilot)
        (u, v), off_plane = plane.coordinates(screen.state.z), torch.tensor(screen.state.z) - plane.origin
        await pilot.press("l", "l")
        await settle(app, pilot)
        u2, v2 = plane.coordinates(screen.state.z)
        assert u2 > u and abs(v2 - v) < 1e-4, "the cursor moves along the plane's x axis"
        moved = torch.tensor(screen.state.z) - plane.origin
        residue = lambda d: d - (d @ plane.axes.T) @ plane.axes  # noqa: E731  the part off the plane
        torch.testing.assert_close(residue(moved), residue(off_plane), rtol=0, atol=1e-4)

        # 2. a nudge
        await pilot.press("m", "backspace")  # out of the map, back to the start point
        await resize(app, pilot, 100, 32)
        await settle(app, pilot)
        state, panel, view = screen.state, screen.query_one(LatentPanel), screen.query_one("#image", ImageView)
        assert not screen.map.shown and state.z == state.start
        await pilot.press(*["J"] * 20)  # 100 rows on: the panel scrolls to keep the selection in view
        await settle(app, pilot)
        selected, before = state.selected, view.pixels
        assert f"> z{selected} " in "\n".join(drawn_rows(panel)), "the selection in view"
        await pilot.press("L")
        await settle(app, pilot)
        value = state.z[selected]
        assert value == state.start[selected] + 1.25 and not torch.equal(view.pixels, before), "L: the image redrawn"
        model = screen.checkpoint.model
        with torch.no_grad():
            expected = torch.sigmoid(model.decode(torch.tensor([state.z]))).view(28, 28)
        torch.testing.assert_close(screen.frame.image, expected, rtol=0, atol=1e-6)
        assert panel.line_text(selected) in drawn_rows(panel) and f"{value:+6.2f}" in panel.line_text(selected)
        traversal = screen.query_one("#traversal", Thumbnails)
        assert traversal.caption.startswith(f"Traversal of z{selected} ") and traversal.images.shape == (7, 28, 28)

        # 3. a path a -> b, played
        await pilot.press("a", "r", "b")
        await settle(app, pilot)
        await wait_until(pilot, lambda: traversal.caption.startswith("Path a"), "the path a -> b in the strip")
        assert len(screen.path.ends["b"].z) == 512 and list(screen.path.ends["b"].z) == screen.state.z, "b: this z"
        await pilot.press("p")
        await wait_until(pilot, lambda: screen.playback is not None and screen.playback.player.count >= 3, "frames")
        await pilot.press("x")
        assert screen.playback is None, "x stops the playback"


_TRAINED: list[tuple[torch.nn.Module, torch.Tensor]] = []


def trained_tanh_vae() -> torch.nn.Module:
    """tests/outside_models.py's trained tanh VAE (30 Adam steps), trained once a process: a copy of it, and torch's
    global generator left as the training leaves it (it seeds first: every training gives the same of both)."""
    if not _TRAINED:
        _TRAINED.append((outside_models.trained(), torch.get_rng_state()))
    model, generator = _TRAINED[0]
    torch.set_rng_state(generator)
    return copy.deepcopy(model)


def outside() -> Checkpoint:
    """A model written elsewhere: the trained tanh VAE behind its own OutsideVAE (whose thread an explorer closes)."""
    model = OutsideVAE(trained_tanh_vae(), decoder_output="tanh")
    return outside_checkpoint(model, argparse.Namespace(class_names=None))


def test_the_title_of_a_model_written_elsewhere_says_what_it_is_and_where_its_code_is() -> None:
    variants = title_variants(outside(), "--code tests/outside_models.py:trained")
    assert variants[0] == "vae-tui  VAE (your code) · 16x16 RGB · latent 8 · --code tests/outside_models.py:trained"
    assert fit(variants, 78) == "VAE (your code) · 16x16 RGB · latent 8 · --code outside_models.py:trained"
    assert fit(variants, 54) == "VAE (your code) · 16x16 RGB · latent 8"  # 80 columns beside the 256-colour mark
    assert not any("epoch" in v or "loss" in v or "outside" in v.replace("outside_models", "") for v in variants)
    module = title_variants(outside(), "vae_tui.explore(TanhVAE)")
    assert module[0].endswith(" · latent 8 · vae_tui.explore(TanhVAE)")


async def test_a_model_written_elsewhere_shows_its_title_bar_at_80_columns_and_S_says_it_needs_test_images(
    tmp_path: Path, settle: Callable, wait_until: Callable, toast_shows: Callable, truecolor: None
) -> None:
    """A model written elsewhere (--code, no --data), one session: 1. at 80 columns the title bar says what it is and
    where its code is, whole; 2. at 100x32, s_says_why_it_cannot_sort, the toast saying to start with --code and
    --data DIR."""
    app = explorer(outside(), tmp_path, "--code tests/outside_models.py:trained")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await settle(app, pilot)
        title = app.explorer.query_one(TitleBar).render().plain
        assert title == "VAE (your code) · 16x16 RGB · latent 8 · --code outside_models.py:trained"

        await resize(app, pilot, 100, 32)
        said = "Sorting by KL (S) needs test images to encode: start with --code and --data DIR"
        await s_says_why_it_cannot_sort(app, pilot, said, settle, wait_until, toast_shows)
