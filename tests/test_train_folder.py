"""`vae-tui train --data DIR`: training on an image folder, grey or in colour, resuming it (the folder given again),
and the one-line refusals (a CVAE without classes, --data with --dataset)."""

import json
import math
import os
import signal
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models import load_checkpoint
from models.points import listen

FLAGS = ["--batch-size", "32", "--hidden-dim", "32", "--latent-dim", "4", "--no-preview"]


def clothes(root: Path, per_class: int = 40, mode: str = "L", size: int = 28) -> Path:
    """Class folders of seeded images: a bright square of a size per class on black (in RGB, tinted by class)."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(("bag", "coat", "shoe")):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.zeros((size, size), np.uint8)
            side = 6 + 6 * c
            pixels[4 : 4 + side, 4 : 4 + side] = rng.integers(120, 256)
            if mode == "RGB":  # tinted by class: colour
                image = Image.fromarray(np.stack([pixels, pixels // (c + 2), pixels // 3], axis=-1), "RGB")
            else:
                image = Image.fromarray(pixels)
            image.save(root / name / f"{i}.png")
    return root


@pytest.mark.slow
def test_train_on_a_folder_then_resume_it_with_the_folder_given_again(
    tmp_path: Path, run_cli: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    clothes(tmp_path / "wardrobe")
    flags = [*FLAGS, "--test-fraction", "0.2"]
    result = run_cli("train", "--data", "wardrobe", *flags, "--epochs", "1", "--out", "runs/w")
    assert result.code == 0, result.stderr
    assert "on folder:wardrobe" in result.stdout
    assert "data: wardrobe: 96 training and 24 test images (20% of each class held out (seed 0))" in result.stdout
    best = load_checkpoint(tmp_path / "runs" / "w" / "best.safetensors")
    assert best.dataset == "folder:wardrobe" and best.class_names == ["bag", "coat", "shoe"]
    assert best.config.num_classes == 3 and best.atlas is not None and len(best.atlas.mu) == 24  # the test split
    record = best.training["data"]  # what the checkpoint keeps of the folder: its name, not its path
    assert {k: v for k, v in record.items() if k != "digest"} == {
        "folder": "wardrobe",
        "layout": "classes",
        "size": 28,
        "channels": 1,
        "resize": "crop",
        "test_fraction": 0.2,
        "train": 96,
        "test": 24,
    }
    assert len(record["digest"]) == 64 and str(tmp_path) not in json.dumps(best.training)
    best_path = tmp_path / "runs" / "w" / "best.safetensors"
    run_cli("eval", str(best_path), "--samples", "2").assert_one_line_error(
        f"{best_path} was trained on the image folder wardrobe: give it (or one like it) with --data DIR"
    )
    evaluated = run_cli("eval", str(best_path), "--data", "wardrobe", "--samples", "2", "--json")
    assert evaluated.code == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["dataset"] == "folder:wardrobe" and report["images"] == 24  # the held-out split training drew
    assert [row["name"] for row in report["per_class"]] == ["bag", "coat", "shoe"]
    assert abs(report["elbo_sampled"]["total"] - best.metrics["test_loss"]) < 0.05 * best.metrics["test_loss"]
    last = tmp_path / "runs" / "w" / "last.safetensors"
    run_cli("train", "--resume", str(last), "--epochs", "2").assert_one_line_error(
        "--resume: the checkpoint was trained on the image folder wardrobe: give it with --data DIR"
    )
    clothes(tmp_path / "other")
    run_cli("train", "--resume", str(last), "--epochs", "2", "--data", "other").assert_one_line_error(
        "--resume: the checkpoint was trained on the image folder wardrobe, --data names other"
    )

    def stop(label: str) -> None:
        if label == "batch 2 1":
            os.kill(os.getpid(), signal.SIGINT)

    unlisten = listen(stop)
    try:
        stopped = run_cli("train", "--resume", str(last), "--epochs", "2", "--data", "wardrobe", "--no-preview")
    finally:
        unlisten()
    assert stopped.code == 130 and "--data wardrobe" in stopped.stderr  # the resume command names the folder
    (listed,) = json.loads(run_cli("runs", "runs", "--json").stdout)  # the browser knows its name, not its place
    assert listed["resume"] == (
        "vae-tui train --resume runs/w/last.safetensors --data DIR  # DIR: the image folder wardrobe it trained on"
    )
    Image.new("L", (28, 28), 99).save(tmp_path / "wardrobe" / "bag" / "new.png")  # the folder changes meanwhile
    resumed = run_cli("train", "--resume", str(last), "--epochs", "2", "--data", "wardrobe", "--no-preview")
    assert resumed.code == 0, resumed.stderr
    assert "the folder changed since this run started (train 96 -> 97 images): training goes on" in resumed.stdout
    assert load_checkpoint(last).epoch == 2


@pytest.mark.parametrize(
    ("make", "flags", "message"),
    [
        (
            lambda root: [Image.new("L", (28, 28), i).save(root / f"{i}.png") for i in range(10)],
            ["--model", "cvae"],
            "--data {root} has no class folders: --model cvae needs classes",
        ),
        (
            lambda root: clothes(root, per_class=3),
            ["--dataset", "mnist"],
            "--data reads an image folder: leave out --dataset",
        ),
    ],
    ids=["a cvae without classes", "with --dataset"],
)
def test_what_train_data_does_not_take_is_one_line(
    tmp_path: Path, run_cli: Callable, make: Callable, flags: list, message: str
) -> None:
    root = tmp_path / "data"
    root.mkdir()
    make(root)
    result = run_cli("train", "--data", str(root), *FLAGS, "--epochs", "1", "--out", str(tmp_path / "run"), *flags)
    result.assert_one_line_error(message.format(root=root))


@pytest.mark.slow
def test_a_colour_folder_trains_in_colour_and_every_command_draws_it(tmp_path: Path, run_cli: Callable) -> None:
    """A 32x32 RGB folder trains a conv CVAE of 3x32x32 images; its checkpoint (format 4) keeps the atlas's test
    images in colour, and eval --data, sample (a PNG and a GIF) read it without the folder's help."""
    from models.checkpoint import FORMAT_VERSION

    root = clothes(tmp_path / "data", per_class=12, mode="RGB", size=32)
    out = tmp_path / "run"
    flags = ["--arch", "conv", "--model", "cvae", "--epochs", "1", "--out", str(out)]
    result = run_cli("train", "--data", str(root), *FLAGS, *flags)
    assert result.code == 0, result.stderr
    checkpoint = load_checkpoint(out / "best.safetensors")
    assert checkpoint.config.image_shape == (3, 32, 32) and FORMAT_VERSION == 4
    assert checkpoint.atlas.images.shape[1:] == (3, 32, 32)
    assert checkpoint.class_names == ["bag", "coat", "shoe"]
    images = [Image.open(out / name) for name in ("reconst-1.png", "sample-1.png")]
    assert [image.mode for image in images] == ["RGB", "RGB"]
    pixels = np.asarray(images[0], dtype=np.int64)
    assert (pixels[..., 0] != pixels[..., 2]).any()  # not grey: the originals are tinted by class
    (row,) = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert row["test_bce_bits_per_dim"] == pytest.approx(row["test_loss"] / (3 * 32 * 32 * math.log(2)))
    evaluated = run_cli("eval", str(out / "best.safetensors"), "--data", str(root), "--samples", "4", "--json")
    report = json.loads(evaluated.stdout)
    assert report["bce_bits_per_dim"]["iwae"] == pytest.approx(report["iwae_nll"] / (3072 * math.log(2)))
    png, gif = tmp_path / "s.png", tmp_path / "t.gif"
    assert run_cli("sample", str(out / "best.safetensors"), "-o", str(png)).code == 0
    assert run_cli("sample", str(out / "best.safetensors"), "-o", str(gif), "--gif", "--traverse", "0").code == 0
    assert Image.open(png).mode == "RGB" and Image.open(gif).n_frames > 1


