"""The training loop: the dataset resident on the device, shuffled there, few host syncs.

Measured on a 2-core CPU (784-400-20, batch 128, bench/train_speed.py): about 1.5 s per
epoch, 8-14% above forward, backward and fused Adam alone (test-set evaluation and the
per-epoch files are most of that); the demo's DataLoader loop takes 3.6 to 4.1 s.
"""

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import NoReturn

import torch

from models import (
    Atlas,
    Checkpoint,
    CheckpointError,
    ResumeState,
    UserError,
    build_model,
    save_checkpoint,
)
from models.points import reach
from train.atlas import atlas_of, build_atlas
from train.carry import carried, check_carry, resume_epoch
from train.data import Dataset
from train.device import rng_states, set_rng_states, to_device_images, to_device_levels
from train.distributed import Ranks, ShardStep
from train.evaluate import bits_per_dim, evaluate_with_encodings
from train.memory import keep_freed_memory
from train.preview import Preview, preview_images
from train.progress import EpochResult, PlainProgress
from train.schedule import kl_weight, learning_rate, set_learning_rate
from train.settings import TrainSettings
from train.steps import graphs_possible, make_step
from train.stop import StopFlag, TrainingInterrupted
from train.threads import SlowdownWatch, ThreadFollower
from train.writes import (
    GRID_COLUMNS,
    exact_centroids,
    give_best_exact_centroids,
    read_metrics,
    write_grids,
    write_metrics,
)

# Flush denormal floats to zero on the CPU. Adam's first moments of weights that never get a
# gradient (FashionMNIST's always-black border pixels) decay by 0.9 a step into denormals within
# two epochs, and arithmetic on them made epochs 40% slower by epoch 4 (bench/train_speed.py).
# The mode is per thread and the intra-op thread pool inherits it when created, so it is set
# here, on import, before any parallel tensor operation starts that pool.
torch.set_flush_denormal(True)

REPORT_SECONDS = 0.25  # between live progress updates (each one reads the loss: a host sync)

