"""The convolutional VAE and CVAE (`--arch conv`): the same interface and loss as the MLP, sharper images.

Encoder: two stride-2 3x3 convolutions (28 -> 14 -> 7 pixels), a hidden layer, then mu and
logvar. Decoder: the mirror image, with 4x4 stride-2 transposed convolutions (each output
pixel gets the same number of kernel taps, where 3x3 ones alternate 1, 2 and 4: measured
about a nat better in the first epochs), returning pixel logits.
The CVAE's one-hot class joins the flattened convolution features on the way in and z on
the way out, as in the MLP: cheap, and the convolutions stay those of the VAE.
Images enter and leave flattened (B, 784), so the loss, the training steps, the checkpoint
and the explorer treat both architectures alike.
"""

import torch
import torch.nn.functional as F
from torch import nn

from models.limits import IMAGE_SIDE
from models.vae import VAE, ModelConfig

CHANNELS = (32, 64)  # after the first and the second convolution
FEATURE_SIDE = IMAGE_SIDE // 4  # 7: two stride-2 convolutions
FEATURES = CHANNELS[1] * FEATURE_SIDE * FEATURE_SIDE  # 3136, flattened


class ConvVAE(VAE):
    """Gaussian encoder and Bernoulli decoder built from convolutions (Kingma & Welling, 2014)."""

    arch = "conv"
    fold_last = True  # on the CPU, the last layer by transposed_by_fold (bench/conv_layout.py compares both)

    def __init__(self, config: ModelConfig) -> None:
        nn.Module.__init__(self)
        self._check_config(config)
        if config.input_dim != IMAGE_SIDE * IMAGE_SIDE:
            raise ValueError(f"the conv arch takes {IMAGE_SIDE}x{IMAGE_SIDE} images, not {config.input_dim} pixels")
        self.config = config
        condition_dim = config.num_classes if self.conditional else 0
        first, second = CHANNELS
        self.encoder_conv1 = nn.Conv2d(1, first, 3, stride=2, padding=1)  # (B, 32, 14, 14)
        self.encoder_conv2 = nn.Conv2d(first, second, 3, stride=2, padding=1)  # (B, 64, 7, 7)
        self.encoder_hidden = nn.Linear(FEATURES + condition_dim, config.hidden_dim)
        self.to_mu = nn.Linear(config.hidden_dim, config.latent_dim)
        self.to_logvar = nn.Linear(config.hidden_dim, config.latent_dim)
        self.decoder_hidden = nn.Linear(config.latent_dim + condition_dim, config.hidden_dim)
        self.decoder_features = nn.Linear(config.hidden_dim, FEATURES)
        self.decoder_conv1 = nn.ConvTranspose2d(second, first, 4, stride=2, padding=1)  # (B, 32, 14, 14)
        self.to_logits = nn.ConvTranspose2d(first, 1, 4, stride=2, padding=1)  # (B, 1, 28, 28)
        self.to(memory_format=torch.channels_last)  # faster convolutions on the CPU: bench/train_speed.py --arch conv

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 784) in [0, 1] -> mu, logvar, each (B, latent_dim)."""
        image = x.view(-1, 1, IMAGE_SIDE, IMAGE_SIDE).contiguous(memory_format=torch.channels_last)
        h = F.relu(self.encoder_conv2(F.relu(self.encoder_conv1(image))))  # (B, 64, 7, 7)
        h = F.relu(self.encoder_hidden(self._condition(h.flatten(1), y)))  # (B, hidden_dim)
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, latent_dim) -> pixel logits (B, 784); sigmoid gives probabilities."""
        h = F.relu(self.decoder_features(F.relu(self.decoder_hidden(self._condition(z, y)))))  # (B, 3136)
        h = h.view(-1, CHANNELS[1], FEATURE_SIDE, FEATURE_SIDE).contiguous(memory_format=torch.channels_last)
        h = F.relu(self.decoder_conv1(h))  # (B, 32, 14, 14)
        if h.is_cpu and self.fold_last:
            return transposed_by_fold(h, self.to_logits).flatten(1)  # (B, 784)
        return self.to_logits(h).flatten(1)


def transposed_by_fold(h: torch.Tensor, conv: nn.ConvTranspose2d) -> torch.Tensor:
    """conv(h) computed as one matrix product and a fold: the same sums, in another order.

    Each input pixel's channels times the kernel give that pixel's k x k patch of every output
    channel; F.fold adds the overlapping patches up at the stride, less the padding. On the CPU,
    PyTorch's transposed convolution to a single channel (the decoder's last layer) runs at a few
    GFLOP/s, where this is one well-shaped matrix product: bench/conv_layout.py measures both.
    """
    batch, channels, height, width = h.shape
    (kernel, _), (stride, _), (padding, _) = conv.kernel_size, conv.stride, conv.padding
    out_side = (height - 1) * stride - 2 * padding + kernel, (width - 1) * stride - 2 * padding + kernel
    patches = h.permute(0, 2, 3, 1).reshape(-1, channels) @ conv.weight.view(channels, -1)  # (B*H*W, out*k*k)
    patches = patches.view(batch, height * width, -1).transpose(1, 2)  # (B, out*k*k, H*W): fold's layout
    out = F.fold(patches, out_side, kernel, stride=stride, padding=padding)
    return out if conv.bias is None else out + conv.bias.view(1, -1, 1, 1)


class ConvCVAE(ConvVAE):
    """The conv VAE with the one-hot class joining the encoder's features and z (Sohn et al., 2015)."""

    conditional = True
