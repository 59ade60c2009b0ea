"""Fixtures shared by the test modules, and the settings every test runs under; plain helpers live in helpers.py.

Nothing heavy is imported at the top: pytest-xdist's controller loads this file too, and runs no test. torch,
Textual and the project are imported where a fixture first needs them, in the processes that run tests.
"""

from __future__ import annotations

import gc
import itertools
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# No garbage collection while pytest imports torch, Textual and the test modules and rewrites their asserts: the
# collector ran every 700 new objects and walked all of them each tenth and hundredth time, some 1.2 CPU-seconds of
# each worker's 5 (`pytest --collect-only -n 0`, five runs in turns with and without, 4.9-6.4 CPU-s against
# 3.7-4.9). It comes back, with what survives frozen, once collection ends (pytest_collection_finish) or, in
# pytest-xdist's controller, which collects nothing, as soon as pytest is configured (pytest_configure).
gc.disable()

if TYPE_CHECKING:
    import torch

    from models import Checkpoint
    from tests.helpers import CliResult, PtyResult
    from train.loop import Trainer
    from vae_tui.app import ExplorerApp

# Names modules import from here rather than from helpers.py (tests/test_runs.py, tests/test_explorer_extras.py).
_FROM_HELPERS = {
    "TINY_SETTINGS": "TINY_SETTINGS",
    "QuietProgress": "QuietProgress",
    "write_dataset": "write_dataset",
    "_rewrite": "resign",
    "_make_checkpoint": "make_checkpoint",
}


# The vae-tui processes the tests start get one thread, fixed: the count that follows the machine's load
# (train/threads.py, tested in test_threads.py with a load the test sets) would make their output depend on what
# else this machine runs. Set here, before xdist starts its workers, it is in place when they import torch too.
os.environ["OMP_NUM_THREADS"] = "1"


def _memory_backed_temp() -> None:
    """Temporary files in RAM (/dev/shm) unless TMPDIR names a place: the tests write thousands of small files and
    fsync each checkpoint, which on a disk cost more system time than the tests' own work (10,000 small files: 2 s
    on this machine's ext4, 0.1 s in tmpfs) and left the cores idle while the disk synced. What the tests check does
    not depend on the disk: a rename is as atomic, and a killed process's writes are kept in both. Set here, before
    xdist starts its workers, tmp_path and every process the tests start follow it."""
    shm = "/dev/shm"
    if os.environ.get("TMPDIR") or not os.path.isdir(shm) or not os.access(shm, os.W_OK | os.X_OK):
        return
    stats = os.statvfs(shm)
    if stats.f_bavail * stats.f_frsize >= 2 << 30:  # the suite writes about 600 MB, kept only for failed tests
        os.environ["TMPDIR"] = shm
        tempfile.tempdir = None  # found again from TMPDIR by the next tempfile call


_memory_backed_temp()


def __getattr__(name: str) -> object:
    if name in _FROM_HELPERS:
        import tests.helpers

        return getattr(tests.helpers, _FROM_HELPERS[name])
    raise AttributeError(name)


@pytest.fixture(scope="session", autouse=True)
def settings_of_every_test() -> None:
    """What every test runs under, set once in each process that runs tests."""
    import textual._wait
    import torch

    # The models here are tiny: a thread pool costs more than it gives, and on a busy machine its spinning threads
    # made the suite several times slower. `vae-tui explore` and `sample` run on one thread as well.
    torch.set_num_threads(1)
    # Pilot waits after each key and pause until the process looks idle: a window of 20 ms with less than 1 ms of
    # CPU used (Textual's default), two or three windows a key. A window of 2 ms with less than 0.5 ms used waits as
    # long as the app works and hardly longer (half the idle time of 5 ms windows in the explorer's tests); with
    # less allowed (Textual's twentieth) the event loop's own wake-ups look busy and a wait can run to its 1 s limit.
    # The tests wait for what a worker thread computes by polling (wait_until, settle), never by the idle check.
    textual._wait.SLEEP_GRANULARITY = 0.002
    textual._wait.SLEEP_IDLE = 0.0005


