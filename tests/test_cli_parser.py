"""The command line's parsers: one per command module, choices that match the models' and data's names."""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from models import UserError
from models.names import ARCHS, DATASET_NAMES, LR_SCHEDULES, MODEL_KINDS
from models.registry import BUILDERS
from models.version import package_version
from train.device import resolve_device
from vae_tui.cli import COMMANDS, build_parser
from vae_tui.commands import DEVICES


def test_choices_are_the_models_and_datasets_names() -> None:
    """The flags offer exactly what the registry builds and the data loader reads (one names module, no copies)."""
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    choices = {action.dest: tuple(action.choices) for action in train._actions if action.choices}
    assert choices["model"] == MODEL_KINDS and choices["arch"] == ARCHS
    assert choices["dataset"] == DATASET_NAMES and choices["lr_schedule"] == LR_SCHEDULES
    assert set(BUILDERS) == {(kind, arch) for kind in MODEL_KINDS for arch in ARCHS}


def test_a_gpu_by_index(run_cli: Callable) -> None:
    assert build_parser().parse_args(["train", "--device", "cuda:1"]).device == "cuda:1"
    result = run_cli("train", "--device", "cuda:x")
    result.assert_one_line_error("invalid device 'cuda:x'", "cuda:N")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="--device cuda:3: no CUDA GPU is available here"):
            resolve_device("cuda:3")
    else:
        with pytest.raises(UserError, match=f"has {torch.cuda.device_count()} CUDA GPU"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
        assert resolve_device("cuda:0") == torch.device("cuda", 0)


@pytest.mark.parametrize(
    "argv",
    [
        ["train"],
        ["explore"],
        ["eval"],
        ["sample", "-o", "a.png"],
        ["import-example", "a", "--dataset", "mnist", "-o", "b"],
    ],
)
def test_every_command_takes_threads(argv: list[str], run_cli: Callable) -> None:
    assert build_parser().parse_args([*argv, "--threads", "3"]).threads == 3
    run_cli(*argv, "--threads", "0").assert_one_line_error("0 is out of range: use 1 to 1024")


@pytest.mark.parametrize("name", DEVICES)
def test_every_device_choice_is_one_resolve_device_knows(name: str) -> None:
    try:
        assert isinstance(resolve_device(name), torch.device)
    except UserError as e:  # known, but not on this machine
        assert "unknown device" not in str(e) and "available here" in str(e)


@pytest.mark.parametrize(
    "argv",
    [
        ["train"],
        ["explore"],
        ["eval", "c.safetensors"],
        ["sample", "c.safetensors", "-o", "out.png"],
        ["import-example", "sd.pt", "--dataset", "mnist", "-o", "out.safetensors"],
    ],
)
def test_each_command_module_parses_its_own_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    module = {command.__name__.rsplit(".", 1)[1].replace("_", "-"): command for command in COMMANDS}[argv[0]]
    assert args.command == argv[0] and args.run is module.run


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"vae-tui {package_version()}\n"


def test_flag_errors_are_printable(run_cli: Callable) -> None:
    result = run_cli("train", "--bogus", "\x1b]2;pwned\x07\x1b[2J")
    result.assert_one_line_error("unrecognized arguments: --bogus")
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr


def test_threads_past_the_usable_cpus_are_capped_with_a_note(
    tmp_path: Path, run_cli: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    import train.threads

    monkeypatch.setattr(train.threads.os, "sched_getaffinity", lambda pid: {0, 1})
    asked: list[int] = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: asked.append(n) or real(1))
    (tmp_path / "runs").mkdir()
    capped = run_cli("runs", str(tmp_path / "runs"), "--threads", "1024")
    assert capped.code == 0 and asked[0] == 2
    assert capped.stderr == "vae-tui runs: note: --threads 1024 is more than the 2 CPUs this process may use: using 2\n"
    asked.clear()
    kept = run_cli("runs", str(tmp_path / "runs"), "--threads", "2")
    assert kept.code == 0 and asked[0] == 2 and kept.stderr == ""
