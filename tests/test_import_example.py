"""vae-tui import-example: the PyTorch example's VAE state dict becomes a checkpoint that decodes the same images."""

import pickle
import struct
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models import CheckpointError, load_checkpoint
from tests.helpers import CliResult
from vae_tui.app import create_app


class ExampleVAE(nn.Module):
    """pytorch/examples vae/main.py's model, with its layer names, at sizes given here."""

    def __init__(self, hidden: int = 24, latent: int = 3) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, hidden)
        self.fc21 = nn.Linear(hidden, latent)
        self.fc22 = nn.Linear(hidden, latent)
        self.fc3 = nn.Linear(latent, hidden)
        self.fc4 = nn.Linear(hidden, 784)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))


@pytest.fixture
def example(tmp_path: Path) -> tuple[ExampleVAE, Path]:
    torch.manual_seed(0)
    model = ExampleVAE()
    path = tmp_path / "vae.pt"
    torch.save(model.state_dict(), path)
    return model, path


def test_round_trip_decodes_the_same_images(
    example: tuple[ExampleVAE, Path], mnist_dir: Path, tmp_path: Path, run_cli: Callable
) -> None:
    original, path = example
    out = tmp_path / "imported.safetensors"
    result = run_cli("import-example", str(path), "--dataset", "mnist", "-o", str(out), "--data-dir", str(mnist_dir))
    assert result.code == 0, result.stderr
    assert "Imported a VAE 784-24-3 (mnist, test loss" in result.stdout and f"vae-tui explore {out}" in result.stdout
    checkpoint = load_checkpoint(out, expect_kind="vae")
    assert (checkpoint.config.hidden_dim, checkpoint.config.latent_dim, checkpoint.config.arch) == (24, 3, "mlp")
    z = torch.randn(16, 3, generator=torch.Generator().manual_seed(1))
    x = torch.rand(16, 784, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(torch.sigmoid(checkpoint.model.decode(z)), original.decode(z), rtol=0, atol=1e-6)
        for ours, theirs in zip(checkpoint.model.encode(x), original.encode(x), strict=True):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    from train.data import load_dataset

    data = load_dataset("mnist", data_dir=mnist_dir)
    train_x = data.train.images.reshape(-1, 784).float() / 255
    with torch.no_grad():
        mu = original.encode(train_x)[0]
    expected = torch.stack([mu[data.train.labels == c].mean(0) for c in range(10)])
    torch.testing.assert_close(checkpoint.class_centroids, expected, rtol=1e-4, atol=1e-5)
    assert checkpoint.metrics["test_loss"] > 0 and checkpoint.dataset == "mnist"
    test_x = data.test.images.reshape(-1, 784).float() / 255
    with torch.no_grad():
        torch.testing.assert_close(checkpoint.atlas.mu, original.encode(test_x)[0][checkpoint.atlas.indices])


def import_without_data(state_dict: Path, out: Path, run_cli: Callable, monkeypatch: pytest.MonkeyPatch) -> CliResult:
    """`vae-tui import-example` of state_dict into out with no dataset to be found."""
    monkeypatch.setattr("train.data.candidate_roots", lambda dataset: [])
    return run_cli("import-example", str(state_dict), "--dataset", "mnist", "-o", str(out))


def test_without_the_dataset_it_says_what_is_missing(
    example: tuple[ExampleVAE, Path], tmp_path: Path, run_cli: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "imported.safetensors"
    result = import_without_data(example[1], out, run_cli, monkeypatch)
    assert result.code == 0
    assert "no class centroids" in result.stderr and "no test loss" in result.stderr
    checkpoint = load_checkpoint(out)
    assert checkpoint.metrics == {} and torch.count_nonzero(checkpoint.class_centroids) == 0
    assert checkpoint.atlas is None and "no atlas" in result.stderr


async def test_the_explorer_shows_the_examples_images(
    example: tuple[ExampleVAE, Path], mnist_dir: Path, tmp_path: Path, run_cli: Callable, settle: Callable
) -> None:
    """Opened in the explorer, the imported model's frame is what the example's own decode draws at that z."""
    original, path = example
    out = tmp_path / "imported.safetensors"
    run_cli("import-example", str(path), "--dataset", "mnist", "-o", str(out), "--data-dir", str(mnist_dir))
    app = create_app(load_checkpoint(out), str(out), tmp_path / "exports")
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(app, pilot)
        await pilot.press("3", "L", "k", "H")
        await settle(app, pilot)
        state, frame = app.explorer.state, app.explorer.frame
        assert frame.version == state.version and state.z != [0.0] * 3
        with torch.no_grad():
            expected = original.decode(torch.tensor([state.z])).view(28, 28)
        torch.testing.assert_close(frame.image, expected, rtol=0, atol=1e-6)


class Payload:
    def __reduce__(self) -> tuple:
        return (print, ("this ran",))


def truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:1000])


