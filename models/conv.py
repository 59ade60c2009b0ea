"""The convolutional VAE and CVAE (`--arch conv`): the same interface and loss as the MLP, sharper images.

Encoder: stride-2 3x3 convolutions, as many as bring the image's side to at most 8 (at least one):
28 -> 14 -> 7 and 32 -> 16 -> 8 take two, 64 -> 32 -> 16 -> 8 three, 128 four; channels 32, 64,
128, 256. A side that halving does not divide rounds up (25 -> 13 -> 7). Then a hidden layer, mu
and logvar. Decoder: the mirror image, with 4x4 stride-2 transposed convolutions (each output pixel
gets the same number of kernel taps, where 3x3 ones alternate 1, 2 and 4: measured about a nat
better in the first epochs), each doubling the side: where that overshoots the image (7 -> 14 ->
28 for 25) the top-left image_size x image_size of the last is kept. It returns pixel logits.
The CVAE's one-hot class joins the flattened convolution features on the way in and z on the way
out, as in the MLP: cheap, and the convolutions stay those of the VAE.
Images enter and leave flattened (B, channels x side x side), so the loss, the training steps, the
checkpoint and the explorer treat both architectures alike. At 28x28 grey the layers and their
names are those of every conv checkpoint before other sizes existed.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.vae import VAE, ModelConfig

CHANNELS = (32, 64, 128, 256)  # after each convolution of the encoder, in order
MAX_FEATURE_SIDE = 8  # the encoder halves the side until it is at most this


def stages(image_size: int) -> int:
    """How many stride-2 convolutions the encoder has for images of that side."""
    count = 1
    while math.ceil(image_size / 2**count) > MAX_FEATURE_SIDE:
        count += 1
    return count


def feature_side(image_size: int) -> int:
    """The side of the encoder's last feature maps (each 3x3 stride-2 convolution takes ceil(side / 2))."""
    side = image_size
    for _ in range(stages(image_size)):
        side = (side + 1) // 2
    return side


def features(config: ModelConfig) -> int:
    """The encoder's flattened features: the last convolution's channels x feature side squared."""
    return CHANNELS[stages(config.image_size) - 1] * feature_side(config.image_size) ** 2


class ConvVAE(VAE):
    """Gaussian encoder and Bernoulli decoder built from convolutions (Kingma & Welling, 2014)."""

    arch = "conv"
    fold_last = True  # on the CPU, the last layer by transposed_by_fold (bench/conv_layout.py compares both)

    def __init__(self, config: ModelConfig) -> None:
        nn.Module.__init__(self)
        self._check_config(config)
        if config.input_dim != config.channels * config.image_size**2:
            raise ValueError(
                f"the conv arch takes {config.channels}x{config.image_size}x{config.image_size} images, not "
                f"{config.input_dim} pixels"
            )
        self.config = config
        self.stages, self.side = stages(config.image_size), feature_side(config.image_size)
        condition_dim = config.num_classes if self.conditional else 0
        widths = (config.channels, *CHANNELS[: self.stages])
        for i in range(self.stages):  # encoder_conv1 ... : (B, 32, 14, 14), (B, 64, 7, 7) at 28x28
            setattr(self, f"encoder_conv{i + 1}", nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1))
        self.encoder_hidden = nn.Linear(features(config) + condition_dim, config.hidden_dim)
        self.to_mu = nn.Linear(config.hidden_dim, config.latent_dim)
        self.to_logvar = nn.Linear(config.hidden_dim, config.latent_dim)
        self.decoder_hidden = nn.Linear(config.latent_dim + condition_dim, config.hidden_dim)
        self.decoder_features = nn.Linear(config.hidden_dim, features(config))
        for i in range(self.stages - 1):  # decoder_conv1 ...: (B, 32, 14, 14) at 28x28
            width_in, width_out = widths[self.stages - i], widths[self.stages - i - 1]
            setattr(self, f"decoder_conv{i + 1}", nn.ConvTranspose2d(width_in, width_out, 4, stride=2, padding=1))
        self.to_logits = nn.ConvTranspose2d(widths[1], config.channels, 4, stride=2, padding=1)  # (B, 1, 28, 28)
        self.to(memory_format=torch.channels_last)  # faster convolutions on the CPU: bench/train_speed.py --arch conv

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, input_dim) in [0, 1] -> mu, logvar, each (B, latent_dim)."""
        h = x.view(-1, *self.config.image_shape).contiguous(memory_format=torch.channels_last)
        for i in range(self.stages):
            h = F.relu(getattr(self, f"encoder_conv{i + 1}")(h))  # (B, 64, 7, 7) at the end, at 28x28
        h = F.relu(self.encoder_hidden(self._condition(h.flatten(1), y)))  # (B, hidden_dim)
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, latent_dim) -> pixel logits (B, input_dim); sigmoid gives probabilities."""
        h = F.relu(self.decoder_features(F.relu(self.decoder_hidden(self._condition(z, y)))))  # (B, features)
        h = h.view(-1, CHANNELS[self.stages - 1], self.side, self.side).contiguous(memory_format=torch.channels_last)
        for i in range(self.stages - 1):
            h = F.relu(getattr(self, f"decoder_conv{i + 1}")(h))  # (B, 32, 14, 14) at the end, at 28x28
        out = transposed_by_fold(h, self.to_logits) if h.is_cpu and self.fold_last else self.to_logits(h)
        size = self.config.image_size
        if out.shape[-1] != size:  # the doublings overshot a side that halving rounded up
            out = out[..., :size, :size]
        return out.flatten(1)


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
    patches = h.permute(0, 2, 3, 1).reshape(-1, channels) @ conv.weight.reshape(channels, -1)  # (B*H*W, out*k*k)
    patches = patches.view(batch, height * width, -1).transpose(1, 2)  # (B, out*k*k, H*W): fold's layout
    out = F.fold(patches, out_side, kernel, stride=stride, padding=padding)
    return out if conv.bias is None else out + conv.bias.view(1, -1, 1, 1)


class ConvCVAE(ConvVAE):
    """The conv VAE with the one-hot class joining the encoder's features and z (Sohn et al., 2015)."""

    conditional = True
