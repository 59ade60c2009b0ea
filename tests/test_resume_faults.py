"""Stops and crashes at exact moments of training, reached through named points: the run resumes bit for bit.

In this process a listener sets the stop flag (as a signal would), raises (as a crash would), or sends
SIGINT; real processes are started only for SIGKILL and SIGTERM, all at once, by one fixture.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from models import load_checkpoint
from models.points import listen
from tests.conftest import TINY_FLAGS, TINY_SETTINGS, QuietProgress, write_dataset
from train.data import load_dataset
from train.evaluate import class_centroids
from train.loop import StopFlag, Trainer, TrainingInterrupted
from train.output import OutputLock
from vae_tui.cli import main

LOSSES = ("epoch", "train_loss", "test_loss", "test_reconstruction", "test_kl")


def losses(out: Path) -> list[dict]:
    """Each metrics.jsonl row without its timings."""
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: row[k] for k in LOSSES} for row in rows]


def assert_same_run(out: Path, reference: Path) -> None:
    """Both checkpoints equal bit for bit (weights, centroids, atlas), the same loss rows, no temp file left."""
    for name in ("best.safetensors", "last.safetensors"):
        a, b = load_checkpoint(out / name), load_checkpoint(reference / name)
        assert a.epoch == b.epoch, name
        state_a, state_b = a.model.state_dict(), b.model.state_dict()
        assert all(torch.equal(state_a[k], state_b[k]) for k in state_b), name
        assert torch.equal(a.class_centroids, b.class_centroids), name
        assert a.atlas is not None and b.atlas is not None, name
        pairs = zip(a.atlas.tensors().values(), b.atlas.tensors().values(), strict=True)
        assert all(torch.equal(x, y) for x, y in pairs), name
    assert losses(out) == losses(reference)
    assert not list(out.glob(".*.tmp"))


class Crash(BaseException):
    """Raised by a listener: the process stops at that point, as if killed (its temp file is removed, though)."""


def run_until(trainer: Trainer, stop: StopFlag, action: Callable[[str], None]) -> list[str]:
    """trainer.run(stop) with action called at every named point; the labels reached."""
    labels = []

    def listener(label: str) -> None:
        labels.append(label)
        action(label)

    unlisten = listen(listener)
    try:
        trainer.run(stop)
    finally:
        unlisten()
    return labels


def at_first(point: str, then: Callable[[], None]) -> Callable[[str], None]:
    """A listener action: call then() the first time point is reached."""
    reached = []

    def action(label: str) -> None:
        if label == point and not reached:
            reached.append(label)
            then()

    return action


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of an uninterrupted run with TINY_SETTINGS (two epochs), trained once for the module."""
    root = tmp_path_factory.mktemp("straight")
    write_dataset(root / "data")
    (root / "run").mkdir()
    data = load_dataset("mnist", data_dir=root / "data")
    Trainer(TINY_SETTINGS, data, root / "run", torch.device("cpu"), QuietProgress()).run(StopFlag())
    return root / "run"


# --- cause 1: a stop at an epoch's boundary ----------------------------------------------------


@pytest.mark.parametrize(
    "point",
    [
        "epoch 2",  # before epoch 2's shuffle
        "batch 2 0",  # after it, before its first batch
        "written reconst-1.png",  # during epoch 1's writes, each file in turn
        "written metrics.jsonl",
        "written best.safetensors",
        "written last.safetensors",
    ],
)
def test_a_stop_between_epochs_resumes_bitwise(
    tmp_path: Path, make_trainer: Callable, run_training: Callable, straight: Path, point: str
) -> None:
    out = tmp_path / "split"
    trainer, stop = make_trainer(out), StopFlag()
    with pytest.raises(TrainingInterrupted) as stopped:
        run_until(trainer, stop, at_first(point, lambda: setattr(stop, "signal_name", "SIGINT")))
    assert stopped.value.checkpoint == out / "last.safetensors"
    last = load_checkpoint(out / "last.safetensors", with_resume=True)
    assert (last.resume.progress["epoch"], last.resume.progress["step"], last.epoch) == (2, 0, 1)
    assert torch.count_nonzero(last.class_centroids) > 0  # epoch 1's, not the zero sums of a step 0
    run_training(out, resume_from=out / "last.safetensors")
    assert_same_run(out, straight)


