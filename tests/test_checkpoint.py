"""Checkpoint format: round trip, resume state, and every way a file can be bad."""

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import safetensors.torch
import torch

from models import CheckpointError, ModelConfig, build_model, load_checkpoint, save_checkpoint
from models.checkpoint import FORMAT_VERSION
from tests.conftest import RESUME_PROGRESS, TINY, needs_cuda


@pytest.fixture
def saved(tmp_path: Path, make_checkpoint: Callable) -> Path:
    return save_checkpoint(tmp_path / "model.safetensors", make_checkpoint())


@pytest.mark.parametrize("kind", ["vae", "cvae"])
def test_round_trip(tmp_path: Path, make_checkpoint: Callable, kind: str) -> None:
    original = make_checkpoint(kind)
    loaded = load_checkpoint(save_checkpoint(tmp_path / "c.safetensors", original), expect_kind=kind)
    for (name, a), (_, b) in zip(original.model.state_dict().items(), loaded.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert torch.equal(loaded.class_centroids, original.class_centroids)
    assert (loaded.dataset, loaded.class_names, loaded.epoch) == ("mnist", original.class_names, 1)
    assert loaded.metrics == {"test_loss": 123.5} and loaded.training["batch_size"] == 64
    assert loaded.config == original.config and loaded.resume is None


def test_resume_state_round_trip(tmp_path: Path, make_checkpoint: Callable) -> None:
    original = make_checkpoint(resume=True)
    loaded = load_checkpoint(save_checkpoint(tmp_path / "last.safetensors", original), with_resume=True)
    assert loaded.resume.progress == RESUME_PROGRESS
    assert torch.equal(loaded.resume.tensors["rng_now.cpu"], original.resume.tensors["rng_now.cpu"])
    want, got = original.resume.optimizer, loaded.resume.optimizer
    assert got["param_groups"] == want["param_groups"]
    for index, state in want["state"].items():
        for key, value in state.items():
            assert torch.equal(got["state"][index][key], value), (index, key)
    optimizer = torch.optim.Adam(loaded.model.parameters(), lr=1e-3)
    optimizer.load_state_dict(got)


def test_weights_only_checkpoint_cannot_resume(saved: Path) -> None:
    with pytest.raises(CheckpointError, match="no training state"):
        load_checkpoint(saved, with_resume=True)


def test_write_is_atomic(saved: Path, make_checkpoint: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    before = saved.read_bytes()

    def disk_full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError):
        save_checkpoint(saved, make_checkpoint("cvae"))
    assert saved.read_bytes() == before
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]  # no temp file left behind


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("keep", [0, 5, 8, 100, 1000, -1000, -1])
def test_truncated(saved: Path, keep: int) -> None:
    saved.write_bytes(saved.read_bytes()[:keep])
    with pytest.raises(CheckpointError, match="empty|truncated"):
        load_checkpoint(saved)


def test_random_bytes(saved: Path) -> None:
    saved.write_bytes(
        torch.randint(0, 256, (5000,), generator=torch.Generator().manual_seed(0), dtype=torch.uint8).numpy().tobytes()
    )
    with pytest.raises(CheckpointError):
        load_checkpoint(saved)


def test_flipped_weight_byte_is_caught(saved: Path) -> None:
    blob = bytearray(saved.read_bytes())
    blob[-100] ^= 0xFF
    saved.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(saved)


