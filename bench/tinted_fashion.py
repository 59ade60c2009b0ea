"""A colour image folder made from the real FashionMNIST: each garment in a random colour, 32x32 RGB PNGs.

Writes train/<class>/N.png and test/<class>/N.png (70,000 files, or --limit per split) under --folder, the layout
`vae-tui train --data` reads. Each image is the 28x28 garment centred on a black 32x32 canvas, its grey levels
times a colour of seeded random hue (full saturation and value): the colour is independent of the class, so a model
must find a colour direction in its latent space beside the garments' shapes. The README's colour picture is the
explorer on a conv CVAE trained on it (docs/data.md says how).
Usage: python bench/tinted_fashion.py [--folder /tmp/vae-tui-bench/tinted] [--data-dir DIR] [--limit N]
"""

import argparse
import colorsys
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.folder_decode import NAMES, SPLITS, idx  # noqa: E402 (after the path it needs)

SIDE = 32


def tinted(grey: np.ndarray, hue: float) -> np.ndarray:
    """A 28x28 grey image as a 32x32 RGB one: centred on black, its levels times the colour of hue."""
    colour = np.array(colorsys.hsv_to_rgb(hue, 1.0, 1.0))
    canvas = np.zeros((SIDE, SIDE, 3), np.float64)
    offset = (SIDE - grey.shape[0]) // 2
    canvas[offset : offset + grey.shape[0], offset : offset + grey.shape[1]] = grey[..., None] * colour
    return np.round(canvas).astype(np.uint8)


def write(folder: Path, data_dir: Path, limit: int | None) -> int:
    """The tinted folder (once: a complete one is kept); returns its file count."""
    done = folder / ".complete"
    if done.exists():
        return int(done.read_text())
    rng = np.random.default_rng(0)
    count = 0
    for split, (images_name, labels_name) in SPLITS.items():
        images = idx(data_dir / images_name).reshape(-1, 28, 28)
        labels = idx(data_dir / labels_name)
        for name in NAMES:
            (folder / split / name).mkdir(parents=True, exist_ok=True)
        for i in range(len(images) if limit is None else min(limit, len(images))):
            image = Image.fromarray(tinted(images[i], rng.random()), "RGB")
            image.save(folder / split / NAMES[labels[i]] / f"{i}.png")
            count += 1
    done.write_text(str(count))
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path("/tmp/vae-tui-bench/tinted"))
    parser.add_argument("--data-dir", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--limit", type=int, default=None, help="images per split (default: all)")
    args = parser.parse_args()
    print(f"{write(args.folder, args.data_dir, args.limit)} files in {args.folder}")


if __name__ == "__main__":
    main()
