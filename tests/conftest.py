"""Shared fixtures: tiny IDX datasets, small real models and checkpoints, the CLI in-process, the explorer."""

import asyncio
import gzip
import hashlib
import json
import os
import struct
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import pytest
import safetensors.torch
import torch
from safetensors import safe_open
from textual.pilot import Pilot

from models import Checkpoint, ModelConfig, ResumeState, build_model, load_checkpoint
from models.checkpoint import METADATA_KEY, _data_offset
from train.data import DEBIAN_DIRS, SPLIT_FILES, load_dataset
from train.loop import StopFlag, Trainer, TrainSettings
from train.progress import EpochResult, PlainProgress
from vae_tui.app import ExplorerApp, create_app
from vae_tui.commands.explore import pretrained_path

# The models here are tiny: a thread pool costs more than it gives, and on a busy machine its spinning threads
# made the suite several times slower. `vae-tui explore` and `sample` run on one thread as well.
torch.set_num_threads(1)
# The vae-tui processes the tests start get one thread too, fixed: the count that follows the machine's load
# (train/threads.py, tested in test_threads.py with a load the test sets) would make their output depend on what
# else this machine runs.
os.environ["OMP_NUM_THREADS"] = "1"

REAL_FASHION_MNIST = DEBIAN_DIRS["fashion-mnist"]
TINY = ModelConfig(hidden_dim=32, latent_dim=4)
TINY_FLAGS = ["--dataset", "mnist", "--batch-size", "32", "--hidden-dim", "32", "--latent-dim", "4"]
TINY_SETTINGS = TrainSettings(dataset="mnist", epochs=2, batch_size=32, lr=1e-2, latent_dim=4, hidden_dim=32, seed=3)
RESUME_PROGRESS = {"epoch": 2, "step": 5, "best_test_loss": 250.5, "best_epoch": 1}

needs_fashion_mnist = pytest.mark.skipif(
    not REAL_FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist is not installed"
)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


# --- data ----------------------------------------------------------------------------------


def idx_bytes(data: torch.Tensor) -> bytes:
    """An IDX file of unsigned bytes holding data (uint8, any number of dimensions)."""
    header = bytes([0, 0, 0x08, data.dim()]) + struct.pack(f">{data.dim()}I", *data.shape)
    return header + data.contiguous().numpy().tobytes()


def make_split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n 28x28 images: one fixed blob pattern per class plus noise, so a model can learn them."""
    generator = torch.Generator().manual_seed(1234)
    templates = (torch.rand(10, 28, 28, generator=generator) > 0.6).float()
    generator.manual_seed(seed)
    labels = torch.arange(n) % 10
    noise = torch.rand(n, 28, 28, generator=generator) * 0.3
    images = ((templates[labels] * 0.7 + noise).clamp(0, 1) * 255).to(torch.uint8)
    return images, labels.to(torch.uint8)


def write_dataset(folder: Path, n_train: int = 512, n_test: int = 128, gz: bool = False) -> dict[str, bytes]:
    """Write the four IDX files into folder; return each file's bytes by file name."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        images, labels = make_split(n, seed)
        for name, data in zip(SPLIT_FILES[split], (images, labels), strict=True):
            content = idx_bytes(data)
            name, content = (f"{name}.gz", gzip.compress(content, mtime=0)) if gz else (name, content)
            (folder / name).write_bytes(content)
            written[name] = content
    return written


@pytest.fixture(autouse=True)
def isolated_data_search(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test away from the user's cache and $VAE_TUI_DATA."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("VAE_TUI_DATA", raising=False)


@pytest.fixture
def mnist_dir(tmp_path: Path) -> Path:
    """A folder with a tiny MNIST-shaped dataset in raw IDX files."""
    write_dataset(tmp_path / "data")
    return tmp_path / "data"


# --- models and checkpoints ----------------------------------------------------------------


@pytest.fixture
def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(TINY)


def _make_checkpoint(kind: str = "vae", resume: bool = False) -> Checkpoint:
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind=kind, hidden_dim=TINY.hidden_dim, latent_dim=TINY.latent_dim))
    state = None
    if resume:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.loss(torch.rand(8, 784), torch.arange(8))[0].backward()
        optimizer.step()
        state = ResumeState(optimizer.state_dict(), {"rng_now.cpu": torch.get_rng_state()}, dict(RESUME_PROGRESS))
    return Checkpoint(
        model=model,
        dataset="mnist",
        class_names=[str(i) for i in range(10)],
        epoch=1,
        class_centroids=torch.randn(10, TINY.latent_dim),
        metrics={"test_loss": 123.5},
        training={"lr": 1e-3, "batch_size": 64},
        resume=state,
    )


@pytest.fixture(scope="session")
def make_checkpoint() -> Callable[..., Checkpoint]:
    """make_checkpoint(kind="vae", resume=False): a tiny seeded checkpoint, with a resume state if asked."""
    return _make_checkpoint


def _rewrite(path: Path, edit_info: Callable | None = None, edit_tensors: Callable | None = None) -> None:
    tensors = safetensors.torch.load_file(path)
    with safe_open(path, "pt") as f:
        info = json.loads(f.metadata()[METADATA_KEY])
    if edit_info:
        edit_info(info)
    if edit_tensors:
        edit_tensors(tensors)
    unsigned = safetensors.torch.save(tensors)
    info["sha256"] = hashlib.sha256(unsigned[_data_offset(unsigned) :]).hexdigest()
    path.write_bytes(safetensors.torch.save(tensors, metadata={METADATA_KEY: json.dumps(info)}))