def test_foreign_safetensors_file(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    safetensors.torch.save_file({"weight": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="not a vae-tui checkpoint"):
        load_checkpoint(path)


def test_pickle_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.safetensors"
    torch.save({"model": Exploit()}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()


def test_newer_format_version(saved: Path, rewrite_checkpoint: Callable) -> None:
    rewrite_checkpoint(saved, edit_info=lambda info: info.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(CheckpointError, match="newer than this vae-tui reads"):
        load_checkpoint(saved)


def test_a_version_1_checkpoint_without_an_arch_loads_as_the_mlp(saved: Path, rewrite_checkpoint: Callable) -> None:
    """What vae-tui wrote before the conv arch: format 1, no arch in the model config, no arch in the settings."""

    def as_version_1(info: dict) -> None:
        info.update(format_version=1)
        del info["model"]["arch"]

    before = load_checkpoint(saved)
    rewrite_checkpoint(saved, edit_info=as_version_1)
    old = load_checkpoint(saved)
    assert old.config.arch == "mlp" and old.config == before.config
    for a, b in zip(old.model.state_dict().values(), before.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_conv_checkpoint_round_trips_and_needs_the_new_format(tmp_path: Path, make_checkpoint: Callable) -> None:
    checkpoint = make_checkpoint()
    torch.manual_seed(0)
    checkpoint.model = build_model(ModelConfig(kind="vae", arch="conv", hidden_dim=16, latent_dim=4))
    path = save_checkpoint(tmp_path / "conv.safetensors", checkpoint)
    loaded = load_checkpoint(path)
    assert loaded.config.arch == "conv" and FORMAT_VERSION >= 2  # conv came with format 2
    for a, b in zip(loaded.model.state_dict().values(), checkpoint.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    x = torch.rand(3, 784)
    torch.testing.assert_close(
        loaded.model.decode(loaded.model.encode(x)[0]), checkpoint.model.decode(checkpoint.model.encode(x)[0])
    )


def test_an_unknown_arch_asks_for_an_upgrade(saved: Path, rewrite_checkpoint: Callable) -> None:
    rewrite_checkpoint(saved, edit_info=lambda info: info["model"].update(arch="transformer"))
    with pytest.raises(CheckpointError, match="arch 'transformer', unknown to this vae-tui: upgrade it"):
        load_checkpoint(saved)


def test_wrong_kind(saved: Path) -> None:
    with pytest.raises(CheckpointError, match="holds a VAE, but a CVAE was expected"):
        load_checkpoint(saved, expect_kind="cvae")


def test_nan_weights(saved: Path, rewrite_checkpoint: Callable) -> None:
    rewrite_checkpoint(saved, edit_tensors=lambda t: t["model.to_mu.weight"].__setitem__((0, 0), float("nan")))
    with pytest.raises(CheckpointError, match="NaN"):
        load_checkpoint(saved)


def float64_weight_1e300(tensors: dict) -> None:
    tensors["model.to_logits.bias"] = tensors["model.to_logits.bias"].double()
    tensors["model.to_logits.bias"][0] = 1e300  # finite as float64, infinite as the float32 it is loaded as


def weight_3e38(tensors: dict) -> None:
    tensors["model.decoder_hidden.weight"][0, 0] = 3e38  # finite float32: encoding a test image gave z = NaN


def centroid_3e38(tensors: dict) -> None:
    tensors["class_centroids"][2, 1] = -3e38  # the VAE starts at its class's centroid


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (float64_weight_1e300, "to_logits.bias has values beyond float32's range"),
        (weight_3e38, "decoder_hidden.weight has values outside -10000..10000, which training never writes"),
        (centroid_3e38, "class_centroids has values outside -10000..10000"),
    ],
)
def test_numbers_are_checked_as_float32_and_bounded(
    saved: Path, rewrite_checkpoint: Callable, run_cli: Callable, damage: Callable, message: str
) -> None:
    rewrite_checkpoint(saved, edit_tensors=damage)
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_checkpoint(saved)
    run_cli("explore", str(saved)).assert_one_line_error("vae-tui explore: error:", message)


def test_resume_sums_are_checked_as_the_float32_they_are_added_to(
    tmp_path: Path, make_checkpoint: Callable, rewrite_checkpoint: Callable
) -> None:
    path = save_checkpoint(tmp_path / "last.safetensors", make_checkpoint(resume=True))
    rewrite_checkpoint(
        path, edit_tensors=lambda t: t.update({"resume.loss_sum": torch.tensor(1e300, dtype=torch.float64)})
    )
    load_checkpoint(path)  # the weights alone do not need them
    with pytest.raises(CheckpointError, match="'resume.loss_sum' has values beyond float32's range"):
        load_checkpoint(path, with_resume=True)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_weights_at_the_bound_still_encode_and_decode_finite_numbers(arch: str) -> None:
    """models/bounds.py's MAX_WEIGHT: every weight and bias at +-1e4, the activations stay inside float32."""
    from models.bounds import MAX_WEIGHT

    model = build_model(ModelConfig(kind="cvae", arch=arch, hidden_dim=64, latent_dim=8))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(MAX_WEIGHT)  # all positive: no cancellation, each layer as large as it gets
        mu, logvar = model.encode(torch.ones(2, 784), torch.tensor([0, 9]))
        logits = model.decode(torch.full((2, 8), 10.0), torch.tensor([0, 9]))
    assert torch.isfinite(mu).all() and torch.isfinite(logvar).all() and torch.isfinite(logits).all()
    assert mu.min() > 1e9 and logits.min() > 1e9  # large, as a model at the bound is, and finite


def test_sizes_disagree_with_weights(saved: Path, rewrite_checkpoint: Callable) -> None:
    rewrite_checkpoint(saved, edit_info=lambda info: info["model"].update(hidden_dim=TINY.hidden_dim + 1))
    with pytest.raises(CheckpointError, match="has shape"):
        load_checkpoint(saved)


def test_missing_weight(saved: Path, rewrite_checkpoint: Callable) -> None:
    rewrite_checkpoint(saved, edit_tensors=lambda t: t.pop("model.to_logits.bias"))
    with pytest.raises(CheckpointError, match="missing the tensor to_logits.bias"):
        load_checkpoint(saved)


@pytest.mark.parametrize(
    "edit",
    [
        lambda info: info.pop("model"),
        lambda info: info["model"].update(kind="gan"),
        lambda info: info["model"].update(latent_dim=-1),
        lambda info: info.update(class_names=["only one"]),
        lambda info: info.update(epoch="one"),
        lambda info: info.update(format_version="1"),
    ],
)
def test_malformed_metadata(saved: Path, rewrite_checkpoint: Callable, edit: Callable) -> None:
    rewrite_checkpoint(saved, edit_info=edit)
    with pytest.raises(CheckpointError, match="malformed metadata"):
        load_checkpoint(saved)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", id="gpu", marks=needs_cuda)])
def test_checkpoint_saved_on_a_device_opens_on_cpu(tmp_path: Path, make_checkpoint: Callable, device: str) -> None:
    """The [cpu] case runs the same code as the [gpu] one, so a change that breaks it shows without a GPU."""
    checkpoint = make_checkpoint()
    expected = {name: tensor.clone() for name, tensor in checkpoint.model.state_dict().items()}
    checkpoint.model.to(device)
    checkpoint.class_centroids = checkpoint.class_centroids.to(device)
    loaded = load_checkpoint(save_checkpoint(tmp_path / f"{device}.safetensors", checkpoint))
    assert loaded.model.to_mu.weight.device.type == "cpu" and loaded.class_centroids.device.type == "cpu"
    for name, tensor in loaded.model.state_dict().items():
        assert torch.equal(tensor, expected[name]), name


def test_float16_weights_load_as_float32_within_a_grey_level(tmp_path: Path, make_checkpoint: Callable) -> None:
    """What train/bundle.py writes for the bundled conv models: half the bytes, the same images to 1/255."""
    from train.atlas import build_atlas
    from train.bundle import GREY_LEVEL, bundle

    checkpoint = make_checkpoint("cvae")
    images = torch.zeros(30, 28, 28, dtype=torch.uint8)
    checkpoint.atlas = build_atlas(torch.randn(30, 4), torch.ones(4), images, torch.arange(30) % 10)
    source = save_checkpoint(tmp_path / "fp32.safetensors", checkpoint)
    difference = bundle(source, tmp_path / "fp16.safetensors")
    copy = load_checkpoint(tmp_path / "fp16.safetensors")
    assert 0 < difference <= GREY_LEVEL and next(copy.model.parameters()).dtype == torch.float32
    weights = sum(t.numel() for t in checkpoint.model.state_dict().values())
    saved = source.stat().st_size - (tmp_path / "fp16.safetensors").stat().st_size
    assert saved == pytest.approx(2 * weights, abs=64) and copy.atlas is not None
    assert not list(tmp_path.glob(".*"))
