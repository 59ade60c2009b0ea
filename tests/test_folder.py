"""Image folders (train/folder.py) and `vae-tui data`: the three layouts, links, hostile names and files, decoding
into the cached store (grey and RGB, 16-bit, palette, alpha, animation, crop and fit, damaged files), on one
process and on several."""

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from train.folder import DEFAULT_SIZE, build_store, list_folder, stores_dir


def grey_png(path: Path, value: int, size: tuple[int, int] = (12, 12)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, value).save(path)
    return path


def class_tree(root: Path, per_class: int = 10, classes: tuple[str, ...] = ("ant", "bee")) -> Path:
    for c, name in enumerate(classes):
        for i in range(per_class):
            grey_png(root / name / f"{i:03d}.png", 10 * c + i)
    return root


def test_train_and_test_folders_are_the_splits_and_val_counts_as_test(tmp_path: Path) -> None:
    for split, count in (("train", 4), ("val", 2)):
        for name in ("cat", "dog"):
            for i in range(count):
                grey_png(tmp_path / split / name / "deeper" / f"{i}.png", i)
    grey_png(tmp_path / "train" / "stray.png", 0)  # not in a class folder
    listing = list_folder(tmp_path)
    assert (listing.layout, listing.class_names, listing.test_source, listing.loose) == (
        "splits",
        ["cat", "dog"],
        "val/",
        1,
    )
    assert listing.counts() == {"train": {"cat": 4, "dog": 4}, "test": {"cat": 2, "dog": 2}}


def test_class_folders_hold_out_a_seeded_stratified_tenth(tmp_path: Path) -> None:
    class_tree(tmp_path, per_class=30)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "bee" / "readme.md").write_text("not an image either")
    (tmp_path / ".hidden").mkdir()
    grey_png(tmp_path / ".hidden" / "x.png", 1)
    listing = list_folder(tmp_path, test_fraction=0.1, seed=3)
    assert listing.layout == "classes" and listing.class_names == ["ant", "bee"] and listing.ignored == 1
    assert listing.counts() == {"train": {"ant": 27, "bee": 27}, "test": {"ant": 3, "bee": 3}}
    again, other = list_folder(tmp_path, seed=3), list_folder(tmp_path, seed=4)
    test = {e.path for e in listing.entries if e.split == "test"}
    assert test == {e.path for e in again.entries if e.split == "test"}
    assert test != {e.path for e in other.entries if e.split == "test"}
    assert listing.digest() == again.digest() != other.digest()
    os.utime(tmp_path / "ant" / "000.png", ns=(1, 1))  # a file changed: another listing, another store
    assert list_folder(tmp_path, seed=3).digest() != listing.digest()


def test_a_flat_folder_is_unlabelled(tmp_path: Path) -> None:
    for i in range(20):
        grey_png(tmp_path / f"{i}.png", i)
    listing = list_folder(tmp_path)
    assert listing.layout == "flat" and not listing.labelled and listing.class_names == []
    assert listing.counts() == {"train": {"": 18}, "test": {"": 2}}


def test_links_stay_inside_the_folder_and_are_followed_once(tmp_path: Path) -> None:
    """Links lead only to places inside DIR (class folders too), and each folder and file is listed once: a link
    from one class into another, or a second name for an image, adds nothing."""
    root = class_tree(tmp_path / "data", per_class=5)
    outside = grey_png(tmp_path / "elsewhere" / "secret.png", 1)
    (root / "ant" / "out.png").symlink_to(outside)
    (root / "ant" / "loop").symlink_to(root / "ant")  # a folder that holds itself
    (root / "ant" / "bees").symlink_to(root / "bee")  # another class's folder
    (root / "bee" / "again.png").symlink_to(root / "bee" / "000.png")  # a second name for an image
    grey_png(root / ".stash" / "extra.png", 9)  # hidden: not walked, but a link to it is inside DIR
    (root / "bee" / "extra.png").symlink_to(root / ".stash" / "extra.png")
    (root / "cow").symlink_to(outside.parent)  # a whole class folder outside
    os.mkfifo(root / "bee" / "pipe.png")  # an image's name on a FIFO: never opened
    listing = list_folder(root)
    paths = {e.path for e in listing.entries}
    assert listing.class_names == ["ant", "bee"]  # cow leads out of DIR: not a class
    assert "bee/extra.png" in paths and "ant/out.png" not in paths and "bee/again.png" not in paths
    assert not any("loop" in p or "bees" in p or p.startswith("cow/") or "pipe" in p for p in paths)
    assert len(paths) == 11  # 5 + 5 images, and the linked extra.png
    assert listing.outside == 5  # cow, out.png, loop (ant again), bees (a class's folder), again.png (a second name)


