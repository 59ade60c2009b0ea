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

import contextlib
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
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from models.errors import UserError
from models.text import printable
from train.cache import user_cache_dir
from train.image_file import ImageRefused, open_image, quiet_images

if TYPE_CHECKING:
    from train.data import Dataset

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


class _Walker:
    """Walks an image folder once: links are followed only to places inside the root (a folder reached through
    any path is checked, not only a link), and each folder and file once (the first path that reaches it wins)."""

    def __init__(self, root: Path, listing: Listing) -> None:
        self.real_root = os.path.realpath(root)
        self.listing = listing
        self.seen: set[tuple[int, int]] = set()
        self.claimed: set[tuple[int, int]] = set()  # class folders: walked as their class only

    def inside(self, path: Path) -> bool:
        real = os.path.realpath(path)
        return real == self.real_root or real.startswith(self.real_root + os.sep)

    def folder(self, path: Path, as_class: bool = False) -> bool:
        """Whether path is a folder inside the root not walked yet (then it counts as walked); a class folder is
        walked only as_class, from its own place."""
        try:
            info = os.stat(path)
        except OSError:
            return False
        if not stat.S_ISDIR(info.st_mode):
            return False
        key = (info.st_dev, info.st_ino)
        if not self.inside(path) or key in self.seen or (key in self.claimed and not as_class):
            self.listing.outside += 1
            return False
        self.seen.add(key)
        return True

    def files(self, folder: Path | str) -> Iterator[tuple[str, os.stat_result]]:
        """(path, stat) of each image file under folder (walked already by folder()), recursively, in name order;
        paths as strings (70,000 files: pathlib's objects cost more than the stats)."""
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            raise UserError(f"cannot read {printable(str(folder))}: {e.strerror or e}") from None
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            try:
                link, info = entry.is_symlink(), entry.stat()  # links followed
            except OSError:
                continue  # a dangling link, or gone since
            if stat.S_ISDIR(info.st_mode):
                if self.folder(Path(entry.path)):
                    yield from self.files(entry.path)
            elif stat.S_ISREG(info.st_mode):
                dot = name.rfind(".")
                if dot <= 0 or name[dot:].lower() not in IMAGE_SUFFIXES:
                    self.listing.ignored += 1
                elif (link and not self.inside(Path(entry.path))) or (info.st_dev, info.st_ino) in self.seen:
                    self.listing.outside += 1
                else:
                    self.seen.add((info.st_dev, info.st_ino))
                    yield entry.path, info

    def relative(self, path: str) -> str:
        """path under the listing's root, with / between its parts."""
        return os.path.relpath(path, self.listing.root).replace(os.sep, "/")

    def add(self, folder: Path, label: int, split: str) -> None:
        """Every image file under folder, with label and split."""
        if not self.folder(folder, as_class=True):
            return
        prefix = str(self.listing.root).rstrip(os.sep) + os.sep
        for path, info in self.files(folder):
            relative = path[len(prefix) :] if path.startswith(prefix) else self.relative(path)
            relative = relative.replace(os.sep, "/")
            self.listing.entries.append(Entry(relative, info.st_size, info.st_mtime_ns, label, split))


def _subfolders(folder: Path) -> list[Path]:
    """The folders directly in folder (links among them too: the walk checks where they lead), by name."""
    try:
        return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_dir())
    except OSError as e:
        raise UserError(f"cannot read {printable(str(folder))}: {e.strerror or e}") from None


