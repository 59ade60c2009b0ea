"""Many classes and none: finding a class by name (`/`), the class strip's window, the map's colours past ten
classes, and a model of one class (a folder without classes) with no class list and its map coloured by value."""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from rich.color import Color, ColorSystem

from models import Checkpoint, ModelConfig
from tests.helpers import ciede2000, resize, srgb_to_lab, untrained_checkpoint
from train.atlas import atlas_of
from vae_tui.app import create_app
from vae_tui.class_names import matching_classes, numbered
from vae_tui.decoding import Decoder
from vae_tui.latent_map import CLASS_COLOURS, OTHER_CLASSES_COLOUR, class_colours
from vae_tui.layout import class_window, plan
from vae_tui.screens.find_class import FindClassScreen
from vae_tui.widgets.class_list import ClassList
from vae_tui.widgets.map_view import MapView
from vae_tui.widgets.thumbnails import Thumbnails

pytestmark = pytest.mark.usefixtures("truecolor")
BREEDS = ["beagle", "boxer", "pug", "Great Pyrenees", "english setter", "Irish setter", "setter mix", "basset"]


def with_atlas(config: ModelConfig, names: list[str], labels: torch.Tensor) -> Checkpoint:
    """An untrained checkpoint of config whose classes are names, with an atlas of seeded random test images of
    classes labels (N,)."""
    checkpoint = untrained_checkpoint(config)
    checkpoint.class_names, checkpoint.dataset = names, "folder:pictures"
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (len(labels), 28, 28), dtype=torch.uint8, generator=generator)
    checkpoint.atlas = atlas_of(checkpoint.model, images.reshape(len(labels), -1).float() / 255, labels, images)
    return checkpoint


def many_classes() -> Checkpoint:
    """A CVAE of 25 classes, "kind 0" to "kind 24"; the atlas has 12 points of classes 12-20, 4 of the others."""
    counts = [12 if 12 <= label <= 20 else 4 for label in range(25)]
    labels = torch.repeat_interleave(torch.arange(25), torch.tensor(counts))
    config = ModelConfig(kind="cvae", hidden_dim=16, latent_dim=3, num_classes=25)
    return with_atlas(config, [f"kind {label}" for label in range(25)], labels)


def test_a_typed_query_finds_the_class_of_that_number_first_then_names_by_how_well_they_match() -> None:
    assert matching_classes(BREEDS, "setter") == [6, 4, 5]  # the name's start, then a word's
    assert matching_classes(BREEDS, "set") == [6, 4, 5, 7]  # the name's start, a word's start, within a word
    assert matching_classes(BREEDS, "GREAT") == [3]  # case ignored
    assert matching_classes(BREEDS, "2") == [2]
    assert matching_classes([f"kind {i}" for i in range(25)], "17") == [17]
    assert matching_classes([f"kind {i}" for i in range(25)], "1")[:3] == [1, 10, 11]  # the number, then its prefix
    assert matching_classes(BREEDS, "  ") == list(range(8)) and matching_classes(BREEDS, "cat") == []
    assert numbered(["a", *"bcdefghijk"])[:2] == [" 0 a", " 1 b"] and numbered(["a"]) == ["0 a"]


def test_a_class_strip_too_small_for_every_class_shows_the_page_that_holds_the_current_one() -> None:
    assert [class_window(label, 25, 10) for label in (0, 9, 17, 20, 24)] == [
        range(10), range(10), range(10, 20), range(15, 25), range(15, 25)
    ]  # fmt: skip
    assert class_window(5, 8, 10) == range(8)
    assert plan(120, 40, 25).classes.count == 10  # 25 would be 3 px: a window of ten at 10 px, as for ten classes
    assert plan(200, 60, 12).classes.count == 12  # all of them, beside the preview, where they fit at 10 px
    assert plan(80, 24, 120, show_classes=True).classes == plan(80, 24, 10, show_classes=True).classes
    one_class = plan(100, 60, None, side_columns=30)  # no class list: its 18 columns go to the preview
    assert one_class.scale == 2 and plan(100, 60, None).scale == 1


def test_the_decoder_decodes_only_the_window_of_classes_shown() -> None:
    torch.manual_seed(0)
    checkpoint = untrained_checkpoint(ModelConfig(kind="cvae", hidden_dim=16, latent_dim=3, num_classes=25))
    decoder, z = Decoder(checkpoint.model), [0.5, -1.0, 0.25]
    frame = decoder.frame(0, z, 17, 1, traversal=False, window=range(10, 20))
    assert frame.classes.shape == (10, 28, 28) and frame.class_window == range(10, 20)
    expected = decoder.images(torch.tensor([z] * 10), torch.arange(10, 20))
    torch.testing.assert_close(frame.classes, expected)
    torch.testing.assert_close(frame.image, expected[7])  # class 17: the strip's own image
    outside = decoder.frame(1, z, 3, 1, traversal=False, window=range(10, 20))  # the image is decoded on its own
    torch.testing.assert_close(outside.image, decoder.images(torch.tensor([z]), torch.tensor([3]))[0])


