"""Stopping training on SIGINT or SIGTERM: the flag the handlers set, and what a stop reports (torch-free)."""

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopFlag:
    """Set from a signal handler; training checks it at each epoch's start and before each batch."""

    def __init__(self) -> None:
        self.signal_name: str | None = None


class TrainingInterrupted(Exception):
    """Training stopped on a signal: checkpoint holds the state to resume from, None when nothing was trained."""

    def __init__(self, signal_name: str, checkpoint: Path | None) -> None:
        super().__init__(f"{signal_name}: {f'saved {checkpoint}' if checkpoint else 'nothing trained yet'}")
        self.signal_name = signal_name
        self.checkpoint = checkpoint


@contextmanager
def stop_on_signals(escalate: bool = True) -> Iterator[StopFlag]:
    """Inside, SIGINT and SIGTERM set the flag and a second one raises KeyboardInterrupt (unless not escalate);
    the old handlers after."""
    stop = StopFlag()
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def request_stop(signum: int, frame: object) -> None:
        if stop.signal_name and escalate:  # a second signal: stop now; every file on disk is whole (train/writes.py)
            raise KeyboardInterrupt
        if stop.signal_name:
            return
        stop.signal_name = signal.Signals(signum).name

    try:
        for sig in STOP_SIGNALS:
            signal.signal(sig, request_stop)
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