@pytest.mark.parametrize("point", ["epoch 1", "batch 1 0"])
def test_a_stop_before_the_first_batch_saves_nothing(
    tmp_path: Path, make_trainer: Callable, run_training: Callable, straight: Path, point: str
) -> None:
    out = tmp_path / "run"
    trainer, stop = make_trainer(out), StopFlag()
    with pytest.raises(TrainingInterrupted) as stopped:
        run_until(trainer, stop, at_first(point, lambda: setattr(stop, "signal_name", "SIGTERM")))
    assert stopped.value.checkpoint is None
    assert list(out.iterdir()) == []  # nothing half made: the same training starts there afresh
    run_training(out)
    assert_same_run(out, straight)


def test_a_step_0_state_taken_after_the_shuffle_resumes_bitwise(
    tmp_path: Path, mnist_dir: Path, run_training: Callable, rewrite_checkpoint: Callable, straight: Path
) -> None:
    """As an older vae-tui saved a stop before an epoch's first batch: rng_now after the shuffle, not before."""
    out = tmp_path / "split"
    run_training(out, epochs=1)
    images = len(load_dataset("mnist", data_dir=mnist_dir).train.labels)

    def after_the_shuffle(tensors: dict[str, torch.Tensor]) -> None:
        torch.set_rng_state(tensors["resume.rng_epoch_start.cpu"])
        torch.randperm(images)
        tensors["resume.rng_now.cpu"] = torch.get_rng_state()

    rewrite_checkpoint(out / "last.safetensors", edit_tensors=after_the_shuffle)
    run_training(out, resume_from=out / "last.safetensors")
    assert_same_run(out, straight)


# --- cause 2: a crash in the last epoch's writes ----------------------------------------------


@pytest.mark.parametrize(
    "point",
    [
        "written reconst-2.png",
        "written metrics.jsonl",
        "centroids last",  # the exact centroids, computed before best and last
        "written best.safetensors",
        "written last.safetensors",  # best already holds epoch 2, last still says epoch 1
    ],
)
def test_a_crash_in_the_final_writes_is_completed_by_resume(
    tmp_path: Path, make_trainer: Callable, run_training: Callable, straight: Path, point: str
) -> None:
    out = tmp_path / "run"
    trainer = make_trainer(out)

    def crash(label: str) -> None:
        if label == point and trainer.epoch == 2:
            raise Crash(label)

    with pytest.raises(Crash):
        run_until(trainer, StopFlag(), crash)
    last = load_checkpoint(out / "last.safetensors", with_resume=True)
    assert (last.resume.progress["epoch"], last.resume.progress["step"]) == (2, 0)  # not finished: resume redoes 2
    run_training(out, resume_from=out / "last.safetensors")
    assert_same_run(out, straight)


def test_a_signal_in_the_final_centroid_pass_lets_the_run_finish(
    tmp_path: Path, make_trainer: Callable, straight: Path
) -> None:
    out = tmp_path / "run"
    trainer, stop = make_trainer(out), StopFlag()
    run_until(trainer, stop, at_first("centroids last", lambda: setattr(stop, "signal_name", "SIGINT")))
    assert stop.signal_name == "SIGINT"
    assert_same_run(out, straight)


def test_an_earlier_best_gets_exact_centroids_in_the_final_writes(
    tmp_path: Path, mnist_dir: Path, make_trainer: Callable
) -> None:
    out = tmp_path / "run"
    trainer = make_trainer(out)

    def no_better_epoch(label: str) -> None:
        if label == "epoch 2":  # epoch 1 stays the best: best.safetensors holds its running centroids
            trainer.best_test_loss = 0.0

    labels = run_until(trainer, StopFlag(), no_better_epoch)
    final = labels[labels.index("epoch 2") :]
    assert [label for label in final if label.startswith(("centroids", "written best", "written last"))] == [
        "centroids last",
        "centroids best",
        "written best.safetensors",
        "written last.safetensors",
    ]
    data = load_dataset("mnist", data_dir=mnist_dir)
    x = data.train.images.reshape(len(data.train.images), -1).float() / 255
    for name, epoch in (("best.safetensors", 1), ("last.safetensors", 2)):
        checkpoint = load_checkpoint(out / name)
        assert checkpoint.epoch == epoch
        assert torch.equal(checkpoint.class_centroids, class_centroids(checkpoint.model, x, data.train.labels, 10))


