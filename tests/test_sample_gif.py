"""`vae-tui sample --gif` and `--interpolate test:N`."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageSequence

import train.data
from models import load_checkpoint
from train.grids import grid, to_image
from vae_tui.commands.explore import pretrained_path
from vae_tui.decoding import Decoder


def gif_frames(path: Path) -> list[bytes]:
    with Image.open(path) as gif:
        return [frame.convert("L").tobytes() for frame in ImageSequence.Iterator(gif)]


def test_an_interpolation_gif_has_a_frame_per_step_and_the_same_bytes_twice(tmp_path: Path, run_cli: Callable) -> None:
    for name in ("one.gif", "two.gif"):
        args = (
            "--interpolate",
            "test:3",
            "seed:7",
            "--steps",
            "6",
            "--scale",
            "2",
            "--gif",
            "-o",
            str(tmp_path / name),
        )
        assert run_cli("sample", "--pretrained", "vae", *args).code == 0
    assert (tmp_path / "one.gif").read_bytes() == (tmp_path / "two.gif").read_bytes()
    checkpoint = load_checkpoint(pretrained_path("vae"))
    atlas = checkpoint.atlas
    start = atlas.mu[(atlas.indices == 3).nonzero()[0, 0]]  # test image 3's stored encoding
    end = torch.randn(checkpoint.config.latent_dim, generator=torch.Generator().manual_seed(7))
    t = torch.linspace(0, 1, 6)[:, None]
    images = Decoder(checkpoint.model).images((1 - t) * start + t * end, torch.zeros(6))
    assert gif_frames(tmp_path / "one.gif") == [to_image(grid(image[None], 1), 2).tobytes() for image in images]
    with Image.open(tmp_path / "one.gif") as gif:  # the record a PNG carries, in the GIF's comment
        record = json.loads(gif.info["comment"])
    assert record["sha256"] == checkpoint.sha256 and len(record["z"]) == 6


def test_a_traversal_gif_has_a_frame_per_value(tmp_path: Path, run_cli: Callable) -> None:
    out = tmp_path / "traverse.gif"
    assert run_cli("sample", "--pretrained", "cvae", "--traverse", "16", "--n", "3", "--gif", "-o", str(out)).code == 0
    frames = gif_frames(out)
    assert len(frames) == 7 and Image.open(out).size == (4 * (3 * 30 + 2), 4 * 32)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--n", "3", "--gif", "-o", "x.gif"), "--gif animates --traverse or --interpolate"),
        (("--traverse", "0", "--gif", "-o", "x.png"), "must be a .gif file with --gif"),
        (("--interpolate", "test:x", "seed:1", "-o", "x.png"), "is not test:N"),
    ],
)
def test_bad_gif_arguments_are_refused_in_one_line(
    run_cli: Callable, tmp_path: Path, args: tuple, message: str
) -> None:
    args = tuple(str(tmp_path / a) if a.startswith("x.") else a for a in args)
    run_cli("sample", "--pretrained", "vae", *args).assert_one_line_error(message)


def test_test_n_outside_the_atlas_without_the_dataset_says_so(
    run_cli: Callable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(train.data, "candidate_roots", lambda dataset: [])
    atlas = load_checkpoint(pretrained_path("vae")).atlas
    missing = next(i for i in range(10_000) if i not in set(atlas.indices.tolist()))
    result = run_cli(
        "sample", "--pretrained", "vae", "--interpolate", f"test:{missing}", "seed:1", "-o", str(tmp_path / "a.png")
    )
    result.assert_one_line_error(f"test image {missing} is not among the encodings the checkpoint stores")


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="needs the real FashionMNIST")
def test_test_n_outside_the_atlas_is_encoded_from_the_dataset(run_cli: Callable, tmp_path: Path) -> None:
    checkpoint = load_checkpoint(pretrained_path("vae"))
    missing = next(i for i in range(10_000) if i not in set(checkpoint.atlas.indices.tolist()))
    out = tmp_path / "a.gif"
    assert (
        run_cli(
            "sample",
            "--pretrained",
            "vae",
            "--interpolate",
            f"test:{missing}",
            f"test:{missing}",
            "--steps",
            "2",
            "--gif",
            "-o",
            str(out),
        ).code
        == 0
    )
    test = train.data.load_test_split("fashion-mnist")
    mu, _ = checkpoint.model.encode(test.images[missing].reshape(1, -1).float() / 255)
    image = Decoder(checkpoint.model).images(mu, torch.zeros(1))[0]
    assert gif_frames(out)[0] == to_image(grid(image[None], 1), 4).tobytes()
