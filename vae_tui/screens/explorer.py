"""The explorer's main screen: classes, latent panel, preview and strip, driven by the keyboard.

The screen binds every key and owns the state (vae_tui.state.ExplorerState); its parts own theirs: the map
(map_mode.MapPanel), the a/b marks and their path (interpolation.Interpolation, Playback) and the checkpoint watcher
(follow.CheckpointWatcher, a widget that posts what it loaded). Every change of the state reaches the screen through
one listener, which asks for one redraw per round of messages; nothing else refreshes after a state change.
What the model offers decides which keys act (Capabilities): without an atlas, the keys that need one are left out
of the footer, the help and the palette, and say so when pressed. A model written elsewhere (--code) runs on a thread
of its own (vae_tui/model_calls.py): everything that calls it does so in a worker (model_work), its failures are
notices, and a slow call is said while it runs.
"""

import json
import os
import re
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.events import Key, Resize
from textual.geometry import Size
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Label, OptionList, Static
from textual.worker import get_current_worker

from models import Checkpoint
from models.outside import OutsideModelError, OutsideVAE
from models.text import printable
from train.atlas import image_losses
from train.grids import grid
from vae_tui.decoding import TRAVERSAL_VALUES, Decoder, Frame
from vae_tui.exports import Export, class_name, export_image, export_of, image_export, save_drawn, strip_export
from vae_tui.keys import EXPLORER_KEYS, bindings
from vae_tui.latent_map import MANIFOLD_SIDE
from vae_tui.layout import CLASS_COLUMNS, CLASS_WINDOW, SIDE_COLUMNS, Layout, class_window, plan
from vae_tui.model_calls import Abandoned, OutsideCalls, on_its_thread
from vae_tui.screens.find_class import FindClassScreen
from vae_tui.screens.follow import CheckpointWatcher
from vae_tui.screens.help import truecolor_hint
from vae_tui.screens.interpolation import (
    GIF_SCALE,
    PATH_FRAMES,
    PATH_LABELS,
    Interpolation,
    Playback,
    decode_path,
    save_path_gif,
)
from vae_tui.screens.map_mode import MANIFOLD_PNG_SCALE, MAP_ONLY, NO_ATLAS, NO_IMAGES, NO_LOSSES, MapPanel
from vae_tui.screens.picker import PickerScreen
from vae_tui.screens.value import ValueScreen
from vae_tui.state import ExplorerState, nearest_index
from vae_tui.user_image import best_class
from vae_tui.widgets.class_list import ClassList
from vae_tui.widgets.footer import KeysFooter
from vae_tui.widgets.image_view import ImageView
from vae_tui.widgets.latent_panel import LatentPanel, panel_title
from vae_tui.widgets.map_view import MapView
from vae_tui.widgets.thumbnails import Thumbnails
from vae_tui.widgets.title_bar import TitleBar, title_variants

MIN_SIZE = (60, 20)
WIDE_FOOTER = 100  # narrower: the footer drops its spacing, so every label reads whole at 80 columns
NARROW_MAP_SIDE, WIDE_MAP_SIDE = 16, 30  # the map's image and legend column: a 14 px or a 28 px image
IMAGE_PNG_PX = 280  # s saves the image about this wide: 28 px at scale 10, 64 px at 4
STRIP_PNG_SCALE = 4
FIND_TITLE = "Class · /: find"  # the class list's title past CLASS_WINDOW classes, where digits do not reach them all
ONE_CLASS = "This model's images have no classes: nothing to find"
TRAVERSAL_LABELS = [f"{value:+.0f}" if value else "0" for value in TRAVERSAL_VALUES]
T, R = TypeVar("T"), TypeVar("R")
SLOW_SECONDS = 1.0  # a model call running this long is said while it runs (a model written elsewhere)


@dataclass(frozen=True)
class Reference:
    """A test image z started from: its pixels and its reconstruction (H, W), in [0, 1]."""

    name: str  # how the preview's title names it: "Test #29", "your photo.png"
    index: int | None  # in the test set; None for a user's own image
    original: torch.Tensor
    decoded: torch.Tensor
    label: int = 0  # the class it was encoded and reconstructed under


StartImage = tuple[str, torch.Tensor]  # a user's picture (its file name, its pixels in the model's shape)


