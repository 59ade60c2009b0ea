"""Hostile and faulty input: markup and escape sequences in names and paths, a full disk, an explicit data folder."""

import errno
import gzip
import json
import math
import os
import shutil
import struct
from argparse import Namespace
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import textual.constants
import torch
from safetensors import safe_open

from models import (
    Checkpoint,
    CheckpointError,
    DataError,
    ModelConfig,
    ResumeState,
    UserError,
    build_model,
    load_checkpoint,
    save_checkpoint,
)
from models.checkpoint import METADATA_KEY
from models.limits import MAX_SEED, MAX_SIZE
from models.text import PLACEHOLDER, mostly_control, printable
from tests.conftest import REAL_FASHION_MNIST, needs_fashion_mnist, write_dataset
from train.data import load_dataset
from train.output import OutputLock
from train.settings import TrainSettings, training_bytes
from vae_tui.app import ExplorerApp, create_app
from vae_tui.cli import main
from vae_tui.commands import MAX_SEED as FLAG_MAX_SEED
from vae_tui.commands.explore import resolve
from vae_tui.screens.explorer import ExplorerScreen
from vae_tui.widgets.class_list import ClassList

# markup that crashes Rich or Textual, markup that would restyle, escape sequences that clear the
# screen and rename the terminal, a C1 control sequence introducer and a bidi override
HOSTILE_NAMES = [
    "[/]",
    "[link=http://x]a[/link]",
    "\x1b]2;pwned\x07",
    "\x1b[2J",
    "[red]x",
    "[b",
    "\\",
    "\x9b31m",
    "\u202eevil",
    "9",
]
CONTROL_BYTES = ("\x1b", "\x07", "\x9b", "\u202e")
TINY_TRAIN = ["--dataset", "mnist", "--batch-size", "64", "--hidden-dim", "32", "--latent-dim", "4", "--epochs", "1"]


