"""The training loop on tiny data: it learns, writes every artifact, resumes bit for bit, stops cleanly (disk full)."""

import errno
import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image

from models import UserError, build_model, load_checkpoint
from tests.helpers import TINY_SETTINGS, write_dataset
from train.data import load_dataset
from train.evaluate import evaluate
from train.loop import StopFlag, TrainingDiverged, TrainingInterrupted

pytestmark = pytest.mark.slow  # every test here trains a model


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).model.state_dict()


@pytest.fixture
def few_images(mnist_dir: Path) -> None:
    """mnist_dir rewritten with 128 training images (4 batches of 32 an epoch) and 64 test images: enough to stop
    and resume mid-epoch, where what is checked is that the resumed run is the straight one bit for bit, not that
    the model learns."""
    write_dataset(mnist_dir, n_train=128, n_test=64)


def test_one_epoch_lowers_the_loss_and_writes_every_artifact(
    mnist_dir: Path, tmp_path: Path, run_training: Callable
) -> None:
    data = load_dataset("mnist", data_dir=mnist_dir)
    x = data.test.images.reshape(len(data.test.images), -1).float() / 255
    torch.manual_seed(TINY_SETTINGS.seed)
    untrained = evaluate(build_model(TINY_SETTINGS.model_config(10)), x, data.test.labels, seed=0)[0]
    out = tmp_path / "run"
    trainer = run_training(out, epochs=1)
    result = trainer.progress.lines[0]
    assert result.test_loss < untrained - 50
    names = sorted(p.name for p in out.iterdir())
    assert names == ["best.safetensors", "last.safetensors", "metrics.jsonl", "reconst-1.png", "sample-1.png"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["epoch"] == 1 and rows[0]["test_loss"] == pytest.approx(result.test_loss)
    best = load_checkpoint(out / "best.safetensors")
    assert best.epoch == 1 and best.metrics["test_loss"] == pytest.approx(result.test_loss)
    assert best.training["batch_size"] == 32 and best.class_names[3] == "3"
    assert Image.open(out / "reconst-1.png").size == (2 * (8 * 58 + 2), 2 * (8 * 30 + 2))


def test_centroids_are_class_means_of_mu(mnist_dir: Path, tmp_path: Path, run_training: Callable) -> None:
    run_training(tmp_path / "run", epochs=1)
    best = load_checkpoint(tmp_path / "run" / "best.safetensors")
    data = load_dataset("mnist", data_dir=mnist_dir)
    x = data.train.images.reshape(len(data.train.images), -1).float() / 255
    mu, _ = best.model.encode(x)
    expected = torch.stack([mu[data.train.labels == c].mean(0) for c in range(10)])
    torch.testing.assert_close(best.class_centroids, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["vae", "cvae"])
def test_one_conv_epoch_lowers_the_loss_and_writes_every_artifact(
    mnist_dir: Path, tmp_path: Path, run_training: Callable, kind: str
) -> None:
    data = load_dataset("mnist", data_dir=mnist_dir)
    x = data.test.images.reshape(len(data.test.images), -1).float() / 255
    settings = replace(TINY_SETTINGS, model=kind, arch="conv")
    torch.manual_seed(settings.seed)
    untrained = evaluate(build_model(settings.model_config(10)), x, data.test.labels, seed=0)[0]
    out = tmp_path / "run"
    trainer = run_training(out, model=kind, arch="conv", epochs=1, batch_size=8)  # 64 steps
    result = trainer.progress.lines[0]
    assert result.test_loss < untrained - 50
    assert sorted(p.name for p in out.iterdir()) == [
        "best.safetensors",
        "last.safetensors",
        "metrics.jsonl",
        "reconst-1.png",
        "sample-1.png",
    ]
    best = load_checkpoint(out / "best.safetensors", expect_kind=kind)
    assert best.config.arch == "conv" and best.training["arch"] == "conv"
    assert best.metrics["test_loss"] == pytest.approx(result.test_loss)
    again = evaluate(best.model, x, data.test.labels, seed=TINY_SETTINGS.seed + 1)[0]
    assert again == pytest.approx(result.test_loss, rel=1e-5)  # the loaded conv model is the trained one


def test_cvae_sample_grid_has_a_row_per_class(tmp_path: Path, run_training: Callable) -> None:
    run_training(tmp_path / "run", model="cvae", epochs=1)
    assert Image.open(tmp_path / "run" / "sample-1.png").size == (2 * (8 * 30 + 2), 2 * (10 * 30 + 2))
    assert load_checkpoint(tmp_path / "run" / "best.safetensors", expect_kind="cvae").config.kind == "cvae"


@pytest.mark.usefixtures("few_images")
def test_resume_at_an_epoch_boundary_is_bitwise(tmp_path: Path, run_training: Callable) -> None:
    run_training(tmp_path / "straight")
    run_training(tmp_path / "split", epochs=1)
    run_training(tmp_path / "split", resume_from=tmp_path / "split" / "last.safetensors")
    straight, split = (
        weights(tmp_path / "straight" / "last.safetensors"),
        weights(tmp_path / "split" / "last.safetensors"),
    )
    assert all(torch.equal(straight[k], split[k]) for k in straight)
    rows = (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2]


RESUMED_RECIPES = {
    "vae": {"model": "vae"},
    "cvae": {"model": "cvae"},
    "conv vae, cosine, warm-up": {"model": "vae", "arch": "conv", "lr_schedule": "cosine", "kl_warmup": 1},
    "conv cvae, beta": {"model": "cvae", "arch": "conv", "lr_schedule": "cosine", "beta": 0.5},
}


@pytest.mark.usefixtures("few_images")
@pytest.mark.parametrize("recipe", RESUMED_RECIPES)
def test_resume_mid_epoch_is_bitwise(
    tmp_path: Path, make_trainer: Callable, run_training: Callable, recipe: str
) -> None:
    changes = RESUMED_RECIPES[recipe]
    run_training(tmp_path / "straight", **changes)
    stop = StopFlag()
    trainer = make_trainer(tmp_path / "split", **changes)
    steps_seen = []
    original = trainer.optimizer.step

    def step_then_maybe_stop(*args: object, **kwargs: object) -> None:
        original(*args, **kwargs)
        steps_seen.append(1)
        if trainer.epoch == 2 and len(steps_seen) == trainer.steps_per_epoch + 3:
            stop.signal_name = "SIGINT"

    trainer.optimizer.step = step_then_maybe_stop
    with pytest.raises(TrainingInterrupted):
        trainer.run(stop)
    assert trainer.steps_per_epoch == 4  # few_images: the stop falls mid-epoch
    state = load_checkpoint(tmp_path / "split" / "last.safetensors", with_resume=True).resume.progress
    assert (state["epoch"], state["step"]) == (2, 3)
    run_training(tmp_path / "split", resume_from=tmp_path / "split" / "last.safetensors", **changes)
    straight, split = (
        weights(tmp_path / "straight" / "last.safetensors"),
        weights(tmp_path / "split" / "last.safetensors"),
    )
    assert all(torch.equal(straight[k], split[k]) for k in straight)
    a = json.loads((tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()[-1])
    b = json.loads((tmp_path / "split" / "metrics.jsonl").read_text().splitlines()[-1])
    assert (a["train_loss"], a["test_loss"]) == (b["train_loss"], b["test_loss"])


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path, run_training: Callable) -> None:
    trainer = run_training(tmp_path / "run", epochs=1)
    last = tmp_path / "run" / "last.safetensors"
    before = last.read_bytes()
    trainer.settings = TINY_SETTINGS  # two epochs: the second starts from NaN weights
    with torch.no_grad():
        trainer.model.to_logits.bias.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match=r"epoch 2.*still holds epoch 1"):
        trainer.run(StopFlag())
    assert last.read_bytes() == before


def test_disk_full_while_writing(tmp_path: Path, run_training: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    trainer = run_training(out, epochs=1)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    trainer.settings = replace(trainer.settings, epochs=2)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(UserError, match=r"could not write .*: No space left on device; training stopped"):
        trainer.run(StopFlag())
    after = {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".")}
    assert {k: v for k, v in before.items() if k in after} == after  # what existed is unchanged
    assert "last.safetensors" in after and load_checkpoint(out / "last.safetensors").epoch == 1
