"""Finding, verifying and reading the datasets: tiny IDX files written here, and the real FashionMNIST; an explicit
--data-dir is the only place looked at, files the size of real ones must be the real ones, unreadable files, gzip
bombs, and fuzzing the IDX reader."""

import contextlib
import errno
import functools
import gzip
import hashlib
import shutil
import struct
from pathlib import Path
from unittest import mock

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from models import DataError
from tests.helpers import (
    EDITS,
    FUZZ,
    REAL_FASHION_MNIST,
    TINY_TRAIN,
    idx_bytes,
    make_split,
    mutate,
    needs_fashion_mnist,
    one_line_error,
    write_dataset,
)
from train import data as data_module
from train.data import load_dataset, locate, parse_idx, read_idx_bytes
from vae_tui.cli import main


@pytest.fixture
def no_debian(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(data_module, "DEBIAN_DIRS", {"fashion-mnist": tmp_path / "not-installed"})


def test_raw_idx_files(mnist_dir: Path) -> None:
    dataset = load_dataset("mnist", data_dir=mnist_dir)
    assert dataset.train.images.shape == (512, 28, 28) and dataset.train.images.dtype == torch.uint8
    assert dataset.test.labels.tolist()[:12] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert dataset.class_names == [str(i) for i in range(10)]
    assert "--data-dir" in dataset.source


def test_gzipped_files_verified_by_torchvision_md5(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision import datasets  # here, not at the top: torchvision costs each test process a second

    labels = bytes([0, 0, 8, 1]) + struct.pack(">I", 10000) + bytes(i % 10 for i in range(10000))
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(labels, mtime=0))  # real-sized, so its MD5 is checked
    with pytest.raises(DataError, match="fails its MD5 check"):
        read_idx_bytes(path, "mnist")
    # torchvision's MD5 of the .gz file is the fallback when the content MD5 does not match
    monkeypatch.setattr(datasets.MNIST, "resources", [(path.name, hashlib.md5(path.read_bytes()).hexdigest())])
    assert read_idx_bytes(path, "mnist") == labels


def test_md5_mismatch(tmp_path: Path) -> None:
    write_dataset(tmp_path, gz=True)
    labels = bytes([0, 0, 8, 1]) + struct.pack(">I", 10000) + bytes(i % 10 for i in range(10000))
    # gzipped, with the real test labels' size but not their content
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels, mtime=0))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz fails its MD5 check"):
        load_dataset("mnist", data_dir=tmp_path)


def test_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_dataset(tmp_path / "flag" / "mnist")
    write_dataset(tmp_path / "env")
    monkeypatch.setenv("VAE_TUI_DATA", str(tmp_path / "env"))
    assert locate("mnist", tmp_path / "flag")[1].endswith("(--data-dir)")
    assert locate("mnist", None)[1].endswith("($VAE_TUI_DATA)")
    with pytest.raises(DataError, match=r"no mnist data found in --data-dir .*empty \(no such folder\)"):
        locate("mnist", tmp_path / "empty")  # an explicit --data-dir is never passed over


def test_user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    write_dataset(tmp_path / "vae-tui" / "MNIST" / "raw")
    assert locate("mnist")[1].endswith("(user cache)")


def test_nothing_found_names_every_option(no_debian: None) -> None:
    with pytest.raises(DataError) as caught:
        locate("fashion-mnist")
    message = str(caught.value)
    for option in ("--data-dir", "$VAE_TUI_DATA", "dataset-fashion-mnist", "vae-tui", "--download"):
        assert option in message
    assert "\n" not in message


