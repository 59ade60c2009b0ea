"""The command line's parsers: one per command module, choices that match the models' and data's names."""

from collections.abc import Callable

import pytest
import torch

from models import MODEL_KINDS, UserError
from models.version import package_version
from train.data import DATASET_NAMES
from train.device import resolve_device
from vae_tui.cli import COMMANDS, build_parser
from vae_tui.commands import DATASETS, DEVICES, MODELS


def test_choices_are_the_models_and_datasets_names() -> None:
    assert MODELS == MODEL_KINDS, "vae_tui/commands/__init__.py MODELS must list models.vae.MODEL_KINDS"
    assert DATASETS == DATASET_NAMES, "vae_tui/commands/__init__.py DATASETS must list train.data.DATASET_NAMES"


@pytest.mark.parametrize("name", DEVICES)
def test_every_device_choice_is_one_resolve_device_knows(name: str) -> None:
    try:
        assert isinstance(resolve_device(name), torch.device)
    except UserError as e:  # known, but not on this machine
        assert "unknown device" not in str(e) and "available here" in str(e)


@pytest.mark.parametrize(
    "argv",
    [["train"], ["explore"], ["eval", "c.safetensors"], ["sample", "c.safetensors", "-o", "out.png"]],
)
def test_each_command_module_parses_its_own_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    module = {command.__name__.rsplit(".", 1)[1]: command for command in COMMANDS}[argv[0]]
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
