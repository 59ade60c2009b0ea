"""CPU threads: the load other processes put on this process's CPUs, the count that follows it, the busy notice."""

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from rich.console import Console

import train.threads
from models import load_checkpoint
from tests.helpers import TINY_SETTINGS, QuietProgress
from train.data import load_dataset
from train.loop import StopFlag, Trainer
from train.progress import RichProgress
from train.stop import TrainingInterrupted
from train.threads import LoadMeter, SlowdownWatch, ThreadFollower, threads_for_load


@pytest.fixture(autouse=True)
def nothing_fixed(monkeypatch: pytest.MonkeyPatch) -> None:
    """None of the user's thread variables set (the suite sets OMP_NUM_THREADS for the processes it starts)."""
    for name in train.threads.USER_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("usable", "others", "default", "count"),
    [
        (2, 0.0, 2, 2),  # idle: torch's own count
        (2, 0.3, 2, 2),  # a light competitor costs less than a thread
        (2, 0.68, 2, 1),  # one busy competitor beside our 2 spinning threads gets 2/3 of a core
        (2, 1.0, 2, 1),
        (2, 2.0, 2, 1),  # never below one
        (8, 2.2, 8, 6),
        (8, 0.0, 4, 4),  # never above torch's (or the user's) count
        (2, None, 2, 2),  # no reading (not Linux): torch's count
    ],
)
def test_the_count_is_the_cpus_the_load_leaves(usable: int, others: float | None, default: int, count: int) -> None:
    assert threads_for_load(usable, others, default) == count


def fake_machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cpus: set[int]) -> Callable[..., None]:
    """A /proc/stat, a CPU-time counter and a clock that the test moves: set(busy_ticks per CPU, own_s, now_s)."""
    stat = tmp_path / "stat"
    monkeypatch.setattr(train.threads, "PROC_STAT", stat)
    monkeypatch.setattr(train.threads.os, "sched_getaffinity", lambda pid: cpus)
    state = {"own": 0.0, "now": 100.0}
    monkeypatch.setattr(train.threads.os, "times", lambda: type("T", (), {"user": state["own"], "system": 0.0})())
    monkeypatch.setattr(train.threads.time, "monotonic", lambda: state["now"])

    def set_(busy: dict[int, int], own: float, now: float) -> None:
        lines = ["cpu  1 2 3 4 5 6 7 8 0 0"]  # the total line is not read
        # user nice system idle iowait irq softirq steal guest guest_nice; busy split over user, system, steal
        lines += [f"cpu{i} {b // 2} 0 {b // 4} 999 7 0 0 {b - b // 2 - b // 4} 0 0" for i, b in sorted(busy.items())]
        stat.write_text("\n".join(lines) + "\n")
        state.update(own=own, now=now)

    return set_


