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


def import_graphs() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """The project's modules and the project modules each imports, from the AST, each file parsed once: (at the top
    of the module, for every module; anywhere in it, for train/ and models/); imports under an `if` (TYPE_CHECKING)
    are left out of the first: they do not run."""
    root = Path(__file__).resolve().parents[1]
    files = {
        ".".join(f.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): f
        for package in ("vae_tui", "models", "train")
        for f in (root / package).rglob("*.py")
    }

    def imported_by(nodes: list[ast.AST], name: str) -> set[str]:
        imported = set()
        for node in nodes:
            if isinstance(node, ast.ImportFrom) and node.module:
                imported |= {
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files else node.module for a in node.names
                }
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
        return {m for m in imported if m in files and m != name}

    top, anywhere = {}, {}
    for name, path in files.items():
        tree = ast.parse(path.read_text())
        top[name] = imported_by(tree.body, name)
        if name.split(".")[0] in ("train", "models"):
            anywhere[name] = imported_by(list(ast.walk(tree)), name)
    return top, anywhere


def test_no_import_circles_and_training_knows_no_screen() -> None:
    """No import circle among the project's modules at import time, and train/ and models/ import nothing of vae_tui,
    not even inside a function (from the AST)."""
    graph, anywhere = import_graphs()
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        assert name not in path, f"import circle: {' -> '.join([*path[path.index(name) :], name])}"
        if name not in done:
            for imported in graph[name]:
                visit(imported, [*path, name])
            done.add(name)

    for name in graph:
        visit(name, [])
    upward = [(a, b) for a, bs in anywhere.items() for b in bs if b.startswith("vae_tui")]
    assert not upward  # train/ and models/ never import the app, not even inside a function
    # and in a fresh process, importing train.loop loads neither Textual nor vae_tui: checked in the fresh process
    # tests/test_eval_sample.py::test_sample_is_byte_for_byte_reproducible_and_a_fresh_training_process_loads_no_screen
    # starts anyway (each costs seconds of CPU, for torch)
