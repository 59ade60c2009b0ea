"""A checkpoint's resume state, checked field by field: Adam's param groups and state, RNG states, progress."""

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from models.errors import CheckpointError
from models.limits import finite_number, shown


@dataclass
class ResumeState:
    """What training needs to continue bit for bit: optimizer, RNG states and progress."""

    optimizer: dict  # torch.optim state_dict
    tensors: dict[str, torch.Tensor]  # RNG states, running sums ...
    progress: dict  # JSON-able: epoch, step within the epoch ...


ADAM_NUMBERS = ("lr", "eps", "weight_decay")  # finite and not negative
ADAM_FLAGS = ("amsgrad", "maximize", "differentiable", "decoupled_weight_decay")
ADAM_OPTIONAL_FLAGS = ("foreach", "fused", "capturable")  # True, False or None (torch picks)
ADAM_STATE = ("step", "exp_avg", "exp_avg_sq")  # per parameter, once it has taken a step
MAX_RNG_BYTES = 1 << 16  # a CPU generator's state is 5056 bytes; MPS's a few hundred


def parameter_index(text: str, count: int) -> int | None:
    """text as the index of one of count parameters ("0", "1" ...), or None if it is not one."""
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(count))):
        return None
    index = int(text)
    return index if index < count else None


def resume_state(
    info: dict, tensors: dict[str, torch.Tensor], shapes: list[tuple[int, ...]], path: Path
) -> ResumeState:
    """The resume state in a checkpoint's metadata and tensors; shapes are the model's parameters' in order."""
    if "resume" not in info or "optimizer" not in info:
        raise CheckpointError(f"{path} holds weights only, no training state to resume from (use last.safetensors)")
    optimizer_info = info["optimizer"]
    if not isinstance(optimizer_info, dict) or set(optimizer_info) != {"param_groups", "scalars"}:
        raise CheckpointError(f"{path} has malformed optimizer state: param_groups and scalars expected")
    groups = _param_groups(optimizer_info["param_groups"], len(shapes), path)
    amsgrad = any(group.get("amsgrad") for group in groups)
    state = _optimizer_state(optimizer_info["scalars"], tensors, shapes, amsgrad, path)
    extra = {k.removeprefix("resume."): v for k, v in tensors.items() if k.startswith("resume.")}
    for name, tensor in extra.items():
        _check_rng_state(name, tensor, path)
    return ResumeState({"state": state, "param_groups": groups}, extra, _progress(info["resume"], path))


def _bad(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"{path} has malformed optimizer state: {what}")


def _param_groups(raw: object, n_params: int, path: Path) -> list[dict]:
    """Adam's param groups: every parameter in exactly one, each setting of a type and range Adam takes."""
    if not isinstance(raw, list) or not raw or not all(isinstance(g, dict) for g in raw):
        raise _bad(path, "param_groups must be a list of objects")
    indices = []
    for group in raw:
        params = group.get("params")
        if not isinstance(params, list) or not all(type(i) is int for i in params):
            raise _bad(path, "a param group's params must be a list of parameter indices")
        indices += params
    if sorted(indices) != list(range(n_params)):
        raise _bad(path, f"the param_groups must hold the parameters 0 to {n_params - 1}, each once")
    groups = []
    for group in raw:
        for key, value in group.items():
            if key == "params":
                continue
            if problem := _group_value_problem(key, value):
                raise _bad(path, f"{shown(key)} {problem}")
        missing = [k for k in (*ADAM_NUMBERS, "betas") if k not in group]
        if missing:
            raise _bad(path, f"a param group lacks {', '.join(missing)}")
        if group.get("differentiable"):
            raise _bad(path, "differentiable must be false")
        groups.append({**group, "betas": tuple(group["betas"])})  # JSON turned Adam's betas tuple into a list
    return groups


def _group_value_problem(key: str, value: object) -> str | None:
    """Why a param group's setting is not one Adam takes, or None."""
    if key in ADAM_NUMBERS:
        ok = finite_number(value) and value >= 0
        return None if ok else f"must be a finite number, not negative; got {shown(value)}"
    if key == "betas":
        ok = isinstance(value, list) and len(value) == 2 and all(finite_number(b) and 0 <= b < 1 for b in value)
        return None if ok else f"must be two numbers from 0 to 1; got {shown(value)}"
    if key in ADAM_FLAGS:
        return None if type(value) is bool else f"must be true or false; got {shown(value)}"
    if key in ADAM_OPTIONAL_FLAGS:
        return None if value is None or type(value) is bool else f"must be true, false or null; got {shown(value)}"
    # a setting a later torch may add: kept if it is a flag or a number, refused otherwise
    if value is None or type(value) is bool or finite_number(value):
        return None
    return f"is of a type Adam does not take; got {shown(value)}"


