"""Hostile run folders: special files, huge and deep values, markup and escape codes, mounts and links, names that
are shell code, fuzzed metrics rows and folder layouts. `vae-tui runs` (plain and --json) and the browser end
each in one line or a notice, never a hang.

The runs here are written by hand as the listing reads them (a checkpoint header carrying vae-tui's metadata, and
metrics.jsonl): the listing never reads more, and a hand-written header can say what no writer would.
"""

import json
import math
import os
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.text import PLACEHOLDER
from tests.helpers import FUZZ, HUGE_INTEGER, VALUES, edited
from train.commands import explore_command, resume_command
from train.run_delete import DeleteRefused, deletable_size, delete_run, entries_under
from train.run_files import FileTooLarge, NotRegularFile, read_capped
from train.run_values import loss_value
from train.runs import read_metrics, scan_runs

ROOT = Path(__file__).resolve().parents[1]
CONTROL_BYTES = ("\x1b", "\x07", "\x9b", "\u202e")
INFO = {
    "epoch": 2,
    "dataset": "mnist",
    "training": {"model": "vae", "arch": "mlp", "epochs": 4},
    "resume": {"best_test_loss": 250.5, "best_epoch": 1},
}
METRICS = [{"epoch": 1, "train_loss": 260.0, "test_loss": 250.5}, {"epoch": 2, "train_loss": 255.0, "test_loss": 251.0}]


def header_bytes(header: str) -> bytes:
    """A safetensors file with this header text and one float32 of data."""
    raw = header.encode()
    return struct.pack("<Q", len(raw)) + raw + bytes(4)


def checkpoint_bytes(metadata: str) -> bytes:
    """A safetensors file whose vae-tui metadata is this text (JSON or not)."""
    tensor = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}
    return header_bytes(json.dumps({"__metadata__": {"vae_tui": metadata}, "w": tensor}))


def write_run(folder: Path, info: dict | str = INFO, metrics: list | str = METRICS) -> Path:
    """A run folder: last.safetensors carrying info (a dict as JSON, a str as written) and metrics.jsonl."""
    folder.mkdir(parents=True)
    (folder / "last.safetensors").write_bytes(checkpoint_bytes(info if isinstance(info, str) else json.dumps(info)))
    text = metrics if isinstance(metrics, str) else "".join(json.dumps(row) + "\n" for row in metrics)
    (folder / "metrics.jsonl").write_text(text)
    return folder


def with_info(**changes: object) -> dict:
    """INFO with some fields replaced; training__model names training.model."""
    info = json.loads(json.dumps(INFO))
    for key, value in changes.items():
        *parents, name = key.split("__")
        place = info
        for parent in parents:
            place = place[parent]
        place[name] = value
    return info


