"""Every key of the explorer, in one table: bindings, footer, help screen and command palette use it."""

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class Key:
    """One action and the keys that run it."""

    keys: str  # Textual key names, comma-separated
    action: str  # screen action, with arguments
    description: str  # for the help screen and the command palette
    display: str  # how the help screen writes the keys
    footer: str = ""  # short label in the footer; empty: not in the footer


EXPLORER_KEYS = [
    Key("up,k", "select(-1)", "Select the previous latent dimension", "up / k", "dim"),
    Key("down,j", "select(1)", "Select the next latent dimension", "down / j"),
    Key("shift+up,K", "select(-5)", "Select five dimensions up (on the map: five cursor steps)", "shift+up / K"),
    Key("shift+down,J", "select(5)", "Select five dimensions down (on the map: five cursor steps)", "shift+down / J"),
    Key("left,h", "nudge(-1)", "Nudge the selected dimension down by one step", "left / h", "nudge"),
    Key("right,l", "nudge(1)", "Nudge the selected dimension up by one step", "right / l"),
    Key("shift+left,H", "nudge(-5)", "Nudge down by five steps", "shift+left / H"),
    Key("shift+right,L", "nudge(5)", "Nudge up by five steps", "shift+right / L"),
    Key("left_square_bracket", "scale_step(0.5)", "Halve the step", "[", "step"),
    Key("right_square_bracket", "scale_step(2)", "Double the step", "]"),
    Key("equals_sign", "enter_value", "Type a value for the selected dimension", "="),
    Key("x", "zero", "Set the selected dimension to 0", "x"),
    *[Key(str(i), f"pick_class({i})", f"Pick class {i}", str(i)) for i in range(10)],
    Key("slash", "find_class", "Find a class by part of its name or its number (enter picks)", "/"),
    Key("r", "randomize", "Sample z from the prior", "r", "random"),
    Key("backspace", "reset", "Reset z to the start point", "backspace"),
    Key("u", "undo", "Undo the last change", "u", "undo"),
    Key("t", "toggle_strip", "Show the other strip when only one fits", "t"),
    Key("v", "toggle_inactive", "Hide or show the inactive dimensions (marked ·, dimmed)", "v"),
    Key("S", "sort_by_kl", "Sort the latent panel by KL, largest first, or back by number", "S"),
    Key("s", "save_image", "Save the image as PNG", "s", "save"),
    Key("g", "save_strip", "Save the strip as a grid PNG (on the map: the 15x15 manifold over the view)", "g"),
    Key("o", "open_picker", "Start from a stored test image: original, reconstruction and edit side by side", "o"),
    Key("m", "toggle_map", "Show the map of the test set's encodings in place of the preview, or leave it", "m", "map"),
    Key("tab", "toggle_focus", "Map: give the arrows to the latent panel, or back to the map's cursor", "tab"),
    Key("A", "cycle_axes", "Map: principal axes, or x the selected dimension and y each active one in turn", "A"),
    Key("enter", "pick_nearest", "Map: start from the test image nearest to the cursor", "enter"),
    Key("c", "cycle_colour", "Map: colour the points by class, the selected dimension, or reconstruction error", "c"),
    Key("i", "toggle_map_image", "Map: beside it, the test image nearest to the cursor, or the decoded z", "i"),
    Key("n", "toggle_nearest", "Show the stored test images nearest to z in the strip (click: start there)", "n"),
    Key("a", "mark('a')", "Mark the current z and class as end a of an interpolation", "a"),
    Key("b", "mark('b')", "Mark the current z and class as end b; the strip shows the path a -> b", "b"),
    Key("p", "play", "Play the path a -> b in the preview (16 frames, back and forth); any key stops", "p"),
    Key("G", "save_gif", "Save the path a -> b and back as an animated GIF", "G"),
    Key("escape", "back", "Leave the map; else clear the a and b marks", "escape"),
]
APP_KEYS = [
    Key("question_mark", "help", "Show every key", "?", "help"),
    Key("ctrl+p", "command_palette", "Open the command palette", "ctrl+p"),
    Key("q", "quit", "Quit", "q", "quit"),
]
FOOTER_DISPLAY = {"up,k": "\u2191\u2193", "left,h": "\u2190\u2192", "left_square_bracket": "[ ]"}


def palette_title(key: Key) -> str:
    """The key's command-palette title: it contains the footer word, so typing what the footer shows finds it."""
    if not key.footer or key.footer in key.description.lower():
        return key.description
    return f"{key.footer.capitalize()}: {key.description[0].lower()}{key.description[1:]}"


def bindings(keys: list[Key]) -> list[Binding]:
    """Textual bindings for keys; those with a footer label show in the footer."""
    return [
        Binding(
            k.keys, k.action, k.footer or k.description, show=bool(k.footer), key_display=FOOTER_DISPLAY.get(k.keys)
        )
        for k in keys
    ]
