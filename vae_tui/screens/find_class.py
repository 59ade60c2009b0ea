"""A small dialog to find a class by typing part of its name or its number, for datasets of many classes."""

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from vae_tui.class_names import matching_classes, numbered


class FindClassScreen(ModalScreen[int | None]):
    """Returns the chosen class, or None when cancelled. The list holds the classes the typed text matches, best
    first; up and down move in it while the text keeps the keyboard, enter or a click picks."""

    BINDINGS = [
        Binding("escape", "dismiss", "Cancel"),
        Binding("up", "move(-1)", "Previous match", show=False),
        Binding("down", "move(1)", "Next match", show=False),
        Binding("pageup", "move(-10)", "Ten matches up", show=False),
        Binding("pagedown", "move(10)", "Ten matches down", show=False),
    ]
    DEFAULT_CSS = """
    FindClassScreen { align: center middle; }
    FindClassScreen > Vertical { width: 48; max-width: 95%; height: auto; max-height: 90%;
                                 border: round $accent; padding: 0 1; background: $surface; }
    FindClassScreen OptionList { height: auto; max-height: 12; border: none; padding: 0; background: $surface;
                                 scrollbar-size-vertical: 1; }
    FindClassScreen Label { color: $text-muted; }
    """

    def __init__(self, class_names: list[str], current: int) -> None:
        super().__init__()
        self.class_names, self.current = class_names, current
        self.labels = numbered(class_names)
        self.matches: list[int] = []

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = f"Find a class ({len(self.class_names)})"
            yield Input(placeholder="part of a name, or a number")
            options = OptionList(markup=False)  # names come from the checkpoint: shown as written
            options.can_focus = False  # the Input keeps the keyboard; up and down move here all the same
            yield options
            yield Label("", id="find-hint", markup=False)

    def on_mount(self) -> None:
        self._show("")

    def on_input_changed(self, event: Input.Changed) -> None:
        self._show(event.value)

    def _show(self, query: str) -> None:
        """List the classes query matches, the best (or, with nothing typed, the current class) highlighted."""
        self.matches = matching_classes(self.class_names, query)
        options = self.query_one(OptionList)
        options.set_options(Option(self.labels[label], id=str(label)) for label in self.matches)
        if self.matches:
            options.highlighted = self.matches.index(self.current) if not query.strip() else 0
        count = len(self.matches)
        said = "no class matches" if not count else f"{count} of {len(self.class_names)}" if query.strip() else ""
        hint = "enter: pick · escape: cancel"
        self.query_one("#find-hint", Label).update(f"{said} · {hint}" if said else f"type to filter · {hint}")

    def action_move(self, delta: int) -> None:
        options = self.query_one(OptionList)
        if self.matches:
            highlighted = 0 if options.highlighted is None else options.highlighted
            options.highlighted = min(max(highlighted + delta, 0), len(self.matches) - 1)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        highlighted = self.query_one(OptionList).highlighted
        if self.matches and highlighted is not None:
            self.dismiss(self.matches[highlighted])

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.matches[event.option_index])