def other_keys(path: Path) -> None:
    state = torch.load(path, weights_only=True)
    state["fc5.weight"] = state.pop("fc4.weight")
    torch.save(state, path)


def wrong_shape(path: Path) -> None:
    state = torch.load(path, weights_only=True)
    state["fc3.weight"] = torch.zeros(24, 5)
    torch.save(state, path)


def not_784(path: Path) -> None:
    torch.save(ExampleVAE().state_dict() | {"fc1.weight": torch.zeros(24, 100)}, path)


def with_code(path: Path) -> None:
    path.write_bytes(pickle.dumps({"fc1.weight": Payload()}))


def whole_model(path: Path) -> None:
    torch.save(ExampleVAE(), path)  # the module pickled: classes, not only tensors


def with_nan(path: Path) -> None:
    state = torch.load(path, weights_only=True)
    state["fc4.bias"][3] = float("nan")
    torch.save(state, path)


def a_list(path: Path) -> None:
    torch.save([torch.zeros(3)], path)


def replaced(path: Path, key: str, value: torch.Tensor) -> None:
    state = torch.load(path, weights_only=True)
    state[key] = value
    torch.save(state, path)


def float8(path: Path) -> None:
    replaced(path, "fc4.bias", torch.zeros(784, dtype=torch.float8_e4m3fn))  # isfinite has no float8 kernel


def sparse(path: Path) -> None:
    replaced(path, "fc1.weight", torch.zeros(24, 784).to_sparse())


def float64_1e300(path: Path) -> None:
    replaced(path, "fc4.bias", torch.full((784,), 1e300, dtype=torch.float64))  # finite, until it is float32


def float32_3e38(path: Path) -> None:
    replaced(path, "fc3.weight", torch.full((24, 3), 3e38))


def rezipped(
    path: Path, compression: int = zipfile.ZIP_DEFLATED, grow: str = "", by: int = 0, level: int | None = None
) -> None:
    """path's archive written again with compression (at zlib's level, its default if None), the entry named grow
    padded with by zero bytes."""
    with zipfile.ZipFile(path) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    with zipfile.ZipFile(path, "w", compression, compresslevel=level) as archive:
        for name, data in entries.items():
            archive.writestr(name, data + bytes(by) if name.endswith(grow) and grow else data)


def deflated_bomb(path: Path) -> None:
    rezipped(path, grow="/data/0", by=64 << 20)  # 64 MB of zeros deflate to 64 KB: the same ratio as 6.3 GB in 27 MB


def directory_claims_3_gb(path: Path) -> None:
    """The archive's directory says one entry unpacks to 3 GB; nothing else changes (zipfile reads only it)."""
    blob = bytearray(path.read_bytes())
    entry = blob.rfind(b"PK\x01\x02", 0, blob.rfind(b"PK\x05\x06"))  # the last central directory entry
    struct.pack_into("<L", blob, entry + 24, 3_000_000_000)  # its uncompressed size (APPNOTE 4.3.12)
    path.write_bytes(blob)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (truncated, "is truncated or not a file torch.save wrote"),
        (other_keys, "is not the PyTorch example's VAE: missing fc4.weight; unexpected 'fc5.weight'"),
        (wrong_shape, "fc3.weight has shape (24, 5), expected (24, 3)"),
        (not_784, "fc1.weight has shape (24, 100), expected (H, 784)"),
        (with_code, "is not a plain state dict: torch.load(weights_only=True) refused it"),
        (whole_model, "is not a plain state dict: torch.load(weights_only=True) refused it"),
        (with_nan, "fc4.bias contains NaN or infinite values"),
        (a_list, "holds a list, not a state dict of named tensors"),
        (float8, "fc4.bias is a float8_e4m3fn tensor, expected dense float16, bfloat16, float32 or float64"),
        (sparse, "fc1.weight is a sparse_coo tensor, expected dense float16"),
        (float64_1e300, "fc4.bias has values beyond float32's range"),
        (float32_3e38, "fc3.weight has values outside -10000..10000, which training never writes"),
        (deflated_bomb, "holds compressed entries ('vae/data/0': "),
        (directory_claims_3_gb, "unpacks to 3,000,"),
    ],
)
def test_bad_files_are_refused_in_one_line(
    example: tuple[ExampleVAE, Path],
    tmp_path: Path,
    run_cli: Callable,
    damage: Callable,
    message: str,
) -> None:
    path = example[1]
    damage(path)
    out = tmp_path / "imported.safetensors"
    result = run_cli("import-example", str(path), "--dataset", "mnist", "-o", str(out))
    result.assert_one_line_error(message)
    assert not out.exists() and "this ran" not in result.stdout


