"""VAE and CVAE: shapes, the loss against the demo's formula, conditioning, sampling, sizes and kinds refused."""

import pytest
import torch
import torch.nn.functional as F

from models import CVAE, VAE, ModelConfig, UserError, build_model, elbo_loss, parameter_count
from models.conv import ConvCVAE, ConvVAE, transposed_by_fold
from tests.helpers import SMALL


@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("kind", ["vae", "cvae"])
def test_shapes(kind: str, arch: str) -> None:
    config = ModelConfig(kind=kind, arch=arch, hidden_dim=48, latent_dim=6)
    model = build_model(config)
    x, y = torch.rand(5, 784), torch.arange(5)
    mu, logvar = model.encode(x, y)
    assert mu.shape == logvar.shape == (5, 6)
    z = model.reparameterize(mu, logvar)
    assert z.shape == (5, 6)
    assert model.decode(z, y).shape == (5, 784)
    x_logits, mu, logvar = model(x, y)
    assert x_logits.shape == (5, 784)
    samples = model.sample(7, labels=torch.arange(7) % 10 if kind == "cvae" else None)
    assert samples.shape == (7, 784) and samples.min() >= 0 and samples.max() <= 1


def test_default_is_the_demo_model() -> None:
    model = VAE()
    sizes = [tuple(p.shape) for p in model.parameters()]
    assert sizes == [(400, 784), (400,), (20, 400), (20,), (20, 400), (20,), (400, 20), (400,), (784, 400), (784,)]
    assert isinstance(build_model(ModelConfig(kind="cvae")), CVAE)


def test_loss_equals_the_demo_formula() -> None:
    torch.manual_seed(0)
    x = torch.rand(16, 784)
    x_logits, mu, logvar = torch.randn(16, 784) * 3, torch.randn(16, 20), torch.randn(16, 20)
    total, reconstruction, kl = elbo_loss(x_logits, x, mu, logvar)
    demo_reconstruction = F.binary_cross_entropy(torch.sigmoid(x_logits), x, reduction="sum")
    demo_kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    torch.testing.assert_close(reconstruction, demo_reconstruction, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(kl, demo_kl)
    torch.testing.assert_close(total, demo_reconstruction + demo_kl, rtol=1e-5, atol=1e-3)


def test_loss_stays_finite_where_the_demo_clamps() -> None:
    x = torch.tensor([[0.0, 1.0]])
    total, _, _ = elbo_loss(torch.tensor([[200.0, -200.0]]), x, torch.zeros(1, 2), torch.zeros(1, 2))
    assert torch.isfinite(total) and total > 300  # BCE from logits keeps the full 2 * 200 nats


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_cvae_decoder_uses_the_class(arch: str) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="cvae", arch=arch, hidden_dim=32, latent_dim=4))
    z = torch.zeros(2, 4)
    a, b = model.decode(z, torch.tensor([0, 1]))
    assert not torch.allclose(a, b)
    with pytest.raises(TypeError, match="class labels"):
        model.decode(z)


