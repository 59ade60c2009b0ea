"""`sample --code`, `eval --code`, the Python API (vae_tui.explore, vae_tui.sample) and the atlas cache of models
written elsewhere, on the small models of tests/outside_models.py; and the README's --code lines as written."""

import inspect
import json
import re
import shlex
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import vae_tui
from models import UserError
from tests import outside_models
from tests.outside_models import squares
from tests.test_outside import trained
from train.atlas_cache import atlases_dir
from vae_tui.api import explorer_app
from vae_tui.outside_atlas import folder_source

MODELS = Path(outside_models.__file__)
ROOT = Path(__file__).resolve().parents[1]
TANH = ["--code", f"{MODELS}:trained", "--decoder-output", "tanh"]


def coloured_folder(root: Path, per_class: int = 8, size: int = 16) -> Path:
    """Class folders of seeded RGB images: a square of the class's colour at a seeded place, on black."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(("red", "green", "blue")):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.zeros((size, size, 3), np.uint8)
            top, left = rng.integers(0, size - size * 3 // 8, 2)
            pixels[top : top + size * 3 // 8, left : left + size * 3 // 8, c] = 230
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_sample_code_writes_the_models_own_decodes_as_an_rgb_png(tmp_path: Path, run_cli: Callable) -> None:
    result = run_cli("sample", *TANH, "-o", str(tmp_path / "grid.png"), "--n", "4", "--scale", "1")
    assert result.code == 0, result.stderr
    image = Image.open(tmp_path / "grid.png")
    assert image.mode == "RGB" and image.width == 4 * (16 + 2) + 2
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))  # the command's prior draws, seed 0
    with torch.no_grad():
        expected = ((trained().decode(z) + 1) / 2 * 255).round()  # (4, 3, 16, 16)
    cells = torch.from_numpy(np.array(image)).permute(2, 0, 1).float()
    for i in range(4):
        cell = cells[:, 2 : 2 + 16, 2 + i * 18 : 2 + i * 18 + 16]
        assert (cell - expected[i]).abs().max() <= 1, i


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--pretrained", "vae", *TANH], "give a checkpoint or --code FILE.py:FUNC, not both"),
        (["--pretrained", "vae", "--decoder-output", "tanh"], "--decoder-output describes a model written elsewhere"),
        ([*TANH, "--from-png", "x.png"], "--from-png draws from the checkpoint a PNG records: leave out --code"),
        ([*TANH, "--interpolate", "test:1", "seed:2"], "a model given with --code has no test images here"),
    ],
    ids=["both", "flag without code", "from png", "test image"],
)
def test_sample_code_refusals_are_one_line(tmp_path: Path, run_cli: Callable, flags: list[str], message: str) -> None:
    run_cli("sample", *flags, "-o", str(tmp_path / "grid.png")).assert_one_line_error(message)


def test_eval_code_reports_reconstruction_error_and_kl_per_dimension_and_no_elbo_for_tanh(
    tmp_path: Path, run_cli: Callable
) -> None:
    folder = coloured_folder(tmp_path / "colours")
    result = run_cli("eval", *TANH, "--data", str(folder), "--json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["decoder_output"] == "tanh" and report["likelihood"] is None  # no likelihood is known
    assert report["images"] == 3 and [row["name"] for row in report["per_class"]] == ["blue", "green", "red"]
    test = folder_source(argparse_namespace(folder), (3, 16, 16)).dataset.test  # the split eval read
    x = test.images.float() / 255
    model = trained()
    with torch.no_grad():
        mu, logvar = model.encode(x * 2 - 1)
        error = (((model.decode(mu) + 1) / 2 - x) ** 2).flatten(1).sum(1)
    assert report["squared_error"]["per_image"] == pytest.approx(error.mean().item(), rel=1e-4)
    kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar)
    assert [d["kl"] for d in report["dimensions"]] == pytest.approx(kl.mean(0).tolist(), rel=1e-4, abs=1e-6)
    assert report["active_units"] == sum(d["variance"] > 0.01 for d in report["dimensions"])
    tables = run_cli("eval", *TANH, "--data", str(folder))
    assert tables.code == 0, tables.stderr
    said = " ".join(tables.stdout.split())
    assert "squared error per image" in said and "Latent dimensions" in said and "-ELBO" not in said
    assert "decoder output tanh: its likelihood is not known, so no ELBO" in said


def test_eval_code_adds_the_elbo_and_bound_for_a_bernoulli_decoder(tmp_path: Path, run_cli: Callable) -> None:
    folder = coloured_folder(tmp_path / "colours")
    flags = ["--code", f"{MODELS}:trained", "--decoder-output", "logits", "--data", str(folder), "--samples", "4"]
    result = run_cli("eval", *flags, "--json")
    assert result.code == 0, result.stderr
    likelihood = json.loads(result.stdout)["likelihood"]
    for part in (likelihood["elbo_sampled"], likelihood["elbo_mean"]):
        assert part["total"] == pytest.approx(part["reconstruction"] + part["kl"], rel=1e-5)
    assert likelihood["iwae_samples"] == 4
    assert "a Bernoulli decoder, so the ELBO and the bound apply" in " ".join(run_cli("eval", *flags).stdout.split())


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ([], "eval --code needs its data: give --data DIR or --dataset NAME"),
        (["--data", "x", "--dataset", "mnist"], "eval --code needs its data: give --data DIR or --dataset NAME"),
        (["--pretrained", "vae"], "give a checkpoint or --code FILE.py:FUNC, not both"),
    ],
    ids=["no data", "both data", "both models"],
)
def test_eval_code_refusals_are_one_line(run_cli: Callable, flags: list[str], message: str) -> None:
    run_cli("eval", *TANH, *flags).assert_one_line_error(message)


def test_eval_dataset_goes_with_code(run_cli: Callable) -> None:
    run_cli("eval", "--pretrained", "vae", "--dataset", "mnist").assert_one_line_error("--dataset goes with --code")


def argparse_namespace(folder: Path) -> object:
    from argparse import Namespace

    return Namespace(data=str(folder))


async def test_vae_tui_explore_opens_the_explorer_on_a_live_model_with_its_data(
    tmp_path: Path, settle: Callable
) -> None:
    """explore's app, headless: the preview is the model's own decode, and the map holds the data's encodings."""
    model = trained().train()
    images, labels = squares(24, seed=4)
    app = explorer_app(model, "tanh", data=(images, labels), class_names=["r", "g", "b", "y"], exports=tmp_path)
    assert app.checkpoint.class_names == ["r", "g", "b", "y"] and len(app.checkpoint.atlas.mu) == 24
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        screen = app.explorer
        await pilot.press("l", "l")
        await settle(app, pilot)
        with torch.no_grad():
            expected = (trained().decode(torch.tensor([screen.state.z])) + 1) / 2
        torch.testing.assert_close(screen.frame.image, expected[0], atol=1e-5, rtol=0)
        await pilot.press("m")
        await settle(app, pilot)
        assert screen.map.shown
    with torch.no_grad():
        mu = model.encode(images * 2 - 1)[0]
    torch.testing.assert_close(app.checkpoint.class_centroids[1], mu[labels == 1].mean(0), atol=1e-5, rtol=0)