def strict_json(text: str) -> object:
    """JSON as any other language's parser reads it: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def vae_tui_process(*args: str) -> subprocess.CompletedProcess:
    """`vae-tui ARGS` in a fresh process with stdout piped, killed after 20 s, its memory capped at 2 GB: a hang or
    an endless read fails the test instead of the machine."""
    capped = 'ulimit -v 2097152 && exec "$0" -m vae_tui "$@"'
    return subprocess.run(
        ["sh", "-c", capped, sys.executable, *args], capture_output=True, text=True, timeout=20, cwd=ROOT
    )


def table_rows(app: object) -> list[tuple[str, ...]]:
    from textual.widgets import DataTable

    table = app.screen.query_one(DataTable)
    return [tuple(str(cell) for cell in table.get_row_at(i)) for i in range(table.row_count)]


def drawn(widget: object) -> str:
    """The text a widget draws, line by line."""
    return "\n".join("".join(s.text for s in widget.render_line(y)) for y in range(widget.size.height))


@contextmanager
def released_after(fifos: list[Path], seconds: float = 10.0) -> Iterator[threading.Event]:
    """Run the body; a reader stuck opening one of fifos (the bug guarded against) is let go after seconds by a
    writer, so that the test fails instead of hanging. The event says whether that was needed."""
    needed, done = threading.Event(), threading.Event()

    def guard() -> None:
        if done.wait(seconds):
            return
        needed.set()
        while not done.is_set():
            for fifo in fifos:
                try:
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:
                    continue
            time.sleep(0.05)

    thread = threading.Thread(target=guard, daemon=True)
    thread.start()
    try:
        yield needed
    finally:
        done.set()
        thread.join()


# --- special files: regular only, never blocking, read up to a cap ---------------------------


def test_run_files_are_read_only_when_regular_and_up_to_a_cap(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "zero").symlink_to("/dev/zero")
    (tmp_path / "big").write_bytes(b"x" * 101)
    for path, kind in ((tmp_path / "fifo", "a FIFO"), (tmp_path / "zero", "a character device"), (tmp_path, "folder")):
        with pytest.raises(NotRegularFile, match=kind):
            read_capped(path, 100)
    with pytest.raises(FileTooLarge):
        read_capped(tmp_path / "big", 100)
    assert read_capped(tmp_path / "big", 101) == b"x" * 101


@pytest.fixture
def special_runs(tmp_path: Path) -> Path:
    """Runs whose .lock, metrics.jsonl or last.safetensors is a FIFO, and one whose metrics.jsonl links to
    /dev/zero (st_size 0, endless bytes)."""
    root = tmp_path / "runs"
    for name in (".lock", "metrics.jsonl", "last.safetensors"):
        folder = write_run(root / f"fifo-{name.lstrip('.')}")
        (folder / name).unlink(missing_ok=True)
        os.mkfifo(folder / name)
    (write_run(root / "zero-metrics") / "metrics.jsonl").unlink()
    (root / "zero-metrics" / "metrics.jsonl").symlink_to("/dev/zero")
    return root


@pytest.mark.slow
def test_special_files_in_a_run_never_hang_the_listing(special_runs: Path) -> None:
    listed = vae_tui_process("runs", str(special_runs), "--json")
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    runs = {run["name"]: run for run in strict_json(listed.stdout)}
    assert runs["fifo-lock"]["state"] == "interrupted"  # a .lock no training can hold
    assert runs["fifo-last.safetensors"]["problem"] == "last.safetensors cannot be read (a FIFO, not a regular file)"
    assert runs["fifo-metrics.jsonl"]["problem"] == "metrics.jsonl cannot be read (a FIFO, not a regular file)"
    assert runs["zero-metrics"]["problem"] == "metrics.jsonl cannot be read (a character device, not a regular file)"
    plain = vae_tui_process("runs", str(special_runs))
    assert plain.returncode == 0 and len(plain.stdout.splitlines()) == 5, plain.stderr


async def test_special_files_swapped_in_live_never_hang_the_browser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wait_until: Callable
) -> None:
    import vae_tui.run_view
    import vae_tui.runs_app
    from vae_tui.run_view import RunScreen
    from vae_tui.runs_app import RunsApp

    monkeypatch.setattr(vae_tui.runs_app, "POLL_SECONDS", 0.05)
    monkeypatch.setattr(vae_tui.run_view, "POLL_SECONDS", 0.05)
    folder = write_run(tmp_path / "runs" / "live")
    fifos = [folder / name for name in (".lock", "metrics.jsonl", "last.safetensors")]
    app = RunsApp(tmp_path / "runs")
    with released_after(fifos) as needed:
        async with app.run_test(size=(160, 30)) as pilot:
            await pilot.press("enter")  # the run view reads metrics.jsonl again when it changes
            await pilot.pause()
            run_screen = app.screen
            assert isinstance(run_screen, RunScreen)
            seen = run_screen._metrics_seen
            for fifo in fifos:
                fifo.unlink(missing_ok=True)
                os.mkfifo(fifo)
            # the view's next look (every 50 ms) finds the FIFO in metrics.jsonl's place, and reads it as a file
            await wait_until(pilot, lambda: run_screen._metrics_seen != seen, "the run view looking at the FIFO")
            await pilot.press("escape")
            damaged = "damaged: metrics.jsonl cannot be read (a FIFO, not a regular file)"
            await wait_until(pilot, lambda: table_rows(app)[0][6] == damaged, "the FIFOs listed", timeout=20)
            await pilot.press("q")
    assert not needed.is_set(), "a FIFO was opened for reading and waited for a writer"


# --- numbers and nesting: bounded, finite, parsed without a crash ----------------------------

DEEP = "[" * 50_000 + "]" * 50_000
HUGE = "9" * 401


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (f'{{"epoch": 1, "train_loss": 1.0, "test_loss": {HUGE}}}', "is not an epoch's metrics"),
        (f'{{"epoch": {"1" * 4000}, "train_loss": 1.0, "test_loss": 1.0}}', "is not an epoch's metrics"),
        ('{"epoch": 1000001, "train_loss": 1.0, "test_loss": 1.0}', "is not an epoch's metrics"),
        ('{"epoch": 1, "train_loss": 1e308, "test_loss": -1e308}', "is not an epoch's metrics"),
        ('{"epoch": 1, "train_loss": 1.0, "test_loss": NaN}', "is not an epoch's metrics"),
        ('{"epoch": true, "train_loss": 1.0, "test_loss": 1.0}', "is not an epoch's metrics"),
        (DEEP, "is not JSON (truncated?)"),
    ],
    ids=["401-digit-loss", "4000-digit-epoch", "epoch-past-bound", "1e308", "NaN", "bool-epoch", "deep"],
)
def test_a_metrics_row_out_of_bounds_ends_the_rows_read(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps(METRICS[0]) + "\n" + line + "\n")
    rows, found = read_metrics(path)
    assert rows == [METRICS[0]] and found == f"metrics.jsonl line 2 {problem}"


def test_losses_and_epochs_within_the_bounds_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1000000, "train_loss": -9.9e29, "test_loss": 99}\n')
    assert read_metrics(path) == ([{"epoch": 1_000_000, "train_loss": -9.9e29, "test_loss": 99.0}], "")
    assert loss_value(10**400) is None and loss_value(True) is None and loss_value(1e30) is None


@pytest.fixture
def hostile_metadata(tmp_path: Path) -> Path:
    """Runs whose checkpoint metadata holds values of the wrong type, out of range, non-finite or deeply nested."""
    root = tmp_path / "runs"
    cases = {
        "best-huge": with_info(resume__best_test_loss=10**400),
        "best-inf": json.dumps(with_info(resume__best_test_loss=float("inf"))),  # json writes Infinity
        "best-nan": json.dumps(with_info(resume__best_test_loss=float("nan"))),
        "epoch-4000-digits": with_info(epoch=int("1" * 4000)),
        "model-5": with_info(training__model=5, training__arch=["a"], dataset={"a": 1}, resume__best_epoch="x"),
        "deep-metadata": DEEP,
        "deep-header": "",
    }
    for name, info in cases.items():
        write_run(root / name, info, metrics=[])
    (root / "deep-header" / "last.safetensors").write_bytes(header_bytes(DEEP))
    return root


def test_hostile_metadata_is_absent_or_damaged_never_a_crash(hostile_metadata: Path, run_cli: Callable) -> None:
    runs = {run.name: run for run in scan_runs(hostile_metadata)}
    for name in ("best-huge", "best-inf", "best-nan"):
        assert runs[name].best_loss is None and runs[name].best_epoch is None and runs[name].state == "interrupted"
    assert runs["epoch-4000-digits"].epochs_done is None
    model_5 = runs["model-5"]
    assert (model_5.model, model_5.arch, model_5.dataset, model_5.best_epoch) == (None, None, None, None)
    assert runs["deep-metadata"].problem == "last.safetensors is not a vae-tui checkpoint (no vae-tui metadata)"
    assert runs["deep-header"].problem == "last.safetensors has a damaged header"
    listed = run_cli("runs", str(hostile_metadata), "--json")
    assert listed.code == 0
    assert [run["best_test_loss"] for run in strict_json(listed.stdout)[:3]] == [None, None, None]
    plain = run_cli("runs", str(hostile_metadata))
    assert plain.code == 0 and "Traceback" not in plain.stderr and len(plain.stdout.splitlines()) == 8


async def test_the_plots_survive_extreme_losses(tmp_path: Path, wait_until: Callable) -> None:
    from vae_tui.run_view import CompareScreen, LossPlot, RunScreen
    from vae_tui.runs_app import RunsApp

    extreme = [
        {"epoch": 1, "train_loss": 260.0, "test_loss": 250.0},
        {"epoch": 2, "train_loss": 9.9e29, "test_loss": -9.9e29},  # within the bounds: drawn
        {"epoch": 1_000_000, "train_loss": 9e29, "test_loss": 9e29},
    ]
    rows = (
        "".join(json.dumps(row) + "\n" for row in extreme) + '{"epoch": 3, "train_loss": 1e308, "test_loss": -1e308}\n'
    )
    for name in ("a", "b"):
        write_run(tmp_path / "runs" / name, metrics=rows)
    app = RunsApp(tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, RunScreen)
        assert app.screen.run.problem == "metrics.jsonl line 4 is not an epoch's metrics"
        assert [len(d.x) for d in app.screen.query_one(LossPlot)._datasets] == [3, 3]
        await pilot.press("escape", "space", "down", "space", "c")
        await pilot.pause()
        assert isinstance(app.screen, CompareScreen)
        plot = app.screen.query_one(LossPlot)
        assert [len(d.x) for d in plot._datasets] == [3, 3, 3, 3]
        assert -1e31 < plot._y_min < -9.9e29 and 9.9e29 < plot._y_max < 1e31
        await pilot.press("escape")
        await pilot.pause()  # drawn: a range of inf or NaN would have ended the app with a traceback


# --- strings from files: printable, and never markup ------------------------------------------

MARKUP_NAMES = ["[red]x", "run [x]", "[link=x]a", "[@click=app.quit]q"]  # file names: no slash


async def test_markup_in_names_and_metadata_is_drawn_literally(tmp_path: Path) -> None:
    from textual.widgets import DataTable, Static

    from vae_tui.run_view import RunScreen
    from vae_tui.runs_app import RunsApp

    for name in MARKUP_NAMES:
        write_run(tmp_path / "runs" / name)
    write_run(tmp_path / "runs" / "slash", with_info(dataset="[/]", training__model="[b]vae"))
    app = RunsApp(tmp_path / "runs")
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause()
        table = drawn(app.screen.query_one(DataTable))
        for name in MARKUP_NAMES:
            assert f" {name} " in table
        assert "[b]vae mlp" in table and " [/] " in table
        names = [row[0] for row in table_rows(app)]
        await pilot.press(*["down"] * names.index("slash"), "enter")
        await pilot.pause()
        assert isinstance(app.screen, RunScreen)
        assert "model [b]vae mlp · dataset [/]" in drawn(app.screen.query_one("#settings", Static))
        await pilot.press("escape", "q")


async def test_escape_codes_from_files_never_reach_the_terminal(
    tmp_path: Path, run_cli: Callable, monkeypatch: pytest.MonkeyPatch, wait_until: Callable
) -> None:
    from textual.widgets import DataTable

    import vae_tui.run_view
    import vae_tui.runs_app
    from vae_tui.runs_app import RunsApp

    root = tmp_path / "runs"
    name = "run\x1b]2;pwned\x07"
    hostile = with_info(training__model="\x1b]2;pwned\x07", training__arch="\x1b[2J", dataset="\x9bmnist")
    write_run(root / name, hostile, metrics=[])
    plain = run_cli("runs", str(root))
    listed = run_cli("runs", str(root), "--json")
    for output in (plain.stdout, listed.stdout):
        assert not any(c in output for c in CONTROL_BYTES)
    assert f"run{PLACEHOLDER}]2;pwned{PLACEHOLDER}\t{PLACEHOLDER}]2;pwned{PLACEHOLDER} {PLACEHOLDER}[2J" in plain.stdout
    (run,) = strict_json(listed.stdout)
    assert run["name"] == name and run["dataset"] == f"{PLACEHOLDER}mnist"  # the name as on disk, for scripts
    write_run(root / "live")  # rewritten while the browser is open
    monkeypatch.setattr(vae_tui.runs_app, "POLL_SECONDS", 0.05)
    monkeypatch.setattr(vae_tui.run_view, "POLL_SECONDS", 0.05)
    app = RunsApp(root)
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause()
        assert table_rows(app)[0][:2] == ("live", "vae mlp")
        (root / "live" / "last.safetensors").write_bytes(checkpoint_bytes(json.dumps(hostile)))
        await wait_until(pilot, lambda: PLACEHOLDER in table_rows(app)[0][1], "the rewritten checkpoint listed")
        table = drawn(app.screen.query_one(DataTable))
        assert not any(c in table for c in CONTROL_BYTES) and table.count(f"{PLACEHOLDER}]2;pwned") == 3


# --- deletes: never across a mount point, never through a link -------------------------------


def mount_tmpfs(where: Path) -> None:
    """A tmpfs at where, or the test skipped where this process may not mount."""
    where.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "vae-tui-test", str(where)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")


@pytest.mark.slow
async def test_d_refuses_a_run_holding_another_file_system(tmp_path: Path, toast_shows: Callable) -> None:
    from vae_tui.runs_app import ConfirmDelete, RunsApp

    run = write_run(tmp_path / "runs" / "x")
    mount_tmpfs(run / "data")
    try:
        (run / "data" / "kept.txt").write_text("another file system's file")
        with pytest.raises(DeleteRefused, match="holds another file system at data"):
            delete_run(run)
        app = RunsApp(tmp_path / "runs")
        async with app.run_test(size=(160, 30), notifications=True) as pilot:
            await pilot.press("d")
            await pilot.pause()
            assert not isinstance(app.screen, ConfirmDelete)
            assert toast_shows(app, "x holds another file system at data: not deleted (unmount it first)")
        assert (run / "data" / "kept.txt").read_text() == "another file system's file"
        assert (run / "last.safetensors").is_file()  # nothing of the run removed either
    finally:
        subprocess.run(["umount", "-l", str(run / "data")], check=True)


def test_a_folder_on_another_device_is_never_entered(tmp_path: Path) -> None:
    """The rule itself, where no file system can be mounted: an entry whose st_dev is not the run folder's is
    listed, never entered (nor counted)."""
    run = write_run(tmp_path / "x")
    (run / "data").mkdir()
    (run / "data" / "inside.txt").write_text("x")
    fd = os.open(run, os.O_RDONLY | os.O_DIRECTORY)
    try:
        seen = {str(entry.relative) for entry in entries_under(fd, os.fstat(fd).st_dev + 1)}
    finally:
        os.close(fd)
    assert seen == {"data", "last.safetensors", "metrics.jsonl"}


async def test_d_on_a_linked_run_refuses_at_once(tmp_path: Path, toast_shows: Callable) -> None:
    from vae_tui.runs_app import ConfirmDelete, RunsApp

    target = write_run(tmp_path / "elsewhere")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "link").symlink_to(target)
    app = RunsApp(tmp_path / "runs")
    async with app.run_test(size=(160, 30), notifications=True) as pilot:
        await pilot.press("d")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmDelete)  # no walk of the target to size it, no question
        assert toast_shows(app, "link is a link, not a run folder: not deleted")
    assert (target / "last.safetensors").is_file() and (tmp_path / "runs" / "link").is_symlink()


def test_a_delete_removes_links_as_links_and_counts_no_linked_bytes(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big.bin").write_bytes(bytes(100_000))
    run = write_run(tmp_path / "runs" / "x")
    (run / "folder-link").symlink_to(outside)
    (run / "file-link").symlink_to(outside / "big.bin")
    (run / "sub").mkdir()
    (run / "sub" / "notes.txt").write_text("notes")
    assert deletable_size(run) == sum(p.stat().st_size for p in run.rglob("*") if p.is_file() and not p.is_symlink())
    assert deletable_size(run) < 100_000
    delete_run(run)
    assert not run.exists() and (outside / "big.bin").stat().st_size == 100_000


# --- commands to paste: quoted for the shell --------------------------------------------------


@pytest.mark.slow
async def test_printed_commands_quote_their_paths(tmp_path: Path, run_cli: Callable) -> None:
    from textual.widgets import Static

    from vae_tui.runs_app import RunsApp

    name = "x;touch PWNED;#"
    run = write_run(tmp_path / "runs" / name)
    expected = f"vae-tui train --resume '{run}/last.safetensors'"
    assert resume_command(run / "last.safetensors") == expected
    assert explore_command(Path("-x")) == "vae-tui explore ./-x"  # never read as a flag
    (listed,) = strict_json(run_cli("runs", str(tmp_path / "runs"), "--json").stdout)
    assert listed["resume"] == expected and shlex.split(expected)[-1] == f"{run}/last.safetensors"
    subprocess.run(["sh", "-c", expected.replace("vae-tui", "true", 1)], cwd=tmp_path, check=True)
    assert not (tmp_path / "PWNED").exists()
    app = RunsApp(tmp_path / "runs")
    async with app.run_test(size=(200, 30)) as pilot:
        await pilot.press("enter")
        await pilot.pause()
        settings = drawn(app.screen.query_one("#settings", Static))
        assert f"resume: {expected}" in settings and f"explore: vae-tui explore '{run}'" in settings
    refused = run_cli("train", "--out", str(run), "--dataset", "mnist")
    refused.assert_one_line_error(f"resume it with {expected} or choose another --out")


# --- grids: decoded off the UI thread ---------------------------------------------------------


async def test_grids_are_decoded_off_the_ui_thread_and_keys_still_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wait_until: Callable
) -> None:
    """A grid that takes long to decode (an image made to be slow) never holds up escape, c or q."""
    import vae_tui.run_view
    from vae_tui.run_view import CompareScreen, RunScreen
    from vae_tui.runs_app import RunsApp, RunsScreen

    release, calls, returned = threading.Event(), [], []

    def slow_grid(path: Path) -> None:
        calls.append((path.name, threading.current_thread() is threading.main_thread()))
        release.wait(10)
        returned.append(path.name)

    monkeypatch.setattr(vae_tui.run_view, "grid_pixels", slow_grid)
    for name in ("a", "b"):
        write_run(tmp_path / "runs" / name)
    app = RunsApp(tmp_path / "runs")
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("enter")
            await wait_until(pilot, lambda: len(calls) >= 1, "a grid asked for", timeout=5)
            assert isinstance(app.screen, RunScreen)
            await pilot.press("escape")
            assert isinstance(app.screen, RunsScreen) and not returned  # back while the grid still decodes
            await pilot.press("space", "down", "space", "c")
            await wait_until(pilot, lambda: isinstance(app.screen, CompareScreen), "the compare view", timeout=5)
            await pilot.press("escape", "q")
        assert not returned and not any(on_ui_thread for _, on_ui_thread in calls)
    finally:
        release.set()


async def test_an_rgb_run_of_16_px_images_shows_its_grids_in_colour_cut_at_its_cells(
    tmp_path: Path, wait_until: Callable
) -> None:
    """The image side comes from the run's header (16, not 28), and an RGB grid is drawn in colour."""
    import torch

    from models.names import GRID_PAD, GRID_SCALE
    from train.grids import grid, save_png, side_by_side
    from vae_tui.run_view import RunScreen
    from vae_tui.runs_app import RunsApp
    from vae_tui.widgets.image_view import ImageView

    run = write_run(tmp_path / "runs" / "rgb", with_info(model={"channels": 3, "image_size": 16, "input_dim": 768}))
    images = torch.rand(16, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    written = {  # as train/writes.py lays them out: 8 columns, cells padded by 2, scaled by 2
        "reconst": grid(side_by_side(images, images.flip(0)), 8, GRID_PAD),
        "sample": grid(images, 8, GRID_PAD),
    }
    for name, pixels in written.items():
        save_png(run / f"{name}-2.png", pixels, scale=GRID_SCALE)
    app = RunsApp(tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen), "the run's view", timeout=5)
        views = {name: app.screen.query_one(f"#{name}", ImageView) for name in written}
        await wait_until(pilot, lambda: all(v.pixels is not None for v in views.values()), "the grids", timeout=5)
        # the first row: 16 px and 2 of padding above and below; whole cells within 2 * (120 - 2) px (6 pairs of
        # 34 px), or every column (8 samples of 18 px)
        for name, width in (("reconst", 6 * 34 + 2), ("sample", 8 * 18 + 2)):
            expected = (written[name][:, :20, :width] * 255).round() / 255
            assert torch.allclose(views[name].pixels, expected, atol=1e-6)
            colours = [
                segment.style.color.triplet
                for strip in views[name].strips()
                for segment in strip
                if segment.style is not None and segment.style.color is not None and "\u2580" in segment.text
            ]
            assert any(len(set(rgb)) > 1 for rgb in colours if rgb is not None)  # not only greys


