"""A run folder wherever a checkpoint is asked for, the one overwrite rule of output files, and an explorer that
waits for a run's first checkpoint."""

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from models import save_checkpoint


@pytest.fixture
def run_folder(tmp_path: Path, make_checkpoint: Callable) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "best.safetensors", make_checkpoint("cvae"))
    return run


def test_eval_and_sample_take_a_run_folder_for_its_best_checkpoint(
    run_folder: Path, run_cli: Callable, tmp_path: Path
) -> None:
    out = tmp_path / "grid.png"
    result = run_cli("sample", str(run_folder), "-o", str(out), "--n", "2")
    assert result.code == 0 and out.is_file(), result.stderr
    result = run_cli("eval", str(run_folder), "--help")
    assert "or a run folder for its best one" in " ".join(result.stdout.split())
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("sample", str(empty), "-o", str(tmp_path / "other.png"))
    assert result.code != 0 and "best.safetensors" in result.stderr and "Traceback" not in result.stderr


def test_sample_replaces_an_existing_file_only_with_force(run_folder: Path, run_cli: Callable, tmp_path: Path) -> None:
    out = tmp_path / "kept.png"
    out.write_bytes(b"the user's own file")
    result = run_cli("sample", str(run_folder), "-o", str(out), "--n", "2")
    assert result.code != 0 and out.read_bytes() == b"the user's own file"
    assert result.stderr.strip().endswith("exists: choose another -o, or add --force to replace it")
    result = run_cli("sample", str(run_folder), "-o", str(out), "--n", "2", "--force")
    assert result.code == 0 and out.read_bytes().startswith(b"\x89PNG")


def test_explore_waits_for_a_run_folder_s_first_checkpoint(
    tmp_path: Path, make_checkpoint: Callable, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from train.output import OutputLock
    from vae_tui.commands import explore

    monkeypatch.setattr(explore, "WAIT_SECONDS", 0.02)
    run = tmp_path / "run"
    lock = OutputLock(run)  # train made the folder and holds it; its first epoch is still running
    best = run / "best.safetensors"
    checkpoint = make_checkpoint("vae")

    def first_epoch_ends() -> None:
        time.sleep(0.3)
        best.write_bytes(b"half")  # a half-written file is waited past, never refused
        time.sleep(0.1)
        save_checkpoint(best, checkpoint)

    writer = threading.Thread(target=first_epoch_ends)
    writer.start()
    args = argparse.Namespace(checkpoint=str(run), pretrained=None, no_follow=False)
    try:
        loaded, source = explore.resolve(args)
    finally:
        writer.join()
        lock.release()
    assert source == str(best) and loaded.epoch == checkpoint.epoch
    waited = capsys.readouterr().err
    assert waited.count("waiting for") == 1 and "a training is writing there; ctrl+c stops" in waited
    assert waited.count("trying again when it changes") == 1  # the file that did not load, named with its reason


def test_explore_on_a_folder_that_is_no_run_says_so_at_once(tmp_path: Path, run_cli: Callable) -> None:
    (tmp_path / "runs" / "a").mkdir(parents=True)  # the parent of runs, given by mistake
    result = run_cli("explore", str(tmp_path / "runs"))
    assert result.code != 0 and "is not a run folder" in result.stderr and "vae-tui runs" in result.stderr


def test_explore_refuses_a_damaged_checkpoint_at_once(tmp_path: Path, run_cli: Callable) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.safetensors").write_bytes(b"damaged")
    result = run_cli("explore", str(run))
    assert result.code != 0 and "waiting" not in result.stderr and "Traceback" not in result.stderr