def test_a_link_between_splits_keeps_a_test_image_out_of_training(tmp_path: Path) -> None:
    for split in ("train", "test"):
        for i in range(3):
            grey_png(tmp_path / split / "cat" / f"{i}.png", i)
    (tmp_path / "train" / "cat" / "leak.png").symlink_to(tmp_path / "test" / "cat" / "0.png")
    (tmp_path / "train" / "dog").symlink_to(tmp_path / "test" / "cat")
    listing = list_folder(tmp_path)
    assert {e.path for e in listing.entries if e.split == "train"} == {f"train/cat/{i}.png" for i in range(3)}
    assert listing.counts() == {"train": {"cat": 3}, "test": {"cat": 3}}


def test_train_and_test_folders_of_images_with_no_classes_are_unlabelled_splits(tmp_path: Path) -> None:
    for split, count in (("train", 6), ("test", 2)):
        for i in range(count):
            grey_png(tmp_path / split / f"{i}.png", i)
    listing = list_folder(tmp_path)
    assert listing.layout == "flat" and listing.counts() == {"train": {"": 6}, "test": {"": 2}}


def test_a_train_folder_of_classes_without_a_test_folder_holds_out_a_tenth(tmp_path: Path) -> None:
    class_tree(tmp_path / "train", per_class=10)
    listing = list_folder(tmp_path)
    assert listing.layout == "classes" and listing.class_names == ["ant", "bee"]
    assert listing.counts() == {"train": {"ant": 9, "bee": 9}, "test": {"ant": 1, "bee": 1}}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "no such folder"),
        (lambda p: p.write_text("x"), "not a folder"),
        (lambda p: (p.mkdir(), (p / "a.txt").write_text("x")), "holds no images"),
        (
            lambda p: (class_tree(p, per_class=2), (p / "empty").mkdir(), (p / "empty" / "n.txt").write_text("x")),
            "holds no images",
        ),
        (lambda p: (p.mkdir(), grey_png(p / "one.png", 0)), "no image is left for the test split"),
    ],
    ids=["missing", "a file", "no images", "an empty class", "one image"],
)
def test_what_is_not_an_image_folder_gets_one_line(tmp_path: Path, make: Callable, message: str) -> None:
    from models.errors import UserError

    path = tmp_path / "data"
    make(path)
    with pytest.raises(UserError, match=message):
        list_folder(path)


def test_class_names_are_made_printable(tmp_path: Path) -> None:
    for name in ("a\x1b[31mred", "b\nline"):
        for i in range(3):
            grey_png(tmp_path / name / f"{i}.png", i)
    names = list_folder(tmp_path).class_names
    assert all(ch.isprintable() for name in names for ch in name) and len(names) == 2


def test_a_grey_folder_decodes_to_one_channel_at_its_own_size_and_is_found_again(tmp_path: Path) -> None:
    listing = list_folder(class_tree(tmp_path / "data", per_class=10))
    store = build_store(listing)
    assert store.built_now and store.images.shape == (20, 1, 12, 12) and store.images.dtype == np.uint8
    assert store.path.parent == stores_dir()
    first = [i for i, e in enumerate(listing.entries) if e.path == "bee/003.png"][0]
    assert (store.images[first] == 13).all() and store.labels[first] == 1
    assert store.is_test.sum() == 2 and store.info["colour"] is False
    again = build_store(list_folder(tmp_path / "data"))
    assert not again.built_now and again.path == store.path  # nothing decoded twice
    assert build_store(listing, size=8).path != store.path and build_store(listing, channels=3).channels == 3