AGREE_LOSS_STEPS = 16  # several ranks: how often, in steps, they agree on the loss so far and check it is finite
METRIC_KEYS = ("train_loss", "test_loss", "test_reconstruction", "test_kl")  # the metrics a checkpoint carries


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


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
        threads: ThreadFollower | None = None,
        ranks: Ranks | None = None,
    ) -> None:
        self.ranks = ranks if ranks is not None else Ranks()  # several: each trains its shard, rank 0 writes
        self.settings, self.data, self.out_dir, self.device, self.progress = settings, data, out_dir, device, progress
        # on the CPU, each epoch's thread count follows the other processes' load unless the user fixed it
        self.threads = threads if threads is not None and device.type == "cpu" else None
        self.epoch_threads = torch.get_num_threads()  # this epoch's, recorded in its metrics row and in last
        self.resumed_threads: int | None = None  # the count of the epoch a mid-epoch checkpoint stopped in
        self.watch = SlowdownWatch()
        self.tell: Callable[[dict], None] | None = None  # given the status of each progress report (OutputLock.tell)
        self.last_reading: tuple[int, float] | None = None  # (step, time) of the previous speed reading
        self.num_classes = len(data.class_names)
        torch.manual_seed(settings.seed)
        channels, size, _ = data.image_shape
        self.model = build_model(settings.model_config(self.num_classes, channels, size)).to(device)
        fused = device.type in ("cpu", "cuda")
        self.graphed = cuda_graphs and graphs_possible(device) and not self.ranks.several
        # capturable keeps Adam's step count on the GPU, as a CUDA graph needs
        capturable = self.graphed and device.type == "cuda"
        self.adam_flags = {"fused": fused, "foreach": None if fused else True, "capturable": capturable}
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=settings.lr, **self.adam_flags)
        # the training set stays uint8 (each batch made float as drawn), the test set float: it is read whole each epoch
        self.train_x, self.train_y = to_device_levels(data.train.images, device), data.train.labels.to(device)
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
        self.atlas: Atlas | None = None  # of the newest evaluation, for the files its epoch writes
        self.carry: dict[str, torch.Tensor] = {}  # the resume tensors, until the first epoch has used them
        self.saved_at: tuple[int, int] | None = None  # (epoch, step) that last.safetensors resumes at
        self.centroids = torch.zeros(self.num_classes, settings.latent_dim, device=device)  # the newest written
        if resume is not None:
            self._restore(resume)
        self.loss_sum = torch.zeros((), device=device)  # the epoch's summed training loss (the true ELBO)
        self.centroid_sums = torch.zeros(self.num_classes, settings.latent_dim, device=device)
        # Tensors that a CUDA graph reads, filled in place each step; None where they stay constant.
        self.scheduled_lr = settings.lr_schedule != "constant"
        if self.scheduled_lr and capturable:
            for group in self.optimizer.param_groups:
                group["lr"] = torch.tensor(float(group["lr"]), device=device)
        self.kl_weight = None
        if settings.kl_warmup > 0 or settings.beta != 1.0:
            self.kl_weight = torch.full((), settings.beta, device=device)
        step_args = (self.model, self.optimizer, self.train_x, self.train_y, self.loss_sum, self.centroid_sums)
        if self.ranks.several:
            self.train_step = ShardStep(self.ranks, *step_args, self.kl_weight)
        else:
            self.train_step = make_step(
                (*step_args, self.kl_weight), settings.batch_size, self.graphed, self._graphs_off
            )
        # several ranks: the epoch's training loss summed over them, and the images it covers, at the latest agreement
        self.agreed_loss, self.agreed_images = 0.0, 0

    def _match_state_layout(self) -> None:
        """Adam's loaded moments in their parameter's memory layout: the fused kernel walks both as flat memory,
        and a conv weight is channels_last while a loaded moment is contiguous."""
        for p in self.model.parameters():
            state = self.optimizer.state.get(p, {})
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.shape == p.shape and value.stride() != p.stride():
                    state[key] = torch.empty_like(p).copy_(value)

    def _graphs_off(self, why: str) -> None:
        """The graphed step could not be trusted: say why, once; the eager step runs instead."""
        self.graphed = False
        self.progress.message(why)

    def _schedule(self, step: int) -> None:
        """Set the learning rate and the KL weight for batch `step` of this epoch."""
        global_step = (self.epoch - 1) * self.steps_per_epoch + step
        if self.scheduled_lr:
            set_learning_rate(self.optimizer, learning_rate(self.settings, global_step, self.steps_per_epoch))
        if self.kl_weight is not None:
            self.kl_weight.fill_(kl_weight(self.settings, global_step, self.steps_per_epoch))

    def _restore(self, checkpoint: Checkpoint) -> None:
        """Continue from a resumable checkpoint exactly where it stopped."""
        if checkpoint.resume is None:
            raise CheckpointError(f"{checkpoint.path} holds weights only, no training state to resume from")
        self.model.load_state_dict(checkpoint.model.state_dict())
        try:
            self.optimizer.load_state_dict(checkpoint.resume.optimizer)
        except (ValueError, KeyError, TypeError, RuntimeError) as e:
            raise CheckpointError(f"{checkpoint.path}: its optimizer state does not fit this model ({e})") from None
        self._match_state_layout()
        check_carry(checkpoint, self.num_classes, self.settings.latent_dim)
        for group in self.optimizer.param_groups:  # the implementation follows this device, not the saved one
            group.update(self.adam_flags)
        progress = checkpoint.resume.progress
        self.epoch, self.step = int(progress["epoch"]), int(progress["step"])
        self.best_test_loss, self.best_epoch = float(progress["best_test_loss"]), int(progress["best_epoch"])
        threads = progress.get("threads")
        self.resumed_threads = threads if type(threads) is int and 1 <= threads <= 1024 else None
        self.carry = dict(checkpoint.resume.tensors)
        set_rng_states(carried(self.carry, "rng_now."), self.device)
        self.saved_at, self.centroids = (self.epoch, self.step), checkpoint.class_centroids.to(self.device)
        self.metrics_rows = read_metrics(self.out_dir, self.epoch)

    def run(self, stop: StopFlag) -> list[EpochResult]:
        """Train up to settings.epochs; raise TrainingInterrupted or TrainingDiverged when it cannot finish."""
        results = []
        if self.device.type == "cpu":
            keep_freed_memory()  # no page faults on each step's own tensors: train/memory.py
        self.progress.start(self.settings.epochs, self.epoch, self.steps_per_epoch)
        while self.epoch <= self.settings.epochs:
            self._choose_threads()
            results.append(self._run_epoch(stop))
            self.epoch, self.step = self.epoch + 1, 0
        return results

    def _choose_threads(self) -> None:
        """The coming epoch's thread count: a resumed epoch's recorded one, else what the load leaves free."""
        if self.threads is None:
            return
        before = self.epoch_threads
        if self.resumed_threads is not None and self.step > 0:
            self.threads.use(self.resumed_threads)
        else:
            self.threads.choose()
        self.resumed_threads = None
        self.epoch_threads = torch.get_num_threads()
        if self.epoch_threads != before:
            others, usable, count = self.threads.others, self.threads.usable, self.epoch_threads
            load = "" if others is None else f"other processes keep {others:.1f} of {usable} CPUs busy: "
            self.progress.message(f"{load}epoch {self.epoch} trains on {count} thread{'s' if count > 1 else ''}")

    def _run_epoch(self, stop: StopFlag) -> EpochResult:
        """One epoch: its shuffle, the training steps (from self.step when resumed), evaluation, its files."""
        reach("epoch", self.epoch)  # before the shuffle: last.safetensors (if any) holds this very moment
        if signal_name := self._agree(stop):  # a signal during start-up or the previous epoch's writes
            self._stop(signal_name, self.step)
        started = time.perf_counter()
        first_step = self.step
        self.last_reading = None  # the evaluation and the files between epochs are not training speed
        permutation, rng_epoch_start = self._start_epoch()
        self.progress.epoch_started(self.epoch, first_step)
        self._train_steps(stop, permutation, rng_epoch_start, started)
        result = self._evaluate_epoch(started, first_step)
        centroid_sums = self.ranks.summed(self.centroid_sums)
        if self.ranks.is_main:
            with self._writing():
                self._write_epoch(result, centroid_sums)
        self.saved_at = (self.epoch + 1, 0)
        self.ranks.write_digest(self.model, self.epoch)
        self.progress.epoch_done(result)
        if self.ranks.is_main:  # after the bars are filled, as one process has always drawn it
            self.progress.preview(self.preview)
        return result

    def _start_epoch(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The epoch's shuffle and the RNG state it is drawn from; the running sums zeroed, or restored on resume."""
        if self.carry:  # the first epoch of a resumed run
            carry, self.carry = self.carry, {}
            resumed = resume_epoch(carry, self.step, len(self.train_x), self.device, self.loss_sum, self.centroid_sums)
            if not self.ranks.is_main:  # the carried sums are global: rank 0 alone holds them
                self.loss_sum.zero_()
                self.centroid_sums.zero_()
            return resumed
        rng_epoch_start = rng_states(self.device)
        self.loss_sum.zero_()
        self.centroid_sums.zero_()
        return torch.randperm(len(self.train_x), device=self.device), rng_epoch_start

    def _train_steps(self, stop: StopFlag, permutation: torch.Tensor, rng_epoch_start: dict, started: float) -> None:
        """The epoch's steps from self.step on; on a signal, save where it stopped and raise TrainingInterrupted."""
        first_step, batch_size = self.step, self.settings.batch_size
        self.model.train()
        last_report = started
        for step in range(first_step, self.steps_per_epoch):
            reach("batch", self.epoch, step)  # a signal sent here is seen before the step runs
            if signal_name := self._agree(stop, step):
                self._stop(signal_name, step, permutation, rng_epoch_start)
            self._schedule(step)
            batch = permutation[step * batch_size : (step + 1) * batch_size]
            self.ranks.saw(batch)  # the indices this rank trains, recorded for the tests (train/distributed.py)
            self.train_step(batch)
            if (now := time.perf_counter()) - last_report >= REPORT_SECONDS:
                last_report = now
                self._report(step, first_step, started)

    def _agree(self, stop: StopFlag, step: int | None = None) -> str | None:
        """The signal that stops training now, if any: on several ranks, one all of them agree on before each
        step (a signal may reach only some), with the epoch's loss so far every AGREE_LOSS_STEPS steps (reading it
        waits for the device: on a GPU, not every step), checked on every rank."""
        if not self.ranks.several:
            return stop.signal_name
        names = ("SIGINT", "SIGTERM")
        flags = [float(stop.signal_name == name) for name in names]
        with_loss = step is None or step % AGREE_LOSS_STEPS == 0  # the same steps on every rank
        loss = self.loss_sum.item() if with_loss else 0.0
        agreed = self.ranks.summed(torch.tensor([*flags, loss], dtype=torch.float64))
        if with_loss:
            self.agreed_loss = float(agreed[2])
            done = self.step if step is None else step  # the steps the loss so far covers
            self.agreed_images = min(done * self.settings.batch_size, len(self.train_x))
            self._check_finite(self.agreed_loss)
        return next((name for name, flag in zip(names, agreed[:2].tolist(), strict=True) if flag > 0), None)

    def _report(self, step: int, first_step: int, started: float) -> None:
        """Show the running training loss and speed after `step` (several ranks: the loss before it)."""
        batch_size = self.settings.batch_size
        if self.ranks.several:
            loss = self.agreed_loss / max(self.agreed_images, 1)
        else:
            loss = self.loss_sum.item() / min((step + 1) * batch_size, len(self.train_x))
            self._check_finite(loss)
        now = time.perf_counter()
        rate = (step + 1 - first_step) * batch_size / max(now - started, 1e-9)
        self.progress.batch(step + 1, loss, rate)
        if self.tell is not None:
            steps, images = self.steps_per_epoch, len(self.train_x)
            self.tell(
                {
                    "epoch": self.epoch,
                    "epochs": self.settings.epochs,
                    "step": step + 1,
                    "steps": steps,
                    "images_per_s": round(rate, 1),
                    "left_s": round(max(images - (step + 1) * batch_size, 0) / rate, 3),  # this epoch's training
                    "epoch_s": round(images / rate, 3),  # a whole epoch's training at this speed
                }
            )
        since_step, since = self.last_reading if self.last_reading else (first_step - 1, started)
        if step > since_step:
            self._watch_speed((step - since_step) * batch_size / max(now - since, 1e-9), now)
        self.last_reading = (step, now)

    def _watch_speed(self, images_per_s: float, now: float) -> None:
        """Say, under the bars, when training has run at under half its early speed for 30 s, and what helps."""
        change = self.watch.reading(images_per_s, now)
        if change is None:
            return
        if not change:
            self.progress.notice("")
            return
        if self.threads is not None and self.threads.follows:
            help_ = "fewer threads next epoch"
        elif torch.get_num_threads() > 1:
            help_ = "try --threads 1"
        else:
            help_ = "other jobs hold the CPUs"
        # within 78 columns for speeds up to 99,999 img/s against 999,999
        self.progress.notice(f"busy machine: {images_per_s:,.0f} img/s against {self.watch.normal:,.0f} early; {help_}")

    def _evaluate_epoch(self, started: float, first_step: int) -> EpochResult:
        """The finished epoch's losses on the training and test sets, its timings, and whether it is the best."""
        # a host sync: train_seconds includes the device's work
        train_loss = self.ranks.summed(self.loss_sum).item() / len(self.train_x)
        self._check_finite(train_loss)
        train_seconds = time.perf_counter() - started
        test_loss, test_reconstruction, test_kl, mu, kl_per_dim = evaluate_with_encodings(
            self.model, self.test_x, self.test_y, self.settings.seed + 1
        )
        self._check_finite(test_loss)
        if self.ranks.is_main:  # every rank evaluates the same weights alike; rank 0 alone writes the atlas
            self.atlas = build_atlas(  # for this epoch's files
                mu, kl_per_dim, self.data.test.images, self.data.test.labels, self.model, self.test_x
            )
        is_best = self._record_best(test_loss)
        last_step = self.epoch * self.steps_per_epoch - 1
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
            kl_weight=kl_weight(self.settings, last_step, self.steps_per_epoch),
            lr=learning_rate(self.settings, last_step, self.steps_per_epoch),
            threads=self.epoch_threads,
            test_bce_bits_per_dim=bits_per_dim(test_loss, self.model.config.input_dim),
        )

    def _record_best(self, test_loss: float) -> bool:
        """Whether test_loss is the lowest so far; if so, remember it and this epoch."""
        if test_loss >= self.best_test_loss:
            return False
        self.best_test_loss, self.best_epoch = test_loss, self.epoch
        return True

    def _stop(
        self, signal_name: str, step: int, permutation: torch.Tensor | None = None, rng_epoch_start: dict | None = None
    ) -> NoReturn:
        """Save the state before batch `step` unless last.safetensors holds it already; raise TrainingInterrupted."""
        if (self.epoch, step) not in (self.saved_at, (1, 0)):  # at (1, 0) nothing is trained: a new run is the same
            sums = self.ranks.summed(self.loss_sum), self.ranks.summed(self.centroid_sums)
            if self.ranks.is_main:
                with self._writing():
                    self._save_interrupted(step, permutation, rng_epoch_start, *sums)
            self.ranks.wait()  # the file is whole before any rank says it was saved
            self.saved_at = (self.epoch, step)
        raise TrainingInterrupted(signal_name, self.out_dir / "last.safetensors" if self.saved_at else None)

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

    def _checkpoint(
        self, epoch: int, centroids: torch.Tensor, metrics: dict, resume: ResumeState | None, atlas: Atlas
    ) -> Checkpoint:
        return Checkpoint(
            model=self.model,
            dataset=self.data.name,
            class_names=self.data.class_names,
            epoch=epoch,
            class_centroids=centroids,
            metrics=metrics,
            training=asdict(self.settings) | ({"data": self.data.record} if self.data.record else {}),
            resume=resume,
            atlas=atlas,
        )

    def _resume_state(
        self, epoch: int, step: int, rng_epoch_start: dict, extra: dict[str, torch.Tensor]
    ) -> ResumeState:
        """Where to continue: at batch `step` of `epoch`, with the RNG as it is now."""
        tensors = {f"rng_now.{k}": v for k, v in rng_states(self.device).items()}
        tensors.update({f"rng_epoch_start.{k}": v for k, v in rng_epoch_start.items()})
        tensors.update(extra)
        progress = {"epoch": epoch, "step": step, "best_test_loss": self.best_test_loss, "best_epoch": self.best_epoch}
        progress["threads"] = self.epoch_threads  # the epoch it stops in goes on with the same count
        optimizer = self.optimizer.state_dict()
        for group in optimizer["param_groups"]:  # a scheduled lr on CUDA is a tensor: stored as the number
            if isinstance(group["lr"], torch.Tensor):
                group["lr"] = group["lr"].item()
        return ResumeState(optimizer=optimizer, tensors=tensors, progress=progress)

    def _write_epoch(self, result: EpochResult, centroid_sums: torch.Tensor) -> None:
        """The finished epoch's files, last.safetensors last of all: train/writes.py says why in this order."""
        epoch = result.epoch
        grids = write_grids(self.model, self.test_x, self.test_y, self.sample_z, self.out_dir, epoch)
        num_classes = self.model.config.num_classes if self.model.conditional else None
        self.preview = Preview(epoch, *preview_images(*grids, num_classes), per_class=num_classes is not None)
        row = {k: v for k, v in asdict(result).items() if k != "is_best"}
        self.metrics_rows.append(row)
        write_metrics(self.out_dir, self.metrics_rows)
        metrics = {k: row[k] for k in METRIC_KEYS}
        centroids = centroid_sums / self.class_counts  # running: averaged while the weights moved
        if epoch == self.settings.epochs:  # exact ones cost a sixth of an epoch: once, before best and last
            centroids = exact_centroids(self.model, self.train_x, self.train_y, "last")
            if not result.is_best:
                give_best_exact_centroids(self.out_dir, self.best_epoch, self.train_x, self.train_y)
        if result.is_best:
            best = self._checkpoint(epoch, centroids, metrics, None, self.atlas)
            save_checkpoint(self.out_dir / "best.safetensors", best)
        resume = self._resume_state(epoch + 1, 0, rng_states(self.device), {})
        save_checkpoint(
            self.out_dir / "last.safetensors", self._checkpoint(epoch, centroids, metrics, resume, self.atlas)
        )
        self.centroids = centroids

    def _save_interrupted(
        self,
        step: int,
        permutation: torch.Tensor,
        rng_epoch_start: dict,
        loss_sum: torch.Tensor,
        centroid_sums: torch.Tensor,
    ) -> None:
        """Save the state mid-epoch so that --resume continues with the very next batch (the sums: all ranks')."""
        metrics = {k: v for k, v in (self.metrics_rows or [{}])[-1].items() if k in METRIC_KEYS}
        # running centroids over this epoch's images so far; a class not seen yet keeps its newest ones
        seen = self.train_y[permutation[: step * self.settings.batch_size]]
        seen_counts = torch.bincount(seen, minlength=self.num_classes).unsqueeze(1)
        centroids = torch.where(seen_counts > 0, centroid_sums / seen_counts.clamp(min=1), self.centroids)
        resume = self._resume_state(
            self.epoch, step, rng_epoch_start, {"loss_sum": loss_sum, "centroid_sums": centroid_sums}
        )
        atlas = atlas_of(self.model, self.test_x, self.test_y, self.data.test.images)  # of the weights as they are now
        checkpoint = self._checkpoint(self.epoch - 1, centroids, metrics, resume, atlas)
        save_checkpoint(self.out_dir / "last.safetensors", checkpoint)
