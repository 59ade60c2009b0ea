"""Checkpoints: the round trip, the resume state, and every way a file can be bad, refused with a typed error and
one line: truncated, foreign or damaged files, hostile names and metadata, integers of thousands of digits, sizes
that misfit the header or vae-tui's data, a writer killed mid-write, and fuzzing (any bytes, mutations, fields and
tensors replaced).

None of these checks may be an `assert`: `python -O` strips those, and the bad value then travels on into an
AttributeError or a shape error far from its cause. .ci/run runs this file under `python -O` as well (pytest
rewrites the asserts of test modules and helpers into plain `if`s, so the tests themselves still check under -O)."""

import contextlib
import hashlib
import json
import math
import os
import re
import resource
import signal
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import NamedTuple

import pytest
import safetensors.torch
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors import safe_open

from models import (
    Checkpoint,
    CheckpointError,
    ModelConfig,
    ResumeState,
    UserError,
    build_model,
    load_checkpoint,
    save_checkpoint,
)
from models.checkpoint import FORMAT_VERSION, MAX_HEADER_BYTES, METADATA_KEY, _data_offset
from models.points import listen, listen_as_the_environment_says
from models.text import PLACEHOLDER, mostly_control, printable
from tests.helpers import (
    CONTROL_BYTES,
    EDITS,
    FUZZ,
    HEADER_EDITS,
    HOSTILE_NAMES,
    HUGE,
    HUGE_INTEGER,
    RESUME_PROGRESS,
    SMALL,
    TINY,
    VALUES,
    edited,
    hostile_checkpoint,
    huge_offset_in_header,
    mutate,
    needs_cuda,
    resign,
    signed,
    tiny_cvae,
    untrained_checkpoint,
)
from train.atlas import build_atlas
from train.output import OutputLock
from train.settings import TrainSettings
from vae_tui.decoding import Decoder, image_shape


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


# --- names in the metadata: shown literally, never obeyed -----------------------------------------


def test_printable_shows_control_characters() -> None:
    assert printable("\x1b[2Jx\x07\x9b\x7f\u2028\ud800") == f"{PLACEHOLDER}[2Jx{PLACEHOLDER * 5}"
    assert printable("T-shirt/top [/] é 日本") == "T-shirt/top [/] é 日本"
    assert mostly_control("\x1b\x1b\x1bab") and not mostly_control("\x1b[2J") and not mostly_control("")


def test_control_characters_in_names_are_replaced_on_load(tmp_path: Path) -> None:
    path = hostile_checkpoint(tmp_path / "c.safetensors", dataset="mnist\x1b[2J")
    checkpoint = load_checkpoint(path)
    assert checkpoint.class_names[:2] == ["[/]", "[link=http://x]a[/link]"]  # markup is kept, as text
    assert checkpoint.class_names[2] == f"{PLACEHOLDER}]2;pwned{PLACEHOLDER}"
    assert checkpoint.dataset == f"mnist{PLACEHOLDER}[2J"
    assert not any(c in name for name in checkpoint.class_names for c in CONTROL_BYTES)


@pytest.mark.parametrize("field", ["class_names", "dataset"])
def test_names_made_of_control_characters_are_refused(tmp_path: Path, field: str) -> None:
    attack = "\x1b\x1b\x07\x1b\x9b"
    names = [attack, *HOSTILE_NAMES[1:]] if field == "class_names" else HOSTILE_NAMES
    path = hostile_checkpoint(
        tmp_path / "c.safetensors", class_names=names, dataset=attack if field == "dataset" else "mnist"
    )
    with pytest.raises(CheckpointError, match="is mostly control characters") as caught:
        load_checkpoint(path)
    assert not any(c in str(caught.value) for c in CONTROL_BYTES)


# --- metadata: standard JSON, bounded sizes, integers of thousands of digits ----------------------


def test_an_infinite_best_test_loss_is_written_as_standard_json(tmp_path: Path) -> None:
    checkpoint = load_checkpoint(hostile_checkpoint(tmp_path / "c.safetensors", kind="vae"))
    optimizer = torch.optim.Adam(checkpoint.model.parameters())
    progress = {"epoch": 1, "step": 0, "best_epoch": 0, "best_test_loss": math.inf}  # stopped before any epoch ended
    checkpoint.resume = ResumeState(optimizer.state_dict(), {}, progress)
    checkpoint.metrics = {"test_loss": math.nan}
    path = save_checkpoint(tmp_path / "last.safetensors", checkpoint)
    with safe_open(path, "pt") as f:
        raw = f.metadata()[METADATA_KEY]

    def refuse(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant}")

    info = json.loads(raw, parse_constant=refuse)
    assert info["resume"]["best_test_loss"] is None and info["metrics"]["test_loss"] is None
    assert load_checkpoint(path, with_resume=True).resume.progress["best_test_loss"] == math.inf