@pytest.mark.slow
def test_a_colour_folder_read_as_28x28_grey_trains(tmp_path: Path, run_cli: Callable) -> None:
    root = clothes(tmp_path / "data", per_class=10, mode="RGB", size=32)
    out = tmp_path / "run"
    flags = ["--image-size", "28", "--channels", "1"]
    result = run_cli("train", "--data", str(root), *FLAGS, *flags, "--epochs", "1", "--out", str(out))
    assert result.code == 0, result.stderr
    assert load_checkpoint(out / "best.safetensors").dataset == "folder:data"


def test_eval_data_takes_another_folder_of_the_same_shape_and_refuses_other_classes(
    tmp_path: Path, run_cli: Callable
) -> None:
    from vae_tui.commands.explore import pretrained_path

    root = clothes(tmp_path / "data", per_class=10)
    result = run_cli("eval", "--pretrained", "vae", "--data", str(root), "--samples", "2", "--json")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["dataset"] == "folder:data" and json.loads(result.stdout)["images"] == 3
    cvae = pretrained_path("cvae")
    run_cli("eval", str(cvae), "--data", str(root), "--samples", "2").assert_one_line_error(
        f"--data {root} has 3 classes; the CVAE in {cvae} was trained on 10"
    )
    run_cli("eval", "--pretrained", "vae", "--data", str(root), "--download").assert_one_line_error(
        "--data reads an image folder: leave out --download"
    )


