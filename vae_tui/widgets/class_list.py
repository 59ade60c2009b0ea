"""The class list: the dataset's class names, numbered; the highlighted one is the current class."""

from textual.widgets import OptionList
from textual.widgets.option_list import Option

from vae_tui.class_names import numbered


class ClassList(OptionList, can_focus=False):
    """Digits and `/` pick a class from the keyboard, a click with the mouse; the list scrolls to keep the current
    class in view."""

    DEFAULT_CSS = """
    ClassList { width: 18; height: 1fr; border: none; padding: 0; scrollbar-size-vertical: 1;
                text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, class_names: list[str], **kwargs: object) -> None:
        options = [Option(text, id=str(label)) for label, text in enumerate(numbered(class_names))]
        super().__init__(*options, markup=False, **kwargs)  # names come from the checkpoint: shown as written
