"""Devices: picking one, moving the dataset onto it, and its random number generators."""

import torch

from models import UserError


def resolve_device(name: str) -> torch.device:
    """auto -> cuda, then mps, then cpu; cuda:N picks a GPU; an explicit device that is not there is a UserError."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    kind, _, index = name.partition(":")
    if kind == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA GPU is available here (try --device cpu)")
    if kind == "cuda" and index:
        count = torch.cuda.device_count()
        if not (index.isascii() and index.isdigit()) or int(index) >= count:
            raise UserError(f"--device {name}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
        return torch.device("cuda", int(index))
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
    """Put back the states rng_states returned; a device generator a checkpoint from another device lacks
    keeps its state (a CPU run resumed on a GPU)."""
    torch.set_rng_state(states["cpu"])
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)
    elif device.type == "mps" and "mps" in states:
        torch.mps.set_rng_state(states["mps"])


def describe_device(device: torch.device, graphed: bool) -> str:
    """The device for the training's first line: the GPU's name and whether CUDA graphs are on, or the threads."""
    if device.type == "cuda":
        graphs = "CUDA graphs on" if graphed else "CUDA graphs off"
        return f"{device} ({torch.cuda.get_device_name(device)}, {graphs})"
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"cpu ({threads} thread{'' if threads == 1 else 's'})"
    return str(device)


def unit_pixels(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, H, W) or (N, C, H, W) -> float32 (N, C * H * W) in [0, 1], on the images' device."""
    return images.reshape(len(images), -1).float().div_(255)


def pixels(batch: torch.Tensor) -> torch.Tensor:
    """A batch of flattened images as float32 in [0, 1]: uint8 levels (the training set, as it stays on the device)
    divided by 255, float ones as they are. The same floats as unit_pixels gives for the whole set."""
    return batch.float().div_(255) if batch.dtype == torch.uint8 else batch


def to_device_levels(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 images (N, H, W) or (N, C, H, W) -> uint8 (N, C * H * W) on device: a quarter of the floats' memory
    (a 64x64 RGB folder of 20,000 images: 246 MB, not 983), each batch made float by pixels() as it is drawn."""
    return images.reshape(len(images), -1).to(device)


def to_device_images(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 images (N, H, W) or (N, C, H, W) -> float32 (N, C * H * W) in [0, 1] on device."""
    return unit_pixels(images.to(device))