def test_vae_tui_explore_refuses_what_it_cannot_read_in_one_line() -> None:
    images = squares(4)[0]
    with pytest.raises(UserError, match=re.escape("data: float images must lie in [0, 1]")):
        explorer_app(trained(), "tanh", data=images * 2 - 1)
    with pytest.raises(UserError, match="the data's images are \\(3, 8, 8\\), the model's \\(3, 16, 16\\)"):
        explorer_app(trained(), "tanh", data=images[:, :, :8, :8])
    with pytest.raises(UserError, match="class_names names 2 classes; the data has 4"):
        explorer_app(trained(), "tanh", data=(images, torch.arange(4)), class_names=["a", "b"])


def test_vae_tui_sample_writes_a_png_and_gives_the_model_back_as_it_was(tmp_path: Path) -> None:
    model = trained().train()
    path = vae_tui.sample(model, tmp_path / "grid.png", n=4, decoder_output="tanh", scale=1)
    assert path == tmp_path / "grid.png" and Image.open(path).mode == "RGB"
    assert model.training  # the explorer and sample run it in eval mode, then give its mode back
    again = vae_tui.sample(model, tmp_path / "again.png", n=4, decoder_output="tanh", scale=1)
    assert again.read_bytes() == path.read_bytes()
    with pytest.raises(UserError, match="exists"):
        vae_tui.sample(model, path, decoder_output="tanh")
    for function in (vae_tui.explore, vae_tui.sample):  # what help() shows: the signature and each argument's meaning
        assert "decoder_output" in inspect.signature(function).parameters and "decoder_output:" in function.__doc__


