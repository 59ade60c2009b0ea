"""Training on 2 CPU processes (gloo) under torchrun: one run written once, each rank training its shard of every
epoch's shuffled order, each step the one-process step on the same global batch, the ranks' weights equal, a stop on
SIGINT, a killed rank, and resumes in 1 process and in 2.

Three torchrun launches in all, each in one test (a module fixture shared by several tests would start again on
each xdist worker that runs one of them): `train --nproc 2` stopped by SIGINT, `train --nproc 2` whose rank 1 is
killed, and plain torchrun resuming the killed run. Each rank writes its weights, their digest and the indices it
trained after each epoch (DIGEST_ENV); the one-process run they are held against writes the same in process."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from models import load_checkpoint
from tests.helpers import TINY_FLAGS, write_dataset
from train.distributed import DIGEST_ENV
from vae_tui.cli import main

pytestmark = pytest.mark.slow

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
LAUNCHER = [sys.executable, "-m", "vae_tui", "train", "--nproc", "2"]
FLAGS = [*TINY_FLAGS, "--device", "cpu", "--no-preview", "--seed", "3", "--epochs", "3"]
BATCH = 32  # TINY_FLAGS' --batch-size
# 33 global batches an epoch: 32 of 32 images (16 a rank) and a ragged last one of 15, which 2 ranks cannot share
# evenly (8 and 7). The SIGINT, sent once epoch 1's row is written, has two epochs of 33 steps to land in.
N_TRAIN = 32 * BATCH + 15
ROOT = Path(__file__).resolve().parent.parent
SAFETY_S = 300  # wall-clock limits against a hang only: a busy machine must not fail a test


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def weights(path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint's weights, or the weights a rank wrote after an epoch (rank<R>-epoch<E>.safetensors)."""
    return load_file(path) if path.name.startswith("rank") else load_checkpoint(path).model.state_dict()


def indices(digests: Path, rank: int, epoch: int) -> list[int]:
    return [int(i) for i in (digests / f"rank{rank}-epoch{epoch}-indices.txt").read_text().split()]


def in_process(*args: str) -> int:
    """`vae-tui ARGS` in this process, torch's thread count put back after."""
    threads = torch.get_num_threads()
    try:
        return main(list(args))
    finally:
        torch.set_num_threads(threads)


