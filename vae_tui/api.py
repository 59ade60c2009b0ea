"""vae-tui from Python: `vae_tui.explore(model)` opens the explorer on a live model, `vae_tui.sample(model, path)`
writes a grid PNG; the model follows the protocol of `--code` (docs/outside.md)."""

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from models.errors import UserError

if TYPE_CHECKING:
    import torch

    from models import Checkpoint
    from vae_tui.app import ExplorerApp

WHO = "vae_tui.explore"  # how the lines on stderr and the header name the source


def explore(
    model: "torch.nn.Module",
    decoder_output: str = "probs",
    data: "str | Path | torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None" = None,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    latent_dim: int | None = None,
    image_shape: tuple[int, int, int] | None = None,
    exports: str | Path = "exports",
) -> int:
    """Open the latent explorer on model in this terminal; return its exit status when the user quits (q).

    model: decode(z) -> images (N, C, H, W), or flat (N, C*H*W) with image_shape; optionally encode(x) -> mu or
        (mu, logvar), and decode(z, y) / encode(x, y) with y one-hot when num_classes is given. It stays on its
        device and in its dtype; it runs in eval mode while the explorer is open, its training mode given back
        after.
    decoder_output: what decode returns: "probs" in [0, 1], "tanh" in [-1, 1], or "logits". encode then gets images
        in [0, 1] (probs, logits) or [-1, 1] (tanh).
    data: the images that give the map, the picker and the class centroids (needs encode): "fashion-mnist" or
        "mnist" (installed), an image folder's path (read as `vae-tui train --data` reads it; its test split), or a
        tensor of images (N, C, H, W) as uint8 levels or floats in [0, 1] (not the model's [-1, 1]), optionally
        with labels as (images, labels). The atlas is cached under a digest of the weights and the data.
    num_classes: a class-conditional model's class count (else its num_classes attribute, if any).
    class_names: the classes' names (else the data's, else their numbers).
    latent_dim: z's size (else the model's latent_dim attribute).
    image_shape: (C, H, W) for a decode that returns flat images.
    exports: where s, g and G save PNGs and GIFs.

    What the model does wrong by the protocol, or bad arguments, raise a UserError saying what to fix.
    """
    import torch

    threads, modes = torch.get_num_threads(), training_modes(model)
    try:
        app = explorer_app(model, decoder_output, data, num_classes, class_names, latent_dim, image_shape, exports)
        torch.set_num_threads(1)  # decoding one small batch a key: threads cost more than they give
        app.run()
    finally:
        torch.set_num_threads(threads)
        restore_modes(modes)
    return app.return_code or 0


def training_modes(model: object) -> "list[tuple[object, bool]]":
    """Each submodule of model (an nn.Module) with its training flag, to put back as found (restore_modes)."""
    modules = getattr(model, "modules", None)
    return [(module, module.training) for module in modules()] if callable(modules) else []


def restore_modes(modes: "list[tuple[object, bool]]") -> None:
    """Put every submodule's training flag back as training_modes found it (a frozen part stays in eval)."""
    for module, training in modes:
        module.training = training


def explorer_app(
    model: "torch.nn.Module",
    decoder_output: str = "probs",
    data: object = None,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    latent_dim: int | None = None,
    image_shape: tuple[int, int, int] | None = None,
    exports: str | Path = "exports",
) -> "ExplorerApp":
    """The explorer app explore runs (its arguments), not started: tests run it headless with run_test."""
    from vae_tui.app import create_app
    from vae_tui.outside_atlas import add_outside_atlas, can_encode, data_of, fit_to_data

    checkpoint = outside_checkpoint(model, decoder_output, num_classes, latent_dim, image_shape)
    found = data_of(data, checkpoint.config.image_shape) if data is not None and can_encode(checkpoint, WHO) else None
    if found is not None:
        fit_to_data(checkpoint, found, keep_names=False)
    name_classes(checkpoint, class_names)
    if found is not None:
        add_outside_atlas(checkpoint, found, WHO)
    return create_app(checkpoint, f"{WHO}({type(model).__name__})", Path(exports))


def sample(
    model: "torch.nn.Module",
    path: str | Path,
    n: int = 8,
    decoder_output: str = "probs",
    seed: int = 0,
    traverse: int | None = None,
    classes: Sequence[int | str] | None = None,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    latent_dim: int | None = None,
    image_shape: tuple[int, int, int] | None = None,
    scale: int = 4,
    force: bool = False,
) -> Path:
    """Write a grid PNG of model's decoded prior samples to path and return the path, as `vae-tui sample` does.

    model: as explore takes it (decode(z) required).
    path: the PNG to write; it is not replaced unless force.
    n: images a row (for a conditional model: a row per class, the same z in each).
    decoder_output: "probs", "tanh" or "logits", as for explore.
    seed: of the prior draws: the same seed, the same PNG.
    traverse: a row per value of that dimension, from -3 to +3 sigma, instead of prior samples.
    classes: a conditional model's rows, by number or name (default: every class).
    num_classes, class_names, latent_dim, image_shape: as for explore.
    scale: pixels per image pixel.

    Bad arguments raise a UserError saying what to fix.
    """
    import torch

    from vae_tui.commands import refuse_to_replace
    from vae_tui.commands.sample import DEFAULTS, MAX_COLUMNS, MAX_SCALE, draw_grid

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise UserError(f"sample writes a PNG: {path} must end in .png")
    if not 1 <= n <= MAX_COLUMNS or not 1 <= scale <= MAX_SCALE:
        raise UserError(f"n is 1 to {MAX_COLUMNS}, scale 1 to {MAX_SCALE}")
    refuse_to_replace(path, force)
    classes = [str(c) for c in classes] if classes else None
    args = argparse.Namespace(**{**DEFAULTS, "n": n, "seed": seed, "traverse": traverse, "classes": classes})
    args.scale, args.output, args.gif = scale, path, False
    threads, modes = torch.get_num_threads(), training_modes(model)
    torch.set_num_threads(1)  # the same bytes on every run and machine size, as the command
    try:
        checkpoint = outside_checkpoint(model, decoder_output, num_classes, latent_dim, image_shape)
        name_classes(checkpoint, class_names)
        draw_grid(args, checkpoint, f"vae_tui.sample({type(model).__name__})")
    finally:
        torch.set_num_threads(threads)
        restore_modes(modes)
    return path


def outside_checkpoint(
    model: "torch.nn.Module",
    decoder_output: str,
    num_classes: int | None,
    latent_dim: int | None,
    image_shape: tuple[int, int, int] | None,
) -> "Checkpoint":
    """The model wrapped in vae-tui's model interface, on its own device, as a checkpoint with no file."""
    import torch

    from models.outside import OutsideVAE
    from vae_tui.outside import outside_checkpoint as checkpoint_of

    parameter = next(iter(model.parameters()), None) if isinstance(model, torch.nn.Module) else None
    device = parameter.device if parameter is not None else torch.device("cpu")
    outside = OutsideVAE(model, decoder_output, latent_dim, num_classes, image_shape, device)
    return checkpoint_of(outside, argparse.Namespace(class_names=None))


def name_classes(checkpoint: "Checkpoint", class_names: Sequence[str] | None) -> None:
    """Give the classes (the model's, or its data's) the names class_names, one each."""
    if class_names is None:
        return
    names, count = [str(name) for name in class_names], checkpoint.config.num_classes
    if len(names) != count:
        whose = "the model has" if checkpoint.model.conditional else "the data has"
        raise UserError(f"class_names names {len(names)} classes; {whose} {count}")
    checkpoint.class_names = names
