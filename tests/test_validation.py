"""Input from files, flags and metadata is refused with a typed error and one line, also under `python -O`.

None of these checks may be an `assert`: `python -O` strips those, and the bad value then
travels on into an AttributeError or a shape error far from its cause. .ci/run runs this
file under `python -O` as well (pytest rewrites the asserts of test modules into plain
`if`s, so the tests themselves still check under -O).
"""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import safetensors.torch
import torch

from models import (
    VAE,
    Checkpoint,
    CheckpointError,
    ModelConfig,
    UserError,
    build_model,
    load_checkpoint,
    save_checkpoint,
)
from models.checkpoint import METADATA_KEY
from train.data import load_dataset
from train.loop import Trainer, TrainSettings
from train.progress import PlainProgress
from vae_tui.decoding import Decoder, image_shape

SMALL = {"hidden_dim": 16, "latent_dim": 3}


def checkpoint(config: ModelConfig) -> Checkpoint:
    torch.manual_seed(0)
    return Checkpoint(
        model=build_model(config),
        dataset="mnist",
        class_names=[str(i) for i in range(config.num_classes)],
        epoch=1,
        class_centroids=torch.zeros(config.num_classes, config.latent_dim),
    )


@pytest.mark.parametrize("metadata", [[1, 2], "text", 3, None])
def test_metadata_that_is_not_an_object(tmp_path: Path, metadata: object, run_cli: Callable) -> None:
    path = tmp_path / "odd.safetensors"
    path.write_bytes(safetensors.torch.save({"x": torch.zeros(1)}, metadata={METADATA_KEY: json.dumps(metadata)}))
    with pytest.raises(CheckpointError, match="has corrupted metadata"):
        load_checkpoint(path)
    result = run_cli("sample", str(path), "-o", str(tmp_path / "out.png"))
    assert result.code == 1 and result.stderr == f"vae-tui sample: error: {path} has corrupted metadata\n"


@pytest.mark.parametrize(
    "sizes, message",
    [
        ({"kind": "gan"}, "model kind must be one of vae, cvae, not 'gan'"),
        ({"latent_dim": 0}, "latent_dim must be positive, got 0"),
        ({"hidden_dim": -3}, "hidden_dim must be positive, got -3"),
        ({"input_dim": 0}, "input_dim must be positive"),
        ({"num_classes": 0}, "num_classes must be positive"),
    ],
)
def test_model_config_refuses_bad_values(sizes: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        ModelConfig(**sizes)


def test_resume_metadata_with_an_unknown_model_kind() -> None:
    with pytest.raises(UserError, match="model must be one of vae, cvae, got 'gan'"):
        TrainSettings.from_dict({"model": "gan", "epochs": 2})  # as read from a checkpoint's metadata


def test_model_class_must_match_the_config() -> None:
    with pytest.raises(ValueError, match="use build_model"):
        VAE(ModelConfig(kind="cvae", **SMALL))


@pytest.mark.parametrize("command", ["sample", "explore"])
def test_images_that_are_not_square(tmp_path: Path, command: str, run_cli: Callable) -> None:
    assert image_shape(784) == (28, 28)
    config = ModelConfig(input_dim=785, **SMALL)
    with pytest.raises(UserError, match="785 pixels, not a square number"):
        Decoder(build_model(config))
    path = save_checkpoint(tmp_path / "wide.safetensors", checkpoint(config))
    extra = ["-o", str(tmp_path / "out.png")] if command == "sample" else ["--exports", str(tmp_path)]
    result = run_cli(command, str(path), *extra)  # explore stops before the app takes the terminal
    assert result.code == 1
    result.assert_one_line_error(f"vae-tui {command}: error: the model's images have 785 pixels")


def test_resume_from_weights_only(tmp_path: Path, mnist_dir: Path) -> None:
    data = load_dataset("mnist", data_dir=mnist_dir)
    settings = TrainSettings(dataset="mnist", epochs=1, batch_size=64, **SMALL)
    weights_only = checkpoint(settings.model_config(num_classes=10))
    weights_only.path = tmp_path / "best.safetensors"
    with pytest.raises(CheckpointError, match="best.safetensors holds weights only"):
        Trainer(settings, data, tmp_path, torch.device("cpu"), PlainProgress(None), resume=weights_only)