@pytest.mark.parametrize("metadata", [[1, 2], "text", 3, None])
def test_metadata_that_is_not_an_object(tmp_path: Path, metadata: object, run_cli: Callable) -> None:
    path = tmp_path / "odd.safetensors"
    path.write_bytes(safetensors.torch.save({"x": torch.zeros(1)}, metadata={METADATA_KEY: json.dumps(metadata)}))
    with pytest.raises(CheckpointError, match="has corrupted metadata"):
        load_checkpoint(path)
    result = run_cli("sample", str(path), "-o", str(tmp_path / "out.png"))
    assert result.code == 1 and result.stderr == f"vae-tui sample: error: {path} has corrupted metadata\n"


def test_oversized_metadata(tmp_path: Path) -> None:
    path = tmp_path / "big.safetensors"
    metadata = {METADATA_KEY: json.dumps({"format_version": 1, "padding": "x" * (MAX_HEADER_BYTES + 10)})}
    safetensors.torch.save_file({"w": torch.zeros(1)}, path, metadata=metadata)
    with pytest.raises(CheckpointError, match="larger than any vae-tui checkpoint"):
        load_checkpoint(path)


def test_huge_sizes_in_metadata_are_refused_without_allocating(
    tmp_path: Path, make_checkpoint: Callable, rewrite_checkpoint: Callable
) -> None:
    """How fast the refusal is: bench/checkpoint_load.py."""
    path = save_checkpoint(tmp_path / "c.safetensors", make_checkpoint())
    rewrite_checkpoint(path, edit_info=lambda info: info["model"].update(hidden_dim=60000, input_dim=60000))
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError, match="has shape"):
        load_checkpoint(path)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before  # KiB on Linux
    assert grown < 1 << 20  # building the model first would initialise 60000 x 60000 floats: 14 GB


def test_cvae_where_a_vae_is_expected(tmp_path: Path, make_checkpoint: Callable) -> None:
    path = save_checkpoint(tmp_path / "c.safetensors", make_checkpoint("cvae"))
    with pytest.raises(CheckpointError, match="holds a CVAE, but a VAE was expected"):
        load_checkpoint(path, expect_kind="vae")


def test_malformed_resume_state(tmp_path: Path, make_checkpoint: Callable, rewrite_checkpoint: Callable) -> None:
    path = save_checkpoint(tmp_path / "last.safetensors", make_checkpoint(resume=True))
    rewrite_checkpoint(path, edit_info=lambda info: info["resume"].pop("best_epoch"))
    with pytest.raises(CheckpointError, match="malformed resume metadata"):
        load_checkpoint(path, with_resume=True)


@pytest.mark.slow
@pytest.mark.parametrize("where", ["header", "metadata", "training", "resume"])
def test_integers_of_thousands_of_digits_are_refused(last: Path, where: str) -> None:
    if where == "header":
        huge_offset_in_header(last)
    else:
        edits = {"metadata": lambda i: i.update(epoch="RAW"), "training": lambda i: i["training"].update(seed="RAW")}
        resign(last, edits.get(where, lambda i: i["resume"].update(step="RAW")), raw=HUGE)
    part = "header" if where == "header" else "metadata"
    with pytest.raises(CheckpointError, match=f"has an integer of 5000 digits in its {part}"):
        load_checkpoint(last, with_resume=True)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["sample", "eval", "train", "explore"])
def test_integers_of_thousands_of_digits_through_every_command(
    last: Path, one_epoch: tuple[Path, Path], command: str, run_cli: Callable
) -> None:
    resign(last, lambda info: info["model"].update(hidden_dim="RAW"), raw=HUGE)
    args = {
        "sample": ["sample", str(last), "-o", str(last.with_suffix(".png"))],
        "eval": ["eval", str(last), "--data-dir", str(one_epoch[0])],
        "train": ["train", "--resume", str(last), "--epochs", "2", "--data-dir", str(one_epoch[0])],
        "explore": ["explore", str(last)],
    }[command]
    run_cli(*args).assert_one_line_error(f"vae-tui {command}: error: {last} has an integer of 5000 digits")


