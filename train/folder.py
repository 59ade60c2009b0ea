"""Image folders, as `train --data DIR` reads them: listed once, decoded once into a uint8 store in the user cache.

Layouts, in the order they are recognised:

- ``DIR/train/<class>/...`` with ``DIR/test/<class>/...`` (or ``val/``): those are the splits;
- ``DIR/<class>/...``: a seeded, stratified tenth of each class is held out as the test split;
- images in ``DIR`` itself and no class folders: unlabelled, with a seeded held-out tenth.

Folders are read recursively; a link is followed only to a place inside DIR, never twice (no loops). Only regular
files whose extension is an image format's are listed; hidden files and folders (a leading dot) are left out.
Class names are the folder names, made printable. The listing (paths, sizes, modification times, classes, splits)
has a digest: the store's key with the size and colour settings, so the next run on the same folder decodes nothing.

A store is ``images.npy`` (N, C, S, S) uint8, memory-mapped where it is opened, and ``info.json`` (labels, splits,
class names, what was damaged), in ``$XDG_CACHE_HOME/vae-tui/stores/<key>/`` (``~/.cache`` by default), built in a
temporary folder and renamed into place whole. Images are decoded on every usable core, each through the one image
opener (train/image_file.py): regular files, an allow-list of raster formats, sizes checked from the header.
"""

import hashlib
import json
import math
import os
import random
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from models.errors import UserError
from models.text import printable
from train.cache import user_cache_dir
from train.image_file import ImageRefused, open_image

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".pnm"}
)
TEST_FOLDERS = ("test", "val")  # DIR/train/ beside one of these: the splits as given
TEST_FRACTION = 0.1  # held out where the folder has no test split
MIN_SIZE, MAX_SIZE = 8, 128  # --image-size
DEFAULT_SIZE = 64  # where the images do not all share one size of at most MAX_SIZE
MAX_FILES = 2_000_000  # images in one folder
MAX_DAMAGED = 0.01  # above this share of damaged images, --skip-damaged is needed
STORE_VERSION = 1  # raised when the store's layout or its decoding changes: older stores are then not reused
CHUNK = 256  # images a worker decodes at a time
RESIZE_MODES = ("crop", "fit")


@dataclass(frozen=True)
class Entry:
    """One image file of a listing: its path under the folder, size, modification time, class (-1: none), split."""

    path: str
    size: int
    mtime_ns: int
    label: int
    split: str  # "train" or "test"