class Counted(nn.Module):
    """A model that counts its encode calls."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.latent_dim, self.encodes = model, model.latent_dim, 0

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.encodes += 1
        return self.model.encode(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decode(z)


def test_the_atlas_is_cached_under_the_weights_and_the_data(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    images, labels = squares(24, seed=5)
    first = Counted(trained())
    atlas = explorer_app(first, "tanh", data=(images, labels)).checkpoint.atlas
    assert first.encodes > 0 and len(list(atlases_dir().glob("*.safetensors"))) == 1
    assert "computing the atlas of 24 test images" in capfd.readouterr().err
    again = Counted(trained())  # the same weights in a new model: found, nothing encoded
    checkpoint = explorer_app(again, "tanh", data=(images, labels)).checkpoint
    assert again.encodes == 0 and torch.equal(checkpoint.atlas.mu, atlas.mu)
    assert torch.equal(checkpoint.atlas.images, atlas.images) and torch.equal(checkpoint.atlas.loss, atlas.loss)
    assert "found in the cache" in capfd.readouterr().err
    other_data = Counted(trained())
    explorer_app(other_data, "tanh", data=(images[:20], labels[:20]))
    changed = Counted(trained(steps=31))  # other weights
    explorer_app(changed, "tanh", data=(images, labels))
    assert other_data.encodes > 0 and changed.encodes > 0 and len(list(atlases_dir().glob("*"))) == 3
    for path in atlases_dir().glob("*"):
        path.write_bytes(path.read_bytes()[:100])  # damaged: computed again, and replaced
    damaged = Counted(trained())
    explorer_app(damaged, "tanh", data=(images, labels))
    assert damaged.encodes > 0 and "is damaged" in capfd.readouterr().err


def test_explore_code_data_maps_the_folder_and_its_second_start_finds_the_cache(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """explore --code --data DIR's atlas (what the explorer then opens with): the folder's classes and test split,
    computed with a line per stage on stderr (not a terminal), then found in the cache by the next start."""
    from argparse import Namespace

    from models.outside import OutsideVAE
    from vae_tui.commands.explore import outside_atlas
    from vae_tui.outside import outside_checkpoint

    folder = coloured_folder(tmp_path / "colours")
    flags = Namespace(data=str(folder), dataset=None, class_names=None, code="m.py:trained", debug=False, threads=1)
    starts = []
    for _ in range(2):
        model = Counted(trained())
        checkpoint = outside_checkpoint(OutsideVAE(model, decoder_output="tanh"), flags)
        outside_atlas(checkpoint, flags)
        starts.append((model.encodes, checkpoint, capfd.readouterr().err))
    (encodes, checkpoint, err), (encodes_again, again, err_again) = starts
    assert checkpoint.class_names == ["blue", "green", "red"] and len(checkpoint.atlas.mu) == 3
    assert checkpoint.class_centroids.shape == (3, 8) and checkpoint.atlas.images.shape == (3, 3, 16, 16)
    assert encodes > 0 and "atlas: principal plane" in err and "atlas: class centroids (21 images)" in err
    assert encodes_again == 0 and "found in the cache" in err_again and again.class_names == checkpoint.class_names
    torch.testing.assert_close(again.class_centroids, checkpoint.class_centroids, atol=0, rtol=0)


def python_block(text: str, first_line: str) -> str:
    """The ```python block of text that starts with first_line, or holds it."""
    blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)
    return next(block for block in blocks if first_line in block)


def code_lines(text: str) -> list[str]:
    """The `vae-tui sample` and `vae-tui eval` lines with --code in text (the explore lines are interactive)."""
    return [line.split("  #")[0] for line in re.findall(r"^(vae-tui (?:sample|eval) --code .*)$", text, flags=re.M)]


def test_the_readme_and_docs_code_examples_run_as_written_beside_the_files_they_name(
    tmp_path: Path, run_cli: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lines marked `# needs your file` (tests/test_docs.py runs blocks in an empty folder): here they run beside
    the README's my_vae.py with weights saved by torch.save, an image folder of 64x64 colour images, and the
    repository's docs/; then the README's Python example, up to the explorer (interactive)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    readme, docs = (ROOT / "README.md").read_text(), (ROOT / "docs" / "outside.md").read_text()
    (tmp_path / "my_vae.py").write_text(python_block(readme, "# my_vae.py\n"))
    (tmp_path / "docs").symlink_to(ROOT / "docs")
    coloured_folder(tmp_path / "my_images", per_class=4, size=64)
    namespace: dict = {}
    exec("import torch\nfrom my_vae import VanillaVAE\ntorch.manual_seed(0)", namespace)
    torch.save(namespace["VanillaVAE"]().state_dict(), tmp_path / "vae.pt")
    lines = code_lines(readme) + code_lines(docs)
    assert len(lines) >= 4 and any("my_vae.py" in line for line in lines)
    for line in lines:
        result = run_cli(*shlex.split(line)[1:])
        assert result.code == 0, f"{line}\n{result.stderr}"
    script = python_block(readme, "vae_tui.sample(")
    exec(compile(script.split("vae_tui.explore(")[0], "README.md", "exec"), {})
    assert Image.open(tmp_path / "samples.png").mode == "RGB"
    assert Image.open(tmp_path / "vae64.png").size == Image.open(tmp_path / "samples.png").size


def test_the_pytorch_example_vae_through_code(tmp_path: Path, run_cli: Callable, mnist_dir: Path) -> None:
    """docs/examples/pytorch_example_vae.py: its flat (N, 784) probabilities are 1x28x28 images under a Bernoulli
    decoder, and its encoder gets them flattened."""
    code = ["--code", f"{ROOT}/docs/examples/pytorch_example_vae.py:load", "--latent-dim", "20"]
    result = run_cli("eval", *code, "--dataset", "mnist", "--data-dir", str(mnist_dir), "--samples", "2", "--json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["likelihood"]["iwae_samples"] == 2 and len(report["dimensions"]) == 20
    assert run_cli("sample", *code, "-o", str(tmp_path / "digits.png")).code == 0
    assert Image.open(tmp_path / "digits.png").mode == "L"
