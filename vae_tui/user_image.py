"""A user's own picture as the datasets draw theirs: grey, fitted into 28x28 with the aspect kept, light on dark."""

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


def fit(grey: Image.Image) -> torch.Tensor:
    """An "L" image scaled so its longer side is 28 (area-averaged), as (h, w) uint8 levels."""
    scale = SIDE / max(grey.size)
    size = (max(1, round(grey.width * scale)), max(1, round(grey.height * scale)))
    resized = grey.resize(size, Image.Resampling.BOX if scale < 1 else Image.Resampling.BICUBIC)
    return torch.frombuffer(bytearray(resized.tobytes()), dtype=torch.uint8).view(size[1], size[0])


def load_user_image(path: Path, invert: bool = True) -> torch.Tensor:
    """The picture at path as (28, 28) pixels in [0, 1]: converted to grey, fitted and centred on a canvas of its
    border's level, and inverted when invert and its border is lighter than its centre. A UserError in one line
    for a file that is missing, empty, not an image (train.image_file's formats), damaged or too large."""
    with open_image(path) as image:
        image.draft("L", (SIDE * 4, SIDE * 4))  # JPEG: decode at a reduced size, much faster for photos
        grey = ImageOps.exif_transpose(image).convert("L")
    levels = fit(grey)
    border, centre = border_and_centre(levels)
    if invert and border > centre:  # dark on light: the datasets are light on dark
        levels, border = 255 - levels, 255 - border
    canvas = torch.full((SIDE, SIDE), round(border), dtype=torch.uint8)
    h, w = levels.shape
    top, left = (SIDE - h) // 2, (SIDE - w) // 2
    canvas[top : top + h, left : left + w] = levels
    return canvas.float() / 255


def best_class(model: torch.nn.Module, pixels: torch.Tensor) -> int:
    """For a CVAE: the class under which pixels (28, 28) have the best ELBO (at mu, deterministic); 0 for a VAE."""
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