@dataclass
class Listing:
    """What an image folder holds, before anything is decoded."""

    root: Path
    layout: str  # "splits", "classes" or "flat"
    class_names: list[str]
    entries: list[Entry]
    test_source: str  # where the test split comes from, as the summary says it
    ignored: int = 0  # files whose extension is not an image format's
    loose: int = 0  # images directly in a folder whose images are in class folders: left out
    outside: int = 0  # links to places outside the folder, or already seen (loops): not followed

    @property
    def labelled(self) -> bool:
        return self.layout != "flat"

    def digest(self) -> str:
        """SHA-256 of the listing: each file's path, size, time, class and split, and the class names."""
        hasher = hashlib.sha256(json.dumps([self.layout, self.class_names]).encode())
        for e in self.entries:
            hasher.update(
                f"{e.path}\0{e.size}\0{e.mtime_ns}\0{e.label}\0{e.split}\n".encode("utf-8", "surrogateescape")
            )
        return hasher.hexdigest()

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per split and class name ("" for an unlabelled folder)."""
        table: dict[str, dict[str, int]] = {"train": {}, "test": {}}
        for e in self.entries:
            name = self.class_names[e.label] if e.label >= 0 else ""
            table[e.split][name] = table[e.split].get(name, 0) + 1
        return table


def _walk(root: Path, real_root: str, seen: set[tuple[int, int]], listing: Listing) -> Iterator[tuple[str, Path]]:
    """(kind, path) under root, recursively, in name order: kind "file" (an image file) or "dir" (a class folder
    at the top is told by the caller). Links are followed inside real_root only, each folder once."""
    try:
        with os.scandir(root) as it:
            names = sorted(it, key=lambda e: e.name)
    except OSError as e:
        raise UserError(f"cannot read {printable(str(root))}: {e.strerror or e}") from None
    for entry in names:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        try:
            info = os.stat(path)  # links followed
        except OSError:
            continue  # a dangling link
        real = os.path.realpath(path)
        if entry.is_symlink() and not (real == real_root or real.startswith(real_root + os.sep)):
            listing.outside += 1
            continue
        if stat.S_ISDIR(info.st_mode):
            if (info.st_dev, info.st_ino) in seen:
                listing.outside += 1
                continue
            seen.add((info.st_dev, info.st_ino))
            yield from _walk(path, real_root, seen, listing)
        elif stat.S_ISREG(info.st_mode):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                yield "file", path
            else:
                listing.ignored += 1


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_dir())
    except OSError as e:
        raise UserError(f"cannot read {printable(str(folder))}: {e.strerror or e}") from None


def _images_in(folder: Path) -> list[Path]:
    """The image files directly in folder (not in its subfolders)."""
    try:
        return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)
    except OSError as e:
        raise UserError(f"cannot read {printable(str(folder))}: {e.strerror or e}") from None


def list_folder(root: Path, test_fraction: float = TEST_FRACTION, seed: int = 0) -> Listing:
    """The listing of an image folder; a UserError in one line when it is not one or holds no images."""
    shown = printable(str(root))
    if not root.is_dir():
        raise UserError(f"--data {shown}: {'no such folder' if not root.exists() else 'not a folder'}")
    real_root = os.path.realpath(root)
    top = _subfolders(root)
    names = {p.name: p for p in top}
    test_name = next((name for name in TEST_FOLDERS if name in names), None)
    if "train" in names and test_name is not None:
        classes = sorted({p.name for split in ("train", test_name) for p in _subfolders(names[split])})
        listing = Listing(root, "splits", [printable(c) for c in classes], [], f"{test_name}/")
        for split, folder in (("train", names["train"]), ("test", names[test_name])):
            for index, name in enumerate(classes):
                if (folder / name).is_dir():
                    _add(listing, folder / name, index, split, real_root)
            listing.loose += len(_images_in(folder))
    elif top and any(True for p in top for _ in _walk_images(p, real_root)):
        listing = Listing(root, "classes", [printable(p.name) for p in top], [], "")
        for index, folder in enumerate(top):
            _add(listing, folder, index, "train", real_root)
        listing.loose = len(_images_in(root))
        _hold_out(listing, test_fraction, seed)
    else:
        listing = Listing(root, "flat", [], [], "")
        _add(listing, root, -1, "train", real_root)
        _hold_out(listing, test_fraction, seed)
    if not listing.entries:
        raise UserError(f"--data {shown} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if len(listing.entries) > MAX_FILES:
        raise UserError(f"--data {shown} holds {len(listing.entries):,} images: more than {MAX_FILES:,}")
    if listing.labelled:
        empty = [n for i, n in enumerate(listing.class_names) if not any(e.label == i for e in listing.entries)]
        if empty:
            raise UserError(f"--data {shown}: the class folder {empty[0]} holds no images")
    if not any(e.split == "test" for e in listing.entries):
        raise UserError(f"--data {shown}: no image is left for the test split (too few images, or an empty test/)")
    if not any(e.split == "train" for e in listing.entries):
        raise UserError(f"--data {shown}: no image is left to train on")
    return listing


def _walk_images(folder: Path, real_root: str) -> Iterator[tuple[str, Path]]:
    return _walk(folder, real_root, set(), Listing(folder, "", [], [], ""))


def _add(listing: Listing, folder: Path, label: int, split: str, real_root: str) -> None:
    """Every image file under folder, with label and split."""
    seen = {(s.st_dev, s.st_ino) for s in [os.stat(folder)]}
    for _, path in _walk(folder, real_root, seen, listing):
        info = os.stat(path)
        relative = path.relative_to(listing.root).as_posix()
        listing.entries.append(Entry(relative, info.st_size, info.st_mtime_ns, label, split))


def _hold_out(listing: Listing, fraction: float, seed: int) -> None:
    """Move a seeded share of each class (or of all images, unlabelled) to the test split: round(fraction * n),
    at least one of a class of two or more images."""
    by_label: dict[int, list[int]] = {}
    for i, entry in enumerate(listing.entries):
        by_label.setdefault(entry.label, []).append(i)
    held = set()
    for label, indices in sorted(by_label.items()):
        count = max(1, round(fraction * len(indices))) if len(indices) >= 2 else 0
        held.update(random.Random(f"{seed}/{label}").sample(indices, count))
    listing.entries = [
        Entry(e.path, e.size, e.mtime_ns, e.label, "test" if i in held else "train")
        for i, e in enumerate(listing.entries)
    ]
    listing.test_source = (
        f"{fraction:.0%} of each class held out (seed {seed})"
        if listing.labelled
        else (f"{fraction:.0%} held out (seed {seed})")
    )


# --- decoding ---------------------------------------------------------------------------------------------------


def to_rgb(image: Image.Image) -> Image.Image:
    """The first frame as 8-bit RGB: 16-bit and 32-bit grey scaled down, a palette expanded, alpha composited over
    black."""
    image.seek(0)
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        grey = np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if "A" in mode or (mode == "P" and "transparency" in image.info) or mode == "LA":
        rgba = np.asarray(image.convert("RGBA"), dtype=np.uint16)
        rgb = (rgba[..., :3] * rgba[..., 3:4] + 127) // 255  # over black
        return Image.fromarray(rgb.astype(np.uint8), "RGB")
    return image.convert("RGB")


def fitted(image: Image.Image, size: int, resize: str) -> Image.Image:
    """image made size x size: "crop" takes the centred square, "fit" pads the whole image to a square with black;
    then area averaging (a box filter) down to size, or bilinear where it is smaller."""
    width, height = image.size
    if width != height:
        if resize == "crop":
            side = min(width, height)
            left, top = (width - side) // 2, (height - side) // 2
            image = image.crop((left, top, left + side, top + side))
        else:
            side = max(width, height)
            square = Image.new(image.mode, (side, side))
            square.paste(image, ((side - width) // 2, (side - height) // 2))
            image = square
    if image.size != (size, size):
        smaller = image.size[0] > size
        image = image.resize((size, size), Image.Resampling.BOX if smaller else Image.Resampling.BILINEAR)
    return image


def decode_one(path: Path, size: int, resize: str) -> tuple[np.ndarray, tuple[int, int]]:
    """One image file as (3, size, size) uint8 RGB, and its own (width, height); ImageRefused if it is refused."""
    with open_image(path) as image:
        native = image.size
        rgb = fitted(to_rgb(image), size, resize)
        return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1), native


def _decode_chunk(job: tuple[str, list[tuple[int, str]], str, int, str]) -> tuple[list, list, list]:
    """In a worker: decode the chunk's images into the store being built; returns, per image, its index and own
    size, whether it is grey, and the damaged ones' (index, reason)."""
    images_path, chunk, root, size, resize = job
    store = np.load(images_path, mmap_mode="r+")
    sizes, grey, damaged = [], [], []
    for index, relative in chunk:
        try:
            pixels, native = decode_one(Path(root) / relative, size, resize)
        except ImageRefused as e:
            damaged.append((index, str(e)))
            continue
        store[index] = pixels
        sizes.append((index, native))
        grey.append(bool((pixels[0] == pixels[1]).all() and (pixels[1] == pixels[2]).all()))
    store.flush()
    return sizes, grey, damaged