# --- the lock: who removes temp files ----------------------------------------------------------


def test_stale_temp_files_are_removed_only_under_the_lock(mnist_dir: Path, tmp_path: Path, run_cli: Callable) -> None:
    out = tmp_path / "run"
    assert run_cli("train", *TINY_FLAGS, "--epochs", "1", "--data-dir", str(mnist_dir), "--out", str(out)).code == 0
    last = out / "last.safetensors"
    lock = OutputLock(out)  # a training that is writing now
    try:
        stale = out / ".best.safetensors.x1y2.tmp"
        stale.write_bytes(b"\0" * 4096)
        run_cli("train", "--resume", str(last), "--epochs", "2").assert_one_line_error("another training")
        assert stale.exists()  # its temp file, maybe in the middle of being written: not ours to remove
    finally:
        lock.release()
    run_cli("train", "--resume", str(last)).assert_one_line_error("has finished all 1 epochs")
    assert not stale.exists()  # refused, but only after taking the lock, which removes what a killed writer left


# --- cause 11: resuming into another run's folder ---------------------------------------------


def test_resume_into_another_runs_folder_is_refused(mnist_dir: Path, tmp_path: Path, run_cli: Callable) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for out, seed in ((a, "0"), (b, "1")):
        result = run_cli(
            "train", *TINY_FLAGS, "--epochs", "1", "--seed", seed, "--data-dir", str(mnist_dir), "--out", str(out)
        )
        assert result.code == 0, result.stderr
    before = {p.name: p.read_bytes() for p in b.iterdir()}
    into_b = run_cli("train", "--resume", str(a / "last.safetensors"), "--epochs", "2", "--out", str(b))
    into_b.assert_one_line_error(f"--resume continues the training in {a}, but --out names {b}")
    assert {p.name: p.read_bytes() for p in b.iterdir()} == before
    same = tmp_path / "b" / ".." / "a"  # the checkpoint's own folder, however it is spelled, is fine
    resumed = run_cli(
        "train",
        "--resume",
        str(a / "last.safetensors"),
        "--epochs",
        "2",
        "--out",
        str(same),
        "--data-dir",
        str(mnist_dir),
    )
    assert resumed.code == 0, resumed.stderr
    assert [row["epoch"] for row in losses(a)] == [1, 2]


# --- real signals: SIGINT in this process, SIGKILL and SIGTERM in others ------------------------


def test_sigint_during_the_final_writes_is_reported_and_the_run_finishes(
    mnist_dir: Path, tmp_path: Path, run_cli: Callable
) -> None:
    reference, out = tmp_path / "reference", tmp_path / "run"
    flags = [*TINY_FLAGS, "--epochs", "2", "--data-dir", str(mnist_dir)]
    assert run_cli("train", *flags, "--out", str(reference)).code == 0
    interrupt = at_first("centroids last", lambda: os.kill(os.getpid(), signal.SIGINT))
    unlisten = listen(interrupt)
    try:
        result = run_cli("train", *flags, "--out", str(out))
    finally:
        unlisten()
    assert result.code == 0, result.stderr
    assert result.stderr.strip() == (
        "SIGINT arrived after the last batch, during the final evaluation and writes:\n"
        "they were completed and the run is finished"
    )
    assert "Done: best test loss" in result.stdout
    assert_same_run(out, reference)


def test_sigint_during_start_up_of_a_resumed_run(mnist_dir: Path, tmp_path: Path, run_cli: Callable) -> None:
    out = tmp_path / "run"
    assert run_cli("train", *TINY_FLAGS, "--epochs", "1", "--data-dir", str(mnist_dir), "--out", str(out)).code == 0
    last = out / "last.safetensors"
    before = last.read_bytes()
    unlisten = listen(at_first("start data", lambda: os.kill(os.getpid(), signal.SIGINT)))
    try:
        result = run_cli("train", "--resume", str(last), "--epochs", "2", "--data-dir", str(mnist_dir))
    finally:
        unlisten()
    assert result.code == 130
    # the flags it was started with, one a line
    resume = f"vae-tui train \\\n    --resume {last} \\\n    --epochs 2 \\\n    --data-dir {mnist_dir}"
    assert result.stderr == f"SIGINT: stopped and saved. Resume with:\n  {resume}\n"
    assert last.read_bytes() == before  # it holds that very moment already


class Started:
    """A `vae-tui train` process that stops itself at a named point, and its folders."""

    def __init__(self, out: Path, data: Path, point: str, args: list[str]) -> None:
        self.out, self.data = out, data
        env = {**os.environ, "VAE_TUI_SIGNAL_AT": point, "OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-m", "vae_tui", "train", *args, "--data-dir", str(data)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def wait(self) -> tuple[int, str]:
        """The exit status and stderr."""
        _, stderr = self.process.communicate(timeout=120)
        return self.process.returncode, stderr


@pytest.fixture(scope="module")
def signalled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Processes started together, each stopping itself at its point, by case; "reference": a folder trained
    straight."""
    root = tmp_path_factory.mktemp("signalled")
    data = root / "data"
    write_dataset(data)
    one_epoch = root / "one-epoch"
    assert main(["train", *TINY_FLAGS, "--epochs", "1", "--data-dir", str(data), "--out", str(one_epoch)]) == 0

    def resumed(case: str, point: str) -> Started:
        shutil.copytree(one_epoch, root / case)
        return Started(root / case, data, point, ["--resume", str(root / case / "last.safetensors"), "--epochs", "2"])

    def new(case: str, point: str, epochs: int) -> Started:
        return Started(root / case, data, point, [*TINY_FLAGS, "--epochs", str(epochs), "--out", str(root / case)])

    started = {
        # epoch 2, the last, is trained by a process resumed after epoch 1: its first write of best is the last epoch's
        "kill-best": resumed("kill-best", "written best.safetensors=SIGKILL"),
        "kill-centroids": new("kill-centroids", "centroids last=SIGKILL", epochs=2),
        "term-start-new": new("term-start-new", "start model=SIGTERM", epochs=1),
    }
    reference = root / "reference"
    assert main(["train", *TINY_FLAGS, "--epochs", "2", "--data-dir", str(data), "--out", str(reference)]) == 0
    yield {**started, "reference": reference}
    for run in started.values():
        if run.process.poll() is None:
            run.process.kill()
            run.process.communicate()


@pytest.mark.parametrize("case", ["kill-best", "kill-centroids"])
def test_sigkill_in_the_final_writes_is_completed_by_resume(signalled: dict, run_cli: Callable, case: str) -> None:
    run = signalled[case]
    code, stderr = run.wait()
    assert code == -signal.SIGKILL, stderr
    last = load_checkpoint(run.out / "last.safetensors", with_resume=True)
    assert (last.resume.progress["epoch"], last.resume.progress["step"]) == (2, 0)
    if case == "kill-best":
        assert list(run.out.glob(".best.safetensors.*.tmp"))  # killed inside the write, its temp file whole
    # the command the killed process ran, again (kill-best extended a one-epoch run to two)
    resumed = run_cli(
        "train", "--resume", str(run.out / "last.safetensors"), "--epochs", "2", "--data-dir", str(run.data)
    )
    assert resumed.code == 0, resumed.stderr
    assert "from epoch 2, batch 0" in resumed.stdout
    assert_same_run(run.out, signalled["reference"])


def test_sigterm_during_start_up_of_a_new_run(signalled: dict, run_cli: Callable) -> None:
    run = signalled["term-start-new"]
    code, stderr = run.wait()
    assert code == 143
    assert stderr == "SIGTERM arrived before the first batch: nothing was trained or saved\n"
    assert sorted(p.name for p in run.out.iterdir()) == [".lock"]  # no half state: the same command starts afresh
    again = run_cli("train", *TINY_FLAGS, "--epochs", "1", "--data-dir", str(run.data), "--out", str(run.out))
    assert again.code == 0, again.stderr
