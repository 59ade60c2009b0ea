"""The picker: the test images stored in the checkpoint's atlas, by class and paged, as half-block thumbnails."""

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.events import Resize
from textual.screen import ModalScreen
from textual.widgets import Label

from models.atlas import Atlas
from models.text import printable
from vae_tui.layout import Grid, block_grid
from vae_tui.widgets.thumbnails import Thumbnails

PAGE = 10  # thumbnails a page
HINTS = (  # the keys' hint, longest first: the picker shows the first that fits its width
    "arrows: move · pgup/pgdn: page · 0-9: class · enter: pick · escape: cancel",
    "arrows · pgup/pgdn: page · 0-9: class · enter: pick · esc: cancel",
    "arrows · [ ]: page · 0-9: class · enter: pick · esc: cancel",
    "enter: pick · esc: cancel",
)


class PickerScreen(ModalScreen[int | None]):
    """Returns the index (into the atlas' images) of the chosen test image, or None when cancelled."""

    BINDINGS = [
        Binding("escape,q", "dismiss", "Cancel"),
        Binding("left,h", "move(-1)", "Previous image"),
        Binding("right,l", "move(1)", "Next image"),
        Binding("up,k", "move_rows(-1)", "Image above"),
        Binding("down,j", "move_rows(1)", "Image below"),
        Binding("pageup,left_square_bracket", "page(-1)", "Previous page"),
        Binding("pagedown,right_square_bracket", "page(1)", "Next page"),
        Binding("enter", "choose", "Start from this image"),
        *[Binding(str(i), f"pick_class({i})", f"Class {i}", show=False) for i in range(10)],
    ]
    DEFAULT_CSS = """
    PickerScreen { align: center middle; }
    PickerScreen > Vertical { width: 95%; height: 95%; border: round $accent; padding: 0 1; background: #000000; }
    PickerScreen #picker-title { text-style: bold; color: $accent; }
    PickerScreen #picker-hint { color: $text-muted; }
    PickerScreen Thumbnails { height: 1fr; }
    """

    def __init__(self, atlas: Atlas, class_names: list[str], label: int) -> None:
        super().__init__()
        self.atlas, self.class_names = atlas, class_names
        by_class: dict[int, list[int]] = {}
        for image, image_label in enumerate(atlas.image_labels.tolist()):  # one pass: 65,536 images and classes
            by_class.setdefault(image_label, []).append(image)
        self.by_class = dict(sorted(by_class.items()))
        self.label = label if label in self.by_class else next(iter(self.by_class))
        self.position = 0  # within the class's images

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Start from a test image"
            yield Label("", id="picker-title", markup=False)
            yield Thumbnails([[""] * PAGE], id="picker-images")
            yield Label(HINTS[0], id="picker-hint", markup=False)

    @property
    def images(self) -> list[int]:
        """The atlas' image indices of the current class."""
        return self.by_class[self.label]

    @property
    def columns(self) -> int:
        return self.query_one(Thumbnails).grid.columns

    def on_resize(self, event: Resize) -> None:
        box = self.query_one(Vertical)
        grid = block_grid(PAGE, box.size.width - 2, box.size.height - 4)  # the border, title and hint
        if grid is not None:
            self.query_one(Thumbnails).arrange(grid)
        room = box.content_size.width
        self.query_one("#picker-hint", Label).update(next((h for h in HINTS if len(h) <= room), HINTS[-1]))
        self._show()

    def on_mount(self) -> None:
        self.call_after_refresh(self.on_resize, None)

    def _show(self) -> None:
        images, page = self.images, self.position // PAGE
        shown = images[page * PAGE : (page + 1) * PAGE]
        pages = -(-len(images) // PAGE)
        name = printable(self.class_names[self.label]) if self.label < len(self.class_names) else ""
        self.query_one("#picker-title", Label).update(
            f"Class {self.label} {name} · page {page + 1} of {pages} · image {self.position + 1} of {len(images)}"
        )
        thumbnails = self.query_one(Thumbnails)
        indices = [int(self.atlas.image_indices[i]) for i in shown]
        thumbnails.label_variants = [[f"#{i}" for i in indices], [str(i) for i in indices]]
        thumbnails.arrange(Grid(len(shown), thumbnails.grid.size, thumbnails.grid.columns))
        pixels = self.atlas.images[shown].float() / 255
        thumbnails.show("", pixels, self.position - page * PAGE)

    def action_move(self, delta: int) -> None:
        self.position = min(max(self.position + delta, 0), len(self.images) - 1)
        self._show()

    def action_move_rows(self, delta: int) -> None:
        self.action_move(delta * self.columns)

    def action_page(self, delta: int) -> None:
        last_page = (len(self.images) - 1) // PAGE
        page = min(max(self.position // PAGE + delta, 0), last_page)
        self.position = min(page * PAGE + self.position % PAGE, len(self.images) - 1)
        self._show()

    def action_pick_class(self, label: int) -> None:
        if label in self.by_class:
            self.label, self.position = label, 0
            self._show()

    def action_choose(self) -> None:
        self.dismiss(self.images[self.position])

    def on_thumbnails_picked(self, message: Thumbnails.Picked) -> None:
        page = self.position // PAGE
        self.position = page * PAGE + message.index
        self.action_choose()
