"""Training steps: the static-shape step (what the CUDA graph runs) matches the eager one."""

import pytest
import torch

from models import ModelConfig, UserError, build_model, elbo_loss
from tests.conftest import needs_cuda
from train.steps import EagerStep, GraphedStep, StaticShapeStep


def run_epoch(
    step_class: type[EagerStep], device: str = "cpu", **kwargs: object
) -> tuple[list[torch.Tensor], float, torch.Tensor]:
    """One epoch over 200 images at batch 64 (the last batch has 8): weights, loss sum, centroid sums.

    The CPU generator fills normals 16 at a time, so the 8 x 4 draws of the eager last batch equal
    the first 32 of the padded 64 x 4: both runs see the same noise.
    """
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden_dim=32, latent_dim=4)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, capturable=device == "cuda")
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(200, 784, generator=generator).to(device)
    y = (torch.arange(200) % 10).to(device)
    loss_sum, centroid_sums = torch.zeros((), device=device), torch.zeros(10, 4, device=device)
    step = step_class(model, optimizer, x, y, loss_sum, centroid_sums, **kwargs)
    torch.manual_seed(2)
    for start in range(0, 200, 64):
        step(torch.arange(start, min(start + 64, 200), device=device))
    return [p.detach().cpu() for p in model.parameters()], loss_sum.item(), centroid_sums.cpu()


def test_weighted_loss_ignores_padding() -> None:
    generator = torch.Generator().manual_seed(0)
    x, x_logits = torch.rand(5, 784, generator=generator), torch.randn(5, 784, generator=generator)
    mu, logvar = torch.randn(5, 4, generator=generator), torch.randn(5, 4, generator=generator)

    def pad(t: torch.Tensor) -> torch.Tensor:
        return torch.cat([t, t[:1].expand(3, *t.shape[1:])]).detach().requires_grad_()

    inputs = [t.clone().requires_grad_() for t in (x_logits, mu, logvar)]
    padded = [pad(t) for t in (x_logits, mu, logvar)]
    plain = elbo_loss(inputs[0], x, inputs[1], inputs[2])
    masked = elbo_loss(padded[0], pad(x), padded[1], padded[2], weights=torch.tensor([1.0] * 5 + [0.0] * 3))
    for a, b in zip(masked, plain, strict=True):
        torch.testing.assert_close(a, b)
    masked[0].backward()
    plain[0].backward()
    for p, q in zip(padded, inputs, strict=True):
        torch.testing.assert_close(p.grad[:5], q.grad)
        assert torch.count_nonzero(p.grad[5:]) == 0


def test_static_shape_step_matches_eager() -> None:
    eager_weights, eager_loss, eager_centroids = run_epoch(EagerStep)
    static_weights, static_loss, static_centroids = run_epoch(StaticShapeStep, batch_size=64)
    assert static_loss == pytest.approx(eager_loss, rel=1e-5)
    torch.testing.assert_close(static_centroids, eager_centroids, rtol=1e-4, atol=1e-5)
    for a, b in zip(static_weights, eager_weights, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_graphed_step_refuses_a_cpu_device() -> None:
    """The GPU test's setup, run on the CPU: everything up to the device check builds, then a clear refusal."""
    with pytest.raises((AssertionError, ValueError, UserError), match="CUDA graph"):
        run_epoch(GraphedStep, batch_size=64)


@needs_cuda
def test_graphed_step_matches_eager_on_gpu() -> None:
    eager_weights, eager_loss, _ = run_epoch(StaticShapeStep, device="cuda", batch_size=64)
    graphed_weights, graphed_loss, _ = run_epoch(GraphedStep, device="cuda", batch_size=64)
    assert graphed_loss == pytest.approx(eager_loss, rel=1e-4)
    for a, b in zip(graphed_weights, eager_weights, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