def _optimizer_state(
    scalars: object, tensors: dict[str, torch.Tensor], shapes: list[tuple[int, ...]], amsgrad: bool, path: Path
) -> dict[int, dict]:
    """Adam's per-parameter state from the optimizer.<index>.<key> tensors: a scalar step, moments shaped as the
    parameter."""
    if not isinstance(scalars, dict):
        raise _bad(path, "scalars must be an object")
    state: dict[int, dict] = {}
    for index, values in scalars.items():  # written by a torch whose step was a number
        position = parameter_index(index, len(shapes))
        if position is None or not isinstance(values, dict) or not set(values) <= {"step"}:
            raise _bad(path, f"unexpected scalars {shown(index)}")
        step = values.get("step", 0)
        if not (finite_number(step) and step >= 0):
            raise _bad(path, f"step must be a number, not negative; got {shown(step)}")
        state.setdefault(position, {})["step"] = torch.tensor(float(step))
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)  # the index was checked with the header's shapes
            state.setdefault(int(index), {})[key] = value
    required = (*ADAM_STATE, "max_exp_avg_sq") if amsgrad else ADAM_STATE
    for index, values in state.items():
        if missing := [key for key in required if key not in values]:
            raise _bad(path, f"parameter {index} lacks {', '.join(missing)}")
        if any(v.dtype != torch.float32 for v in values.values()):  # as vae-tui writes it, and fused Adam takes it
            raise _bad(path, f"parameter {index}'s state must be float32")
        if any(not torch.isfinite(v).all() for v in values.values()):
            raise CheckpointError(f"{path}: its optimizer state contains NaN or infinite values")
        for key, value in values.items():
            if tuple(value.shape) != (() if key == "step" else shapes[index]):
                raise _bad(path, f"optimizer.{index}.{shown(key)} has shape {tuple(value.shape)}")
        if values["step"] < 0:
            raise _bad(path, f"parameter {index} has a negative step")
    return state


def _check_rng_state(name: str, tensor: torch.Tensor, path: Path) -> None:
    """An RNG state (rng_<when>.<device>) must be one that device's generator takes."""
    when, _, device = name.rpartition(".")
    if not when.startswith("rng"):
        return
    bad = CheckpointError(f"{path} has a malformed resume state: {shown(name)} is not a {device} generator's state")
    if tensor.dtype != torch.uint8 or tensor.dim() != 1 or not 0 < len(tensor) <= MAX_RNG_BYTES:
        raise bad
    if device not in ("cpu", "cuda", "mps"):
        raise bad
    if device == "cpu" or device == "cuda" and torch.cuda.is_available():  # tried on a generator of its own
        try:
            torch.Generator(device=device).set_state(tensor)
        except (RuntimeError, TypeError, ValueError):
            raise bad from None


def _progress(raw: object, path: Path) -> dict:
    """Where training stopped: epoch (from 1), step (from 0), the best epoch so far and its test loss."""
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path} has malformed resume metadata: {shown(raw)}")
    progress = dict(raw)
    if "best_test_loss" in progress and progress["best_test_loss"] is None:  # no epoch finished: written as null
        progress["best_test_loss"] = math.inf
    kinds = {"epoch": (int,), "step": (int,), "best_epoch": (int,), "best_test_loss": (int, float)}
    if any(type(progress.get(k)) not in t for k, t in kinds.items()):
        raise CheckpointError(f"{path} has malformed resume metadata: {shown(raw)}")
    epoch, step, best_epoch, best_loss = (progress[k] for k in kinds)
    if epoch < 1 or step < 0 or not 0 <= best_epoch < epoch or math.isnan(best_loss):
        raise CheckpointError(
            f"{path} has malformed resume metadata: epoch {epoch}, step {step}, best epoch {best_epoch},"
            f" best test loss {best_loss}"
        )
    return progress
