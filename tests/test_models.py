"""VAE and CVAE: shapes, the loss against the demo's formula, conditioning, sampling."""

import pytest
import torch
import torch.nn.functional as F

from models import CVAE, VAE, ModelConfig, UserError, build_model, elbo_loss


@pytest.mark.parametrize("kind", ["vae", "cvae"])
def test_shapes(kind: str) -> None:
    config = ModelConfig(kind=kind, hidden_dim=48, latent_dim=6)
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


def test_cvae_decoder_uses_the_class() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="cvae", hidden_dim=32, latent_dim=4))
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
