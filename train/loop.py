"""The training loop: the dataset resident on the device, shuffled there, few host syncs.

Measured on a 2-core CPU (784-400-20, batch 128, bench/train_speed.py): about 1.5 s per
epoch, 8-14% above forward, backward and fused Adam alone (test-set evaluation and the
per-epoch files are most of that); the demo's DataLoader loop takes 3.6 to 4.1 s.
"""

import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict
from pathlib import Path

import torch

from models import (
    Checkpoint,
    CheckpointError,
    ResumeState,
    UserError,
    build_model,
    load_checkpoint,
    rows_per_class,
    save_checkpoint,
)
from models.atomic import write_atomic
from models.points import reach
from train.data import Dataset
from train.device import rng_states, set_rng_states, to_device_images
from train.evaluate import class_centroids, evaluate
from train.grids import grid, save_png, side_by_side
from train.progress import EpochResult, PlainProgress
from train.settings import TrainSettings
from train.steps import EagerStep, GraphedStep

# Flush denormal floats to zero on the CPU. Adam's first moments of weights that never get a
# gradient (FashionMNIST's always-black border pixels) decay by 0.9 a step into denormals within
# two epochs, and arithmetic on them made epochs 40% slower by epoch 4 (bench/train_speed.py).
# The mode is per thread and the intra-op thread pool inherits it when created, so it is set
# here, on import, before any parallel tensor operation starts that pool.
torch.set_flush_denormal(True)

REPORT_SECONDS = 0.25  # between live progress updates (each one reads the loss: a host sync)

GRID_COLUMNS = 8


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


class TrainingInterrupted(Exception):
    """Training stopped on a signal after saving a resumable checkpoint."""

    def __init__(self, signal_name: str, checkpoint: Path) -> None:
        super().__init__(f"{signal_name}: saved {checkpoint}")
        self.signal_name = signal_name
        self.checkpoint = checkpoint


class StopFlag:
    """Set from a signal handler; the loop checks it between batches."""

    def __init__(self) -> None:
        self.signal_name: str | None = None


