"""The CLI through subprocesses: help without torch, one-line errors, SIGINT and resume."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from models import load_checkpoint
from tests.conftest import write_dataset

TINY_FLAGS = ["--dataset", "mnist", "--batch-size", "32", "--hidden-dim", "32", "--latent-dim", "4"]


def vae_tui(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vae_tui", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize(
    "args", [["--help"], *([command, "--help"] for command in ("train", "explore", "eval", "sample"))]
)
def test_help_does_not_import_torch(args: list[str]) -> None:
    code = (
        "import sys; from vae_tui.cli import main\n"
        f"try: main({args!r})\nexcept SystemExit: pass\n"
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "usage: vae-tui" in result.stdout and result.stdout.strip().endswith("False")


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
def test_bad_flags(flags: list[str], fragment: str) -> None:
    assert_one_line_error(vae_tui("train", *flags), fragment)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_missing_cuda() -> None:
    assert_one_line_error(vae_tui("train", "--device", "cuda"), "no CUDA GPU")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has Apple's MPS")
def test_missing_mps() -> None:
    assert_one_line_error(vae_tui("train", "--device", "mps"), "MPS is not available")


def test_unwritable_out(mnist_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = vae_tui("train", *TINY_FLAGS, "--data-dir", str(mnist_dir), "--out", str(blocker / "run"))
    assert_one_line_error(result, "cannot write to --out")


@pytest.mark.parametrize("content", [None, b"", b"\x00" * 3, b"not a checkpoint at all, just some text"])
def test_bad_resume(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "last.safetensors"
    if content is not None:
        path.write_bytes(content)
    assert_one_line_error(vae_tui("train", "--resume", str(path)), str(path))


def test_missing_data(tmp_path: Path) -> None:
    result = vae_tui("train", *TINY_FLAGS, "--data-dir", str(tmp_path / "empty"), env={"XDG_CACHE_HOME": str(tmp_path)})
    assert_one_line_error(result, "no mnist data found", "--data-dir", "$VAE_TUI_DATA", "--download")


def test_corrupted_data(mnist_dir: Path) -> None:
    path = mnist_dir / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    assert_one_line_error(vae_tui("train", *TINY_FLAGS, "--data-dir", str(mnist_dir)), "truncated or corrupted")


def test_train_and_refuse_to_overwrite(mnist_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = vae_tui("train", *TINY_FLAGS, "--epochs", "1", "--data-dir", str(mnist_dir), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "epoch 1/1" in result.stdout and "vae-tui explore" in result.stdout
    again = vae_tui("train", *TINY_FLAGS, "--epochs", "1", "--data-dir", str(mnist_dir), "--out", str(out))
    assert_one_line_error(again, "already holds a training")
    contradicting = vae_tui("train", "--resume", str(out / "last.safetensors"), "--latent-dim", "8", "--epochs", "2")
    assert_one_line_error(contradicting, "--latent-dim 8 (checkpoint: 4)")
    finished = vae_tui("train", "--resume", str(out / "last.safetensors"))
    assert_one_line_error(finished, "has finished all 1 epochs")


def test_default_out_folder(mnist_dir: Path, tmp_path: Path) -> None:
    result = vae_tui("train", *TINY_FLAGS, "--epochs", "1", "--data-dir", str(mnist_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("vae-mnist-") and (run / "best.safetensors").is_file()


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_a_resumable_state(tmp_path: Path, sig: signal.Signals, code: int) -> None:
    data = tmp_path / "data"
    write_dataset(data, n_train=20000, n_test=64)
    out = tmp_path / "run"
    args = [*TINY_FLAGS, "--epochs", "50", "--data-dir", str(data), "--out", str(out)]
    process = subprocess.Popen(
        [sys.executable, "-m", "vae_tui", "train", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not (out / "metrics.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # well inside the second epoch
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr and f"vae-tui train --resume {out / 'last.safetensors'}" in stderr
    last = load_checkpoint(out / "last.safetensors", with_resume=True)
    assert last.resume.progress["epoch"] >= 2 and last.epoch == last.resume.progress["epoch"] - 1
    resumed = vae_tui(
        "train",
        "--resume",
        str(out / "last.safetensors"),
        "--epochs",
        str(last.resume.progress["epoch"]),
        "--data-dir",
        str(data),
    )
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(out / "last.safetensors").epoch == last.resume.progress["epoch"]
