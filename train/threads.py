"""CPU threads: how many this process may use, and a requested count held to that."""

import os


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask: taskset, cgroups' cpusets), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS and Windows have no affinity mask
        return max(1, os.cpu_count() or 1)


def capped_threads(requested: int) -> tuple[int, str]:
    """requested, or the usable CPUs when it is more, and the note that says so ("" when it stands).

    More threads than CPUs only wait for each other: on 2 cores, 1024 threads ran about 30x slower than 2.
    """
    usable = usable_cpus()
    if requested <= usable:
        return requested, ""
    return usable, f"--threads {requested} is more than the {usable} CPUs this process may use: using {usable}"
