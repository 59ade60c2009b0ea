"""Training steps: the static-shape step (what the CUDA graph runs) matches the eager one."""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from models import ModelConfig, UserError, build_model, elbo_loss
from tests.helpers import needs_cuda
from train.steps import CheckedGraphStep, EagerStep, GraphedStep, StaticShapeStep, make_step


def run_epoch(
    step_class: Callable[..., EagerStep], device: str = "cpu", **kwargs: object
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


# --- the fallback from CUDA graphs, on the CPU: graph classes whose capture or replay misbehaves --------------


class CaptureFails(GraphedStep):
    def _capture(self) -> None:
        StaticShapeStep._run(self)  # the warm-up moves the weights before the capture fails: it must be undone
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing")


class ReplayFails(GraphedStep):
    def _capture(self) -> None:
        pass

    def _run(self) -> None:
        StaticShapeStep._run(self)  # the step runs and updates the weights, then the "replay" fails
        raise RuntimeError("CUDA error: an illegal memory access was encountered")


class ReplayDisagrees(GraphedStep):
    def _capture(self) -> None:
        pass

    def _run(self) -> None:
        StaticShapeStep._run(self)
        self.loss_sum += 50.0  # a graph that computes something else than the eager step


class ReplayAgrees(GraphedStep):
    def _capture(self) -> None:
        pass

    def _run(self) -> None:
        StaticShapeStep._run(self)  # the static-shape step, as a faithful graph would replay it


def run_made_step(graph_class: type[GraphedStep]) -> tuple[list[torch.Tensor], float, list[str], object]:
    """run_epoch's epoch through make_step(graphed=True) with graph_class; also what it reported and the step."""
    reports: list[str] = []
    made = []

    def factory(*args: object) -> object:
        made.append(make_step(args, 64, True, reports.append, graph_class=graph_class))
        return made[0]

    weights, loss, _ = run_epoch(factory)
    return weights, loss, reports, made[0]


@pytest.mark.parametrize(
    ("graph_class", "why"),
    [
        (CaptureFails, "capturing the step failed (RuntimeError: CUDA error: operation not permitted"),
        (ReplayFails, "its first replay failed (RuntimeError: CUDA error: an illegal memory access"),
        (ReplayDisagrees, "its first loss was"),
    ],
)
def test_a_graph_that_fails_or_disagrees_gives_way_to_the_eager_step(graph_class: type, why: str) -> None:
    eager_weights, eager_loss, _ = run_epoch(EagerStep)
    weights, loss, reports, _ = run_made_step(graph_class)
    assert len(reports) == 1 and reports[0].startswith("CUDA graphs off: ") and why in reports[0]
    assert "eager" in reports[0]
    assert loss == eager_loss  # the first batch's failed attempt was undone, every batch ran eagerly
    for a, b in zip(weights, eager_weights, strict=True):
        assert torch.equal(a, b)


def test_a_graph_that_agrees_keeps_running() -> None:
    static_weights, static_loss, _ = run_epoch(StaticShapeStep, batch_size=64)
    weights, loss, reports, step = run_made_step(ReplayAgrees)
    assert reports == [] and isinstance(step, CheckedGraphStep) and step.step is step.graphed
    assert loss == pytest.approx(static_loss, rel=1e-6)
    for a, b in zip(weights, static_weights, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.slow
def test_training_goes_on_eagerly_when_capture_fails(
    tmp_path: Path, run_training: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = run_training(tmp_path / "plain", epochs=1)
    monkeypatch.setattr("train.loop.graphs_possible", lambda device: True)
    monkeypatch.setattr(GraphedStep, "_capture", CaptureFails._capture)
    fallen = run_training(tmp_path / "fallen", epochs=1)
    assert not fallen.graphed
    messages = [line for line in fallen.progress.lines if isinstance(line, str)]
    assert len(messages) == 1 and messages[0].startswith("CUDA graphs off: capturing the step failed")
    for a, b in zip(plain.model.parameters(), fallen.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert fallen.progress.lines[-1].test_loss == plain.progress.lines[-1].test_loss