# --- the file's length against its header, before any data is read --------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("change, message", [(1000, "has 1000 bytes after the"), (-1, "is truncated: its header")])
def test_a_length_other_than_the_header_announces_is_refused(last: Path, change: int, message: str) -> None:
    blob = last.read_bytes()
    last.write_bytes(blob + bytes(change) if change > 0 else blob[:change])
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(last)


@pytest.mark.slow
@pytest.mark.parametrize("content", ["zeros", "padded"])
def test_a_sparse_2_gb_file_is_refused_from_its_header(last: Path, content: str) -> None:
    """A 2 GB all-zero file, and a valid checkpoint padded to 2 GB: both sparse, so they cost no disk."""
    if content == "zeros":
        last.write_bytes(b"")
    size = last.stat().st_size
    os.truncate(last, 2 << 30)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    message = "not a vae-tui checkpoint" if content == "zeros" else f"has {(2 << 30) - size} bytes after the {size}"
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(last, with_resume=True)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 256 << 10  # KiB: nothing was read


@pytest.mark.slow
@pytest.mark.parametrize(
    "tensors, message",
    [
        ({"junk": torch.zeros(3)}, "has a tensor vae-tui does not write: 'junk'"),
        ({"resume.sums": torch.zeros(300, 300)}, "a resume tensor larger than any vae-tui writes"),
        ({"optimizer.0.exp_avg": torch.zeros(5, 5)}, "'optimizer.0.exp_avg' has shape (5, 5)"),
    ],
    ids=["foreign", "resume-too-large", "optimizer-shape"],
)
def test_tensors_the_header_announces_must_be_vae_tuis(
    last: Path, rewrite_checkpoint: Callable, tensors: dict, message: str
) -> None:
    rewrite_checkpoint(last, edit_tensors=lambda t: t.update(tensors))
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_checkpoint(last)


# --- model sizes against vae-tui's images and data ------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("input_dim", [100, 99])
@pytest.mark.parametrize("command", ["load", "eval", "sample", "explore"])
def test_images_of_another_size_are_refused(
    tmp_path: Path, one_epoch: tuple[Path, Path], run_cli: Callable, input_dim: int, command: str
) -> None:
    path = tiny_cvae(tmp_path / "c.safetensors", input_dim=input_dim)
    message = f"the model's images have {input_dim} pixels, not the 1x28x28 = 784 its config names ({path})"
    if command == "load":
        with pytest.raises(CheckpointError, match=re.escape(message)):
            load_checkpoint(path)
        return
    extra = {"eval": ["--data-dir", str(one_epoch[0])], "sample": ["-o", str(tmp_path / "x.png")], "explore": []}
    run_cli(command, str(path), *extra[command]).assert_one_line_error(message)


@pytest.mark.parametrize("command", ["sample", "explore"])
def test_images_that_are_not_square(tmp_path: Path, command: str, run_cli: Callable) -> None:
    assert image_shape(784) == (28, 28)
    config = ModelConfig(input_dim=785, **SMALL)
    with pytest.raises(UserError, match="785 pixels, not a square number"):
        Decoder(build_model(config))
    path = save_checkpoint(tmp_path / "wide.safetensors", untrained_checkpoint(config))
    extra = ["-o", str(tmp_path / "out.png")] if command == "sample" else ["--exports", str(tmp_path)]
    result = run_cli(command, str(path), *extra)  # explore stops before the app takes the terminal
    assert result.code == 1
    result.assert_one_line_error(f"vae-tui {command}: error: the model's images have 785 pixels")


@pytest.mark.slow
@pytest.mark.parametrize("command", ["eval", "sample", "explore", "train"])
def test_a_model_of_another_class_count_is_refused(
    tmp_path: Path,
    last: Path,
    one_epoch: tuple[Path, Path],
    rewrite_checkpoint: Callable,
    run_cli: Callable,
    command: str,
) -> None:
    if command == "train":  # the trained VAE, told it has 3 classes: the weights of a VAE do not depend on them
        path = last

        def three_classes(info: dict) -> None:
            info["model"]["num_classes"], info["class_names"] = 3, info["class_names"][:3]

        def three_centroids_no_atlas(tensors: dict) -> None:  # the atlas' labels would name classes 3 to 9
            tensors.update(class_centroids=tensors["class_centroids"][:3])
            for name in [name for name in tensors if name.startswith("atlas.")]:
                del tensors[name]

        rewrite_checkpoint(path, three_classes, three_centroids_no_atlas)
        args = ["train", "--resume", str(path), "--epochs", "2", "--data-dir", str(one_epoch[0])]
    else:
        path = tiny_cvae(tmp_path / "c.safetensors", num_classes=3)
        extra = {"eval": ["--data-dir", str(one_epoch[0])], "sample": ["-o", str(tmp_path / "x.png")], "explore": []}
        args = [command, str(path), *extra[command]]
    assert load_checkpoint(path).config.num_classes == 3  # a file consistent in itself
    run_cli(*args).assert_one_line_error(f"{path} holds a model of 3 classes, but mnist has 10")


