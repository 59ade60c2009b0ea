"""Where the explorer's parts go for a terminal size: the preview's scale and the size of every thumbnail."""

import dataclasses
import math
from dataclasses import dataclass

IMAGE_SIDE = 28  # pixels, FashionMNIST's; the preview's scale is how many cells wide one pixel is
SHRUNK_MIN = 28  # an image larger than fits at scale 1 may be shrunk (area averaging) down to this side
CLASS_COLUMNS, LATENT_COLUMNS = 18, 30  # the class list and the latent panel, left of the preview
SIDE_COLUMNS = CLASS_COLUMNS + LATENT_COLUMNS  # a model of one class has no class list: LATENT_COLUMNS alone
FIXED_ROWS = 2  # the title bar and the footer
STRIP_PADDING = 2  # one blank column on each side of a strip under the preview
GAP = 1  # blank cells between thumbnails, and between the preview and a grid beside it
MAX_THUMBNAIL = 28  # at most the images' own size (larger would only repeat pixels)
BOTH_MIN = 10  # two strips are shown together only with thumbnails this large
ONE_MIN = 8  # below this, a strip is drawn at whatever size fits
TRAVERSAL_COUNT = 7
CLASS_WINDOW = 10  # a class strip too small for every class shows this many, the page holding the current class


