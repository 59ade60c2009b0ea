"""The half-block renderer and the explorer's state, as pure functions."""

import torch

from models import ModelConfig, build_model
from tests.helpers import resize
from train.render import UPPER_HALF, fit_scale, fitting_labels, label_cells, to_levels
from vae_tui.decoding import TRAVERSAL_VALUES, Decoder
from vae_tui.layout import Grid, Layout, plan
from vae_tui.render import half_block_strips, image_row
from vae_tui.state import STEP_RANGE, ExplorerState, nearest_index
from vae_tui.widgets.latent_panel import bar, bar_value, kl_glyph


def cells(strip) -> list[tuple[str, tuple[int, int, int], tuple[int, int, int]]]:
    """Each cell of a strip as (character, foreground rgb, background rgb)."""
    out = []
    for segment in strip:
        for char in segment.text:
            style = segment.style
            out.append(
                (char, *((style.color.get_truecolor(), style.bgcolor.get_truecolor()) if style else (None, None)))
            )
    return out


def grey(level: int) -> tuple[int, int, int]:
    return (level, level, level)


def test_half_blocks_put_the_upper_pixel_in_front() -> None:
    pixels = torch.tensor([[0.0, 1.0], [0.5, 0.2]])
    (strip,) = half_block_strips(to_levels(pixels))
    assert cells(strip) == [(UPPER_HALF, grey(0), grey(128)), (UPPER_HALF, grey(255), grey(51))]


def test_scale_repeats_pixels_and_odd_heights_pad_black() -> None:
    pixels = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.2, 0.2]])
    strips = half_block_strips(to_levels(pixels), scale=2)
    assert len(strips) == 3 and all(s.cell_length == 4 for s in strips)
    assert cells(strips[0]) == [(UPPER_HALF, grey(255), grey(255))] * 2 + [(UPPER_HALF, grey(0), grey(0))] * 2
    assert cells(strips[1])[0][1:] == (grey(0), grey(0)) and cells(strips[1])[2][1:] == (grey(255), grey(255))
    assert cells(strips[2])[0][1:] == (grey(51), grey(51))
    (odd,) = half_block_strips(to_levels(torch.tensor([[0.2]])))
    assert cells(odd) == [(UPPER_HALF, grey(51), grey(0))]


def test_fit_scale() -> None:
    assert fit_scale(28, 28, rows=14, columns=28) == 1
    assert fit_scale(28, 28, rows=28, columns=60) == 2
    assert fit_scale(28, 28, rows=40, columns=60) == 2
    assert fit_scale(28, 28, rows=13, columns=80) == 0


def test_image_row_lays_thumbnails_side_by_side() -> None:
    images = torch.stack([torch.zeros(28, 28), torch.ones(28, 28)])
    lines = image_row(images, size=8, gap=1)
    assert len(lines) == 4 and lines[0].cell_length == 17
    row = cells(lines[0])
    assert row[0][1:] == (grey(0), grey(0)) and row[9][1:] == (grey(255), grey(255)) and row[8] == (" ", None, None)


def test_bar() -> None:
    assert bar(0.0) == "------|------"
    assert bar(1.5) == "------|===---"
    assert bar(-3.0) == "======|------"
    assert bar(99.0) == "------|======"


def test_state_transitions() -> None:
    centroids = torch.arange(30, dtype=torch.float32).view(10, 3)
    vae = ExplorerState(centroids, conditional=False)
    assert vae.z == [0.0, 1.0, 2.0]
    vae.nudge(2)
    assert vae.z[0] == 0.5
    vae.select(1)
    vae.nudge(-5)
    assert vae.z == [0.5, -0.25, 2.0]
    vae.pick_class(3)
    assert vae.z == [9.0, 10.0, 11.0] and vae.label == 3
    vae.undo()
    vae.undo()
    assert (vae.z, vae.label) == ([0.5, 1.0, 2.0], 0)
    for _ in range(20):
        vae.scale_step(0.5)
    assert vae.step == STEP_RANGE[0]
    cvae = ExplorerState(centroids, conditional=True)
    cvae.set_value(1.5)
    cvae.pick_class(7)
    assert cvae.z == [1.5, 0.0, 0.0] and cvae.label == 7
    cvae.reset()
    assert cvae.z == [0.0, 0.0, 0.0]
    assert cvae.undo() and cvae.z == [1.5, 0.0, 0.0]


