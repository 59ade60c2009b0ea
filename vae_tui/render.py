"""The renderer's lines (train/render.py) as Textual Strips, for the widgets."""

from collections.abc import Callable

import torch
from rich.style import Style
from textual.strip import Strip

from train import render
from train.render import cell_style


def strips(lines: list[render.Line]) -> list[Strip]:
    """Segment lines as Strips; every cell the renderer draws (a half block, a space) is one column wide."""
    return [Strip(line, sum(len(segment.text) for segment in line)) for line in lines]


def half_block_strips(levels: list[list[int]], scale: int = 1) -> list[Strip]:
    """Grey levels at an integer scale as Strips (train.render.half_block_segments)."""
    return strips(render.half_block_segments(levels, scale))


def half_block_lines(rows: list[list[int]], style_of: Callable[[int, int], Style] = cell_style) -> list[Strip]:
    """Two rows of values a line, styled style_of(upper, lower), as Strips (train.render.half_block_lines)."""
    return strips(render.half_block_lines(rows, style_of))


def image_row(images: torch.Tensor, size: int, gap: int = 1) -> list[Strip]:
    """Images side by side as Strips (train.render.image_row)."""
    return strips(render.image_row(images, size, gap))
