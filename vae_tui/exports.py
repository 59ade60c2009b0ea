"""PNG exports that say how they were made: a text chunk naming the weights and each image's class and z."""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from models import Checkpoint, UserError, rows_per_class
from models.atomic import write_atomic
from models.text import printable
from train.grids import PAD_VALUE, encode_png, font_size, grid, to_image, with_labels
from train.image_file import open_image
from vae_tui.decoding import TRAVERSAL_VALUES, Decoder

TEXT_KEY = "vae-tui"  # the PNG tEXt keyword
FORMAT = 1
MAX_LABEL = 200  # characters of a row label or a caption in a record
GRID_PAD = 2  # pixels between a grid's cells and around them
Z_LIMIT = 1e4  # the explorer keeps z far inside this (the prior is a standard normal); beyond it is garbage


@dataclass(frozen=True)
class Export:
    """How a PNG was drawn: which weights, and each cell's class and z (None: a blank cell of a grid)."""

    checkpoint: str  # the checkpoint's absolute path when the PNG was written
    sha256: str  # of its tensor data, as the checkpoint stores it
    kind: str  # "vae" or "cvae"
    classes: list[int | None]  # per cell; for a VAE the class picked in the explorer, or None
    z: list[list[float] | None]  # per cell, latent_dim values
    columns: int | None  # cells per row of a grid; None: a single image without a border
    scale: int  # PNG pixels per image pixel
    rows: tuple[str, ...] = ()  # a grid's row labels, drawn left of its rows ("": none for that row)
    caption: str = ""  # what the grid shows, drawn under it after the weights' folder and file

    def to_json(self) -> str:
        """The record as the PNG stores it: one image's class and z as they are, a grid's as lists."""
        single = self.columns is None
        record = {
            "format": FORMAT,
            "checkpoint": self.checkpoint,
            "sha256": self.sha256,
            "kind": self.kind,
            "class": self.classes[0] if single else self.classes,
            "z": self.z[0] if single else self.z,
            "columns": self.columns,
            "scale": self.scale,
        }
        if self.rows or self.caption:  # recorded only when set: a record without them draws a bare grid
            record["rows"], record["caption"] = list(self.rows), self.caption
        return json.dumps(record, allow_nan=False)


def export_of(
    checkpoint: Checkpoint,
    z: list[list[float] | None],
    classes: list[int | None],
    columns: int | None,
    scale: int,
    rows: list[str] | tuple[str, ...] = (),
    caption: str = "",
) -> Export:
    """The record of cells z with classes, drawn by checkpoint; a grid's row labels and caption, if any, are drawn
    with it (the weights' folder and file before the caption)."""
    path = str(Path(checkpoint.path).resolve()) if checkpoint.path else ""
    z = [None if cell is None else [float(v) for v in cell] for cell in z]
    kind = checkpoint.config.kind
    return Export(path, checkpoint.sha256 or "", kind, list(classes), z, columns, scale, tuple(rows), caption)


def image_export(checkpoint: Checkpoint, z: list[float], label: int, scale: int) -> Export:
    """One decoded image, as the explorer's `s` saves it."""
    return export_of(checkpoint, [list(z)], [label], None, scale)


def strip_export(checkpoint: Checkpoint, z: list[float], label: int, dim: int, scale: int) -> Export:
    """The explorer's strip as one grid: z[dim] from -3 to +3 and, for a CVAE, a row of every class at z."""
    traversal = [[*z[:dim], value, *z[dim + 1 :]] for value in TRAVERSAL_VALUES]
    rows: list[tuple[list, list]] = [(traversal, [label] * len(traversal))]
    caption = f"z{dim} from {TRAVERSAL_VALUES[0]:+g} to {TRAVERSAL_VALUES[-1]:+g}, left to right"
    titles = [f"z{dim}"]
    if checkpoint.model.conditional:
        num_classes = checkpoint.config.num_classes
        class_z, class_labels = rows_per_class(torch.tensor([z]), torch.arange(num_classes))
        rows.append((class_z.tolist(), class_labels.tolist()))
        titles = [f"z{dim} · {class_name(checkpoint, label)}", f"classes 0-{num_classes - 1}"]
        caption += "; below, each class at this z"
    columns = max(len(cells) for cells, _ in rows)
    z: list[list[float] | None] = []
    classes: list[int | None] = []
    for cells, labels in rows:  # each row filled up with blank cells
        blank = [None] * (columns - len(cells))
        z += cells + blank
        classes += labels + blank
    return export_of(checkpoint, z, classes, columns, scale, titles, caption)


