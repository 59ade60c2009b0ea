"""The latent map: planes, the scatter, class colours, and map mode in the explorer through Pilot."""

import ctypes
import itertools
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image
from rich.color import Color, ColorSystem

from models import load_checkpoint
from models.atlas import MAX_POINTS, Atlas
from tests.helpers import ciede2000, srgb_to_lab
from train.atlas import build_atlas
from vae_tui.app import create_app
from vae_tui.commands.explore import pretrained_path
from vae_tui.exports import read_export
from vae_tui.latent_map import (
    CLASS_COLOURS,
    MANIFOLD_SIDE,
    MapAxes,
    Plane,
    View,
    latent_plane,
    nearest,
    pixel_of,
    point_images,
    principal_plane,
    scatter,
)
from vae_tui.screens.map_mode import MANIFOLD_PNG_SCALE
from vae_tui.screens.picker import PickerScreen
from vae_tui.state import Z_LIMIT
from vae_tui.widgets.image_view import ImageView
from vae_tui.widgets.map_view import MapView
from vae_tui.widgets.thumbnails import Thumbnails

pytestmark = pytest.mark.usefixtures("truecolor")


@pytest.mark.parametrize(
    ("lab1", "lab2", "expected"),
    [  # pairs 1, 7, 17 and 25 of Sharma et al.'s test data
        ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
        ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
        ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
        ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ],
)
def test_ciede2000_matches_the_published_pairs(lab1: tuple, lab2: tuple, expected: float) -> None:
    assert ciede2000(lab1, lab2) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("system", [ColorSystem.EIGHT_BIT, ColorSystem.TRUECOLOR])
def test_class_colours_stay_distinguishable(system: ColorSystem) -> None:
    shown = [Color.parse(c).downgrade(system).get_truecolor() for c in CLASS_COLOURS]
    labs = [srgb_to_lab(tuple(rgb)) for rgb in shown]
    assert min(ciede2000(a, b) for a, b in itertools.combinations(labs, 2)) >= 20
    assert all(lab[0] > 40 for lab in labs)  # each readable on the map's black


def test_planes_move_z_within_them_and_keep_the_rest() -> None:
    generator = torch.Generator().manual_seed(0)
    axes, _ = torch.linalg.qr(torch.randn(6, 2, generator=generator))
    plane = Plane(torch.randn(6, generator=generator), axes.T.contiguous(), ("PC1", "PC2"))
    z = torch.randn(6, generator=generator).tolist()
    moved = torch.tensor(plane.place(z, 0.5, -1.25))
    assert plane.project(moved[None])[0].tolist() == pytest.approx([0.5, -1.25], abs=1e-5)
    assert plane.coordinates(moved.tolist()) == pytest.approx((0.5, -1.25), abs=1e-5)  # one point, no torch
    assert plane.coordinates(z) == pytest.approx(tuple(plane.project(torch.tensor([z]))[0].tolist()), abs=1e-6)
    off_plane = torch.eye(6) - plane.axes.T @ plane.axes
    assert (off_plane @ moved).tolist() == pytest.approx((off_plane @ torch.tensor(z)).tolist(), abs=1e-5)
    latent = latent_plane(3, 1, 6)
    assert latent.place(z, 2.0, -2.0) == pytest.approx([z[0], -2.0, z[2], 2.0, z[4], z[5]])


def test_a_cursor_move_keeps_z_finite_and_within_its_limit() -> None:
    """Axes of 3e38 (the loader now refuses them; a plane from elsewhere must not either) made z NaN on one move."""
    plane = Plane(torch.zeros(4), torch.tensor([[3e38, 0, 0, 0], [0, -3e38, 3e38, 0]]), ("PC1", "PC2"))
    for u, v in [(0.5, -0.25), (3e38, -3e38), (float("nan"), float("inf"))]:
        z = plane.place([0.5, float("nan"), -20.0, 1.0], u, v)
        assert all(abs(value) <= Z_LIMIT for value in z), z  # NaN fails the comparison
    assert plane.place([1.0, 2.0, 3.0, 4.0], 3e38, 0.0)[3] == 4.0  # off the plane: kept


def test_point_images_pair_each_encoding_with_its_stored_image() -> None:
    generator = torch.Generator().manual_seed(0)
    indices = torch.randperm(300, generator=generator)[:200]
    image_indices = torch.cat([indices[:40], torch.tensor([500, 501]), indices[10:15]])  # 5 stored twice, 2 strays
    image_indices = image_indices[torch.randperm(len(image_indices), generator=generator)]
    atlas = build_atlas(torch.zeros(4, 2), torch.ones(2), torch.zeros(4, 28, 28, dtype=torch.uint8), torch.arange(4))
    atlas.indices, atlas.image_indices = indices, image_indices
    found = point_images(atlas)
    pairs = atlas.indices[:, None] == atlas.image_indices[None]  # the all-pairs comparison, on a small case
    expected = torch.where(pairs.any(1), pairs.int().argmax(1), -1)  # the first image of each encoding, or none
    assert torch.equal(found, expected) and (found >= 0).sum() == 40


def resident_bytes(field: str) -> int:
    """VmRSS (resident now) or VmHWM (its peak) of this process, from /proc/self/status."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB$", status, flags=re.M).group(1)) << 10


def peak_from_here() -> int:
    """Start this process's peak resident memory afresh from what it holds now; returns that.

    Free memory malloc kept is first handed back (malloc_trim), so what the next calls allocate is faulted in and
    counted, as in a fresh process; then writing 5 to /proc/self/clear_refs resets the peak (VmHWM) to the resident
    size (Linux 4.0 on).
    """
    ctypes.CDLL(None).malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    return resident_bytes("VmRSS")


def test_the_largest_atlas_costs_memory_in_proportion_to_its_points() -> None:
    """A map and picker on the largest atlas a checkpoint may hold: 65,536 encodings, 65,536 images, as many
    classes. Enter on the map compared every encoding's index with every image's: 3.2 GB at the largest atlas (4.3
    GB of peak memory past what the inputs took); the calls now raise the peak by under 256 MB (about 30 MB: the
    picker's lists of 65,536 classes). Measured in this process, its peak reset just before the calls."""
    generator = torch.Generator().manual_seed(0)
    n, d = MAX_POINTS, 20
    atlas = Atlas(
        mu=torch.randn(n, d, generator=generator),
        labels=torch.zeros(n, dtype=torch.long),
        indices=torch.randperm(n, generator=generator),
        images=torch.zeros(n, 28, 28, dtype=torch.uint8),
        image_labels=torch.arange(n),
        image_indices=torch.randperm(n, generator=generator) + n // 2,
        pca_mean=torch.zeros(d),
        pca_axes=torch.eye(2, d),
        variance=torch.ones(d),
        kl=torch.ones(d),
    )
    axes = MapAxes(atlas, [True] * d)
    plane = axes.plane(0)
    axes.layout(plane)
    before = peak_from_here()
    image = axes.nearest_image(plane, 0.0, 0.0)
    picker = PickerScreen(atlas, [str(c) for c in range(n)], 7)
    rise = resident_bytes("VmHWM") - before
    assert atlas.image_indices[image] in atlas.indices and picker.by_class[7] == [7]
    assert rise < 256 << 20, f"the peak rose by {rise >> 20} MB"


def test_a_two_dimensional_latent_maps_z0_and_z1_exactly() -> None:
    generator = torch.Generator().manual_seed(1)
    mu, labels = torch.randn(300, 2, generator=generator), torch.arange(300) % 10
    atlas = build_atlas(mu, torch.ones(2), torch.zeros(300, 28, 28, dtype=torch.uint8), labels)
    plane = principal_plane(atlas)
    assert plane.names == ("z0", "z1") and torch.equal(plane.project(atlas.mu), atlas.mu)


def test_scatter_draws_each_point_in_its_pixel_the_last_on_top() -> None:
    view = View(0.0, 4.0, 0.0, 2.0)  # 4 x 2 pixels of one unit
    uv = torch.tensor([[0.5, 1.5], [3.5, 0.5], [3.6, 0.6], [9.0, 9.0]])  # top-left; bottom-right twice; outside
    drawn = scatter(uv, torch.tensor([1, 2, 3, 4]), view, 4, 2)
    assert drawn.tolist() == [[1, -1, -1, -1], [-1, -1, -1, 3]]


def test_axes_cycle_through_the_active_dimensions_and_back() -> None:
    atlas = load_checkpoint(pretrained_path("vae")).atlas
    latent_dim = atlas.mu.shape[1]
    active = [d % 2 == 0 for d in range(latent_dim)]
    axes = MapAxes(atlas, active)
    seen = []
    for _ in range(latent_dim):
        axes.cycle(selected=0)
        seen.append(axes.plane(0).names)
        if axes.y is None:
            break
    assert seen[-1] == ("PC1", "PC2")
    assert [names[1] for names in seen[:-1]] == [f"z{d}" for d in range(2, latent_dim, 2)]
    assert all(names[0] == "z0" for names in seen[:-1])


def map_cells(app: object) -> list:
    view = app.explorer.query_one(MapView)
    return [(seg.text, seg.style) for y in range(view.size.height) for seg in view.render_line(y)]


def map_size(app: object) -> tuple[int, int]:
    """The map's size in pixels: one column per cell, two rows."""
    size = app.explorer.query_one(MapView).size
    return size.width, 2 * size.height


def marker(app: object) -> tuple[int, int, str]:
    return app.explorer.query_one(MapView).marker_cell()


async def test_map_mode_cursor_axes_and_focus(make_app: Callable, settle: Callable) -> None:
    app = make_app("vae")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        screen, state = app.explorer, app.explorer.state
        await pilot.press("m")
        await settle(app, pilot)
        assert screen.query_one("#map-area").display and not screen.query_one("#preview").display
        drawn = map_cells(app)
        colours = {str(style.color.triplet.hex) for _, style in drawn if style and style.color}
        assert len(colours & {c.lower() for c in CLASS_COLOURS}) == 10  # every class shows
        plane = screen.map.axes.plane(state.selected)
        _, view = screen.map.axes.layout(plane)
        before_z, before_uv = list(state.z), plane.project(torch.tensor([state.z]))[0]
        before_cell, before_image = marker(app), screen.query_one("#map-image", ImageView).pixels.clone()
        await pilot.press("right", "L", "up")  # 1 + 5 steps right, one up
        await settle(app, pilot)
        uv = plane.project(torch.tensor([state.z]))[0]
        step_x, step_y = view.step
        assert (uv - before_uv).tolist() == pytest.approx([6 * step_x, step_y], rel=1e-3)
        assert state.selected == 4 and state.z != before_z
        assert marker(app)[:2] != before_cell[:2] and marker(app)[2] == "+"
        assert not torch.equal(screen.query_one("#map-image", ImageView).pixels, before_image)
        assert torch.equal(screen.query_one("#map-image", ImageView).pixels, screen.frame.image)

        await pilot.press("tab", "right")  # the latent panel has the arrows: a nudge of z4, the marker follows
        await settle(app, pilot)
        assert state.z[4] == pytest.approx(before_z[4] + 6 * step_x * plane.axes[0, 4].item() + 0.25, abs=0.3)
        marker(app)
        await pilot.press("tab")
        assert screen.map.focus
        await pilot.press("A")
        await settle(app, pilot)
        latent = screen.map.axes.plane(state.selected)
        assert latent.names == ("z4", "z0")
        _, latent_view = screen.map.axes.layout(latent)
        columns, rows = pixel_of(latent_view, torch.tensor([[state.z[4], state.z[0]]]), *map_size(app))
        assert marker(app) == (columns.item(), rows.item() // 2, "+")
        z = list(state.z)
        await pilot.press("right")
        await settle(app, pilot)
        assert state.z[4] == pytest.approx(z[4] + latent_view.step[0], abs=1e-5)
        assert state.z[:4] + state.z[5:] == z[:4] + z[5:]
        assert screen.frame.traversal is None  # hidden by the map: not decoded
        await pilot.press("escape")
        assert not screen.query_one("#map-area").display and screen.query_one("#preview").display
        await settle(app, pilot)  # the strips of the z the map left
        expected = screen.decoder.frame(0, state.z, state.label, state.selected)
        assert torch.equal(screen.query_one("#traversal", Thumbnails).images, expected.traversal)


async def test_g_on_the_map_saves_the_manifold_grid_and_a_click_on_the_map_moves_z_there(
    tmp_path: Path, make_app: Callable, settle: Callable
) -> None:
    """One explorer at 100x32 for both: g on the map (the principal plane) saves the manifold grid of the map's view
    as a PNG with its caption and z's, x growing rightwards and y upwards; then on the latent axes (A: x z4, y z0),
    a click on the top-right cell moves z there and the marker with it."""
    app = make_app("vae")
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(app, pilot)
        await pilot.press("m", "g")
        (path,) = (tmp_path / "exports").glob("*manifold*.png")
        side = MANIFOLD_PNG_SCALE * (MANIFOLD_SIDE * 30 + 2)
        image = Image.open(path)
        assert image.width == side and image.height > side  # the grid, and the line under it that says what it is
        export = read_export(path)
        x, y = app.explorer.map.axes.plane(app.explorer.state.selected).names
        assert export.caption == f"the map's view: {x} left to right, {y} top to bottom, the rest of z kept"
        assert export.columns == MANIFOLD_SIDE and len(export.z) == MANIFOLD_SIDE**2
        plane = app.explorer.map.axes.plane(app.explorer.state.selected)
        uv = plane.project(torch.tensor(export.z))
        _, view = app.explorer.map.axes.layout(plane)
        assert uv[0, 0] < uv[1, 0] and uv[0, 1] > uv[MANIFOLD_SIDE, 1]  # x grows rightwards, y upwards
        assert view.left < uv[:, 0].min() and uv[:, 0].max() < view.right

        await pilot.press("A")  # x z4, y z0
        await settle(app, pilot)
        screen, state = app.explorer, app.explorer.state
        assert screen.map.axes.plane(state.selected).names == ("z4", "z0")
        map_view = screen.query_one(MapView)
        await pilot.click(MapView, offset=(map_view.size.width - 1, 0))  # the top-right cell
        await settle(app, pilot)
        view = map_view.view
        assert state.z[4] > view.right - (view.right - view.left) / map_view.size.width, "the click's x"
        assert state.z[0] > view.top - (view.top - view.bottom) / map_view.size.height, "the click's y"
        assert marker(app)[:2] == (map_view.size.width - 1, 0), "the marker in the clicked cell"


async def test_enter_on_the_map_starts_from_the_nearest_test_image_and_map_and_picker_need_no_dataset(
    make_app: Callable, settle: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Enter on the map starts from the stored test image nearest the cursor (its encoding, its class, the original
    beside the reconstruction and the edit once the map is left); then o and enter pick an image in the picker. The
    dataset is never looked for: the map and the picker need only the checkpoint's atlas."""
    import train.data

    def no_data(*args: object, **kwargs: object) -> None:
        raise AssertionError("the map and the picker read the dataset")

    monkeypatch.setattr(train.data, "locate", no_data)
    app = make_app("cvae")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("m")
        await settle(app, pilot)
        screen, state = app.explorer, app.explorer.state
        atlas, model = screen.checkpoint.atlas, screen.checkpoint.model
        plane = screen.map.axes.plane(state.selected)
        _, view = screen.map.axes.layout(plane)
        cursor = plane.project(torch.tensor([state.z]))[0].tolist()
        await pilot.press("enter")
        await settle(app, pilot)
        assert screen.query_one(MapView).points is not None, "the map's points without a dataset"
        reference = screen.reference
        image = (atlas.image_indices == reference.index).nonzero()[0].item()
        pixels = atlas.images[image].float() / 255
        mu, _ = model.encode(pixels.reshape(1, -1), atlas.image_labels[image : image + 1])
        assert state.z == pytest.approx(mu[0].tolist(), abs=1e-6) and state.label == atlas.image_labels[image]
        with_pictures = torch.stack([atlas.mu[(atlas.indices == i).nonzero()[0, 0]] for i in atlas.image_indices])
        assert nearest(plane.project(with_pictures), *cursor, view) == image  # no stored picture lies nearer
        assert torch.equal(reference.original, pixels)
        await pilot.press("m")
        await settle(app, pilot)
        shown = screen.query_one("#image", ImageView).pixels
        assert shown.shape == (32, 92)  # original, reconstruction and edit side by side, in a grid's padding
        assert torch.equal(shown[2:30, 2:30], pixels) and torch.equal(shown[2:30, 62:90], screen.frame.image)
        assert "original · reconstruction · edit" in str(screen.query_one("#preview-title").content)
        await pilot.press("o", "enter")
        await settle(app, pilot)
        assert app.screen is app.explorer and screen.reference.index is not None, "the picker without a dataset"


async def test_m_without_an_atlas_says_how_to_get_one(
    tmp_path: Path, settle: Callable, wait_until: Callable, toast_shows: Callable
) -> None:
    checkpoint = load_checkpoint(pretrained_path("vae"))
    checkpoint.atlas = None
    app = create_app(checkpoint, "old VAE", tmp_path / "exports")
    async with app.run_test(size=(100, 32), notifications=True) as pilot:
        await settle(app, pilot)
        await wait_until(pilot, lambda: toast_shows(app, "has no atlas"), "a toast at the start saying what is missing")
        await pilot.press("m")
        assert not app.explorer.query_one("#map-area").display


async def test_enter_on_a_map_whose_points_have_no_stored_image_says_so(
    tmp_path: Path, settle: Callable, wait_until: Callable, toast_shows: Callable
) -> None:
    """No encoding's test image among the stored ones: nothing to start from, said (argmin of nothing crashed)."""
    checkpoint = load_checkpoint(pretrained_path("vae"))
    checkpoint.atlas.image_indices = checkpoint.atlas.image_indices + 100_000
    app = create_app(checkpoint, "VAE", tmp_path / "exports")
    async with app.run_test(size=(100, 32), notifications=True) as pilot:
        await settle(app, pilot)
        await pilot.press("m", "enter")
        await wait_until(pilot, lambda: toast_shows(app, "nothing to start from"), "a warning")
        assert app.is_running and app.explorer.reference is None