class Trainer:
    """Fits one model on one dataset, writing checkpoints, grids and metrics into out_dir."""

    def __init__(
        self,
        settings: TrainSettings,
        data: Dataset,
        out_dir: Path,
        device: torch.device,
        progress: PlainProgress,
        resume: Checkpoint | None = None,
        cuda_graphs: bool = True,
    ) -> None:
        self.settings, self.data, self.out_dir, self.device, self.progress = settings, data, out_dir, device, progress
        self.num_classes = len(data.class_names)
        torch.manual_seed(settings.seed)
        self.model = build_model(settings.model_config(self.num_classes)).to(device)
        fused = device.type in ("cpu", "cuda")
        self.graphed = cuda_graphs and device.type == "cuda"
        # capturable keeps Adam's step count on the GPU, as a CUDA graph needs
        self.adam_flags = {"fused": fused, "foreach": None if fused else True, "capturable": self.graphed}
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=settings.lr, **self.adam_flags)
        self.train_x, self.train_y = to_device_images(data.train.images, device), data.train.labels.to(device)
        self.test_x, self.test_y = to_device_images(data.test.images, device), data.test.labels.to(device)
        self.class_counts = torch.bincount(self.train_y, minlength=self.num_classes).clamp(min=1).unsqueeze(1)
        self.steps_per_epoch = -(-len(self.train_x) // settings.batch_size)
        # The same prior draws every epoch, so sample grids are comparable across epochs.
        n_samples = GRID_COLUMNS if self.model.conditional else GRID_COLUMNS * GRID_COLUMNS
        self.sample_z = torch.randn(
            n_samples, settings.latent_dim, generator=torch.Generator().manual_seed(settings.seed + 2)
        )
        self.epoch, self.step = 1, 0
        self.best_test_loss, self.best_epoch = math.inf, 0
        self.metrics_rows: list[dict] = []
        self.carry: dict[str, torch.Tensor] = {}
        if resume is not None:
            self._restore(resume)
        self.loss_sum = torch.zeros((), device=device)  # the epoch's summed training loss
        self.centroid_sums = torch.zeros(self.num_classes, settings.latent_dim, device=device)
        step_args = (self.model, self.optimizer, self.train_x, self.train_y, self.loss_sum, self.centroid_sums)
        self.train_step = (
            GraphedStep(*step_args, batch_size=settings.batch_size) if self.graphed else EagerStep(*step_args)
        )

    def _restore(self, checkpoint: Checkpoint) -> None:
        """Continue from a resumable checkpoint exactly where it stopped."""
        if checkpoint.resume is None:
            raise CheckpointError(f"{checkpoint.path} holds weights only, no training state to resume from")
        self.model.load_state_dict(checkpoint.model.state_dict())
        try:
            self.optimizer.load_state_dict(checkpoint.resume.optimizer)
        except (ValueError, KeyError, TypeError, RuntimeError) as e:
            raise CheckpointError(f"{checkpoint.path}: its optimizer state does not fit this model ({e})") from None
        self._check_carry(checkpoint)
        for group in self.optimizer.param_groups:  # the implementation follows this device, not the saved one
            group.update(self.adam_flags)
        progress = checkpoint.resume.progress
        self.epoch, self.step = int(progress["epoch"]), int(progress["step"])
        self.best_test_loss, self.best_epoch = float(progress["best_test_loss"]), int(progress["best_epoch"])
        self.carry = dict(checkpoint.resume.tensors)
        set_rng_states(self._carried("rng_now."), self.device)
        metrics_path = self.out_dir / "metrics.jsonl"
        if metrics_path.is_file():
            rows = []
            for line in metrics_path.read_text().splitlines():
                with suppress(json.JSONDecodeError):  # a hand-edited or damaged row is dropped, not fatal
                    rows.append(json.loads(line))
            self.metrics_rows = [r for r in rows if isinstance(r, dict) and r.get("epoch", 0) < self.epoch]

    def _check_carry(self, checkpoint: Checkpoint) -> None:
        """The resume tensors a checkpoint must hold to continue where it stopped."""
        tensors, mid_epoch = checkpoint.resume.tensors, checkpoint.resume.progress["step"] > 0
        shapes = {"rng_now.cpu": None}
        if mid_epoch:
            shapes.update(
                {
                    "rng_epoch_start.cpu": None,
                    "loss_sum": (),
                    "centroid_sums": (self.num_classes, self.settings.latent_dim),
                }
            )
        for name, shape in shapes.items():
            t = tensors.get(name)
            ok = t is not None and (t.dtype == torch.uint8 if shape is None else tuple(t.shape) == shape)
            if not ok:
                raise CheckpointError(f"{checkpoint.path} lacks a usable resume state ({name})")

    def _carried(self, prefix: str) -> dict[str, torch.Tensor]:
        """The resume tensors under prefix, with the prefix removed."""
        return {k.removeprefix(prefix): v for k, v in self.carry.items() if k.startswith(prefix)}

    def run(self, stop: StopFlag) -> list[EpochResult]:
        """Train up to settings.epochs; raise TrainingInterrupted or TrainingDiverged when it cannot finish."""
        results = []
        self.progress.start(self.settings.epochs, self.epoch, self.steps_per_epoch)
        while self.epoch <= self.settings.epochs:
            results.append(self._run_epoch(stop))
            self.epoch, self.step = self.epoch + 1, 0
        with self._writing():
            self._finalize_centroids()
        return results

    def _run_epoch(self, stop: StopFlag) -> EpochResult:
        """One epoch: its shuffle, the training steps (from self.step when resumed), evaluation, its files."""
        started = time.perf_counter()
        first_step = self.step
        permutation, rng_epoch_start = self._start_epoch()
        self.progress.epoch_started(self.epoch, first_step)
        self._train_steps(stop, permutation, rng_epoch_start, started)
        result = self._evaluate_epoch(started, first_step)
        with self._writing():
            self._write_epoch(result, self.centroid_sums / self.class_counts)
        self.progress.epoch_done(result)
        return result

    def _start_epoch(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The epoch's shuffle and the RNG state it is drawn from; the running sums zeroed, or restored on resume."""
        if self.step == 0:
            rng_epoch_start = rng_states(self.device)
            self.loss_sum.zero_()
            self.centroid_sums.zero_()
            return torch.randperm(len(self.train_x), device=self.device), rng_epoch_start
        # Resuming mid-epoch restores the RNG twice, in this order: first to its state at the epoch's
        # start, so that randperm draws this epoch's shuffle again (the stopped run's batches, those
        # already trained and those to come); then, after that draw, to its state at the stop, so that
        # the remaining steps draw the reparameterization noise the stopped run would have drawn next.
        # The state at the stop alone would draw another shuffle (some images twice, others never); the
        # state at the epoch's start alone would repeat the noise of the epoch's first steps.
        rng_epoch_start = self._carried("rng_epoch_start.")
        set_rng_states(rng_epoch_start, self.device)
        self.loss_sum.copy_(self.carry["loss_sum"])
        self.centroid_sums.copy_(self.carry["centroid_sums"])
        permutation = torch.randperm(len(self.train_x), device=self.device)
        set_rng_states(self._carried("rng_now."), self.device)
        return permutation, rng_epoch_start

    def _train_steps(self, stop: StopFlag, permutation: torch.Tensor, rng_epoch_start: dict, started: float) -> None:
        """The epoch's steps from self.step on; on a signal, save where it stopped and raise TrainingInterrupted."""
        first_step, batch_size = self.step, self.settings.batch_size
        self.model.train()
        last_report = started
        for step in range(first_step, self.steps_per_epoch):
            reach("batch", self.epoch, step)  # a signal sent here is seen before the step runs
            if stop.signal_name:
                with self._writing():
                    self._save_interrupted(step, rng_epoch_start)
                raise TrainingInterrupted(stop.signal_name, self.out_dir / "last.safetensors")
            self.train_step(permutation[step * batch_size : (step + 1) * batch_size])
            if (now := time.perf_counter()) - last_report >= REPORT_SECONDS:
                last_report = now
                self._report(step, first_step, started)

    def _report(self, step: int, first_step: int, started: float) -> None:
        """Show the running training loss and speed after `step`."""
        batch_size = self.settings.batch_size
        loss = self.loss_sum.item() / min((step + 1) * batch_size, len(self.train_x))
        self._check_finite(loss)
        elapsed = time.perf_counter() - started
        self.progress.batch(step + 1, loss, (step + 1 - first_step) * batch_size / max(elapsed, 1e-9))

    def _evaluate_epoch(self, started: float, first_step: int) -> EpochResult:
        """The finished epoch's losses on the training and test sets, its timings, and whether it is the best."""
        train_loss = self.loss_sum.item() / len(self.train_x)  # a host sync: train_seconds includes the device's work
        self._check_finite(train_loss)
        train_seconds = time.perf_counter() - started
        test_loss, test_reconstruction, test_kl = evaluate(self.model, self.test_x, self.test_y, self.settings.seed + 1)
        self._check_finite(test_loss)
        is_best = self._record_best(test_loss)
        return EpochResult(
            epoch=self.epoch,
            train_loss=train_loss,
            test_loss=test_loss,
            test_reconstruction=test_reconstruction,
            test_kl=test_kl,
            seconds=time.perf_counter() - started,
            train_seconds=train_seconds,
            images_per_s=(self.steps_per_epoch - first_step) * self.settings.batch_size / train_seconds,
            is_best=is_best,
        )

    def _record_best(self, test_loss: float) -> bool:
        """Whether test_loss is the lowest so far; if so, remember it and this epoch."""
        if test_loss >= self.best_test_loss:
            return False
        self.best_test_loss, self.best_epoch = test_loss, self.epoch
        return True

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Turn a failed write (disk full, folder removed) into a one-line UserError."""
        try:
            yield
        except OSError as e:
            raise UserError(
                f"could not write {e.filename or self.out_dir}: {e.strerror or e}; training stopped, and the files "
                "already written stay as they were (each is replaced whole or not at all)"
            ) from None

    def _check_finite(self, loss: float) -> None:
        if math.isfinite(loss):
            return
        last = self.out_dir / "last.safetensors"
        kept = f"{last} still holds epoch {self.epoch - 1}" if self.epoch > 1 else "no checkpoint was written"
        raise TrainingDiverged(
            f"the loss became {loss} in epoch {self.epoch}; training stopped, {kept}. Try a lower --lr."
        )

    def _checkpoint(self, epoch: int, centroids: torch.Tensor, metrics: dict, resume: ResumeState | None) -> Checkpoint:
        return Checkpoint(
            model=self.model,
            dataset=self.data.name,
            class_names=self.data.class_names,
            epoch=epoch,
            class_centroids=centroids,
            metrics=metrics,
            training=asdict(self.settings),
            resume=resume,
        )

    def _resume_state(
        self, epoch: int, step: int, rng_epoch_start: dict, extra: dict[str, torch.Tensor]
    ) -> ResumeState:
        """Where to continue: at batch `step` of `epoch`, with the RNG as it is now."""
        tensors = {f"rng_now.{k}": v for k, v in rng_states(self.device).items()}
        tensors.update({f"rng_epoch_start.{k}": v for k, v in rng_epoch_start.items()})
        tensors.update(extra)
        progress = {"epoch": epoch, "step": step, "best_test_loss": self.best_test_loss, "best_epoch": self.best_epoch}
        return ResumeState(optimizer=self.optimizer.state_dict(), tensors=tensors, progress=progress)

    def _write_epoch(self, result: EpochResult, centroids: torch.Tensor) -> None:
        """Grids, metrics row, last and best checkpoints for a finished epoch."""
        self._write_grids(result.epoch)
        row = {k: v for k, v in asdict(result).items() if k != "is_best"}
        self.metrics_rows.append(row)
        write_atomic(self.out_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in self.metrics_rows).encode())
        metrics = {k: row[k] for k in ("train_loss", "test_loss", "test_reconstruction", "test_kl")}
        resume = self._resume_state(result.epoch + 1, 0, rng_states(self.device), {})
        save_checkpoint(self.out_dir / "last.safetensors", self._checkpoint(result.epoch, centroids, metrics, resume))
        if result.is_best:
            save_checkpoint(self.out_dir / "best.safetensors", self._checkpoint(result.epoch, centroids, metrics, None))

    def _save_interrupted(self, step: int, rng_epoch_start: dict) -> None:
        """Save the state mid-epoch so that --resume continues with the very next batch."""
        metrics = (
            {k: v for k, v in self.metrics_rows[-1].items() if k.startswith(("train_", "test_"))}
            if self.metrics_rows
            else {}
        )
        centroids = self.centroid_sums / self.class_counts
        resume = self._resume_state(
            self.epoch, step, rng_epoch_start, {"loss_sum": self.loss_sum, "centroid_sums": self.centroid_sums}
        )
        save_checkpoint(self.out_dir / "last.safetensors", self._checkpoint(self.epoch - 1, centroids, metrics, resume))

    @torch.no_grad()
    def _write_grids(self, epoch: int) -> None:
        """reconst-<epoch>.png (test originals beside reconstructions) and sample-<epoch>.png."""
        model = self.model.eval()
        x, y = self.test_x[:64], self.test_y[:64]
        mu, _ = model.encode(x, y)
        reconstructions = torch.sigmoid(model.decode(mu, y))
        pairs = side_by_side(x.view(-1, 28, 28), reconstructions.view(-1, 28, 28))
        save_png(self.out_dir / f"reconst-{epoch}.png", grid(pairs, GRID_COLUMNS), scale=2)
        z, labels = self.sample_z.to(self.device), None
        if model.conditional:
            z, labels = rows_per_class(z, torch.arange(self.num_classes, device=self.device))
        samples = torch.sigmoid(model.decode(z, labels)).view(-1, 28, 28)
        save_png(self.out_dir / f"sample-{epoch}.png", grid(samples, GRID_COLUMNS), scale=2)
        model.train()

    def _finalize_centroids(self) -> None:
        """Replace the running centroids (averaged while the weights moved) by exact ones.

        Exact centroids cost an encoder pass over the training set, about a sixth of an
        epoch, so they are computed once at the end rather than every epoch.
        """
        for name, with_resume in (("last.safetensors", True), ("best.safetensors", False)):
            checkpoint = load_checkpoint(self.out_dir / name, with_resume=with_resume)
            model = checkpoint.model.to(self.device)
            checkpoint.class_centroids = class_centroids(model, self.train_x, self.train_y, self.num_classes)
            save_checkpoint(self.out_dir / name, checkpoint)
