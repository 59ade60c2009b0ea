"""The renderer's lines (train/render.py) as Textual Strips, for the widgets."""

from collections.abc import Callable, Sequence

import torch
from rich.style import Style
from textual.filter import ANSIToTruecolor, LineFilter
from textual.strip import Strip

from train import render
from train.render import cell_style


def strips(lines: list[render.Line], width: int | None = None) -> list[Strip]:
    """Segment lines as Strips, each width cells wide when given; every cell the renderer draws (a half block, a
    space) is one column wide."""
    if width is not None:
        return [Strip(line, width) for line in lines]
    return [Strip(line, sum(len(segment.text) for segment in line)) for line in lines]


def half_block_strips(levels: list[list[int]] | torch.Tensor, scale: int = 1) -> list[Strip]:
    """Grey levels (rows of 0-255, or a (H, W) tensor of them) at an integer scale as Strips
    (train.render.half_block_segments)."""
    width = (len(levels[0]) if len(levels) else 0) * scale
    return strips(render.half_block_segments(levels, scale), width)


def half_block_lines(rows: list[list[int]], style_of: Callable[[int, int], Style] = cell_style) -> list[Strip]:
    """Two rows of values a line, styled style_of(upper, lower), as Strips (train.render.half_block_lines)."""
    return strips(render.half_block_lines(rows, style_of))


def image_row(images: torch.Tensor, size: int | tuple[int, int], gap: int = 1) -> list[Strip]:
    """Images side by side as Strips (train.render.image_row)."""
    width = size if isinstance(size, int) else size[1]
    return strips(render.image_row(images, size, gap), len(images) * (width + gap) - gap)


def image_rows(images: torch.Tensor, size: int, columns: int, gap: int = 1) -> list[list[Strip]]:
    """Images in rows of columns, each row's lines as Strips (train.render.image_rows)."""
    rows = render.image_rows(images, size, columns, gap)
    return [strips(row, min(columns, len(images) - i * columns) * (size + gap) - gap) for i, row in enumerate(rows)]


def truecolor(*styles: Style) -> bool:
    """Whether every colour of styles is truecolor, and none is dim: then Textual's ANSIToTruecolor filter leaves
    their segments as they are."""
    return not any(
        style.dim or any(color is not None and color.triplet is None for color in (style.color, style.bgcolor))
        for style in styles
    )


def without_truecolor_filter(filters: Sequence[LineFilter]) -> list[LineFilter]:
    """filters less ANSIToTruecolor, for a widget whose every segment is truecolor (see truecolor): the filter would
    copy each of its segments unchanged, on every line it redraws (the half-block cells: one segment a cell)."""
    return [line_filter for line_filter in filters if not isinstance(line_filter, ANSIToTruecolor)]
