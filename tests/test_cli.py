"""The CLI: help without torch, one-line errors, flags with bounds, a full disk, a folder in use, training through
the command, SIGINT, SIGTERM and resume.

Commands run in this process through vae_tui.cli.main (the run_cli fixture); a real process is
started only where it is the point: the entry points themselves and imports (`python -m vae_tui`), and signals (a
child forked from the test process, tests/helpers.py::Forked).
"""

import errno
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from models import Checkpoint, UserError, build_model, load_checkpoint, save_checkpoint
from models.limits import MAX_SEED, MAX_SIZE
from tests.helpers import TINY_FLAGS, TINY_TRAIN, CliResult, Forked, one_line_error, write_dataset
from train.output import OutputLock
from train.settings import TrainSettings, training_bytes
from vae_tui.cli import main
from vae_tui.commands import MAX_SEED as FLAG_MAX_SEED

COMMANDS = ("train", "explore", "eval", "sample")

HELP_WITHOUT_TORCH = """
import sys
from vae_tui.cli import main
for args in {variants!r}:
    try:
        main(args)
    except SystemExit:
        pass
    print("torch imported:", "torch" in sys.modules, flush=True)
"""


@pytest.mark.slow
def test_help_does_not_import_torch() -> None:
    """Every --help, in one fresh interpreter: torch is checked for after each (none may import it)."""
    variants = [["--help"], *([command, "--help"] for command in COMMANDS)]
    code = HELP_WITHOUT_TORCH.format(variants=variants)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("usage: vae-tui") == len(variants)
    assert [line for line in result.stdout.splitlines() if line.startswith("torch imported:")] == [
        "torch imported: False"
    ] * len(variants)
    for command in COMMANDS:
        assert f"usage: vae-tui {command}" in result.stdout


@pytest.mark.slow
def test_installed_script() -> None:
    """The `vae-tui` script that pip installs (`python -m vae_tui` runs in the signal and sample tests)."""
    script = Path(sys.executable).with_name("vae-tui")
    if not script.exists():
        pytest.skip("the vae-tui script is not installed next to this Python (pip install -e .)")
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("vae-tui "), version.stderr
    bad_flag = subprocess.run([str(script), "train", "--epochs", "two"], capture_output=True, text=True, timeout=60)
    assert bad_flag.returncode == 2
    CliResult.of(bad_flag).assert_one_line_error("vae-tui train: error:", "invalid int value: 'two'")


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--epochs", "0"], "--epochs must be a positive number"),
        (["--batch-size", "-1"], "--batch-size must be a positive number"),
        (["--latent-dim", "0"], "--latent-dim must be a positive number"),
        (["--hidden-dim", "0"], "--hidden-dim must be a positive number"),
        (["--lr", "nan"], "--lr must be a positive number"),
        (["--model", "gan"], "invalid choice: 'gan'"),
        (["--dataset", "cifar"], "invalid choice: 'cifar'"),
        (["--epochs", "two"], "invalid int value: 'two'"),
    ],
)
def test_bad_flags(run_cli: Callable, flags: list[str], fragment: str) -> None:
    run_cli("train", *flags).assert_one_line_error(fragment)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_missing_cuda(run_cli: Callable) -> None:
    run_cli("train", "--device", "cuda").assert_one_line_error("no CUDA GPU")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has Apple's MPS")
def test_missing_mps(run_cli: Callable) -> None:
    run_cli("train", "--device", "mps").assert_one_line_error("MPS is not available")


def test_unwritable_out(mnist_dir: Path, tmp_path: Path, run_cli: Callable) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run_cli("train", *TINY_FLAGS, "--data-dir", str(mnist_dir), "--out", str(blocker / "run"))
    result.assert_one_line_error("cannot write to --out")


@pytest.mark.parametrize("content", [None, b"", b"\x00" * 3, b"not a checkpoint at all, just some text"])
def test_bad_resume(tmp_path: Path, run_cli: Callable, content: bytes | None) -> None:
    path = tmp_path / "last.safetensors"
    if content is not None:
        path.write_bytes(content)
    run_cli("train", "--resume", str(path)).assert_one_line_error(str(path))


def test_missing_data(tmp_path: Path, run_cli: Callable) -> None:
    result = run_cli("train", *TINY_FLAGS, "--data-dir", str(tmp_path / "empty"))
    result.assert_one_line_error("no mnist data found", "--data-dir", "$VAE_TUI_DATA", "--download")


def test_corrupted_data(mnist_dir: Path, run_cli: Callable) -> None:
    path = mnist_dir / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    run_cli("train", *TINY_FLAGS, "--data-dir", str(mnist_dir)).assert_one_line_error("truncated or corrupted")


