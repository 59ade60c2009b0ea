"""The atlas in every checkpoint training writes: encodings, test images, the PCA plane, per-dimension stats."""

import re
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from models import CheckpointError, ModelConfig, load_checkpoint
from models.atlas import FIELDS, OPTIONAL_FIELDS
from models.loss import elbo_loss
from models.registry import build_model
from tests.helpers import TINY_SETTINGS, QuietProgress, write_dataset
from train.atlas import build_atlas, first_of_each_class, principal_plane
from train.data import load_dataset
from train.evaluate import evaluate_model
from train.loop import StopFlag, Trainer, TrainingInterrupted
from vae_tui.commands.explore import pretrained_path


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a CVAE trained for one epoch on the tiny dataset (mnist_dir's), once for the module."""
    root = tmp_path_factory.mktemp("atlas")
    write_dataset(root / "data")
    (root / "run").mkdir()
    data = load_dataset("mnist", data_dir=root / "data")
    settings = replace(TINY_SETTINGS, model="cvae", epochs=1)
    Trainer(settings, data, root / "run", torch.device("cpu"), QuietProgress()).run(StopFlag())
    return root / "run"


@pytest.fixture
def trained(trained_once: Path, tmp_path: Path) -> Path:
    """A copy of trained_once's folder, for the test to change."""
    return Path(shutil.copytree(trained_once, tmp_path / "run"))


@pytest.mark.slow
def test_best_and_last_carry_the_atlas_of_their_weights(trained: Path, mnist_dir: Path) -> None:
    data = load_dataset("mnist", data_dir=mnist_dir)
    x, y = data.test.images.reshape(-1, 784).float() / 255, data.test.labels.long()
    for name in ("best.safetensors", "last.safetensors"):
        checkpoint = load_checkpoint(trained / name)
        atlas = checkpoint.atlas
        assert atlas is not None, name
        # 128 test images, 12 or 13 a class: fewer than 200 (and 50) of each, so every one is kept
        assert atlas.mu.shape == (128, 4) and torch.equal(atlas.indices, torch.arange(128))
        assert torch.equal(atlas.images, data.test.images[atlas.image_indices])
        assert torch.equal(atlas.labels, y[atlas.indices]) and torch.equal(atlas.image_labels, y[atlas.image_indices])
        with torch.no_grad():
            mu = checkpoint.model.encode(x, y)[0]
        torch.testing.assert_close(atlas.mu, mu[atlas.indices], rtol=1e-5, atol=1e-5)
        evaluation = evaluate_model(checkpoint.model, x, y, checkpoint.class_names, samples=1)
        for d, row in enumerate(evaluation.dimensions):  # what `vae-tui eval` prints, to 3 decimals
            assert round(atlas.variance[d].item(), 3) == round(row["variance"], 3)
            assert round(atlas.kl[d].item(), 3) == round(row["kl"], 3)
        torch.testing.assert_close(atlas.pca_axes @ atlas.pca_axes.T, torch.eye(2), rtol=0, atol=1e-5)
        torch.testing.assert_close(atlas.pca_mean, mu.mean(0), rtol=1e-5, atol=1e-5)
        spread = ((mu - atlas.pca_mean) @ atlas.pca_axes.T).var(0)
        assert spread[0] >= spread[1]  # the first axis the direction of most variance


@pytest.mark.slow
def test_an_interrupted_last_carries_the_atlas_of_the_weights_it_holds(
    tmp_path: Path, make_trainer: Callable, mnist_dir: Path
) -> None:
    stop = StopFlag()
    trainer = make_trainer(tmp_path / "run")
    original = trainer.optimizer.step

    def step_then_stop(*args: object, **kwargs: object) -> None:
        original(*args, **kwargs)
        if trainer.epoch == 2:
            stop.signal_name = "SIGINT"

    trainer.optimizer.step = step_then_stop
    with pytest.raises(TrainingInterrupted):
        trainer.run(stop)
    last = load_checkpoint(tmp_path / "run" / "last.safetensors", with_resume=True)
    assert last.resume.progress["step"] == 1
    data = load_dataset("mnist", data_dir=mnist_dir)
    with torch.no_grad():
        mu = last.model.encode(data.test.images.reshape(-1, 784).float() / 255)[0]
    torch.testing.assert_close(last.atlas.mu, mu[last.atlas.indices], rtol=1e-5, atol=1e-5)


def test_the_atlas_keeps_the_first_of_each_class_and_a_stable_plane() -> None:
    labels = torch.tensor([3, 1, 3, 3, 1, 0, 3])
    assert first_of_each_class(labels, 2).tolist() == [0, 1, 2, 4, 5]
    mu = torch.randn(500, 3, generator=torch.Generator().manual_seed(0)) * torch.tensor([5.0, 1.0, 0.1])
    mean, axes = principal_plane(mu)
    assert axes[0, 0].abs() > 0.99 and axes[1, 1].abs() > 0.99  # the widest directions first
    _, flipped = principal_plane(-mu)
    torch.testing.assert_close(flipped, axes)  # signed by their largest entry: the same plane, the same axes
    _, one_d = principal_plane(mu[:, :1])
    assert one_d.shape == (2, 1) and one_d[1, 0] == 0
    images = torch.zeros(500, 28, 28, dtype=torch.uint8)
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="cvae", hidden_dim=8, latent_dim=3))
    x, labels = torch.rand(500, 784), torch.arange(500) % 10
    atlas = build_atlas(mu, torch.ones(3), images, labels, model, x)
    assert len(atlas.mu) == 500 and len(atlas.images) == 500  # 50 a class: all of them
    assert torch.equal(atlas.image_indices, atlas.indices)  # format 3: every point's image
    # each point's loss: the negative ELBO at z = mu, the reconstruction term beside it
    y = labels[atlas.indices[7]].unsqueeze(0)
    point = x[atlas.indices[7]].unsqueeze(0)
    with torch.no_grad():
        mu_point, logvar = model.encode(point, y)
        loss, recon, _ = elbo_loss(model.decode(mu_point, y), point, mu_point, logvar)  # the training objective
    assert atlas.loss.shape == atlas.recon.shape == (500,) and atlas.has_losses
    assert atlas.loss[7].item() == pytest.approx(loss.item(), rel=1e-5)
    assert atlas.recon[7].item() == pytest.approx(recon.item(), rel=1e-5)
    assert atlas.loss_percentile(atlas.loss.max().item()) == 100.0
    assert atlas.loss_percentile(atlas.loss.min().item() - 1) == 0.0