def test_download_goes_through_torchvision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision import datasets  # here, not at the top: torchvision costs each test process a second
    from torchvision.datasets import mnist as torchvision_mnist

    source = tmp_path / "mirror"
    written = write_dataset(source, gz=True)
    fetched = []

    def fake_fetch(url: str, download_root: str, filename: str, md5: str) -> None:
        # stands in for the network only: torchvision still picks the files, folder and MD5s
        fetched.append((url, md5))
        (Path(download_root) / filename).write_bytes((source / filename).read_bytes())
        torchvision_mnist.extract_archive(str(Path(download_root) / filename))

    monkeypatch.setattr(torchvision_mnist, "download_and_extract_archive", fake_fetch)
    monkeypatch.setattr(datasets.MNIST, "resources", [(n, hashlib.md5(b).hexdigest()) for n, b in written.items()])
    dataset = load_dataset("mnist", data_dir=tmp_path / "target", download=True)
    assert len(fetched) == 4 and fetched[0][0].startswith(datasets.MNIST.mirrors[0])
    assert (tmp_path / "target" / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file()
    assert len(dataset.train.images) == 512


def test_download_failure_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision.datasets import mnist as torchvision_mnist  # here: torchvision costs a process a second

    def offline(url: str, **kwargs: object) -> None:
        raise torchvision_mnist.URLError("no network")

    monkeypatch.setattr(torchvision_mnist, "download_and_extract_archive", offline)
    with pytest.raises(DataError, match="downloading mnist into .* failed"):
        load_dataset("mnist", data_dir=tmp_path, download=True)


def test_incomplete(mnist_dir: Path) -> None:
    (mnist_dir / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="incomplete: missing t10k-labels-idx1-ubyte"):
        load_dataset("mnist", data_dir=mnist_dir)


def test_truncated_gzip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision import datasets  # here, not at the top: torchvision costs each test process a second

    written = write_dataset(tmp_path, gz=True)
    monkeypatch.setattr(datasets.MNIST, "resources", [])  # no checksum known: the gzip itself must fail
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(written["train-images-idx3-ubyte.gz"][:500])
    with pytest.raises(DataError, match="not a valid gzip file"):
        load_dataset("mnist", data_dir=tmp_path)


def test_wrong_magic(mnist_dir: Path) -> None:
    path = mnist_dir / "train-labels-idx1-ubyte"
    path.write_bytes(b"\x00\x00\x0d\x01" + path.read_bytes()[4:])
    with pytest.raises(DataError, match="bad magic number"):
        load_dataset("mnist", data_dir=mnist_dir)


def test_truncated_raw(mnist_dir: Path) -> None:
    path = mnist_dir / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated or corrupted"):
        load_dataset("mnist", data_dir=mnist_dir)


def test_counts_disagree(tmp_path: Path) -> None:
    write_dataset(tmp_path)
    other = tmp_path / "other"
    write_dataset(other, n_train=100)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes((other / "train-labels-idx1-ubyte").read_bytes())
    with pytest.raises(DataError, match="512 images but 100 labels"):
        load_dataset("mnist", data_dir=tmp_path)


def test_content_md5_protects_fashion_mnist(tmp_path: Path) -> None:
    labels = bytes([0, 0, 8, 1]) + struct.pack(">I", 60000) + bytes(i % 10 for i in range(60000))
    write_dataset(tmp_path / "fashion-mnist")
    (tmp_path / "fashion-mnist" / "train-labels-idx1-ubyte").write_bytes(labels)  # real size, other content
    with pytest.raises(DataError, match="not the real fashion-mnist"):
        load_dataset("fashion-mnist", data_dir=tmp_path)


@needs_fashion_mnist
def test_real_fashion_mnist() -> None:
    dataset = load_dataset("fashion-mnist")
    assert dataset.train.images.shape == (60000, 28, 28) and dataset.test.images.shape == (10000, 28, 28)
    assert torch.bincount(dataset.train.labels).tolist() == [6000] * 10
    assert torch.bincount(dataset.test.labels).tolist() == [1000] * 10
    assert dataset.class_names[9] == "Ankle boot" and "Debian" in dataset.source


# --- an explicit --data-dir, the user's own files, real data verified by content ------------------


@pytest.mark.parametrize("given", ["missing", "empty", "file"])
def test_an_explicit_data_dir_is_the_only_place_looked_at(
    given: str, mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("VAE_TUI_DATA", str(mnist_dir))  # a copy elsewhere must not be used instead
    folder = tmp_path / given
    if given == "empty":
        folder.mkdir()
    elif given == "file":
        folder.write_text("not a folder")
    assert main(["train", *TINY_TRAIN, "--data-dir", str(folder), "--out", str(tmp_path / "run")]) == 1
    reason = {"missing": "no such folder", "empty": "it holds none of the files", "file": "is not a folder"}[given]
    one_line_error(capsys.readouterr().err, f"--data-dir {folder}", reason)
    assert not (tmp_path / "run").exists()


def test_download_goes_into_the_explicit_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision.datasets import mnist as torchvision_mnist

    monkeypatch.setenv("VAE_TUI_DATA", str(tmp_path / "elsewhere"))
    write_dataset(tmp_path / "elsewhere")
    mirror = tmp_path / "mirror"
    write_dataset(mirror, gz=True)

    def fetch(url: str, download_root: str, filename: str, md5: str) -> None:  # the network alone is replaced
        shutil.copy(mirror / filename, Path(download_root) / filename)
        torchvision_mnist.extract_archive(str(Path(download_root) / filename))

    monkeypatch.setattr(torchvision_mnist, "download_and_extract_archive", fetch)
    dataset = load_dataset("mnist", data_dir=tmp_path / "target", download=True)
    assert str(tmp_path / "target") in dataset.source and "(downloaded)" in dataset.source
    assert (tmp_path / "target" / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file()


def test_small_files_are_the_users_own_data_marked_unverified(tmp_path: Path) -> None:
    for dataset in ("mnist", "fashion-mnist"):
        write_dataset(tmp_path / dataset)
        loaded = load_dataset(dataset, data_dir=tmp_path)
        assert len(loaded.train.images) == 512
        assert loaded.source.endswith(
            f"unverified: 512 training and 128 test images, not the real {dataset}'s 60000 and 10000"
        )


def test_a_file_the_size_of_real_mnist_must_be_real_mnist(mnist_dir: Path) -> None:
    labels = bytes([0, 0, 8, 1]) + struct.pack(">I", 10000) + bytes(i % 10 for i in range(10000))
    (mnist_dir / "t10k-labels-idx1-ubyte").write_bytes(labels)  # the real test labels' size, not their content
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte fails its MD5 check .*not the real mnist"):
        load_dataset("mnist", data_dir=mnist_dir)


@needs_fashion_mnist
def test_fashion_mnist_offered_as_mnist_is_refused(tmp_path: Path) -> None:
    for gz in REAL_FASHION_MNIST.glob("*.gz"):
        (tmp_path / gz.stem).write_bytes(gzip.decompress(gz.read_bytes()))  # uncompressed, as MNIST
    with pytest.raises(DataError, match="fails its MD5 check .*not the real mnist"):
        load_dataset("mnist", data_dir=tmp_path)


@needs_fashion_mnist
def test_a_flipped_byte_in_uncompressed_real_data_is_refused(tmp_path: Path) -> None:
    for gz in REAL_FASHION_MNIST.glob("*.gz"):
        shutil.copy(gz, tmp_path / gz.name)
    labels = bytearray(gzip.decompress((tmp_path / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    labels[5000] ^= 1
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(bytes(labels))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte fails its MD5 check"):
        load_dataset("fashion-mnist", data_dir=tmp_path)
    labels[5000] ^= 1
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(bytes(labels))
    assert "unverified" not in load_dataset("fashion-mnist", data_dir=tmp_path).source


# --- folders and files that cannot be read --------------------------------------------------------


def test_empty_data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data_module, "DEBIAN_DIRS", {})
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no mnist data found"):
        load_dataset("mnist", data_dir=tmp_path / "empty")


def test_unreadable_data_file(mnist_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = Path.read_bytes

    def denied(self: Path) -> bytes:
        if self.name == "train-labels-idx1-ubyte":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", denied)  # root ignores chmod, so the OS error is simulated
    with pytest.raises(DataError, match="cannot read .*train-labels-idx1-ubyte: Permission denied"):
        load_dataset("mnist", data_dir=mnist_dir)


def test_gzip_bomb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gzip

    monkeypatch.setattr(data_module, "MAX_IDX_BYTES", 1 << 20)
    write_dataset(tmp_path, gz=True)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\0" * (2 << 20)))
    monkeypatch.setattr(data_module, "_torchvision_md5", lambda dataset: {})
    with pytest.raises(DataError, match="unpacks to more than 1 MB"):
        load_dataset("mnist", data_dir=tmp_path)


# --- fuzzing the IDX reader: only DataError comes out ---------------------------------------------


@functools.cache  # made once: the examples only read it
def valid_idx(kind: str) -> bytes:
    images, labels = make_split(20, seed=0)
    return idx_bytes(images if kind == "images" else labels)


@pytest.mark.fuzz
@FUZZ
@given(blob=st.binary(max_size=2048), ndim=st.sampled_from([1, 3]))
def test_idx_random_bytes(blob: bytes, ndim: int) -> None:
    with contextlib.suppress(DataError):
        parse_idx(blob, Path("fuzz"), ndim)


@pytest.mark.fuzz
@FUZZ
@given(kind=st.sampled_from(["images", "labels"]), gz=st.booleans(), edits=EDITS, cut=st.none() | st.integers(0, 20000))
def test_idx_mutations(tmp_path: Path, kind: str, gz: bool, edits: list, cut: int | None) -> None:
    content = valid_idx(kind)
    name = "train-images-idx3-ubyte" if kind == "images" else "train-labels-idx1-ubyte"
    data = gzip.compress(content, mtime=0) if gz else content
    path = tmp_path / (name + (".gz" if gz else ""))
    path.write_bytes(mutate(data, edits, cut))
    # MNIST with no MD5 known, so that every mutation reaches gunzip and the IDX parser
    with contextlib.suppress(DataError), mock.patch.object(data_module, "_torchvision_md5", lambda dataset: {}):
        parse_idx(read_idx_bytes(path, "mnist"), path, 3 if kind == "images" else 1)