@pytest.mark.slow
def test_train_and_refuse_to_overwrite(mnist_dir: Path, tmp_path: Path, run_cli: Callable) -> None:
    out = tmp_path / "run"
    result = run_cli("train", *TINY_FLAGS, "--epochs", "1", "--data-dir", str(mnist_dir), "--out", str(out))
    assert result.code == 0, result.stderr
    assert "epoch 1/1" in result.stdout and "vae-tui explore" in result.stdout
    again = run_cli("train", *TINY_FLAGS, "--epochs", "1", "--data-dir", str(mnist_dir), "--out", str(out))
    again.assert_one_line_error("already holds a training")
    contradicting = run_cli("train", "--resume", str(out / "last.safetensors"), "--latent-dim", "8", "--epochs", "2")
    contradicting.assert_one_line_error("--latent-dim 8 (checkpoint: 4)")
    finished = run_cli("train", "--resume", str(out / "last.safetensors"))
    finished.assert_one_line_error("has finished all 1 epochs")


@pytest.mark.slow
def test_default_out_folder(
    mnist_dir: Path, tmp_path: Path, run_cli: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli("train", *TINY_FLAGS, "--epochs", "1", "--data-dir", str(mnist_dir))
    assert result.code == 0, result.stderr
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("vae-mnist-") and (run / "best.safetensors").is_file()


SIGNALS = {signal.SIGINT: 130, signal.SIGTERM: 143}


@pytest.fixture(scope="module")
def signalled_trainings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A `vae-tui train` process (Forked) per signal, started together (the tests below wait on their own): each sends
    itself its signal just before batch 3 of epoch 2. Returns {signal: (process, data folder, out folder)}."""
    root = tmp_path_factory.mktemp("signalled")
    write_dataset(root / "data")
    started = {}
    for sig in SIGNALS:
        out = root / sig.name
        args = [*TINY_FLAGS, "--epochs", "2", "--data-dir", str(root / "data"), "--out", str(out), "--threads", "1"]
        args.append("--no-preview")
        # one thread each: the two run side by side, and spinning thread pools would only slow both
        process = Forked(["train", *args], {"VAE_TUI_SIGNAL_AT": f"batch 2 3={sig.name}", "OMP_NUM_THREADS": "1"})
        started[sig] = process, root / "data", out
    yield started
    for process, _, _ in started.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.mark.slow
@pytest.mark.parametrize("sig", SIGNALS, ids=lambda sig: sig.name)
def test_signal_saves_a_resumable_state(signalled_trainings: dict, run_cli: Callable, sig: signal.Signals) -> None:
    """A real signal to a real `vae-tui train` at a known step: it saves there, says how to resume, and resuming
    finishes the run."""
    process, data, out = signalled_trainings[sig]
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == SIGNALS[sig], stderr
    assert "Traceback" not in stderr
    assert f"{sig.name}: stopped and saved" in stderr
    # the flags the checkpoint does not store are repeated: pasted, the line resumes the same training
    command = stderr.split(f"{sig.name}: stopped and saved. Resume with:\n")[1]
    last_path = out / "last.safetensors"
    flags = f"--data-dir {data} \\\n    --threads 1 \\\n    --no-preview"
    assert command == f"  vae-tui train \\\n    --resume {last_path} \\\n    {flags}\n"
    last = load_checkpoint(out / "last.safetensors", with_resume=True)
    assert (last.resume.progress["epoch"], last.resume.progress["step"]) == (2, 3) and last.epoch == 1
    resumed = run_cli(*shlex.split(command.replace("\\\n", " "))[1:])  # as a shell joins the lines
    assert resumed.code == 0, resumed.stderr
    assert "from epoch 2, batch 3" in resumed.stdout
    assert load_checkpoint(out / "last.safetensors").epoch == 2


# --- train's messages, flags with bounds, a full disk, a folder in use ----------------------------


@pytest.mark.slow
def test_train_messages_show_the_out_path_literally(
    mnist_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run [/]" / "[red]x"
    assert main(["train", *TINY_TRAIN, "--data-dir", str(mnist_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    # the path as written; in the command to paste, one shell word
    assert f"writing to {out}" in printed and f"explore '{out / 'best.safetensors'}'" in printed


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--seed", str(2**70)], "--seed must be an integer from 0 to 2**63-1, got 1180591620717411303424"),
        (["--latent-dim", str(10**30)], f"--latent-dim must be at most {MAX_SIZE}, got {10**30}"),
        (["--hidden-dim", str(10**30)], f"--hidden-dim must be at most {MAX_SIZE}, got {10**30}"),
        (["--hidden-dim", str(10**7)], f"--hidden-dim must be at most {MAX_SIZE}, got 10000000"),
        (["--latent-dim", "100000"], f"--latent-dim must be at most {MAX_SIZE}, got 100000"),
        (["--latent-dim", "70000", "--hidden-dim", "1"], f"--latent-dim must be at most {MAX_SIZE}, got 70000"),
        (["--batch-size", str(MAX_SIZE + 1)], f"--batch-size must be at most {MAX_SIZE}"),
        (["--epochs", str(10**7)], "--epochs must be at most 1000000"),
    ],
)
def test_train_size_flags_and_seed_are_bounded(
    mnist_dir: Path, tmp_path: Path, run_cli: Callable, flags: list[str], message: str
) -> None:
    out = tmp_path / "run"
    result = run_cli("train", "--dataset", "mnist", *flags, "--data-dir", str(mnist_dir), "--out", str(out))
    result.assert_one_line_error(f"vae-tui train: error: {message}")
    assert not out.exists()


def test_what_train_accepts_the_loader_accepts(tmp_path: Path) -> None:
    settings = TrainSettings(dataset="mnist", latent_dim=MAX_SIZE, hidden_dim=1, seed=MAX_SEED)
    torch.manual_seed(settings.seed)  # the largest seed is one torch takes
    checkpoint = Checkpoint(
        model=build_model(settings.model_config(num_classes=10)),
        dataset="mnist",
        class_names=[str(i) for i in range(10)],
        epoch=1,
        class_centroids=torch.zeros(10, MAX_SIZE),
        training=asdict(settings),
    )
    loaded = load_checkpoint(save_checkpoint(tmp_path / "wide.safetensors", checkpoint))
    assert loaded.config.latent_dim == MAX_SIZE and TrainSettings.from_dict(loaded.training) == settings
    with pytest.raises(UserError, match=f"--latent-dim must be at most {MAX_SIZE}"):
        replace(settings, latent_dim=MAX_SIZE + 1)
    assert FLAG_MAX_SEED is MAX_SEED  # sample's and eval's --seed: the same bound


def test_a_model_larger_than_memory_is_refused_naming_the_flags(
    mnist_dir: Path, tmp_path: Path, run_cli: Callable
) -> None:
    flags = ["--latent-dim", str(MAX_SIZE), "--hidden-dim", str(MAX_SIZE)]  # within the bound: 200 GB to train
    result = run_cli("train", "--dataset", "mnist", *flags, "--data-dir", str(mnist_dir), "--out", str(tmp_path / "r"))
    result.assert_one_line_error(f"--hidden-dim {MAX_SIZE} with --latent-dim {MAX_SIZE}", "GB free: lower them")
    assert not (tmp_path / "r" / "last.safetensors").exists()
    assert training_bytes(TrainSettings(latent_dim=MAX_SIZE, hidden_dim=MAX_SIZE)) > 200e9


def test_full_disk_before_the_start_is_one_line(
    mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    original = os.write

    def full(fd: int, data: bytes) -> int:  # root ignores permissions, so the full disk is simulated
        if os.readlink(f"/proc/self/fd/{fd}").endswith("/.lock"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(fd, data)

    monkeypatch.setattr(os, "write", full)
    out = tmp_path / "run"
    assert main(["train", *TINY_TRAIN, "--data-dir", str(mnist_dir), "--out", str(out)]) == 1
    one_line_error(capsys.readouterr().err, f"cannot write to --out {out}: No space left on device")
    monkeypatch.undo()
    OutputLock(out).release()  # the failed start let go of the lock


@pytest.mark.slow
def test_disk_full_through_the_cli_is_one_line(
    mnist_dir: Path, tmp_path: Path, run_cli: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    result = run_cli(
        "train", *TINY_FLAGS, "--epochs", "1", "--data-dir", str(mnist_dir), "--out", str(tmp_path / "run")
    )
    result.assert_one_line_error("No space left on device")


def test_two_trainings_into_one_folder(mnist_dir: Path, tmp_path: Path, run_cli: Callable) -> None:
    out = tmp_path / "run"
    lock = OutputLock(out)  # a training in progress that has not written a checkpoint yet (flock: per open file)
    try:
        result = run_cli("train", *TINY_FLAGS, "--epochs", "1", "--data-dir", str(mnist_dir), "--out", str(out))
        result.assert_one_line_error(f"another training (pid {os.getpid()}) is writing to {out}")
    finally:
        lock.release()
