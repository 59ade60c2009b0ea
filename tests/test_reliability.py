"""Fault injection: each case of docs/reliability.md that no other test file covers."""

import errno
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import safetensors.torch
import torch

from models import CheckpointError, DataError, UserError, load_checkpoint, save_checkpoint
from models.checkpoint import MAX_HEADER_BYTES, METADATA_KEY
from tests.conftest import TINY_FLAGS, write_dataset
from train import data as data_module
from train.data import load_dataset
from train.loop import StopFlag
from train.output import OutputLock
from vae_tui.commands.explore import pretrained_path

# --- checkpoints -------------------------------------------------------------------------


def test_oversized_metadata(tmp_path: Path) -> None:
    path = tmp_path / "big.safetensors"
    metadata = {METADATA_KEY: json.dumps({"format_version": 1, "padding": "x" * (MAX_HEADER_BYTES + 10)})}
    safetensors.torch.save_file({"w": torch.zeros(1)}, path, metadata=metadata)
    with pytest.raises(CheckpointError, match="larger than any vae-tui checkpoint"):
        load_checkpoint(path)


def test_huge_sizes_in_metadata_are_refused_without_allocating(
    tmp_path: Path, make_checkpoint: Callable, rewrite_checkpoint: Callable
) -> None:
    """How fast the refusal is: bench/checkpoint_load.py."""
    path = save_checkpoint(tmp_path / "c.safetensors", make_checkpoint())
    rewrite_checkpoint(path, edit_info=lambda info: info["model"].update(hidden_dim=60000, input_dim=60000))
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError, match="has shape"):
        load_checkpoint(path)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before  # KiB on Linux
    assert grown < 1 << 20  # building the model first would initialise 60000 x 60000 floats: 14 GB


def test_cvae_where_a_vae_is_expected(tmp_path: Path, make_checkpoint: Callable) -> None:
    path = save_checkpoint(tmp_path / "c.safetensors", make_checkpoint("cvae"))
    with pytest.raises(CheckpointError, match="holds a CVAE, but a VAE was expected"):
        load_checkpoint(path, expect_kind="vae")


def test_malformed_resume_state(tmp_path: Path, make_checkpoint: Callable, rewrite_checkpoint: Callable) -> None:
    path = save_checkpoint(tmp_path / "last.safetensors", make_checkpoint(resume=True))
    rewrite_checkpoint(path, edit_info=lambda info: info["resume"].pop("best_epoch"))
    with pytest.raises(CheckpointError, match="malformed resume metadata"):
        load_checkpoint(path, with_resume=True)


# --- data --------------------------------------------------------------------------------


def test_empty_data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data_module, "DEBIAN_DIRS", {})
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no mnist data found"):
        load_dataset("mnist", data_dir=tmp_path / "empty")