def test_older_checkpoints_without_an_atlas_still_open(tmp_path: Path, rewrite_checkpoint: Callable) -> None:
    old = tmp_path / "old.safetensors"
    old.write_bytes(pretrained_path("vae").read_bytes())

    def drop_atlas(tensors: dict) -> None:
        for name in [n for n in tensors if n.startswith("atlas.")]:
            del tensors[name]

    rewrite_checkpoint(old, edit_tensors=drop_atlas)
    checkpoint, bundled = load_checkpoint(old), load_checkpoint(pretrained_path("vae"))
    assert checkpoint.atlas is None and bundled.atlas is not None
    z = torch.zeros(1, checkpoint.config.latent_dim)
    assert torch.equal(checkpoint.model.decode(z), bundled.model.decode(z))


def nan_mu(tensors: dict) -> None:
    tensors["atlas.mu"][0, 0] = float("nan")


def short_axes(tensors: dict) -> None:
    tensors["atlas.pca_axes"] = tensors["atlas.pca_axes"][:1]


def wide_mu(tensors: dict) -> None:
    tensors["atlas.mu"] = torch.zeros(len(tensors["atlas.mu"]), 5)


def big_images(tensors: dict) -> None:
    tensors["atlas.images"] = torch.zeros(len(tensors["atlas.images"]), 32, 32, dtype=torch.uint8)


def float_images(tensors: dict) -> None:
    tensors["atlas.images"] = tensors["atlas.images"].float()


def label_11(tensors: dict) -> None:
    tensors["atlas.labels"][5] = 11


