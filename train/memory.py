"""Keeping freed memory in the process, so that a training step does not page-fault on its own tensors.

A CPU training step frees and allocates the same few-megabyte tensors (activations, their
gradients, the weights' gradients) every step. glibc's malloc hands such blocks back to the
kernel: those above its mmap threshold as they are freed, and the heap's free top past its
trim threshold. The next step touches fresh pages, and every 4 KiB page of them faults. On
the conv VAE that was about a thousand page faults a step and 7-12% of its time on the 2-core
CPU (bench/malloc_keep.py). With both thresholds raised, freed memory stays in the process
and the next step reuses it. The process's peak memory is unchanged; only its handing back
of memory to the kernel is.
"""

import ctypes
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
KEEP_BYTES = 1 << 30  # blocks up to 1 GiB come from the heap, and up to 1 GiB of free heap stays


def is_glibc() -> bool:
    """Whether this process runs on GNU libc (where mallopt means what keep_freed_memory needs)."""
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):  # not POSIX, or the name is unknown here (macOS, musl)
        return False


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for reuse; returns whether it took effect (False off glibc)."""
    if not is_glibc():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) & bool(mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