def test_the_start_rule_picks_an_active_dimension_and_v_hides_the_others() -> None:
    centroids = torch.zeros(10, 5)
    centroids[:, 1] = torch.arange(10.0) * 3  # the widest spread, but dimension 1 is inactive
    centroids[:, 3] = torch.arange(10.0)
    variance = torch.tensor([0.5, 0.001, 0.002, 0.9, 0.3])
    state = ExplorerState(centroids, conditional=True, variance=variance, kl=torch.tensor([1.0, 0, 0, 2.0, 0.5]))
    assert state.active == [True, False, False, True, True] and state.selected == 3
    assert ExplorerState(centroids, conditional=True).selected == 1  # without the stats: the widest spread
    state.select(-2)
    assert state.selected == 1 and state.shown == [0, 1, 2, 3, 4]  # shown: the inactive ones can be picked
    assert state.toggle_inactive() and state.hide_inactive
    assert state.shown == [0, 3, 4] and state.selected == 0  # the nearest active dimension
    state.select(1)
    assert state.selected == 3
    state.select(5)
    assert state.selected == 4
    assert state.toggle_inactive() and state.shown == [0, 1, 2, 3, 4] and state.selected == 4
    every = ExplorerState(centroids, conditional=True, variance=torch.ones(5))
    assert not every.toggle_inactive() and not every.hide_inactive


def test_kl_levels() -> None:
    assert [kl_glyph(kl, 2.0) for kl in (0.0, 0.01, 1.0, 2.0, 3.0)] == [" ", "▁", "▄", "█", "█"]


def test_decoder_frame_matches_single_decodes() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="cvae", hidden_dim=32, latent_dim=4))
    frame = Decoder(model).frame(5, [0.5, -1.0, 0.0, 2.0], label=3, dim=1)
    assert frame.version == 5 and frame.image.shape == (28, 28)
    assert frame.traversal.shape == (7, 28, 28) and frame.classes.shape == (10, 28, 28)
    decoder = Decoder(model)
    singles = decoder.images(
        torch.tensor([[0.5, -1.0, 0.0, 2.0], [0.5, TRAVERSAL_VALUES[0], 0.0, 2.0], [0.5, -1.0, 0.0, 2.0]]),
        torch.tensor([3, 3, 8]),
    )
    torch.testing.assert_close(frame.image, singles[0])
    torch.testing.assert_close(frame.traversal[0], singles[1])
    torch.testing.assert_close(frame.classes[8], singles[2])


def test_decoder_reuses_the_parts_a_step_leaves_unchanged() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="cvae", hidden_dim=32, latent_dim=4))
    rows: list[int] = []
    decode = model.decode
    model.decode = lambda z, y=None: rows.append(len(z)) or decode(z, y)
    decoder, z = Decoder(model), [0.5, -1.0, 0.0, 2.0]
    steps = [  # (z, label, dim), and the images it decodes
        ((z, 3, 1), 7 + 10),  # the first frame: all of it (the image is the class strip's at class 3)
        (([0.5, -0.75, 0.0, 2.0], 3, 1), 10),  # z1 nudged: its traversal stays
        (([0.5, -0.75, 0.0, 2.0], 3, 2), 7),  # z2 selected: z stays, so the image and the class strip
        (([0.5, -0.75, 0.0, 2.0], 7, 2), 7),  # another class: the class strip stays, and holds the image
    ]
    for (z_now, label, dim), decoded in steps:
        before = len(rows)
        frame = decoder.frame(0, z_now, label, dim)
        assert sum(rows[before:]) == decoded
        expected = Decoder(model).frame(0, z_now, label, dim)  # decoded whole
        torch.testing.assert_close(frame.image, decoder.images(torch.tensor([z_now]), torch.tensor([label]))[0])
        for part in ("image", "traversal", "classes"):
            torch.testing.assert_close(getattr(frame, part), getattr(expected, part))
    bare = decoder.frame(0, z, 3, 1, traversal=False, classes=False)
    assert bare.traversal is None and bare.classes is None and rows[-1] == 1
    only_classes = decoder.frame(0, [0.25, -1.0, 0.0, 2.0], 3, 1, traversal=False)
    assert only_classes.traversal is None and only_classes.classes.shape == (10, 28, 28) and rows[-1] == 10