def class_name(checkpoint: Checkpoint, label: int) -> str:
    """The checkpoint's name for class label (its number where it has none)."""
    names = checkpoint.class_names
    return printable(names[label]) if 0 <= label < len(names) else str(label)


def draw(export: Export, decoder: Decoder) -> torch.Tensor:
    """The export's pixels, (H, W) grey or (3, H, W) RGB, in [0, 1]: its cells decoded in one batch, blanks in the
    grid's padding grey."""
    filled = [i for i, cell in enumerate(export.z) if cell is not None]
    z = torch.tensor([export.z[i] for i in filled], dtype=torch.float32)  # (N, latent_dim)
    labels = torch.tensor([export.classes[i] or 0 for i in filled])
    images = decoder.images(z, labels)  # (N, H, W) or (N, 3, H, W)
    if export.columns is None:
        return images[0]
    cells = torch.full((len(export.z), *images.shape[1:]), PAD_VALUE)
    cells[filled] = images
    return grid(cells, export.columns, GRID_PAD)


def source_line(export: Export) -> str:
    """The weights that drew an export, as the line under a grid names them: their folder and file, and the kind."""
    where = Path(export.checkpoint)
    source = f"{where.parent.name}/{where.name}" if export.checkpoint else "weights of unknown origin"
    return f"{printable(source)} · {export.kind.upper()}"


