"""Find, verify and load FashionMNIST / MNIST as uint8 tensors, offline first.

Search order: --data-dir, $VAE_TUI_DATA, Debian's dataset-fashion-mnist package, the user
cache. In each folder the files may sit in torchvision's layout (``<root>/FashionMNIST/raw``),
in a folder named after the dataset, or flat; gzipped or not. Downloads happen only when
asked, through torchvision's own dataset class (its mirrors and MD5 checks).
"""

import hashlib
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from models.errors import DataError

DATASET_NAMES = ("fashion-mnist", "mnist")
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
    "mnist": {},
}
IDX_UBYTE = 0x08
MAX_IDX_BYTES = 256 << 20  # the largest real file, 60000 images of 28x28, is 47 MB


@dataclass
class Split:
    """One split in memory: images (N, 28, 28) uint8 and labels (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor


@dataclass
class Dataset:
    """Both splits of a dataset and where they came from."""

    name: str
    class_names: list[str]
    train: Split
    test: Split
    source: str  # folder the files were read from, and which option pointed there


def user_cache_dir() -> Path:
    """$XDG_CACHE_HOME/vae-tui, or ~/.cache/vae-tui."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vae-tui"


def candidate_roots(dataset: str, data_dir: str | Path | None) -> list[tuple[Path, str]]:
    """The folders searched, in order, each with the option that names it."""
    roots = []
    if data_dir:
        roots.append((Path(data_dir).expanduser(), "--data-dir"))
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
    roots = candidate_roots(dataset, data_dir)
    for root, origin in roots:
        if root.is_dir() and (files := _find_files(root, dataset)):
            return files, f"{next(iter(files.values())).parent} ({origin})"
    if download:
        target = roots[0][0] if roots[0][1] != "Debian package dataset-fashion-mnist" else user_cache_dir()
        _download(dataset, target)
        if files := _find_files(target, dataset):
            return files, f"{next(iter(files.values())).parent} (downloaded)"
    debian = " install Debian's dataset-fashion-mnist," if dataset in DEBIAN_DIRS else ""
    raise DataError(
        f"no {dataset} data found: pass --data-dir DIR, set $VAE_TUI_DATA,{debian}"
        f" put the files in {user_cache_dir()}, or add --download"
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
    """The uncompressed content of one IDX file, verified against a known MD5 where there is one.

    The MD5 of the content is checked when we know it (it holds for any gzip of the real
    data); otherwise a .gz file is checked against torchvision's MD5 for it.
    """
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror}") from None
    name = path.name.removesuffix(".gz")
    content_md5 = CONTENT_MD5[dataset].get(name)
    gz_md5 = _torchvision_md5(dataset).get(path.name) if content_md5 is None and path.suffix == ".gz" else None
    if gz_md5 is not None and hashlib.md5(raw).hexdigest() != gz_md5:
        raise DataError(_md5_mismatch(path, dataset))
    if path.suffix == ".gz":
        raw = _gunzip(raw, path)
    if content_md5 is not None and hashlib.md5(raw).hexdigest() != content_md5:
        raise DataError(_md5_mismatch(path, dataset))
    return raw


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
    return Dataset(
        name=dataset,
        class_names=CLASS_NAMES[dataset],
        train=read_split(files, "train", dataset),
        test=read_split(files, "test", dataset),
        source=source,
    )
