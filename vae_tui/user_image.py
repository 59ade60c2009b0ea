"""A user's own picture as the model's data looks: fitted into its size with the aspect kept, grey and light on dark
for a grey model (as FashionMNIST and MNIST are), in its own colours for an RGB model."""

from pathlib import Path

import torch
from PIL import Image, ImageOps

from train.image_file import open_image

SIDE = 28


def border_and_centre(grey: torch.Tensor) -> tuple[float, float]:
    """The mean level of an image's outermost ring of pixels and of its central half (H, W)."""
    h, w = grey.shape
    ring = torch.cat([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    centre = grey[h // 4 : h - h // 4 or h, w // 4 : w - w // 4 or w]
    return ring.float().mean().item(), centre.float().mean().item()


def fit(image: Image.Image, side: int = SIDE) -> torch.Tensor:
    """An "L" or "RGB" image scaled so its longer side is side (area-averaged when it shrinks), as uint8 levels
    (h, w) or (3, h, w)."""
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    resized = image.resize(size, Image.Resampling.BOX if scale < 1 else Image.Resampling.BICUBIC)
    levels = torch.frombuffer(bytearray(resized.tobytes()), dtype=torch.uint8)
    if image.mode == "RGB":
        return levels.view(size[1], size[0], 3).permute(2, 0, 1).contiguous()
    return levels.view(size[1], size[0])


def load_user_image(path: Path, invert: bool = True, side: int = SIDE, channels: int = 1) -> torch.Tensor:
    """The picture at path as a model of side x side images with channels 1 or 3 takes it, in [0, 1]: (side, side)
    grey, or (3, side, side) RGB in its own colours; fitted and centred on a canvas of its border's level (or mean
    colour), and, for grey only, inverted when invert and its border is lighter than its centre. A UserError in one
    line for a file that is missing, empty, not an image (train.image_file's formats), damaged or too large."""
    mode = "RGB" if channels == 3 else "L"
    with open_image(path) as image:
        image.draft(mode, (side * 4, side * 4))  # JPEG: decode at a reduced size, much faster for photos
        picture = ImageOps.exif_transpose(image).convert(mode)
    levels = fit(picture, side)
    grey = levels if channels == 1 else levels.float().mean(0)
    border, centre = border_and_centre(grey)
    if channels == 1 and invert and border > centre:  # dark on light: the datasets are light on dark
        levels, border = 255 - levels, 255 - border
    if channels == 1:
        canvas = torch.full((side, side), round(border), dtype=torch.uint8)
    else:
        ring = torch.cat([levels[:, 0], levels[:, -1], levels[:, :, 0], levels[:, :, -1]], 1).float().mean(1)
        canvas = ring.round().to(torch.uint8)[:, None, None].repeat(1, side, side)
    h, w = levels.shape[-2:]
    top, left = (side - h) // 2, (side - w) // 2
    canvas[..., top : top + h, left : left + w] = levels
    return canvas.float() / 255


def best_class(model: torch.nn.Module, pixels: torch.Tensor) -> int:
    """For a CVAE: the class under which pixels (the model's image shape) have the best ELBO (at mu, deterministic);
    0 for a VAE."""
    if not model.conditional:
        return 0
    from models.loss import kl_per_dimension

    classes = torch.arange(model.config.num_classes)
    x = pixels.reshape(1, -1).float().expand(len(classes), -1)
    with torch.no_grad():
        mu, logvar = model.encode(x, classes)
        logits = model.decode(mu, classes)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
        loss = bce + kl_per_dimension(mu, logvar).sum(1)
    return int(loss.argmin())
