"""Images as terminal block graphics: half-block cells, upper pixel in front, lower behind, as lines of Rich
segments. No Textual and no training code: training's preview and the app's widgets both draw with it.

An image is (H, W) grey or (3, H, W) RGB, in [0, 1] (ModelConfig.pixel_shape); a batch has N in front. Grey cells
use the 256 grey levels; RGB cells 24-bit colour, which Rich turns into xterm's 6x6x6 cube on a 256-colour terminal.
Images larger than their place are shrunk by area averaging, never by dropping pixels.
"""

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from rich.color import Color
from rich.segment import Segment
from rich.style import Style

UPPER_HALF = "\u2580"  # the upper half block: foreground paints the top pixel, background the bottom


GREYS = [Color.from_rgb(level, level, level) for level in range(256)]  # made once: from_rgb computes a hex name


@lru_cache(maxsize=65536)
def cell_style(upper: int, lower: int) -> Style:
    """The style of a cell whose upper pixel has grey level `upper` and lower pixel `lower` (0-255)."""
    return Style(color=GREYS[upper], bgcolor=GREYS[lower])


def level_tensor(pixels: torch.Tensor) -> torch.Tensor:
    """Pixels in [0, 1] (any shape) as grey levels 0-255, uint8."""
    return (pixels.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)


def to_levels(pixels: torch.Tensor) -> list[list[int]]:
    """A (H, W) tensor in [0, 1] as rows of grey levels 0-255."""
    return level_tensor(pixels).tolist()


