"""`vae-tui runs`: every run folder with its state, read from headers and metrics only."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from train.output import OutputLock
from train.runs import scan_runs


@pytest.fixture(scope="module")
def runs_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """finished, interrupted, running, damaged (checkpoint; metrics), empty and foreign runs, built for real."""
    import shutil
    from dataclasses import replace

    import torch

    from tests.conftest import TINY_SETTINGS, QuietProgress, _rewrite, write_dataset
    from train.data import load_dataset
    from train.loop import StopFlag, Trainer

    root = tmp_path_factory.mktemp("runs")
    write_dataset(root.parent / "data")
    data = load_dataset("mnist", data_dir=root.parent / "data")
    finished = root / "finished"
    finished.mkdir()
    Trainer(replace(TINY_SETTINGS, epochs=2), data, finished, torch.device("cpu"), QuietProgress()).run(StopFlag())
    for name in ("interrupted", "running", "bad-checkpoint", "bad-metrics"):
        shutil.copytree(finished, root / name)

    def plan_four(info: dict) -> None:
        info["training"]["epochs"] = 4

    _rewrite(root / "interrupted" / "last.safetensors", edit_info=plan_four)
    for name in ("last.safetensors", "best.safetensors"):
        path = root / "bad-checkpoint" / name
        path.write_bytes(path.read_bytes()[:100])
    metrics = root / "bad-metrics" / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"epoch": 3, "train_lo')
    (root / "empty").mkdir()
    (root / "foreign").mkdir()
    (root / "foreign" / "notes.txt").write_text("not a run")
    return root


def test_each_run_gets_its_state(runs_folder: Path) -> None:
    lock = OutputLock(runs_folder / "running")  # a training writing there now
    try:
        runs = {run.name: run for run in scan_runs(runs_folder)}
    finally:
        lock.release()
    states = {name: run.state for name, run in runs.items()}
    assert states == {
        "bad-checkpoint": "damaged",
        "bad-metrics": "damaged",
        "empty": "empty",
        "finished": "finished",
        "foreign": "not a run",
        "interrupted": "interrupted",
        "running": "running",
    }
    finished = runs["finished"]
    best = min(json.loads(line)["test_loss"] for line in (runs_folder / "finished" / "metrics.jsonl").open())
    assert (finished.model, finished.arch, finished.dataset) == ("vae", "mlp", "mnist")
    assert (finished.epochs_done, finished.epochs_planned, finished.best_loss) == (2, 2, best)
    assert runs["interrupted"].epochs_planned == 4
    assert runs["interrupted"].resume_command.endswith("interrupted/last.safetensors")
    assert runs["bad-checkpoint"].problem == "last.safetensors is truncated or not a safetensors file"
    assert runs["bad-metrics"].problem == "metrics.jsonl line 3 is not JSON (truncated?)"
    assert runs["bad-metrics"].epochs_done == 2  # the rows before the bad line still count


def test_the_command_lists_them_as_json_plain_lines_and_sorted(runs_folder: Path, run_cli: Callable) -> None:
    listed = json.loads(run_cli("runs", str(runs_folder), "--json").stdout)
    assert [r["name"] for r in listed] == sorted(p.name for p in runs_folder.iterdir())
    plain = run_cli("runs", str(runs_folder), "--sort", "loss")
    lines = plain.stdout.splitlines()
    assert lines[0].split("\t") == ["run", "model", "dataset", "epochs", "best test", "state", "changed"]
    names = [line.split("\t")[0] for line in lines[1:]]
    assert names[-2:] == ["empty", "foreign"]  # no loss: last
    damaged = next(line for line in lines if line.startswith("bad-metrics"))
    assert "damaged: metrics.jsonl line 3 is not JSON" in damaged


@pytest.mark.parametrize("what", ["missing", "file"])
def test_a_runs_folder_that_is_not_one_gets_one_line(tmp_path: Path, run_cli: Callable, what: str) -> None:
    path = tmp_path / "runs"
    if what == "file":
        path.write_text("x")
    message = "does not exist" if what == "missing" else "is not a folder"
    run_cli("runs", str(path)).assert_one_line_error(message)


def test_an_empty_runs_folder_says_so(tmp_path: Path, run_cli: Callable) -> None:
    result = run_cli("runs", str(tmp_path))
    assert result.code == 0 and result.stdout.strip() == f"no runs in {tmp_path}"
