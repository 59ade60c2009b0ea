"""Find, verify and load FashionMNIST / MNIST as uint8 tensors, offline first.

An explicit --data-dir is the only place looked at (an error names it when the files are not
there; with --download they are fetched into it). Without it the search order is
$VAE_TUI_DATA, Debian's dataset-fashion-mnist package, the user cache. In each folder the
files may sit in torchvision's layout (``<root>/FashionMNIST/raw``), in a folder named after
the dataset, or flat; gzipped or not. Downloads happen only when asked, through torchvision's
own dataset class (its mirrors and MD5 checks).

Verification, the same rule for both datasets, gzipped or not: a file whose IDX header
announces the size of one of the real files (60000 or 10000 images of 28x28, or as many
labels) claims to be the real dataset, so its content must match the real file's MD5 (or,
gzipped, torchvision's MD5 of the .gz): a flipped byte, a truncation, or FashionMNIST offered
as MNIST is refused. A file of any other size is the user's own data in the same format (the
tests train on 512 images): it is loaded, and the dataset's source says "unverified".
"""

import hashlib
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from models.errors import CheckpointError, DataError
from models.names import DATASET_NAMES
from train.cache import user_cache_dir

if TYPE_CHECKING:
    from models import Checkpoint

TORCHVISION_CLASSES = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST"}
CLASS_NAMES = {
    "fashion-mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    "mnist": [str(digit) for digit in range(10)],
}
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
DEBIAN_DIRS = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}
# MD5 of the uncompressed files, so that any gzip of the real data verifies (Debian
# recompressed theirs); torchvision's MD5s of its .gz files are accepted as well.
CONTENT_MD5 = {
    "fashion-mnist": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
}
REAL_SHAPES = {(60000, 28, 28), (10000, 28, 28), (60000,), (10000,)}  # of the four files, in both datasets
IDX_UBYTE = 0x08
MAX_IDX_BYTES = 256 << 20  # the largest real file, 60000 images of 28x28, is 47 MB


@dataclass
class Split:
    """One split in memory: images (N, H, W) grey or (N, 3, H, W) RGB, uint8, and labels (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor


@dataclass
class Dataset:
    """Both splits of a dataset and where they came from."""

    name: str
    class_names: list[str]
    train: Split
    test: Split
    source: str  # folder the files were read from, which option pointed there, and whether it is the real dataset
    record: dict | None = None  # an image folder's: what the checkpoint records of it (train/folder.py's folder_record)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of its images: (1, 28, 28) for the IDX datasets."""
        shape = tuple(self.train.images.shape[1:])
        return (1, *shape) if len(shape) == 2 else shape


def candidate_roots(dataset: str) -> list[tuple[Path, str]]:
    """The folders searched when no --data-dir is given, in order, each with the option that names it."""
    roots = []
    if os.environ.get("VAE_TUI_DATA"):
        roots.append((Path(os.environ["VAE_TUI_DATA"]).expanduser(), "$VAE_TUI_DATA"))
    if dataset in DEBIAN_DIRS:
        roots.append((DEBIAN_DIRS[dataset], "Debian package dataset-fashion-mnist"))
    roots.append((user_cache_dir(), "user cache"))
    return roots


def _find_files(root: Path, dataset: str) -> dict[str, Path] | None:
    """The four IDX files under root (gzipped preferred), or None when root holds none of them."""
    names = [name for pair in SPLIT_FILES.values() for name in pair]
    for folder in (root / TORCHVISION_CLASSES[dataset] / "raw", root / dataset, root):
        found = {}
        for name in names:
            for candidate in (folder / f"{name}.gz", folder / name):
                if candidate.is_file():
                    found[name] = candidate
                    break
        if len(found) == len(names):
            return found
        if found:
            missing = ", ".join(sorted(set(names) - set(found)))
            raise DataError(f"{dataset} data in {folder} is incomplete: missing {missing}")
    return None