def hostile_checkpoint(
    path: Path, kind: str = "cvae", class_names: list[str] = HOSTILE_NAMES, dataset: str = "mnist"
) -> Path:
    """A tiny checkpoint whose metadata carries the given names."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind=kind, hidden_dim=32, latent_dim=4))
    checkpoint = Checkpoint(
        model=model,
        dataset=dataset,
        class_names=list(class_names),
        epoch=1,
        class_centroids=torch.randn(10, 4),
        metrics={"test_loss": 1.5},
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(path, checkpoint)


def one_line_error(err: str, *fragments: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# --- names and paths: shown literally, never obeyed (causes 4 and 5) ----------------------


def test_printable_shows_control_characters() -> None:
    assert printable("\x1b[2Jx\x07\x9b\x7f\u2028\ud800") == f"{PLACEHOLDER}[2Jx{PLACEHOLDER * 5}"
    assert printable("T-shirt/top [/] é 日本") == "T-shirt/top [/] é 日本"
    assert mostly_control("\x1b\x1b\x1bab") and not mostly_control("\x1b[2J") and not mostly_control("")


def test_control_characters_in_names_are_replaced_on_load(tmp_path: Path) -> None:
    path = hostile_checkpoint(tmp_path / "c.safetensors", dataset="mnist\x1b[2J")
    checkpoint = load_checkpoint(path)
    assert checkpoint.class_names[:2] == ["[/]", "[link=http://x]a[/link]"]  # markup is kept, as text
    assert checkpoint.class_names[2] == f"{PLACEHOLDER}]2;pwned{PLACEHOLDER}"
    assert checkpoint.dataset == f"mnist{PLACEHOLDER}[2J"
    assert not any(c in name for name in checkpoint.class_names for c in CONTROL_BYTES)


@pytest.mark.parametrize("field", ["class_names", "dataset"])
def test_names_made_of_control_characters_are_refused(tmp_path: Path, field: str) -> None:
    attack = "\x1b\x1b\x07\x1b\x9b"
    names = [attack, *HOSTILE_NAMES[1:]] if field == "class_names" else HOSTILE_NAMES
    path = hostile_checkpoint(
        tmp_path / "c.safetensors", class_names=names, dataset=attack if field == "dataset" else "mnist"
    )
    with pytest.raises(CheckpointError, match="is mostly control characters") as caught:
        load_checkpoint(path)
    assert not any(c in str(caught.value) for c in CONTROL_BYTES)


def test_eval_table_shows_names_literally(
    tmp_path: Path, mnist_dir: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    path = hostile_checkpoint(tmp_path / "run [green]z" / "best.safetensors")
    assert main(["eval", str(path), "--samples", "2", "--data-dir", str(mnist_dir)]) == 0
    out = capsys.readouterr().out
    for shown in ("[/]", "[link=http://x]a[/link]", "[red]x", "[b", f"{PLACEHOLDER}[2J", "[green]z/best"):
        assert shown in out
    assert not any(c in out for c in CONTROL_BYTES)


def test_sample_class_error_shows_names_literally(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = hostile_checkpoint(tmp_path / "c.safetensors")
    assert main(["sample", str(path), "-o", str(tmp_path / "x.png"), "--class", "nope\x1b[2J"]) == 1
    err = capsys.readouterr().err
    one_line_error(err, "unknown class", "[/], [link=http://x]a[/link]", f"{PLACEHOLDER}]2;pwned{PLACEHOLDER}")
    assert not any(c in err for c in CONTROL_BYTES)
    assert main(["sample", str(path), "-o", str(tmp_path / "x.png"), "--class", "[/]"]) == 0  # a name picks its class


def test_train_messages_show_the_out_path_literally(
    mnist_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run [/]" / "[red]x"
    assert main(["train", *TINY_TRAIN, "--data-dir", str(mnist_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    # the path as written; in the command to paste, one shell word
    assert f"writing to {out}" in printed and f"explore '{out / 'best.safetensors'}'" in printed


def drawn(widget: object) -> str:
    """The characters a widget puts on the terminal, line by line."""
    return "\n".join("".join(s.text for s in widget.render_line(y)) for y in range(widget.size.height))


def drawn_screen(app: ExplorerApp) -> str:
    return "\n".join(drawn(w) for w in app.screen.walk_children() if w.size.area)


@pytest.mark.usefixtures("truecolor")
async def test_explorer_draws_names_and_paths_literally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settle: Callable, wait_until: Callable
) -> None:
    monkeypatch.chdir(tmp_path)
    hostile_checkpoint(Path("run [/]") / "run [red]x" / "best.safetensors", dataset="[/]")
    checkpoint, source = resolve(Namespace(checkpoint="run [/]/run [red]x", pretrained=None))  # as typed
    app = create_app(checkpoint, source, tmp_path / "exports [/]")
    async with app.run_test(size=(120, 32)) as pilot:
        await settle(app, pilot)
        title = drawn(app.explorer.query_one("#title"))
        assert "CVAE · [/] · epoch 1" in title and "run [/]/run [red]x/best.safetensors" in title
        classes = drawn(app.explorer.query_one(ClassList))
        assert "0 [/]" in classes and "[link=http://x]a[/" in classes and "4 [red]x" in classes and "5 [b" in classes
        await pilot.press("3")
        await settle(app, pilot)
        assert f"Preview · 3 {PLACEHOLDER}[2J" in drawn(app.explorer.query_one("#preview-title"))
        saved = app.explorer.action_save_image()
        assert saved is not None and saved.parent == tmp_path / "exports [/]"  # the dataset "[/]" made no folder
        await pilot.pause()
        screen = drawn_screen(app)
        assert not any(c in screen for c in CONTROL_BYTES)
        await pilot.press("ctrl+p")
        await pilot.press(*"pick class")
        await wait_until(pilot, lambda: "Pick class 0: [/]" in drawn_screen(app), "the palette showing class 0")


def test_a_crash_inside_the_explorer_is_not_a_success(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    path = hostile_checkpoint(tmp_path / "c.safetensors")

    def broken(self: ExplorerScreen) -> None:
        raise RuntimeError("a bug in the explorer")  # stands in for any unexpected error inside the app

    monkeypatch.setattr(ExplorerScreen, "on_mount", broken)
    monkeypatch.setattr(textual.constants, "DRIVER", "textual.drivers.headless_driver:HeadlessDriver")
    assert main(["explore", str(path), "--exports", str(tmp_path / "exports")]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "vae-tui explore: error: the explorer stopped on an internal error (shown above)"
    )


# --- a full disk before the start (cause 9) -----------------------------------------------


def test_full_disk_before_the_start_is_one_line(
    mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    original = os.write

    def full(fd: int, data: bytes) -> int:  # root ignores permissions, so the full disk is simulated
        if os.readlink(f"/proc/self/fd/{fd}").endswith("/.lock"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(fd, data)

    monkeypatch.setattr(os, "write", full)
    out = tmp_path / "run"
    assert main(["train", *TINY_TRAIN, "--data-dir", str(mnist_dir), "--out", str(out)]) == 1
    one_line_error(capsys.readouterr().err, f"cannot write to --out {out}: No space left on device")
    monkeypatch.undo()
    OutputLock(out).release()  # the failed start let go of the lock


# --- data: an explicit --data-dir, MNIST verified by content, standard JSON (cause 12) ------


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


def test_an_infinite_best_test_loss_is_written_as_standard_json(tmp_path: Path) -> None:
    checkpoint = load_checkpoint(hostile_checkpoint(tmp_path / "c.safetensors", kind="vae"))
    optimizer = torch.optim.Adam(checkpoint.model.parameters())
    progress = {"epoch": 1, "step": 0, "best_epoch": 0, "best_test_loss": math.inf}  # stopped before any epoch ended
    checkpoint.resume = ResumeState(optimizer.state_dict(), {}, progress)
    checkpoint.metrics = {"test_loss": math.nan}
    path = save_checkpoint(tmp_path / "last.safetensors", checkpoint)
    with safe_open(path, "pt") as f:
        raw = f.metadata()[METADATA_KEY]

    def refuse(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant}")

    info = json.loads(raw, parse_constant=refuse)
    assert info["resume"]["best_test_loss"] is None and info["metrics"]["test_loss"] is None
    assert load_checkpoint(path, with_resume=True).resume.progress["best_test_loss"] == math.inf


# --- flags with bounds: one size limit for train and the loader, seeds, memory (cause 10) ---


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--seed", str(2**70)], "--seed must be an integer from 0 to 2**63-1, got 1180591620717411303424"),
        (["--latent-dim", str(10**30)], f"--latent-dim must be at most {MAX_SIZE}, got {10**30}"),
        (["--hidden-dim", str(10**30)], f"--hidden-dim must be at most {MAX_SIZE}, got {10**30}"),
        (["--hidden-dim", str(10**7)], f"--hidden-dim must be at most {MAX_SIZE}, got 10000000"),
        (["--latent-dim", "100000"], f"--latent-dim must be at most {MAX_SIZE}, got 100000"),
        (["--latent-dim", "70000", "--hidden-dim", "1"], f"--latent-dim must be at most {MAX_SIZE}, got 70000"),
        (["--batch-size", str(MAX_SIZE + 1)], f"--batch-size must be at most {MAX_SIZE}"),
        (["--epochs", str(10**7)], "--epochs must be at most 1000000"),
    ],
)
def test_train_size_flags_and_seed_are_bounded(
    mnist_dir: Path, tmp_path: Path, run_cli: Callable, flags: list[str], message: str
) -> None:
    out = tmp_path / "run"
    result = run_cli("train", "--dataset", "mnist", *flags, "--data-dir", str(mnist_dir), "--out", str(out))
    result.assert_one_line_error(f"vae-tui train: error: {message}")
    assert not out.exists()


def test_what_train_accepts_the_loader_accepts(tmp_path: Path) -> None:
    settings = TrainSettings(dataset="mnist", latent_dim=MAX_SIZE, hidden_dim=1, seed=MAX_SEED)
    torch.manual_seed(settings.seed)  # the largest seed is one torch takes
    checkpoint = Checkpoint(
        model=build_model(settings.model_config(num_classes=10)),
        dataset="mnist",
        class_names=[str(i) for i in range(10)],
        epoch=1,
        class_centroids=torch.zeros(10, MAX_SIZE),
        training=asdict(settings),
    )
    loaded = load_checkpoint(save_checkpoint(tmp_path / "wide.safetensors", checkpoint))
    assert loaded.config.latent_dim == MAX_SIZE and TrainSettings.from_dict(loaded.training) == settings
    with pytest.raises(UserError, match=f"--latent-dim must be at most {MAX_SIZE}"):
        replace(settings, latent_dim=MAX_SIZE + 1)
    assert FLAG_MAX_SEED is MAX_SEED  # sample's and eval's --seed: the same bound


def test_a_model_larger_than_memory_is_refused_naming_the_flags(
    mnist_dir: Path, tmp_path: Path, run_cli: Callable
) -> None:
    flags = ["--latent-dim", str(MAX_SIZE), "--hidden-dim", str(MAX_SIZE)]  # within the bound: 200 GB to train
    result = run_cli("train", "--dataset", "mnist", *flags, "--data-dir", str(mnist_dir), "--out", str(tmp_path / "r"))
    result.assert_one_line_error(f"--hidden-dim {MAX_SIZE} with --latent-dim {MAX_SIZE}", "GB free: lower them")
    assert not (tmp_path / "r" / "last.safetensors").exists()
    assert training_bytes(TrainSettings(latent_dim=MAX_SIZE, hidden_dim=MAX_SIZE)) > 200e9
