"""Training on 2 CPU processes (gloo) under torchrun: one run written once, each rank training its shard of every
epoch's shuffled order, each step the one-process step on the same global batch, the ranks' weights equal, a killed
rank, a stop on SIGINT, and resumes in 2 processes and in 1.

One torchrun launch (some 11 CPU-seconds, most of it torch's import in torchrun and in each rank), in one test with
the resumes (a module fixture shared by several tests would start again on each xdist worker that runs one of them):
`train --nproc 2` whose rank 1 is killed; then 2 ranks forked from the test's process with torchrun's environment
resume it until a SIGINT; then 1 process finishes it. Each rank writes its weights, their digest and the indices it
trained after each epoch (DIGEST_ENV); the one-process run they are held against writes the same in process."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from models import load_checkpoint
from tests.helpers import TINY_FLAGS, Forked, write_dataset
from train.distributed import DIGEST_ENV
from vae_tui.cli import main

pytestmark = pytest.mark.slow

LAUNCHER = [sys.executable, "-m", "vae_tui", "train", "--nproc", "2"]
FLAGS = [*TINY_FLAGS, "--device", "cpu", "--no-preview", "--seed", "3", "--epochs", "4"]
BATCH = 32  # TINY_FLAGS' --batch-size
# 33 global batches an epoch: 32 of 32 images (16 a rank) and a ragged last one of 15, which 2 ranks cannot share
# evenly (8 and 7). The SIGINT, sent once epoch 2's row is written, has two epochs of 33 steps to land in.
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_env(rank: int, port: int, digests: Path) -> dict[str, str]:
    """What `torchrun --standalone --nproc-per-node 2` sets for a rank (the store on rank 0, at port), for a rank
    forked from this process, torch already imported (a fresh one costs some 3 CPU-seconds of imports); its
    weights, digests and indices go to digests/."""
    return {
        "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), DIGEST_ENV: str(digests),
    }  # fmt: skip


def env_with(digests: Path, **extra: str) -> dict[str, str]:
    """The environment of a launch whose ranks write their weights, digests and indices into digests/."""
    digests.mkdir()
    return {**os.environ, DIGEST_ENV: str(digests), "PYTHONPATH": str(ROOT), **extra}


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data/ (N_TRAIN training images), and run/: 4 epochs of it on 1 process never stopped, its weights, digest and
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


def test_a_killed_rank_stops_the_others_then_2_ranks_resume_until_sigint_and_1_process_finishes(
    whole: Path, tmp_path: Path
) -> None:
    """1. `train --nproc 2` (torchrun's launcher), 4 epochs, whose rank 1 is killed (SIGKILL) at step 5 of epoch 2:
    - rank 0 exits within 30 s (its peer's connection resets), one line names rank 1 and the log file holding
      torchrun's report, and every file in the run is whole; last.safetensors holds the end of epoch 1;
    - files are written once, by rank 0: one metrics row, for epoch 1;
    - after epoch 1 the ranks' weights are equal bit for bit, and each rank trained its shard of the shuffled order
      (check_ranks_after); epoch 1 is the one-process epoch 1 (check_epoch_1_as_one_process).
    2. `vae-tui train --resume` of that last.safetensors in 2 ranks with the environment `torchrun --standalone
    --nproc-per-node 2` gives them (forked from this process: real processes, gloo, no torch import), each sent a
    SIGINT, as torchrun passes one on, once epoch 2's row is written:
    - rank 0 alone prints (its epoch line and the line "each trains 16 of every 32 images") and says it stopped and
      saved, rank 1 prints nothing; last.safetensors stops in epoch 3 or later;
    - the run's files are written once, one metrics row for each whole epoch;
    - after each whole epoch the ranks' weights are equal bit for bit and each trained its shard; resuming with the
      same N is exact up to floating point: those weights are the 1-process run's never stopped within 1e-5.
    3. 1 process finishes it (the data order and the noise are kept): the weights of the 1-process run never stopped
    within 1e-4, its last test loss within 0.5 nats."""
    run = tmp_path / "run"
    env = env_with(tmp_path / "digests", VAE_TUI_SIGNAL_AT="batch 2 5=SIGKILL", VAE_TUI_SIGNAL_RANK="1")
    flags = [*FLAGS, "--data-dir", str(whole / "data"), "--out", str(run)]
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
    assert log.parent == run and "Root Cause" in log.read_text()
    assert seconds < 30 + 20  # the 30 s the issue allows, and the start-up
    assert not list(run.glob("*.tmp")) and not list(run.glob(".*.tmp"))
    for checkpoint in run.glob("*.safetensors"):
        load_checkpoint(checkpoint)
    assert load_checkpoint(run / "last.safetensors", with_resume=True).resume.progress["epoch"] == 2
    assert [r["epoch"] for r in rows(run)] == [1]
    pictures = ["reconst-1.png", "sample-1.png"]
    files = [".lock", "best.safetensors", "last.safetensors", "metrics.jsonl", log.name]
    assert sorted(p.name for p in run.iterdir()) == sorted([*files, *pictures])
    check_ranks_after(tmp_path / "digests", [1], whole)
    check_epoch_1_as_one_process(run, run / "last.safetensors", whole)

    digests, port = tmp_path / "digests-resumed", free_port()
    digests.mkdir()
    resumed = ["--resume", str(run / "last.safetensors"), "--device", "cpu", "--no-preview"]
    command = ["train", *resumed, "--data-dir", str(whole / "data")]
    ranks = [Forked(command, env=torchrun_env(rank, port, digests), cwd=tmp_path) for rank in (0, 1)]
    deadline = time.monotonic() + SAFETY_S
    while (run / "metrics.jsonl").read_text().count("\n") < 2 and all(rank.poll() is None for rank in ranks):
        assert time.monotonic() < deadline, "epoch 2 did not end"
        time.sleep(0.02)
    for rank in ranks:  # what torchrun does with a SIGINT it gets: each of its ranks gets one
        os.kill(rank.pid, signal.SIGINT)
    (out, err), (out_1, err_1) = (rank.communicate(timeout=60) for rank in ranks)  # each stops at the next step
    assert ranks[0].returncode != 0 and ranks[1].returncode != 0, out
    assert "SIGINT: stopped and saved" in err, err[-3000:]
    assert err.count("SIGINT: stopped and saved") == 1 and out.count("epoch 2/4") == 1, out
    assert not out_1 and "SIGINT" not in err_1, err_1[-3000:]  # rank 0 alone prints and says so
    assert "2 processes (torch.distributed DDP): each trains 16 of every 32 images" in out
    progress = load_checkpoint(run / "last.safetensors", with_resume=True).resume.progress
    assert progress["epoch"] >= 3
    done = [r["epoch"] for r in rows(run)]
    assert done == list(range(1, progress["epoch"])), "metrics rows are not one for each whole epoch"
    pictures = [f"{kind}-{e}.png" for kind in ("reconst", "sample") for e in done]
    assert sorted(p.name for p in run.iterdir()) == sorted([*files, *pictures])
    check_ranks_after(tmp_path / "digests-resumed", done[1:], whole)
    for epoch in done[1:]:
        name = f"rank0-epoch{epoch}.safetensors"
        difference = max_difference(weights(tmp_path / "digests-resumed" / name), weights(whole / "digests" / name))
        assert difference < 1e-5, f"resumed in 2 processes, epoch {epoch}'s weights differ by {difference}"

    resumed = ["--resume", str(run / "last.safetensors"), "--device", "cpu", "--no-preview"]
    assert in_process("train", *resumed, "--data-dir", str(whole / "data")) == 0
    assert [r["epoch"] for r in rows(run)] == [1, 2, 3, 4]
    assert abs(rows(run)[3]["test_loss"] - rows(whole / "run")[3]["test_loss"]) < 0.5
    difference = max_difference(weights(run / "last.safetensors"), weights(whole / "run" / "last.safetensors"))
    assert difference < 1e-4, f"resumed in 1 process, the weights differ from the run never stopped by {difference}"


def test_the_launcher_passes_sigint_on_to_torchrun_and_its_ranks_say_what_to_run_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`train --nproc 2`'s launcher with torchrun replaced by a process that waits for SIGINT: a SIGINT to the launcher
    reaches it; the launcher returns its status, passes its lines on and adds none of its own. A rank it started
    puts `--nproc 2` in the resume command it prints (plain torchrun's do not: torchrun's own flags are the user's)."""
    from vae_tui.commands import train_ranks
    from vae_tui.commands.train import unstored_flags
    from vae_tui.commands.train_ranks import LAUNCHER_ENV

    ready = tmp_path / "ready"
    child = (
        "import pathlib, signal, sys, time\n"
        "def stop(*_):\n    print('SIGINT: stopped and saved', file=sys.stderr); sys.exit(130)\n"
        f"signal.signal(signal.SIGINT, stop); pathlib.Path({str(ready)!r}).touch(); time.sleep(SAFETY_S)\n"
    ).replace("SAFETY_S", str(SAFETY_S))
    popen = subprocess.Popen
    commands = []

    def start(command: list[str], **kwargs: object) -> subprocess.Popen:
        commands.append(command)
        return popen([sys.executable, "-c", child], **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(train_ranks.subprocess, "Popen", start)
    launcher_handler = []

    def interrupt() -> None:  # once the child listens and the launcher's handler is in place (until the child ends)
        deadline = time.monotonic() + SAFETY_S
        while not (ready.exists() and signal.getsignal(signal.SIGINT) is not default):
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)
        launcher_handler.append(signal.getsignal(signal.SIGINT))
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    default = signal.getsignal(signal.SIGINT)
    threading.Thread(target=interrupt, daemon=True).start()
    args = types.SimpleNamespace(nproc=2, max_restarts=None, device="cpu", argv=[], resume=None, out=str(tmp_path))
    assert train_ranks.launch(args) == 130
    assert signal.getsignal(signal.SIGINT) is default  # put back
    assert launcher_handler and launcher_handler[0] is not default
    assert commands[0][1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    err = capsys.readouterr().err
    assert err.count("SIGINT: stopped and saved") == 1 and "vae-tui train:" not in err, err

    args = types.SimpleNamespace(
        resume="run/last.safetensors", epochs=None, device="cpu", data_dir=None, data=None, threads=None,
        cuda_graphs=True, no_preview=False,
    )  # fmt: skip
    with monkeypatch.context() as patch:
        patch.setenv("LOCAL_WORLD_SIZE", "2")
        assert ("--nproc", "2") not in unstored_flags(args)  # plain torchrun
        patch.setenv(LAUNCHER_ENV, "1")
        assert ("--nproc", "2") in unstored_flags(args)


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
