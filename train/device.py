"""Devices: picking one, moving the dataset onto it, and its random number generators."""

import torch

from models import UserError


def resolve_device(name: str) -> torch.device:
    """auto -> cuda, then mps, then cpu; an explicit device that is not there is a UserError."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is available here (try --device cpu)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps: Apple's MPS is not available here (try --device cpu)")
    if name not in ("cpu", "cuda", "mps"):
        raise UserError(f"unknown device {name!r}: choose auto, cpu, cuda or mps")
    return torch.device(name)


def rng_states(device: torch.device) -> dict[str, torch.Tensor]:
    """The generator states that training draws from."""
    states = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    elif device.type == "mps":
        states["mps"] = torch.mps.get_rng_state()
    return states


def set_rng_states(states: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(states["cpu"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda"], device)
    elif device.type == "mps":
        torch.mps.set_rng_state(states["mps"])


def unit_pixels(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, H, W) -> float32 (N, H * W) in [0, 1], on the images' device."""
    return images.reshape(len(images), -1).float().div_(255)


def to_device_images(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 784) in [0, 1] on device."""
    return unit_pixels(images.to(device))
