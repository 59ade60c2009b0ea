"""Schedules: the cosine learning rate, beta and the KL warm-up; the test loss stays the true negative ELBO."""

import json
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from models import ModelConfig, build_model, load_checkpoint
from tests.helpers import TINY_SETTINGS
from train.data import load_dataset
from train.evaluate import evaluate
from train.schedule import kl_weight, learning_rate
from train.steps import EagerStep


def test_kl_weight_ramps_linearly_per_step_to_beta() -> None:
    settings = replace(TINY_SETTINGS, beta=2.0, kl_warmup=2)
    weights = [kl_weight(settings, step, steps_per_epoch=10) for step in (0, 5, 10, 19, 20, 21, 100)]
    assert weights == [0.0, 0.5, 1.0, 1.9, 2.0, 2.0, 2.0]
    assert kl_weight(replace(TINY_SETTINGS, beta=0.25), 0, 10) == 0.25  # no warm-up: beta from the first step
    assert kl_weight(TINY_SETTINGS, 7, 10) == 1.0


def test_cosine_learning_rate_decays_to_zero_over_the_run() -> None:
    settings = replace(TINY_SETTINGS, epochs=4, lr=0.01, lr_schedule="cosine")
    assert learning_rate(settings, 0, 10) == 0.01
    assert learning_rate(settings, 20, 10) == pytest.approx(0.005)
    assert learning_rate(settings, 10, 10) == pytest.approx(0.01 * (1 + math.cos(math.pi / 4)) / 2)
    assert learning_rate(settings, 40, 10) == pytest.approx(0.0, abs=1e-12)
    assert learning_rate(replace(settings, lr_schedule="constant"), 33, 10) == 0.01


def test_the_arch_picks_the_defaults_of_flags_left_out() -> None:
    from train.settings import TrainSettings

    assert (TrainSettings().hidden_dim, TrainSettings().lr_schedule) == (400, "constant")  # the demo's
    conv = TrainSettings(arch="conv")
    assert (conv.hidden_dim, conv.lr_schedule) == (384, "cosine")
    assert TrainSettings(arch="conv", hidden_dim=64, lr_schedule="constant").hidden_dim == 64


def test_the_step_minimizes_reconstruction_plus_weighted_kl_and_sums_the_true_elbo() -> None:
    """With kl_weight w the step's gradient is that of reconstruction + w * KL; loss_sum adds reconstruction + KL."""
    x, y = torch.rand(16, 784, generator=torch.Generator().manual_seed(1)), torch.arange(16) % 10
    results = []
    for weight in (0.25, None):
        torch.manual_seed(0)
        model = build_model(ModelConfig(arch="conv", hidden_dim=32, latent_dim=4))
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
        loss_sum, centroid_sums = torch.zeros(()), torch.zeros(10, 4)
        kl = None if weight is None else torch.tensor(weight)
        torch.manual_seed(5)
        EagerStep(model, optimizer, x, y, loss_sum, centroid_sums, kl)(torch.arange(16))
        results.append((model, loss_sum.item()))
    torch.manual_seed(0)
    manual = build_model(ModelConfig(arch="conv", hidden_dim=32, latent_dim=4))
    torch.manual_seed(5)
    total, reconstruction, kl_term, _ = manual.loss(x, y)
    (reconstruction + 0.25 * kl_term).backward()
    with torch.no_grad():
        for p in manual.parameters():
            p -= 1e-3 * p.grad
    weighted, plain = results
    for a, b in zip(weighted[0].parameters(), manual.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    assert not all(torch.equal(a, b) for a, b in zip(weighted[0].parameters(), plain[0].parameters(), strict=True))
    assert weighted[1] == pytest.approx(total.item()) == pytest.approx(plain[1])


@pytest.mark.slow
def test_metrics_record_the_weight_and_the_test_loss_stays_the_elbo(
    mnist_dir: Path, tmp_path: Path, run_training: Callable
) -> None:
    trainer = run_training(tmp_path / "run", beta=4.0, kl_warmup=2, epochs=2)
    steps = trainer.steps_per_epoch
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [row["kl_weight"] for row in rows] == pytest.approx(
        [4.0 * (steps - 1) / (2 * steps), 4.0 * (2 * steps - 1) / (2 * steps)]
    )
    last = load_checkpoint(tmp_path / "run" / "last.safetensors")
    data = load_dataset("mnist", data_dir=mnist_dir)
    x = data.test.images.reshape(len(data.test.images), -1).float() / 255
    elbo, reconstruction, kl = evaluate(last.model, x, data.test.labels, seed=TINY_SETTINGS.seed + 1)
    assert rows[-1]["test_loss"] == pytest.approx(elbo, rel=1e-6) == pytest.approx(reconstruction + kl, rel=1e-6)
    assert last.training["beta"] == 4.0 and last.training["kl_warmup"] == 2


@pytest.mark.slow
def test_warm_up_changes_training_and_only_training(tmp_path: Path, run_training: Callable) -> None:
    plain = run_training(tmp_path / "plain", epochs=1)
    warmed = run_training(tmp_path / "warmed", epochs=1, kl_warmup=1)
    assert warmed.progress.lines[0].test_kl != plain.progress.lines[0].test_kl
    assert plain.progress.lines[0].kl_weight == 1.0


def test_beta_and_warm_up_flags_are_checked(run_cli: Callable) -> None:
    run_cli("train", "--beta", "-1").assert_one_line_error("--beta must be a number from 0 to 1000")
    run_cli("train", "--beta", "nan").assert_one_line_error("--beta must be a number from 0 to 1000")
    run_cli("train", "--kl-warmup", "-2").assert_one_line_error("--kl-warmup must be 0 or more")


@pytest.mark.slow
def test_the_first_line_names_the_device_and_threads(mnist_dir: Path, tmp_path: Path, run_cli: Callable) -> None:
    result = run_cli(
        "train",
        "--data-dir",
        str(mnist_dir),
        "--dataset",
        "mnist",
        "--epochs",
        "1",
        "--threads",
        "1",
        "--arch",
        "conv",
        "--hidden-dim",
        "16",
        "--latent-dim",
        "2",
        "--out",
        str(tmp_path / "run"),
    )
    assert result.code == 0, result.stderr
    assert "Training VAE (conv) on mnist on cpu (1 thread)" in result.stdout
