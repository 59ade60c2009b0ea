"""The files a finished epoch leaves (grids, metrics, best, last), in an order that survives a crash at any point.

Each file is replaced atomically (models/atomic.py); across files, the order does the work.
An epoch E ends with, in this order: reconst-E.png and sample-E.png, metrics.jsonl, in the
final epoch the exact class centroids (for the last weights, and for best's weights when
the best epoch is an earlier one, rewritten into best.safetensors), best.safetensors when E
is the best epoch, and last.safetensors, resumable at epoch E + 1, written last of all.
Until last.safetensors is renamed into place, it still holds the state that epoch E started
(or was resumed) from, so a process killed at any moment before leaves a run that
`--resume` completes:

- killed in the grids, metrics or centroid pass: --resume trains epoch E again from the
  same state, bit for bit, and writes the same files (metrics rows of E and later are
  dropped on resume and written again);
- killed while an earlier best is rewritten with exact centroids: the old file is whole,
  and the epoch trained again rewrites it the same way;
- killed after best.safetensors, before last: best already holds epoch E while last names
  an earlier best epoch; the epoch trained again is the best again, with the same
  weights, and best is written again with them;
- killed after last: epoch E is done, and every file agrees.

So a last.safetensors that says the run has finished implies exact centroids in both
checkpoints. A killed write leaves a `.NAME.*.tmp` file; the next process that takes the
folder's lock removes it (train/output.py). A signal that arrives during the writes is acted
on at the next epoch's start, when last.safetensors holds that very moment; after the final
epoch there is no next one, and the run finishes.
"""

import json
from contextlib import suppress
from pathlib import Path

import torch

from models import VAE, CheckpointError, load_checkpoint, rows_per_class, save_checkpoint
from models.atomic import write_atomic
from models.names import GRID_PAD, GRID_SCALE
from models.points import reach
from train.evaluate import class_centroids
from train.grids import grid, save_png, side_by_side

GRID_COLUMNS = 8


@torch.no_grad()
def write_grids(
    model: VAE, test_x: torch.Tensor, test_y: torch.Tensor, sample_z: torch.Tensor, out_dir: Path, epoch: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """reconst-<epoch>.png (test originals beside reconstructions) and sample-<epoch>.png; returns what they show,
    originals, reconstructions and samples (N, H, W) grey or (N, 3, H, W) RGB, for the terminal's preview."""
    device, shape = test_x.device, model.config.pixel_shape
    model.eval()
    x, y = test_x[:64], test_y[:64]
    mu, _ = model.encode(x, y)
    reconstructions = torch.sigmoid(model.decode(mu, y))
    pairs = side_by_side(x.view(-1, *shape), reconstructions.view(-1, *shape))
    save_png(out_dir / f"reconst-{epoch}.png", grid(pairs, GRID_COLUMNS, GRID_PAD), scale=GRID_SCALE)
    z, labels = sample_z.to(device), None
    if model.conditional:
        z, labels = rows_per_class(z, torch.arange(model.config.num_classes, device=device))
    samples = torch.sigmoid(model.decode(z, labels)).view(-1, *shape)
    save_png(out_dir / f"sample-{epoch}.png", grid(samples, GRID_COLUMNS, GRID_PAD), scale=GRID_SCALE)
    model.train()
    return x.view(-1, *shape), reconstructions.view(-1, *shape), samples


def write_metrics(out_dir: Path, rows: list[dict]) -> None:
    """metrics.jsonl: one JSON object per finished epoch."""
    write_atomic(out_dir / "metrics.jsonl", "".join(json.dumps(row) + "\n" for row in rows).encode())


def read_metrics(out_dir: Path, before_epoch: int) -> list[dict]:
    """The rows of metrics.jsonl for the epochs before before_epoch (a resumed run writes the rest again)."""
    path = out_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        with suppress(json.JSONDecodeError):  # a hand-edited or damaged row is dropped, not fatal
            rows.append(json.loads(line))
    return [r for r in rows if isinstance(r, dict) and r.get("epoch", 0) < before_epoch]


def exact_centroids(model: VAE, train_x: torch.Tensor, train_y: torch.Tensor, which: str) -> torch.Tensor:
    """Mean mu per class over the training set for these weights (`which`: "last" or "best", for the point)."""
    centroids = class_centroids(model, train_x, train_y, model.config.num_classes)
    reach("centroids", which)  # the pass is done, nothing of it written yet
    return centroids


def give_best_exact_centroids(out_dir: Path, best_epoch: int, train_x: torch.Tensor, train_y: torch.Tensor) -> None:
    """Rewrite best.safetensors (an earlier epoch's) with exact centroids for its weights instead of running ones.

    Rewriting it again gives the same file, so a crash here is repaired by doing it again.
    """
    path = out_dir / "best.safetensors"
    best = load_checkpoint(path)
    if best.epoch != best_epoch:
        raise CheckpointError(f"{path} holds epoch {best.epoch}, but last.safetensors says the best is {best_epoch}")
    best.class_centroids = exact_centroids(best.model.to(train_x.device), train_x, train_y, "best")
    save_checkpoint(path, best)