# --- a writer killed while it writes --------------------------------------------------------------


def write_until_killed(path: Path, delay: float | None) -> str:
    """Fork a writer that rewrites path over and over, and SIGKILL it delay seconds after it starts; None: it kills
    itself just before its first rename (the temp file whole and synced). Returns how the writer ended."""
    ready, told = os.pipe()
    pid = os.fork()
    if pid == 0:  # the writer: never returns
        try:
            os.close(ready)
            listen_as_the_environment_says()  # no listener of this process's tests
            if delay is None:
                listen(lambda label: label == "written last.safetensors" and os.kill(os.getpid(), signal.SIGKILL))
            checkpoint = load_checkpoint(path, with_resume=True)
            os.write(told, b"ready")
            while True:
                checkpoint.epoch += 1
                save_checkpoint(path, checkpoint)
        finally:
            os._exit(1)
    os.close(told)
    assert os.read(ready, 5) == b"ready"
    os.close(ready)
    if delay is not None:
        time.sleep(delay)  # deliberate: a kill at an arbitrary moment of the write loop is what is tested
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return f"killed by {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else "nothing"


@pytest.mark.slow
def test_sigkill_while_writing_leaves_a_loadable_checkpoint(tmp_path: Path, make_checkpoint: Callable) -> None:
    delays = (0.05, 0.13, 0.31, 0.57, None)
    folders = [tmp_path / f"kill-{i}" for i in range(len(delays))]
    for folder, delay in zip(folders, delays, strict=True):
        folder.mkdir()
        save_checkpoint(folder / "last.safetensors", make_checkpoint(resume=True))
        assert write_until_killed(folder / "last.safetensors", delay) == f"killed by {int(signal.SIGKILL)}"
        assert load_checkpoint(folder / "last.safetensors", with_resume=True).config.hidden_dim == 32
    leftovers = [p.name for p in folders[-1].iterdir() if p.name != "last.safetensors"]
    assert len(leftovers) == 1 and re.fullmatch(r"\.last\.safetensors\..*\.tmp", leftovers[0]), leftovers
    assert load_checkpoint(folders[-1] / "last.safetensors", with_resume=True).epoch == 1  # the old one, whole
    for folder in folders:
        OutputLock(folder).release()  # a new training removes the temp files a killed writer left
        assert sorted(p.name for p in folder.iterdir()) == [".lock", "last.safetensors"]


# --- fuzzing: any bytes, mutations, fields and tensors replaced: only our own errors come out -----


def load_only_our_errors(path: Path, blob: bytes) -> None:
    """Load blob as a checkpoint, weights only and to resume; what loads must also resume and train a step."""
    path.write_bytes(blob)
    for with_resume in (False, True):
        with contextlib.suppress(UserError):
            checkpoint = load_checkpoint(path, with_resume=with_resume)
            if with_resume:
                resume_one_step(checkpoint)


def resume_one_step(checkpoint: Checkpoint) -> None:
    """What `train --resume` does with a checkpoint before its first batch, then one Adam step as the Trainer takes it
    (fused, on the CPU); raises only UserError for what it refuses."""
    training = TrainSettings.from_checkpoint(checkpoint)
    model = build_model(training.model_config(num_classes=10))
    model.load_state_dict(checkpoint.model.state_dict())
    optimizer = torch.optim.Adam(model.parameters(), lr=training.lr, fused=True)
    try:  # as Trainer._restore: a state of another shape is refused there in one line
        optimizer.load_state_dict(checkpoint.resume.optimizer)
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise CheckpointError(str(e)) from None
    for group in optimizer.param_groups:
        group.update({"fused": True, "foreach": None, "capturable": False})
    for name, state in checkpoint.resume.tensors.items():
        if name.startswith("rng") and name.endswith(".cpu"):
            torch.Generator().set_state(state)
    model.loss(torch.rand(4, 784), torch.arange(4))[0].backward()
    optimizer.step()