def test_sampling_follows_the_generator(tiny_model: VAE) -> None:
    first = tiny_model.sample(4, generator=torch.Generator().manual_seed(3))
    again = tiny_model.sample(4, generator=torch.Generator().manual_seed(3))
    other = tiny_model.sample(4, generator=torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(UserError, match="latent_dim"):
        ModelConfig(latent_dim=0)
    with pytest.raises(UserError, match="kind"):
        ModelConfig(kind="gan")
    with pytest.raises(UserError, match="arch must be one of mlp, conv"):
        ModelConfig(arch="resnet")


def test_conv_model_layers() -> None:
    """Two stride-2 3x3 convolutions (32, 64 channels), the hidden layer, latent 20; 4x4 transposed ones back."""
    config = ModelConfig(arch="conv", hidden_dim=256)
    model = build_model(config)
    assert isinstance(model, ConvVAE) and not isinstance(build_model(ModelConfig(arch="mlp")), ConvVAE)
    assert isinstance(build_model(ModelConfig(kind="cvae", arch="conv", hidden_dim=256)), ConvCVAE)
    assert [tuple(p.shape) for p in model.encoder_conv1.parameters()] == [(32, 1, 3, 3), (32,)]
    assert [tuple(p.shape) for p in model.encoder_conv2.parameters()] == [(64, 32, 3, 3), (64,)]
    assert model.encoder_hidden.weight.shape == (256, 64 * 7 * 7) and model.to_mu.weight.shape == (20, 256)
    assert model.decoder_conv1.weight.shape == (64, 32, 4, 4)  # a transposed convolution: (in, out, k, k)
    assert model.to_logits.weight.shape == (32, 1, 4, 4)
    for kind in ("vae", "cvae"):
        for arch in ("mlp", "conv"):
            sized = ModelConfig(kind=kind, arch=arch, hidden_dim=40, latent_dim=3, num_classes=7)
            assert parameter_count(sized) == sum(p.numel() for p in build_model(sized).parameters())
    assert parameter_count(config) == 1_662_249 + 7 * 64 * 32 + 7 * 32  # the 3x3 reference's, plus the 4x4 taps


def test_conv_loss_equals_the_formula() -> None:
    """The conv model's loss is the demo's BCE-sum + KL on its own logits, mu and logvar with the same noise."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="cvae", arch="conv", hidden_dim=32, latent_dim=4))
    x, y = torch.rand(6, 784), torch.arange(6)
    total, reconstruction, kl, mu = model.loss(x, y, generator=torch.Generator().manual_seed(5))
    mu_again, logvar = model.encode(x, y)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(5))
    probabilities = torch.sigmoid(model.decode(mu_again + eps * torch.exp(0.5 * logvar), y))
    demo_reconstruction = F.binary_cross_entropy(probabilities, x, reduction="sum")
    demo_kl = -0.5 * torch.sum(1 + logvar - mu_again.pow(2) - logvar.exp())
    torch.testing.assert_close(mu, mu_again)
    torch.testing.assert_close(reconstruction, demo_reconstruction, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(kl, demo_kl)
    torch.testing.assert_close(total, demo_reconstruction + demo_kl, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("shape", [(32, 1, 14), (64, 32, 7), (3, 2, 5)])
def test_transposed_by_fold_is_the_transposed_convolution(shape: tuple[int, int, int]) -> None:
    """The matrix product and fold give PyTorch's transposed convolution, its values and its gradients."""
    torch.manual_seed(0)
    channels, out_channels, side = shape
    conv = torch.nn.ConvTranspose2d(channels, out_channels, 4, stride=2, padding=1)
    h = torch.randn(5, channels, side, side, requires_grad=True)
    expected = conv(h)
    expected_grads = torch.autograd.grad((expected * expected.detach().sin()).sum(), (h, conv.weight, conv.bias))
    for layout in (torch.contiguous_format, torch.channels_last):
        got = transposed_by_fold(h.contiguous(memory_format=layout), conv)
        assert got.shape == expected.shape == (5, out_channels, 2 * side, 2 * side)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        grads = torch.autograd.grad((got * expected.detach().sin()).sum(), (h, conv.weight, conv.bias))
        for g, e in zip(grads, expected_grads, strict=True):
            torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4)


