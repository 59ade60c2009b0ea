"""The VAE of pytorch/examples (vae/main.py) and the FUNC that `vae-tui explore --code` calls: docs/outside.md.

    vae-tui explore --code docs/examples/pytorch_example_vae.py:load --latent-dim 20 --dataset mnist

The class is copied here, not imported: importing main.py would parse vae-tui's command line as its own and start
loading MNIST. Its decode returns probabilities, flat (N, 784): --decoder-output probs (the default), read as
1x28x28. Its encode takes flat images; vae-tui hands encoders images (N, 1, 28, 28), so load() returns the
subclass below, which flattens them. `vae-tui import-example vae.pt` makes the same weights a vae-tui checkpoint
instead, without running any code.
"""

import os

import torch
import torch.nn.functional as F
from torch import nn


class VAE(nn.Module):
    def __init__(self):
        super().__init__()

        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        # clamp to avoid numerical issues with the continuous Bernoulli log normalizing constant
        return torch.clamp(torch.sigmoid(self.fc4(h3)), min=1e-4, max=1.0 - 1e-4)

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


class FlatInputs(VAE):
    """The example's VAE as vae-tui calls it: encode(x) of images (N, 1, 28, 28)."""

    def encode(self, x):
        return super().encode(x.reshape(len(x), 784))


def load() -> FlatInputs:
    """The model with the weights main.py saved (torch.save(model.state_dict(), "vae.pt")), from $EXAMPLE_VAE_WEIGHTS,
    else "vae.pt" when it is there, else untrained; loaded with weights_only=True."""
    model = FlatInputs()
    path = os.environ.get("EXAMPLE_VAE_WEIGHTS") or ("vae.pt" if os.path.isfile("vae.pt") else None)
    if path:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model