def locate(dataset: str, data_dir: str | Path | None = None, download: bool = False) -> tuple[dict[str, Path], str]:
    """Return the dataset's files and a description of where they were found."""
    if dataset not in DATASET_NAMES:
        raise DataError(f"unknown dataset {dataset!r}: choose from {', '.join(DATASET_NAMES)}")
    if data_dir:
        return _locate_in(dataset, Path(data_dir).expanduser(), download)
    roots = candidate_roots(dataset)
    for root, origin in roots:
        if root.is_dir() and (files := _find_files(root, dataset)):
            return files, f"{next(iter(files.values())).parent} ({origin})"
    if download:
        target = roots[0][0] if roots[0][1] == "$VAE_TUI_DATA" else user_cache_dir()
        _download(dataset, target)
        if files := _find_files(target, dataset):
            return files, f"{next(iter(files.values())).parent} (downloaded)"
    debian = " install Debian's dataset-fashion-mnist," if dataset in DEBIAN_DIRS else ""
    raise DataError(
        f"no {dataset} data found: pass --data-dir DIR, set $VAE_TUI_DATA,{debian}"
        f" put the files in {user_cache_dir()}, or add --download"
    )


def _locate_in(dataset: str, root: Path, download: bool) -> tuple[dict[str, Path], str]:
    """The files in an explicit --data-dir (downloaded into it when asked); never a copy found elsewhere."""
    if root.exists() and not root.is_dir():
        raise DataError(f"--data-dir {root} is not a folder")
    if root.is_dir() and (files := _find_files(root, dataset)):
        return files, f"{next(iter(files.values())).parent} (--data-dir)"
    if download:
        _download(dataset, root)
        if files := _find_files(root, dataset):
            return files, f"{next(iter(files.values())).parent} (downloaded)"
    reason = "it holds none of the files" if root.is_dir() else "no such folder"
    debian = ", Debian's dataset-fashion-mnist" if dataset in DEBIAN_DIRS else ""
    raise DataError(
        f"no {dataset} data found in --data-dir {root} ({reason}): put the four IDX files there, add --download"
        f" to fetch them into it, or leave out --data-dir to search $VAE_TUI_DATA{debian} and {user_cache_dir()}"
    )


def _download(dataset: str, root: Path) -> None:
    """Download through torchvision's dataset class: its mirrors, layout and MD5 checks."""
    from torchvision import datasets

    try:
        root.mkdir(parents=True, exist_ok=True)
        getattr(datasets, TORCHVISION_CLASSES[dataset])(root=str(root), train=True, download=True)
    except (RuntimeError, OSError) as e:
        reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise DataError(f"downloading {dataset} into {root} failed: {reason}") from None


def _torchvision_md5(dataset: str) -> dict[str, str]:
    """torchvision's MD5 for each .gz file of the dataset."""
    from torchvision import datasets

    return dict(getattr(datasets, TORCHVISION_CLASSES[dataset]).resources)


def read_idx_bytes(path: Path, dataset: str) -> bytes:
    """The uncompressed content of one IDX file; one the size of a real file must be that file (module docstring).

    The MD5 of the content holds for any gzip of the real data (Debian recompressed theirs); a .gz
    file with torchvision's MD5 is the download itself and passes too (torchvision is imported only then).
    """
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror}") from None
    content = _gunzip(raw, path) if path.suffix == ".gz" else raw
    content_md5 = CONTENT_MD5[dataset].get(path.name.removesuffix(".gz"))
    if idx_shape(content) in REAL_SHAPES and hashlib.md5(content).hexdigest() != content_md5:
        gz_md5 = _torchvision_md5(dataset).get(path.name) if path.suffix == ".gz" else None
        if gz_md5 is None or hashlib.md5(raw).hexdigest() != gz_md5:
            raise DataError(_md5_mismatch(path, dataset))
    return content


def idx_shape(raw: bytes) -> tuple[int, ...] | None:
    """The shape an IDX file of unsigned bytes announces in its header, or None if it has no readable header."""
    ndim = raw[3] if len(raw) >= 4 and raw[:3] == bytes([0, 0, IDX_UBYTE]) else 0
    if ndim == 0 or len(raw) < 4 + 4 * ndim:
        return None
    return struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])