def env_with(digests: Path, **extra: str) -> dict[str, str]:
    """The environment of a launch whose ranks write their weights, digests and indices into digests/."""
    digests.mkdir()
    return {**os.environ, DIGEST_ENV: str(digests), "PYTHONPATH": str(ROOT), **extra}


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/ (N_TRAIN training images), and run/: 3 epochs of it on 1 process never stopped, its weights, digest and
    shuffled order of each epoch in digests/ (rank 0 of 1 trains each whole batch)."""
    root = tmp_path_factory.mktemp("whole")
    write_dataset(root / "data", n_train=N_TRAIN)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(root / "cache"))  # module fixtures come before the per-test isolation
        patch.setenv(DIGEST_ENV, str(root / "digests"))
        (root / "digests").mkdir()
        assert in_process("train", *FLAGS, "--data-dir", str(root / "data"), "--out", str(root / "run")) == 0
    return root


def check_ranks_after(digests: Path, epochs: list[int], whole: Path) -> None:
    """After each of epochs: the 2 ranks' weights equal bit for bit; each trained its shard of the epoch's shuffled
    order, which is the one-process run's: of every global batch (the ragged last one too) rank 0 the first half,
    rounded up, rank 1 the rest; so their indices are disjoint and together every training image once."""
    names = {
        f"rank{r}-epoch{e}{end}" for r in (0, 1) for e in epochs for end in (".txt", ".safetensors", "-indices.txt")
    }
    assert {p.name for p in digests.iterdir()} == names, "the ranks wrote after other epochs than these"
    for epoch in epochs:
        digest = [(digests / f"rank{rank}-epoch{epoch}.txt").read_text() for rank in (0, 1)]
        assert digest[0] == digest[1], f"the ranks' weights differ after epoch {epoch}"  # bit for bit
        order = indices(whole / "digests", 0, epoch)
        assert sorted(order) == list(range(N_TRAIN)), "the one-process epoch is not a shuffle of every image"
        batches = [order[i : i + BATCH] for i in range(0, N_TRAIN, BATCH)]
        assert len(batches[-1]) == 15
        shards = [
            [i for b in batches for i in b[: (len(b) + 1) // 2]],
            [i for b in batches for i in b[(len(b) + 1) // 2 :]],
        ]
        seen = [indices(digests, 0, epoch), indices(digests, 1, epoch)]
        assert not set(seen[0]) & set(seen[1]), f"the ranks trained some images twice in epoch {epoch}"
        assert sorted(seen[0] + seen[1]) == list(range(N_TRAIN)), f"the ranks left out images in epoch {epoch}"
        assert seen == shards, f"a rank did not train its shard of epoch {epoch}'s shuffled order"


def check_epoch_1_as_one_process(run: Path, run_weights: Path, whole: Path) -> None:
    """Each step is the one-process step on the same global batch and noise: epoch 1's training loss (the mean of its
    steps' losses) within 1e-4 nats per image of one process's, the test loss within 0.5 nats, the weights within
    float rounding; and it learned. (The one-process run's epoch 1 is a 1-epoch run's: the lr is constant.)"""
    two, one = rows(run)[0], rows(whole / "run")[0]
    assert two["epoch"] == one["epoch"] == 1
    assert abs(two["train_loss"] - one["train_loss"]) < 1e-4, f"training loss: {two} against {one}"
    assert abs(two["test_loss"] - one["test_loss"]) < 0.5, f"test loss: {two} against {one}"
    difference = max_difference(weights(run_weights), weights(whole / "digests" / "rank0-epoch1.safetensors"))
    assert difference < 1e-5, f"epoch 1's weights differ from one process's by {difference}"
    assert two["train_loss"] < 600  # it learned: an untrained model is at about 550 + ...


def test_sigint_stops_every_rank_and_the_run_resumes_in_one_process(whole: Path, tmp_path: Path) -> None:
    """`train --nproc 2` (torchrun's launcher), 3 epochs, stopped by SIGINT once epoch 1's row is written:
    - rank 0 alone prints (its epoch line and the line "each trains 16 of every 32 images") and says it stopped and
      saved, with a resume command that goes on with --nproc 2; last.safetensors stops in epoch 2 or later;
    - files are written once, by rank 0: the run's files and one metrics row for each whole epoch;
    - after epoch 1 the ranks' weights are equal bit for bit, and each rank trained its shard of the shuffled order
      (check_ranks_after);
    - epoch 1 is the one-process epoch 1 (check_epoch_1_as_one_process);
    - 1 process finishes it (the data order and the noise are kept): the weights of the 1-process run never stopped
      within 1e-4, its last test loss within 0.5 nats."""
    env = env_with(tmp_path / "digests")
    flags = [*FLAGS, "--data-dir", str(whole / "data"), "--out", str(tmp_path / "run")]
    launcher = subprocess.Popen(
        [*LAUNCHER, *flags], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + SAFETY_S
    while not (tmp_path / "run" / "metrics.jsonl").exists() and launcher.poll() is None:
        assert time.monotonic() < deadline, "the first epoch did not end"
        time.sleep(0.02)
    launcher.send_signal(signal.SIGINT)
    out, err = launcher.communicate(timeout=60)  # every rank stops at the next step, and saves
    assert launcher.returncode != 0, out
    assert "SIGINT: stopped and saved" in err, err[-3000:]
    assert err.count("SIGINT: stopped and saved") == 1  # rank 0 alone says so
    assert "--nproc 2" in err  # the resume command it prints goes on with as many processes
    assert out.count("epoch 1/3") == 1, out  # rank 0 alone prints
    assert "2 processes (torch.distributed DDP): each trains 16 of every 32 images" in out
    progress = load_checkpoint(tmp_path / "run" / "last.safetensors", with_resume=True).resume.progress
    assert progress["epoch"] >= 2

    done = [r["epoch"] for r in rows(tmp_path / "run")]
    assert done == list(range(1, progress["epoch"])), "metrics rows are not one for each whole epoch"
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    pictures = [f"{kind}-{e}.png" for kind in ("reconst", "sample") for e in done]
    assert names == sorted([".lock", "best.safetensors", "last.safetensors", "metrics.jsonl", *pictures]), names
    check_ranks_after(tmp_path / "digests", done, whole)
    check_epoch_1_as_one_process(tmp_path / "run", tmp_path / "digests" / "rank0-epoch1.safetensors", whole)

    resumed = ["--resume", str(tmp_path / "run" / "last.safetensors"), "--device", "cpu", "--no-preview"]
    assert in_process("train", *resumed, "--data-dir", str(whole / "data")) == 0
    assert [r["epoch"] for r in rows(tmp_path / "run")] == [1, 2, 3]
    assert abs(rows(tmp_path / "run")[2]["test_loss"] - rows(whole / "run")[2]["test_loss"]) < 0.5
    difference = max_difference(
        weights(tmp_path / "run" / "last.safetensors"), weights(whole / "run" / "last.safetensors")
    )
    assert difference < 1e-4, f"resumed in 1 process, the weights differ from the run never stopped by {difference}"


def test_a_killed_rank_stops_the_others_and_its_last_resumes_in_two_processes(whole: Path, tmp_path: Path) -> None:
    """`train --nproc 2`, 3 epochs, whose rank 1 is killed (SIGKILL) at step 5 of epoch 2:
    - rank 0 exits within 30 s (its peer's connection resets), one line names rank 1 and the log file holding
      torchrun's report, and every file in the run is whole; last.safetensors holds the end of epoch 1;
    - epoch 1 went as in the SIGINT test: equal weights, shards (check_ranks_after), the one-process epoch 1
      (check_epoch_1_as_one_process, with last.safetensors's weights);
    then plain `torchrun --standalone --nproc-per-node 2 -m vae_tui train --resume` of that last.safetensors:
    - it finishes with rank 0 alone printing (the epoch lines, the "each trains 16" line and "Done:" once each) and
      one metrics row an epoch;
    - after epochs 2 and 3 the ranks' weights are equal bit for bit and each trained its shard (check_ranks_after);
    - resuming with the same N is exact up to floating point: the final weights are the 1-process run's never
      stopped within 1e-5, its last test loss within 0.5 nats; the finished run's files are written once, by rank 0;
    and the same last.safetensors (an epoch's end) resumed in 1 process reaches those weights within 1e-4."""
    env = env_with(tmp_path / "digests", VAE_TUI_SIGNAL_AT="batch 2 5=SIGKILL", VAE_TUI_SIGNAL_RANK="1")
    flags = [*FLAGS, "--data-dir", str(whole / "data"), "--out", str(tmp_path / "run")]
    started = time.monotonic()
    launcher = subprocess.run(
        [*LAUNCHER, *flags], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=SAFETY_S
    )
    seconds = time.monotonic() - started
    assert launcher.returncode != 0
    lines = [line for line in launcher.stderr.splitlines() if line.startswith("vae-tui train:")]
    assert len(lines) == 1, launcher.stderr[-3000:]
    assert lines[0].startswith("vae-tui train: rank 1 failed: killed by SIGKILL; torchrun's report: ")
    assert "Traceback" not in launcher.stderr and "ChildFailedError" not in launcher.stderr
    log = Path(lines[0].rsplit(": ", 1)[1])
    assert log.parent == tmp_path / "run" and "Root Cause" in log.read_text()
    assert seconds < 30 + 20  # the 30 s the issue allows, and the start-up
    assert not list((tmp_path / "run").glob("*.tmp")) and not list((tmp_path / "run").glob(".*.tmp"))
    for checkpoint in (tmp_path / "run").glob("*.safetensors"):
        load_checkpoint(checkpoint)
    assert load_checkpoint(tmp_path / "run" / "last.safetensors", with_resume=True).resume.progress["epoch"] == 2
    assert [r["epoch"] for r in rows(tmp_path / "run")] == [1]
    check_ranks_after(tmp_path / "digests", [1], whole)
    check_epoch_1_as_one_process(tmp_path / "run", tmp_path / "run" / "last.safetensors", whole)

    (tmp_path / "resumed").mkdir()
    for name in ("last.safetensors", "metrics.jsonl"):
        shutil.copyfile(tmp_path / "run" / name, tmp_path / "resumed" / name)
    env = env_with(tmp_path / "digests-resumed")
    resumed = ["--resume", str(tmp_path / "resumed" / "last.safetensors"), "--device", "cpu", "--no-preview"]
    two = subprocess.run(
        [*TORCHRUN, "-m", "vae_tui", "train", *resumed, "--data-dir", str(whole / "data")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=SAFETY_S,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("epoch 2/3") == 1 and two.stdout.count("epoch 3/3") == 1, two.stdout  # rank 0 alone prints
    assert two.stdout.count("Done:") == 1, two.stdout
    assert "2 processes (torch.distributed DDP): each trains 16 of every 32 images" in two.stdout
    assert [r["epoch"] for r in rows(tmp_path / "resumed")] == [1, 2, 3]
    check_ranks_after(tmp_path / "digests-resumed", [2, 3], whole)
    assert abs(rows(tmp_path / "resumed")[2]["test_loss"] - rows(whole / "run")[2]["test_loss"]) < 0.5
    last = weights(tmp_path / "resumed" / "last.safetensors")
    difference = max_difference(last, weights(whole / "run" / "last.safetensors"))
    assert difference < 1e-5, f"resumed in 2 processes, the weights differ from the run never stopped by {difference}"
    names = sorted(p.name for p in (tmp_path / "resumed").iterdir())
    pictures = [f"{kind}-{e}.png" for kind in ("reconst", "sample") for e in (2, 3)]
    assert names == sorted([".lock", "best.safetensors", "last.safetensors", "metrics.jsonl", *pictures]), names

    (tmp_path / "one").mkdir()
    for name in ("last.safetensors", "metrics.jsonl"):
        shutil.copyfile(tmp_path / "run" / name, tmp_path / "one" / name)
    resumed = ["--resume", str(tmp_path / "one" / "last.safetensors"), "--device", "cpu", "--no-preview"]
    assert in_process("train", *resumed, "--data-dir", str(whole / "data")) == 0
    difference = max_difference(
        weights(tmp_path / "one" / "last.safetensors"), weights(whole / "run" / "last.safetensors")
    )
    assert difference < 1e-4, f"resumed in 1 process, the weights differ from the run never stopped by {difference}"


def test_the_launcher_fixes_the_run_folder_and_restarted_ranks_resume_it(tmp_path: Path) -> None:
    """The launcher's own flags stay out of the ranks' command; a restart (TORCHELASTIC_RESTART_COUNT > 0) of a run
    with a last.safetensors resumes it, a first attempt does not."""
    from vae_tui.commands.train_ranks import restarted_from, without_nproc

    assert without_nproc(["--nproc", "2", "--max-restarts=3", "--epochs", "1"]) == ["--epochs", "1"]
    (tmp_path / "last.safetensors").write_bytes(b"")
    args = types.SimpleNamespace(resume=None, out=str(tmp_path))
    environ = {"WORLD_SIZE": "2", "RANK": "1", "TORCHELASTIC_RESTART_COUNT": "0"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environ.items():
            patch.setenv(name, value)
        restarted_from(args)
        assert args.resume is None
        patch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
        restarted_from(args)
    assert args.resume == str(tmp_path / "last.safetensors")


REPORT = """Traceback (most recent call last):
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
Failures:
[1]:
  rank      : 0 (local_rank: 0)
  exitcode  : 1 (pid: 11)
  error_file: {error_file}
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  rank      : 1 (local_rank: 1)
  exitcode  : {exitcode} (pid: 12)
  error_file: <N/A>
"""


def test_torchruns_report_is_read_for_the_rank_that_failed(tmp_path: Path) -> None:
    """The root cause's rank and how it ended; a rank that only lost its peer is not the one named; a rank's error
    file gives its message."""
    from vae_tui.commands.train_ranks import parse_failures

    error_file = tmp_path / "error.json"
    message = {"message": "rank 1 stopped answering (RuntimeError: closed)", "extraInfo": {"user_error": False}}
    error_file.write_text(json.dumps({"message": message}))
    failures = parse_failures(REPORT.format(error_file=error_file, exitcode=-9))
    assert failures == [
        {"rank": 1, "error": "killed by SIGKILL", "user_error": False},
        {"rank": 0, "error": "rank 1 stopped answering (RuntimeError: closed)", "user_error": False},
    ]


@pytest.mark.parametrize("device", ["auto", "cuda", "cuda:1"])
def test_more_cuda_ranks_than_the_node_has_gpus_is_refused_in_one_line(
    device: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`train --nproc 3` on a node with 2 GPUs, CUDA asked for or found by auto: refused before torchrun starts."""
    from models.errors import UserError
    from vae_tui.commands.train_ranks import launch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    args = types.SimpleNamespace(nproc=3, max_restarts=None, device=device, argv=[], resume=None, out="run")
    with pytest.raises(
        UserError, match=r"^--nproc 3: this node has 2 CUDA GPU\(s\), one a rank: use --nproc 2 at most$"
    ):
        launch(args)