def test_conv_decoder_on_the_cpu_folds_its_last_layer() -> None:
    """decode's CPU path (fold) gives the images the transposed convolution gives."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="cvae", arch="conv", hidden_dim=32, latent_dim=4))
    z, y = torch.randn(7, 4), torch.arange(7)
    folded = model.decode(z, y)
    model.fold_last = False
    torch.testing.assert_close(folded, model.decode(z, y), rtol=1e-5, atol=1e-5)


def test_a_class_does_not_take_another_arch_config() -> None:
    with pytest.raises(ValueError, match="use build_model"):
        ConvVAE(ModelConfig(arch="mlp"))
    with pytest.raises(ValueError, match="use build_model"):
        VAE(ModelConfig(arch="conv"))


# --- sizes and kinds refused when the model is built ----------------------------------------------


@pytest.mark.parametrize(
    "sizes, message",
    [
        ({"kind": "gan"}, "model kind must be one of vae, cvae, not 'gan'"),
        ({"latent_dim": 0}, "latent_dim must be positive, got 0"),
        ({"hidden_dim": -3}, "hidden_dim must be positive, got -3"),
        ({"input_dim": 0}, "input_dim must be positive"),
        ({"num_classes": 0}, "num_classes must be positive"),
    ],
)
def test_model_config_refuses_bad_values(sizes: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        ModelConfig(**sizes)


def test_model_class_must_match_the_config() -> None:
    with pytest.raises(ValueError, match="use build_model"):
        VAE(ModelConfig(kind="cvae", **SMALL))


# --- images of any size and channel count (image folders) ---------------------------------------------------


@pytest.mark.parametrize(
    ("size", "stages", "side"),
    [(8, 1, 4), (25, 2, 7), (28, 2, 7), (32, 2, 8), (48, 3, 6), (64, 3, 8), (100, 4, 7), (128, 4, 8)],
)
@pytest.mark.parametrize("channels", [1, 3])
def test_conv_stages_bring_any_size_to_at_most_8_and_back(size: int, stages: int, side: int, channels: int) -> None:
    """Stride-2 stages until the side is at most 8 (32 -> 8 in two, 64 in three, 128 in four; 25 rounds up to 13,
    7); the decoder doubles back and keeps the top-left size x size where it overshoots (7 -> 28 for 25)."""
    config = ModelConfig.for_images(channels, size, kind="cvae", arch="conv", hidden_dim=16, latent_dim=3)
    model = build_model(config)
    assert (model.stages, model.side) == (stages, side)
    convs = [name for name, _ in model.named_children() if "conv" in name or name == "to_logits"]
    assert len([c for c in convs if c.startswith("encoder_conv")]) == stages
    assert len([c for c in convs if c.startswith("decoder_conv")]) == stages - 1
    x, y = torch.rand(2, channels * size * size), torch.tensor([0, 9])
    mu, _ = model.encode(x, y)
    logits = model.decode(mu, y)
    assert logits.shape == (2, channels * size * size) and torch.isfinite(logits).all()
    model.fold_last = False  # the plain transposed convolution gives the same logits
    torch.testing.assert_close(model.decode(mu, y), logits)
    assert parameter_count(config) == sum(p.numel() for p in model.parameters())


def test_a_28x28_grey_conv_model_keeps_every_layer_of_the_bundled_ones() -> None:
    """Other sizes added stages around the same layers: at 28x28 grey the names and shapes are those of every conv
    checkpoint before them, in the order Adam numbers them."""
    model = build_model(ModelConfig(arch="conv", hidden_dim=384))
    assert [(name, tuple(p.shape)) for name, p in model.named_parameters() if "conv" in name or "logits" in name] == [
        ("encoder_conv1.weight", (32, 1, 3, 3)),
        ("encoder_conv1.bias", (32,)),
        ("encoder_conv2.weight", (64, 32, 3, 3)),
        ("encoder_conv2.bias", (64,)),
        ("decoder_conv1.weight", (64, 32, 4, 4)),
        ("decoder_conv1.bias", (32,)),
        ("to_logits.weight", (32, 1, 4, 4)),
        ("to_logits.bias", (1,)),
    ]
    assert ModelConfig().to_dict() == {
        "kind": "vae",
        "arch": "mlp",
        "input_dim": 784,
        "hidden_dim": 400,
        "latent_dim": 20,
        "num_classes": 10,
    }  # no image keys: files as before


def test_an_rgb_conv_model_learns_a_few_steps() -> None:
    """A small 3x16x16 conv VAE on coloured squares: the loss falls in twenty Adam steps."""
    torch.manual_seed(0)
    config = ModelConfig.for_images(3, 16, arch="conv", hidden_dim=32, latent_dim=4)
    model = build_model(config)
    colours = torch.rand(8, 3, 1, 1)
    images = (colours * torch.ones(8, 3, 16, 16)).flatten(1)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = model.loss(images)[0]
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0] and config.to_dict()["channels"] == 3 and config.image_shape == (3, 16, 16)


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ({"channels": 2, "image_size": 16, "input_dim": 512}, "channels must be 1 or 3"),
        ({"channels": 3, "image_size": 7, "input_dim": 147}, "image_size must be 8 to 128"),
        ({"channels": 3, "image_size": 129, "input_dim": 3 * 129 * 129}, "image_size must be 8 to 128"),
        ({"channels": 3, "image_size": 16, "input_dim": 784}, "input_dim 784 is not 3 x 16 x 16 pixels"),
    ],
    ids=["two channels", "too small", "too large", "pixels disagree"],
)
def test_image_shapes_that_are_not_one_are_refused(sizes: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        ModelConfig(**sizes)