def test_past_ten_classes_the_map_colours_the_nine_largest_and_the_current_one_and_the_rest_grey() -> None:
    counts = [12 if 12 <= label <= 20 else 4 for label in range(25)]
    labels = torch.repeat_interleave(torch.arange(25), torch.tensor(counts))
    colours = class_colours(labels, 25, current=3)
    assert colours.coloured == (3, *range(12, 21)) and colours.others == 15
    assert colours.palette == (CLASS_COLOURS[-1], *CLASS_COLOURS[:9], OTHER_CLASSES_COLOUR)  # 3: the tenth colour
    codes = colours.codes(labels)
    assert codes[labels == 3].unique().tolist() == [0] and codes[labels == 0].unique().tolist() == [10]
    assert class_colours(labels, 25, current=15).coloured == tuple(range(12, 21))  # among the nine: nothing added
    assert class_colours(labels, 25, current=15).palette[:9] == colours.palette[1:10]  # the same colour each
    assert class_colours(labels[labels < 10], 10, current=0).palette == CLASS_COLOURS  # ten: as ever
    for system in (ColorSystem.EIGHT_BIT, ColorSystem.TRUECOLOR):
        grey = srgb_to_lab(tuple(Color.parse(OTHER_CLASSES_COLOUR).downgrade(system).get_truecolor()))
        labs = [srgb_to_lab(tuple(Color.parse(c).downgrade(system).get_truecolor())) for c in CLASS_COLOURS]
        assert min(ciede2000(grey, lab) for lab in labs) >= 20 and grey[0] > 40  # apart, and readable on black


def class_list_rows(app: object) -> list[str]:
    """The class list's lines as drawn."""
    view = app.explorer.query_one(ClassList)
    return ["".join(segment.text for segment in view.render_line(y)).rstrip() for y in range(view.size.height)]


async def test_25_classes_the_map_colours_ten_and_slash_finds_class_17_and_the_list_and_the_strip_follow(
    tmp_path: Path, settle: Callable, wait_until: Callable
) -> None:
    """A CVAE of 25 classes at 80x24, one session from its start:
    1. the map colours ten classes (the nine largest and the current class 0) and its legend, whole in its column,
       says the other 15 are grey; at 120x40 the wider column says "15 other classes";
    2. back from the map at 80x24: / finds class 17 by typing "kind 17", the class list scrolls to it, and the class
       strip shows the page of ten that holds it, where a click picks class 19; a query that matches nothing,
       escaped, leaves the class as it was."""
    app = create_app(many_classes(), "many", tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        # 1. the map of 25 classes
        await settle(app, pilot)
        await pilot.press("m")
        await settle(app, pilot)
        screen = app.explorer
        legend = screen.query_one("#legend")
        lines = [line.rstrip() for line in str(legend.render()).splitlines()]
        assert len(lines) == 11 and lines[-1] == "██ 15 others", "nine largest, the current class 0, the rest"
        assert lines[0] == "██ 0 kind 0" and all(len(line) <= legend.size.width for line in lines)
        assert legend.region.bottom <= screen.query_one("#map-side").region.bottom, "the whole legend shows"
        map_view = screen.query_one(MapView)
        assert map_view.palette[-1] == OTHER_CLASSES_COLOUR and len(set(map_view.palette)) == 11
        await resize(app, pilot, 120, 40)
        await settle(app, pilot)
        assert str(legend.render()).splitlines()[-1].rstrip() == "██ 15 other classes", "the wide column"

        # 2. / finds a class
        await pilot.press("m")  # out of the map
        await resize(app, pilot, 80, 24)
        await settle(app, pilot)
        assert not screen.map.shown
        assert str(screen.query_one("#classes .section").content) == "Class · /: find"
        await pilot.press("slash")
        await wait_until(pilot, lambda: isinstance(app.screen, FindClassScreen), "the finder open")
        await pilot.press("k", "i", "n", "d", "space", "1", "7")
        await wait_until(pilot, lambda: app.screen.matches[:1] == [17], "class 17 found")
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.screen is screen and screen.state.label == 17, "enter picks class 17"
        assert "17 kind 17" in class_list_rows(app), "scrolled into view"
        assert screen.query_one(ClassList).highlighted == 17
        await pilot.press("t")  # the class strip: ten of them, the page of 17
        await settle(app, pilot)
        strip = screen.query_one("#classes-below", Thumbnails)
        assert strip.caption == "Classes 10-19 of 25 at this z  (t: other strip)"
        assert screen.frame.classes.shape[0] == 10 and strip.current == 7, "the page of 17"
        assert strip.label_variants[-1] == [str(label) for label in range(10, 20)]
        strip.post_message(Thumbnails.Picked(strip, 9))  # a click on the last one: class 19
        await settle(app, pilot)
        assert screen.state.label == 19, "a click on the strip picks class 19"
        await pilot.press("slash", "p", "u", "g", "escape")  # nothing matches; escape leaves the class as it was
        await wait_until(pilot, lambda: app.screen is screen, "the finder closed")
        assert screen.state.label == 19, "escape leaves the class"


async def test_a_model_of_one_class_has_no_class_list_and_its_map_is_coloured_by_value(
    tmp_path: Path, settle: Callable, wait_until: Callable, toast_shows: Callable
) -> None:
    config = ModelConfig(hidden_dim=16, latent_dim=3, num_classes=1)
    checkpoint = with_atlas(config, ["all images"], torch.zeros(60, dtype=torch.long))
    app = create_app(checkpoint, "one", tmp_path)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await settle(app, pilot)
        screen = app.explorer
        assert not screen.query_one("#classes").display
        assert screen.query_one("#preview").region.x == 30  # right of the latent panel: the list's columns are its
        assert str(screen.query_one("#preview-title").content) == "Preview"
        await pilot.press("slash")
        await wait_until(pilot, lambda: toast_shows(app, "no classes: nothing to find"), "the notice")
        await pilot.press("m")
        await settle(app, pilot)
        assert screen.map.colouring == "value" and screen.query_one(MapView).ramp
        assert str(screen.query_one("#legend").render()).startswith(f"colour: z{screen.state.selected}")
        await pilot.press("c", "c")  # value -> error -> value: never by class
        await pilot.pause()
        assert screen.map.colouring == "value" and screen.map.colourings() == ("value", "error")