def best_columns(shape: tuple[int, int], width: int, height: int, count: int = 3, pad: int = 2) -> int:
    """How many columns of count images (H, W) with pad between draw them largest in width x height pixels: three
    side by side where the preview is wide, two and one below where it is narrow (80x24), one column where tall."""

    def scale(columns: int) -> float:
        rows = -(-count // columns)
        return min(width / (columns * (shape[1] + pad) + pad), height / (rows * (shape[0] + pad) + pad))

    return max(range(count, 0, -1), key=scale)  # ties: the most columns, side by side as the title reads


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st ..."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


@dataclass(frozen=True)
class Capabilities:
    """What the opened model offers, which decides what its keys can do."""

    atlas: bool  # encodings of a test set, per-dimension statistics and stored test images: map, picker, marks
    encoder: bool = True  # it encodes images (a model written elsewhere may have decode(z) alone): --image, atlas
    outside: bool = False  # written elsewhere (--code): its atlas comes from --data, not from a checkpoint

    @classmethod
    def of(cls, checkpoint: Checkpoint) -> "Capabilities":
        model = checkpoint.model
        outside = isinstance(model, OutsideVAE)
        return cls(atlas=checkpoint.atlas is not None, encoder=not outside or model.has_encoder, outside=outside)

    def missing(self, action: str) -> str | None:
        """Why action cannot run for this model, in one line (None: it can)."""
        if action not in NEEDS_ATLAS or self.atlas:
            return None
        if not self.outside:
            return NO_ATLAS
        if not self.encoder:
            return f"{NEEDS_ATLAS[action]} needs the model's encode(x): this one has decode(z) alone"
        return f"{NEEDS_ATLAS[action]} needs test images to encode: start with --code and --data DIR (or --dataset)"

    def note(self) -> str | None:
        """What the model lacks, said once at the start (None: nothing)."""
        if self.atlas:
            return None
        if not self.outside:
            return NO_ATLAS
        keys = "no map (m), picker (o), nearest images (n) or inactive marks (v)"
        if not self.encoder:
            return f"This model has no encode(x): {keys}"
        return f"No test images to encode (--data DIR or --dataset NAME): {keys}"


NEEDS_ATLAS = {  # the actions that need an atlas, as a notice names them (the map's own keys act only on the map)
    "toggle_map": "The map (m)",
    "open_picker": "The picker (o)",
    "toggle_inactive": "Marking inactive dimensions (v)",
    "toggle_nearest": "The nearest images (n)",
    "sort_by_kl": "Sorting by KL (S)",
}
ACTION_OF_KEY = {name: key.action for key in EXPLORER_KEYS for name in key.keys.split(",")}
NEAREST_COUNT = 7  # images in the nearest strip, as many as the traversal's


class ExplorerScreen(Screen):
    """Every explorer key acts here; decoding runs in a worker thread."""

    BINDINGS = bindings(EXPLORER_KEYS)
    IS_EXPLORER = True  # how vae_tui.base_app finds it in the screen stack without importing torch

    class Decoded(Message):
        """A worker finished decoding a frame."""

        def __init__(self, frame: Frame) -> None:
            super().__init__()
            self.frame = frame

    def __init__(
        self,
        checkpoint: Checkpoint,
        source: str,
        exports_dir: Path,
        start_image: "StartImage | None" = None,
        follow: Path | None = None,
        from_browser: bool = False,
    ) -> None:
        super().__init__()
        self.start_image, self.follow = start_image, follow  # follow: the checkpoint file to reload when it changes
        self.from_browser = from_browser  # pushed over the runs browser: escape and q go back to it
        self.checkpoint, self.source, self.exports_dir = checkpoint, source, exports_dir
        atlas = checkpoint.atlas
        self.state = ExplorerState(
            checkpoint.class_centroids,
            checkpoint.model.conditional,
            variance=None if atlas is None else atlas.variance,
            kl=None if atlas is None else atlas.kl,
        )
        self.decoder = Decoder(on_its_thread(checkpoint.model))
        self.outside = isinstance(self.decoder.model, OutsideCalls)  # calls it in workers (model_work)
        self._slow_said = False  # the title bar says a model call is slow
        self.generator = torch.Generator().manual_seed(0)
        self.frame: Frame | None = None
        self.frame_listeners: list[Callable[[Frame], None]] = []  # called once a frame is on screen
        self.colour_hint = truecolor_hint(dict(os.environ))  # the title bar marks it, the help screen explains it
        self.show_classes = False  # when only one strip fits: the class strip rather than the traversal
        self.layout_plan: Layout | None = None
        self.capabilities = Capabilities.of(checkpoint)
        self.map = MapPanel(atlas, self.state.active, self.state.num_classes)
        self.path = Interpolation()
        self.playback: Playback | None = None  # while the path a -> b plays, it has the preview
        self.reference: Reference | None = None  # the test image z started from: shown beside the edit
        self.nearest_strip = False  # n: the stored test images nearest to z in the traversal's place
        self._redraw_due = False
        self.set_class(not self.has_classes, "one-class")  # no class list: its columns go to the preview

    @property
    def has_classes(self) -> bool:
        """Whether the model has classes to pick: not one ("all images", a folder of images without classes)."""
        return self.state.num_classes > 1

    def compose(self) -> ComposeResult:
        checkpoint = self.checkpoint
        yield TitleBar(checkpoint, self.source, colour_mark=self.colour_hint is not None, id="title")
        with Horizontal(id="main"):
            with Vertical(id="classes"):
                yield Label(FIND_TITLE if self.state.num_classes > CLASS_WINDOW else "Class", classes="section")
                yield ClassList(checkpoint.class_names)
            with Vertical(id="latent"):
                yield Label("", id="latent-title", classes="section", markup=False)
                yield LatentPanel(self.state)
            with Vertical(id="preview"):
                yield Label("Preview", id="preview-title", classes="section", markup=False)
                with Horizontal(id="preview-row"):
                    yield ImageView(id="image")
                    yield Thumbnails(self._class_labels(range(0)), id="classes-beside")
            with Horizontal(id="map-area"):
                with Vertical(id="map-left"):
                    yield Label("", id="map-title", classes="section", markup=False)
                    yield MapView()
                with Vertical(id="map-side"):
                    yield Label("Image", id="map-image-title", classes="section", markup=False)
                    yield ImageView(id="map-image")
                    yield Static("", id="legend")
        with Vertical(id="strips"):
            yield Thumbnails([TRAVERSAL_LABELS], id="traversal")
            yield Thumbnails(self._class_labels(range(0)), id="classes-below")
        yield Static("", id="too-small")
        yield KeysFooter()
        if self.follow is not None:
            yield CheckpointWatcher(self.follow)

    def on_mount(self) -> None:
        self.state.watch(self._state_changed)
        # laid out for the terminal's size before the first layout (the screen's own size is known only after it),
        # so that layout is the one shown, not one with every strip that Resize then rearranges
        self.query_one(Footer).compact = self.app.size.width < WIDE_FOOTER
        self._arrange(self.app.size)
        notes = [self.capabilities.note(), getattr(self.checkpoint.model, "range_note", "")]  # --code: what it lacks,
        if note := " · ".join(n for n in notes if n):  # and outputs outside its --decoder-output's range
            self.notify(printable(note), severity="warning", timeout=10, markup=False)
        if self.outside:
            self.set_interval(SLOW_SECONDS / 2, self._say_if_slow)
        if self.start_image is not None:
            name, pixels = self.start_image
            self.start_from_pixels(pixels, None, printable(name), None)
            if self.outside:
                self._show_state()  # z's start while the picture is encoded
            return
        self._show_state()

    def on_unmount(self) -> None:
        if self.outside:
            self.decoder.model.thread.close()  # once the call it runs, if any, returns: the process does not wait

    def _class_labels(self, window: range) -> list[list[str]]:
        """The class strip's labels for the classes of window: number and name where they fit, else the number."""
        names = self.checkpoint.class_names
        return [[f"{i} {printable(names[i])}" for i in window], [str(i) for i in window]]

    def class_window(self) -> range:
        """The classes the class strip shows: every class, or as many as its grid holds around the current one."""
        layout, state = self.layout_plan, self.state
        count = state.num_classes if layout is None or layout.classes is None else layout.classes.count
        return class_window(state.label, state.num_classes, count)

    def on_resize(self, event: Resize) -> None:
        self.query_one(Footer).compact = event.size.width < WIDE_FOOTER
        self._arrange()
        if self.map.shown:  # the legend's lines for its column's new width
            self._show_text()
        if self.reference is not None:  # its three images take the columns that fit the new size best
            self.call_after_refresh(self._show_images_again)
        too_small = event.size.width < MIN_SIZE[0] or event.size.height < MIN_SIZE[1]
        self.set_class(too_small, "too-small")
        if too_small:
            self.query_one("#too-small", Static).update(
                f"The terminal is {event.size.width}x{event.size.height}; the explorer needs at least "
                f"{MIN_SIZE[0]}x{MIN_SIZE[1]}. Enlarge it, or press q to quit."
            )

    def _arrange(self, size: Size | None = None) -> None:
        """Place the strips and size the thumbnails for the terminal's size, or size (see vae_tui.layout)."""
        size = size or self.size
        classes = self.state.num_classes if self.state.conditional else None
        side = self.decoder.image_shape[-1]
        side_columns = SIDE_COLUMNS if self.has_classes else SIDE_COLUMNS - CLASS_COLUMNS
        layout = self.layout_plan = plan(size.width, size.height, classes, self.show_classes, side, side_columns)
        beside = layout.classes if layout.classes_beside else None
        below = None if layout.classes_beside else layout.classes
        self.query_one("#map-side").styles.width = WIDE_MAP_SIDE if size.width >= WIDE_FOOTER else NARROW_MAP_SIDE
        places = (("#traversal", layout.traversal), ("#classes-beside", beside), ("#classes-below", below))
        for selector, shape in places:
            thumbnails = self.query_one(selector, Thumbnails)
            thumbnails.display = shape is not None
            if shape is not None:
                thumbnails.arrange(shape)
        self._show_strips()
        if self.strips_missing():
            self.decode_state()  # a strip now shown (another size, or t) that the frame lacks

    def shown_strips(self) -> tuple[bool, bool]:
        """Whether the traversal strip and the class strip are on screen (neither in map mode; both until the
        first layout)."""
        layout = self.layout_plan
        if self.map.shown:
            return False, False
        if layout is None:
            return True, True
        return layout.traversal is not None, layout.classes is not None

    def strips_missing(self) -> bool:
        """Whether the newest frame lacks a strip that is on screen: decoded for a layout that hid it."""
        if self.frame is None:
            return False
        traversal, classes = self.shown_strips()
        class_strip_missing = self.frame.classes is None or self.frame.class_window != self.class_window()
        return (traversal and self.frame.traversal is None) or (classes and class_strip_missing)

    def _show_strips(self) -> None:
        """The frame's strips, captioned and with the current value and class marked; those it lacks (hidden
        when it was decoded) are left as they are."""
        if self.frame is None or self.layout_plan is None:
            return
        state, frame = self.state, self.frame
        hint = "  (t: other strip)" if self.layout_plan.one_strip else ""
        low, high = TRAVERSAL_LABELS[0], TRAVERSAL_LABELS[-1]
        traversal = self.query_one("#traversal", Thumbnails)
        path_caption = self.path.caption(self.checkpoint.class_names)
        caption = f"Traversal of z{state.selected} from {low} to {high}{hint}" if path_caption is None else path_caption
        if self.path.path_strip is not None:  # both ends marked: the path in the traversal's place
            traversal.label_variants = [PATH_LABELS]
            traversal.show(caption, self.path.path_strip, None)
        elif self.nearest_strip:
            self._show_nearest_strip(traversal, hint)
        elif frame.traversal is not None:
            traversal.label_variants = [TRAVERSAL_LABELS]
            traversal.show(caption, frame.traversal, nearest_index(TRAVERSAL_VALUES, state.z[state.selected]))
        window = frame.class_window
        if frame.classes is not None and window == self.class_window():
            if len(window) < state.num_classes:
                caption = f"Classes {window.start}-{window.stop - 1} of {state.num_classes} at this z{hint}"
            else:
                caption = f"Every class at this z{hint}"
            current = state.label - window.start if state.label in window else None
            for selector in ("#classes-beside", "#classes-below"):
                strip = self.query_one(selector, Thumbnails)
                if strip.display:  # the hidden one is drawn when a layout shows it (_arrange)
                    strip.label_variants = self._class_labels(window)
                    strip.show(caption, frame.classes, current)

    def nearest_images(self) -> list[int]:
        """The stored test images nearest to z, nearest first (indices into the atlas' images)."""
        return self.map.axes.nearest_images(self.state.z, NEAREST_COUNT)

    def _show_nearest_strip(self, strip: Thumbnails, hint: str) -> None:
        atlas = self.checkpoint.atlas
        images = self.nearest_images()
        labels = [f"#{int(atlas.image_indices[i])}" for i in images]
        strip.label_variants = [labels]
        pixels = atlas.images[images].float() / 255
        strip.show(f"The {len(images)} stored test images nearest to z (n: traversal){hint}", pixels, None)

    def on_thumbnails_picked(self, message: Thumbnails.Picked) -> None:
        path = self.path
        if message.control.id == "traversal" and path.path_strip is None and self.nearest_strip:
            self.start_from_test_image(self.nearest_images()[message.index])
        elif message.control.id == "traversal" and path.path_strip is not None:  # a point of the path a -> b
            t = message.index / (len(path.path_strip) - 1)
            a, b = path.ends["a"], path.ends["b"]
            self.state.set_z([(1 - t) * za + t * zb for za, zb in zip(a.z, b.z, strict=True)])
        elif message.control.id == "traversal":
            self.state.set_value(TRAVERSAL_VALUES[message.index])
        elif self.frame is not None:  # a class of the strip's window
            self.action_pick_class(self.frame.class_window.start + message.index)

    def on_latent_panel_clicked(self, message: LatentPanel.Clicked) -> None:
        self.state.select_dimension(message.index)
        if message.value is not None:
            self.state.set_value(message.value)

    def _state_changed(self) -> None:
        """The state's one listener: one redraw after this round of messages, however many changes it made."""
        if not self._redraw_due:
            self._redraw_due = True
            self.call_later(self._redraw)

    def _redraw(self) -> None:
        self._redraw_due = False
        self._show_state()

    def _show_state(self) -> None:
        """Ask for a new picture; the text parts are redrawn with it, so one screen update shows both."""
        state = self.state
        if self.frame is not None and self.frame.version == state.version:
            self._show_text()  # nothing to decode (the step changed)
        else:
            if self.outside:
                self._show_text()  # a model written elsewhere may take seconds: the keys show at once
            self.decode_state()

    def decode_state(self) -> None:
        """Decode the current state: its image, and the strips that are on screen (none in map mode)."""
        state = self.state
        traversal, classes = self.shown_strips()
        self.decode(state.version, list(state.z), state.label, state.selected, traversal, classes, self.class_window())

    def _latent_title(self) -> str:
        return panel_title(self.state)

    def _show_text(self) -> None:
        state = self.state
        if self.map.shown:
            self.map.draw(self, state, self.checkpoint.class_names)
        self._set_label("#latent-title", self._latent_title())
        name = printable(self.checkpoint.class_names[state.label])
        if self.reference is None:
            self._set_label("#preview-title", f"Preview · {state.label} {name}" if self.has_classes else "Preview")
        else:
            parts = "original · reconstruction · edit" if self.size.width >= WIDE_FOOTER else "orig · recon · edit"
            self._set_label("#preview-title", f"{self.reference.name}: {parts}")
        self.query_one(LatentPanel).update_state()
        class_list = self.query_one(ClassList)
        if class_list.highlighted != state.label:
            class_list.highlighted = state.label

    def _set_label(self, selector: str, text: str) -> None:
        """Update a section label without a layout pass (their width is fixed by the CSS)."""
        label = self.query_one(selector, Label)
        if str(label.content) != text:
            label.update(text, layout=False)

    @work(thread=True, exclusive=True, group="decode")
    def decode(
        self, version: int, z: list[float], label: int, dim: int, traversal: bool, classes: bool, window: range
    ) -> None:
        """Decode off the UI thread; only the newest frame is shown."""
        try:
            frame = self.decoder.frame(version, z, label, dim, traversal, classes, window)
        except Abandoned:  # a newer state, or the app closing: the frame would not be shown
            return
        except OutsideModelError as error:  # a model written elsewhere failed at this z
            self.call_later(self._decode_failed, version, error)
            return
        self.post_message(self.Decoded(frame))

    def _decode_failed(self, version: int, error: OutsideModelError) -> None:
        if version == self.state.version:
            self.model_failed(error, "the image is not updated")
            self._show_text()  # the z it failed at, beside the image of the last z it drew

    def on_explorer_screen_decoded(self, message: Decoded) -> None:
        frame = message.frame
        if frame.version != self.state.version:
            return  # a newer state is being decoded: key repeat is absorbed here
        if frame.failure is not None:
            self.notify(f"The model's {frame.failure}", severity="warning", markup=False)
        self.frame = frame
        self._show_text()
        if self.playback is None:  # while a path plays, the playback has the preview
            self.show_frame_images(frame)
        self._show_strips()
        if self.strips_missing():
            self.decode_state()  # the layout changed while it was decoded
        self.call_after_refresh(self._frame_shown, frame)

    def show_frame_images(self, frame: Frame) -> None:
        """The frame's image beside the map in map mode, else in the preview (beside the original and its
        reconstruction after a pick). Hidden widgets are left alone: repainting one costs a full layout pass."""
        if self.map.shown:
            if not self.map.nearest_shown:  # else the map draws the test image nearest to the cursor there
                self.query_one("#map-image", ImageView).show(frame.image)
            return
        reference, view = self.reference, self.query_one("#image", ImageView)
        shown = frame.image
        if reference is not None:
            images = torch.stack([reference.original, reference.decoded, frame.image])
            shown = grid(images, best_columns(images.shape[-2:], view.size.width, 2 * view.size.height))
        view.show(shown)

    def _show_images_again(self) -> None:
        if self.frame is not None and self.playback is None:
            self.show_frame_images(self.frame)

    def _frame_shown(self, frame: Frame) -> None:
        for listener in self.frame_listeners:
            listener(frame)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Map-only actions run only while the map is shown, and escape only with something to leave or clear:
        else their keys fall through (escape to close Textual's keys panel, or to go back to the runs browser)."""
        if action == "back":  # a panel or dialog on top closes first (the app's escape), before marks are cleared
            return (self.map.shown or self.path.marked) and not self.query("HelpPanel")
        if not self.offers(action):  # out of the footer; on_key says why when its key is pressed
            return False
        return action not in MAP_ONLY or self.map.shown

    def offers(self, action: str) -> bool:
        """Whether the model can do action (the footer, the help and the palette leave out what it cannot)."""
        return self.capabilities.missing(action) is None

    def lacks(self, action: str) -> bool:
        """Whether the model cannot do action; if so, a notification says why."""
        missing = self.capabilities.missing(action)
        if missing is not None:
            self.notify(missing, severity="warning", markup=False)
        return missing is not None

    # --- calls into the model (a model written elsewhere: vae_tui/model_calls.py) ---------------------------

    def model_work(self, consequence: str, work: Callable[[], T], done: Callable[[T], R]) -> R | None:
        """done(work()), where work calls the model: here and now for vae-tui's own models (a few milliseconds;
        done's result is returned), in a worker for a model written elsewhere (done then runs on this thread once
        work is over; a failure is a notice that ends in consequence, "the image is not saved")."""
        if not self.outside:
            return done(work())
        self._model_worker(consequence, work, done)
        return None

    @work(thread=True, group="model")
    def _model_worker(self, consequence: str, work: Callable[[], object], done: Callable[[object], object]) -> None:
        try:
            result = work()
        except Abandoned:  # the app is closing
            return
        except OutsideModelError as error:
            self.call_later(self.model_failed, error, consequence)
            return
        if not get_current_worker().is_cancelled:
            self.call_later(done, result)

    def model_failed(self, error: OutsideModelError, consequence: str) -> None:
        """A notice naming what the model did wrong and what did not happen; the user's traceback, if any, goes to
        the log of what the model prints (its path said the first time)."""
        text = f"The model's {error}; {consequence}"
        log = getattr(self.app, "output_log", None)
        if log is not None:
            cause = error.__cause__ or error
            stamp = time.strftime("%H:%M:%S")
            if log.write(f"{stamp} {error}\n" + "".join(traceback.format_exception(cause))):
                text += f". Its traceback: {log.path}"
        self.notify(printable(text), severity="error", timeout=8, markup=False)

    def _say_if_slow(self) -> None:
        """While a model call has run SLOW_SECONDS or more, the title bar says so and for how long (a toast would
        cover the latent panel all the while); the notice goes when the call ends."""
        busy = self.decoder.model.thread.busy()
        title = self.query_one(TitleBar)
        if busy is not None and busy[1] >= SLOW_SECONDS:
            what, seconds = busy
            title.flash(f"the model is slow: {what} running {seconds:.0f} s · q quits")
            self._slow_said = True
        elif self._slow_said:  # the slow call ended (another may have started)
            title.flash("")
            self._slow_said = False

    def action_select(self, delta: int) -> None:
        if self.map.has_keys:
            self.state.set_z(self.map.moved(self.state, 0, delta))
        else:
            self.state.select(delta)

    def action_nudge(self, steps: int) -> None:
        if self.map.has_keys:
            self.state.set_z(self.map.moved(self.state, steps, 0))
        else:
            self.state.nudge(steps)

    def action_scale_step(self, factor: float) -> None:
        self.state.scale_step(factor)

    def action_zero(self) -> None:
        self.state.set_value(0.0)

    def action_enter_value(self) -> None:
        def apply(value: float | None) -> None:
            if value is not None:
                self.state.set_value(value)

        self.app.push_screen(ValueScreen(self.state.selected, self.state.z[self.state.selected]), apply)

    def action_pick_class(self, label: int) -> None:
        if label < self.state.num_classes:
            if not self.state.conditional:
                self.reference = None  # z leaves the image for the class's centroid
            self.state.pick_class(label)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.action_pick_class(event.option_index)

    def action_find_class(self) -> None:
        """/: a dialog lists the classes that what is typed matches; enter or a click picks one."""
        if not self.has_classes:
            self.notify(ONE_CLASS, markup=False)
            return

        def chosen(label: int | None) -> None:
            if label is not None:
                self.action_pick_class(label)

        self.app.push_screen(FindClassScreen(self.checkpoint.class_names, self.state.label), chosen)

    def action_randomize(self) -> None:
        self.state.randomize(self.generator)

    def action_reset(self) -> None:
        self.state.reset()

    def action_undo(self) -> None:
        if not self.state.undo():
            self.notify("Nothing to undo")

    def action_toggle_inactive(self) -> None:
        state = self.state
        if not self.lacks("toggle_inactive") and not state.toggle_inactive():
            self.notify("Every dimension is active: none to hide" if all(state.active) else "No active dimension")

    def action_sort_by_kl(self) -> None:
        if not self.lacks("sort_by_kl"):
            self.state.toggle_order()

    def action_toggle_strip(self) -> None:
        if self.layout_plan is not None and self.layout_plan.one_strip:
            self.show_classes = not self.show_classes
            self._arrange()

    def _export_path(self, what: str, suffix: str = ".png") -> Path:
        dataset = re.sub(r"[^A-Za-z0-9_-]+", "_", self.checkpoint.dataset)  # a name from the file: no "/" or ".."
        stem = f"{self.checkpoint.config.kind}-{dataset}-class{self.state.label}-{what}"
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self.exports_dir / f"{stem}-{stamp}{suffix}"
        counter = 1
        while path.exists():
            counter += 1
            path = self.exports_dir / f"{stem}-{stamp}-{counter}{suffix}"
        return path

    def write_export(self, what: str, suffix: str, write: Callable[[Path], Path]) -> Path | None:
        """write(path) into the exports folder under a fresh name; a notification says where, or why not."""
        try:
            self.exports_dir.mkdir(parents=True, exist_ok=True)
            path = write(self._export_path(what, suffix))
        except OSError as e:
            reason = printable(f"Could not save into {self.exports_dir}: {e.strerror or e}")
            self.notify(reason, severity="error", markup=False)
            return None
        self.notify(printable(f"Saved {path}"), title=suffix.lstrip(".").upper(), markup=False)
        return path

    def _save(self, what: str, export: Export) -> Path | None:
        """Decode what export records and save it with the record, so `vae-tui sample --from-png` draws it again."""

        def write(image: object) -> Path | None:
            return self.write_export(what, ".png", lambda path: save_drawn(path, export, image))

        return self.model_work("the image is not saved", lambda: export_image(export, self.decoder), write)

    def action_save_image(self) -> Path | None:
        """Save the current image, upscaled by nearest neighbour."""
        state = self.state
        scale = max(1, round(IMAGE_PNG_PX / self.checkpoint.config.image_size))
        return self._save("z", image_export(self.checkpoint, list(state.z), state.label, scale))

    def action_save_strip(self) -> Path | None:
        """Save the strip (traversal, and for the CVAE every class) as one grid; on the map, the manifold grid."""
        if self.map.shown:
            return self.save_manifold()
        state = self.state
        export = strip_export(self.checkpoint, list(state.z), state.label, state.selected, STRIP_PNG_SCALE)
        return self._save(f"z{state.selected}-strip", export)

    def action_open_picker(self) -> None:
        if self.lacks("open_picker"):
            return
        atlas = self.checkpoint.atlas

        def chosen(image: int | None) -> None:
            if image is not None:
                self.start_from_test_image(image)

        self.app.push_screen(PickerScreen(atlas, self.checkpoint.class_names, self.state.label), chosen)

    def start_from_test_image(self, image: int) -> None:
        """z becomes the encoding of the atlas' stored test image number image (for the CVAE, under its class);
        the preview shows the original, its reconstruction and the edit."""
        atlas = self.checkpoint.atlas
        index = int(atlas.image_indices[image])
        self.start_from_pixels(
            atlas.images[image].float() / 255, int(atlas.image_labels[image]), f"Test #{index}", index
        )

    def start_from_pixels(self, pixels: torch.Tensor, label: int | None, name: str, index: int | None) -> None:
        """z becomes the encoding of pixels (the model's shape) under class label (None: the class they fit best);
        the preview shows them, their reconstruction and the edit."""
        model = self.decoder.model

        def encode() -> tuple[int, list[float], torch.Tensor, float, float]:
            chosen = best_class(model, pixels) if label is None else label
            mu = self.decoder.encode(pixels, chosen)
            decoded = self.decoder.images(torch.tensor([mu]), torch.tensor([chosen]))[0]
            with torch.no_grad():  # how well the model fits them: the negative ELBO at mu, as the atlas has it
                loss, recon = image_losses(model, pixels.reshape(1, -1).float(), torch.tensor([chosen]))
            return chosen, mu, decoded, loss.item(), recon.item()

        def start(encoded: tuple[int, list[float], torch.Tensor, float, float]) -> None:
            chosen, mu, decoded, loss, recon = encoded
            self.reference = Reference(name, index, pixels, decoded, chosen)
            self.state.start_from(mu, chosen)
            self.notify(self.fit_text(name, loss, recon), title="Fit", markup=False, timeout=8)

        self.model_work(f"z does not start from {name}", encode, start)

    def fit_text(self, name: str, loss_value: float, recon_value: float) -> str:
        """How well the model fits an image: its loss (the negative ELBO at z = mu, as the atlas stores each test
        image's) and where that falls among the stored test images' losses."""
        said = f"{name}: loss {loss_value:.0f} nats (reconstruction {recon_value:.0f})"
        atlas = self.checkpoint.atlas
        if atlas is None or not atlas.has_losses:
            return f"{said}; this checkpoint stores no test images' losses to compare with"
        if loss_value > atlas.loss.max().item():
            return (
                f"{said}: worse than every stored test image. It is far from what the model learned "
                f"({printable(self.checkpoint.dataset)}), so the reconstruction is what it makes of it"
            )
        share = min(max(round(atlas.loss_percentile(loss_value)), 1), 99)
        return f"{said}: fits like the {ordinal(share)} percentile of the test images (higher fits worse)"

    # --- the map (vae_tui.screens.map_mode) ---------------------------------------------------------------

    def action_toggle_map(self) -> None:
        if self.lacks("toggle_map"):
            return
        self.map.shown = not self.map.shown
        self.map.focus = True
        self.set_class(self.map.shown, "map")
        self._show_text()
        if self.frame is not None:
            self.show_frame_images(self.frame)
            if self.strips_missing():
                self.decode_state()  # the map's frames have no strips
        if self.map.shown:
            self.call_after_refresh(self._show_text)  # once laid out: the title's length depends on the map's width

    def action_back(self) -> None:
        """Escape: leave the map; else clear the interpolation's marks."""
        if self.map.shown:
            self.action_toggle_map()
        else:
            self.action_clear_marks()

    def action_toggle_focus(self) -> None:
        self.map.focus = not self.map.focus
        self._show_text()

    def action_cycle_axes(self) -> None:
        self.map.axes.cycle(self.state.selected)
        self._show_text()

    def on_map_view_clicked(self, message: MapView.Clicked) -> None:
        self.map.focus = True
        self.state.set_z(self.map.placed(self.state, message.u, message.v))
        self._show_text()  # the focus, even where z is where it was

    def action_cycle_colour(self) -> None:
        """c on the map: colour the points by class, by the selected dimension's value, by reconstruction error."""
        if self.map.next_colouring() == "error":
            self.notify(NO_LOSSES, severity="warning", markup=False)
        self._show_text()

    def action_toggle_map_image(self) -> None:
        """i on the map: beside it, the stored test image nearest to the cursor, or the decoded z."""
        self.map.nearest_shown = not self.map.nearest_shown
        self._show_text()
        if not self.map.nearest_shown and self.frame is not None:
            self.show_frame_images(self.frame)

    def action_toggle_nearest(self) -> None:
        """n: the strip shows the stored test images nearest to z (enter on one starts from it), or the traversal."""
        if self.lacks("toggle_nearest"):
            return
        if self.map.shown:
            self.notify("n fills the strip, which the map hides: leave the map (m) first", markup=False)
            return
        self.nearest_strip = not self.nearest_strip
        if self.nearest_strip and self.layout_plan is not None and self.layout_plan.one_strip and self.show_classes:
            self.show_classes = False  # only one strip fits, and it showed the classes: the strip n fills
            self._arrange()
        self._show_strips()

    def action_pick_nearest(self) -> None:
        """Start from the stored test image nearest to the cursor on the map."""
        image = self.map.nearest_image(self.state)
        if image is None:
            self.notify(NO_IMAGES, severity="warning", markup=False)
            return
        self.start_from_test_image(image)

    def save_manifold(self) -> Path | None:
        """The decoded 15x15 grid over the map's view: x left to right, y top to bottom, the other components of z
        and the class kept."""
        z, (x, y) = self.map.manifold(self.state)
        caption = f"the map's view: {x} left to right, {y} top to bottom, the rest of z kept"
        if self.checkpoint.model.conditional:
            caption += f"; class {class_name(self.checkpoint, self.state.label)}"
        classes = [self.state.label] * len(z)
        export = export_of(self.checkpoint, z, classes, MANIFOLD_SIDE, MANIFOLD_PNG_SCALE, caption=caption)
        return self._save(f"map-{x}-{y}-manifold", export)

    # --- interpolation (vae_tui.screens.interpolation) ----------------------------------------------------

    def action_mark(self, name: str) -> None:
        """Mark the current z and class as end name ("a" or "b"); with both marked, the strip shows the path."""
        ends = self.path.ends_with(name, self.state.z, self.state.label)

        def marked(strip: torch.Tensor | None) -> None:
            self.path.set_ends(ends, strip)
            text = self.path.end_text(name, self.checkpoint.class_names)
            self.notify(f"Marked {text}", title="Interpolation", markup=False)
            self._show_strips()

        self.model_work(f"{name} is not marked", lambda: decode_path(ends, self.decoder), marked)

    def action_clear_marks(self) -> None:
        self.path.clear()
        self._show_strips()

    def _path_or_say(self) -> bool:
        if not self.path.complete:
            self.notify("Mark both ends first: a at one z, b at another", severity="warning")
        return self.path.complete

    def action_play(self) -> None:
        if self.playback is not None or not self._path_or_say():
            return
        ends = self.path.ends

        def play(frames: torch.Tensor) -> None:
            if self.playback is not None or self.path.ends is not ends:  # played, or marked again, meanwhile
                return
            self._set_label("#preview-title", "Playing a -> b · any key stops")
            view = self.query_one("#map-image" if self.map.shown else "#image", ImageView)
            self.playback = Playback(self, frames, view)

        self.model_work("the path is not played", lambda: decode_path(ends, self.decoder, PATH_FRAMES), play)

    def stop_playing(self) -> None:
        if self.playback is not None:
            self.playback.stop()
        self.playback = None
        if self.frame is not None:
            self.show_frame_images(self.frame)
        self._show_text()

    def on_key(self, event: Key) -> None:
        """Any key stops the playback, and does nothing else; a key whose action the model cannot do says why."""
        if self.playback is not None:
            event.stop()
            event.prevent_default()
            self.stop_playing()
        elif event.key in ACTION_OF_KEY and self.lacks(ACTION_OF_KEY[event.key]):
            event.stop()
            event.prevent_default()

    def action_save_gif(self) -> Path | None:
        """Save the path a -> b and back as a looping GIF into the exports folder."""
        if not self._path_or_say():
            return None
        ends = self.path.ends
        export = export_of(
            self.checkpoint, [list(e.z) for e in ends.values()], [e.label for e in ends.values()], 2, GIF_SCALE
        )
        record = json.dumps({"path": {"frames": PATH_FRAMES, "back_and_forth": True}, **json.loads(export.to_json())})

        def write(frames: torch.Tensor) -> Path | None:
            return self.write_export("path", ".gif", lambda path: save_path_gif(path, frames, record))

        return self.model_work("the GIF is not saved", lambda: decode_path(ends, self.decoder, PATH_FRAMES), write)

    # --- following a run (vae_tui.screens.follow) ---------------------------------------------------------

    def on_checkpoint_watcher_loaded(self, message: CheckpointWatcher.Loaded) -> None:
        """Show the reloaded checkpoint's model in place of the current one, keeping z, class and selection (an
        older epoch loaded late is not shown)."""
        if message.checkpoint.epoch < self.checkpoint.epoch:
            return
        checkpoint, old = message.checkpoint, self.checkpoint.config
        new = checkpoint.config
        if (new.kind, new.latent_dim, new.num_classes, new.input_dim, new.image_shape) != (
            old.kind,
            old.latent_dim,
            old.num_classes,
            old.input_dim,
            old.image_shape,
        ):
            self.notify(
                printable(f"{self.follow} now holds a model of another shape: not reloaded"),
                severity="warning",
                markup=False,
            )
            return
        self.checkpoint, self.decoder = checkpoint, Decoder(checkpoint.model)
        self.capabilities = Capabilities.of(checkpoint)
        atlas, state = checkpoint.atlas, self.state
        if atlas is not None:
            state.set_statistics(atlas.variance, atlas.kl)
        self.map.rebuild(atlas, state.active)
        if atlas is None:  # what needs an atlas goes with it
            self.nearest_strip = False
            if self.map.shown:
                self.map.shown = False
                self.set_class(False, "map")
        self.query_one(LatentPanel).statistics_changed()
        self.path.redecode(self.decoder)  # what the old weights drew beside z, drawn by the new ones
        if (reference := self.reference) is not None:  # the picture's reconstruction by the new model; z stays
            mu = self.decoder.encode(reference.original, reference.label)
            decoded = self.decoder.images(torch.tensor([mu]), torch.tensor([reference.label]))[0]
            self.reference = Reference(reference.name, reference.index, reference.original, decoded, reference.label)
        title = self.query_one(TitleBar)
        title.variants = title_variants(checkpoint, self.source)
        title.refresh()
        state.redraw()  # the same z, drawn by the new weights
        title.flash(f"reloaded epoch {checkpoint.epoch}")  # in the title bar: a toast each epoch would cover
