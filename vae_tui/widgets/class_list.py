"""The class list: the dataset's class names; the highlighted one is the current class."""

from textual.widgets import OptionList
from textual.widgets.option_list import Option

from models.text import printable


class ClassList(OptionList, can_focus=False):
    """Digits pick a class from the keyboard; a click picks one with the mouse."""

    DEFAULT_CSS = "ClassList { width: 18; height: 1fr; border: none; padding: 0; }"

    def __init__(self, class_names: list[str], **kwargs: object) -> None:
        options = [Option(f"{i} {printable(name)}", id=str(i)) for i, name in enumerate(class_names)]
        super().__init__(*options, markup=False, **kwargs)  # names come from the checkpoint: shown as written