@dataclass
class Store:
    """A decoded image folder: images (N, C, S, S) uint8 (memory-mapped), labels (N,) (-1: none), splits."""

    path: Path
    images: np.ndarray
    labels: np.ndarray
    is_test: np.ndarray
    info: dict = field(repr=False)
    built_now: bool = False  # decoded by this call, not found in the cache

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def size(self) -> int:
        return int(self.images.shape[2])


def stores_dir() -> Path:
    """Where stores live: the user cache's vae-tui/stores (XDG_CACHE_HOME, else ~/.cache)."""
    return user_cache_dir() / "stores"


def store_key(listing: Listing, size: int | None, channels: int | None, resize: str) -> str:
    settings = json.dumps([STORE_VERSION, listing.digest(), size, channels, resize])
    return hashlib.sha256(settings.encode()).hexdigest()[:32]


def open_store(folder: Path) -> Store:
    """A store built before: its images memory-mapped, its info read."""
    info = json.loads((folder / "info.json").read_text())
    images = np.load(folder / "images.npy", mmap_mode="r")
    labels = np.asarray(info["labels"], dtype=np.int64)
    is_test = np.asarray(info["is_test"], dtype=bool)
    return Store(folder, images, labels, is_test, info)


def _default_size(listing: Listing, sample: int = 64) -> int:
    """The images' own size where the first ones (a sample of the listing) are all square and share one of at most
    MAX_SIZE, else DEFAULT_SIZE; the decode checks the rest and starts again at DEFAULT_SIZE if one differs."""
    sizes = set()
    for entry in listing.entries[:sample]:
        try:
            with open_image(listing.root / entry.path) as image:
                sizes.add(image.size)
        except ImageRefused:
            continue
    if len(sizes) == 1:
        ((width, height),) = sizes
        if width == height and MIN_SIZE <= width <= MAX_SIZE:
            return width
    return DEFAULT_SIZE


