"""Hostile and faulty input: markup and escape sequences in names and paths."""

from argparse import Namespace
from pathlib import Path

import pytest
import textual.constants
import torch

from models import (
    Checkpoint,
    CheckpointError,
    ModelConfig,
    build_model,
    load_checkpoint,
    save_checkpoint,
)
from models.text import PLACEHOLDER, mostly_control, printable
from vae_tui.app import ExplorerApp, create_app
from vae_tui.cli import main
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
    assert f"writing to {out}" in printed and f"explore {out / 'best.safetensors'}" in printed


def drawn(widget: object) -> str:
    """The characters a widget puts on the terminal, line by line."""
    return "\n".join("".join(s.text for s in widget.render_line(y)) for y in range(widget.size.height))


def drawn_screen(app: ExplorerApp) -> str:
    return "\n".join(drawn(w) for w in app.screen.walk_children() if w.size.area)


async def explore_until_drawn(app: ExplorerApp, pilot: object) -> None:
    for _ in range(300):
        await pilot.pause(0.01)
        if app.explorer.frame is not None:
            return
    raise AssertionError("no frame within 3 s")


async def test_explorer_draws_names_and_paths_literally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLORTERM", "truecolor")
    monkeypatch.chdir(tmp_path)
    hostile_checkpoint(Path("run [/]") / "run [red]x" / "best.safetensors", dataset="[/]")
    checkpoint, source = resolve(Namespace(checkpoint="run [/]/run [red]x", pretrained=None))  # as typed
    app = create_app(checkpoint, source, tmp_path / "exports [/]")
    async with app.run_test(size=(120, 32)) as pilot:
        await explore_until_drawn(app, pilot)
        title = drawn(app.explorer.query_one("#title"))
        assert "CVAE · [/] · epoch 1" in title and "run [/]/run [red]x/best.safetensors" in title
        classes = drawn(app.explorer.query_one(ClassList))
        assert "0 [/]" in classes and "[link=http://x]a[/" in classes and "4 [red]x" in classes and "5 [b" in classes
        await pilot.press("3")
        await explore_until_drawn(app, pilot)
        await pilot.pause()
        assert f"Preview · 3 {PLACEHOLDER}[2J" in drawn(app.explorer.query_one("#preview-title"))
        saved = app.explorer.action_save_image()
        assert saved is not None and saved.parent == tmp_path / "exports [/]"  # the dataset "[/]" made no folder
        await pilot.pause()
        screen = drawn_screen(app)
        assert not any(c in screen for c in CONTROL_BYTES)
        await pilot.press("ctrl+p")
        await pilot.press(*"pick class")
        await pilot.pause(0.3)
        assert "Pick class 0: [/]" in drawn_screen(app)


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