@pytest.mark.fuzz
@FUZZ
@given(blob=st.binary(max_size=4096))
def test_checkpoint_random_bytes(tmp_path: Path, blob: bytes) -> None:
    load_only_our_errors(tmp_path / "random.safetensors", blob)


@pytest.mark.fuzz
@FUZZ
@given(edits=EDITS, cut=st.none() | st.integers(0, 1 << 24))
def test_checkpoint_mutations(tmp_path: Path, valid_checkpoint: bytes, edits: list, cut: int | None) -> None:
    load_only_our_errors(tmp_path / "mutated.safetensors", mutate(valid_checkpoint, edits, cut))


@pytest.mark.fuzz
@FUZZ
@given(edits=HEADER_EDITS)
def test_checkpoint_header_mutations(tmp_path: Path, valid_checkpoint: bytes, edits: list) -> None:
    """Printable edits inside the JSON header: the weights' checksum still matches, the metadata does not."""
    load_only_our_errors(
        tmp_path / "header.safetensors", mutate(valid_checkpoint, [(8 + p, k, v) for p, k, v in edits], None)
    )


FIELDS = [
    ("format_version",), ("model",), ("model", "kind"), ("model", "input_dim"), ("model", "hidden_dim"),
    ("model", "latent_dim"), ("model", "num_classes"), ("dataset",), ("class_names",), ("class_names", 0),
    ("class_names", 9), ("epoch",), ("metrics",), ("metrics", "test_loss"), ("training",),
    *[("training", f.name) for f in fields(TrainSettings)], ("package_version",), ("created",), ("optimizer",),
    ("optimizer", "param_groups"), ("optimizer", "param_groups", 0), ("optimizer", "scalars"),
    ("optimizer", "scalars", "0"), ("optimizer", "scalars", "0", "step"),
    *[("optimizer", "param_groups", 0, key) for key in ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize")],
    *[("optimizer", "param_groups", 0, key) for key in ("foreach", "fused", "capturable", "params", "extra")],
    ("resume",), ("resume", "epoch"), ("resume", "step"), ("resume", "best_epoch"), ("resume", "best_test_loss"),
]  # fmt: skip

EDIT = st.tuples(st.sampled_from(FIELDS), st.booleans(), VALUES)  # (field, delete it?, else its new value)


class Parts(NamedTuple):
    """A checkpoint's tensors and metadata, to edit and sign again; shown short in hypothesis' reports."""

    tensors: dict[str, torch.Tensor]
    info: dict

    def __repr__(self) -> str:
        return "<the valid checkpoint's tensors and metadata>"


@pytest.fixture(scope="module")
def valid_parts(valid_checkpoint: bytes) -> Parts:
    """The valid checkpoint's tensors and metadata."""
    header = json.loads(valid_checkpoint[8 : _data_offset(valid_checkpoint)])
    return Parts(safetensors.torch.load(valid_checkpoint), json.loads(header["__metadata__"][METADATA_KEY]))


STAND_IN = "0123456789abcdef" * 4  # 64 hex digits, like the checksum written over it


def signed_in_one_save(tensors: dict, info: dict) -> bytes:
    """signed(tensors, info) byte for byte, from one safetensors save instead of two (half the time, a tenth of an
    example's): the tensor bytes do not depend on the metadata, and the checksum has the length of the stand-in it
    replaces in the header, so the header's length and the data's place stay as they are."""
    text = json.dumps({**info, "sha256": STAND_IN})
    text = text.replace(f'"{HUGE_INTEGER}"', "9" * 5000).replace(f'"-{HUGE_INTEGER}"', "-" + "9" * 5000)
    blob = safetensors.torch.save(tensors, metadata={METADATA_KEY: text})
    offset = _data_offset(blob)
    header = blob[:offset]
    if header.count(STAND_IN.encode()) != 1:  # an edited value holds the stand-in too
        return signed(tensors, info)
    digest = hashlib.sha256(memoryview(blob)[offset:]).hexdigest()
    return header.replace(STAND_IN.encode(), digest.encode()) + blob[offset:]


def test_signing_in_one_save_is_signing(valid_parts: Parts) -> None:
    """What the fuzz tests below load is what signed() writes, whatever the tensors and metadata."""
    tensors, info = valid_parts
    examples = [
        (tensors, info),
        ({**tensors, "resume.rng_now.cpu": torch.full([7], 255.0).to(torch.uint8)}, info),
        ({k: v for k, v in tensors.items() if k != "optimizer.0.exp_avg"}, {**info, "sha256": "x"}),
        (tensors, {**info, "epoch": HUGE_INTEGER, "created": f"-{HUGE_INTEGER}", "dataset": STAND_IN}),
        ({}, {}),
    ]
    for example_tensors, example_info in examples:
        assert signed_in_one_save(example_tensors, example_info) == signed(example_tensors, example_info)


@pytest.mark.fuzz
@FUZZ
@given(edits=st.lists(EDIT, min_size=1, max_size=3))
def test_checkpoint_metadata_fields(tmp_path: Path, valid_parts: Parts, edits: list) -> None:
    """Fields replaced or deleted, the file signed again: the loader and the resume see values a buggy or hostile
    writer could leave."""
    tensors, info = valid_parts
    load_only_our_errors(tmp_path / "fields.safetensors", signed_in_one_save(tensors, edited(info, edits)))


TENSOR_NAMES = ["resume.rng_now.cpu", "resume.rng_epoch_start.cpu", "resume.rng_now.cuda", "resume.rng_now.mps"]
TENSOR_NAMES += [
    "resume.loss_sum",
    "optimizer.0.step",
    "optimizer.0.exp_avg",
    "optimizer.9.exp_avg_sq",
    "class_centroids",
]
TENSOR_NAMES += ["model.to_mu.bias", "optimizer.10.step", "optimizer.0.max_exp_avg_sq", "resume", "junk"]
DTYPES = [torch.uint8, torch.float32, torch.float64, torch.int64, torch.bool, torch.float16]


@pytest.mark.fuzz
@FUZZ
@given(
    name=st.sampled_from(TENSOR_NAMES),
    delete=st.booleans(),
    dtype=st.sampled_from(DTYPES),
    shape=st.lists(st.integers(0, 6000), max_size=2),
    fill=st.sampled_from([0.0, 1.0, -1.0, float("nan"), 255.0]),
)
def test_checkpoint_resume_tensors(
    tmp_path: Path,
    valid_parts: Parts,
    name: str,
    delete: bool,
    dtype: torch.dtype,
    shape: list,
    fill: float,
) -> None:
    """RNG states, Adam's state and weights replaced by tensors of another dtype, shape or content, or removed."""
    tensors, info = valid_parts
    tensors = dict(tensors)
    if delete:
        tensors.pop(name, None)
    elif 0 < torch.Size(shape).numel() <= 1 << 16 or not shape:
        tensors[name] = torch.full(shape, fill).to(dtype)
    load_only_our_errors(tmp_path / "tensors.safetensors", signed_in_one_save(tensors, info))


def test_a_model_of_other_images_loads_with_its_shape(tmp_path: Path) -> None:
    """A 3x16x16 model's checkpoint (format 4) records its image shape and loads as it was saved, its atlas's images
    (M, 3, 16, 16); a shape that is not one (2 channels, a 7-pixel side, a string) is malformed metadata."""
    config = ModelConfig.for_images(3, 16, hidden_dim=8, latent_dim=2)
    checkpoint = untrained_checkpoint(config)
    images = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    checkpoint.atlas = build_atlas(torch.randn(5, 2), torch.rand(2), images, torch.zeros(5, dtype=torch.long))
    path = save_checkpoint(tmp_path / "rgb.safetensors", checkpoint)
    loaded = load_checkpoint(path)
    assert loaded.config == config and loaded.config.pixel_shape == (3, 16, 16)
    assert torch.equal(loaded.atlas.images, images[loaded.atlas.image_indices])
    grey = untrained_checkpoint(ModelConfig.for_images(1, 16, hidden_dim=8, latent_dim=2))
    grey.atlas = build_atlas(torch.randn(5, 2), torch.rand(2), images[:, 0], torch.zeros(5, dtype=torch.long))
    assert load_checkpoint(save_checkpoint(tmp_path / "grey.safetensors", grey)).atlas.images.shape[1:] == (16, 16)
    for shape, message in [
        ({"channels": 2, "image_size": 16, "input_dim": 512}, "bad image shape"),
        ({"channels": 3, "image_size": 7, "input_dim": 147}, "bad image shape"),
        ({"channels": "3", "image_size": 16}, "bad image shape"),
        ({"channels": 3, "image_size": 16, "input_dim": 784}, "input_dim 784 is not 3 x 16 x 16 pixels"),
    ]:

        def edit(info: dict, shape: dict = shape) -> None:
            info["model"] |= shape

        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(resign(path, edit_info=edit))
