"""An image folder's first decode into vae-tui's store, against a plain Pillow decode loop in a process pool.

Writes the real FashionMNIST (Debian's dataset-fashion-mnist, or --data-dir) as PNG files once, in the layout
`train --data` reads: train/<class>/N.png and test/<class>/N.png (70,000 files), under --folder. Then times,
--repeats times each and interleaved, in this process:
- the reference: every file opened and decoded to 8-bit grey with Pillow (Image.open, convert("L"), as an array)
  in a multiprocessing pool of one worker per usable core, chunks of 256 files;
- vae-tui's first decode: the folder listed (train/folder.py's list_folder) and its store built into an empty
  cache (build_store on every usable core), everything a cold `vae-tui data DIR` does;
- the same store found warm in the cache (the listing, its digest, the store opened).
The files are read once before the runs, so that both sides find them in the page cache (a cold cache made the first
run's reference 4x slower). Prints each run and the medians, and the ratio of the cold store to the reference (issue
24 asks at most 1.5).
Usage: python bench/folder_decode.py [--folder /tmp/vae-tui-bench/fashion-png] [--repeats 3] [--limit N]
"""

import argparse
import gzip
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from train.folder import build_store, list_folder  # noqa: E402 (after the path it needs)
from train.threads import usable_cpus  # noqa: E402

NAMES = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SPLITS = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def idx(path: Path) -> np.ndarray:
    with gzip.open(path) as file:
        raw = file.read()
    return np.frombuffer(raw, np.uint8, offset=16 if "images" in path.name else 8)


def write_folder(folder: Path, data_dir: Path, limit: int | None) -> int:
    """FashionMNIST as PNG files under folder (once: a folder that is there is kept); returns the file count."""
    done = folder / ".complete"
    if done.exists():
        return int(done.read_text())
    count = 0
    for split, (images_name, labels_name) in SPLITS.items():
        images = idx(data_dir / images_name).reshape(-1, 28, 28)
        labels = idx(data_dir / labels_name)
        for name in NAMES:
            (folder / split / name).mkdir(parents=True, exist_ok=True)
        for i in range(len(images) if limit is None else min(limit, len(images))):
            Image.fromarray(images[i]).save(folder / split / NAMES[labels[i]] / f"{i}.png")
            count += 1
    done.write_text(str(count))
    return count


def _decode(paths: list[str]) -> int:
    total = 0
    for path in paths:
        with Image.open(path) as image:
            total += int(np.asarray(image.convert("L")).shape[0])
    return total


def reference(paths: list[str], workers: int) -> float:
    chunks = [paths[i : i + 256] for i in range(0, len(paths), 256)]
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        assert sum(pool.imap_unordered(_decode, chunks)) == 28 * len(paths)
    return time.perf_counter() - started


def store(folder: Path, workers: int, cache: Path) -> float:
    os.environ["XDG_CACHE_HOME"] = str(cache)
    started = time.perf_counter()
    built = build_store(list_folder(folder), workers=workers)
    seconds = time.perf_counter() - started
    assert built.images.shape[1:] == (1, 28, 28)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "vae-tui-bench" / "fashion-png")
    parser.add_argument("--data-dir", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, help="images per split (default: all)")
    args = parser.parse_args()
    started = time.perf_counter()
    count = write_folder(args.folder, args.data_dir, args.limit)
    print(f"{count} PNG files in {args.folder} ({time.perf_counter() - started:.1f} s to have them)")
    paths = sorted(str(p) for p in args.folder.rglob("*.png"))
    for path in paths:  # every file read once, untimed: neither side then pays the disk (the first run did)
        Path(path).read_bytes()
    workers = usable_cpus()
    refs, colds, warms = [], [], []
    for run in range(args.repeats):
        refs.append(reference(paths, workers))
        with tempfile.TemporaryDirectory() as cache:
            colds.append(store(args.folder, workers, Path(cache)))
            warms.append(store(args.folder, workers, Path(cache)))
            shutil.rmtree(cache, ignore_errors=True)
        print(
            f"run {run + 1}: Pillow pool {refs[-1]:.2f} s, vae-tui store cold {colds[-1]:.2f} s, warm {warms[-1]:.2f} s"
        )
    ref, cold, warm = (statistics.median(v) for v in (refs, colds, warms))
    ratios = [c / r for c, r in zip(colds, refs, strict=True)]
    print(f"medians, {workers} workers: Pillow pool {ref:.2f} s, store cold {cold:.2f} s, warm {warm:.2f} s")
    print(f"cold store / Pillow pool: {statistics.median(ratios):.2f} (median of the runs' ratios; target <= 1.5)")


if __name__ == "__main__":
    main()
