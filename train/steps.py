"""Training steps: eager on any device, or captured once as a CUDA graph and replayed.

A model this small is bound by kernel launches on a GPU: one step is some 40 kernels of a
few microseconds each. The graphed step launches them as one. It needs a static batch
shape, so the ragged last batch is padded with repeats of its first image at loss weight 0,
which leaves the loss and the gradients those of the real images.
"""

import torch

from models import VAE


class EagerStep:
    """Forward, backward and optimizer step on the images at `index`; sums stay on the device."""

    def __init__(
        self,
        model: VAE,
        optimizer: torch.optim.Optimizer,
        train_x: torch.Tensor,
        train_y: torch.Tensor,
        loss_sum: torch.Tensor,
        centroid_sums: torch.Tensor,
    ) -> None:
        self.model, self.optimizer = model, optimizer
        self.train_x, self.train_y = train_x, train_y
        self.loss_sum, self.centroid_sums = loss_sum, centroid_sums  # () and (num_classes, latent_dim)

    def __call__(self, index: torch.Tensor) -> None:
        x, y = self.train_x.index_select(0, index), self.train_y.index_select(0, index)
        total, _, _, mu = self.model.loss(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        self.loss_sum += total.detach()
        self.centroid_sums.index_add_(0, y, mu.detach())


class StaticShapeStep(EagerStep):
    """The step on a static batch of batch_size images: a ragged batch is padded at weight 0."""

    def __init__(self, *args: object, batch_size: int) -> None:
        super().__init__(*args)
        device = self.train_x.device
        self.batch_size = batch_size
        self.index = torch.arange(batch_size, device=device) % len(self.train_x)
        self.weights = torch.ones(batch_size, device=device)
        self.padded = False

    def _body(self) -> None:
        x, y = self.train_x.index_select(0, self.index), self.train_y.index_select(0, self.index)
        total, _, _, mu = self.model.loss(x, y, weights=self.weights)
        total.backward()
        self.optimizer.step()
        self.loss_sum += total.detach()
        self.centroid_sums.index_add_(0, y, mu.detach() * self.weights[:, None])

    def _run(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self._body()

    def __call__(self, index: torch.Tensor) -> None:
        n = len(index)
        self.index[:n].copy_(index)
        if n < self.batch_size:
            self.index[n:] = index[0]
            self.weights[n:] = 0.0
            self.padded = True
        elif self.padded:
            self.weights.fill_(1.0)
            self.padded = False
        self._run()


class GraphedStep(StaticShapeStep):
    """The static-shape step captured once as a CUDA graph, then replayed for every batch."""

    def __init__(self, *args: object, batch_size: int) -> None:
        super().__init__(*args, batch_size=batch_size)
        if self.train_x.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device, not {self.train_x.device}")
        saved = self._snapshot()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up runs, required before capture; undone below
            for _ in range(3):
                super()._run()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            self._body()  # backward writes fresh .grad tensors: no zero_grad between replays
        self._restore(saved)

    def _run(self) -> None:
        self.graph.replay()

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
            "rng": torch.cuda.get_rng_state(self.train_x.device),
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
        torch.cuda.set_rng_state(saved["rng"], self.train_x.device)