def _gunzip(raw: bytes, path: Path) -> bytes:
    """Decompress a gzip file (all its members), refusing one that would grow past MAX_IDX_BYTES."""
    out, size, rest = [], 0, raw
    try:
        while rest:
            decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out.append(decompressor.decompress(rest, MAX_IDX_BYTES - size + 1))
            size += len(out[-1])
            if decompressor.unconsumed_tail or size > MAX_IDX_BYTES:
                raise DataError(f"{path} unpacks to more than {MAX_IDX_BYTES >> 20} MB: not an MNIST-style file")
            if not decompressor.eof:
                raise DataError(f"{path} is not a valid gzip file (truncated): delete it and fetch it again")
            rest = decompressor.unused_data
    except zlib.error as e:
        raise DataError(f"{path} is not a valid gzip file ({e}): delete it and fetch it again") from None
    return b"".join(out)


def _md5_mismatch(path: Path, dataset: str) -> str:
    return f"{path} fails its MD5 check (corrupted, or not the real {dataset}): delete it and fetch it again"


def parse_idx(raw: bytes, path: Path, ndim: int) -> torch.Tensor:
    """Parse an IDX file of unsigned bytes with ndim dimensions into a uint8 tensor."""
    if len(raw) < 4 + 4 * ndim or raw[0] != 0 or raw[1] != 0 or raw[2] != IDX_UBYTE or raw[3] != ndim:
        raise DataError(f"{path} is not an IDX file of {ndim}-d unsigned bytes (bad magic number)")
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    offset = 4 + 4 * ndim
    if len(raw) - offset != math.prod(dims):
        raise DataError(
            f"{path} is truncated or corrupted: header says {dims}, found {len(raw) - offset} bytes of data"
        )
    if math.prod(dims) == 0:
        raise DataError(f"{path} holds no data")
    return torch.frombuffer(bytearray(raw[offset:]), dtype=torch.uint8).view(*dims)


def read_split(files: dict[str, Path], split: str, dataset: str) -> Split:
    """Read one split into memory once, checking images and labels agree."""
    image_name, label_name = SPLIT_FILES[split]
    images = parse_idx(read_idx_bytes(files[image_name], dataset), files[image_name], ndim=3)
    labels = parse_idx(read_idx_bytes(files[label_name], dataset), files[label_name], ndim=1)
    if images.shape[1:] != (28, 28):
        raise DataError(f"{files[image_name]} holds {tuple(images.shape[1:])} images, expected 28x28")
    if len(images) != len(labels):
        raise DataError(
            f"{split} split has {len(images)} images but {len(labels)} labels: the files do not belong together"
        )
    if int(labels.max()) >= len(CLASS_NAMES[dataset]):
        raise DataError(
            f"{files[label_name]} has label {int(labels.max())}, but {dataset} has {len(CLASS_NAMES[dataset])} classes"
        )
    return Split(images=images, labels=labels.long())


def load_dataset(dataset: str, data_dir: str | Path | None = None, download: bool = False) -> Dataset:
    """Find the dataset's files, verify them and read both splits into uint8 tensors."""
    files, source = locate(dataset, data_dir, download)
    train, test = read_split(files, "train", dataset), read_split(files, "test", dataset)
    if not all(tuple(split.images.shape) in REAL_SHAPES for split in (train, test)):
        source += (
            f", unverified: {len(train.images)} training and {len(test.images)} test images,"
            f" not the real {dataset}'s 60000 and 10000"
        )
    return Dataset(name=dataset, class_names=CLASS_NAMES[dataset], train=train, test=test, source=source)


def load_test_split(dataset: str, data_dir: str | Path | None = None) -> Split:
    """Only the test split of a dataset found on this machine (nothing is downloaded)."""
    files, _ = locate(dataset, data_dir)
    return read_split(files, "test", dataset)


def check_model_fits_data(checkpoint: "Checkpoint") -> None:
    """A checkpoint of a dataset vae-tui knows must have that dataset's number of classes.

    The image size (28x28) is checked by the loader; a checkpoint naming another dataset can
    still be drawn (explore, sample), and eval and train refuse it by name.
    """
    names = CLASS_NAMES.get(checkpoint.dataset)
    if names is not None and checkpoint.config.num_classes != len(names):
        raise CheckpointError(
            f"{checkpoint.path} holds a model of {checkpoint.config.num_classes} classes, but {checkpoint.dataset}"
            f" has {len(names)}: it cannot be used with {checkpoint.dataset}"
        )
