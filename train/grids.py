"""PNG grids of images (reconstructions, samples, traversals) and animated GIFs; written atomically."""

import io
from pathlib import Path

import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from models.atomic import write_atomic

PAD_VALUE = 0.25  # dark grey between cells: FashionMNIST backgrounds are black


def grid(images: torch.Tensor, ncol: int, padding: int = 2) -> torch.Tensor:
    """Tile images (N, H, W) in [0, 1] into one (rows*(H+p)+p, ncol*(W+p)+p) image, row by row."""
    n, h, w = images.shape
    nrow = -(-n // ncol)
    out = torch.full((nrow * (h + padding) + padding, ncol * (w + padding) + padding), PAD_VALUE)
    for i, image in enumerate(images.detach().float().cpu()):
        top, left = padding + (i // ncol) * (h + padding), padding + (i % ncol) * (w + padding)
        out[top : top + h, left : left + w] = image
    return out


def side_by_side(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Pair images (N, H, W) as (N, H, 2W): left[i] beside right[i], as the demo showed reconstructions."""
    return torch.cat([left, right], dim=2)


def to_image(pixels: torch.Tensor, scale: int = 1) -> Image.Image:
    """A (H, W) tensor in [0, 1] as an 8-bit greyscale PIL image, upscaled by nearest neighbour."""
    data = (pixels.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).contiguous()
    image = Image.frombytes("L", (data.shape[1], data.shape[0]), data.numpy().tobytes())
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    return image


def save_png(path: str | Path, pixels: torch.Tensor, scale: int = 1, text: dict[str, str] | None = None) -> Path:
    """Write a (H, W) tensor in [0, 1] as a PNG, atomically; text, if given, goes into tEXt chunks before the image."""
    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    to_image(pixels, scale).save(buffer, format="PNG", compress_level=1, pnginfo=info)  # fast: written every epoch
    return write_atomic(path, buffer.getvalue())


def save_gif(
    path: str | Path, frames: torch.Tensor, scale: int = 1, frame_ms: int = 100, comment: str | None = None
) -> Path:
    """Write frames (N, H, W) in [0, 1] as a looping greyscale GIF, frame_ms a frame, atomically, with comment (what
    drew it, as a PNG's text records it) in the GIF's comment extension. The same frames give the same bytes;
    Pillow stores a run of identical frames once, with their durations added."""
    images = [to_image(frame, scale) for frame in frames]
    buffer = io.BytesIO()
    extra = {} if comment is None else {"comment": comment.encode()}
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=frame_ms, loop=0, **extra)
    return write_atomic(path, buffer.getvalue())
