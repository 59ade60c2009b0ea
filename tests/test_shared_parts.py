"""Parts that training, the commands and the explorer share, each defined once."""

import ast
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest
import torch

import models
from models import rows_per_class
from train.device import unit_pixels


def test_rows_per_class_repeat_the_same_z_under_each_class() -> None:
    z = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])  # (N=3, latent_dim=2)
    grid_z, labels = rows_per_class(z, torch.tensor([7, 2]))
    assert torch.equal(grid_z, torch.cat([z, z]))
    assert labels.tolist() == [7, 7, 7, 2, 2, 2]


def test_unit_pixels_scale_bytes_to_the_unit_interval() -> None:
    images = torch.tensor([[[0, 255], [51, 128]]], dtype=torch.uint8)  # (N=1, 2, 2)
    x = unit_pixels(images)
    assert x.dtype == torch.float32 and x.shape == (1, 4)
    assert torch.equal(x, torch.tensor([[0, 255, 51, 128]]) / 255)


def test_models_exports_match_their_modules() -> None:
    """models/__init__.py names each export twice, for the lazy import and for type checkers: they agree."""
    tree = ast.parse(Path(models.__file__).read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    assert {alias.name: node.module for node in block.body for alias in node.names} == models._MODULE_OF
    for name in models.__all__:
        assert getattr(models, name) is getattr(import_module(models._MODULE_OF[name]), name)


@pytest.mark.slow
def test_errors_text_version_the_parser_and_the_runs_browser_import_without_torch() -> None:
    code = (
        "import sys, models.errors, models.text, models.version, vae_tui.cli, vae_tui.runs_app; "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "False"