@dataclass(frozen=True)
class Grid:
    """Thumbnails of one strip: count images of size x size pixels, columns to a row, each over a label line."""

    count: int
    size: int
    columns: int

    @property
    def height(self) -> int:
        """Rows of cells: a caption, then per row of thumbnails its half-block lines and a label line."""
        return 1 + math.ceil(self.count / self.columns) * ((self.size + 1) // 2 + 1)

    @property
    def width(self) -> int:
        return self.columns * self.size + (self.columns - 1) * GAP


@dataclass(frozen=True)
class Layout:
    """What the explorer shows at one size; a strip that is None is not shown (t shows the other one)."""

    scale: int  # the preview's integer scale (0: the preview is shrunk to fit)
    traversal: Grid | None
    classes: Grid | None
    classes_beside: bool  # the class grid sits beside the preview, not under it
    one_strip: bool  # only one of two strips fits: t switches between them
    preview: int = 0  # the preview's side in pixels as planned: scale x the images' side, or what it is shrunk to


def row_grid(count: int, width: int, rows: int, largest: int = MAX_THUMBNAIL) -> Grid | None:
    """The largest single row of count thumbnails, at most largest pixels, that fits in width x rows cells."""
    size = min(largest, (width - (count - 1) * GAP) // count, 2 * (rows - 2))
    return Grid(count, size, count) if size >= 2 else None


def block_grid(count: int, width: int, rows: int, largest: int = MAX_THUMBNAIL) -> Grid | None:
    """The largest grid of count thumbnails (any number of columns), at most largest pixels, that fits in width x
    rows cells."""
    best = None
    for columns in range(1, count + 1):
        lines = math.ceil(count / columns)
        size = min(largest, (width - (columns - 1) * GAP) // columns, 2 * ((rows - 1) // lines - 1))
        if size >= 2 and (best is None or size > best.size):
            best = Grid(count, size, columns)
    return best


def two_rows(classes: int, width: int, rows: int, largest: int = MAX_THUMBNAIL) -> tuple[Grid, Grid] | None:
    """The traversal and the class row one above the other in width x rows, the smaller thumbnail largest."""
    best, best_key = None, (0, 0)
    for traversal_rows in range(3, rows - 2):
        traversal = row_grid(TRAVERSAL_COUNT, width, traversal_rows, largest)
        class_row = row_grid(classes, width, rows - traversal_rows, largest)
        if traversal and class_row:
            key = (min(traversal.size, class_row.size), traversal.size + class_row.size)
            if key > best_key:
                best, best_key = (traversal, class_row), key
    return best


def preview_sizes(side: int, width: int, rows: int) -> list[int]:
    """The preview's side in pixels to try, largest first, in width x rows cells (a label line above it): the
    images' side at every integer scale that fits, then, for images larger than SHRUNK_MIN, shrunk sides down to it
    (an image that fits at scale 1 is also tried smaller, for strips that would not fit beside it)."""
    max_scale = max(0, min(width // side, (rows - 1) // math.ceil(side / 2)))
    sizes = [scale * side for scale in range(max_scale, 0, -1)]
    if side > SHRUNK_MIN:
        largest = min(side - 1, width, 2 * (rows - 1))
        sizes += list(range(largest - largest % 2, SHRUNK_MIN - 1, -2))
    return sizes


def class_window(current: int, total: int, count: int) -> range:
    """The classes a strip of count thumbnails shows out of total: all of them when they fit, else the page of count
    that holds current (0-9, 10-19 ...; the last page ends at the last class, so that every page is full)."""
    if count >= total:
        return range(total)
    start = min(current // count * count, total - count)
    return range(start, start + count)


def class_counts(classes: int) -> list[int]:
    """How many thumbnails a class strip may have, in order of preference: every class, then a window of them."""
    return [classes] if classes <= CLASS_WINDOW else [classes, CLASS_WINDOW]


def plan(
    width: int,
    height: int,
    classes: int | None,
    show_classes: bool = False,
    side: int = IMAGE_SIDE,
    side_columns: int = SIDE_COLUMNS,
) -> Layout:
    """The layout for a width x height terminal and images of side x side pixels; classes: how many the CVAE's class
    strip has (None: a VAE); side_columns: the columns left of the preview.

    The preview gets the largest size (an integer scale, else shrunk) that leaves every strip thumbnails of at
    least BOTH_MIN pixels; the class grid goes beside the preview when it is larger there. Past CLASS_WINDOW classes,
    a class grid too small for all of them holds CLASS_WINDOW (class_window says which), rather than the preview
    shrinking for them. When the two strips do not fit, one is shown.
    """
    rows, strip_width = height - FIXED_ROWS, width - STRIP_PADDING
    preview_width = width - side_columns
    largest = min(MAX_THUMBNAIL, side)
    sizes = preview_sizes(side, preview_width, rows)
    for preview in sizes:
        scale = preview // side if preview % side == 0 else 0
        main = 1 + math.ceil(preview / 2)  # the section labels, then the preview
        if classes is None:
            traversal = row_grid(TRAVERSAL_COUNT, strip_width, rows - main, largest)
            if traversal and traversal.size >= min(BOTH_MIN, side):
                return Layout(scale, traversal, None, False, False, preview)
            continue
        for count in class_counts(classes):
            options = []
            if below := two_rows(count, strip_width, rows - main, largest):
                options.append((min(g.size for g in below), below, False))
            beside = block_grid(count, preview_width - preview - 2 * GAP, main - 1, largest)
            traversal = row_grid(TRAVERSAL_COUNT, strip_width, rows - main, largest)
            if beside and traversal:
                options.append((min(beside.size, traversal.size), (traversal, beside), True))
            if options:
                smallest, (traversal, class_grid), is_beside = max(options, key=lambda option: option[0])
                if smallest >= min(BOTH_MIN, side):
                    return Layout(scale, traversal, class_grid, is_beside, False, preview)
    return one_strip(rows, strip_width, sizes, side, classes, show_classes)


def one_strip(rows: int, width: int, sizes: list[int], side: int, classes: int | None, show_classes: bool) -> Layout:
    """One strip under the preview: the largest preview size that leaves it ONE_MIN pixels (every class, else a
    window of them), else the smallest and what fits."""
    shown_classes = bool(show_classes and classes)
    counts = class_counts(classes) if shown_classes else [TRAVERSAL_COUNT]
    largest = min(MAX_THUMBNAIL, side)
    choice = None
    for preview in sizes:
        for count in counts:
            grid = row_grid(count, width, rows - 1 - math.ceil(preview / 2), largest)
            if grid and grid.size >= min(ONE_MIN, side):
                choice = (preview, grid)
                break
        if choice is not None:
            break
    if choice is None:
        preview = sizes[-1] if sizes else 0
        choice = (preview, row_grid(counts[-1], width, rows - 1 - math.ceil(preview / 2), largest))
    preview, grid = choice
    scale = preview // side if preview % side == 0 else 0
    layout = Layout(scale, None if shown_classes else grid, grid if shown_classes else None, False, classes is not None)
    return dataclasses.replace(layout, preview=preview)
