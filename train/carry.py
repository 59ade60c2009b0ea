"""What a resumable checkpoint carries into training: its resume tensors checked, the stopped epoch restored."""

import torch

from models import Checkpoint, CheckpointError
from train.device import set_rng_states


def carried(carry: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The resume tensors under prefix, with the prefix removed."""
    return {k.removeprefix(prefix): v for k, v in carry.items() if k.startswith(prefix)}


def check_carry(checkpoint: Checkpoint, num_classes: int, latent_dim: int) -> None:
    """The resume tensors a checkpoint must hold to continue where it stopped."""
    tensors, mid_epoch = checkpoint.resume.tensors, checkpoint.resume.progress["step"] > 0
    shapes = {"rng_now.cpu": None}
    if mid_epoch:
        shapes.update({"rng_epoch_start.cpu": None, "loss_sum": (), "centroid_sums": (num_classes, latent_dim)})
    for name, shape in shapes.items():
        t = tensors.get(name)
        ok = t is not None and (t.dtype == torch.uint8 if shape is None else tuple(t.shape) == shape)
        if not ok:
            raise CheckpointError(f"{checkpoint.path} lacks a usable resume state ({name})")


def resume_epoch(
    carry: dict[str, torch.Tensor],
    step: int,
    images: int,
    device: torch.device,
    loss_sum: torch.Tensor,
    centroid_sums: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The stopped epoch's shuffle drawn again, and the RNG state it is drawn from; the RNG and sums as at the stop.

    The RNG goes back to its state at the epoch's start, before the shuffle, so that randperm
    draws this epoch's shuffle again (the stopped run's batches, those already trained and
    those to come). Mid-epoch it then goes to its state at the stop, so that the remaining
    steps draw the reparameterization noise the stopped run would have drawn next. The state
    at the stop alone would draw another shuffle (some images twice, others never); the state
    at the epoch's start alone would repeat the noise of the epoch's first steps. At step 0 the
    state after the shuffle is already the stopped run's (a checkpoint of an epoch's end holds
    one state under both names; an older one saved at step 0 holds the state after the shuffle
    as rng_now).
    """
    rng_now = carried(carry, "rng_now.")
    rng_epoch_start = carried(carry, "rng_epoch_start.") or rng_now
    set_rng_states(rng_epoch_start, device)
    permutation = torch.randperm(images, device=device)
    if step == 0:
        loss_sum.zero_()
        centroid_sums.zero_()
    else:
        loss_sum.copy_(carry["loss_sum"])
        centroid_sums.copy_(carry["centroid_sums"])
        set_rng_states(rng_now, device)
    return permutation, rng_epoch_start
