"""CPU threads: how many this process may use, a requested count held to that, and a count that follows the load.

torch's CPU thread pool (OpenMP) splits each operation across its threads and waits for all of them; a waiting
thread spins. When another process holds one of the cores, every operation waits for the thread that is not
running, while its partner spins: on 2 cores with one busy competitor, an epoch took 25x longer on 2 threads than
on 1 (docs/threads.md). The count that follows the load is the usable CPUs less those other processes kept busy,
measured from the kernel's counters (/proc/stat) over the previous epoch; it changes between epochs only.
"""

import math
import os
import time
from pathlib import Path

# Variables through which the user fixes the thread pool themselves: vae-tui then leaves it alone.
USER_VARIABLES = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS")
PROC_STAT = Path("/proc/stat")
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def _quota_cpus() -> int | None:
    """The CPUs a cgroup v2 quota (docker --cpus, a Slurm or Kubernetes limit) allows, rounded up; None if none."""
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
        return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask: taskset, cpusets; a cgroup quota), at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no affinity mask
        cpus = os.cpu_count() or 1
    quota = _quota_cpus()
    return max(1, min(cpus, quota) if quota else cpus)


def capped_threads(requested: int) -> tuple[int, str]:
    """requested, or the usable CPUs when it is more, and the note that says so ("" when it stands).

    More threads than CPUs only wait for each other: on 2 cores, 1024 threads ran about 30x slower than 2.
    """
    usable = usable_cpus()
    if requested <= usable:
        return requested, ""
    return usable, f"--threads {requested} is more than the {usable} CPUs this process may use: using {usable}"


def user_fixed() -> str:
    """The variable through which the user set the thread pool ("" when none): it wins over the load's count."""
    return next((name for name in USER_VARIABLES if os.environ.get(name)), "")


class LoadMeter:
    """How many of this process's CPUs other processes kept busy between two readings (Linux; None elsewhere).

    /proc/stat counts each CPU's busy time, whoever ran; this process's own CPU time (all its threads, spinning
    included) is taken out, and what is left over the wall time is other processes' load, in CPUs.
    """

    def __init__(self) -> None:
        try:
            self.cpus = {f"cpu{i}" for i in os.sched_getaffinity(0)}
        except (AttributeError, OSError):
            self.cpus = set()
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.last = self._read()

    def _read(self) -> tuple[float, float, float] | None:
        """(busy seconds of our CPUs, this process's CPU seconds, monotonic seconds), None where unreadable."""
        if not self.cpus:
            return None
        try:
            lines = PROC_STAT.read_text().splitlines()
        except OSError:
            return None
        busy = 0
        for line in lines:
            name, _, counts = line.partition(" ")
            if name in self.cpus:
                # user nice system idle iowait irq softirq steal: all but idle and iowait are busy (steal too:
                # a hypervisor's other guests take that time)
                values = [int(v) for v in counts.split()[:8]]
                busy += sum(values) - values[3] - values[4]
        own = os.times()
        return busy / self.tick, own.user + own.system, time.monotonic()

    def others(self) -> float | None:
        """CPUs busy with other processes since the last call (or since this meter was made); None if unknown."""
        now, last = self._read(), self.last
        self.last = now
        if now is None or last is None or now[2] - last[2] < 0.05:
            return None
        return max(0.0, (now[0] - last[0]) - (now[1] - last[1])) / (now[2] - last[2])


def threads_for_load(usable: int, others: float | None, default: int) -> int:
    """The thread count for the next stretch of work: the CPUs the other processes leave free, at most default.

    Rounded to the nearest: a competitor that keeps less than half a CPU busy costs less than a thread does.
    """
    if others is None:
        return default
    return max(1, min(default, math.floor(usable - others + 0.5)))


class ThreadFollower:
    """Each stretch of work's thread count: the user's when they fixed one, else the count the load leaves free.

    Made when a command starts, so that its first reading spans the start-up (imports, data loading): the first
    epoch already runs on the right count.
    """

    def __init__(self, fixed: int | None = None) -> None:
        self.fixed = fixed
        self.why_fixed = "--threads" if fixed is not None else user_fixed()
        self.meter = LoadMeter()
        self.usable = usable_cpus()
        self.default: int | None = None  # torch's own count, read when torch is loaded
        self.others: float | None = None  # the load of the last reading, in CPUs

    @property
    def follows(self) -> bool:
        """Whether the count follows the load (the user fixed nothing)."""
        return not self.why_fixed

    def choose(self) -> int:
        """The thread count for the next stretch (an epoch, an evaluation), set in torch; the load re-read."""
        current = self._current()  # reads the default first
        if not self.follows:
            return current
        self.others = self.meter.others()
        count = threads_for_load(self.usable, self.others, self.default or current)
        self._set(count)
        return count

    def use(self, count: int) -> None:
        """Run the next stretch on count threads (a resumed epoch repeats its recorded count); the load re-read."""
        self.meter.others()  # the next reading spans the coming stretch only
        if self.follows:
            self._set(max(1, min(count, self.usable)))

    def _current(self) -> int:
        """torch's thread count now; the first call also takes it as the default (torch's own, or the user's)."""
        import torch

        if self.default is None:
            self.default = self.fixed or torch.get_num_threads()
        return torch.get_num_threads()

    def _set(self, count: int) -> None:
        import torch

        if count != self._current():
            torch.set_num_threads(count)


class SlowdownWatch:
    """Whether training's speed has stayed under half of this run's own early median for 30 s."""

    EARLY_READINGS = 20  # the run's first readings (a few seconds of steps) set its normal speed
    SLOW_FRACTION = 0.5
    SLOW_SECONDS = 30.0

    def __init__(self) -> None:
        self.early: list[float] = []
        self.slow_since: float | None = None
        self.busy = False  # whether the slowdown is being reported

    @property
    def normal(self) -> float:
        """The run's early speed: the median of its first readings."""
        return sorted(self.early)[len(self.early) // 2]

    def reading(self, images_per_s: float, now: float) -> bool | None:
        """Take one speed reading; True when the run has just become slow, False when it has just recovered."""
        if len(self.early) < self.EARLY_READINGS:
            self.early.append(images_per_s)
            return None
        if images_per_s >= self.SLOW_FRACTION * self.normal:
            self.slow_since = None
            if self.busy:
                self.busy = False
                return False
            return None
        if self.slow_since is None:
            self.slow_since = now
        if not self.busy and now - self.slow_since >= self.SLOW_SECONDS:
            self.busy = True
            return True
        return None