@pytest.mark.slow
def test_a_folder_run_resumes_only_as_it_read_its_folder(
    tmp_path: Path, run_cli: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The held-out share, the size, the colour and the framing the run started with, and its classes: a resume
    that would read the folder otherwise is one line, not a traceback or a silently other test split."""
    monkeypatch.chdir(tmp_path)
    clothes(tmp_path / "lab", per_class=8)
    result = run_cli("train", "--data", "lab", "--model", "cvae", *FLAGS, "--epochs", "1", "--out", "run")
    assert result.code == 0, result.stderr
    last = str(tmp_path / "run" / "last.safetensors")
    for flags, message in [
        (["--test-fraction", "0.5"], "--test-fraction 0.5 (the run's: 0.1)"),
        (["--resize", "fit"], "--resize fit (the run's: crop)"),
        (["--image-size", "16"], "--image-size 16 (the run's: 28)"),
    ]:
        run_cli("train", "--resume", last, "--epochs", "2", "--data", "lab", *flags).assert_one_line_error(
            f"--resume: flags contradict how the run read its folder: {message}"
        )
    clothes(tmp_path / "lab" / "hat", per_class=2)  # a fourth class folder, of images (nested: it is a class)
    run_cli("train", "--resume", last, "--epochs", "2", "--data", "lab").assert_one_line_error(
        "--data lab has 4 classes now; the run was trained on 3"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["train", "--image-size", "40", "--test-fraction", "0.3"],
            "--image-size, --test-fraction read an image folder",
        ),
        (["train", "--resize", "fit"], "--resize reads an image folder: give it with --data DIR"),
        (["eval", "--pretrained", "vae", "--skip-damaged"], "--skip-damaged reads an image folder"),
        (["train", "--data", ""], "--data needs an image folder (DIR)"),
        (["train", "--data", ".", *FLAGS], "--out runs/vae-data-"),
    ],
    ids=["train flags", "resize", "eval flag", "empty --data", "out inside the folder"],
)
def test_folder_flags_go_with_data_and_a_run_never_lands_in_its_folder(
    tmp_path: Path, run_cli: Callable, monkeypatch: pytest.MonkeyPatch, args: list, message: str
) -> None:
    clothes(tmp_path / "data", per_class=3)
    monkeypatch.chdir(tmp_path / "data")  # `--data .`: the default run folder would be inside the folder
    result = run_cli(*args)
    result.assert_one_line_error(message)
    assert not (tmp_path / "data" / "runs").exists()