# --- fuzzing the listing: metrics rows and run folder layouts -------------------------------------

METRIC_ROW = {"epoch": 1, "train_loss": 286.3, "test_loss": 262.6, "test_kl": 15.7, "threads": 2}

METRIC_FIELDS = [(key,) for key in METRIC_ROW]

RUN_ENTRIES = ["metrics.jsonl", "last.safetensors", "best.safetensors", ".lock", "reconst-1.png", "other"]

ENTRY_KINDS = st.sampled_from(["bytes", "folder", "link to /dev/zero", "dangling link", "link to the run", "fifo"])


def checked_run(folder: Path) -> None:
    """scan_run on folder gives a Run whose cells are printable and whose row is standard JSON."""
    from models.text import CONTROL
    from train.runs import row_cells, scan_run

    run = scan_run(folder)
    assert not any(CONTROL.search(cell) for cell in row_cells(run))
    json.dumps(run.as_json(), allow_nan=False)
    assert all(math.isfinite(row["test_loss"]) and math.isfinite(row["train_loss"]) for row in run.metrics)


@pytest.mark.fuzz
@FUZZ
@given(
    rows=st.lists(st.lists(st.tuples(st.sampled_from(METRIC_FIELDS), st.booleans(), VALUES), max_size=3), max_size=4),
    tail=st.sampled_from(["", "cut", "deep", "escape", "digits"]),
)
def test_metrics_rows(valid_checkpoint: bytes, rows: list, tail: str) -> None:
    """metrics.jsonl rows with fields replaced or deleted (huge integers, NaN, markup, control characters), and a
    last line cut, nested deeply or of digits: the listing keeps the good rows before a bad one, and never fails."""
    tail = {"": "", "cut": "{", "deep": "[" * 50_000, "escape": "\x1b]2;x\x07", "digits": "9" * 5000}[tail]
    folder = Path(tempfile.mkdtemp(prefix="fuzz-run-"))
    (folder / "last.safetensors").write_bytes(valid_checkpoint)
    lines = [json.dumps(edited({**METRIC_ROW, "epoch": i + 1}, edits)) for i, edits in enumerate(rows)]
    lines = [line.replace(f'"{HUGE_INTEGER}"', "9" * 401) for line in lines]
    (folder / "metrics.jsonl").write_text("\n".join([*lines, tail]) + "\n")
    try:
        checked_run(folder)
    finally:
        shutil.rmtree(folder)


@pytest.mark.fuzz
@FUZZ
@given(layout=st.dictionaries(st.sampled_from(RUN_ENTRIES), st.tuples(ENTRY_KINDS, st.binary(max_size=64)), max_size=6))
def test_run_folder_layouts(layout: dict) -> None:
    """A run folder's files as folders, FIFOs, links to /dev/zero, to the folder itself or to nothing, or bytes:
    scan_run answers at once (a FIFO would block a plain open) with a state, never an exception."""
    folder = Path(tempfile.mkdtemp(prefix="fuzz-run-"))
    for name, (kind, data) in layout.items():
        path = folder / name
        if kind == "bytes":
            path.write_bytes(data)
        elif kind == "folder":
            path.mkdir()
        elif kind == "link to /dev/zero":
            path.symlink_to("/dev/zero")
        elif kind == "dangling link":
            path.symlink_to(folder / "nothing")
        elif kind == "link to the run":
            path.symlink_to(folder)
        else:
            os.mkfifo(path)
    try:
        checked_run(folder)
    finally:
        shutil.rmtree(folder)
