"""The bounds that flags, training settings and the checkpoint loader share, and the memory they are checked against.

Torch-free, so that the command line can name the bounds in --help without importing torch.
"""

import math
import os

IMAGE_SIDE = 28  # FashionMNIST's and MNIST's images, the only ones vae-tui trains on and draws
IMAGE_PIXELS = IMAGE_SIDE * IMAGE_SIDE  # a model's input_dim
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 128  # a model's image side (image folders: train --data, --image-size)
IMAGE_CHANNELS = (1, 3)  # grey or RGB
# One bound for every size a user picks (--latent-dim, --hidden-dim, --batch-size) and every size a
# checkpoint states: what train accepts, load accepts. 65536 is far past any useful width for 784
# pixels, and small enough that a size alone never announces terabytes.
MAX_SIZE = 1 << 16
MAX_SEED = 2**63 - 1  # torch.manual_seed and Generator.manual_seed take at most a signed 64-bit integer
MAX_EPOCHS = 1_000_000  # 17 days at 1.5 s an epoch: a bound so that the count stays a count


def shown(value: object) -> str:
    """value as a message quotes it: repr, cut short; an integer too long to print by its digit count."""
    if type(value) is int and value.bit_length() > 128:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def finite_number(value: object) -> bool:
    """Whether value is a finite float, or an int a float can hold (bool is neither)."""
    if type(value) is int:
        return value.bit_length() <= 1023
    return type(value) is float and math.isfinite(value)


def size_problem(value: object, low: int = 1, high: int = MAX_SIZE) -> str | None:
    """Why value is not an integer from low to high, or None if it is."""
    if type(value) is not int:
        return f"must be an integer, got {shown(value)}"
    if not low <= value <= high:
        return f"must be from {low} to {high}, got {shown(value)}"
    return None


def seed_problem(value: object) -> str | None:
    """Why value is not a seed torch accepts (0 to 2**63-1), or None if it is."""
    if size_problem(value, 0, MAX_SEED) is None:
        return None
    return f"must be an integer from 0 to 2**63-1, got {shown(value)}"


def _meminfo_available() -> int | None:
    """MemAvailable from /proc/meminfo in bytes, if this system has it."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def available_memory() -> int:
    """Bytes of memory this machine can still give a process (swap not counted); huge where nobody says."""
    available = _meminfo_available()
    if available is not None:
        return available
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # neither exists (macOS has no SC_AVPHYS_PAGES): no bound known
        return 1 << 62


def gigabytes(n: int) -> str:
    """n bytes as GB with one decimal."""
    return f"{n / 1e9:.1f} GB"
