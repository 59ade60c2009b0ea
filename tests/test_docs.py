"""The documentation: every ```sh example in README.md runs as written, each block in an empty folder (on a hundredth
of the datasets), except the marked lines; every row of docs/reliability.md names tests that exist."""

import re
import shlex
import shutil
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from tests.helpers import REAL_FASHION_MNIST
from vae_tui.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
MARKERS = (
    "needs network",
    "interactive",
    "takes minutes",
    "needs your file",
)  # what a line that is not run says first in its comment
NEEDS_FASHION_MNIST = ("train", "eval")  # commands that read the dataset of the bundled models


def sh_blocks(text: str) -> list[list[str]]:
    """The lines of each ```sh block, continuation lines joined, blank lines and whole-line comments left out."""
    blocks = []
    for body in re.findall(r"^```sh\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE):
        joined = re.sub(r"\\\n\s*", " ", body)
        blocks.append(
            [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        )
    return blocks


def split_comment(line: str) -> tuple[str, str]:
    """A line's command and its trailing comment ('' if none)."""
    command, *comment = re.split(r"\s+#\s*", line, maxsplit=1)
    return command, comment[0] if comment else ""


def marker(line: str) -> str | None:
    """The marker a line's comment starts with, if any: such a line is not run."""
    comment = split_comment(line)[1]
    return next((m for m in MARKERS if comment.startswith(m)), None)


BLOCKS = sh_blocks(README.read_text())


def test_the_readme_has_examples_and_each_excluded_line_says_why() -> None:
    lines = [line for block in BLOCKS for line in block]
    run = [line for line in lines if marker(line) is None]
    assert len(BLOCKS) >= 8 and len(run) >= 8, "the README's examples went missing, or nearly all are excluded"
    for line in lines:
        command = split_comment(line)[0]
        if "explore" in shlex.split(command) or "vae-tui explore" in command:
            assert marker(line) is not None and "interactive" in split_comment(line)[1], line
        if "--download" in command or "pip install" in command:
            assert marker(line) is not None and "needs network" in split_comment(line)[1], line


@pytest.fixture(scope="session")
def folders_after(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, ...], Path]:
    """The folder each sequence of lines left, run from an empty folder: a block that starts with the lines of
    one run before (two blocks start by training one epoch) takes that folder instead of running them again."""
    return {}


def trains_or_evaluates(block: list[str]) -> bool:
    """Whether a line of the block that runs trains or evaluates a model (seconds on the real FashionMNIST)."""
    return any(marker(line) is None and shlex.split(split_comment(line)[0])[1] in NEEDS_FASHION_MNIST for line in block)


FIRST_HUNDREDTHS: dict[tuple, object] = {}  # (files, split, dataset): the split's first hundredth, read once


@pytest.fixture
def a_hundredth_of_the_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """The datasets' first hundredth: the README's train and eval lines run as written on the real FashionMNIST's
    first 600 training and 100 test images. What is tested is that the lines, their flags and their files work (a
    whole epoch takes 10 s in the suite); the figures of whole runs are in docs/ with their commands. Each split is
    read (unpacked and checked against its MD5) once a process; the lines that read it again get copies."""
    from train import data

    read = data.read_split

    def first_hundredth(files: dict[str, Path], split: str, dataset: str) -> "data.Split":
        key = (tuple(sorted(files.items())), split, dataset)
        if key not in FIRST_HUNDREDTHS:
            whole = read(files, split, dataset)
            FIRST_HUNDREDTHS[key] = data.Split(
                whole.images[: len(whole.images) // 100].clone(), whole.labels[: len(whole.labels) // 100].clone()
            )
        first = FIRST_HUNDREDTHS[key]
        return data.Split(first.images.clone(), first.labels.clone())

    monkeypatch.setattr(data, "read_split", first_hundredth)


@pytest.mark.parametrize(
    "block",
    [
        pytest.param(
            block,
            id=f"{i}-{split_comment(block[0])[0][:40].strip()}",
            marks=pytest.mark.slow if trains_or_evaluates(block) else (),
        )
        for i, block in enumerate(BLOCKS)
    ],
)
def test_readme_block_runs_as_written(
    block: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path_factory: pytest.TempPathFactory,
    folders_after: dict[tuple[str, ...], Path],
    a_hundredth_of_the_data: None,
) -> None:
    monkeypatch.chdir(tmp_path)
    ran = 0
    lines_run: tuple[str, ...] = ()
    for line in block:
        if marker(line) is not None:
            continue
        lines_run += (split_comment(line)[0],)
        if lines_run in folders_after:  # the same lines from the same empty folder: what they did is known
            for path in tmp_path.iterdir():
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
            shutil.copytree(folders_after[lines_run], tmp_path, symlinks=True, dirs_exist_ok=True)
            ran += 1
            continue
        argv = shlex.split(split_comment(line)[0])
        redirect = None
        if len(argv) >= 2 and argv[-2] == ">":
            argv, redirect = argv[:-2], Path(argv[-1])
        assert argv[0] == "vae-tui" and not {">", "|", "&&", ";"} & set(argv), (
            f"the test runs `vae-tui ...` lines only: mark this line or teach the test: {line}"
        )
        if argv[1] in NEEDS_FASHION_MNIST and not REAL_FASHION_MNIST.is_dir():
            pytest.skip("Debian's dataset-fashion-mnist is not installed")
        capsys.readouterr()
        if redirect is None:
            code = main(argv[1:])
        else:
            with redirect.open("w") as out, redirect_stdout(out):
                code = main(argv[1:])
        assert code == 0, f"{line}\n{capsys.readouterr().err}"
        if redirect is not None:
            assert redirect.stat().st_size > 0, line
        if "-o" in argv:
            assert (tmp_path / argv[argv.index("-o") + 1]).stat().st_size > 0, line
        ran += 1
        folders_after[lines_run] = tmp_path_factory.mktemp("readme-after")
        shutil.copytree(tmp_path, folders_after[lines_run], symlinks=True, dirs_exist_ok=True)
    if ran == 0:
        pytest.skip("every line of this block is marked")


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


def test_the_readme_stays_within_its_budget_of_300_lines() -> None:
    """Details go in docs/: the README is what a new user reads first (ruff format reflows its Python blocks, so
    a block written short can grow back: this says so)."""
    assert len(README.read_text().splitlines()) <= 300