def test_unreadable_data_file(mnist_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = Path.read_bytes

    def denied(self: Path) -> bytes:
        if self.name == "train-labels-idx1-ubyte":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", denied)  # root ignores chmod, so the OS error is simulated
    with pytest.raises(DataError, match="cannot read .*train-labels-idx1-ubyte: Permission denied"):
        load_dataset("mnist", data_dir=mnist_dir)


def test_gzip_bomb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gzip

    monkeypatch.setattr(data_module, "MAX_IDX_BYTES", 1 << 20)
    write_dataset(tmp_path, gz=True)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\0" * (2 << 20)))
    monkeypatch.setattr(data_module, "_torchvision_md5", lambda dataset: {})
    with pytest.raises(DataError, match="unpacks to more than 1 MB"):
        load_dataset("mnist", data_dir=tmp_path)


# --- training ----------------------------------------------------------------------------

WRITERS = """
import os, signal, sys
sys.path.insert(0, {root!r})
import torch
torch.set_num_threads(1)  # no thread pool is started, so fork() below is safe
from models import load_checkpoint, save_checkpoint
from models.points import listen
for line in sys.stdin:  # "PATH" or "PATH<tab>at rename": a writer forked for each, so torch is imported once
    path, _, at_rename = line.rstrip("\\n").partition("\\t")
    pid = os.fork()
    if pid == 0:
        try:
            if at_rename:  # the temp file is whole and synced, the rename not done
                listen(lambda label: label == "written last.safetensors" and os.kill(os.getpid(), signal.SIGKILL))
            checkpoint = load_checkpoint(path, with_resume=True)
            print("ready", os.getpid(), flush=True)
            while True:
                checkpoint.epoch += 1
                save_checkpoint(path, checkpoint)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    print("killed by", os.WTERMSIG(status) if os.WIFSIGNALED(status) else "nothing", flush=True)
"""


@pytest.fixture
def writers() -> Iterator[subprocess.Popen]:
    """A process that, for each checkpoint path written to its stdin, forks a writer rewriting it over and over."""
    code = WRITERS.format(root=str(Path(__file__).resolve().parents[1]))
    process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    yield process
    process.stdin.close()
    assert process.wait(timeout=30) == 0


def write_until_killed(writers: subprocess.Popen, path: Path, delay: float | None) -> str:
    """Have writers rewrite path and SIGKILL the writer delay seconds after it starts; None: it kills itself
    just before its first rename. Returns how the writer ended."""
    writers.stdin.write(f"{path}\n" if delay is not None else f"{path}\tat rename\n")
    writers.stdin.flush()
    _, pid = writers.stdout.readline().split()  # "ready PID"
    if delay is not None:
        time.sleep(delay)  # deliberate: a kill at an arbitrary moment of the write loop is what is tested
        os.kill(int(pid), signal.SIGKILL)
    return writers.stdout.readline().strip()


def test_sigkill_while_writing_leaves_a_loadable_checkpoint(
    tmp_path: Path, make_checkpoint: Callable, writers: subprocess.Popen
) -> None:
    delays = (0.05, 0.13, 0.31, 0.57, None)
    folders = [tmp_path / f"kill-{i}" for i in range(len(delays))]
    for folder, delay in zip(folders, delays, strict=True):
        folder.mkdir()
        save_checkpoint(folder / "last.safetensors", make_checkpoint(resume=True))
        assert write_until_killed(writers, folder / "last.safetensors", delay) == f"killed by {int(signal.SIGKILL)}"
        assert load_checkpoint(folder / "last.safetensors", with_resume=True).config.hidden_dim == 32
    leftovers = [p.name for p in folders[-1].iterdir() if p.name != "last.safetensors"]
    assert len(leftovers) == 1 and re.fullmatch(r"\.last\.safetensors\..*\.tmp", leftovers[0]), leftovers
    assert load_checkpoint(folders[-1] / "last.safetensors", with_resume=True).epoch == 1  # the old one, whole
    for folder in folders:
        OutputLock(folder).release()  # a new training removes the temp files a killed writer left
        assert sorted(p.name for p in folder.iterdir()) == [".lock", "last.safetensors"]


def test_disk_full_while_writing(tmp_path: Path, run_training: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    trainer = run_training(out, epochs=1)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    trainer.settings = replace(trainer.settings, epochs=2)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(UserError, match=r"could not write .*: No space left on device; training stopped"):
        trainer.run(StopFlag())
    after = {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".")}
    assert {k: v for k, v in before.items() if k in after} == after  # what existed is unchanged
    assert "last.safetensors" in after and load_checkpoint(out / "last.safetensors").epoch == 1


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


def test_resume_state_that_does_not_fit(
    mnist_dir: Path, tmp_path: Path, run_training: Callable, rewrite_checkpoint: Callable, run_cli: Callable
) -> None:
    out = tmp_path / "run"
    run_training(out, epochs=1)
    rewrite_checkpoint(out / "last.safetensors", edit_tensors=lambda t: t.pop("resume.rng_now.cpu"))
    result = run_cli("train", "--resume", str(out / "last.safetensors"), "--epochs", "2", "--data-dir", str(mnist_dir))
    result.assert_one_line_error("lacks a usable resume state (rng_now.cpu)")


# --- explorer ----------------------------------------------------------------------------


@pytest.mark.usefixtures("truecolor")
async def test_tiny_terminal(make_app: Callable, settle: Callable) -> None:
    app = make_app("cvae")
    async with app.run_test(size=(20, 8)) as pilot:
        await settle(app, pilot)
        assert app.explorer.has_class("too-small")
        await pilot.press("l", "j", "r", "u")
        await settle(app, pilot)
        assert app.explorer.frame.version == app.explorer.state.version


@pytest.mark.usefixtures("truecolor")
async def test_a_thousand_keys_as_fast_as_they_come(make_app: Callable, settle: Callable) -> None:
    from textual import events

    app = make_app("cvae")
    keys = ["l", "j", "h", "k", "r", "u", "right_square_bracket", "left_square_bracket", "3", "l"]
    async with app.run_test(size=(100, 32)) as pilot:
        shown = []
        app.explorer.frame_listeners.append(lambda frame: shown.append(frame.version))
        for i in range(1000):
            key = keys[i % len(keys)]
            app.post_message(events.Key(key, key if len(key) == 1 else None))
        await settle(app, pilot)
        await settle(app, pilot)
        state = app.explorer.state
        assert len(state.history) > 0 and state.label == 3
        assert shown and shown[-1] == state.version and len(shown) < 1000  # stale frames were dropped


@pytest.mark.usefixtures("truecolor")
async def test_checkpoint_deleted_while_open(tmp_path: Path) -> None:
    from vae_tui.app import create_app

    copy = tmp_path / "model.safetensors"
    copy.write_bytes(pretrained_path("vae").read_bytes())
    app = create_app(load_checkpoint(copy), str(copy), tmp_path / "exports")
    async with app.run_test(size=(80, 24)) as pilot:
        copy.unlink()
        await pilot.press("l", "s", "g")
        assert len(list((tmp_path / "exports").glob("*.png"))) == 2


def test_every_row_of_the_reliability_table_names_existing_tests() -> None:
    root = Path(__file__).resolve().parents[1]
    doc = (root / "docs" / "reliability.md").read_text()
    rows = [line for line in doc.splitlines() if line.startswith("| ") and not line.startswith(("| case", "| ---"))]
    assert len(rows) >= 35
    for row in rows:
        references = re.findall(r"`tests/(\w+\.py)(?:::(\w+))?", row)
        assert references, f"no test named in: {row}"
        for file, function in references:
            source = (root / "tests" / file).read_text()
            assert not function or re.search(rf"^(async )?def {function}\(", source, re.M), f"{file}::{function}"
