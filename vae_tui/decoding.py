"""Decoding for the explorer: the current image, the traversal strip and the class strip in one batch."""

import math
import threading
from dataclasses import dataclass

import torch

from models import VAE, ModelConfig, UserError, rows_per_class
from models.outside import OutsideModelError
from train.grids import PAD_VALUE

TRAVERSAL_VALUES = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)  # in units of the prior's sigma


@dataclass(frozen=True)
class Frame:
    """What one state of the explorer shows; pixel probabilities in [0, 1]."""

    version: int
    image: torch.Tensor  # (H, W) grey or (3, H, W) RGB
    traversal: torch.Tensor | None  # (7, ...): the selected dimension at TRAVERSAL_VALUES; None: not decoded
    classes: torch.Tensor | None  # (len(class_window), ...): the current z under those classes; None: not decoded
    class_window: range = range(0)  # the classes of `classes`: every class, or the window the class strip shows
    failure: str | None = None  # a model written elsewhere failed on some of the strips' z (drawn blank): what


def image_shape(input_dim: int) -> tuple[int, int]:
    """The (H, W) of a grey model's images: square, H * W = input_dim; a UserError if they cannot be."""
    side = math.isqrt(input_dim)
    if side * side != input_dim:
        raise UserError(f"the model's images have {input_dim} pixels, not a square number: vae-tui cannot draw them")
    return side, side


def pixel_shape(config: ModelConfig) -> tuple[int, ...]:
    """The shape of one of a model's images as vae-tui draws it: (H, W) grey or (3, H, W) RGB. A config that names
    no image shape (28x28 grey, the field's default, with another input_dim: models built in code) has square
    images of input_dim pixels; a UserError if they are not."""
    if config.input_dim == config.channels * config.image_size**2:
        return config.pixel_shape
    return image_shape(config.input_dim)


