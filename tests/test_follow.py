"""An explorer that follows a run: a new best checkpoint is shown, a damaged one never is."""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from models import load_checkpoint, save_checkpoint
from vae_tui.app import create_app
from vae_tui.screens import follow as follow_module

pytestmark = pytest.mark.usefixtures("truecolor")


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(follow_module, "POLL_SECONDS", 0.05)


def next_epoch(checkpoint: object, epoch: int) -> object:
    """checkpoint one epoch on: its weights moved, as training moves them."""
    with torch.no_grad():
        for parameter in checkpoint.model.parameters():
            parameter.add_(0.05 * epoch)
    checkpoint.epoch = epoch
    return checkpoint


def with_atlas(checkpoint: object) -> object:
    """checkpoint with a small atlas (30 test images of 10 classes, latent 4) of fixed values."""
    from train.atlas import build_atlas

    generator = torch.Generator().manual_seed(0)
    images = (torch.rand(30, 28, 28, generator=generator) * 255).to(torch.uint8)
    checkpoint.atlas = build_atlas(
        torch.randn(30, 4, generator=generator), torch.ones(4), images, torch.arange(30) % 10
    )
    return checkpoint


async def test_a_new_best_checkpoint_is_reloaded_a_damaged_one_ignored_and_another_shape_not_shown(
    tmp_path: Path, make_checkpoint: Callable, settle: Callable, wait_until: Callable, toast_shows: Callable
) -> None:
    """One explorer following a run: a new best checkpoint is drawn with the same z, class and selection and said in
    the title bar (no toast); a half-written one is ignored and the next good one loaded; then a checkpoint of
    another shape (a VAE for this CVAE) is not shown, with a warning."""
    run = tmp_path / "run"
    run.mkdir()
    best = run / "best.safetensors"
    save_checkpoint(best, make_checkpoint("cvae"))
    app = create_app(load_checkpoint(best), str(run), tmp_path / "exports", follow=best)
    async with app.run_test(size=(100, 32), notifications=True) as pilot:
        await settle(app, pilot)
        screen = app.explorer
        await pilot.press("L", "3", "j")
        await settle(app, pilot)
        z, label, selected, before = list(screen.state.z), screen.state.label, screen.state.selected, screen.frame.image

        save_checkpoint(best, next_epoch(make_checkpoint("cvae"), 2))  # training writes a better one
        await wait_until(pilot, lambda: screen.checkpoint.epoch == 2, "the new checkpoint loaded")
        await settle(app, pilot)
        assert (screen.state.z, screen.state.label, screen.state.selected) == (z, label, selected)
        assert not torch.equal(screen.frame.image, before)  # the same z, drawn by the new weights
        expected = screen.decoder.images(torch.tensor([z]), torch.tensor([label]))[0]
        assert torch.allclose(screen.frame.image, expected, atol=1e-6)  # decoded in a batch of 18 there
        title = screen.query_one("TitleBar")
        assert title.render().plain.endswith("reloaded epoch 2")  # news in the title bar, no toast over the strip
        assert "epoch 2" in title.render().plain.removesuffix("reloaded epoch 2")
        assert not toast_shows(app, "reloaded")

        good = best.read_bytes()
        best.write_bytes(good[: len(good) // 2])  # a half-written file
        await pilot.pause(0.3)
        assert screen.checkpoint.epoch == 2 and app.is_running

        save_checkpoint(best, next_epoch(make_checkpoint("cvae"), 3))  # the next change is tried again
        await wait_until(pilot, lambda: screen.checkpoint.epoch == 3, "the next good checkpoint loaded")

        save_checkpoint(best, next_epoch(make_checkpoint("vae"), 4))
        await wait_until(pilot, lambda: toast_shows(app, "another shape: not reloaded"), "a warning")
        assert screen.checkpoint.config.kind == "cvae", "another shape is not shown"


async def test_a_checkpoint_whose_atlas_is_infinite_as_float32_is_not_reloaded(
    tmp_path: Path, make_checkpoint: Callable, rewrite_checkpoint: Callable, settle: Callable, wait_until: Callable
) -> None:
    """An atlas kl of float64 1e300 passed the loader and became inf: the reload crashed the explorer."""
    best = tmp_path / "best.safetensors"
    save_checkpoint(best, with_atlas(make_checkpoint("cvae")))
    app = create_app(load_checkpoint(best), str(tmp_path), tmp_path / "exports", follow=best)
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(app, pilot)
        screen = app.explorer

        def infinite_kl(tensors: dict) -> None:
            tensors["atlas.kl"] = tensors["atlas.kl"].double()
            tensors["atlas.kl"][1] = 1e300

        checkpoint = with_atlas(next_epoch(make_checkpoint("cvae"), 2))
        save_checkpoint(best, checkpoint)
        rewrite_checkpoint(best, edit_tensors=infinite_kl)
        watcher = screen.query_one(follow_module.CheckpointWatcher)
        await wait_until(pilot, lambda: watcher.seen == follow_module.signature(best), "the change noticed")
        await app.workers.wait_for_complete()  # the reload tried
        await pilot.pause()
        assert screen.checkpoint.epoch == 1 and app.is_running and app.return_code is None
        await pilot.press("L")
        await settle(app, pilot)  # still drawing

        checkpoint.epoch = 3
        save_checkpoint(best, checkpoint)  # the next good one is shown
        await wait_until(pilot, lambda: screen.checkpoint.epoch == 3, "the next good checkpoint loaded")


async def test_a_reload_draws_the_picked_image_s_reconstruction_and_the_path_with_the_new_weights(
    tmp_path: Path, make_checkpoint: Callable, settle: Callable, wait_until: Callable
) -> None:
    from vae_tui.screens.interpolation import PATH_STRIP

    best = tmp_path / "best.safetensors"
    save_checkpoint(best, with_atlas(make_checkpoint("cvae")))
    app = create_app(load_checkpoint(best), str(tmp_path), tmp_path / "exports", follow=best)
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(app, pilot)
        screen = app.explorer
        await pilot.press("o", "enter", "a", "5", "b")  # a picked image, and the path from it to class 5
        await settle(app, pilot)
        before = screen.path.path_strip.clone()
        save_checkpoint(best, with_atlas(next_epoch(make_checkpoint("cvae"), 2)))
        await wait_until(pilot, lambda: screen.checkpoint.epoch == 2, "the new checkpoint loaded")
        await settle(app, pilot)
        assert not torch.equal(screen.path.path_strip, before)
        reference, decoder = screen.reference, screen.decoder
        label = reference.label  # the class it was picked under (5 is the condition now)
        assert screen.state.label == 5 and label != 5
        mu = decoder.encode(reference.original, label)
        assert torch.equal(reference.decoded, decoder.images(torch.tensor([mu]), torch.tensor([label]))[0])
        ends = screen.path.ends
        assert torch.equal(screen.path.path_strip, decoder.path(ends["a"], ends["b"], PATH_STRIP))
