"""Hostile checkpoints: overlong integers, padded or sparse files, sizes that misfit the data, lying resume state."""

import hashlib
import json
import os
import re
import resource
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import safetensors.torch
import torch
from safetensors import safe_open

from models import Checkpoint, CheckpointError, ModelConfig, UserError, build_model, load_checkpoint, save_checkpoint
from models.checkpoint import METADATA_KEY, _data_offset
from tests.conftest import TINY_FLAGS, write_dataset
from train.settings import TrainSettings
from vae_tui.cli import main

HUGE = "9" * 5000  # past the 4,300 digits Python parses


def resign(path: Path, edit_info: Callable[[dict], None], raw: str = "") -> Path:
    """Rewrite path's metadata as edit_info leaves it and sign it again; the JSON string "RAW" becomes raw."""
    tensors = safetensors.torch.load_file(path)
    with safe_open(path, "pt") as f:
        info = json.loads(f.metadata()[METADATA_KEY])
    edit_info(info)
    unsigned = safetensors.torch.save(tensors)
    info["sha256"] = hashlib.sha256(unsigned[_data_offset(unsigned) :]).hexdigest()
    path.write_bytes(safetensors.torch.save(tensors, metadata={METADATA_KEY: json.dumps(info).replace('"RAW"', raw)}))
    return path


def huge_offset_in_header(path: Path) -> Path:
    """The first tensor's data_offsets start replaced by a 5000-digit integer, in the safetensors header itself."""
    blob = path.read_bytes()
    length = struct.unpack("<Q", blob[:8])[0]
    header = re.sub(r'"data_offsets":\[\d+,', f'"data_offsets":[{HUGE},', blob[8 : 8 + length].decode(), count=1)
    path.write_bytes(struct.pack("<Q", len(header)) + header.encode() + blob[8 + length :])
    return path


