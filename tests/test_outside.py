"""Models written elsewhere (models/outside.py, vae_tui/outside.py): the protocol's adapter, `explore --code` with
its one-line refusals, and the explorer on such a model."""

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from models.outside import OutsideModelError, OutsideVAE
from tests import outside_models
from tests.outside_models import squares, trained
from train.atlas import atlas_of
from vae_tui.app import create_app
from vae_tui.widgets.image_view import ImageView

MODELS = Path(outside_models.__file__)


def test_a_tanh_model_is_seen_as_logits_of_its_pixels_and_its_encoder_gets_inputs_in_its_range() -> None:
    model = trained()
    outside = OutsideVAE(model, decoder_output="tanh")
    assert outside.config.image_shape == (3, 16, 16) and outside.config.latent_dim == 8 and not outside.conditional
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = (model.decode(z) + 1) / 2
    torch.testing.assert_close(torch.sigmoid(outside.decode(z)).view(5, 3, 16, 16), expected, atol=2e-6, rtol=0)
    images = squares(6, seed=2)[0]
    mu, logvar = outside.encode(images.reshape(6, -1))
    with torch.no_grad():
        own_mu, own_logvar = model.encode(images * 2 - 1)
    assert torch.equal(mu, own_mu) and torch.equal(logvar, own_logvar) and outside.has_logvar


def test_what_the_protocol_does_not_allow_is_one_line() -> None:
    with pytest.raises(OutsideModelError, match="has no latent_dim attribute: give its size with --latent-dim"):
        OutsideVAE(outside_models.NoLatentDim())
    assert OutsideVAE(outside_models.NoLatentDim(), latent_dim=3).config.image_shape == (1, 28, 28)
    for make, message in [
        (outside_models.returns_a_list, "decode(z) returned a list: expected a tensor of images"),
        (outside_models.wrong_shape, "decode(z) returned a tensor of shape (1, 5, 7) (float32): expected"),
    ]:
        with pytest.raises(OutsideModelError, match=re.escape(message)):
            OutsideVAE(make())
    with pytest.raises(OutsideModelError, match="decode\\(z\\) returned NaN or infinite values"):
        OutsideVAE(outside_models.nan_images())  # the first decode is checked as every one is


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("nothere.py:load", "--code nothere.py:load: no file nothere.py"),
        ("{models}:missing", "--code {models}:missing: {models} has no function missing"),
        ("{models}:raises", "--code {models}:raises: raises() raised FileNotFoundError: weights.pt (--debug shows"),
        ("{models}:returns_a_list", "decode(z) returned a list: expected a tensor of images"),
        ("{models}:nan_images", "decode(z) returned NaN or infinite values"),
        ("{syntax}:load", "--code {syntax}:load: {syntax}, line 1 has a syntax error invalid syntax"),
        ("no_colon", "--code takes FILE.py:FUNC or package.module:FUNC, not 'no_colon'"),
        ("no.such.module:f", "--code no.such.module:f: no module named no"),
    ],
    ids=["no file", "no func", "func raises", "not a tensor", "nan", "syntax error", "no colon", "no module"],
)
def test_explore_code_failures_are_one_line(
    tmp_path: Path, run_cli: Callable, monkeypatch: pytest.MonkeyPatch, code: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    syntax = tmp_path / "broken.py"
    syntax.write_text("def load(:\n")
    fill = {"models": str(MODELS), "syntax": str(syntax)}
    run_cli("explore", "--code", code.format(**fill)).assert_one_line_error(message.format(**fill))


async def test_the_explorer_draws_an_outside_model_and_maps_its_encodings(tmp_path: Path, settle: Callable) -> None:
    """A tanh VAE trained for a few steps, with an atlas of its data: the preview is its own decode of z, a nudge
    changes it, and the map and picker have its encodings."""
    from argparse import Namespace

    from vae_tui.outside import outside_checkpoint

    model = OutsideVAE(trained(), decoder_output="tanh")
    checkpoint = outside_checkpoint(model, Namespace(class_names=None))
    images, labels = squares(40, seed=3)
    model.use_classes(4)
    checkpoint.class_names = ["red", "green", "blue", "yellow"]
    checkpoint.class_centroids = torch.zeros(4, 8)
    levels = (images * 255).round().to(torch.uint8)
    checkpoint.atlas = atlas_of(model, levels.reshape(40, -1).float() / 255, labels, levels)
    app = create_app(checkpoint, "--code tests", tmp_path / "exports")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        screen = app.explorer
        before = screen.frame.image
        await pilot.press("l", "l", "l", "l")
        await settle(app, pilot)
        with torch.no_grad():
            expected = (trained().decode(torch.tensor([screen.state.z])) + 1) / 2
        torch.testing.assert_close(screen.frame.image, expected[0], atol=1e-5, rtol=0)
        assert not torch.equal(before, screen.frame.image)
        await pilot.press("m")
        await settle(app, pilot)
        assert screen.map.shown and screen.query_one("#map-image", ImageView).pixels.shape == (3, 16, 16)
