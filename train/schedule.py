"""Per-step schedules: the learning rate (constant or cosine) and the KL weight (beta, warmed up)."""

import math

import torch

from train.settings import TrainSettings


def learning_rate(settings: TrainSettings, step: int, steps_per_epoch: int) -> float:
    """Adam's learning rate at global step `step` (0 = the run's first batch).

    cosine: settings.lr * (1 + cos(pi * t)) / 2 with t the fraction of all the run's steps done,
    from lr down to 0 at the end (Loshchilov & Hutter, 2017, without restarts).
    """
    if settings.lr_schedule == "constant":
        return settings.lr
    done = min(1.0, step / (settings.epochs * steps_per_epoch))
    return settings.lr * 0.5 * (1.0 + math.cos(math.pi * done))


def kl_weight(settings: TrainSettings, step: int, steps_per_epoch: int) -> float:
    """The KL term's weight in the training loss: beta * min(1, step / (kl_warmup * steps_per_epoch))."""
    if settings.kl_warmup == 0:
        return settings.beta
    return settings.beta * min(1.0, step / (settings.kl_warmup * steps_per_epoch))


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Every param group's learning rate, in place when it is a tensor (what a CUDA graph reads)."""
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr
