"""Resuming: stops and crashes at exact moments of training, reached through named points, and the run resumes bit
for bit; and what `--resume` refuses (a state that does not fit, weights only, hostile settings or optimizer
state), in one line.

In this process a listener sets the stop flag (as a signal would), raises (as a crash would), or sends
SIGINT or SIGTERM; real processes are started only for SIGKILL, all at once, by one fixture (test_cli.py sends
SIGINT and SIGTERM to real processes).
"""

import json
import os
import re
import shutil
import signal
from collections.abc import Callable, Iterator
from dataclasses import asdict, fields
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from models import CheckpointError, UserError, load_checkpoint
from models.limits import MAX_EPOCHS, MAX_SEED, MAX_SIZE
from models.points import listen
from tests.helpers import (
    FUZZ,
    SMALL,
    TINY_FLAGS,
    TINY_SETTINGS,
    VALUES,
    Forked,
    QuietProgress,
    untrained_checkpoint,
    write_dataset,
)
from train.data import load_dataset
from train.evaluate import class_centroids
from train.loop import StopFlag, Trainer, TrainingInterrupted
from train.output import OutputLock
from train.progress import PlainProgress
from train.settings import TrainSettings
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_signal_in_the_final_centroid_pass_lets_the_run_finish(
    tmp_path: Path, make_trainer: Callable, straight: Path
) -> None:
    out = tmp_path / "run"
    trainer, stop = make_trainer(out), StopFlag()
    run_until(trainer, stop, at_first("centroids last", lambda: setattr(stop, "signal_name", "SIGINT")))
    assert stop.signal_name == "SIGINT"
    assert_same_run(out, straight)


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


# --- real signals: SIGINT and SIGTERM in this process, SIGKILL in others --------------------------


@pytest.mark.slow
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


@pytest.mark.slow
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
    """A `vae-tui train` process (Forked) that stops itself at a named point, and its folders."""

    def __init__(self, out: Path, data: Path, point: str, args: list[str]) -> None:
        self.out, self.data = out, data
        env = {"VAE_TUI_SIGNAL_AT": point, "OMP_NUM_THREADS": "1"}
        self.process = Forked(["train", *args, "--data-dir", str(data)], env)

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
    }
    reference = root / "reference"
    assert main(["train", *TINY_FLAGS, "--epochs", "2", "--data-dir", str(data), "--out", str(reference)]) == 0
    yield {**started, "reference": reference}
    for run in started.values():
        if run.process.poll() is None:
            run.process.kill()
            run.process.communicate()


@pytest.mark.slow
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


@pytest.mark.slow
def test_sigterm_during_start_up_of_a_new_run(mnist_dir: Path, tmp_path: Path, run_cli: Callable) -> None:
    out = tmp_path / "run"
    args = ["train", *TINY_FLAGS, "--epochs", "1", "--data-dir", str(mnist_dir), "--out", str(out)]
    unlisten = listen(at_first("start model", lambda: os.kill(os.getpid(), signal.SIGTERM)))
    try:
        result = run_cli(*args)
    finally:
        unlisten()
    assert result.code == 143
    assert result.stderr == "SIGTERM arrived before the first batch: nothing was trained or saved\n"
    assert sorted(p.name for p in out.iterdir()) == [".lock"]  # no half state: the same command starts afresh
    again = run_cli(*args)
    assert again.code == 0, again.stderr


# --- what --resume refuses: a state that does not fit, weights only, hostile settings and optimizer state ---


@pytest.mark.slow
def test_resume_state_that_does_not_fit(
    mnist_dir: Path, tmp_path: Path, run_training: Callable, rewrite_checkpoint: Callable, run_cli: Callable
) -> None:
    out = tmp_path / "run"
    run_training(out, epochs=1)
    rewrite_checkpoint(out / "last.safetensors", edit_tensors=lambda t: t.pop("resume.rng_now.cpu"))
    result = run_cli("train", "--resume", str(out / "last.safetensors"), "--epochs", "2", "--data-dir", str(mnist_dir))
    result.assert_one_line_error("lacks a usable resume state (rng_now.cpu)")


def test_resume_from_weights_only(tmp_path: Path, mnist_dir: Path) -> None:
    data = load_dataset("mnist", data_dir=mnist_dir)
    settings = TrainSettings(dataset="mnist", epochs=1, batch_size=64, **SMALL)
    weights_only = untrained_checkpoint(settings.model_config(num_classes=10))
    weights_only.path = tmp_path / "best.safetensors"
    with pytest.raises(CheckpointError, match="best.safetensors holds weights only"):
        Trainer(settings, data, tmp_path, torch.device("cpu"), PlainProgress(None), resume=weights_only)


def test_resume_metadata_with_an_unknown_model_kind() -> None:
    with pytest.raises(UserError, match="model must be one of vae, cvae, got 'gan'"):
        TrainSettings.from_dict({"model": "gan", "epochs": 2})  # as read from a checkpoint's metadata


def _group(info: dict) -> dict:
    return info["optimizer"]["param_groups"][0]


RESUME_EDITS = {
    "batch_size str": (lambda i: i["training"].update(batch_size="128"), "batch_size must be an integer, got '128'"),
    "batch_size float": (lambda i: i["training"].update(batch_size=128.0), "batch_size must be an integer, got 128.0"),
    "seed 0.5": (lambda i: i["training"].update(seed=0.5), "seed must be an integer from 0 to 2**63-1, got 0.5"),
    "seed missing": (lambda i: i["training"].pop("seed"), "training settings: seed missing"),
    "hidden_dim 300": (
        lambda i: i["training"].update(hidden_dim=300),
        "its training settings say hidden_dim 300, but its model and metadata say 32",
    ),
    "cvae over vae weights": (lambda i: i["training"].update(model="cvae"), "say model 'cvae', but"),
    "another dataset": (lambda i: i["training"].update(dataset="fashion-mnist"), "say dataset 'fashion-mnist', but"),
    "input_dim 100": (lambda i: i["model"].update(input_dim=100), "has shape (32, 784), expected (32, 100)"),
    "lr abc": (lambda i: _group(i).update(lr="abc"), "'lr' must be a finite number, not negative; got 'abc'"),
    "betas": (lambda i: _group(i).update(betas=[0.9]), "'betas' must be two numbers from 0 to 1"),
    "fused yes": (lambda i: _group(i).update(fused="yes"), "'fused' must be true, false or null"),
    "unknown setting": (lambda i: _group(i).update(extra=[1]), "'extra' is of a type Adam does not take"),
    "params": (lambda i: _group(i).update(params=[0, 0]), "must hold the parameters 0 to 9, each once"),
    "best epoch": (lambda i: i["resume"].update(best_epoch=7), "malformed resume metadata"),
}


@pytest.mark.slow
@pytest.mark.parametrize("edit", ["nothing", *RESUME_EDITS, "rng state of 10 bytes"])
def test_hostile_resume_metadata_is_one_line(
    last: Path, one_epoch: tuple[Path, Path], rewrite_checkpoint: Callable, run_cli: Callable, edit: str
) -> None:
    message = None
    if edit == "rng state of 10 bytes":
        message = "resume state: 'rng_now.cpu' is not a cpu generator's state"
        rewrite_checkpoint(last, edit_tensors=lambda t: t.update({"resume.rng_now.cpu": torch.zeros(10).byte()}))
    elif edit != "nothing":
        edit_info, message = RESUME_EDITS[edit]
        rewrite_checkpoint(last, edit_info=edit_info)
    result = run_cli("train", "--resume", str(last), "--epochs", "2", "--data-dir", str(one_epoch[0]))
    if message is None:
        assert result.code == 0, result.stderr  # the same file, unchanged, resumes
    else:
        result.assert_one_line_error(str(last), message)


@pytest.mark.parametrize(
    "values, message",
    [
        ([1], "malformed training settings: [1]"),
        ({"epochs": 0}, "epochs must be a positive number, got 0"),
        ({"epochs": 10**7}, "epochs must be at most 1000000"),
        ({"latent_dim": True}, "latent_dim must be an integer, got True"),
        ({"hidden_dim": 70000}, "hidden_dim must be at most 65536, got 70000"),
        ({"lr": float("nan")}, "lr must be a positive number, got nan"),
        ({"lr": "1e-3"}, "lr must be a positive number, got '1e-3'"),
        ({"seed": 2**70}, "seed must be an integer from 0 to 2**63-1, got 1180591620717411303424"),
        ({"seed": -1}, "seed must be an integer from 0 to 2**63-1, got -1"),
        ({"dataset": "[/]\x1b[2J"}, "dataset must be one of fashion-mnist, mnist, got '[/]\\x1b[2J'"),
        ({"model": None}, "model must be one of vae, cvae, got None"),
    ],
)
def test_train_settings_from_metadata_check_every_field(values: object, message: str) -> None:
    complete = {"model": "vae", "dataset": "mnist", "epochs": 2, "batch_size": 32, "lr": 1e-3}
    complete |= {"latent_dim": 4, "hidden_dim": 32, "seed": 0}
    with pytest.raises(UserError, match=re.escape(message)):
        TrainSettings.from_dict({**complete, **values} if isinstance(values, dict) else values, "c.safetensors")
    assert TrainSettings.from_dict({**complete, "lr": 1, "unknown": [1]}).lr == 1.0  # an int lr, an extra key


SETTING_NAMES = [f.name for f in fields(TrainSettings)]


@pytest.mark.fuzz
@FUZZ
@given(
    changes=st.dictionaries(
        st.sampled_from(SETTING_NAMES) | st.text(max_size=4), VALUES | st.just(10**5000), max_size=4
    ),
    drop=st.lists(st.sampled_from(SETTING_NAMES), max_size=2),
)
def test_train_settings_from_metadata(changes: dict, drop: list) -> None:
    """Settings as read from a checkpoint: refused with a UserError, or every field of its type and in its range."""
    values = {**asdict(TINY_SETTINGS), **changes}
    for name in drop:
        values.pop(name, None)
    try:
        training = TrainSettings.from_dict(values)
    except UserError:
        return
    assert type(training.lr) is float and training.lr > 0
    sizes = (training.batch_size, training.latent_dim, training.hidden_dim)
    assert all(type(n) is int and 0 < n <= MAX_SIZE for n in sizes) and 0 < training.epochs <= MAX_EPOCHS
    assert type(training.seed) is int and 0 <= training.seed <= MAX_SEED
    torch.Generator().manual_seed(training.seed)
    training.model_config(num_classes=10)