class Decoder:
    """Turns (z, class, selected dimension) into a Frame with one decoder call, reusing the parts whose inputs
    did not change since the previous frame."""

    def __init__(self, model: VAE) -> None:
        self.model = model.eval()
        self.image_shape = pixel_shape(model.config)
        self._kept: dict[str, tuple[tuple, torch.Tensor]] = {}  # each part's newest images, by their inputs
        self._lock = threading.Lock()  # frames are decoded in worker threads

    @torch.inference_mode()
    def frame(
        self,
        version: int,
        z: list[float],
        label: int,
        dim: int,
        traversal: bool = True,
        classes: bool = True,
        window: range | None = None,
    ) -> Frame:
        """Decode the state's image and the strips asked for (those the screen shows; the class strip only for a
        CVAE, under the classes of window, or every class). A nudge leaves the traversal as it was (it sets the
        nudged value to each of its own), a new selection the image and the class strip, and the image is the class
        strip's own at the current class: only what changed is decoded, in one batch."""
        window = range(self.model.config.num_classes) if window is None else window
        wanted = {"image": (tuple(z), label)}
        if traversal:
            wanted["traversal"] = (tuple(z[:dim]), tuple(z[dim + 1 :]), dim, label)
        if classes and self.model.conditional:
            wanted["classes"] = (tuple(z), window)  # the current z under those classes: whatever the current one
        with self._lock:
            parts = {part: images for part, (key, images) in self._kept.items() if wanted.get(part) == key}
        missing = [part for part in wanted if part not in parts]
        from_classes = "image" in missing and "classes" in wanted and label in window  # the class strip's image
        if from_classes:
            missing.remove("image")
        failure: list[str] = []
        z0 = torch.tensor(z, dtype=torch.float32)
        new = self._decode_parts(missing, z0, label, dim, window, failure, from_classes) if missing else {}
        if from_classes:
            at = label - window.start
            new["image"] = {**parts, **new}["classes"][at : at + 1]
        parts.update(new)
        with self._lock:
            self._kept.update({part: (wanted[part], images) for part, images in new.items()})
        shown = window if "classes" in parts else range(0)
        images = (parts["image"][0], parts.get("traversal"), parts.get("classes"))
        return Frame(version, *images, shown, failure[0] if failure else None)

    def _decode_parts(
        self,
        names: list[str],
        z0: torch.Tensor,
        label: int,
        dim: int,
        window: range,
        failure: list[str],
        image_from_classes: bool = False,
    ) -> dict[str, torch.Tensor]:
        """The images (N, ...) of each named part of a frame for z0 (latent_dim,), the classes' under window, in one
        decoder call. Where a model written elsewhere fails on some z of the strips, their images are drawn blank
        and failure gets what went wrong; the image's own failure (or, image_from_classes, that of its class in the
        class strip) is raised."""
        rows, labels = [], []
        for name in names:
            if name == "image":
                rows.append(z0[None])
                labels.append(torch.tensor([label]))
            elif name == "traversal":
                traversal = z0.repeat(len(TRAVERSAL_VALUES), 1)
                traversal[:, dim] = torch.tensor(TRAVERSAL_VALUES)
                rows.append(traversal)
                labels.append(torch.full((len(TRAVERSAL_VALUES),), label))
            else:  # the classes
                class_z, class_labels = rows_per_class(z0[None], torch.arange(window.start, window.stop))
                rows.append(class_z)
                labels.append(class_labels)
        condition = torch.cat(labels) if self.model.conditional else None
        z = torch.cat(rows)
        try:
            pixels = torch.sigmoid(self.model.decode(z, condition)).view(-1, *self.image_shape)
        except OutsideModelError as batch_error:
            image_row = 0 if "image" in names else None  # the image comes first
            if image_from_classes:
                image_row = len(z) - len(window) + label - window.start  # the class strip comes last
            if image_row is not None and len(z) == 1:
                raise
            pixels, errors = self._one_by_one(z, condition, image_row)
            strip_rows = len(z) - ("image" in names)
            if errors:
                failure.append(f"{errors[0]}; {len(errors)} of the strips' {strip_rows} images are drawn blank")
            else:  # a batch fails where each image alone does not (memory, a model that takes one z at a time)
                failure.append(f"{batch_error}: a batch of {len(z)} failed, so its images were decoded one at a time")
        return dict(zip(names, pixels.split([len(r) for r in rows]), strict=True))

    def _one_by_one(
        self, z: torch.Tensor, condition: torch.Tensor | None, image_row: int | None
    ) -> tuple[torch.Tensor, list[OutsideModelError]]:
        """Images (N, ...) of z decoded one at a time, blank where the model fails, and those failures; the image's
        own (row image_row) is raised."""
        pixels = torch.full((len(z), *self.image_shape), PAD_VALUE)
        errors = []
        for row in range(len(z)):
            try:
                one = self.model.decode(z[row : row + 1], None if condition is None else condition[row : row + 1])
            except OutsideModelError as error:
                if row == image_row:
                    raise
                errors.append(error)
                continue
            pixels[row] = torch.sigmoid(one).view(self.image_shape)
        return pixels, errors

    @torch.inference_mode()
    def images(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Decode a batch z (N, latent_dim) with classes labels (N,) into images (N, H, W) or (N, 3, H, W)."""
        condition = labels.long() if self.model.conditional else None
        return torch.sigmoid(self.model.decode(z.float(), condition)).view(-1, *self.image_shape)

    @torch.inference_mode()
    def encode(self, pixels: torch.Tensor, label: int) -> list[float]:
        """mu of one image (H, W) or (3, H, W) in [0, 1] under class label (the VAE ignores it)."""
        condition = torch.tensor([label]) if self.model.conditional else None
        mu, _ = self.model.encode(pixels.reshape(1, -1).float(), condition)
        return mu[0].tolist()

    @torch.inference_mode()
    def path(self, a: "End", b: "End", count: int) -> torch.Tensor:
        """count images (count, ...) from a to b: z linear, and for the CVAE the one-hot class too."""
        t = torch.linspace(0, 1, count)[:, None]
        z = (1 - t) * torch.tensor(a.z) + t * torch.tensor(b.z)
        condition = None
        if self.model.conditional:
            one_hot = torch.eye(self.model.config.num_classes)
            condition = (1 - t) * one_hot[a.label] + t * one_hot[b.label]
        return torch.sigmoid(self.model.decode(z, condition)).view(-1, *self.image_shape)


@dataclass(frozen=True)
class End:
    """One end of an interpolation: z and class."""

    z: tuple[float, ...]
    label: int