def negative_index(tensors: dict) -> None:
    tensors["atlas.image_indices"][0] = -1


def no_kl(tensors: dict) -> None:
    del tensors["atlas.kl"]


def extra_field(tensors: dict) -> None:
    tensors["atlas.notes"] = torch.zeros(3)


def negative_variance(tensors: dict) -> None:
    tensors["atlas.variance"][1] = -0.5


def float_labels(tensors: dict) -> None:
    tensors["atlas.labels"] = tensors["atlas.labels"].float()


def kl_1e300(tensors: dict) -> None:
    tensors["atlas.kl"] = tensors["atlas.kl"].double()
    tensors["atlas.kl"][0] = 1e300  # finite as float64, infinite as the float32 it becomes


def variance_1e300(tensors: dict) -> None:
    tensors["atlas.variance"] = tensors["atlas.variance"].double()
    tensors["atlas.variance"][2] = 1e300


def mu_3e38(tensors: dict) -> None:
    tensors["atlas.mu"][7, 1] = -3e38  # finite float32: a cursor move on the map made z NaN


def axes_3e38(tensors: dict) -> None:
    tensors["atlas.pca_axes"][0, 0] = 3e38


def axes_not_unit(tensors: dict) -> None:
    tensors["atlas.pca_axes"][1] = 0.9  # each entry below 1, the vector of length 1.8


def mean_1e5(tensors: dict) -> None:
    tensors["atlas.pca_mean"][0] = 1e5


def kl_negative(tensors: dict) -> None:
    tensors["atlas.kl"][3] = -1.0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (nan_mu, "malformed atlas: mu contains NaN or infinite values"),
        (short_axes, "malformed atlas: pca_axes has shape (1, 4), expected (2, 4)"),
        (wide_mu, "malformed atlas: mu has shape (128, 5), expected (N, 4)"),
        (big_images, "malformed atlas: images have shape (128, 32, 32), expected (M, 1, 28, 28)"),
        (float_images, "malformed atlas: images must be uint8"),
        (label_11, "malformed atlas: labels must lie in 0..9"),
        (negative_index, "malformed atlas: image_indices must lie in 0.."),
        (no_kl, "incomplete atlas: kl missing"),
        (extra_field, "a tensor vae-tui does not write: atlas.notes"),
        (negative_variance, "malformed atlas: variance has values outside 0..1e+08"),
        (float_labels, "malformed atlas: labels must be integers"),
        (kl_1e300, "malformed atlas: kl has values beyond float32's range"),
        (variance_1e300, "malformed atlas: variance has values beyond float32's range"),
        (mu_3e38, "malformed atlas: mu has values outside -10000..10000, which training never writes"),
        (axes_3e38, "malformed atlas: pca_axes has values outside -1.001..1.001"),
        (axes_not_unit, "malformed atlas: pca_axes must be unit vectors"),
        (mean_1e5, "malformed atlas: pca_mean has values outside -10000..10000"),
        (kl_negative, "malformed atlas: kl has values outside -0.001..1e+08"),
    ],
)
def test_a_damaged_atlas_is_refused(
    trained: Path, rewrite_checkpoint: Callable, run_cli: Callable, damage: Callable, message: str
) -> None:
    path = trained / "best.safetensors"
    rewrite_checkpoint(path, edit_tensors=damage)
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_checkpoint(path)
    run_cli("sample", str(path), "-o", str(trained / "x.png")).assert_one_line_error(message)


@pytest.mark.slow
@pytest.mark.parametrize("damage", [kl_1e300, mu_3e38, axes_3e38])
def test_explore_refuses_an_atlas_out_of_range_in_one_line(
    trained: Path, rewrite_checkpoint: Callable, run_cli: Callable, damage: Callable
) -> None:
    """The explorer crashed at its start on kl 1e300 (infinite as float32); mu or pca_axes of 3e38 made z NaN."""
    path = trained / "best.safetensors"
    rewrite_checkpoint(path, edit_tensors=damage)
    run_cli("explore", str(path)).assert_one_line_error("vae-tui explore: error:", "has a malformed atlas")


