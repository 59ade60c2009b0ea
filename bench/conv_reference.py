"""The reference conv VAE of issue 11, written as plain PyTorch (NCHW), for bench/train_speed.py --arch conv.

Two stride-2 3x3 convolutions (32, 64 channels), a 256 hidden layer, latent 20, the decoder
mirrored with transposed convolutions: 1.66 M parameters. Its forward returns probabilities,
as the demo's model does, so it runs in the demo's loop (bench/demo_loop.py) unchanged.
"""

import torch
import torch.nn.functional as F
from torch import nn


class ReferenceConvVAE(nn.Module):
    """The reference design, as one would write it without tuning it for the CPU."""

    def __init__(self, hidden: int = 256, latent: int = 20) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, stride=2, padding=1)
        self.fc = nn.Linear(64 * 7 * 7, hidden)
        self.fc_mu = nn.Linear(hidden, latent)
        self.fc_logvar = nn.Linear(hidden, latent)
        self.fc_z = nn.Linear(latent, hidden)
        self.fc_up = nn.Linear(hidden, 64 * 7 * 7)
        self.deconv1 = nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1)
        self.deconv2 = nn.ConvTranspose2d(32, 1, 3, stride=2, padding=1, output_padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = F.relu(self.conv2(F.relu(self.conv1(x.view(-1, 1, 28, 28)))))
        h = F.relu(self.fc(h.flatten(1)))
        mu, logvar = self.fc_mu(h), self.fc_logvar(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        h = F.relu(self.fc_up(F.relu(self.fc_z(z)))).view(-1, 64, 7, 7)
        return torch.sigmoid(self.deconv2(F.relu(self.deconv1(h)))).flatten(1), mu, logvar


class DemoStyle(nn.Module):
    """A vae-tui model with the demo's forward: probabilities, mu, logvar."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x_logits, mu, logvar = self.model(x)
        return torch.sigmoid(x_logits), mu, logvar
