"""Where the explorer's parts go for a terminal size: the preview's scale and the size of every thumbnail."""

import math
from dataclasses import dataclass

IMAGE_SIDE = 28  # pixels; the preview's scale is how many cells wide one pixel is
SIDE_COLUMNS = 48  # the class list (18) and the latent panel (30), left of the preview
FIXED_ROWS = 2  # the title bar and the footer
STRIP_PADDING = 2  # one blank column on each side of a strip under the preview
GAP = 1  # blank cells between thumbnails, and between the preview and a grid beside it
MAX_THUMBNAIL = 28  # the images' own size: larger would only repeat pixels
BOTH_MIN = 10  # two strips are shown together only with thumbnails this large
ONE_MIN = 8  # below this, a strip is drawn at whatever size fits
TRAVERSAL_COUNT = 7


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


def row_grid(count: int, width: int, rows: int) -> Grid | None:
    """The largest single row of count thumbnails that fits in width x rows cells."""
    size = min(MAX_THUMBNAIL, (width - (count - 1) * GAP) // count, 2 * (rows - 2))
    return Grid(count, size, count) if size >= 2 else None


def block_grid(count: int, width: int, rows: int) -> Grid | None:
    """The largest grid of count thumbnails (any number of columns) that fits in width x rows cells."""
    best = None
    for columns in range(1, count + 1):
        lines = math.ceil(count / columns)
        size = min(MAX_THUMBNAIL, (width - (columns - 1) * GAP) // columns, 2 * ((rows - 1) // lines - 1))
        if size >= 2 and (best is None or size > best.size):
            best = Grid(count, size, columns)
    return best


def two_rows(classes: int, width: int, rows: int) -> tuple[Grid, Grid] | None:
    """The traversal and the class row one above the other in width x rows, the smaller thumbnail largest."""
    best, best_key = None, (0, 0)
    for traversal_rows in range(3, rows - 2):
        traversal = row_grid(TRAVERSAL_COUNT, width, traversal_rows)
        class_row = row_grid(classes, width, rows - traversal_rows)
        if traversal and class_row:
            key = (min(traversal.size, class_row.size), traversal.size + class_row.size)
            if key > best_key:
                best, best_key = (traversal, class_row), key
    return best


def plan(width: int, height: int, classes: int | None, show_classes: bool = False) -> Layout:
    """The layout for a width x height terminal; classes: how many the CVAE's class strip has (None: a VAE).

    The preview gets the largest scale that leaves every strip thumbnails of at least BOTH_MIN pixels; the class
    grid goes beside the preview when it is larger there. When the two strips do not fit, one is shown.
    """
    rows, strip_width = height - FIXED_ROWS, width - STRIP_PADDING
    preview_width = width - SIDE_COLUMNS
    max_scale = max(0, min(preview_width // IMAGE_SIDE, (rows - 1) // (IMAGE_SIDE // 2)))
    for scale in range(max_scale, 0, -1):
        main = 1 + scale * IMAGE_SIDE // 2  # the section labels, then the preview
        if classes is None:
            traversal = row_grid(TRAVERSAL_COUNT, strip_width, rows - main)
            if traversal and traversal.size >= BOTH_MIN:
                return Layout(scale, traversal, None, False, False)
            continue
        options = []
        if below := two_rows(classes, strip_width, rows - main):
            options.append((min(g.size for g in below), below, False))
        beside = block_grid(classes, preview_width - scale * IMAGE_SIDE - 2 * GAP, main - 1)
        traversal = row_grid(TRAVERSAL_COUNT, strip_width, rows - main)
        if beside and traversal:
            options.append((min(beside.size, traversal.size), (traversal, beside), True))
        if options:
            smallest, (traversal, class_grid), is_beside = max(options, key=lambda option: option[0])
            if smallest >= BOTH_MIN:
                return Layout(scale, traversal, class_grid, is_beside, False)
    return one_strip(rows, strip_width, max_scale, classes, show_classes)


def one_strip(rows: int, width: int, max_scale: int, classes: int | None, show_classes: bool) -> Layout:
    """One strip under the preview: the largest scale that leaves it ONE_MIN pixels, else scale 1 and what fits."""
    shown_classes = bool(show_classes and classes)
    count = classes if shown_classes else TRAVERSAL_COUNT
    choice = None
    for scale in range(max_scale, 0, -1):
        grid = row_grid(count, width, rows - 1 - scale * IMAGE_SIDE // 2)
        if grid and grid.size >= ONE_MIN:
            choice = (scale, grid)
            break
    if choice is None:
        scale = min(max_scale, 1)
        choice = (scale, row_grid(count, width, rows - 1 - scale * IMAGE_SIDE // 2))
    scale, grid = choice
    return Layout(scale, None if shown_classes else grid, grid if shown_classes else None, False, classes is not None)
