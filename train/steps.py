"""Training steps: eager on any device, or captured once as a CUDA graph and replayed.

A model this small is bound by kernel launches on a GPU: one step is some 40 kernels of a
few microseconds each. The graphed step launches them as one. It needs a static batch
shape, so the ragged last batch is padded with repeats of its first image at loss weight 0,
which leaves the loss and the gradients those of the real images.
"""

from collections.abc import Callable

import torch

from models import VAE
from train.device import pixels, rng_states, set_rng_states

# A graphed step's loss may differ from the eager one's by float rounding (other kernels, other
# summation orders), never by more than this fraction.
GRAPH_TOLERANCE = 1e-4


def objective(
    total: torch.Tensor, reconstruction: torch.Tensor, kl: torch.Tensor, kl_weight: torch.Tensor | None
) -> torch.Tensor:
    """What the step minimizes: the negative ELBO, or reconstruction + kl_weight * KL when a weight is set."""
    return total if kl_weight is None else reconstruction + kl_weight * kl


class EagerStep:
    """Forward, backward and optimizer step on the images at `index` (train_x: flattened images, uint8 levels or
    floats in [0, 1]); sums stay on the device.

    loss_sum adds up the true negative ELBO (KL weight 1) whatever kl_weight the step minimizes.
    """

    def __init__(
        self,
        model: VAE,
        optimizer: torch.optim.Optimizer,
        train_x: torch.Tensor,
        train_y: torch.Tensor,
        loss_sum: torch.Tensor,
        centroid_sums: torch.Tensor,
        kl_weight: torch.Tensor | None = None,
    ) -> None:
        self.model, self.optimizer = model, optimizer
        self.train_x, self.train_y = train_x, train_y
        self.loss_sum, self.centroid_sums = loss_sum, centroid_sums  # () and (num_classes, latent_dim)
        self.kl_weight = kl_weight  # () on the device, filled in place each step; None: the plain ELBO

    def __call__(self, index: torch.Tensor) -> None:
        x, y = pixels(self.train_x.index_select(0, index)), self.train_y.index_select(0, index)
        total, reconstruction, kl, mu = self.model.loss(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        objective(total, reconstruction, kl, self.kl_weight).backward()
        self.optimizer.step()
        self.loss_sum += total.detach()
        self.centroid_sums.index_add_(0, y, mu.detach())


class StaticShapeStep(EagerStep):
    """The step on a static batch of batch_size images: a ragged batch is padded at weight 0."""

    def __init__(self, *args: object, batch_size: int) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        device = self.train_x.device
        self.batch_size = batch_size
        self.index = torch.arange(batch_size, device=device) % len(self.train_x)
        self.weights = torch.ones(batch_size, device=device)
        self.padded = False

    def _body(self) -> None:
        x, y = pixels(self.train_x.index_select(0, self.index)), self.train_y.index_select(0, self.index)
        total, reconstruction, kl, mu = self.model.loss(x, y, weights=self.weights)
        objective(total, reconstruction, kl, self.kl_weight).backward()
        self.optimizer.step()
        self.loss_sum += total.detach()
        self.centroid_sums.index_add_(0, y, mu.detach() * self.weights[:, None])

    def _run(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self._body()

    def _load(self, index: torch.Tensor) -> None:
        """Put the batch's indices into the static index, padding a ragged batch at weight 0."""
        n = len(index)
        self.index[:n].copy_(index)
        if n < self.batch_size:
            self.index[n:] = index[0]
            self.weights[n:] = 0.0
            self.padded = True
        elif self.padded:
            self.weights.fill_(1.0)
            self.padded = False

    def __call__(self, index: torch.Tensor) -> None:
        self._load(index)
        self._run()


class GraphedStep(StaticShapeStep):
    """The static-shape step captured once as a CUDA graph, then replayed for every batch."""

    def __init__(self, *args: object, batch_size: int) -> None:
        super().__init__(*args, batch_size=batch_size)
        self.device = self.train_x.device
        saved = self._snapshot()
        try:
            self._capture()
        finally:
            self._restore(saved)

    def _capture(self) -> None:
        """Warm up, then record the step's kernels (what the warm-up changed is undone by the caller)."""
        if self.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device, not {self.device}")
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up runs, required before capture
            for _ in range(3):
                super()._run()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            self._body()  # backward writes fresh .grad tensors: no zero_grad between replays

    def _run(self) -> None:
        self.graph.replay()

    @torch.no_grad()
    def eager_loss(self, index: torch.Tensor) -> float:
        """The loss the step on `index` computes, by an eager forward pass; the RNG is left as it was."""
        saved = rng_states(self.device)
        self._load(index)  # the very batch the replay that follows reads
        x, y = pixels(self.train_x.index_select(0, self.index)), self.train_y.index_select(0, self.index)
        total = self.model.loss(x, y, weights=self.weights)[0].item()
        set_rng_states(saved, self.device)
        return total

    def _snapshot(self) -> dict:
        params = [p.detach().clone() for p in self.model.parameters()]
        optimizer_state = {
            id(p): {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in self.optimizer.state[p].items()}
            for p in self.model.parameters()
            if p in self.optimizer.state
        }
        return {
            "params": params,
            "optimizer": optimizer_state,
            "sums": (self.loss_sum.clone(), self.centroid_sums.clone()),
            "rng": rng_states(self.device),
        }

    def _restore(self, saved: dict) -> None:
        """Put back what the warm-up changed, in place, so the graph's tensors stay the same."""
        with torch.no_grad():
            for p, value in zip(self.model.parameters(), saved["params"], strict=True):
                p.copy_(value)
            for p in self.model.parameters():
                before = saved["optimizer"].get(id(p), {})
                for key, value in self.optimizer.state[p].items():
                    if isinstance(value, torch.Tensor) and key in before:
                        value.copy_(before[key])
                    elif isinstance(value, torch.Tensor):
                        value.zero_()  # a fresh optimizer: as if no step had been taken
            self.loss_sum.copy_(saved["sums"][0])
            self.centroid_sums.copy_(saved["sums"][1])
        set_rng_states(saved["rng"], self.device)


class CheckedGraphStep:
    """The graphed step, its first replay checked against an eager forward pass on the same batch and state.

    If that replay raises or its loss differs by more than GRAPH_TOLERANCE, the state before it is
    put back and the eager step takes over, now and for the rest of training: a GPU or driver on
    which graphs misbehave costs speed, not the run.
    """

    def __init__(self, graphed: GraphedStep, eager: EagerStep, report: Callable[[str], None]) -> None:
        self.graphed, self.eager, self.report = graphed, eager, report
        self.step: Callable[[torch.Tensor], None] | None = None  # chosen at the first call

    def __call__(self, index: torch.Tensor) -> None:
        if self.step is None:
            self.step = self._first(index)
        else:
            self.step(index)

    def _first(self, index: torch.Tensor) -> Callable[[torch.Tensor], None]:
        """Run the first step graphed if that can be trusted, else eagerly; return the step for the rest."""
        graphed = self.graphed
        saved = graphed._snapshot()
        expected = graphed.eager_loss(index)
        before = graphed.loss_sum.item()
        try:
            graphed(index)
            got = graphed.loss_sum.item() - before
        except Exception as e:  # noqa: BLE001 - any failure of the replay: reported, then the eager step
            return self._fall_back(index, saved, f"its first replay failed ({type(e).__name__}: {e})")
        if not abs(got - expected) <= GRAPH_TOLERANCE * abs(expected):
            return self._fall_back(index, saved, f"its first loss was {got:.6g}, an eager step's {expected:.6g}")
        return graphed

    def _fall_back(self, index: torch.Tensor, saved: dict, why: str) -> EagerStep:
        self.graphed._restore(saved)
        self.report(f"CUDA graphs off: {why}; training goes on with eager steps")
        self.eager(index)
        return self.eager


def graphs_possible(device: torch.device) -> bool:
    """Whether a step on device can be captured as a CUDA graph (the tests' seam for the fallback)."""
    return device.type == "cuda"


def make_step(
    step_args: tuple,
    batch_size: int,
    graphed: bool,
    report: Callable[[str], None],
    graph_class: type[GraphedStep] = GraphedStep,
) -> "EagerStep | CheckedGraphStep":
    """The training step: eager, or graphed where asked and where capture works (else eager, reported)."""
    eager = EagerStep(*step_args)
    if not graphed:
        return eager
    try:
        graph = graph_class(*step_args, batch_size=batch_size)
    except Exception as e:  # noqa: BLE001 - capture fails in driver- and GPU-specific ways: reported, then eager
        report(f"CUDA graphs off: capturing the step failed ({type(e).__name__}: {e}); training goes on eagerly")
        return eager
    return CheckedGraphStep(graph, eager, report)