def test_labels_centre_under_thumbnails_and_bracket_the_current_one() -> None:
    assert label_cells(["-1", "0", "+1"], 6, current=1) == ["  -1  ", " [0]  ", "  +1  "]
    assert label_cells(["+3"], 3, current=0) == [" +3"]  # no room for brackets: the style alone marks it
    names = [["0 T-shirt/top", "1 Trouser"], ["0", "1"]]
    assert fitting_labels(names, 15) == names[0] and fitting_labels(names, 8) == names[1]
    assert nearest_index(TRAVERSAL_VALUES, 1.25) == 4 and nearest_index(TRAVERSAL_VALUES, -9.0) == 0


def test_a_click_on_the_bar_maps_its_column_to_minus_three_to_plus_three() -> None:
    assert [bar_value(column) for column in (6, 9, 12, 18)] == [-3.0, -1.5, 0.0, 3.0]
    assert bar_value(5) is None and bar_value(19) is None


def test_layout_gives_big_terminals_a_larger_preview_and_thumbnails() -> None:
    small = plan(80, 24, classes=10)
    assert (small.scale, small.traversal.size, small.classes, small.one_strip) == (1, 10, None, True)
    assert plan(80, 24, classes=10, show_classes=True).classes == Grid(10, 6, 10)
    big = plan(200, 60, classes=10)
    assert (big.scale, big.traversal.size, big.classes, big.classes_beside) == (3, 26, Grid(10, 18, 3), True)
    assert plan(200, 60, classes=None) == Layout(3, Grid(7, 26, 7), None, False, False, 84)


def test_layout_shrinks_images_larger_than_fit_and_keeps_small_ones_thumbnails_at_their_size() -> None:
    """A 64x64 model at 120x40 gets a preview shrunk to 60 px (scale 1 would leave its strips 6 px) and both strips
    of a CVAE; at 200x60 it is drawn at scale 1. A 16x16 model's thumbnails are at most 16 px: larger would only
    repeat pixels."""
    assert plan(120, 40, classes=None, side=64) == Layout(0, Grid(7, 10, 7), None, False, False, 60)
    shrunk = plan(120, 40, classes=10, side=64)
    assert (shrunk.scale, shrunk.preview, shrunk.one_strip) == (0, 46, False)
    assert plan(200, 60, classes=None, side=64).scale == 1
    small = plan(200, 60, classes=10, side=16)
    assert small.scale == 6 and max(small.traversal.size, small.classes.size) <= 16
    for width, height in [(60, 20), (80, 24), (100, 32), (120, 40), (160, 50), (200, 60), (300, 90)]:
        for classes in (None, 10):
            layout = plan(width, height, classes)
            strips = [g for g in (layout.traversal, layout.classes) if g]
            below = sum(g.height for g in strips if g is layout.traversal or not layout.classes_beside)
            assert 2 + 1 + layout.scale * 14 + below <= height, (width, height, classes)  # everything fits
            assert all(g.width <= width - 2 for g in strips)


def test_z_stays_finite_and_within_its_limit_from_every_source() -> None:
    from vae_tui.state import Z_LIMIT

    state = ExplorerState(torch.zeros(2, 3), conditional=False)
    state.set_z([float("nan"), float("inf"), -3e38])
    assert state.z == [0.0, Z_LIMIT, -Z_LIMIT]
    state.set_value(float("nan"))
    state.start_from([float("-inf"), 2.0, float("nan")], 1)
    assert state.z == [-Z_LIMIT, 2.0, 0.0] and state.label == 1


