"""Several processes under torchrun: the process group, each rank's shard of a global batch, sums and agreement.

Every rank draws the same shuffle and the same noise for the whole global batch from the same seeded
generator, and trains its slice of both; the gradients are summed over the ranks. A step is therefore
the one-process step on the same global batch, up to the order of floating-point sums.
"""

import gc
import json
import os
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from models import VAE, UserError
from models.loss import elbo_loss
from train.device import pixels
from train.progress import PlainProgress
from train.steps import EagerStep, objective

T = TypeVar("T")

# How long a collective waits for its peers. Long, because the others wait in one while rank 0 alone decodes a
# folder's store, builds the atlas or writes the epoch's files; a peer that dies is seen at once anyway (gloo's
# connection resets, and torchrun's agent ends the other workers when one exits).
GROUP_TIMEOUT = timedelta(minutes=30)
PEER_LOST = "stopped answering"  # in the line of a rank whose collective failed because a peer died
# a folder: after each epoch each rank writes there its weights, their digest and the images it trained (tests)
DIGEST_ENV = "VAE_TUI_RANK_DIGESTS"


class RankStopped(UserError):
    """Rank 0 stopped during the start: it said why; this rank exits with it, silently."""


class Ranks:
    """This process's place among the training's processes; one process is rank 0 of 1."""

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0, local_world_size: int = 1) -> None:
        self.rank, self.world_size = rank, world_size
        self.local_rank, self.local_world_size = local_rank, local_world_size
        # where DIGEST_ENV is set: the dataset indices this rank trained in this epoch so far, a tensor a step
        self.seen: list[torch.Tensor] | None = [] if os.environ.get(DIGEST_ENV) else None

    @property
    def is_main(self) -> bool:
        """Whether this rank writes files and prints: rank 0."""
        return self.rank == 0

    @property
    def several(self) -> bool:
        return self.world_size > 1

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's slice of a global batch (B, ...): contiguous, sizes differing by at most 1 when N does not
        divide B (the loss is a sum, so uneven slices still add up to the global batch's loss)."""
        return torch.tensor_split(batch, self.world_size)[self.rank] if self.several else batch

    def summed(self, tensor: torch.Tensor) -> torch.Tensor:
        """tensor summed over the ranks, as a new tensor (the tensor itself where there is one rank)."""
        if not self.several:
            return tensor
        total = tensor.detach().clone()
        dist.all_reduce(total)
        return total

    def decide(self, make: Callable[[], T]) -> T:
        """make() run on rank 0 and its result sent to every rank; if it raises there, every rank raises: rank 0
        the error itself, the others RankStopped."""
        if not self.several:
            return make()
        box: list[object] = [None]
        if self.is_main:
            try:
                value = make()
            except BaseException as e:
                dist.broadcast_object_list([("failed", f"{type(e).__name__}: {e}")], src=0)
                raise
            dist.broadcast_object_list([("ok", value)], src=0)
            return value
        dist.broadcast_object_list(box, src=0)
        status, value = box[0]  # type: ignore[misc]
        if status != "ok":
            raise RankStopped(f"rank 0 stopped: {value}")
        return value  # type: ignore[return-value]

    def wait(self) -> None:
        """Every rank waits here until all have come."""
        if self.several:
            dist.barrier()

    def saw(self, batch: torch.Tensor) -> None:
        """Where DIGEST_ENV is set: remember the dataset indices of this rank's slice of a global batch (tests)."""
        if self.seen is not None:
            self.seen.append(self.shard(batch).cpu())

    def write_digest(self, model: torch.nn.Module, epoch: int) -> None:
        """Where DIGEST_ENV names a folder, for the tests: after epoch, this rank's weights
        (rank<R>-epoch<E>.safetensors), their digest (rank<R>-epoch<E>.txt) and the dataset indices it trained in
        that epoch in this process, in the order trained (rank<R>-epoch<E>-indices.txt, separated by spaces; a
        resumed epoch's from the step it resumed at)."""
        folder = os.environ.get(DIGEST_ENV)
        if not folder:
            return
        import hashlib

        from safetensors.torch import save_file

        weights = {name: value.detach().cpu().contiguous() for name, value in sorted(model.state_dict().items())}
        digest = hashlib.sha256()
        for name, value in weights.items():
            digest.update(name.encode())
            digest.update(value.numpy().tobytes())
        stem = os.path.join(folder, f"rank{self.rank}-epoch{epoch}")
        with open(f"{stem}.txt", "w") as f:
            f.write(digest.hexdigest())
        save_file(weights, f"{stem}.safetensors")
        seen, self.seen = self.seen or [], []
        with open(f"{stem}-indices.txt", "w") as f:
            f.write(" ".join(str(i) for i in torch.cat(seen).tolist()) if seen else "")

    def close(self) -> None:
        """Leave the process group, at the end of a rank's training: its process ends soon after.

        The objects made so far are then frozen out of the garbage collector (gc.freeze): the interpreter's
        shutdown runs full collections while it clears the modules, and over the objects torch and torch._dynamo
        hold these cost each rank about 0.8 CPU-second (measured on 2 CPU ranks of the tests' tiny run, 6 runs
        each: 4.8 CPU-seconds a rank instead of 5.6), which torchrun waits for."""
        if self.several and dist.is_initialized():
            dist.destroy_process_group()
        if self.several:
            gc.freeze()


def torchrun_ranks() -> tuple[int, int, int, int] | None:
    """(rank, world size, local rank, local world size) from torchrun's environment; None for one process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return None
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))
    return rank, world_size, local_rank, local_world_size


def join(device: torch.device) -> tuple[Ranks, torch.device]:
    """Join torchrun's process group where it started this process (NCCL with a GPU per local rank on CUDA, gloo
    on the CPU); the ranks and this rank's device."""
    found = torchrun_ranks()
    if found is None:
        return Ranks(), device
    rank, world_size, local_rank, local_world_size = found
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise UserError(f"{local_world_size} ranks on this node, but it has {count} CUDA GPU(s): one rank a GPU")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "cpu:gloo,cuda:nccl"  # the stop flags each step agree on are CPU tensors: gloo carries those
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise UserError(f"several processes train on cuda or cpu, not {device.type}")
    dist.init_process_group(
        backend,
        rank=rank,
        world_size=world_size,
        timeout=GROUP_TIMEOUT,
        device_id=device if device.type == "cuda" else None,
    )
    return Ranks(rank, world_size, local_rank, local_world_size), device


