"""`vae-tui runs`: every run folder with its state, read from headers and metrics only."""

import json
import os
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


def table_rows(app: object) -> list[tuple[str, ...]]:
    from textual.widgets import DataTable

    table = app.screen.query_one(DataTable)
    return [tuple(str(cell) for cell in table.get_row_at(i)) for i in range(table.row_count)]


@pytest.fixture
def browsed(runs_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the runs folder (the browser tests change it), polled every 50 ms."""
    import shutil

    import vae_tui.run_view
    import vae_tui.runs_app

    monkeypatch.setattr(vae_tui.runs_app, "POLL_SECONDS", 0.05)
    monkeypatch.setattr(vae_tui.run_view, "POLL_SECONDS", 0.05)
    shutil.copytree(runs_folder, tmp_path / "runs")
    return tmp_path / "runs"


async def test_the_browser_lists_sorts_filters_says_e_needs_a_checkpoint_and_deletes_with_d(browsed: Path) -> None:
    """One browser at 120x30 (each check starts from what the one before left):
    - it lists every run with its state, sorts by loss (l: runs without a loss last), filters (/ then escape clears
      it), and lists a run that appears while it is open;
    - e on a run without a best checkpoint says so in a notification and stays on the table;
    - d names the run and its size in a question; n keeps it, y deletes it; a run that is training (its lock held) is
      never offered for deletion."""
    from train.run_delete import deletable_size
    from vae_tui.runs_app import ConfirmDelete, RunsApp, RunsScreen, human_size

    app = RunsApp(browsed)
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        # listing, sorting, filtering
        await pilot.pause()
        rows = table_rows(app)
        assert [r[0] for r in rows] == sorted(p.name for p in browsed.iterdir()), "listing"
        states = {r[0]: r[6] for r in rows}
        assert states["finished"] == "finished" and states["interrupted"] == "interrupted", "listing: states"
        assert states["bad-metrics"] == "damaged: metrics.jsonl line 3 is not JSON (truncated?)", "listing: damaged"
        await pilot.press("l")
        assert [r[0] for r in table_rows(app)][-2:] == ["empty", "foreign"], "sorting by loss"
        await pilot.press("slash", *"bad")
        await pilot.pause()
        assert [r[0] for r in table_rows(app)] == ["bad-checkpoint", "bad-metrics"], "filtering"
        await pilot.press("escape")
        await pilot.pause()
        assert len(table_rows(app)) == 7, "escape clears the filter"
        (browsed / "new").mkdir()  # a run appearing while the browser is open
        (browsed / "new" / "notes.txt").write_text("x")
        for _ in range(100):
            await pilot.pause(0.02)
            if len(table_rows(app)) == 8:
                break
        assert ("new" in [r[0] for r in table_rows(app)]) and len(table_rows(app)) == 8, "a new run listed"
        table = app.screen.query_one("DataTable")

        # e on a run without a checkpoint
        names = [r[0] for r in table_rows(app)]
        table.move_cursor(row=names.index("empty"))
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen), "e without a checkpoint stays on the table"
        assert [n.message for n in app._notifications] == ["empty has no best.safetensors yet"], "e says so"

        # d deletes after naming the run, never a training one
        table.move_cursor(row=names.index("interrupted"))
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDelete), "d asks first"
        size = human_size(deletable_size(browsed / "interrupted"))
        question = f"Delete the run interrupted ({size} on disk)? y: delete · n: keep"
        assert app.screen.question == question, "d names the run and its size"
        await pilot.press("n")
        await pilot.pause()
        assert (browsed / "interrupted").is_dir(), "n keeps the run"
        await pilot.press("d", "y")
        await pilot.pause()
        assert not (browsed / "interrupted").exists(), "y deletes the run"
        assert "interrupted" not in [r[0] for r in table_rows(app)], "a deleted run leaves the table"
        lock = OutputLock(browsed / "running")
        try:
            names = [r[0] for r in table_rows(app)]
            table.move_cursor(row=names.index("running"))
            await pilot.press("d")
            await pilot.pause()
            assert not isinstance(app.screen, ConfirmDelete), "a training run is not offered for deletion"
            assert (browsed / "running").is_dir(), "a training run is kept"
        finally:
            lock.release()


async def test_a_run_shows_its_curves_grids_and_settings_and_steps_epochs(browsed: Path, wait_until: Callable) -> None:
    from vae_tui.run_view import LossPlot, RunScreen, first_cells, grid_pixels
    from vae_tui.runs_app import RunsApp
    from vae_tui.widgets.image_view import ImageView

    app = RunsApp(browsed)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        names = [r[0] for r in table_rows(app)]
        await pilot.press(*["down"] * names.index("finished"), "enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RunScreen) and screen.epoch == 2
        datasets = screen.query_one(LossPlot)._datasets
        assert [len(d.x) for d in datasets] == [2, 2]  # train and test loss, one point per epoch
        view = screen.query_one("#reconst", ImageView)
        expected = first_cells(grid_pixels(browsed / "finished" / "reconst-2.png"), 56, 2 * (120 - 2))
        await wait_until(pilot, lambda: torch_equal(view.pixels, expected), "epoch 2's grid")  # decoded in a thread
        titles = [str(screen.query_one(f"#{name}-title").render()) for name in ("reconst", "sample")]
        assert titles == [
            "reconstructions, epoch 2 (test images, each beside its reconstruction)",
            "samples, epoch 2 (draws from the prior)",
        ]  # what each grid's first row holds
        settings = str(screen.query_one("#settings").render())
        assert all(part in settings for part in ("arch mlp", "lr 0.01", "batch 32", "latent 4", "s/epoch"))
        await pilot.press("left")
        assert screen.epoch == 1
        expected = first_cells(grid_pixels(browsed / "finished" / "reconst-1.png"), 56, 236)
        await wait_until(pilot, lambda: torch_equal(view.pixels, expected), "epoch 1's grid")
        with (browsed / "finished" / "metrics.jsonl").open("a") as metrics:  # the run goes on: a third epoch
            metrics.write('{"epoch": 3, "train_loss": 300.0, "test_loss": 290.0}\n')
        for _ in range(100):
            await pilot.pause(0.02)
            if len(screen.rows) == 3:
                break
        assert [len(d.x) for d in screen.query_one(LossPlot)._datasets] == [3, 3]
        await pilot.press("escape")
        assert not isinstance(app.screen, RunScreen)


def torch_equal(a: object, b: object) -> bool:
    import torch

    return a is not None and b is not None and torch.equal(a, b)


async def test_the_explorer_opens_over_the_browser_and_leaving_it_keeps_the_browser_as_it_was(
    browsed: Path, settle: Callable, wait_until: Callable
) -> None:
    from vae_tui.run_view import RunScreen
    from vae_tui.runs_app import RunsApp, RunsScreen
    from vae_tui.screens.explorer import ExplorerScreen

    app = RunsApp(browsed)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        table = app.screen
        await pilot.press("l", "space")  # by loss; mark the first run
        names = [r[0].removeprefix("* ") for r in table_rows(app)]
        await pilot.press(*["down"] * names.index("finished"), "enter")  # open the run, then explore from it
        await pilot.pause()
        run_screen = app.screen
        assert isinstance(run_screen, RunScreen)
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, ExplorerScreen), "the explorer")
        explorer = app.screen
        assert explorer.follow == browsed / "finished" / "best.safetensors" and explorer.from_browser
        await settle(app, pilot)
        await pilot.press("m", "escape")  # the first escape leaves the map
        await pilot.pause()
        assert app.screen is explorer and not explorer.map.shown
        await pilot.press("escape")  # the next one goes back to the open run
        await pilot.pause()
        assert app.screen is run_screen
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is table and isinstance(table, RunsScreen)
        assert table.sort == "loss" and table.marked == {names[0]}  # sort and marks kept
        assert table.current().name == "finished"  # and the cursor
        assert table_rows(app)[0][0] == f"* {names[0]}"
        await pilot.press("e", "e")  # straight from the table (twice: one explorer); q comes back too, and a dialog
        await wait_until(pilot, lambda: isinstance(app.screen, ExplorerScreen), "the explorer")  # on top goes with it
        await wait_until(  # every load done, where a second explorer would come from
            pilot,
            lambda: app.opening is None and all(w.is_finished for w in app.workers if w.group == "explore"),
            "every checkpoint load done",
        )
        assert sum(isinstance(s, ExplorerScreen) for s in app.screen_stack) == 1
        await settle(app, pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert not isinstance(app.screen, ExplorerScreen)  # the explorer's help
        await pilot.press("q")  # closes the help
        await pilot.pause()
        assert isinstance(app.screen, ExplorerScreen)
        await pilot.press("q")
        await pilot.pause()
        assert app.screen is table and app.is_running
        await pilot.press("q")
        await pilot.pause()
    assert not app.is_running and app.return_code == 0


async def test_space_marks_two_runs_and_c_compares_them(browsed: Path, wait_until: Callable) -> None:
    from vae_tui.run_view import CompareScreen, LossPlot, first_cells, grid_pixels
    from vae_tui.runs_app import RunsApp
    from vae_tui.widgets.image_view import ImageView

    app = RunsApp(browsed)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("c")  # nothing marked: says so
        assert not isinstance(app.screen, CompareScreen)
        names = [r[0] for r in table_rows(app)]
        await pilot.press(*["down"] * names.index("finished"), "space")
        await pilot.press(*["down"] * (names.index("interrupted") - names.index("finished")), "space")
        await pilot.pause()
        marked = [r[0] for r in table_rows(app) if r[0].startswith("* ")]
        assert marked == ["* finished", "* interrupted"]
        await pilot.press("slash", *"fini")  # a marked run hidden by the filter is still compared
        await pilot.pause()
        await pilot.press("enter", "c")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen) and [run.name for run in screen.pair] == ["finished", "interrupted"]
        datasets = screen.query_one(LossPlot)._datasets
        assert [len(d.x) for d in datasets] == [2, 2, 2, 2]  # test and train loss of each run
        views = [screen.query_one(f"#samples-{i}", ImageView) for i in range(2)]
        expected = [
            first_cells(grid_pixels(browsed / name / "sample-2.png"), 28, 2 * (120 - 2))
            for name in ("finished", "interrupted")
        ]
        await wait_until(  # decoded in a thread
            pilot, lambda: all(torch_equal(v.pixels, e) for v, e in zip(views, expected, strict=True)), "samples"
        )
        await pilot.press("escape")
        assert not isinstance(app.screen, CompareScreen)


# --- the loss plot and the settings ----------------------------------------------------------------


def test_epoch_ticks_are_whole_and_at_most_eight() -> None:
    from vae_tui.run_view import MAX_X_TICKS, epoch_ticks

    assert epoch_ticks(1, 2) == [1, 2]
    for last in (3, 9, 40, 1000):
        ticks = epoch_ticks(1, last)
        assert ticks[0] == 1 and len(ticks) <= MAX_X_TICKS and all(isinstance(t, int) for t in ticks)


def test_the_y_range_leaves_the_first_tenth_out_and_keeps_every_latest_value() -> None:
    from vae_tui.run_view import focus_start

    assert focus_start([1]) == 1 and focus_start([1, 2, 3]) == 1  # short runs: every epoch
    assert focus_start([1, 2, 3, 4]) == 2 and focus_start(list(range(1, 41))) == 5


def metrics(losses: list[float], parts: bool = True) -> list[dict]:
    rows = [{"epoch": i + 1, "train_loss": loss + 2, "test_loss": loss} for i, loss in enumerate(losses)]
    for row in rows if parts else []:
        row["test_reconstruction"], row["test_kl"], row["seconds"] = row["test_loss"] - 10, 10.0, 2.0
    return rows


def fake_run(name: str, rows: list[dict], **settings: str) -> object:
    from train.runs import Run

    return Run(name, Path(name), "finished", metrics=rows, settings=settings)


async def test_the_plot_draws_one_epoch_whole_epochs_full_names_and_fits_the_later_epochs() -> None:
    """Two comparisons in one app at 120x40:
    - of runs of 40 epochs, of 1 epoch and without the loss's parts: names whole, one point drawn as a marker,
      whole-epoch ticks, a y range that leaves out the first tenth of the epochs and keeps every latest value (y: every
      epoch), k to the test reconstruction (the run without it left out) and the KL, titles with what differs;
    - of runs that never recorded the loss's parts: k says so in the title."""
    from textual.app import App

    from vae_tui.run_view import CompareScreen

    long_name = "thr-default-17454-and-more"
    forty = fake_run(long_name, metrics([300.0 - 2 * i for i in range(40)]), lr="0.001", latent="20")
    one = fake_run("one-epoch", metrics([262.0]), lr="0.002", latent="20")
    older = fake_run("older", metrics([280.0, 270.0], parts=False))  # rows without the loss's parts
    screen = CompareScreen(forty, one, older)
    app = App()
    async with app.run_test(size=(120, 40)) as pilot:
        await app.push_screen(screen)
        await pilot.pause()
        plot = screen.query_one("LossPlot")
        labels = plot._labels
        assert f"{long_name} test" in labels and f"{long_name} train" in labels  # names whole
        single = plot._datasets[labels.index("one-epoch test")]
        assert type(single).__name__ == "ScatterPlot" and list(single.x) == [1]  # one point: a marker
        assert all(float(t).is_integer() for t in plot._x_ticks)
        low, high = plot._y_min, plot._y_max
        assert high < 300 + 2 and low < 300 - 2 * 39  # epoch 1 (300) is left out; epoch 40 (222) is in
        assert low <= 262 <= high  # the 1-epoch run's only point stays in view
        assert "y from epoch 5" in str(screen.query_one("#compare-title").render())
        await pilot.press("y")
        assert plot._y_max > 302  # every epoch
        await pilot.press("k")  # the test reconstruction; the older run has none
        assert plot._labels == [f"{long_name} test recon.", "one-epoch test recon."]
        await pilot.press("k")
        assert "test KL per epoch" in str(screen.query_one("#compare-title").render())
        await pilot.pause()
        titles = [str(label.render()) for label in screen.query("Label") if label.id.startswith("samples-title")]
        assert "lr 0.001" in titles[0] and "lr 0.002" in titles[1] and "latent" not in titles[0]  # what differs
        assert "2.0 s/epoch" in titles[0]

        # runs that never recorded the parts
        app.pop_screen()
        without_parts = [fake_run(name, metrics([280.0, 270.0], parts=False)) for name in ("old-a", "old-b")]
        screen = CompareScreen(*without_parts)
        await app.push_screen(screen)
        await pilot.pause()
        await pilot.press("k")
        await pilot.pause()
        title = str(screen.query_one("#compare-title").render())
        assert title.endswith("test reconstruction: not recorded (k: next)"), title


def test_the_browser_writes_times_short_and_a_running_run_s_progress() -> None:
    import time

    from vae_tui.runs_app import progress, short_time

    now = time.mktime((2026, 12, 6, 16, 30, 0, 0, 0, -1))
    assert short_time(now - 180, now) == "16:27"
    assert short_time(time.mktime((2026, 3, 1, 9, 0, 0, 0, 0, -1)), now) == "Mar 01"
    assert short_time(time.mktime((2025, 12, 6, 9, 0, 0, 0, 0, -1)), now) == "2025-12-06"
    rows = [
        {"epoch": e, "train_loss": 1.0, "test_loss": 1.0, "seconds": s, "images_per_s": 20500.0}
        for e, s in ((1, 30.0), (2, 20.0), (3, 25.0))
    ]
    running = fake_run("r", rows)
    running.state, running.epochs_done, running.epochs_planned = "running", 3, 10
    assert progress(running) == " · 3/10 · 20.5k img/s · ETA 0:02:55"  # 7 epochs left at the median 25 s
    # within epoch 4, from the lock file: 12 s of it left, then 6 epochs at the median 25 s
    running.live = {"epoch": 4, "epochs": 10, "step": 150, "steps": 469, "images_per_s": 9876.0}
    running.live |= {"left_s": 12.0, "epoch_s": 6.1}
    assert progress(running) == " · 4/10 31% · 9.9k img/s · ETA 0:02:42"
    assert progress(running, spelled_out=True) == "epoch 4 of 10, 31% through · 9.9k img/s · 0:02:42 left"
    running.metrics = []  # no epoch ended yet: the others at this epoch's speed
    assert progress(running) == " · 4/10 31% · 9.9k img/s · ETA 0:00:49"
    running.state = "finished"
    assert progress(running) == ""


@pytest.mark.slow
def test_a_training_tells_the_browser_its_epoch_s_progress(
    mnist_dir: Path, tmp_path: Path, run_cli: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`vae-tui train` writes its step, speed and time left into the lock file (every second; here every step),
    and the listing reads them while the lock is held: a run's row moves within an epoch."""
    import train.loop
    import train.output
    from models.points import listen
    from tests.helpers import TINY_FLAGS
    from train.runs import live_status, lock_held

    monkeypatch.setattr(train.loop, "REPORT_SECONDS", 0.0)
    monkeypatch.setattr(train.output, "STATUS_SECONDS", 0.0)
    out = tmp_path / "runs" / "now"
    seen = []

    def look(label: str) -> None:
        if label == "batch 2 5":  # before step 5 of epoch 2 runs: steps 0-4 done
            seen.append((lock_held(out), live_status(out), scan_runs(out.parent)[0]))

    unlisten = listen(look)
    try:
        result = run_cli("train", *TINY_FLAGS, "--epochs", "3", "--data-dir", str(mnist_dir), "--out", str(out))
    finally:
        unlisten()
    assert result.code == 0, result.stderr
    ((held, status, run),) = seen
    assert held and status is not None and run.state == "running" and run.live == status
    assert (status["epoch"], status["epochs"], status["step"], status["steps"]) == (2, 3, 5, 16)  # 512 / 32
    assert status["images_per_s"] > 0 and 0 < status["left_s"] < status["epoch_s"]
    assert (out / ".lock").read_text().startswith(f"pid {os.getpid()}\n")  # the pid line stays first


@pytest.mark.parametrize(
    "text",
    [
        "pid 12",  # an older training's lock: a pid only
        'pid 12\n{"epoch": 2, "epochs": 3, "step": 5, "steps"',  # half written
        'pid 12\n{"epoch": 4, "epochs": 3, "step": 5, "steps": 8, "images_per_s": 1, "left_s": 1, "epoch_s": 2}\n',
        'pid 12\n{"epoch": 2, "epochs": 3, "step": 9, "steps": 8, "images_per_s": 1, "left_s": 1, "epoch_s": 2}\n',
        'pid 12\n{"epoch": 2, "epochs": 3, "step": 5, "steps": 8, "images_per_s": NaN, "left_s": 1, "epoch_s": 2}\n',
        'pid 12\n{"epoch": 2, "epochs": 3, "step": 5, "steps": 8, "images_per_s": 1, "left_s": -1, "epoch_s": 2}\n',
        'pid 12\n{"epoch": 2, "epochs": 3, "step": 5.5, "steps": 8, "images_per_s": 1, "left_s": 1, "epoch_s": 2}\n',
        'pid 12\n["epoch", 2]\n',
        "pid 12\n" + "[" * 100_000 + "\n",
        'pid 12\n{"epoch": 2, "epochs": 3, "step": 5, "steps": 8, "images_per_s": 1e999, "left_s": 1, "epoch_s": 2}\n',
    ],
    ids=[
        "pid only",
        "half written",
        "epoch past epochs",
        "step past steps",
        "NaN",
        "negative",
        "float step",
        "a list",
        "nested deep",
        "infinite",
    ],
)
def test_a_lock_file_s_status_that_is_off_is_no_status(tmp_path: Path, text: str) -> None:
    from train.runs import live_status

    (tmp_path / ".lock").write_text(text)
    assert live_status(tmp_path) is None
    good = 'pid 12\n{"epoch": 2, "epochs": 3, "step": 5, "steps": 8, "images_per_s": 1, "left_s": 1, "epoch_s": 2}\n'
    (tmp_path / ".lock").write_text(good)
    assert live_status(tmp_path) == {
        "epoch": 2,
        "epochs": 3,
        "step": 5,
        "steps": 8,
        "images_per_s": 1.0,
        "left_s": 1.0,
        "epoch_s": 2.0,
    }


async def test_at_80x24_the_browser_shows_every_key_its_help_and_the_highlighted_run_s_progress(
    browsed: Path, wait_until: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One browser at 80x24, while the run "running" trains (its lock held, in epoch 2 of 3):
    - the footer shows every key (e, c, d, ?, q) and the title the sort keys, whole;
    - ? lists every key of the footer, and escape closes the help;
    - the line under the table spells out the highlighted run's progress (whole at 80 columns), follows what the
      training writes, and is gone for a run that is not training."""
    import train.output
    from tests.test_app_screen import screen_text
    from vae_tui.runs_app import HELP, RunsApp, RunsHelp, RunsScreen

    monkeypatch.setattr(train.output, "STATUS_SECONDS", 0.0)
    lock = OutputLock(browsed / "running")  # a training writing there now, in epoch 2 of 3
    status = {"epoch": 2, "epochs": 3, "step": 5, "steps": 16, "images_per_s": 1234.0, "left_s": 7.5, "epoch_s": 12.0}
    lock.tell(status)
    try:
        app = RunsApp(browsed)
        async with app.run_test(size=(80, 24)) as pilot:
            # the footer and the title
            await wait_until(pilot, lambda: screen_text(app)[-1].strip(), "the footer drawn")  # composed a frame later
            title, *_, footer = screen_text(app)
            assert all(key in footer for key in ("e explore", "c compare", "d delete", "? help", "q quit")), footer
            assert "(l t n: loss, date, name)" in title, title

            # ? lists every key of the footer
            await pilot.press("question_mark")
            assert isinstance(app.screen, RunsHelp), "? opens the help"
            shown = {b.key.split(",")[0] for b in RunsScreen.BINDINGS if b.show}  # the footer's keys
            documented = {token for key, _ in HELP for token in key.split(" / ")}
            as_written = {"slash": "/", "question_mark": "?"}
            assert {as_written.get(key, key) for key in shown} <= documented, "a footer key missing from the help"
            await pilot.press("escape")
            assert isinstance(app.screen, RunsScreen), "escape closes the help"

            # the line under the table
            line = app.screen.query_one("#run-line")
            assert not line.display, "a line for a run that is not training"  # the cursor on a run not training
            names = [r[0] for r in table_rows(app)]
            await pilot.press(*["down"] * names.index("running"))
            shown_line = lambda: str(line.render()) if line.display else ""  # noqa: E731
            # 7.5 s of this epoch, then one more at the median epoch's time (metrics.jsonl's)
            spe = next(run for run in app.screen.runs if run.name == "running").seconds_per_epoch
            left = round(7.5 + spe)
            expected = f"running: epoch 2 of 3, 31% through · 1.2k img/s · 0:00:{left:02d} left"
            await wait_until(pilot, lambda: shown_line() == expected, "the highlighted run's progress under the table")
            assert line.region.width <= 80 and len(expected) <= 78, "the line cut at 80 columns"
            lock.tell(status | {"step": 10, "left_s": 4.0})  # the next second's news
            await wait_until(pilot, lambda: "62% through" in shown_line(), "the line moving within the epoch")
            await pilot.press("up")
            await wait_until(pilot, lambda: not line.display, "no line for a run not training")
    finally:
        lock.release()


async def test_at_80x24_the_explorer_s_picker_shows_its_hint_whole_and_escape_twice_stays(
    make_app: Callable, settle: Callable
) -> None:
    """The explorer on its own (not opened from the browser) at 80x24: the picker's hint (enter: pick · esc:
    cancel) is whole; after m, escape leaves the map and a second escape leaves the app running on the explorer."""
    from tests.test_app_screen import screen_text

    explorer = make_app("cvae")
    async with explorer.run_test(size=(80, 24)) as pilot:
        await settle(explorer, pilot)
        await pilot.press("o")
        await pilot.pause()
        await pilot.pause()
        assert any(line.rstrip(" │").endswith("enter: pick · esc: cancel") for line in screen_text(explorer)), (
            "the picker's hint"
        )
        await pilot.press("escape")  # cancels the picker
        await pilot.pause()
        assert explorer.screen is explorer.explorer, "escape cancels the picker"
        await settle(explorer, pilot)
        await pilot.press("m")
        await pilot.pause()
        assert explorer.explorer.map.shown, "m shows the map"
        await pilot.press("escape", "escape")
        await pilot.pause()
        assert explorer.is_running, "escape twice ended the explorer"
        assert explorer.screen is explorer.explorer and not explorer.explorer.map.shown, "escape twice: the map shown"
