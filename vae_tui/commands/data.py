"""`vae-tui data DIR`: what `train --data DIR` would read, its store decoded (or found) in the user cache."""

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from models.errors import UserError
from models.text import printable
from vae_tui.commands import Commands, add_folder_flags, add_seed_flag

if TYPE_CHECKING:
    from rich.console import Console

    from train.data import Dataset
    from train.folder import Listing, Store


def add_parser(commands: Commands) -> None:
    parser = commands.add_parser(
        "data",
        help="show what train --data DIR reads from an image folder, decoding it once into the cache",
        description="List an image folder as `train --data DIR` reads it (DIR/train and DIR/test or val, DIR/<class>, "
        "or images with no classes), decode it once into a store in the user cache (reused while the folder's "
        "files and these flags are the same), and show images per class and split, size, colour, what was left "
        "out and where the store is.",
    )
    parser.add_argument("folder", type=Path, nargs="?", metavar="DIR", help="the image folder")
    add_folder_flags(parser)
    add_seed_flag(parser, "the held-out test split")
    parser.add_argument("--clear", action="store_true", help="delete every store in the cache, and nothing else")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import os
    import shutil

    from rich.console import Console
    from rich.table import Table

    from train.folder import TEST_FRACTION, damaged_summary, list_folder, stores_dir

    console = Console()
    if args.clear:
        if args.folder is not None:
            raise UserError("--clear deletes every store: give no DIR with it")
        where = stores_dir()
        size = sum(f.stat().st_size for f in where.rglob("*") if f.is_file()) if where.is_dir() else 0
        shutil.rmtree(where, ignore_errors=True)
        print(f"deleted {printable(str(where))} ({size / 1e6:.1f} MB)")
        return 0
    if args.folder is None:
        raise UserError("give an image folder (DIR), or --clear")
    listing = list_folder(args.folder, args.test_fraction or TEST_FRACTION, args.seed)
    started = time.perf_counter()
    store = store_with_bar(listing, args, console)
    seconds = time.perf_counter() - started
    info = store.info
    layouts = {"splits": "train/ and test/ folders", "classes": "class folders", "flat": "images with no classes"}
    classes = f", {len(listing.class_names)} classes" if listing.labelled else ""

    def say(text: str) -> None:  # on a terminal, wrapped at words; piped, one line each
        console.print(text, markup=False, highlight=False, soft_wrap=not console.is_terminal)

    say(f"{printable(str(args.folder))}: {layouts[listing.layout]}{classes}; test split: {listing.test_source}")
    table = Table(box=None, padding=(0, 2, 0, 0))
    for column in ("class", "train", "test"):
        table.add_column(column, justify="left" if column == "class" else "right")
    labels, is_test = store.labels, store.is_test
    names = listing.class_names or ["(no classes)"]
    for index, name in enumerate(names):
        mine = labels == (index if listing.labelled else -1)
        table.add_row(name, f"{int((mine & ~is_test).sum()):,}", f"{int((mine & is_test).sum()):,}")
    table.add_row("total", f"{int((~is_test).sum()):,}", f"{int(is_test.sum()):,}", style="bold")
    console.print(table)
    colour = "RGB" if store.channels == 3 else "grey"
    own = ", ".join(info["own_sizes"][:3]) + (" ..." if len(info["own_sizes"]) > 3 else "")
    say(f"images: {store.size}x{store.size} {colour} ({store.info['resize']}), from {own}")
    left_out = [damaged_summary(store)] if info["damaged_count"] else []
    for count, what in (
        (info["ignored"], "files that are not images"),
        (info["loose"], "images outside the class folders"),
        (info["outside"], "links out of DIR or seen before"),
    ):
        if count:
            left_out.append(f"{count} {what}")
    if left_out:
        say("left out: " + "; ".join(left_out))
    size_mb = os.path.getsize(store.path / "images.npy") / 1e6
    reused = f"decoded in {seconds:.1f} s" if store.built_now else "found in the cache"
    say(f"store ({size_mb:.1f} MB, {reused}; `vae-tui data --clear` deletes stores):")
    print(f"  {printable(str(store.path))}")  # the path on its own line: never broken
    return 0


def folder_data(args: argparse.Namespace, seed: int) -> "Dataset":
    """The image folder --data names (with the folder flags), listed with seed's held-out split and decoded into its
    store (a bar on stderr while it decodes), as a dataset: what `train --data` and `eval --data` read."""
    from rich.console import Console

    from train.folder import TEST_FRACTION, damaged_summary, folder_dataset, list_folder

    folder = Path(args.data)
    fraction = args.test_fraction or TEST_FRACTION
    listing = list_folder(folder, fraction, seed)
    store = store_with_bar(listing, args, Console(stderr=True))
    train_count, test_count = int((~store.is_test).sum()), int(store.is_test.sum())
    source = f"{printable(str(folder))}: {train_count} training and {test_count} test images ({listing.test_source})"
    if damaged := damaged_summary(store):
        source += f"; left out: {damaged}"
    return folder_dataset(store, folder, source, fraction)


def store_with_bar(listing: "Listing", args: argparse.Namespace, console: "Console") -> "Store":
    """The listing's store as the folder flags ask, built on --threads or every usable core (a bar on console, on a
    terminal, while it decodes), or found in the cache."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from train.folder import build_store
    from train.threads import usable_cpus

    columns = (TextColumn("decoding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("decode", total=len(listing.entries))
        return build_store(
            listing,
            args.image_size,
            args.channels,
            args.resize or "crop",
            args.skip_damaged,
            workers=args.threads or usable_cpus(),
            progress=lambda done, total: bar.update(task, completed=done),
        )
