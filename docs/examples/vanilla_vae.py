"""A VAE in the style of the widely used PyTorch VAE collections (64x64 RGB, BatchNorm, LeakyReLU, a tanh output,
latent 128), and the FUNC that `vae-tui explore --code` calls: docs/outside.md walks through it.

    vae-tui explore --code docs/examples/vanilla_vae.py:load --decoder-output tanh --data my_images/

vae-tui needs decode(z) -> (N, 3, 64, 64) and, for the map and picker, encode(x) -> [mu, log_var]; the
collections' models have both. `load()` builds the model and loads its weights with the user's own code.
"""

import os

import torch
from torch import nn


class VanillaVAE(nn.Module):
    def __init__(
        self, in_channels: int = 3, latent_dim: int = 128, hidden_dims: tuple[int, ...] = (32, 64, 128, 256, 512)
    ):
        super().__init__()
        self.latent_dim = latent_dim
        modules, channels = [], in_channels
        for width in hidden_dims:
            modules.append(
                nn.Sequential(nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.LeakyReLU())
            )
            channels = width
        self.encoder = nn.Sequential(*modules)
        side = 64 // 2 ** len(hidden_dims)
        self.last = (hidden_dims[-1], side)
        self.fc_mu = nn.Linear(hidden_dims[-1] * side * side, latent_dim)
        self.fc_var = nn.Linear(hidden_dims[-1] * side * side, latent_dim)
        self.decoder_input = nn.Linear(latent_dim, hidden_dims[-1] * side * side)
        widths = list(reversed(hidden_dims))
        modules = [
            nn.Sequential(
                nn.ConvTranspose2d(widths[i], widths[i + 1], 3, stride=2, padding=1, output_padding=1),
                nn.BatchNorm2d(widths[i + 1]),
                nn.LeakyReLU(),
            )
            for i in range(len(widths) - 1)
        ]
        self.decoder = nn.Sequential(*modules)
        self.final_layer = nn.Sequential(
            nn.ConvTranspose2d(widths[-1], widths[-1], 3, stride=2, padding=1, output_padding=1),
            nn.BatchNorm2d(widths[-1]),
            nn.LeakyReLU(),
            nn.Conv2d(widths[-1], in_channels, 3, padding=1),
            nn.Tanh(),
        )

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        result = torch.flatten(self.encoder(x), start_dim=1)
        return [self.fc_mu(result), self.fc_var(result)]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        width, side = self.last
        result = self.decoder_input(z).view(-1, width, side, side)
        return self.final_layer(self.decoder(result))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        mu, log_var = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * log_var)
        return [self.decode(z), x, mu, log_var]


def load() -> VanillaVAE:
    """The model with its trained weights: from $VANILLA_VAE_WEIGHTS (a state_dict saved with torch.save), loaded
    with weights_only=True, as your own code would."""
    model = VanillaVAE()
    path = os.environ.get("VANILLA_VAE_WEIGHTS")
    if path:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model
