"""Shared fixtures: tiny IDX datasets written by the tests, small real models."""

import gzip
import struct
from pathlib import Path

import pytest
import torch

from models import ModelConfig, build_model
from train.data import DEBIAN_DIRS, SPLIT_FILES

REAL_FASHION_MNIST = DEBIAN_DIRS["fashion-mnist"]
TINY = ModelConfig(hidden_dim=32, latent_dim=4)


def idx_bytes(data: torch.Tensor) -> bytes:
    """An IDX file of unsigned bytes holding data (uint8, any number of dimensions)."""
    header = bytes([0, 0, 0x08, data.dim()]) + struct.pack(f">{data.dim()}I", *data.shape)
    return header + data.contiguous().numpy().tobytes()


def make_split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n 28x28 images: one fixed blob pattern per class plus noise, so a model can learn them."""
    generator = torch.Generator().manual_seed(1234)
    templates = (torch.rand(10, 28, 28, generator=generator) > 0.6).float()
    generator.manual_seed(seed)
    labels = torch.arange(n) % 10
    noise = torch.rand(n, 28, 28, generator=generator) * 0.3
    images = ((templates[labels] * 0.7 + noise).clamp(0, 1) * 255).to(torch.uint8)
    return images, labels.to(torch.uint8)


def write_dataset(folder: Path, n_train: int = 512, n_test: int = 128, gz: bool = False) -> dict[str, bytes]:
    """Write the four IDX files into folder; return each file's bytes by file name."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        images, labels = make_split(n, seed)
        for name, data in zip(SPLIT_FILES[split], (images, labels), strict=True):
            content = idx_bytes(data)
            name, content = (f"{name}.gz", gzip.compress(content, mtime=0)) if gz else (name, content)
            (folder / name).write_bytes(content)
            written[name] = content
    return written


@pytest.fixture(autouse=True)
def isolated_data_search(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test away from the user's cache and $VAE_TUI_DATA."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("VAE_TUI_DATA", raising=False)


@pytest.fixture
def mnist_dir(tmp_path: Path) -> Path:
    """A folder with a tiny MNIST-shaped dataset in raw IDX files."""
    write_dataset(tmp_path / "data")
    return tmp_path / "data"


@pytest.fixture
def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(TINY)


needs_fashion_mnist = pytest.mark.skipif(
    not REAL_FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist is not installed"
)