def build_store(
    listing: Listing,
    size: int | None = None,
    channels: int | None = None,
    resize: str = "crop",
    skip_damaged: bool = False,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> Store:
    """The store of listing at size (None: the images' own, see _default_size) and channels (None: 3 where any image
    has colour, else 1), built unless one with the same key is in the cache. progress(done, total) as images
    are decoded. Damaged images are left out; more than MAX_DAMAGED of them is a UserError unless skip_damaged."""
    key = store_key(listing, size, channels, resize)
    final = stores_dir() / key
    if (final / "info.json").is_file():
        try:
            return open_store(final)
        except (OSError, ValueError, KeyError):
            shutil.rmtree(final, ignore_errors=True)  # a store damaged since: built again
    chosen = size or _default_size(listing)
    while True:
        result = _decode_all(listing, chosen, channels, resize, workers, progress, size is None)
        if result is not None:
            break
        chosen = DEFAULT_SIZE  # the images do not share the size the first ones had
    tmp, sizes, damaged, colour = result
    total = len(listing.entries)
    if damaged and len(damaged) > MAX_DAMAGED * total and not skip_damaged:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(_damaged_line(listing, damaged, total) + ": give --skip-damaged to train without them")
    keep = np.asarray(sorted(set(range(total)) - {i for i, _ in damaged}), dtype=np.int64)
    raw = np.load(tmp / "rgb.npy", mmap_mode="r")
    out_channels = channels or (3 if colour else 1)
    images = np.lib.format.open_memmap(
        tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(len(keep), out_channels, chosen, chosen)
    )
    for start in range(0, len(keep), 4096):
        part = np.asarray(raw[keep[start : start + 4096]])
        if out_channels == 1:  # grey as Pillow's convert("L"): ITU-R 601-2 luma (grey pixels stay as they are)
            wide = part.astype(np.uint32)
            luma = (wide[:, 0] * 299 + wide[:, 1] * 587 + wide[:, 2] * 114 + 500) // 1000
            images[start : start + len(part), 0] = luma.astype(np.uint8)
        else:
            images[start : start + len(part)] = part
    images.flush()
    del raw, images
    (tmp / "rgb.npy").unlink()
    entries = [listing.entries[i] for i in keep.tolist()]
    info = {
        "version": STORE_VERSION,
        "folder": listing.root.name,
        "layout": listing.layout,
        "class_names": listing.class_names,
        "test_source": listing.test_source,
        "digest": listing.digest(),
        "size": chosen,
        "channels": out_channels,
        "colour": colour,
        "resize": resize,
        "own_sizes": sorted({f"{w}x{h}" for w, h in sizes})[:20],
        "labels": [e.label for e in entries],
        "is_test": [e.split == "test" for e in entries],
        "damaged": [[listing.entries[i].path, reason] for i, reason in damaged[:100]],
        "damaged_count": len(damaged),
        "ignored": listing.ignored,
        "loose": listing.loose,
        "outside": listing.outside,
    }
    (tmp / "info.json").write_text(json.dumps(info))
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(tmp, final)
    except OSError:  # another process built it meanwhile: theirs is as good
        shutil.rmtree(tmp, ignore_errors=True)
    store = open_store(final)
    store.built_now = True
    return store


def _damaged_line(listing: Listing, damaged: list[tuple[int, str]], total: int) -> str:
    named = ", ".join(printable(listing.entries[i].path) for i, _ in damaged[:3])
    more = f" and {len(damaged) - 3} more" if len(damaged) > 3 else ""
    return f"{len(damaged)} of {total:,} images are damaged or not images vae-tui reads ({named}{more})"


def damaged_summary(store: Store) -> str:
    """How many images were left out as damaged, the first ones named ("" when none)."""
    count = store.info["damaged_count"]
    if not count:
        return ""
    named = ", ".join(printable(path) for path, _ in store.info["damaged"][:3])
    more = f" and {count - 3} more" if count > 3 else ""
    return f"{count} damaged image{'s' if count > 1 else ''} ({named}{more})"


def _decode_all(
    listing: Listing,
    size: int,
    channels: int | None,
    resize: str,
    workers: int,
    progress: Callable[[int, int], None] | None,
    own_size: bool,
) -> tuple[Path, list, list, bool] | None:
    """Decode every image into a temporary folder's rgb.npy; None when own_size and an image's own size is not
    size (the caller starts again at DEFAULT_SIZE)."""
    import multiprocessing

    stores_dir().mkdir(parents=True, exist_ok=True)
    tmp = Path(stores_dir()) / f".building-{os.getpid()}-{random.getrandbits(32):08x}"
    tmp.mkdir()
    total = len(listing.entries)
    rgb = np.lib.format.open_memmap(tmp / "rgb.npy", mode="w+", dtype=np.uint8, shape=(total, 3, size, size))
    del rgb
    indexed = [(i, e.path) for i, e in enumerate(listing.entries)]
    jobs = [
        (str(tmp / "rgb.npy"), indexed[s : s + CHUNK], str(listing.root), size, resize) for s in range(0, total, CHUNK)
    ]
    sizes, damaged, colour, done = [], [], False, 0
    try:
        if workers > 1 and len(jobs) > 1:
            context = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
            with context.Pool(min(workers, len(jobs))) as pool:
                results = pool.imap_unordered(_decode_chunk, jobs)
                for (chunk_sizes, grey, chunk_damaged), _ in zip(results, jobs, strict=True):
                    sizes += chunk_sizes
                    damaged += chunk_damaged
                    colour = colour or not all(grey)
                    done += len(chunk_sizes) + len(chunk_damaged)
                    if progress:
                        progress(done, total)
        else:
            for job in jobs:
                chunk_sizes, grey, chunk_damaged = _decode_chunk(job)
                sizes += chunk_sizes
                damaged += chunk_damaged
                colour = colour or not all(grey)
                done += len(chunk_sizes) + len(chunk_damaged)
                if progress:
                    progress(done, total)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    own = {native for _, native in sizes}
    if own_size and own != {(size, size)} and size != DEFAULT_SIZE:
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    damaged.sort()
    return tmp, [native for _, native in sizes], damaged, colour


def store_bytes(store: Store) -> int:
    return int(math.prod(store.images.shape))
