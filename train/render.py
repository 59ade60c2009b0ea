"""Images as terminal block graphics: half-block cells, upper pixel in front, lower behind, as lines of Rich
segments. No Textual and no training code: training's preview and the app's widgets both draw with it."""

from collections.abc import Callable
from functools import lru_cache

import torch
import torch.nn.functional as F
from rich.color import Color
from rich.segment import Segment
from rich.style import Style

UPPER_HALF = "\u2580"  # the upper half block: foreground paints the top pixel, background the bottom


@lru_cache(maxsize=65536)
def cell_style(upper: int, lower: int) -> Style:
    """The style of a cell whose upper pixel has grey level `upper` and lower pixel `lower` (0-255)."""
    return Style(color=Color.from_rgb(upper, upper, upper), bgcolor=Color.from_rgb(lower, lower, lower))


def to_levels(pixels: torch.Tensor) -> list[list[int]]:
    """A (H, W) tensor in [0, 1] as rows of grey levels 0-255."""
    return (pixels.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).tolist()


def fit_scale(height: int, width: int, rows: int, columns: int) -> int:
    """The largest integer scale at which a height x width image fits in rows x columns cells (0: none)."""
    return max(0, min(columns // width, (2 * rows) // height))


Line = list[Segment]  # one terminal line: segments whose cells add up to the line's width


def half_block_segments(levels: list[list[int]], scale: int = 1) -> list[Line]:
    """Render grey levels at an integer scale: each pixel becomes scale x scale, two pixel rows per cell row."""
    rows = [[v for v in row for _ in range(scale)] for row in levels for _ in range(scale)]
    if len(rows) % 2:
        rows.append([0] * len(rows[0]))
    return half_block_lines(rows, cell_style)


def half_block_lines(rows: list[list[int]], style_of: Callable[[int, int], Style]) -> list[Line]:
    """Two rows of values to a line of upper-half-block cells, each styled style_of(upper, lower), runs of one
    style in one segment; rows has an even length."""
    lines = []
    for upper_row, lower_row in zip(rows[0::2], rows[1::2], strict=True):
        segments, run_style, run_length = [], None, 0
        for upper, lower in zip(upper_row, lower_row, strict=True):
            style = style_of(upper, lower)
            if style is run_style:
                run_length += 1
                continue
            if run_length:
                segments.append(Segment(UPPER_HALF * run_length, run_style))
            run_style, run_length = style, 1
        segments.append(Segment(UPPER_HALF * run_length, run_style))
        lines.append(segments)
    return lines


def thumbnail(pixels: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Shrink a (H, W) image to (size, size), or to size (height, width), by area averaging; unchanged if already
    that size."""
    shape = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(pixels.shape) == shape:
        return pixels
    return F.interpolate(pixels[None, None].float(), size=shape, mode="area")[0, 0]


def image_row(images: torch.Tensor, size: int | tuple[int, int], gap: int = 1) -> list[Line]:
    """Images (N, H, W) shrunk to size (a side, or (height, width)) pixels, side by side with `gap` blank columns
    between."""
    blank = Segment(" " * gap)
    rendered = [half_block_segments(to_levels(thumbnail(image, size))) for image in images]
    lines = []
    for line_index in range(len(rendered[0])):
        line: Line = []
        for i, image_lines in enumerate(rendered):
            if i:
                line.append(blank)
            line.extend(image_lines[line_index])
        lines.append(line)
    return lines


def label_cells(labels: list[str], size: int, current: int | None) -> list[str]:
    """Each label centred in a size-wide cell; the current one in brackets where they fit."""
    cells = []
    for index, label in enumerate(labels):
        text = f"[{label}]" if index == current and len(label) + 2 <= size else label
        cells.append(text[:size].center(size))
    return cells


def fitting_labels(variants: list[list[str]], size: int) -> list[str]:
    """The first variant (longest first) whose every label fits in size cells with brackets; else the last."""
    for labels in variants:
        if all(len(label) + 2 <= size for label in labels):
            return labels
    return variants[-1]
