"""Values read from a run folder's files, checked before they are kept: JSON parsed with bounded integers and
depth, epoch counts and losses in range and finite, strings printable. A value of the wrong type is absent (None).
"""

import json
import math

from models.limits import MAX_EPOCHS
from models.text import printable

MAX_INTEGER_DIGITS = 20  # models.checkpoint_file's: no count vae-tui writes has more
MAX_LOSS = 1e30  # nats per image: a trained or diverging model's loss is far below, and a plot of it stays finite
MAX_TEXT = 64  # characters of a model, arch or dataset name kept; vae-tui's are under 16


def _bounded_int(text: str) -> int | float:
    """json's parse_int: the integer, or inf for one longer than any vae-tui writes (no bound below admits inf)."""
    return int(text) if len(text.lstrip("-")) <= MAX_INTEGER_DIGITS else math.inf


def parse_json(text: str | bytes) -> object:
    """JSON read from a run folder; ValueError if it is not JSON or is nested too deeply to parse."""
    try:
        return json.loads(text, parse_int=_bounded_int)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def epoch_count(value: object) -> int | None:
    """value if it is an epoch number or count vae-tui could have written (an int from 0 to MAX_EPOCHS), else None."""
    return value if type(value) is int and 0 <= value <= MAX_EPOCHS else None


def loss_value(value: object) -> float | None:
    """value as a float if it is a loss vae-tui could have written (finite, below MAX_LOSS in size), else None."""
    if type(value) not in (int, float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int past float's range
        return None
    return number if math.isfinite(number) and abs(number) < MAX_LOSS else None


def text_value(value: object) -> str | None:
    """value made printable and cut to MAX_TEXT characters if it is a string, else None (a 5 or a list is absent)."""
    if not isinstance(value, str):
        return None
    shown = printable(value)
    return shown if len(shown) <= MAX_TEXT else f"{shown[: MAX_TEXT - 3]}..."


def metrics_row(row: object) -> dict | None:
    """A metrics.jsonl row as the listing keeps it (epoch, train_loss, test_loss, each checked), or None; the test
    loss's parts (test_reconstruction, test_kl), the epoch's seconds and its images per second are kept where they
    are valid (finite; the times and rates not negative), and left out where they are not (older rows lack them)."""
    if not isinstance(row, dict):
        return None
    epoch, train, test = (
        epoch_count(row.get("epoch")),
        loss_value(row.get("train_loss")),
        loss_value(row.get("test_loss")),
    )
    if epoch is None or train is None or test is None:
        return None
    kept = {"epoch": epoch, "train_loss": train, "test_loss": test}
    for key in OPTIONAL_METRICS:
        value = loss_value(row.get(key))
        if value is not None and (key in ("test_reconstruction", "test_kl") or value >= 0):
            kept[key] = value
    return kept


OPTIONAL_METRICS = ("test_reconstruction", "test_kl", "seconds", "images_per_s")