def fit_scale(height: int, width: int, rows: int, columns: int) -> int:
    """The largest integer scale at which a height x width image fits in rows x columns cells (0: none)."""
    return max(0, min(columns // width, (2 * rows) // height))


Line = list[Segment]  # one terminal line: segments whose cells add up to the line's width


def half_block_segments(levels: list[list[int]] | torch.Tensor, scale: int = 1) -> list[Line]:
    """Render grey levels (rows of 0-255, or such a (H, W) tensor) at an integer scale: each pixel becomes
    scale x scale, two pixel rows per cell row."""
    grey = torch.as_tensor(levels).cpu().to(torch.int32)
    if scale > 1:  # rows repeated here; columns by the runs' lengths
        grey = grey.repeat_interleave(scale, 0)
    return grey_lines(grey, scale)


GAP = 256  # a level in grey_lines' input that marks a blank column (a space, no style), as image_row puts between
RUN_BITS = 16  # a run's key: its pair of levels above its length, which is below 2 ** RUN_BITS cells
LEVEL_PAIRS = 1 << 16  # pairs of levels 0-255 are below this; a pair from GAP columns is not


class _Runs(dict):
    """Each run's segment by its key, made on first use: a run of half blocks of one upper and one lower level, or
    of blank gap columns. A few thousand keys cover an image; the dict starts afresh past MAX_RUNS."""

    MAX_RUNS = 65_536

    def __missing__(self, key: int) -> Segment:
        if len(self) >= self.MAX_RUNS:
            self.clear()
        pair, length = key >> RUN_BITS, key & ((1 << RUN_BITS) - 1)
        if pair >= LEVEL_PAIRS:
            segment = Segment(" " * length)
        else:
            segment = Segment(UPPER_HALF * length, cell_style(pair >> 8, pair & 255))
        self[key] = segment
        return segment


_RUNS = _Runs()


def grey_lines(grey: torch.Tensor, column_scale: int = 1) -> list[Line]:
    """Grey levels (H, W), int32 0-255 (or GAP in whole columns), as half-block lines, an odd last row over black,
    each column column_scale cells wide: what half_block_lines(rows, cell_style) draws, a segment for each run of
    one style, the runs found with array operations and their segments looked up, not a Python loop over cells."""
    levels = grey.numpy()
    if len(levels) % 2:
        levels = np.concatenate([levels, np.zeros_like(levels[:1])])
    pairs = (levels[0::2] << 8) | levels[1::2]
    lines, width = pairs.shape
    assert width * column_scale < 1 << RUN_BITS
    starts = np.ones(pairs.shape, dtype=bool)
    np.not_equal(pairs[:, 1:], pairs[:, :-1], out=starts[:, 1:])
    positions = np.flatnonzero(starts)  # every line's first cell is a start, so runs end at lines' ends
    lengths = np.diff(positions, append=lines * width) * column_scale
    keys = (pairs.ravel()[positions].astype(np.int64) << RUN_BITS) | lengths
    runs = list(map(_RUNS.__getitem__, keys.tolist()))
    ends = np.cumsum(starts.sum(1)).tolist()
    return [runs[first:end] for first, end in zip([0, *ends], ends, strict=False)]


@lru_cache(maxsize=65536)
def colour_cell_style(upper: int, lower: int) -> Style:
    """The style of a cell whose upper and lower pixels are the 24-bit colours upper and lower (0xRRGGBB). On a
    terminal of 256 colours, Rich turns each into the nearest of xterm's 6x6x6 colour cube, or of its grey ramp for
    a colour with little saturation (rich.color.Color.downgrade)."""
    colours = [Color.from_rgb(v >> 16, (v >> 8) & 255, v & 255) for v in (upper, lower)]
    return Style(color=colours[0], bgcolor=colours[1])


COLOUR_GAP = 1 << 24  # a value in colour_runs' input that marks a blank column, as GAP does for grey_lines


def packed_colours(rgb: torch.Tensor) -> np.ndarray:
    """RGB pixels (..., 3, H, W) in [0, 1] as (..., H, W) int64 values 0xRRGGBB."""
    levels = level_tensor(rgb).cpu().numpy().astype(np.int64)
    return (levels[..., 0, :, :] << 16) | (levels[..., 1, :, :] << 8) | levels[..., 2, :, :]


class _ColourRuns(dict):
    """Each run's segment by (pair of colours, length), made on first use, as _Runs does for grey; a pair whose upper
    value is COLOUR_GAP is a run of blank columns."""

    MAX_RUNS = 65_536

    def __missing__(self, key: tuple[int, int]) -> Segment:
        if len(self) >= self.MAX_RUNS:
            self.clear()
        pair, length = key
        upper, lower = pair >> 25, pair & ((1 << 25) - 1)
        if upper & COLOUR_GAP:
            segment = Segment(" " * length)
        else:
            segment = Segment(UPPER_HALF * length, colour_cell_style(upper, lower))
        self[key] = segment
        return segment


_COLOUR_RUNS = _ColourRuns()


def colour_runs(packed: np.ndarray | torch.Tensor, column_scale: int = 1) -> list[Line]:
    """Packed colours (H, W) int64 0xRRGGBB (or COLOUR_GAP in whole columns) as half-block lines in 24-bit colour,
    an odd last row over black, each column column_scale cells wide: a segment for each run of one pair of colours,
    the runs found with array operations (as grey_lines does)."""
    packed = np.asarray(packed, dtype=np.int64)
    if len(packed) % 2:
        packed = np.concatenate([packed, np.zeros_like(packed[:1])])
    pairs = (packed[0::2] << 25) | packed[1::2]  # (H/2, W): 50 bits
    lines, width = pairs.shape
    starts = np.ones(pairs.shape, dtype=bool)
    np.not_equal(pairs[:, 1:], pairs[:, :-1], out=starts[:, 1:])
    positions = np.flatnonzero(starts)
    lengths = (np.diff(positions, append=lines * width) * column_scale).tolist()
    runs = list(map(_COLOUR_RUNS.__getitem__, zip(pairs.ravel()[positions].tolist(), lengths, strict=True)))
    ends = np.cumsum(starts.sum(1)).tolist()
    return [runs[first:end] for first, end in zip([0, *ends], ends, strict=False)]


def colour_lines(rgb: torch.Tensor, column_scale: int = 1) -> list[Line]:
    """An RGB image (3, H, W) in [0, 1] as half-block lines in 24-bit colour, an odd last row over black, each
    column column_scale cells wide (colour_runs)."""
    return colour_runs(packed_colours(rgb), column_scale)


def image_lines(pixels: torch.Tensor, scale: int = 1) -> list[Line]:
    """An image, (H, W) grey or (3, H, W) RGB in [0, 1], at an integer scale: each pixel scale x scale."""
    if pixels.dim() == 2:
        return half_block_segments(level_tensor(pixels), scale)
    packed = packed_colours(pixels)
    if scale > 1:
        packed = packed.repeat(scale, axis=0)
    return colour_runs(packed, scale)


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
    """Shrink an image (H, W) or (C, H, W), or a batch of them, to size x size, or to size (height, width), by area
    averaging: every pixel counts, none is dropped; unchanged if already that size."""
    shape = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(pixels.shape[-2:]) == shape:
        return pixels
    batch = pixels.float().reshape(-1, 1, *pixels.shape[-2:])
    return F.interpolate(batch, size=shape, mode="area").reshape(*pixels.shape[:-2], *shape)


def image_row(images: torch.Tensor, size: int | tuple[int, int], gap: int = 1) -> list[Line]:
    """Images (N, H, W) or (N, 3, H, W) shrunk to size (a side, or (height, width)) pixels, side by side with `gap`
    blank columns between."""
    return image_rows(images, size, len(images), gap)[0]


def image_rows(images: torch.Tensor, size: int | tuple[int, int], columns: int, gap: int = 1) -> list[list[Line]]:
    """Images (N, H, W) grey or (N, 3, H, W) RGB in rows of `columns` (the last may hold fewer), each row's lines as
    image_row draws them: shrunk and drawn in one pass over all of them."""
    images = thumbnail(images, size)  # all at once: each image's area average is the same as alone
    if images.dim() == 4:
        values, gap_value, draw = torch.from_numpy(packed_colours(images)), COLOUR_GAP, colour_runs
    else:
        values, gap_value, draw = level_tensor(images).cpu().to(torch.int32), GAP, grey_lines
    full = len(values) // columns * columns
    rows = _grid_lines(values[:full], columns, gap, gap_value, draw) if full else []
    rest = _grid_lines(values[full:], len(values) - full, gap, gap_value, draw) if full < len(values) else []
    return rows + rest


def _grid_lines(
    values: torch.Tensor, columns: int, gap: int, gap_value: int, draw: Callable[..., list[Line]]
) -> list[list[Line]]:
    """Cell values (rows * columns, H, W), grey levels or packed colours, as each row's lines: its images side by
    side, gap blank columns (gap_value) between, an odd H padded with black under every image; draw makes lines."""
    count, height, width = values.shape
    if height % 2:
        values = torch.cat([values, torch.zeros(count, 1, width, dtype=values.dtype)], 1)
        height += 1
    if gap:  # gap columns after every image, the last one's dropped
        values = torch.cat([values, torch.full((count, height, gap), gap_value, dtype=values.dtype)], 2)
    rows, line_width = count // columns, columns * (width + gap)
    lines = draw(values.view(rows, columns, height, width + gap).permute(0, 2, 1, 3).reshape(-1, line_width))
    if gap:
        lines = [line[:-1] for line in lines]  # the last image's gap
    per_row = height // 2
    return [lines[row * per_row : (row + 1) * per_row] for row in range(rows)]


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
