"""Reading a state dict saved by the PyTorch example's VAE (pytorch/examples, vae/main.py) as a vae-tui VAE.

That example's model is the same MLP as vae-tui's: fc1 (784 -> H) and ReLU, fc21 and fc22
(H -> Z) for mu and logvar, fc3 (Z -> H) and ReLU, fc4 (H -> 784) and a sigmoid. vae-tui's
decoder returns fc4's output as logits, whose sigmoid is the example's output.
"""

import pickle
import warnings
import zipfile
from pathlib import Path

import torch

from models.atlas import Atlas, atlas_float_problem
from models.bounds import MAX_ENCODING, MAX_WEIGHT, float32_problem
from models.errors import CheckpointError
from models.limits import IMAGE_PIXELS, MAX_SIZE, shown
from models.registry import build_model
from models.vae import VAE, ModelConfig

# The example's layer -> vae-tui's, by role.
LAYERS = {
    "fc1": "encoder_hidden",
    "fc21": "to_mu",
    "fc22": "to_logvar",
    "fc3": "decoder_hidden",
    "fc4": "to_logits",
}
MAX_FILE_BYTES = 1 << 31  # the example's model is 2.6 MB; a file this size, or one unpacking to it, is not one
# torch.save's archive lists about a hundred bytes per tensor (the example's: 1 KB); a bound on what zipfile reads
MAX_DIRECTORY_BYTES = 1 << 20
# The dtypes a state dict's weights may have: all cast to float32 exactly or by rounding (float8 has no isfinite).
WEIGHT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def read_example_state(path: Path) -> dict[str, torch.Tensor]:
    """The state dict in path, loaded with weights_only=True: tensors and plain containers, never code."""
    if not path.is_file():
        raise CheckpointError(f"no file at {path}" if not path.exists() else f"{path} is not a file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise CheckpointError(f"{path} is {path.stat().st_size:,} bytes: not the PyTorch example's VAE (2.6 MB)")
    check_archive(path, MAX_FILE_BYTES)
    try:
        with warnings.catch_warnings():  # torch.load warns about what it refuses next: the refusal alone is shown
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{path} is not a plain state dict: torch.load(weights_only=True) refused it ({first[:160]})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise CheckpointError(f"{path} is truncated or not a file torch.save wrote ({type(e).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state dict of named tensors")
    return {key.removeprefix("module."): value for key, value in state.items()}  # nn.DataParallel's prefix


def check_archive(path: Path, cap: int) -> None:
    """What torch.load would unpack from path, read from the zip's directory alone: at most cap bytes, each entry
    stored as torch.save stores them (uncompressed, so what is unpacked is never more than the file holds).

    A file without a zip's end record goes on to torch.load: the legacy torch.save format, which stores its bytes as
    they are (so they are bounded by the file's size), or a truncated file, which torch.load refuses.
    """
    try:
        with path.open("rb") as file:
            end = zipfile._EndRecData(file)  # the end record, as ZipFile reads it (zip64 included)
            if end is None:
                return
            if end[zipfile._ECD_SIZE] > MAX_DIRECTORY_BYTES:
                raise CheckpointError(
                    f"{path} lists {end[zipfile._ECD_SIZE]:,} bytes of archive entries: not the PyTorch example's VAE"
                )
            with zipfile.ZipFile(file) as archive:
                entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, ValueError, EOFError) as e:
        # zipfile reads every archive torch.save writes: one it cannot read is damaged
        raise CheckpointError(f"{path} is truncated or not a file torch.save wrote ({type(e).__name__})") from None
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    unpacked = sum(entry.file_size for entry in entries)
    if unpacked > cap:
        raise CheckpointError(f"{path} unpacks to {unpacked:,} bytes: not the PyTorch example's VAE (2.6 MB)")
    if compressed := [entry for entry in entries if entry.compress_type != zipfile.ZIP_STORED]:
        largest = max(compressed, key=lambda entry: entry.file_size)
        raise CheckpointError(
            f"{path} holds compressed entries ({shown(largest.filename)}: {largest.compress_size:,} bytes unpacking"
            f" to {largest.file_size:,}), which torch.save never writes: save the state dict again with torch.save"
        )


def example_config(state: dict[str, torch.Tensor], path: Path) -> ModelConfig:
    """The VAE sizes the example's tensors imply, every key and shape checked."""
    expected = {f"{layer}.{part}" for layer in LAYERS for part in ("weight", "bias")}
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unexpected {shown(', '.join(extra))}"] if extra else []
        )
        raise CheckpointError(f"{path} is not the PyTorch example's VAE: {'; '.join(parts)}")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor) or value.is_nested:
            raise CheckpointError(f"{path}: {key} is not a tensor")
        if value.dtype not in WEIGHT_DTYPES or value.layout != torch.strided or value.device.type != "cpu":
            kind = str(value.dtype if value.layout == torch.strided else value.layout).removeprefix("torch.")
            raise CheckpointError(
                f"{path}: {key} is a {kind} tensor{'' if value.device.type == 'cpu' else ' without data'},"
                " expected dense float16, bfloat16, float32 or float64"
            )
    hidden, pixels = state["fc1.weight"].shape if state["fc1.weight"].dim() == 2 else (0, 0)
    latent = state["fc21.weight"].shape[0] if state["fc21.weight"].dim() == 2 else 0
    if pixels != IMAGE_PIXELS:
        raise CheckpointError(f"{path}: fc1.weight has shape {tuple(state['fc1.weight'].shape)}, expected (H, 784)")
    if not (0 < hidden <= MAX_SIZE and 0 < latent <= MAX_SIZE):
        raise CheckpointError(f"{path}: layer sizes {hidden} and {latent} are out of range")
    config = ModelConfig(kind="vae", arch="mlp", hidden_dim=hidden, latent_dim=latent)
    shapes = {key: tuple(t.shape) for key, t in build_model(config).state_dict().items()}
    for layer, role in LAYERS.items():
        for part in ("weight", "bias"):
            got, want = tuple(state[f"{layer}.{part}"].shape), shapes[f"{role}.{part}"]
            if got != want:
                raise CheckpointError(
                    f"{path}: {layer}.{part} has shape {got}, expected {want} (H={hidden}, Z={latent})"
                )
    return config


def model_from_example(path: str | Path) -> VAE:
    """vae-tui's VAE with the weights of the example's state dict in path; a CheckpointError if it is not one."""
    path = Path(path)
    state = read_example_state(path)
    config = example_config(state, path)
    for key, value in state.items():  # as float32, the checkpoint's dtype: float64's 1e300 is infinite there
        if problem := float32_problem(value, MAX_WEIGHT):
            raise CheckpointError(f"{path}: {key} {problem}")
    model = build_model(config)
    mapped = {
        f"{role}.{part}": state[f"{layer}.{part}"].float()
        for layer, role in LAYERS.items()
        for part in ("weight", "bias")
    }
    model.load_state_dict(mapped)
    return model.eval()


def check_encodings(centroids: torch.Tensor, atlas: Atlas | None, path: Path) -> None:
    """The class centroids and the atlas import-example computed with the model, held to the bounds load_checkpoint
    holds a checkpoint's to: an imported checkpoint always loads."""
    problems = [("the class centroids", float32_problem(centroids, MAX_ENCODING))]
    if atlas is not None and (found := atlas_float_problem(atlas)):
        problems.append((f"the atlas' {found[0]}", found[1]))
    for what, problem in problems:
        if problem:
            raise CheckpointError(f"{path} is not a trained VAE: what it computes on the dataset ({what}) {problem}")