def test_the_run_finder_draws_what_the_cell_by_cell_renderer_draws() -> None:
    """half_block_segments and image_rows find runs with array operations; each line must be the one the per-cell
    loop (half_block_lines with cell_style) makes: the same segments, a run of one style in one segment."""
    from rich.segment import Segment

    from train.render import cell_style, half_block_lines, half_block_segments, image_rows, thumbnail

    def reference(levels: list[list[int]], scale: int = 1) -> list[list[Segment]]:
        rows = [[v for v in row for _ in range(scale)] for row in levels for _ in range(scale)]
        return half_block_lines([*rows, [0] * len(rows[0])] if len(rows) % 2 else rows, cell_style)

    generator = torch.Generator().manual_seed(0)
    for trial in range(40):
        pixels = torch.rand(1 + trial % 7, 2 + trial % 5, generator=generator)
        if trial % 2:  # long runs of one level
            pixels = (pixels > 0.5).float()
        for scale in (1, 2, 3):
            assert half_block_segments(to_levels(pixels), scale) == reference(to_levels(pixels), scale)
    images = torch.rand(7, 28, 28, generator=generator)
    images[:, :, :6] = 0.0  # a black band: runs across several cells
    for size, columns in [(9, 3), (10, 7), (13, 4), (16, 1)]:
        rows = image_rows(images, size, columns)
        assert len(rows) == -(-len(images) // columns)
        for start, row in zip(range(0, len(images), columns), rows, strict=True):
            drawn = [reference(to_levels(thumbnail(image, size))) for image in images[start : start + columns]]
            lines = [
                [segment for i, image in enumerate(drawn) for segment in ([Segment(" ")] if i else []) + image[y]]
                for y in range(len(drawn[0]))
            ]
            assert row == lines


def test_the_image_widgets_drop_only_a_filter_that_would_change_nothing() -> None:
    """Thumbnails and ImageView skip Textual's ANSIToTruecolor filter when their styles are truecolor: it must then
    give back every segment as it was."""
    from rich.color import Color
    from rich.segment import Segment
    from rich.style import Style
    from rich.terminal_theme import MONOKAI
    from textual.color import Color as TextualColor
    from textual.filter import ANSIToTruecolor
    from textual.strip import Strip

    from vae_tui.render import truecolor

    line = half_block_strips(to_levels(torch.rand(4, 9)))[0]
    widget = Style(color=Color.from_rgb(200, 200, 200), bgcolor=Color.from_rgb(0, 0, 0), bold=True)
    segments = [*line, *Strip([Segment("label", widget)])]
    assert truecolor(widget) and all(truecolor(segment.style) for segment in line)
    assert ANSIToTruecolor(MONOKAI).apply(segments, TextualColor(0, 0, 0)) == segments
    assert not truecolor(Style(color="red")) and not truecolor(Style(bgcolor="default"))
    assert not truecolor(widget + Style(dim=True))


async def test_the_kept_lines_are_the_lines_textual_would_draw() -> None:
    """Thumbnails and ImageView hand their kept lines to the screen update when Textual's per-line styling would
    not change them; those lines must be what that styling gives, after images of the same shape replace the first
    ones (only the changed lines are repainted) and with padding (the styling is used then)."""
    from textual.app import App, ComposeResult
    from textual.geometry import Region
    from textual.widget import Widget

    from vae_tui.layout import Grid
    from vae_tui.widgets.image_view import ImageView
    from vae_tui.widgets.thumbnails import Thumbnails

    class Pictures(App):
        CSS = "#padded { padding: 1 2; height: 12; }"

        def compose(self) -> ComposeResult:
            yield Thumbnails([["a", "b", "c", "d", "e"]], id="strip")
            yield ImageView(id="image")
            yield ImageView(id="padded")

    generator = torch.Generator().manual_seed(1)
    app = Pictures()
    async with app.run_test(size=(60, 40)) as pilot:
        strip = app.query_one(Thumbnails)
        strip.arrange(Grid(5, 9, 3))
        await pilot.pause()
        for step in range(3):
            images = torch.rand(5, 28, 28, generator=generator)
            strip.show(f"caption {step}", images, step)
            for view in app.query(ImageView):
                view.show(images[step])
            await pilot.pause()
            for widget in (strip, *app.query(ImageView)):
                region = Region(0, 0, *widget.outer_size)
                widget._styles_cache.clear()
                assert widget.render_lines(region) == Widget.render_lines(widget, region), (step, widget.id)
        assert app.query_one("#image", ImageView)._plain() and not app.query_one("#padded", ImageView)._plain()


class _Terminal:
    """The cells a terminal shows after the screen updates the app wrote: full frames and partial (changed lines
    only) ones, as Textual's compositor makes them."""

    def __init__(self, width: int, height: int) -> None:
        self.cells = [[(" ", None)] * width for _ in range(height)]

    def write(self, update: object, console: object) -> None:
        from rich.segment import ControlType

        x = y = 0
        for segment in update.__rich_console__(console, console.options):
            if segment.control:
                for control in segment.control:
                    if control[0] == ControlType.CURSOR_MOVE_TO:
                        x, y = control[1], control[2]
            elif segment.text == "\n":
                x, y = 0, y + 1
            else:
                for offset, char in enumerate(segment.text):
                    self.cells[y][x + offset] = (char, segment.style)
                x += len(segment.text)


async def test_a_screen_updated_line_by_line_shows_what_a_full_redraw_shows(make_app, settle) -> None:
    """The image widgets repaint only the lines that changed, from lines they keep: after each key, the terminal
    that received those partial updates must show what a full redraw from scratch draws; at 120x40, then (one
    session, resized) at 200x60, where the preview is larger and the classes sit beside it."""
    from vae_tui.widgets.image_view import ImageView
    from vae_tui.widgets.thumbnails import Thumbnails

    app = make_app("cvae")
    async with app.run_test(size=(120, 40)) as pilot:
        display, terminals = app._display, []

        def written(screen: object, update: object) -> None:
            if update is not None and terminals:
                terminals[-1].write(update, app.console)
            display(screen, update)

        app._display = written
        for size, keys in [((120, 40), "l l j L h k 3 l t r"), ((200, 60), "l j l 7 h k")]:
            if app.size != size:
                terminals.clear()  # nothing written while the size changes
                await resize(app, pilot, *size)
                await settle(app, pilot)
            terminal = _Terminal(*size)
            terminals.append(terminal)
            app.screen.refresh()  # a full frame first
            await settle(app, pilot)
            for key in keys.split():
                await pilot.press(key)
                await settle(app, pilot)
                await pilot.pause()
                shown = [row[:] for row in terminal.cells]
                for widget in app.screen.query("Thumbnails, ImageView"):
                    if isinstance(widget, Thumbnails):
                        widget._lines.clear()
                        widget._rows = None
                    elif isinstance(widget, ImageView):
                        widget._cache = None
                    widget._styles_cache.clear()
                fresh = _Terminal(*size)
                fresh.write(app.screen._compositor.render_update(full=True), app.console)
                assert shown == fresh.cells, (size, key)


# --- colour (image folders in RGB) ---------------------------------------------------------------------------


def test_colour_cells_carry_both_pixels_in_24_bit_and_runs_are_one_segment() -> None:
    from train.render import colour_lines

    red, blue = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)
    rgb = torch.zeros(3, 3, 4)  # 3 rows: the last, odd, over black
    for x in range(4):
        rgb[:, 0, x] = torch.tensor(red)
        rgb[:, 1, x] = torch.tensor(blue if x < 3 else red)
        rgb[:, 2, x] = torch.tensor(blue)
    first, second = colour_lines(rgb, column_scale=2)
    assert [(seg.text, seg.style.color.triplet, seg.style.bgcolor.triplet) for seg in first] == [
        ("\u2580" * 6, (255, 0, 0), (0, 0, 255)),  # three columns of red over blue, two cells each
        ("\u2580" * 2, (255, 0, 0), (255, 0, 0)),
    ]
    assert [(seg.text, seg.style.color.triplet, seg.style.bgcolor.triplet) for seg in second] == [
        ("\u2580" * 8, (0, 0, 255), (0, 0, 0))
    ]


def test_on_256_colours_a_colour_becomes_the_xterm_cube_s_and_a_grey_the_grey_ramp_s() -> None:
    from rich.color import ColorSystem

    from train.render import colour_cell_style

    style = colour_cell_style(0xC83228, 0x808080)  # a saturated red over mid grey
    red, grey = (c.downgrade(ColorSystem.EIGHT_BIT).number for c in (style.color, style.bgcolor))
    # the cube's levels are 0, 95, 135, 175, 215, 255: 200, 50, 40 are nearest 215, 95, 0, the cube's (4, 1, 0)
    assert 16 <= red <= 231 and red == 16 + 36 * 4 + 6 * 1 + 0
    assert 232 <= grey <= 255


def test_a_colour_image_is_shrunk_by_area_averaging_never_by_dropping_pixels() -> None:
    from train.render import thumbnail

    rgb = torch.zeros(3, 4, 4)
    rgb[1, 3, 3] = 1.0  # one green pixel in the bottom-right quadrant
    small = thumbnail(rgb, 2)
    assert small.shape == (3, 2, 2) and float(small[1, 1, 1]) == 0.25 and float(small.sum()) == 0.25
    assert thumbnail(rgb, 4) is rgb