def test_an_existing_output_is_kept(example: tuple[ExampleVAE, Path], tmp_path: Path, run_cli: Callable) -> None:
    out = tmp_path / "mine.safetensors"
    out.write_bytes(b"keep me")
    run_cli("import-example", str(example[1]), "--dataset", "mnist", "-o", str(out)).assert_one_line_error(
        "exists: choose another -o, or add --force"
    )
    assert out.read_bytes() == b"keep me"
    run_cli("import-example", str(tmp_path / "none.pt"), "--dataset", "mnist", "-o", str(tmp_path / "x.safetensors"))


def test_a_compressed_archive_is_refused_before_it_is_unpacked(example: tuple[ExampleVAE, Path]) -> None:
    """What torch.load would unpack is read from the zip's directory: an entry deflated from 64 MB is refused
    before any of it is inflated (a 27 MB file held 6.3 GB and took 6.5 GB of memory before its refusal)."""
    from models.example import check_archive

    path = example[1]
    rezipped(path, zipfile.ZIP_STORED, grow="/data/0", by=64 << 20)
    with pytest.raises(CheckpointError, match=r"unpacks to 67,\d{3},\d{3} bytes"):
        check_archive(path, 64 << 20)  # stored: the file is what it unpacks to, checked against a lowered cap
    check_archive(path, 128 << 20)
    rezipped(path, level=1)  # the fastest deflate: 64 MB of zeros in 0.1 s of CPU instead of 0.33, to 286 KB
    assert path.stat().st_size < 1 << 20
    with pytest.raises(CheckpointError, match="holds compressed entries"):
        check_archive(path, 128 << 20)


def test_warnings_from_torch_load_are_not_printed(tmp_path: Path, run_cli: Callable) -> None:
    """torch.load warns about a pickle protocol it does not expect, then refuses: the refusal alone is shown."""
    path = tmp_path / "protocol4.pt"
    path.write_bytes(pickle.dumps({"fc1.weight": [1.0]}, protocol=4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_cli("import-example", str(path), "--dataset", "mnist", "-o", str(tmp_path / "x.safetensors"))
    result.assert_one_line_error("is not a plain state dict")
    assert not [w for w in caught if "torch" in w.filename], [str(w.message) for w in caught]


def test_an_escape_sequence_in_the_output_name_is_shown_not_obeyed(
    example: tuple[ExampleVAE, Path], tmp_path: Path, run_cli: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "x\x1b]0;pwned\x07 y.safetensors"
    result = import_without_data(example[1], out, run_cli, monkeypatch)
    assert result.code == 0 and out.is_file()
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "x\ufffd]0;pwned\ufffd y.safetensors" in result.stdout
    assert "vae-tui explore '" in result.stdout  # the command quoted for the shell: the name holds a space


def test_a_model_whose_encodings_no_checkpoint_may_hold_is_not_imported(
    example: tuple[ExampleVAE, Path], mnist_dir: Path, tmp_path: Path, run_cli: Callable
) -> None:
    """Weights within the bound, encodings far past it: the file written would not load, so none is written."""
    replaced(example[1], "fc21.weight", torch.full((3, 24), 1e4))
    out = tmp_path / "imported.safetensors"
    result = run_cli(
        "import-example", str(example[1]), "--dataset", "mnist", "-o", str(out), "--data-dir", str(mnist_dir)
    )
    result.assert_one_line_error("is not a trained VAE: what it computes on the dataset (the class centroids)")
    assert not out.exists()
