"""Conv designs tried for `--arch conv`: ms per training step against issue 11's reference, in one process.

Each design takes interleaved turns of 5 steps (batch 128, BCE-sum + KL on its logits, fused
Adam) on one random batch, so all of them see the same machine load; prints the median ms per
step and its ratio to the reference's (bench/conv_reference.py, plain NCHW PyTorch). The
designs: models/conv.py's model at two hidden widths, and, written here, the same layers with
fewer channels, and with a 1x1 convolution to fewer channels around the hidden layers. What
each costs in test loss is in the README's table of designs.
Usage: python bench/conv_candidates.py [--threads 2] [--rounds 6]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import train.loop  # noqa: E402, F401  denormals flushed, as for every training row
from bench.conv_reference import ReferenceConvVAE  # noqa: E402
from models import ModelConfig, build_model  # noqa: E402

CHANNELS_LAST = torch.channels_last


class Design(nn.Module):
    """models/conv.py's layers at channels (first, second) and a hidden width; squeeze: a 1x1 convolution to
    that many channels before the encoder's hidden layer and back after the decoder's (None: none)."""

    def __init__(self, first: int = 32, second: int = 64, hidden: int = 384, squeeze: int | None = None) -> None:
        super().__init__()
        self.second, self.squeeze = second, squeeze
        features = (squeeze or second) * 49
        self.conv1 = nn.Conv2d(1, first, 3, 2, 1)
        self.conv2 = nn.Conv2d(first, second, 3, 2, 1)
        self.to_narrow = nn.Conv2d(second, squeeze, 1) if squeeze else nn.Identity()
        self.hidden = nn.Linear(features, hidden)
        self.mu, self.logvar = nn.Linear(hidden, 20), nn.Linear(hidden, 20)
        self.z_hidden = nn.Linear(20, hidden)
        self.up = nn.Linear(hidden, features)
        self.to_wide = nn.Conv2d(squeeze, second, 1) if squeeze else nn.Identity()
        self.deconv1 = nn.ConvTranspose2d(second, first, 4, 2, 1)
        self.deconv2 = nn.ConvTranspose2d(first, 1, 4, 2, 1)
        self.to(memory_format=CHANNELS_LAST)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image = x.view(-1, 1, 28, 28).contiguous(memory_format=CHANNELS_LAST)
        h = F.relu(self.conv2(F.relu(self.conv1(image))))
        if self.squeeze:
            h = F.relu(self.to_narrow(h))
        h = F.relu(self.hidden(h.flatten(1)))
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        h = F.relu(self.up(F.relu(self.z_hidden(z))))
        h = h.view(-1, self.squeeze or self.second, 7, 7).contiguous(memory_format=CHANNELS_LAST)
        if self.squeeze:
            h = F.relu(self.to_wide(h))
        return self.deconv2(F.relu(self.deconv1(h))).flatten(1), mu, logvar


class Reference(nn.Module):
    """The reference, returning logits, so every row runs the same loss."""

    def __init__(self) -> None:
        super().__init__()
        self.model = ReferenceConvVAE()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        m = self.model
        h = F.relu(m.fc(F.relu(m.conv2(F.relu(m.conv1(x.view(-1, 1, 28, 28))))).flatten(1)))
        mu, logvar = m.fc_mu(h), m.fc_logvar(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        h = F.relu(m.fc_up(F.relu(m.fc_z(z)))).view(-1, 64, 7, 7)
        return m.deconv2(F.relu(m.deconv1(h))).flatten(1), mu, logvar


class Built(nn.Module):
    """vae-tui's own conv model (models/conv.py) at a hidden width."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.model = build_model(ModelConfig(arch="conv", hidden_dim=hidden))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.model(x)


DESIGNS = {
    "reference (3x3 up, hidden 256, NCHW)": Reference,
    "--arch conv: 32/64, hidden 384": lambda: Built(384),
    "32/64, hidden 512 (before)": lambda: Built(512),
    "16/32, hidden 512": lambda: Design(16, 32, 512),
    "32/64, hidden 512, 1x1 to 32 around it": lambda: Design(hidden=512, squeeze=32),
}


def step_of(model: nn.Module, x: torch.Tensor):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)

    def step() -> None:
        logits, mu, logvar = model(x)
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        loss = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") + kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.rand(128, 784)
    steps = {name: step_of(make(), x) for name, make in DESIGNS.items()}
    for step in steps.values():  # warm-up
        for _ in range(3):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            started = time.perf_counter()
            for _ in range(5):
                step()
            times[name].append((time.perf_counter() - started) / 5 * 1000)
    reference = statistics.median(next(iter(times.values())))
    print(f"{args.threads} threads, batch 128, medians of {args.rounds} rounds of 5 steps")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:42} {median:7.2f} ms/step  x{median / reference:.3f}")


if __name__ == "__main__":
    main()
