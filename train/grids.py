"""PNG grids of images (reconstructions, samples, traversals) and animated GIFs; written atomically.

An image is (H, W) grey or (3, H, W) RGB, in [0, 1] (models' ModelConfig.pixel_shape); a batch has N in front.
"""

import io
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from models.atomic import write_atomic

PAD_VALUE = 0.25  # dark grey between cells: FashionMNIST backgrounds are black
TEXT_VALUE = 0.9  # labels: light grey on the padding's grey


def grid(images: torch.Tensor, ncol: int, padding: int = 2) -> torch.Tensor:
    """Tile images (N, H, W) or (N, 3, H, W) in [0, 1] into one image (rows*(H+p)+p, ncol*(W+p)+p), with the
    channels in front for RGB, row by row."""
    n, h, w = images.shape[0], *images.shape[-2:]
    nrow = -(-n // ncol)
    out = torch.full((*images.shape[1:-2], nrow * (h + padding) + padding, ncol * (w + padding) + padding), PAD_VALUE)
    for i, image in enumerate(images.detach().float().cpu()):
        top, left = padding + (i // ncol) * (h + padding), padding + (i % ncol) * (w + padding)
        out[..., top : top + h, left : left + w] = image
    return out


def side_by_side(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Pair images (N, ..., H, W) as (N, ..., H, 2W): left[i] beside right[i], as the demo showed reconstructions."""
    return torch.cat([left, right], dim=-1)


def to_image(pixels: torch.Tensor, scale: int = 1) -> Image.Image:
    """A (H, W) tensor in [0, 1] as an 8-bit greyscale PIL image, or a (3, H, W) one as RGB, upscaled by nearest
    neighbour."""
    data = (pixels.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    if data.dim() == 3:
        data = data.permute(1, 2, 0).contiguous()
        image = Image.frombytes("RGB", (data.shape[1], data.shape[0]), data.numpy().tobytes())
    else:
        image = Image.frombytes("L", (data.shape[1], data.shape[0]), data.contiguous().numpy().tobytes())
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    return image


def font_size(cell_px: int) -> int:
    """The labels' font size in pixels for cells cell_px high: a fifth of a cell, 10 to 24."""
    return max(10, min(24, round(cell_px / 5)))


def fit_text(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: float) -> str:
    """text, cut at its end with '…' until it is at most width pixels wide ('' when not even that fits)."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…" if text else ""


def with_labels(
    image: Image.Image, rows: list[tuple[int, int, str]], caption: str, size: int, max_label_px: int = 240
) -> Image.Image:
    """image (mode L or RGB) with labels in light grey on the grid's padding grey: each row's text (top, bottom,
    text, in image pixels) left of the image, centred on its row, and a caption line under it; size, the font's
    pixels. Text too wide for its place is cut with '…' (a label column at most max_label_px wide)."""
    font = ImageFont.load_default(size=size)
    margin = max(2, size // 3)
    widths = [font.getlength(text) for _, _, text in rows if text]
    label_px = min(max_label_px, int(max(widths, default=0))) + 2 * margin if widths else 0
    line_px = size + 2 * margin if caption else 0
    pad, fill = round(PAD_VALUE * 255), round(TEXT_VALUE * 255)
    if image.mode == "RGB":
        pad, fill = (pad,) * 3, (fill,) * 3
    out = Image.new(image.mode, (label_px + image.width, image.height + line_px), pad)
    out.paste(image, (label_px, 0))
    draw = ImageDraw.Draw(out)
    for top, bottom, text in rows:
        if text:
            shown = fit_text(text, font, label_px - 2 * margin)
            draw.text((label_px - margin, (top + bottom) / 2), shown, fill=fill, font=font, anchor="rm")
    if caption:
        shown = fit_text(caption, font, out.width - 2 * margin)
        draw.text((margin, image.height + line_px / 2), shown, fill=fill, font=font, anchor="lm")
    return out


def encode_png(image: Image.Image, text: dict[str, str] | None = None) -> bytes:
    """image as PNG bytes, with text, if given, in tEXt chunks before the image data."""
    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1, pnginfo=info)  # fast: training writes them every epoch
    return buffer.getvalue()


def save_png(path: str | Path, pixels: torch.Tensor, scale: int = 1, text: dict[str, str] | None = None) -> Path:
    """Write a (H, W) or (3, H, W) tensor in [0, 1] as a PNG, atomically; text, if given, goes into tEXt chunks before
    the image."""
    return write_atomic(path, encode_png(to_image(pixels, scale), text))


def save_gif(
    path: str | Path, frames: torch.Tensor, scale: int = 1, frame_ms: int = 100, comment: str | None = None
) -> Path:
    """Write frames (N, H, W) or (N, 3, H, W) in [0, 1] as a looping GIF (RGB frames on an adaptive palette),
    frame_ms a frame, atomically, with comment (what drew it, as a PNG's text records it) in the GIF's comment
    extension. The same frames give the same bytes;
    Pillow stores a run of identical frames once, with their durations added."""
    images = [to_image(frame, scale) for frame in frames]
    buffer = io.BytesIO()
    extra = {} if comment is None else {"comment": comment.encode()}
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=frame_ms, loop=0, **extra)
    return write_atomic(path, buffer.getvalue())
