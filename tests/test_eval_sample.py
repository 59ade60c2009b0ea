"""`vae-tui eval` and `vae-tui sample`: the numbers add up, the bound is a bound, PNGs are reproducible, names are
shown literally, and PNG records (`--from-png`) are read or refused whatever they hold."""

import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from torch.distributions import Normal

from models import UserError, load_checkpoint
from models.text import PLACEHOLDER
from tests.helpers import (
    CONTROL_BYTES,
    FUZZ,
    HUGE_INTEGER,
    TINY_FLAGS,
    VALUES,
    edited,
    hostile_checkpoint,
    one_line_error,
    png_header,
    run_cli_in_pty,
    write_dataset,
)
from train.evaluate import evaluate_model, iwae_log_likelihood
from vae_tui.cli import build_parser, main
from vae_tui.commands import pretrained_names
from vae_tui.commands.explore import pretrained_label, pretrained_path, resolve
from vae_tui.decoding import Decoder
from vae_tui.exports import read_export


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny VAE trained for two epochs on tiny MNIST-shaped data by `vae-tui train`: (checkpoint, data folder)."""
    from vae_tui.cli import main

    root = tmp_path_factory.mktemp("trained")
    write_dataset(root / "data")
    args = [*TINY_FLAGS, "--lr", "1e-2", "--epochs", "2", "--data-dir", str(root / "data"), "--out", str(root / "run")]
    assert main(["train", *args]) == 0
    return root / "run" / "best.safetensors", root / "data"


def test_iwae_log_weight_matches_the_densities() -> None:
    torch.manual_seed(0)
    model = load_checkpoint(pretrained_path("vae")).model
    x = torch.rand(3, 784).round()
    y = torch.zeros(3, dtype=torch.long)
    log_px = iwae_log_likelihood(model, x, y, samples=1, generator=torch.Generator().manual_seed(5))
    mu, logvar = model.encode(x, y)
    eps = torch.randn((1, *mu.shape), generator=torch.Generator().manual_seed(5))[0]
    z = mu + eps * torch.exp(0.5 * logvar)
    probs = torch.sigmoid(model.decode(z, y))
    log_px_z = torch.distributions.Bernoulli(probs=probs).log_prob(x).sum(1)
    expected = log_px_z + Normal(0, 1).log_prob(z).sum(1) - Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(1)
    torch.testing.assert_close(log_px, expected.detach(), rtol=1e-4, atol=1e-2)


@pytest.mark.slow
def test_evaluation_numbers_add_up(trained: tuple[Path, Path]) -> None:
    from train.data import load_dataset

    checkpoint = load_checkpoint(trained[0])
    data = load_dataset("mnist", data_dir=trained[1])
    x, y = data.test.images.reshape(-1, 784).float() / 255, data.test.labels
    evaluation = evaluate_model(checkpoint.model, x, y, checkpoint.class_names, samples=64)
    for part in (evaluation.elbo_sampled, evaluation.elbo_mean):
        assert part["total"] == pytest.approx(part["reconstruction"] + part["kl"], rel=1e-5)
    assert evaluation.elbo_sampled["kl"] == pytest.approx(evaluation.elbo_mean["kl"])
    assert evaluation.iwae_nll < evaluation.elbo_sampled["total"]  # K=64 tightens the bound
    assert sum(c["images"] for c in evaluation.per_class) == len(x) == evaluation.images
    weighted = sum(c["loss"] * c["images"] for c in evaluation.per_class) / len(x)
    assert weighted == pytest.approx(evaluation.elbo_sampled["total"], rel=1e-4)
    assert evaluation.active_units == sum(d["variance"] > 0.01 for d in evaluation.dimensions)
    assert sum(d["kl"] for d in evaluation.dimensions) == pytest.approx(evaluation.elbo_sampled["kl"], rel=1e-4)


@pytest.mark.slow
def test_eval_command_json_and_table(trained: tuple[Path, Path], run_cli: Callable) -> None:
    result = run_cli("eval", str(trained[0]), "--samples", "8", "--json", "--data-dir", str(trained[1]))
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["iwae_samples"] == 8 and report["images"] == 128 and math.isfinite(report["iwae_nll"])
    table = run_cli("eval", str(trained[0]), "--samples", "8", "--data-dir", str(trained[1]))
    assert "IWAE bound, K=8" in table.stdout and "active" in table.stdout


@pytest.mark.slow
def test_evaluation_reports_images_done_without_changing_the_numbers(trained: tuple[Path, Path]) -> None:
    from train.data import load_dataset

    checkpoint = load_checkpoint(trained[0])
    data = load_dataset("mnist", data_dir=trained[1])
    x, y = data.test.images.reshape(-1, 784).float() / 255, data.test.labels
    done: list[float] = []
    watched = evaluate_model(checkpoint.model, x, y, checkpoint.class_names, 16, batch_size=50, on_progress=done.append)
    assert watched == evaluate_model(checkpoint.model, x, y, checkpoint.class_names, 16, batch_size=50)
    assert done == sorted(done) and done[-1] == len(x) == 128
    assert len(done) == 3 * 2 and done[:2] == [25, 50]  # 3 batches (50, 50, 28), each in 2 chunks of 8 samples


@pytest.mark.slow
def test_eval_shows_progress_on_a_terminal_only(trained: tuple[Path, Path], tmp_path: Path, run_cli: Callable) -> None:
    args = ["eval", str(trained[0]), "--samples", "8", "--data-dir", str(trained[1])]
    terminal = run_cli_in_pty(args, cwd=tmp_path)
    assert terminal.code == 0, terminal.output
    assert "loading mnist" in terminal.output and "-ELBO and IWAE, K=8" in terminal.output
    assert "128/128 images" in terminal.output and "eta" in terminal.output
    screen = terminal.screen(80)
    assert not screen.wraps and "IWAE bound, K=8" in "\n".join(screen.lines())
    assert not any("images" in line and "eta" in line for line in screen.lines())  # erased once the tables print
    as_json = run_cli_in_pty([*args, "--json"], cwd=tmp_path)
    assert as_json.code == 0 and "K=8" not in as_json.output
    assert json.loads(as_json.output)["iwae_samples"] == 8  # nothing but the JSON
    piped = run_cli(*args)
    assert piped.code == 0 and "K=8" not in piped.stderr and "-ELBO and IWAE" not in piped.stdout


def test_eval_errors(tmp_path: Path, run_cli: Callable) -> None:
    run_cli("eval", str(tmp_path / "missing.safetensors")).assert_one_line_error("no checkpoint at")
    run_cli("eval", str(pretrained_path("vae")), "--samples", "0").assert_one_line_error(
        "argument --samples: 0 is out of range: use 1 to 10000"
    )
    run_cli("eval", str(pretrained_path("vae")), "--samples", str(10**9)).assert_one_line_error(
        "argument --samples: 1000000000 is out of range"
    )
    run_cli("eval", str(pretrained_path("vae")), "--seed", str(2**70)).assert_one_line_error(
        "argument --seed: 1180591620717411303424 is out of range"
    )


@pytest.fixture
def sample(tmp_path: Path, run_cli: Callable) -> Callable[..., Path]:
    """sample(name, *args, checkpoint=bundled CVAE): run `vae-tui sample` into tmp_path/name; return the path."""

    def run(name: str, *args: str, checkpoint: Path | None = None) -> Path:
        out = tmp_path / name
        result = run_cli("sample", str(checkpoint or pretrained_path("cvae")), "-o", str(out), *args)
        assert result.code == 0, result.stderr
        return out

    return run


# A fresh interpreter that imports torch, then: a child forked from it imports train.loop and prints which of
# textual and vae_tui it loaded (train.loop imports torch first itself; torch loads neither); the interpreter goes on
# as `python -m vae_tui ARGS`.
FRESH_PROCESS = """
import os, sys
import torch
pid = os.fork()
if pid == 0:
    code = 1
    try:
        import train.loop
        print("loaded by train.loop:", sorted({m.split(".")[0] for m in sys.modules} & {"textual", "vae_tui"}))
        code = 0
    except BaseException:
        import traceback
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        os._exit(code)
_, status = os.waitpid(pid, 0)
print("child exit status:", os.waitstatus_to_exitcode(status), flush=True)
import runpy
runpy.run_module("vae_tui", run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
def test_sample_is_byte_for_byte_reproducible_and_a_fresh_training_process_loads_no_screen(
    tmp_path: Path, sample: Callable
) -> None:
    """`vae-tui sample --seed 3` writes the same bytes twice in this process, and other bytes with --seed 4; a fresh
    process, as a user runs it again, writes the same bytes. The fresh process (starting one costs seconds of CPU, for
    torch) also answers for tests/test_shared_parts.py: a child forked from it, before any project module was loaded,
    imports train.loop, and neither Textual nor vae_tui is loaded (training knows no screen)."""
    first = sample("a.png", "--seed", "3").read_bytes()
    again = sample("b.png", "--seed", "3").read_bytes()
    other = sample("c.png", "--seed", "4").read_bytes()
    assert first == again and first != other, "in-process reproducibility"
    elsewhere = tmp_path / "d.png"  # and from a fresh process, as a user runs it twice
    command = [sys.executable, "-c", FRESH_PROCESS, "sample", str(pretrained_path("cvae")), "-o", str(elsewhere)]
    result = subprocess.run([*command, "--seed", "3"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["loaded by train.loop: []", "child exit status: 0"], (
        f"train.loop, imported in a fresh process, loaded Textual or vae_tui, or failed: {result}"
    )
    assert elsewhere.read_bytes() == first, "a fresh process wrote other bytes"


def test_sample_grids(sample: Callable) -> None:
    """--no-labels: the bare grid; by default the same grid with its rows' labels at its left and a line under it."""
    cell = 4 * 30  # 28 px and 2 px of padding, at scale 4
    assert Image.open(sample("classes.png", "--no-labels")).size == (8 * cell + 8, 10 * cell + 8)
    two = sample("two.png", "--class", "Bag", "--class", "7", "--n", "5", "--no-labels")
    assert Image.open(two).size == (5 * cell + 8, 2 * cell + 8)
    traverse = sample("t.png", "--traverse", "4", "--n", "3", "--scale", "1", "--no-labels")
    assert Image.open(traverse).size == (3 * 30 + 2, 7 * 30 + 2)
    between = sample("i.png", "--interpolate", "seed:1", "seed:2", "--steps", "6", "--scale", "1", "--no-labels")
    assert Image.open(between).size == (6 * 30 + 2, 30 + 2)
    vae = sample(
        "v.png", "--interpolate", "Trouser", "Bag", "--scale", "1", "--no-labels", checkpoint=pretrained_path("vae")
    )
    assert Image.open(vae).size == (8 * 30 + 2, 30 + 2)
    for bare, args, rows, caption in [
        (two, ("--class", "Bag", "--class", "7", "--n", "5"), ["Bag", "Sneaker"], "one z a column, a class a row"),
        (
            traverse,
            ("--traverse", "4", "--n", "3", "--scale", "1"),
            [f"z4 = {v}" for v in ("-3", "-2", "-1", "0", "+1", "+2", "+3")],
            "a prior sample a column (seed 0), class T-shirt/top",
        ),
        (
            between,
            ("--interpolate", "seed:1", "seed:2", "--steps", "6", "--scale", "1"),
            [],
            "seed:1 to seed:2 in 6 steps, left to right, class T-shirt/top",
        ),
    ]:
        labelled = Image.open(sample(f"labelled-{bare.name}", *args))
        grid = Image.open(bare)
        # the grid itself, pixel for pixel, at the top right; the labels left of it, a line of text under it
        assert labelled.width > grid.width if rows else labelled.width == grid.width
        assert labelled.height > grid.height
        corner = (labelled.width - grid.width, 0, labelled.width, grid.height)
        assert labelled.crop(corner).tobytes() == grid.tobytes()
        under = labelled.crop((0, grid.height, labelled.width, labelled.height))
        assert under.getextrema()[1] > 200  # light text on the grid's grey
        export = read_export(Path(labelled.filename))
        assert list(export.rows) == rows and export.caption.endswith(caption)


def test_sample_pixels_are_the_decoders(sample: Callable) -> None:
    path = sample("one.png", "--n", "1", "--scale", "1", "--seed", "9", checkpoint=pretrained_path("vae"))
    checkpoint = load_checkpoint(pretrained_path("vae"))
    z = torch.randn(1, 20, generator=torch.Generator().manual_seed(9))
    expected = Decoder(checkpoint.model).images(z, torch.zeros(1, dtype=torch.long))[0]
    image = Image.open(path)
    crop = image.crop((2, 2, 30, 30))
    assert list(crop.tobytes()) == (expected * 255).round().to(torch.uint8).flatten().tolist()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--class", "Spaceship"], "unknown class 'Spaceship'"),
        (["--traverse", "20"], "--traverse 20: the model has dimensions 0-19"),
        (["--interpolate", "seed:x", "seed:2"], "is not seed:N"),
        (["--interpolate", "0", "1"], "needs a VAE"),
        (["--n", "0"], "argument --n: 0 is out of range: use 1 to 256"),
        # cause 13 of the hostile-input round: each flag is capped, named in --help
        (["--n", "100000"], "argument --n: 100000 is out of range: use 1 to 256"),
        (["--steps", str(10**7), "--interpolate", "seed:1", "seed:2"], "argument --steps: 10000000 is out of range"),
        (["--scale", "100000"], "argument --scale: 100000 is out of range: use 1 to 16"),
        (["--traverse", "3", "--n", "256"], "the grid would be 30728x848 px, more than 16384 on a side"),
        (["--n", "256", *["--class", "1"] * 17], "17 --class rows of --n 256 are more than 4096 images"),
        (["--seed", str(2**70)], f"argument --seed: {2**70} is out of range: use 0 to {2**63 - 1}"),
        (["--interpolate", "seed:1", f"seed:{2**70}"], "the seed in 'seed:1180591620717411303424' is out of range"),
    ],
)
def test_sample_errors(tmp_path: Path, run_cli: Callable, args: list[str], fragment: str) -> None:
    result = run_cli("sample", str(pretrained_path("cvae")), "-o", str(tmp_path / "x.png"), *args)
    result.assert_one_line_error(fragment)
    assert not (tmp_path / "x.png").exists()


def test_sample_refuses_non_png(tmp_path: Path, run_cli: Callable) -> None:
    run_cli("sample", str(pretrained_path("vae")), "-o", str(tmp_path / "x.jpg")).assert_one_line_error(".png")


@pytest.mark.parametrize("name", pretrained_names())
def test_pretrained_names_the_bundled_file_in_every_command(tmp_path: Path, run_cli: Callable, name: str) -> None:
    assert name in ("vae", "cvae", "vae-conv", "cvae-conv") or pretrained_path(name).is_file()
    by_name, by_path = tmp_path / "by-name.png", tmp_path / "by-path.png"
    assert run_cli("sample", "--pretrained", name, "-o", str(by_name)).code == 0
    assert run_cli("sample", str(pretrained_path(name)), "-o", str(by_path)).code == 0
    assert by_name.read_bytes() == by_path.read_bytes()
    checkpoint, source = resolve(build_parser().parse_args(["explore", "--pretrained", name]))
    assert checkpoint.path == pretrained_path(name) and source == f"bundled pretrained {pretrained_label(name)}"
    # eval found the bundled checkpoint: it goes on to look for its dataset (FashionMNIST), here in an empty folder
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("eval", "--pretrained", name, "--data-dir", str(empty))
    result.assert_one_line_error("fashion-mnist")
    assert "checkpoint" not in result.stderr


@pytest.mark.parametrize("command", [["eval"], ["sample", "-o", "x.png"], ["explore"]])
def test_a_checkpoint_and_pretrained_together_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Callable, command: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli(*command, str(pretrained_path("vae")), "--pretrained", "vae")
    result.assert_one_line_error("give a checkpoint", "or --pretrained vae, not both")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("command", [["eval"], ["sample", "-o", "x.png"]])
def test_no_checkpoint_at_all_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Callable, command: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    names = "{cvae,cvae-conv,vae,vae-conv}"
    run_cli(*command).assert_one_line_error(f"give a checkpoint file (CKPT) or --pretrained {names}")


# --- PNGs that record how they were drawn, and --from-png ------------------------------------------------


def png_record(path: Path) -> dict:
    """The vae-tui record in a PNG's text chunk."""
    with Image.open(path) as image:
        return json.loads(image.text["vae-tui"])


def with_record(source: Path, target: Path, text: str | None) -> Path:
    """A copy of source's image with text as its vae-tui record (None: no record)."""
    info = PngInfo()
    if text is not None:
        info.add_text("vae-tui", text)
    with Image.open(source) as image:
        image.save(target, pnginfo=info)
    return target


def test_sample_png_records_the_checkpoint_kind_classes_and_z(sample: Callable) -> None:
    path = sample("bags.png", "--class", "Bag", "--n", "3", "--seed", "5")
    record = png_record(path)
    checkpoint = load_checkpoint(pretrained_path("cvae"))
    assert record["checkpoint"] == str(pretrained_path("cvae").resolve()) and record["kind"] == "cvae"
    assert record["sha256"] == checkpoint.sha256 and len(record["sha256"]) == 64
    assert record["class"] == [8, 8, 8] and record["columns"] == 3 and record["scale"] == 4
    assert record["z"] == torch.randn(3, 20, generator=torch.Generator().manual_seed(5)).tolist()
    vae = png_record(sample("v.png", "--n", "2", checkpoint=pretrained_path("vae")))
    assert vae["kind"] == "vae" and vae["class"] == [None, None]  # a VAE has no condition


def test_from_png_draws_the_same_bytes(tmp_path: Path, sample: Callable, run_cli: Callable) -> None:
    vae = pretrained_path("vae")
    drawn = sample("t2b.png", "--interpolate", "Trouser", "Bag", "--steps", "5", checkpoint=vae)
    copy = tmp_path / "copy.safetensors"  # the same weights elsewhere: the hash is what counts
    copy.write_bytes(vae.read_bytes())
    for checkpoint in ([], ["--pretrained", "vae"], [str(copy)]):
        again = tmp_path / "again.png"
        result = run_cli("sample", *checkpoint, "--from-png", str(drawn), "-o", str(again))
        assert result.code == 0, result.stderr
        assert again.read_bytes() == drawn.read_bytes()
        again.unlink()


@pytest.fixture
def drawn_by_vae(sample: Callable) -> Path:
    """A PNG that `vae-tui sample` drew from the bundled VAE."""
    return sample("drawn.png", "--n", "2", checkpoint=pretrained_path("vae"))


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("no record", "has no vae-tui record"),
        ("not json", "its vae-tui record is garbled"),
        ("a list", "its vae-tui record is garbled (not a format-1 record)"),
        ("z of text", "its vae-tui record is garbled (each z must be a list of numbers within ±10000 or null)"),
        ("z of 401 digits", "its vae-tui record is garbled (each z must be a list of numbers within ±10000 or null)"),
        ("nested 100000 deep", "its vae-tui record is garbled (nested too deeply)"),
        ("a pixel bomb", "has no vae-tui record"),  # its header is read, its pixels never
        ("class 99", "its vae-tui record is garbled (a class outside 0-9)"),
        ("z too short", "its vae-tui record is garbled (it does not fit the checkpoint's model)"),
        ("huge grid", "more than 4096 images"),
        ("not a png", "is not an image vae-tui can read (PNG, told by its content"),
        ("other weights", "was drawn by other weights"),
        ("checkpoint gone", "which is not there: give that checkpoint as CKPT"),
        ("a flag too", "--from-png draws the grid the PNG records: leave out --n, --scale"),
    ],
)
def test_from_png_refusals(tmp_path: Path, drawn_by_vae: Path, run_cli: Callable, case: str, fragment: str) -> None:
    record = png_record(drawn_by_vae)
    edited = {
        "not json": "{'z': [",
        "a list": "[1, 2]",
        "z of text": json.dumps({**record, "z": ["abc", None]}),
        "z of 401 digits": json.dumps({**record, "z": [[10**400] * 20, None]}),
        "nested 100000 deep": "[" * 100_000 + "]" * 100_000,
        "class 99": json.dumps({**record, "class": [99, None]}),
        "z too short": json.dumps({**record, "z": [[0.5], None]}),
        "huge grid": json.dumps({**record, "z": [None] * 5000, "class": [None] * 5000}),
        "checkpoint gone": json.dumps({**record, "checkpoint": str(tmp_path / "gone.safetensors")}),
    }
    png, args = tmp_path / "edited.png", []
    if case == "no record":
        with_record(drawn_by_vae, png, None)
    elif case == "a pixel bomb":
        png.write_bytes(png_header(30_000, 30_000))
    elif case == "not a png":
        png.write_bytes(b"GIF89a not a png at all")
    elif case in edited:
        with_record(drawn_by_vae, png, edited[case])
    else:
        png = drawn_by_vae
        args = ["--pretrained", "cvae"] if case == "other weights" else ["--n", "3", "--scale", "2"]
    out = tmp_path / "out.png"
    run_cli("sample", *args, "--from-png", str(png), "-o", str(out)).assert_one_line_error(fragment)
    assert not out.exists()


