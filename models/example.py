"""Reading a state dict saved by the PyTorch example's VAE (pytorch/examples, vae/main.py) as a vae-tui VAE.

That example's model is the same MLP as vae-tui's: fc1 (784 -> H) and ReLU, fc21 and fc22
(H -> Z) for mu and logvar, fc3 (Z -> H) and ReLU, fc4 (H -> 784) and a sigmoid. vae-tui's
decoder returns fc4's output as logits, whose sigmoid is the example's output.
"""

import pickle
import zipfile
from pathlib import Path

import torch

from models.errors import CheckpointError
from models.limits import IMAGE_PIXELS, MAX_SIZE, shown
from models.vae import VAE, ModelConfig, build_model

# The example's layer -> vae-tui's, by role.
LAYERS = {
    "fc1": "encoder_hidden",
    "fc21": "to_mu",
    "fc22": "to_logvar",
    "fc3": "decoder_hidden",
    "fc4": "to_logits",
}
MAX_FILE_BYTES = 1 << 31  # the example's model is 2.6 MB; a file this size is not one


def read_example_state(path: Path) -> dict[str, torch.Tensor]:
    """The state dict in path, loaded with weights_only=True: tensors and plain containers, never code."""
    if not path.is_file():
        raise CheckpointError(f"no file at {path}" if not path.exists() else f"{path} is not a file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise CheckpointError(f"{path} is {path.stat().st_size:,} bytes: not the PyTorch example's VAE (2.6 MB)")
    try:
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
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise CheckpointError(f"{path}: {key} is not a floating-point tensor")
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
    for key, value in state.items():
        if not torch.isfinite(value).all():
            raise CheckpointError(f"{path}: {key} contains NaN or infinite values")
    model = build_model(config)
    mapped = {
        f"{role}.{part}": state[f"{layer}.{part}"].float()
        for layer, role in LAYERS.items()
        for part in ("weight", "bias")
    }
    model.load_state_dict(mapped)
    return model.eval()
