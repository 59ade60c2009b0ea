"""The demo's training loop, kept as the reference the benchmarks compare against.

A faithful copy of the PyTorch demo vae-tui grew out of: torchvision's FashionMNIST with
ToTensor, a shuffling DataLoader of batch 128, a sigmoid decoder with
binary_cross_entropy, Adam 1e-3, and loss.item() on every step. Run it alone to time the
whole script: `python bench/demo_loop.py --epochs 5`.
"""

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class DemoVAE(nn.Module):
    """The demo's model, names and all."""

    def __init__(self, input_dim: int = 784, h_dim: int = 400, z_dim: int = 20) -> None:
        super().__init__()
        self.fc1 = nn.Linear(input_dim, h_dim)
        self.fc21 = nn.Linear(h_dim, z_dim)
        self.fc22 = nn.Linear(h_dim, z_dim)
        self.fc3 = nn.Linear(z_dim, h_dim)
        self.fc4 = nn.Linear(h_dim, input_dim)
        self.input_dim = input_dim

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        std = torch.exp(0.5 * logvar)
        return mu + torch.randn_like(std) * std

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x.view(-1, self.input_dim))
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar


def torchvision_root(dataset: str = "fashion-mnist") -> Path:
    """A folder in torchvision's own layout (<root>/FashionMNIST/raw), filled from vae-tui's data search."""
    from train.data import SPLIT_FILES, TORCHVISION_CLASSES, locate, read_idx_bytes

    files, _ = locate(dataset)
    root = Path(tempfile.mkdtemp(prefix="demo-data-"))
    raw = root / TORCHVISION_CLASSES[dataset] / "raw"
    raw.mkdir(parents=True)
    for name in (n for pair in SPLIT_FILES.values() for n in pair):
        (raw / name).write_bytes(read_idx_bytes(files[name], dataset))
    return root


def run_demo(
    epochs: int,
    batch_size: int = 128,
    device: str = "cpu",
    root: Path | None = None,
    seed: int = 0,
    on_epoch: Callable[[int, float], None] | None = None,
    make_model: Callable[[], nn.Module] = DemoVAE,
) -> nn.Module:
    """Train the demo's way (make_model: the demo's VAE, or another with its forward); on_epoch(epoch, seconds)."""
    from torchvision import datasets, transforms

    torch.manual_seed(seed)
    dataset = datasets.FashionMNIST(root=str(root or torchvision_root()), train=True, transform=transforms.ToTensor())
    data_loader = torch.utils.data.DataLoader(dataset=dataset, batch_size=batch_size, shuffle=True)
    model = make_model().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        for x, _ in data_loader:
            x = x.to(device).view(-1, 784)
            x_reconst, mu, log_var = model(x)
            reconst_loss = F.binary_cross_entropy(x_reconst, x, reduction="sum")
            kl_div = -0.5 * torch.sum(1 + log_var - mu.pow(2) - log_var.exp())
            loss = reconst_loss + kl_div
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss.item()  # the demo printed it every few steps; reading it syncs every step
        if on_epoch:
            on_epoch(epoch, time.perf_counter() - started)
    return model


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--root", type=Path, help="a folder in torchvision's layout (default: made from vae-tui's data)"
    )
    args = parser.parse_args()
    on_epoch = lambda e, s: print(f"epoch {e}: {s:.2f} s", flush=True)  # noqa: E731
    run_demo(args.epochs, device=args.device, root=args.root, on_epoch=on_epoch)