@pytest.mark.parametrize("kind", ["cvae", "vae"])
async def test_from_png_redraws_the_explorers_pngs_byte_for_byte(
    tmp_path: Path, make_app: Callable, settle: Callable, run_cli: Callable, kind: str
) -> None:
    app = make_app(kind)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.press("r", "L", "down", "h", "4")  # z from the prior, nudged; class 4
        await settle(app, pilot)
        state = app.explorer.state
        z, label, selected = list(state.z), state.label, state.selected
        image, strip = app.explorer.action_save_image(), app.explorer.action_save_strip()
    assert image is not None and strip is not None
    record = png_record(image)
    assert record["z"] == z and record["class"] == label == 4 and record["kind"] == kind and record["scale"] == 10
    assert record["checkpoint"] == str(pretrained_path(kind).resolve()) and record["columns"] is None
    assert record["sha256"] == load_checkpoint(pretrained_path(kind)).sha256
    strip_record = png_record(strip)
    assert strip_record["z"][0][selected] == -3.0 and strip_record["z"][6][selected] == 3.0
    assert strip_record["columns"] == (10 if kind == "cvae" else 7)
    for saved in (image, strip):
        again = tmp_path / f"again-{saved.name}"
        result = run_cli("sample", "--from-png", str(saved), "-o", str(again))
        assert result.code == 0, result.stderr
        assert again.read_bytes() == saved.read_bytes()


