"""The CLI: help without torch, one-line errors, training through the command, SIGINT and resume.

Commands run in this process through vae_tui.cli.main (the run_cli fixture); a real process is
started only where it is the point: the entry points themselves, imports, and signals.
"""

import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from models import load_checkpoint
from tests.conftest import TINY_FLAGS, CliResult, write_dataset

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
    """A `vae-tui train` process per signal, started together (the tests below wait on their own): each sends
    itself its signal just before batch 3 of epoch 2. Returns {signal: (process, data folder, out folder)}."""
    root = tmp_path_factory.mktemp("signalled")
    write_dataset(root / "data")
    started = {}
    for sig in SIGNALS:
        out = root / sig.name
        args = [*TINY_FLAGS, "--epochs", "2", "--data-dir", str(root / "data"), "--out", str(out), "--threads", "1"]
        args.append("--no-preview")
        # one thread each: the two run side by side, and spinning thread pools would only slow both
        env = {**os.environ, "VAE_TUI_SIGNAL_AT": f"batch 2 3={sig.name}", "OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-m", "vae_tui", "train", *args]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        started[sig] = process, root / "data", out
    yield started
    for process, _, _ in started.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


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