def _images_in(folder: Path) -> list[Path]:
    """The image files directly in folder (not in its subfolders)."""
    try:
        return sorted(
            p
            for p in folder.iterdir()
            if not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
    except OSError as e:
        raise UserError(f"cannot read {printable(str(folder))}: {e.strerror or e}") from None


def _has_images(folder: Path) -> bool:
    """Whether any image file lies under folder, at any depth (a quick look: os.walk, links not followed)."""
    suffixes = tuple(IMAGE_SUFFIXES)
    return any(name.lower().endswith(suffixes) for _, _, files in os.walk(folder) for name in files)


def _class_folders(folders: list[Path], walker: "_Walker") -> list[Path]:
    """The folders that are classes: inside the root, each once (a link to a class folder, or out of the root, is
    not one: counted as outside); claimed, so that no link from elsewhere walks them again."""
    kept = []
    for folder in folders:
        info = os.stat(folder)
        if not walker.inside(folder) or (info.st_dev, info.st_ino) in walker.claimed:
            walker.listing.outside += 1
            continue
        walker.claimed.add((info.st_dev, info.st_ino))
        kept.append(folder)
    return kept


def list_folder(root: Path, test_fraction: float = TEST_FRACTION, seed: int = 0) -> Listing:
    """The listing of an image folder; a UserError in one line when it is not one or holds no images."""
    shown = printable(str(root))
    if not root.is_dir():
        raise UserError(f"--data {shown}: {'no such folder' if not root.exists() else 'not a folder'}")
    listing = Listing(root, "flat", [], [], "")
    walker = _Walker(root, listing)
    top = _subfolders(root)
    names = {p.name: p for p in top}
    test_name = next((name for name in TEST_FOLDERS if name in names), None)
    if "train" in names and test_name is not None:
        splits = {"test": names[test_name], "train": names["train"]}  # test first: a linked image stays a test image
        in_split = {split: _class_folders(_subfolders(folder), walker) for split, folder in splits.items()}
        classes = sorted({p.name for folders in in_split.values() for p in folders})
        listing.layout, listing.test_source = ("splits" if classes else "flat"), f"{test_name}/"
        listing.class_names = [printable(c) for c in classes]
        for split, folder in splits.items():
            walker.folder(folder)
            if not classes:  # train/ and test/ of images with no classes
                listing.entries += _walked(walker, folder, -1, split)
                continue
            for class_folder in in_split[split]:
                walker.add(class_folder, classes.index(class_folder.name), split)
            listing.loose += len(_images_in(folder))
        listing.entries.sort(key=lambda e: (e.split != "train", e.label, e.path))
    else:
        base = names["train"] if list(names) == ["train"] and not _images_in(root) else root  # train/ and no test/
        subfolders = _subfolders(base)
        classes_in = _class_folders(subfolders, walker) if any(_has_images(p) for p in subfolders) else []
        if classes_in:
            listing.layout, listing.class_names = "classes", [printable(p.name) for p in classes_in]
            for index, folder in enumerate(classes_in):
                walker.add(folder, index, "train")
            listing.loose = len(_images_in(base))
        else:
            walker.add(root, -1, "train")
        _hold_out(listing, test_fraction, seed)
    check_listing(listing)
    return listing


def _walked(walker: _Walker, folder: Path, label: int, split: str) -> list[Entry]:
    """The entries of every image under folder (already walked), for a split of images with no classes."""
    return [
        Entry(walker.relative(path), info.st_size, info.st_mtime_ns, label, split)
        for path, info in walker.files(folder)
    ]


def check_listing(listing: Listing, what: str = "") -> None:
    """A listing that can be trained on: images, at most MAX_FILES, no empty class, a test and a training split
    (what: how the images went missing, for the message)."""
    shown = printable(str(listing.root))
    if not listing.entries:
        raise UserError(f"--data {shown} holds no images{what} ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if len(listing.entries) > MAX_FILES:
        raise UserError(f"--data {shown} holds {len(listing.entries):,} images: more than {MAX_FILES:,}")
    labels, splits = {e.label for e in listing.entries}, {e.split for e in listing.entries}
    if listing.labelled:
        empty = [n for i, n in enumerate(listing.class_names) if i not in labels]
        if empty:
            raise UserError(f"--data {shown}: the class folder {empty[0]} holds no images{what}")
    if "test" not in splits:
        raise UserError(
            f"--data {shown}: no image is left for the test split{what or ' (too few images, or an empty test/)'}"
        )
    if "train" not in splits:
        raise UserError(f"--data {shown}: no image is left to train on{what}")


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


def decode_one(
    path: Path | str, size: int, resize: str, warnings_kept: bool = False
) -> tuple[np.ndarray, tuple[int, int]]:
    """One image file as (3, size, size) uint8 RGB, or (1, size, size) for an 8-bit grey one (no alpha, one frame
    or the first), and its own (width, height); ImageRefused if it is refused."""
    with open_image(path, warnings_kept=warnings_kept) as image:
        native = image.size
        if image.mode == "L":  # most datasets of grey images: no RGB made only to be told grey again
            image.seek(0)
            return np.asarray(fitted(image, size, resize), dtype=np.uint8)[None], native
        rgb = fitted(to_rgb(image), size, resize)
        return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1), native


def _decode_chunk(job: tuple[str, list[tuple[int, str]], str, int, str]) -> tuple[list, list, list]:
    """In a worker: decode the chunk's images into the store being built, a grey image's one channel into
    grey.npy, a colour one into rgb.npy (each file written only where it has images: a folder of grey images leaves
    rgb.npy empty, and sparse). Returns each image's index and own size, the colour ones' indices, and the damaged
    ones' (index, reason)."""
    folder, chunk, root, size, resize = job
    grey = np.load(Path(folder) / "grey.npy", mmap_mode="r+")
    rgb = np.load(Path(folder) / "rgb.npy", mmap_mode="r+")
    sizes, colour, damaged = [], [], []
    with quiet_images():  # once for the chunk: Pillow's warnings kept from the terminal
        for index, relative in chunk:
            try:
                pixels, native = decode_one(os.path.join(root, relative), size, resize, warnings_kept=True)
            except ImageRefused as e:
                damaged.append((index, str(e)))
                continue
            sizes.append((index, native))
            if len(pixels) == 1 or ((pixels[0] == pixels[1]).all() and (pixels[1] == pixels[2]).all()):
                grey[index, 0] = pixels[0]
            else:
                rgb[index] = pixels
                colour.append(index)
    return sizes, colour, damaged  # the writes are in the shared file mappings: the parent reads them as they are


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


INFO_KEYS = {
    "version",
    "size",
    "channels",
    "colour",
    "resize",
    "own_sizes",
    "labels",
    "is_test",
    "damaged",
    "damaged_count",
    "ignored",
    "loose",
    "outside",
    "class_names",
    "layout",
    "test_source",
    "folder",
    "digest",
}


def open_store(folder: Path) -> Store:
    """A store built before: its images memory-mapped, its info read; ValueError if anything in it does not fit
    (a store damaged or edited since: the caller builds it again)."""
    try:
        info = json.loads((folder / "info.json").read_text())
        images = np.load(folder / "images.npy", mmap_mode="r")
    except (OSError, ValueError, RecursionError) as e:
        raise ValueError(f"unreadable: {e}") from None
    if not isinstance(info, dict) or not set(info) >= INFO_KEYS or info["version"] != STORE_VERSION:
        raise ValueError("info.json is not a store's")
    labels, is_test, names = info["labels"], info["is_test"], info["class_names"]
    if not (isinstance(labels, list) and isinstance(is_test, list) and isinstance(names, list)):
        raise ValueError("labels, splits or class names are not lists")
    if len(is_test) != len(labels) or images.dtype != np.uint8:
        raise ValueError("labels and splits disagree")
    if images.shape != (len(labels), info["channels"], info["size"], info["size"]):
        raise ValueError(f"images are {images.shape}, not what info.json says")
    try:
        label_array, test_array = np.asarray(labels, dtype=np.int64), np.asarray(is_test, dtype=bool)
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"labels: {e}") from None
    if label_array.ndim != 1 or len(label_array) and not -1 <= label_array.min() <= label_array.max() < len(names) + 1:
        raise ValueError("labels outside the classes")
    return Store(folder, images, label_array, test_array, info)