def test_colour_16_bit_palette_alpha_and_animation_decode_as_a_person_sees_them(tmp_path: Path) -> None:
    root = tmp_path / "data" / "only"
    root.mkdir(parents=True)
    Image.new("RGB", (16, 16), (200, 20, 40)).save(root / "red.png")
    Image.fromarray(np.full((16, 16), 65535, np.uint16)).save(root / "deep.png")  # 16-bit white
    palette = Image.new("P", (16, 16), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    palette.save(root / "palette.png")
    half = Image.new("RGBA", (16, 16), (255, 255, 255, 128))  # half-transparent white: grey over black
    half.save(root / "alpha.png")
    frames = [Image.new("L", (16, 16), v) for v in (90, 250)]
    frames[0].save(root / "anim.gif", save_all=True, append_images=frames[1:])
    Image.new("L", (16, 16), 7).save(root / "plain.bmp")
    grey_png(tmp_path / "data" / "second" / "x.png", 3, (16, 16))
    grey_png(tmp_path / "data" / "second" / "y.png", 3, (16, 16))
    listing = list_folder(tmp_path / "data", test_fraction=0.2)
    store = build_store(listing)
    pixel = {
        e.path.split("/")[-1]: tuple(int(v) for v in store.images[i, :, 8, 8]) for i, e in enumerate(listing.entries)
    }
    assert store.channels == 3 and store.info["colour"]
    assert pixel["red.png"] == (200, 20, 40) and pixel["deep.png"] == (255, 255, 255)
    assert pixel["palette.png"] == (10, 200, 30) and pixel["alpha.png"] == (128, 128, 128)
    assert pixel["anim.gif"] == (90, 90, 90) and pixel["plain.bmp"] == (7, 7, 7)
    grey = build_store(listing, channels=1)
    index = [e.path for e in listing.entries].index("only/red.png")
    assert grey.channels == 1 and int(grey.images[index, 0, 8, 8]) == round(0.299 * 200 + 0.587 * 20 + 0.114 * 40)


def test_crop_takes_the_centre_and_fit_pads_with_black(tmp_path: Path) -> None:
    for name in ("a", "b"):
        for i in range(3):
            path = tmp_path / name / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            wide = np.zeros((10, 30), np.uint8)
            wide[:, 10:20] = 200  # a bright centre square between dark thirds
            Image.fromarray(wide).save(path)
    listing = list_folder(tmp_path)
    crop, fit = build_store(listing, size=10, resize="crop"), build_store(listing, size=30, resize="fit")
    assert crop.images.shape[2:] == (10, 10) and (crop.images[0] == 200).all()
    assert (
        fit.images.shape[2:] == (30, 30)
        and (fit.images[0, 0, :10] == 0).all()
        and (fit.images[0, 0, 10:20, 10:20] == 200).all()
    )
    assert DEFAULT_SIZE == 64 and build_store(listing).size == 64  # not square: the default size


def test_damaged_images_are_left_out_and_many_of_them_are_refused(tmp_path: Path) -> None:
    from models.errors import UserError

    root = class_tree(tmp_path / "data", per_class=150)
    (root / "ant" / "zz-broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    store = build_store(list_folder(root))
    assert store.info["damaged_count"] == 1 and len(store.images) == 300  # 1 of 301: under 1%, left out
    for i in range(5):
        (root / "bee" / f"zz-{i}.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match=r"6 of 306 images are damaged .* give --skip-damaged"):
        build_store(list_folder(root))
    assert len(build_store(list_folder(root), skip_damaged=True).images) == 300
    assert not [p for p in stores_dir().iterdir() if p.name.startswith(".building")]  # no half-built store left


def test_several_workers_build_the_same_store(tmp_path: Path) -> None:
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for i in range(300):  # two chunks of 256
        path = root / ("ab"[i % 2]) / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (9, 9, 3), dtype=np.uint8)).save(path)
    listing = list_folder(root)
    one = np.array(build_store(listing, size=9, workers=1).images)
    for path in stores_dir().iterdir():
        import shutil

        shutil.rmtree(path)
    many = build_store(listing, size=9, workers=2)
    assert many.built_now and np.array_equal(np.array(many.images), one)


def test_the_data_command_says_what_train_would_read(tmp_path: Path, run_cli: Callable) -> None:
    root = class_tree(tmp_path / "data", per_class=60)
    (root / "ant" / "broken.png").write_bytes(b"garbage")  # 1 of 121: under 1%, left out
    (root / "notes.txt").write_text("x")
    result = run_cli("data", str(root))
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith("data: class folders, 2 classes; test split: 10% of each class held out (seed 0)")
    assert any(line.split() == ["ant", "54", "6"] for line in lines) and any(
        line.split() == ["total", "108", "12"] for line in lines
    )
    assert "images: 12x12 grey (crop), from 12x12" in lines
    assert "left out: 1 damaged image (ant/broken.png)" in lines
    assert lines[-2].startswith("store (") and "decoded in" in lines[-2] and lines[-1].startswith(f"  {stores_dir()}/")
    assert "found in the cache" in run_cli("data", str(root)).stdout
    cleared = run_cli("data", "--clear")
    assert cleared.code == 0 and cleared.stdout.startswith(f"deleted {stores_dir()}") and not stores_dir().exists()
    run_cli("data", str(tmp_path / "nothing")).assert_one_line_error(f"--data {tmp_path / 'nothing'}: no such folder")
    run_cli("data").assert_one_line_error("give an image folder (DIR), or --clear")


def die(job: object) -> None:
    """A decoding worker killed mid-way (by the OOM killer, say)."""
    os._exit(9)


def test_a_damaged_store_is_built_again_and_a_dead_worker_or_nothing_left_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    import train.folder
    from models.errors import UserError

    root = class_tree(tmp_path / "data", per_class=130)  # two chunks of 256: the pool is used
    listing = list_folder(root)
    store = build_store(listing)
    for damage in (
        lambda: (store.path / "info.json").unlink(),
        lambda: (store.path / "info.json").write_text("[]"),
        lambda: (store.path / "info.json").write_text(json.dumps(store.info | {"labels": [0, 1], "is_test": [True]})),
        lambda: (store.path / "images.npy").write_bytes(b"\x93NUMPY garbage"),
    ):
        damage()
        again = build_store(listing)
        assert again.built_now and again.images.shape == (260, 1, 12, 12)
    stale = stores_dir() / ".building-999999999-00000000"  # a pid no process has: its build died
    stale.mkdir()
    live = stores_dir() / f".building-{os.getpid()}-00000000"
    live.mkdir()
    monkeypatch.setattr(train.folder, "_decode_chunk", die)
    with pytest.raises(UserError, match="a decoding process ended before its images did"):
        build_store(listing, size=8, workers=2)
    assert not stale.exists() and live.exists()
    assert [p.name for p in stores_dir().glob(".building-*")] == [live.name]  # its own, after the failure, removed
    monkeypatch.undo()
    for path in (root / "ant").iterdir():
        path.write_bytes(b"junk")
    with pytest.raises(UserError, match="the class folder ant holds no images once damaged ones are out"):
        build_store(list_folder(root), skip_damaged=True)


def test_a_decompression_bomb_or_an_eps_in_a_folder_is_a_damaged_image_never_decoded(tmp_path: Path) -> None:
    """A PNG header claiming 30000x30000 pixels and a PostScript file named .png (Pillow would hand it to
    Ghostscript) are refused by the one image opener before any decoding: left out as damaged, the rest kept."""
    from tests.helpers import EPS, png_header

    root = class_tree(tmp_path / "data", per_class=150)
    (root / "ant" / "bomb.png").write_bytes(png_header(30000, 30000))
    (root / "bee" / "script.png").write_bytes(EPS)
    store = build_store(list_folder(root), skip_damaged=True)
    assert len(store.images) == 300 and store.info["damaged_count"] == 2
    reasons = dict(store.info["damaged"])
    assert (
        "over 50 megapixels" in reasons["ant/bomb.png"] and "not an image vae-tui can read" in reasons["bee/script.png"]
    )


@pytest.mark.slow
def test_ten_thousand_files_of_a_hundred_classes_list_and_decode(tmp_path: Path) -> None:
    """10,000 files (8x8 binary PGMs, written without Pillow to keep the test quick) in 100 class folders: the
    listing holds out a tenth of each class, and the store, built on two processes, holds every image once, in
    name order; found again, it is not decoded again."""
    root = tmp_path / "many"
    rng = np.random.default_rng(0)
    levels = rng.integers(0, 256, (10_000, 8, 8), dtype=np.uint8)
    for c in range(100):
        (root / f"class{c:03d}").mkdir(parents=True)
        for i in range(100):
            index = 100 * c + i
            (root / f"class{c:03d}" / f"{i:03d}.pgm").write_bytes(b"P5 8 8 255\n" + levels[index].tobytes())
    listing = list_folder(root)
    assert len(listing.entries) == 10_000 and len(listing.class_names) == 100
    store = build_store(listing, workers=2)
    assert store.images.shape == (10_000, 1, 8, 8) and int(store.is_test.sum()) == 1_000
    assert np.array_equal(np.asarray(store.images[:, 0]), levels)  # each file's pixels, in name order
    assert store.built_now and not build_store(list_folder(root)).built_now