@pytest.fixture(scope="session")
def rewrite_checkpoint() -> Callable[..., None]:
    """rewrite_checkpoint(path, edit_info=, edit_tensors=): change a checkpoint and sign it again, as a buggy writer
    would."""
    return _rewrite


# --- training ------------------------------------------------------------------------------


class QuietProgress(PlainProgress):
    """Progress that keeps each epoch's result and message in `lines` instead of printing."""

    def __init__(self) -> None:
        self.total_epochs, self.lines = 0, []

    def epoch_done(self, result: EpochResult) -> None:
        self.lines.append(result)

    def message(self, text: str) -> None:
        self.lines.append(text)


@pytest.fixture
def make_trainer(mnist_dir: Path) -> Callable[..., Trainer]:
    """make_trainer(out, resume_from=None, **settings): a CPU Trainer on mnist_dir, TINY_SETTINGS changed by
    settings; not run yet."""

    def make(out: Path, resume_from: Path | None = None, **changes: object) -> Trainer:
        data = load_dataset("mnist", data_dir=mnist_dir)
        resume = load_checkpoint(resume_from, with_resume=True) if resume_from else None
        out.mkdir(parents=True, exist_ok=True)
        settings = replace(TINY_SETTINGS, **changes)
        return Trainer(settings, data, out, torch.device("cpu"), QuietProgress(), resume)

    return make


@pytest.fixture
def run_training(make_trainer: Callable[..., Trainer]) -> Callable[..., Trainer]:
    """run_training(out, resume_from=None, **settings): make_trainer's Trainer, run to the end."""

    def run(out: Path, resume_from: Path | None = None, **changes: object) -> Trainer:
        trainer = make_trainer(out, resume_from, **changes)
        trainer.run(StopFlag())
        return trainer

    return run


# --- the command line ------------------------------------------------------------------------


class CliResult(NamedTuple):
    """What a `vae-tui` command did: exit status, stdout and stderr."""

    code: int
    stdout: str
    stderr: str

    @classmethod
    def of(cls, process: subprocess.CompletedProcess) -> "CliResult":
        return cls(process.returncode, process.stdout, process.stderr)

    def assert_one_line_error(self, *fragments: str) -> None:
        """A failure reported as one line on stderr (no traceback) that contains every fragment."""
        assert self.code != 0, self
        assert "Traceback" not in self.stderr
        lines = self.stderr.strip().splitlines()
        assert len(lines) == 1, self.stderr
        for fragment in fragments:
            assert fragment in lines[0]


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """run_cli(*args): `vae-tui ARGS` in this process through vae_tui.cli.main, as a CliResult.

    Commands set torch's thread count for themselves; it is put back so later tests run as before.
    """
    from vae_tui.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        threads = torch.get_num_threads()
        try:
            code = main(list(args))
        except SystemExit as e:  # argparse: --help, --version and bad flags
            code = e.code if isinstance(e.code, int) else int(e.code is not None)
        finally:
            torch.set_num_threads(threads)
        stdout, stderr = capsys.readouterr()
        return CliResult(code, stdout, stderr)

    return run


# --- the explorer ----------------------------------------------------------------------------


@pytest.fixture
def truecolor(monkeypatch: pytest.MonkeyPatch) -> None:
    """A terminal that says it shows 24-bit colour (else the explorer shows a hint)."""
    monkeypatch.setenv("COLORTERM", "truecolor")


@pytest.fixture
def make_app(tmp_path: Path) -> Callable[[str], ExplorerApp]:
    """make_app(kind): the explorer on the bundled VAE or CVAE, exporting into tmp_path/exports."""

    def make(kind: str) -> ExplorerApp:
        checkpoint = load_checkpoint(pretrained_path(kind))
        return create_app(checkpoint, f"bundled pretrained {kind.upper()}", tmp_path / "exports")

    return make


async def _wait_until(pilot: Pilot, condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        await pilot.pause()
        if condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.01)  # polling, not a fixed wait: lets a worker thread run before the next look


async def _settle(app: ExplorerApp, pilot: Pilot) -> None:
    screen = app.explorer
    await _wait_until(
        pilot,
        lambda: (
            screen.frame is not None and screen.frame.version == screen.state.version and not screen.strips_missing()
        ),  # only the strips on screen are decoded
        "the frame of the newest state on screen",
    )
    await pilot.pause()


@pytest.fixture
def wait_until() -> Callable[..., Awaitable[None]]:
    """await wait_until(pilot, condition, what, timeout=30): let the app run until condition() holds, else fail.

    The deadline only ends a wait that would never finish; a busy machine must not fail a test.
    """
    return _wait_until


@pytest.fixture
def settle() -> Callable[..., Awaitable[None]]:
    """await settle(app, pilot): wait until the frame of the newest state is on screen (decoding runs in a thread)."""
    return _settle


def _toast_shows(app: ExplorerApp, text: str) -> bool:
    for toast in app.screen.query("Toast"):
        drawn = "".join(seg.text for y in range(toast.size.height) for seg in toast.render_line(y))
        if "".join(text.split()) in "".join(drawn.split()):
            return True
    return False


@pytest.fixture
def toast_shows() -> Callable[..., bool]:
    """toast_shows(app, text): whether a notification drawn on the current screen shows text (wraps ignored).

    Textual draws notifications in tests only when asked: `app.run_test(..., notifications=True)`.
    """
    return _toast_shows