def export_image(export: Export, decoder: Decoder) -> Image.Image:
    """The export as the PNG shows it: drawn, upscaled, and a grid with row labels or a caption labelled."""
    pixels = draw(export, decoder)
    image = to_image(pixels, export.scale)
    if export.columns is None or not (export.rows or export.caption):
        return image
    nrows = -(-len(export.z) // export.columns)
    side = (pixels.shape[-2] - GRID_PAD) // nrows - GRID_PAD  # a cell's height: the grid is rows of cells
    rows = []
    for r, label in enumerate(export.rows):
        top = GRID_PAD + r * (side + GRID_PAD)
        rows.append((top * export.scale, (top + side) * export.scale, printable(label)))
    caption = " · ".join(part for part in (source_line(export), printable(export.caption)) if part)
    return with_labels(image, rows, caption, font_size(side * export.scale))


def save_export(path: str | Path, export: Export, decoder: Decoder) -> Path:
    """Draw the export and write it as a PNG carrying its record, atomically."""
    return save_drawn(path, export, export_image(export, decoder))


def save_drawn(path: str | Path, export: Export, image: Image.Image) -> Path:
    """The export drawn (export_image's) as a PNG carrying its record, written atomically."""
    return write_atomic(path, encode_png(image, {TEXT_KEY: export.to_json()}))


def read_export(path: Path) -> Export:
    """The record in a PNG that vae-tui wrote; a UserError naming what is wrong otherwise."""
    shown = printable(str(path))
    # Only the header and the text chunks before the image data are read, never the pixels: any size will do here,
    # and the size of what the record asks to draw is checked against the record (commands/sample.py).
    with open_image(path, max_pixels=1 << 62, formats=("PNG",)) as image:
        text = image.info.get(TEXT_KEY)
    if text is None:
        raise UserError(f"{shown} has no vae-tui record: only PNGs saved by `vae-tui sample` or the explorer carry one")
    if not isinstance(text, str):
        raise UserError(f"{shown}: its vae-tui record is garbled (not text)")
    try:
        return _parse(text)
    except RecursionError:
        raise UserError(f"{shown}: its vae-tui record is garbled (nested too deeply)") from None
    except (ValueError, TypeError, KeyError, OverflowError) as e:
        raise UserError(f"{shown}: its vae-tui record is garbled ({printable(str(e))})") from None


def _z_value(value: object) -> bool:
    """Whether value is a number a z may hold: an int or float (no bool) within ±Z_LIMIT, huge integers included."""
    if type(value) is int:
        return -Z_LIMIT <= value <= Z_LIMIT
    return type(value) is float and math.isfinite(value) and abs(value) <= Z_LIMIT


def _parse(text: str) -> Export:
    """The record's fields, type-checked; ValueError, TypeError or KeyError if anything is off."""
    record = json.loads(text)
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"not a format-{FORMAT} record")
    columns = record["columns"]
    single = columns is None
    if not single and (type(columns) is not int or columns < 1):
        raise ValueError("columns must be a positive integer or null")
    classes = [record["class"]] if single else record["class"]
    z = [record["z"]] if single else record["z"]
    if not isinstance(classes, list) or not isinstance(z, list) or len(classes) != len(z) or not z:
        raise ValueError("class and z must be lists of the same, non-zero length")
    if any(c is not None and type(c) is not int for c in classes):
        raise ValueError("each class must be an integer or null")
    for cell in z:
        if cell is not None and not (isinstance(cell, list) and all(_z_value(v) for v in cell)):
            raise ValueError(f"each z must be a list of numbers within ±{Z_LIMIT:g} or null")
    if single and z[0] is None:
        raise ValueError("a single image needs its z")
    scale = record["scale"]
    if type(scale) is not int or scale < 1:
        raise ValueError("scale must be a positive integer")
    checkpoint, sha256, kind = record["checkpoint"], record["sha256"], record["kind"]
    if not all(isinstance(v, str) for v in (checkpoint, sha256, kind)):
        raise ValueError("checkpoint, sha256 and kind must be strings")
    rows, caption = record.get("rows", []), record.get("caption", "")
    if not isinstance(rows, list) or not all(isinstance(r, str) and len(r) <= MAX_LABEL for r in rows):
        raise ValueError(f"rows must be a list of strings of at most {MAX_LABEL} characters")
    if not isinstance(caption, str) or len(caption) > MAX_LABEL:
        raise ValueError(f"caption must be a string of at most {MAX_LABEL} characters")
    if (rows or caption) and single or len(rows) > -(-len(z) // (columns or 1)):
        raise ValueError("only a grid has row labels and a caption, at most one label a row")
    return Export(checkpoint, sha256, kind, classes, z, columns, scale, tuple(rows), caption)


def check_drawable(export: Export, checkpoint: Checkpoint, png: Path) -> None:
    """Refuse, in one line, a record that checkpoint did not draw or cannot draw."""
    shown = printable(str(png))
    if export.sha256 != checkpoint.sha256:
        raise UserError(
            f"{shown} was drawn by other weights (SHA-256 {printable(export.sha256[:12])}...) than "
            f"{printable(str(checkpoint.path))} ({(checkpoint.sha256 or '')[:12]}...): give the checkpoint it names, "
            f"{printable(export.checkpoint)}"
        )
    latent_dim, num_classes = checkpoint.config.latent_dim, checkpoint.config.num_classes
    if export.kind != checkpoint.config.kind or any(cell is not None and len(cell) != latent_dim for cell in export.z):
        raise UserError(f"{shown}: its vae-tui record is garbled (it does not fit the checkpoint's model)")
    if any(c is not None and not 0 <= c < num_classes for c in export.classes) or (
        checkpoint.model.conditional
        and any(c is None for c, z in zip(export.classes, export.z, strict=True) if z is not None)
    ):
        raise UserError(f"{shown}: its vae-tui record is garbled (a class outside 0-{num_classes - 1})")