@pytest.mark.slow
def test_what_training_writes_stays_within_the_bounds(trained: Path, rewrite_checkpoint: Callable) -> None:
    """A dimension at the prior can have a mean KL a rounding below 0; float64 fields that fit float32 load."""
    path = trained / "best.safetensors"

    def rounded_and_float64(tensors: dict) -> None:
        tensors["atlas.kl"][0] = -3e-8
        tensors["atlas.mu"] = tensors["atlas.mu"].double()

    rewrite_checkpoint(path, edit_tensors=rounded_and_float64)
    atlas = load_checkpoint(path).atlas
    assert atlas.kl[0].item() == pytest.approx(-3e-8) and atlas.mu.dtype == torch.float32


@pytest.mark.slow
def test_every_field_is_written(trained: Path) -> None:
    from safetensors import safe_open

    with safe_open(trained / "last.safetensors", "pt") as f:
        stored = {k.removeprefix("atlas.") for k in f.keys() if k.startswith("atlas.")}  # noqa: SIM118
    assert stored == set(FIELDS) | set(OPTIONAL_FIELDS) and TINY_SETTINGS.latent_dim == 4


def test_explore_computes_a_missing_atlas_when_the_dataset_is_here(
    make_checkpoint: Callable, mnist_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from train.atlas import atlas_of
    from vae_tui.commands.explore import add_atlas

    checkpoint = make_checkpoint("cvae")  # dataset "mnist", no atlas
    add_atlas(checkpoint)
    assert checkpoint.atlas is None  # no MNIST installed: the explorer says what is missing
    monkeypatch.setenv("VAE_TUI_DATA", str(mnist_dir))
    add_atlas(checkpoint)
    test = load_dataset("mnist", data_dir=mnist_dir).test
    expected = atlas_of(checkpoint.model, test.images.reshape(-1, 784).float() / 255, test.labels.long(), test.images)
    assert all(torch.equal(getattr(checkpoint.atlas, f), getattr(expected, f)) for f in FIELDS + OPTIONAL_FIELDS)


def test_an_atlas_computed_past_the_bounds_is_dropped_with_a_note(
    make_checkpoint: Callable, mnist_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Weights within the loader's bounds can still encode past what a checkpoint's atlas may hold: the explorer
    opens without a map rather than on numbers it would refuse from a file."""
    from vae_tui.commands.explore import add_atlas

    checkpoint = make_checkpoint("vae")
    with torch.no_grad():
        checkpoint.model.to_mu.bias.fill_(2e4)  # mu of every image past +-1e4
    monkeypatch.setenv("VAE_TUI_DATA", str(mnist_dir))
    add_atlas(checkpoint)
    assert checkpoint.atlas is None
    assert "the atlas computed for this model is unusable (mu has values outside" in capsys.readouterr().err


def test_a_format_2_atlas_loads_without_losses_and_a_half_format_3_one_is_refused(
    tmp_path: Path, rewrite_checkpoint: Callable
) -> None:
    bundled = load_checkpoint(pretrained_path("cvae"))  # written in format 2: kept bit for bit
    assert bundled.atlas is not None and not bundled.atlas.has_losses and bundled.atlas.loss is None
    assert len(bundled.atlas.images) < len(bundled.atlas.mu)  # 500 images for 2,000 points
    path = tmp_path / "half.safetensors"
    path.write_bytes(pretrained_path("cvae").read_bytes())

    def losses_only(tensors: dict) -> None:
        tensors["atlas.loss"] = torch.ones(len(tensors["atlas.mu"]))

    rewrite_checkpoint(path, edit_tensors=losses_only)
    with pytest.raises(CheckpointError, match="incomplete atlas: recon missing"):
        load_checkpoint(path)

    def negative(tensors: dict) -> None:
        tensors["atlas.recon"] = -torch.ones(len(tensors["atlas.mu"]))

    rewrite_checkpoint(path, edit_tensors=negative)
    with pytest.raises(CheckpointError, match="malformed atlas: recon"):
        load_checkpoint(path)