def test_the_meter_counts_other_processes_busy_time_on_our_cpus(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    machine = fake_machine(monkeypatch, tmp_path, {0, 1})
    machine({0: 1000, 1: 1000, 2: 0}, own=0.0, now=100.0)
    meter = LoadMeter()
    # 2 s later: CPUs 0 and 1 busy 300 ticks (3 s) in all, of which this process ran 1.6 s: others 1.4 s in 2 s.
    # CPU 2 is not ours: its load does not count.
    machine({0: 1150, 1: 1150, 2: 200}, own=1.6, now=102.0)
    assert meter.others() == pytest.approx(0.7, abs=1e-6)
    machine({0: 1150, 1: 1150, 2: 400}, own=1.6, now=103.0)  # nothing ran on our CPUs
    assert meter.others() == 0.0
    machine({0: 1150, 1: 1150, 2: 400}, own=1.6, now=103.01)  # too short a window to tell
    assert meter.others() is None


def test_without_proc_stat_the_meter_reads_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(train.threads, "PROC_STAT", tmp_path / "missing")
    assert LoadMeter().others() is None


def test_a_cgroup_quota_caps_the_usable_cpus(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(train.threads.os, "sched_getaffinity", lambda pid: set(range(16)))
    cpu_max = tmp_path / "cpu.max"
    monkeypatch.setattr(train.threads, "CGROUP_CPU_MAX", cpu_max)
    assert train.threads.usable_cpus() == 16  # no cgroup file
    cpu_max.write_text("250000 100000\n")  # docker --cpus 2.5
    assert train.threads.usable_cpus() == 3
    cpu_max.write_text("max 100000\n")
    assert train.threads.usable_cpus() == 16


@pytest.mark.parametrize("variable", train.threads.USER_VARIABLES)
def test_the_users_variables_win(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "1")
    follower = ThreadFollower()
    assert not follower.follows and follower.why_fixed == variable
    assert ThreadFollower(fixed=3).why_fixed == "--threads"


class FixedLoad(ThreadFollower):
    """A follower that reads the given load for each epoch in turn (the last one from then on)."""

    def __init__(self, loads: list[float]) -> None:
        super().__init__()
        self.loads = loads
        self.meter.others = lambda: self.loads.pop(0) if len(self.loads) > 1 else self.loads[0]  # type: ignore
        self.usable, self.default = 2, 2


@pytest.fixture
def two_threads() -> object:
    """torch on 2 threads for the test (the suite runs on 1), put back after."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.usefixtures("two_threads")
def test_each_epoch_trains_on_the_count_the_load_leaves_and_records_it(mnist_dir: Path, tmp_path: Path) -> None:
    data = load_dataset("mnist", data_dir=mnist_dir)
    progress = QuietProgress()
    settings = replace(TINY_SETTINGS, epochs=3)
    trainer = Trainer(settings, data, tmp_path, torch.device("cpu"), progress, threads=FixedLoad([1.0, 1.0, 0.0]))
    trainer.run(StopFlag())
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["threads"] for row in rows] == [1, 1, 2]
    said = [line for line in progress.lines if isinstance(line, str)]
    assert said[0].startswith("other processes keep 1.0 of 2 CPUs busy: epoch 1 trains on 1 thread")
    assert said[1].startswith("other processes keep 0.0 of 2 CPUs busy: epoch 3 trains on 2 threads")
    assert len(said) == 2
    fixed = Trainer(settings, data, tmp_path / "fixed", torch.device("cpu"), QuietProgress(), threads=ThreadFollower(2))
    (tmp_path / "fixed").mkdir()
    fixed.run(StopFlag())
    rows = [json.loads(line) for line in (tmp_path / "fixed" / "metrics.jsonl").read_text().splitlines()]
    assert [row["threads"] for row in rows] == [2, 2, 2]


@pytest.mark.slow
@pytest.mark.usefixtures("two_threads")
def test_a_run_stopped_mid_epoch_resumes_on_that_epochs_count(mnist_dir: Path, tmp_path: Path) -> None:
    data = load_dataset("mnist", data_dir=mnist_dir)
    stop = StopFlag()
    trainer = Trainer(TINY_SETTINGS, data, tmp_path, torch.device("cpu"), QuietProgress(), threads=FixedLoad([1.0]))
    original_step = trainer.train_step

    def step_then_stop(index: torch.Tensor) -> None:
        original_step(index)
        stop.signal_name = "SIGINT"  # seen before the next batch

    trainer.train_step = step_then_stop
    with pytest.raises(TrainingInterrupted):
        trainer.run(stop)
    checkpoint = load_checkpoint(tmp_path / "last.safetensors", with_resume=True)
    assert checkpoint.resume.progress["threads"] == 1 and checkpoint.resume.progress["step"] == 1
    resumed = Trainer(
        TINY_SETTINGS, data, tmp_path, torch.device("cpu"), QuietProgress(), checkpoint, threads=FixedLoad([0.0])
    )
    resumed.run(StopFlag())
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["threads"] for row in rows] == [1, 2]  # the stopped epoch goes on as it began; the next follows


@pytest.mark.slow
@pytest.mark.usefixtures("two_threads")
def test_the_mlp_trains_to_the_same_tensors_on_any_thread_count(mnist_dir: Path, tmp_path: Path) -> None:
    """The reproducibility promise with a count that follows the load: the demo's MLP (784-400-20, batch 128)
    gives the same bits on 1 and 2 threads. (The conv arch's convolutions do not: docs/threads.md.)"""
    data = load_dataset("mnist", data_dir=mnist_dir)
    settings = replace(TINY_SETTINGS, epochs=1, batch_size=128, hidden_dim=400, latent_dim=20, lr=1e-3)
    weights = []
    for count in (1, 2):
        trainer = Trainer(settings, data, tmp_path / str(count), torch.device("cpu"), QuietProgress(), threads=None)
        (tmp_path / str(count)).mkdir()
        torch.set_num_threads(count)
        trainer.run(StopFlag())
        weights.append(trainer.model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_the_busy_notice_needs_30_slow_seconds_and_clears() -> None:
    watch = SlowdownWatch()
    for second in range(20):
        assert watch.reading(10_000.0, second * 0.25) is None  # the run's early speed
    assert watch.reading(4_000.0, 10.0) is None  # slow from 10 s on
    assert watch.reading(6_000.0, 20.0) is None  # half or more: not slow, the clock restarts
    assert watch.reading(4_000.0, 21.0) is None
    assert watch.reading(4_000.0, 50.0) is None  # 29 s
    assert watch.reading(4_000.0, 51.0) is True  # 30 s: say it, once
    assert watch.reading(3_000.0, 60.0) is None
    assert watch.reading(9_000.0, 61.0) is False  # recovered: take it back


def test_the_notice_is_one_line_under_the_bars() -> None:
    console = Console(record=True, width=80, force_terminal=True, color_system=None)
    progress = RichProgress(console, show_preview=False)
    progress.start(2, 1, 10)
    progress.notice("busy machine: \x1b]2;x\x07 4,000 img/s")
    text = console.export_text()
    progress.close()
    shown = console.export_text()
    assert "\x1b" not in text + shown
    assert "busy machine" in shown and shown.index("batches") < shown.index("busy machine")


@pytest.mark.usefixtures("two_threads")
def test_one_long_computation_says_when_it_runs_on_fewer_threads() -> None:
    import argparse

    from vae_tui.commands import threads_for_load

    busy = argparse.Namespace(command="eval", threads=None, thread_follower=FixedLoad([1.0]))
    assert threads_for_load(busy) == (
        "other processes keep 1.0 of 2 CPUs busy: computing on 1 thread (--threads N fixes the count)"
    )
    assert torch.get_num_threads() == 1
    torch.set_num_threads(2)
    idle = argparse.Namespace(command="eval", threads=None, thread_follower=FixedLoad([0.0]))
    assert threads_for_load(idle) == "" and torch.get_num_threads() == 2


@pytest.mark.usefixtures("two_threads")
def test_a_slow_stretch_of_training_says_so_under_the_bars(mnist_dir: Path, tmp_path: Path) -> None:
    data = load_dataset("mnist", data_dir=mnist_dir)
    progress = QuietProgress()
    trainer = Trainer(TINY_SETTINGS, data, tmp_path, torch.device("cpu"), progress, threads=None)
    for reading in range(20):
        trainer._watch_speed(10_000.0, reading * 0.25)
    trainer._watch_speed(3_000.0, 10.0)
    trainer._watch_speed(3_000.0, 40.0)
    assert progress.lines == ["busy machine: 3,000 img/s against 10,000 early; try --threads 1"]