def _remove_stale_builds() -> None:
    """Remove temporary folders that builds left when their process died (a live process's is kept)."""
    for tmp in stores_dir().glob(".building-*"):
        try:
            os.kill(int(tmp.name.split("-")[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except (ValueError, IndexError, OSError):
            continue


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
    if final.exists():
        try:
            return open_store(final)
        except ValueError:
            shutil.rmtree(final, ignore_errors=True)  # a store damaged since: built again
    try:
        stores_dir().mkdir(parents=True, exist_ok=True)
        _remove_stale_builds()
    except OSError as e:
        raise UserError(f"cannot write the store in {printable(str(stores_dir()))}: {e.strerror or e}") from None
    chosen = size or _default_size(listing)
    while True:
        result = _decode_all(listing, chosen, channels, resize, workers, progress, size is None)
        if result is not None:
            break
        chosen = DEFAULT_SIZE  # the images do not share the size the first ones had
    try:
        store = _finish(listing, result, chosen, channels, resize, skip_damaged, final)
    except OSError as e:
        raise UserError(f"cannot write the store in {printable(str(stores_dir()))}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(result[0], ignore_errors=True)  # gone already when renamed into place
    store.built_now = True
    return store


def _finish(
    listing: Listing,
    result: tuple[Path, list, list, list],
    chosen: int,
    channels: int | None,
    resize: str,
    skip_damaged: bool,
    final: Path,
) -> Store:
    """The decoded images made the store: damaged ones left out (or refused), grey or RGB, renamed into place."""
    tmp, sizes, damaged, colour = result  # colour: the indices of the images in colour
    total = len(listing.entries)
    if damaged and len(damaged) > MAX_DAMAGED * total and not skip_damaged:
        raise UserError(_damaged_line(listing, damaged, total) + ": give --skip-damaged to train without them")
    gone = {i for i, _ in damaged}
    kept = [e for i, e in enumerate(listing.entries) if i not in gone]
    check_listing(Listing(listing.root, listing.layout, listing.class_names, kept, ""), " once damaged ones are out")
    keep = np.asarray(sorted(set(range(total)) - gone), dtype=np.int64)
    is_colour = np.zeros(total, dtype=bool)
    is_colour[sorted(colour)] = True
    out_channels = channels or (3 if colour else 1)
    if out_channels == 1 and not colour and not gone:  # every image grey, none left out: grey.npy is the store
        os.rename(tmp / "grey.npy", tmp / "images.npy")
    else:
        grey, rgb = np.load(tmp / "grey.npy", mmap_mode="r"), np.load(tmp / "rgb.npy", mmap_mode="r")
        images = np.lib.format.open_memmap(
            tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(len(keep), out_channels, chosen, chosen)
        )
        for start in range(0, len(keep), 4096):
            rows = keep[start : start + 4096]
            part = np.repeat(np.asarray(grey[rows]), out_channels, axis=1)  # grey images, in every channel
            coloured = np.flatnonzero(is_colour[rows])
            if len(coloured):
                pixels = np.asarray(rgb[rows[coloured]])
                if out_channels == 1:  # colour made grey as Pillow's convert("L"): ITU-R 601-2 luma
                    wide = pixels.astype(np.uint32)
                    luma = (wide[:, 0] * 299 + wide[:, 1] * 587 + wide[:, 2] * 114 + 500) // 1000
                    pixels = luma.astype(np.uint8)[:, None]
                part[coloured] = pixels
            images[start : start + len(part)] = part
        images.flush()
        del grey, rgb, images
    for name in ("grey.npy", "rgb.npy"):
        (tmp / name).unlink(missing_ok=True)
    colour = bool(colour)
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
    with contextlib.suppress(OSError):  # another process built it meanwhile: theirs is as good, if it is whole
        os.rename(tmp, final)
    try:
        return open_store(final)
    except ValueError as e:
        raise UserError(f"the store {printable(str(final))} cannot be read ({e}): `vae-tui data --clear`") from None


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
) -> tuple[Path, list, list, list] | None:
    """Decode every image into a temporary folder's grey.npy and rgb.npy; None when own_size and an image's own size
    is not size (the caller starts again at DEFAULT_SIZE). Returns the folder, the own sizes, the damaged images and
    the indices of those in colour."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    tmp = Path(stores_dir()) / f".building-{os.getpid()}-{random.getrandbits(32):08x}"
    total = len(listing.entries)
    sizes, damaged, colour, done = [], [], [], 0

    def take(chunk_sizes: list, chunk_colour: list, chunk_damaged: list) -> None:
        nonlocal done
        sizes.extend(chunk_sizes)
        colour.extend(chunk_colour)
        damaged.extend(chunk_damaged)
        done += len(chunk_sizes) + len(chunk_damaged)
        if progress:
            progress(done, total)

    try:
        tmp.mkdir()
        for name, channels in (("grey.npy", 1), ("rgb.npy", 3)):  # sparse files: pages are taken where written
            del_me = np.lib.format.open_memmap(
                tmp / name, mode="w+", dtype=np.uint8, shape=(total, channels, size, size)
            )
            del del_me
        indexed = [(i, e.path) for i, e in enumerate(listing.entries)]
        where = str(tmp)
        jobs = [(where, indexed[s : s + CHUNK], str(listing.root), size, resize) for s in range(0, total, CHUNK)]
        if workers > 1 and len(jobs) > 1:
            context = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
            with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context) as pool:
                for future in as_completed([pool.submit(_decode_chunk, job) for job in jobs]):
                    take(*future.result())
        else:
            for job in jobs:
                take(*_decode_chunk(job))
    except BrokenProcessPool:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(
            "a decoding process ended before its images did (killed, or out of memory): try again, or with --threads 1"
        ) from None
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"cannot write the store in {printable(str(stores_dir()))}: {e.strerror or e}") from None
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


def folder_dataset(store: Store, folder: Path, source: str, test_fraction: float = TEST_FRACTION) -> "Dataset":
    """The store as a dataset the training loop reads, named "folder:" and the folder's name: images (N, H, W) grey
    or (N, 3, H, W) RGB, copied into memory."""
    import torch

    from models.names import FOLDER_PREFIX, MAX_FOLDER_NAME
    from train.data import Dataset, Split

    name = printable(folder.resolve().name or "folder").replace("/", "_")[:MAX_FOLDER_NAME]
    labelled = bool(store.info["class_names"])
    labels = torch.from_numpy(np.where(store.labels < 0, 0, store.labels)).long()

    def split(rows: np.ndarray) -> Split:  # read from the mapped store into memory, one split at a time
        images = store.images[rows, 0] if store.channels == 1 else store.images[rows]
        return Split(torch.from_numpy(images), labels[torch.from_numpy(rows)])

    class_names = [printable(n) for n in store.info["class_names"]] if labelled else ["all images"]
    return Dataset(
        name=FOLDER_PREFIX + name,
        class_names=class_names,
        train=split(np.flatnonzero(~store.is_test)),
        test=split(np.flatnonzero(store.is_test)),
        source=source,
        record=folder_record(store, test_fraction),
    )


def folder_record(store: Store, test_fraction: float) -> dict:
    """What a checkpoint records of the image folder it was trained on (under its training settings, "data"): its
    name (not its path), layout, image size and channels, the resize, the held-out share, the images per split and
    the listing's digest, so that a resume or an eval can say what changed."""
    info = store.info
    return {
        "folder": printable(info["folder"]),
        "layout": info["layout"],
        "size": info["size"],
        "channels": info["channels"],
        "resize": info["resize"],
        "test_fraction": test_fraction,
        "train": int((~store.is_test).sum()),
        "test": int(store.is_test.sum()),
        "digest": info["digest"],
    }


def recorded_fraction(recorded: object) -> float | None:
    """The held-out share a checkpoint's folder record names, if it is one --test-fraction takes (None if not)."""
    value = recorded.get("test_fraction") if isinstance(recorded, dict) else None
    return value if type(value) is float and 0.01 <= value <= 0.5 else None


def listing_change(recorded: object, now: dict) -> str:
    """One line saying how an image folder changed since a checkpoint recorded it ("" when its listing is the
    same, or the checkpoint recorded nothing to compare)."""
    if not isinstance(recorded, dict) or recorded.get("digest") == now["digest"]:
        return ""
    counts = []
    for split in ("train", "test"):
        before = recorded.get(split)
        if type(before) is int and before != now[split]:
            counts.append(f"{split} {before} -> {now[split]} images")
    what = ", ".join(counts) if counts else "the same counts, other files (renamed, replaced or touched)"
    return f"the folder changed since this run started ({what}): training goes on with it as it is now"