def failure_line(error: BaseException, rank: int, world_size: int) -> str:
    """One line for a rank's unexpected error; a collective that failed because a peer died names that peer where
    it can (of 2 ranks, the other one)."""
    first = next((line.strip() for line in str(error).splitlines() if line.strip()), "")[:300]
    if isinstance(error, RuntimeError) and (
        isinstance(error, dist.DistError)
        or any(word in first for word in ("gloo", "NCCL", "Connection closed", "Connection reset", "Timed out"))
    ):
        peer = f"rank {1 - rank}" if world_size == 2 else "another rank"
        return f"{peer} {PEER_LOST} ({type(error).__name__}: {first})"
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def record_failure(line: str, user_error: bool) -> None:
    """line and the traceback being handled in torchrun's error file for this rank (TORCHELASTIC_ERROR_FILE, the
    format of torch.distributed.elastic's ErrorHandler), where torchrun's report and `train --nproc` find them."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    extra = {"py_callstack": traceback.format_exc(), "timestamp": str(int(time.time())), "user_error": user_error}
    with open(path, "w") as f:
        json.dump({"message": {"message": line, "extraInfo": extra}}, f)


class ShardLoss(torch.nn.Module):
    """The model's loss on a batch whose noise is given: the module DDP wraps, so that its hooks see the forward."""

    def __init__(self, model: VAE) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(total, reconstruction, kl) summed over the batch, and mu; z = mu + sigma * eps as VAE.reparameterize."""
        mu, logvar = self.model.encode(x, y)  # (B, latent_dim) each
        x_logits = self.model.decode(mu + eps * torch.exp(0.5 * logvar), y)
        return (*elbo_loss(x_logits, x, mu, logvar), mu)


class ShardStep(EagerStep):
    """The eager step on this rank's slice of each global batch, its gradients summed over the ranks by DDP."""

    def __init__(self, ranks: Ranks, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.ranks = ranks
        device = self.train_x.device
        self.parallel = DistributedDataParallel(
            ShardLoss(self.model), device_ids=[device] if device.type == "cuda" else None
        )

    def __call__(self, index: torch.Tensor) -> None:
        # every rank draws the whole global batch's noise, as one process's reparameterize does, and keeps its slice
        eps = torch.randn((len(index), self.model.config.latent_dim), device=self.train_x.device)
        index, eps = self.ranks.shard(index), self.ranks.shard(eps)
        x, y = pixels(self.train_x.index_select(0, index)), self.train_y.index_select(0, index)
        total, reconstruction, kl, mu = self.parallel(x, y, eps)
        self.optimizer.zero_grad(set_to_none=True)
        # The loss is a sum over the global batch, so its gradient is the sum of the ranks' ones; DDP averages them.
        (objective(total, reconstruction, kl, self.kl_weight) * self.ranks.world_size).backward()
        self.optimizer.step()
        self.loss_sum += total.detach()
        self.centroid_sums.index_add_(0, y, mu.detach())


class SilentProgress(PlainProgress):
    """The progress of a rank other than 0: nothing shown."""

    def __init__(self) -> None:
        self.total_epochs = 0

    def epoch_done(self, result: object) -> None:
        pass

    def message(self, text: str) -> None:
        pass