def cvae(path: Path, **sizes: int) -> Path:
    """A tiny CVAE checkpoint of mnist with the given sizes (input_dim, num_classes ...)."""
    torch.manual_seed(0)
    config = ModelConfig(kind="cvae", hidden_dim=32, latent_dim=4, **sizes)
    checkpoint = Checkpoint(
        model=build_model(config),
        dataset="mnist",
        class_names=[str(i) for i in range(config.num_classes)],
        epoch=1,
        class_centroids=torch.zeros(config.num_classes, 4),
    )
    return save_checkpoint(path, checkpoint)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny dataset and the last.safetensors of one epoch trained on it by `vae-tui train`."""
    root = tmp_path_factory.mktemp("trained")
    write_dataset(root / "data")
    flags = [*TINY_FLAGS, "--epochs", "1", "--data-dir", str(root / "data"), "--out", str(root / "run")]
    assert main(["train", *flags]) == 0
    return root / "data", root / "run" / "last.safetensors"


@pytest.fixture
def last(trained: tuple[Path, Path], tmp_path: Path) -> Path:
    """A copy of the trained last.safetensors in a run folder of its own."""
    (tmp_path / "run").mkdir()
    return Path(shutil.copy(trained[1], tmp_path / "run" / "last.safetensors"))


# --- integers of thousands of digits (cause 3) ---------------------------------------------


@pytest.mark.parametrize("where", ["header", "metadata", "training", "resume"])
def test_integers_of_thousands_of_digits_are_refused(last: Path, where: str) -> None:
    if where == "header":
        huge_offset_in_header(last)
    else:
        edits = {"metadata": lambda i: i.update(epoch="RAW"), "training": lambda i: i["training"].update(seed="RAW")}
        resign(last, edits.get(where, lambda i: i["resume"].update(step="RAW")), HUGE)
    part = "header" if where == "header" else "metadata"
    with pytest.raises(CheckpointError, match=f"has an integer of 5000 digits in its {part}"):
        load_checkpoint(last, with_resume=True)


@pytest.mark.parametrize("command", ["sample", "eval", "train", "explore"])
def test_integers_of_thousands_of_digits_through_every_command(
    last: Path, trained: tuple[Path, Path], command: str, run_cli: Callable
) -> None:
    resign(last, lambda info: info["model"].update(hidden_dim="RAW"), HUGE)
    args = {
        "sample": ["sample", str(last), "-o", str(last.with_suffix(".png"))],
        "eval": ["eval", str(last), "--data-dir", str(trained[0])],
        "train": ["train", "--resume", str(last), "--epochs", "2", "--data-dir", str(trained[0])],
        "explore": ["explore", str(last)],
    }[command]
    run_cli(*args).assert_one_line_error(f"vae-tui {command}: error: {last} has an integer of 5000 digits")


# --- the file's length against its header, before any data is read (cause 8) ---------------


@pytest.mark.parametrize("change, message", [(1000, "has 1000 bytes after the"), (-1, "is truncated: its header")])
def test_a_length_other_than_the_header_announces_is_refused(last: Path, change: int, message: str) -> None:
    blob = last.read_bytes()
    last.write_bytes(blob + bytes(change) if change > 0 else blob[:change])
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(last)


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


# --- model sizes against vae-tui's data (cause 6) ------------------------------------------


@pytest.mark.parametrize("input_dim", [100, 99])
@pytest.mark.parametrize("command", ["load", "eval", "sample", "explore"])
def test_images_of_another_size_are_refused(
    tmp_path: Path, trained: tuple[Path, Path], run_cli: Callable, input_dim: int, command: str
) -> None:
    path = cvae(tmp_path / "c.safetensors", input_dim=input_dim)
    message = f"the model's images have {input_dim} pixels, not vae-tui's 28x28 = 784 ({path})"
    if command == "load":
        with pytest.raises(CheckpointError, match=re.escape(message)):
            load_checkpoint(path)
        return
    extra = {"eval": ["--data-dir", str(trained[0])], "sample": ["-o", str(tmp_path / "x.png")], "explore": []}
    run_cli(command, str(path), *extra[command]).assert_one_line_error(message)


@pytest.mark.parametrize("command", ["eval", "sample", "explore", "train"])
def test_a_model_of_another_class_count_is_refused(
    tmp_path: Path,
    last: Path,
    trained: tuple[Path, Path],
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
        args = ["train", "--resume", str(path), "--epochs", "2", "--data-dir", str(trained[0])]
    else:
        path = cvae(tmp_path / "c.safetensors", num_classes=3)
        extra = {"eval": ["--data-dir", str(trained[0])], "sample": ["-o", str(tmp_path / "x.png")], "explore": []}
        args = [command, str(path), *extra[command]]
    assert load_checkpoint(path).config.num_classes == 3  # a file consistent in itself
    run_cli(*args).assert_one_line_error(f"{path} holds a model of 3 classes, but mnist has 10")


# --- hostile resume metadata (cause 7) -------------------------------------------------------


def _group(info: dict) -> dict:
    return info["optimizer"]["param_groups"][0]


RESUME_EDITS = {
    "batch_size str": (lambda i: i["training"].update(batch_size="128"), "batch_size must be an integer, got '128'"),
    "batch_size float": (lambda i: i["training"].update(batch_size=128.0), "batch_size must be an integer, got 128.0"),
    "seed 0.5": (lambda i: i["training"].update(seed=0.5), "seed must be an integer from 0 to 2**63-1, got 0.5"),
    "seed missing": (lambda i: i["training"].pop("seed"), "training settings: seed missing"),
    "hidden_dim 300": (
        lambda i: i["training"].update(hidden_dim=300),
        "its training settings say hidden_dim 300, but its model and metadata say 32",
    ),
    "cvae over vae weights": (lambda i: i["training"].update(model="cvae"), "say model 'cvae', but"),
    "another dataset": (lambda i: i["training"].update(dataset="fashion-mnist"), "say dataset 'fashion-mnist', but"),
    "input_dim 100": (lambda i: i["model"].update(input_dim=100), "has shape (32, 784), expected (32, 100)"),
    "lr abc": (lambda i: _group(i).update(lr="abc"), "'lr' must be a finite number, not negative; got 'abc'"),
    "betas": (lambda i: _group(i).update(betas=[0.9]), "'betas' must be two numbers from 0 to 1"),
    "fused yes": (lambda i: _group(i).update(fused="yes"), "'fused' must be true, false or null"),
    "unknown setting": (lambda i: _group(i).update(extra=[1]), "'extra' is of a type Adam does not take"),
    "params": (lambda i: _group(i).update(params=[0, 0]), "must hold the parameters 0 to 9, each once"),
    "best epoch": (lambda i: i["resume"].update(best_epoch=7), "malformed resume metadata"),
}


@pytest.mark.parametrize("edit", ["nothing", *RESUME_EDITS, "rng state of 10 bytes"])
def test_hostile_resume_metadata_is_one_line(
    last: Path, trained: tuple[Path, Path], rewrite_checkpoint: Callable, run_cli: Callable, edit: str
) -> None:
    message = None
    if edit == "rng state of 10 bytes":
        message = "resume state: 'rng_now.cpu' is not a cpu generator's state"
        rewrite_checkpoint(last, edit_tensors=lambda t: t.update({"resume.rng_now.cpu": torch.zeros(10).byte()}))
    elif edit != "nothing":
        edit_info, message = RESUME_EDITS[edit]
        rewrite_checkpoint(last, edit_info=edit_info)
    result = run_cli("train", "--resume", str(last), "--epochs", "2", "--data-dir", str(trained[0]))
    if message is None:
        assert result.code == 0, result.stderr  # the same file, unchanged, resumes
    else:
        result.assert_one_line_error(str(last), message)


@pytest.mark.parametrize(
    "values, message",
    [
        ([1], "malformed training settings: [1]"),
        ({"epochs": 0}, "epochs must be a positive number, got 0"),
        ({"epochs": 10**7}, "epochs must be at most 1000000"),
        ({"latent_dim": True}, "latent_dim must be an integer, got True"),
        ({"hidden_dim": 70000}, "hidden_dim must be at most 65536, got 70000"),
        ({"lr": float("nan")}, "lr must be a positive number, got nan"),
        ({"lr": "1e-3"}, "lr must be a positive number, got '1e-3'"),
        ({"seed": 2**70}, "seed must be an integer from 0 to 2**63-1, got 1180591620717411303424"),
        ({"seed": -1}, "seed must be an integer from 0 to 2**63-1, got -1"),
        ({"dataset": "[/]\x1b[2J"}, "dataset must be one of fashion-mnist, mnist, got '[/]\\x1b[2J'"),
        ({"model": None}, "model must be one of vae, cvae, got None"),
    ],
)
def test_train_settings_from_metadata_check_every_field(values: object, message: str) -> None:
    complete = {"model": "vae", "dataset": "mnist", "epochs": 2, "batch_size": 32, "lr": 1e-3}
    complete |= {"latent_dim": 4, "hidden_dim": 32, "seed": 0}
    with pytest.raises(UserError, match=re.escape(message)):
        TrainSettings.from_dict({**complete, **values} if isinstance(values, dict) else values, "c.safetensors")
    assert TrainSettings.from_dict({**complete, "lr": 1, "unknown": [1]}).lr == 1.0  # an int lr, an extra key