# --- names in a checkpoint, shown literally by eval and sample ------------------------------------


def test_eval_table_shows_names_literally(
    tmp_path: Path, mnist_dir: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    path = hostile_checkpoint(tmp_path / "run [green]z" / "best.safetensors")
    assert main(["eval", str(path), "--samples", "2", "--data-dir", str(mnist_dir)]) == 0
    out = capsys.readouterr().out
    for shown in ("[/]", "[link=http://x]a[/link]", "[red]x", "[b", f"{PLACEHOLDER}[2J", "[green]z/best"):
        assert shown in out
    assert not any(c in out for c in CONTROL_BYTES)


def test_sample_class_error_shows_names_literally(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = hostile_checkpoint(tmp_path / "c.safetensors")
    assert main(["sample", str(path), "-o", str(tmp_path / "x.png"), "--class", "nope\x1b[2J"]) == 1
    err = capsys.readouterr().err
    one_line_error(err, "unknown class", "[/], [link=http://x]a[/link]", f"{PLACEHOLDER}]2;pwned{PLACEHOLDER}")
    assert not any(c in err for c in CONTROL_BYTES)
    assert main(["sample", str(path), "-o", str(tmp_path / "x.png"), "--class", "[/]"]) == 0  # a name picks its class


# --- fuzzing PNG records (sample --from-png): read, or said to be garbled -------------------------

RECORD = {
    "format": 1, "checkpoint": "/x.safetensors", "sha256": "0" * 64, "kind": "vae",
    "class": [None, None], "z": [[0.5, -1.0], None], "columns": 2, "scale": 4,
}  # fmt: skip

RECORD_FIELDS = [(key,) for key in RECORD] + [("z", 0), ("z", 0, 0), ("class", 0)]


@pytest.fixture(scope="module")
def blank_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("records") / "blank.png"
    Image.new("L", (4, 4)).save(path)
    return path


@pytest.mark.fuzz
@FUZZ
@given(
    edits=st.lists(st.tuples(st.sampled_from(RECORD_FIELDS), st.booleans(), VALUES), max_size=3),
    depth=st.sampled_from([0, 0, 0, 50_000]),
    huge=st.booleans(),
)
def test_png_records(tmp_path: Path, blank_png: Path, edits: list, depth: int, huge: bool) -> None:
    """A vae-tui record edited, nested deeply or carrying huge integers: read_export reads it or says it is garbled."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from vae_tui.exports import read_export

    text = json.dumps(edited(RECORD, edits)).replace(f'"{HUGE_INTEGER}"', "9" * 401)
    if huge:
        text = text.replace("0.5", "1" + "0" * 400)
    if depth:
        text = "[" * depth + text + "]" * depth
    info = PngInfo()
    info.add_text("vae-tui", text)
    png = tmp_path / "record.png"
    with Image.open(blank_png) as image:
        image.save(png, pnginfo=info)
    try:
        export = read_export(png)
    except UserError as e:
        assert "\n" not in str(e) and "\x1b" not in str(e)
        return
    assert all(cell is None or all(abs(v) <= 1e4 for v in cell) for cell in export.z)