def pytest_configure(config: pytest.Config) -> None:
    """pytest-xdist's controller starts the workers and runs no test: its garbage collector comes back at once."""
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        gc.enable()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Once torch, Textual and every test module are imported: keep the garbage collector off those objects.

    A full collection walked the few hundred thousand objects of the imports each time (a fifth of an explorer
    test's time); frozen, they are left out. Python's own full collections are turned off: they come between tests
    instead (pytest_runtest_protocol), where what survives them is frozen too. Objects the tests create are
    collected by the young generations as before.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(700, 10, 1 << 30)
    gc.enable()


def pytest_runtest_teardown(item: pytest.Item) -> None:
    """After each test: let go of the widgets Textual's StylesCache.get_inner_outer keeps.

    That lru_cache (1,024 entries) is keyed on the StylesCache, so it keeps the last thousand widgets' caches of
    rendered lines alive after their apps have closed: Strips, their segments and seven FIFOCaches each, which every
    full garbage collection walked (after test_app, test_runs and test_outside in one process: 486,659 objects
    tracked with the cache kept, 252,048 with it cleared).
    """
    from textual._styles_cache import StylesCache

    StylesCache.get_inner_outer.cache_clear()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    """Around each test: the CPU recorder, and after it the garbage collection kept between tests.

    With VAE_TUI_TEST_CPU=FILE: append each test's CPU seconds (its setup, call and teardown, in this process and in
    the processes it waited for), its wall-clock seconds and its id to FILE, one tab-separated line a test.
    The suite's budget is wall time on two cores, and two workers share them: CPU seconds are what a test costs the
    whole run, and unlike its duration they hardly change when the other worker is busy. `sort -rn FILE | head`.
    A wall time well over the CPU time is a test that leaves its core idle (waiting on a timer or a sleep).
    """
    path = os.environ.get("VAE_TUI_TEST_CPU")
    started, wall = (_cpu_used(), time.perf_counter()) if path else (0.0, 0.0)
    yield
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(f"{_cpu_used() - started:.3f}\t{time.perf_counter() - wall:.3f}\t{item.nodeid}\n")
    _full_collection_between_tests()


def _cpu_used() -> float:
    """CPU seconds of this process and of the child processes it has waited for."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _full_collection_between_tests() -> None:
    """A full garbage collection once ten young ones have run since the last (Python's own rule, which
    pytest_collection_finish turns off), then everything that survived it frozen.

    Survivors of a full collection between tests are what outlives tests: modules imported late (torch._dynamo
    alone brings tens of thousands of objects), caches. Python walked them at each of its own full collections,
    some 15 a worker, at 0.25 s each, and pytest walks everything five times more as a worker ends
    (unraisableexception); frozen, both walk only what the tests created since. A test's own garbage is collected
    before it would be frozen: the test has ended.
    """
    if gc.get_count()[2] >= 10:
        gc.collect()
        gc.freeze()


# --- data ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def caches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A new folder each call, for a test's cache: caches/N, numbered here. tmp_path_factory.mktemp lists its whole
    folder to number each new one, and the test's tmp_path is made there too: one mktemp a test fewer, in a folder
    half as full (the listing made a test's start cost more the further the run had gone)."""
    root = tmp_path_factory.mktemp("caches")
    return (root / str(n) for n in itertools.count())


@pytest.fixture(autouse=True)
def isolated_data_search(caches: Iterator[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test away from the user's cache and $VAE_TUI_DATA."""
    cache = next(caches)
    cache.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("VAE_TUI_DATA", raising=False)


@pytest.fixture
def mnist_dir(tmp_path: Path) -> Path:
    """A folder with a tiny MNIST-shaped dataset in raw IDX files."""
    from tests.helpers import write_dataset

    write_dataset(tmp_path / "data")
    return tmp_path / "data"


# --- models and checkpoints ----------------------------------------------------------------


@pytest.fixture
def tiny_model() -> torch.nn.Module:
    import torch

    from models import build_model
    from tests.helpers import TINY

    torch.manual_seed(0)
    return build_model(TINY)


@pytest.fixture(scope="session")
def make_checkpoint() -> Callable[..., Checkpoint]:
    """make_checkpoint(kind="vae", resume=False): a tiny seeded checkpoint, with a resume state if asked."""
    from tests.helpers import make_checkpoint

    return make_checkpoint


@pytest.fixture(scope="session")
def rewrite_checkpoint() -> Callable[..., Path]:
    """rewrite_checkpoint(path, edit_info=, edit_tensors=, raw=): change a checkpoint and sign it again, as a buggy
    writer would."""
    from tests.helpers import resign

    return resign


@pytest.fixture(scope="session")
def one_epoch(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny dataset and the last.safetensors of one epoch trained on it by `vae-tui train` (once per process)."""
    import torch

    from tests.helpers import TINY_FLAGS, write_dataset
    from vae_tui.cli import main

    root = tmp_path_factory.mktemp("one-epoch")
    write_dataset(root / "data")
    flags = [*TINY_FLAGS, "--epochs", "1", "--data-dir", str(root / "data"), "--out", str(root / "run")]
    threads = torch.get_num_threads()
    assert main(["train", *flags]) == 0
    torch.set_num_threads(threads)  # the command sets its own count
    return root / "data", root / "run" / "last.safetensors"


@pytest.fixture
def last(one_epoch: tuple[Path, Path], tmp_path: Path) -> Path:
    """A copy of one_epoch's last.safetensors in a run folder of its own, for the test to change."""
    (tmp_path / "run").mkdir()
    return Path(shutil.copy(one_epoch[1], tmp_path / "run" / "last.safetensors"))


@pytest.fixture(scope="session")
def valid_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a resumable checkpoint whose training settings are complete and match its model."""
    from models import save_checkpoint
    from tests.helpers import TINY_SETTINGS, make_checkpoint

    checkpoint = make_checkpoint(resume=True)
    checkpoint.training = asdict(TINY_SETTINGS)
    return save_checkpoint(tmp_path_factory.mktemp("valid") / "valid.safetensors", checkpoint).read_bytes()


# --- training ------------------------------------------------------------------------------


@pytest.fixture
def make_trainer(mnist_dir: Path) -> Callable[..., Trainer]:
    """make_trainer(out, resume_from=None, **settings): a CPU Trainer on mnist_dir, TINY_SETTINGS changed by
    settings; not run yet."""
    import torch

    from models import load_checkpoint
    from tests.helpers import TINY_SETTINGS, QuietProgress
    from train.data import load_dataset
    from train.loop import Trainer

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
    from train.loop import StopFlag

    def run(out: Path, resume_from: Path | None = None, **changes: object) -> Trainer:
        trainer = make_trainer(out, resume_from, **changes)
        trainer.run(StopFlag())
        return trainer

    return run


@pytest.fixture(scope="session")
def trained_in_a_terminal(tmp_path_factory: pytest.TempPathFactory) -> tuple[PtyResult, Path]:
    """`vae-tui train` for 2 epochs on the tiny dataset (data/) into TERMINAL_OUT, in an 80x24 pseudo-terminal,
    run once for the tests of what it draws there: (what it did, the folder it ran in)."""
    from tests.helpers import TERMINAL_OUT, TINY_FLAGS, run_in_pty, write_dataset

    root = tmp_path_factory.mktemp("terminal")
    write_dataset(root / "data")  # 512 training images: 16 batches of 32
    args = ["train", *TINY_FLAGS, "--epochs", "2", "--data-dir", "data", "--out", str(TERMINAL_OUT)]
    return run_in_pty(args, root), root


# --- the command line ------------------------------------------------------------------------


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """run_cli(*args): `vae-tui ARGS` in this process through vae_tui.cli.main, as a CliResult.

    Commands set torch's thread count for themselves; it is put back so later tests run as before.
    """
    import torch

    from tests.helpers import CliResult
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
    from models import load_checkpoint
    from vae_tui.app import create_app
    from vae_tui.commands.explore import pretrained_path

    def make(kind: str) -> ExplorerApp:
        checkpoint = load_checkpoint(pretrained_path(kind))
        return create_app(checkpoint, f"bundled pretrained {kind.upper()}", tmp_path / "exports")

    return make


@pytest.fixture
def wait_until() -> Callable[..., Awaitable[None]]:
    """await wait_until(pilot, condition, what, timeout=30): let the app run until condition() holds, else fail.

    The deadline only ends a wait that would never finish; a busy machine must not fail a test.
    """
    from tests.helpers import wait_until

    return wait_until


@pytest.fixture
def settle() -> Callable[..., Awaitable[None]]:
    """await settle(app, pilot): wait until the frame of the newest state is on screen (decoding runs in a thread)."""
    from tests.helpers import settle

    return settle


@pytest.fixture
def toast_shows() -> Callable[..., bool]:
    """toast_shows(app, text): whether a notification drawn on the current screen shows text (wraps ignored).

    Textual draws notifications in tests only when asked: `app.run_test(..., notifications=True)`.
    """
    from tests.helpers import toast_shows

    return toast_shows
