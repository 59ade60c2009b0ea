"""A model written elsewhere as the explorer calls it: one call at a time on a daemon thread, each failure one line.

The user's code may be slow, stuck or wrong. Its calls run on a thread of their own, which the process does not wait
for at exit, so `q` quits while a decode runs; whoever waits for one (a Textual worker) stops waiting once Textual
cancels it (a newer state, or the app closing). Whatever the call raises, and whatever it returns that the protocol
does not allow (models/outside.py checks that), is an OutsideModelError whose message names it in one line.
"""

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

import torch
from textual.worker import NoActiveWorker, get_current_worker

from models.outside import OutsideModelError, OutsideVAE
from models.text import printable

POLL_SECONDS = 0.05  # how often a wait looks whether its worker was cancelled
MESSAGE_CHARS = 200  # of the user's exception message, as vae_tui/outside.py cuts it


class Abandoned(Exception):  # noqa: N818 (not an error: the caller left)
    """The worker that waited for a model call was cancelled; the call may still be running."""


class ModelThread:
    """Runs functions one at a time on a daemon thread; the caller waits, and stops waiting when its worker is
    cancelled."""

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[tuple[str, Future, Callable, tuple] | None] = queue.SimpleQueue()
        self._running: tuple[str, float] | None = None  # what runs now, and since when (time.monotonic)
        self._thread = threading.Thread(target=self._serve, name="vae-tui model", daemon=True)
        self._thread.start()

    @property
    def daemon(self) -> bool:
        """Whether the process may end while a call runs (it may: the thread is a daemon)."""
        return self._thread.daemon

    def close(self) -> None:
        """End the thread once the call it runs, if any, returns."""
        self._requests.put(None)

    def busy(self) -> tuple[str, float] | None:
        """What the thread runs now ("decode(z)") and for how many seconds, or None when it waits."""
        running = self._running
        return None if running is None else (running[0], time.monotonic() - running[1])

    def call(self, what: str, function: Callable, *args: object) -> object:
        """function(*args) on the model's thread: its result, or an OutsideModelError naming what it raised."""
        future: Future = Future()
        self._requests.put((what, future, function, args))
        try:
            worker = get_current_worker()
        except NoActiveWorker:
            worker = None
        while True:
            try:
                return future.result(timeout=POLL_SECONDS)
            except FutureTimeout:
                if worker is not None and worker.is_cancelled:
                    future.cancel()  # not run at all when it has not started
                    raise Abandoned(what) from None

    def _serve(self) -> None:
        while (request := self._requests.get()) is not None:
            what, future, function, args = request
            if not future.set_running_or_notify_cancel():
                continue
            self._running = (what, time.monotonic())
            try:
                with torch.inference_mode():  # as the explorer's Decoder runs vae-tui's models
                    result = function(*args)
            except OutsideModelError as error:
                future.set_exception(error)
            except BaseException as error:  # the user's code: anything may come out of it, sys.exit() included
                failure = OutsideModelError(f"{what} raised {one_line(error)}")
                failure.__cause__ = error  # its traceback, for the log
                future.set_exception(failure)
            else:
                future.set_result(result)
            finally:
                self._running = None


def one_line(error: BaseException) -> str:
    """An exception as "ValueError: its message's first line", cut to MESSAGE_CHARS and made printable."""
    lines = str(error).strip().splitlines()
    name = type(error).__name__
    return printable(f"{name}: {lines[0]}"[: len(name) + 2 + MESSAGE_CHARS] if lines else name)


class OutsideCalls:
    """An OutsideVAE whose decode and encode run on a ModelThread; everything else is the model's own."""

    def __init__(self, model: OutsideVAE) -> None:
        self.inner = model
        self.thread = ModelThread()

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The model's decode(z) (pixel logits, B x C*H*W), on its thread."""
        return self.thread.call("decode(z)", self.inner.decode, z, y)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's encode(x) (mu, logvar), on its thread."""
        return self.thread.call("encode(x)", self.inner.encode, x, y)

    def eval(self) -> "OutsideCalls":
        return self


def on_its_thread(model: object) -> object:
    """The model as the explorer calls it: one written elsewhere in OutsideCalls, vae-tui's own as it is."""
    return OutsideCalls(model) if isinstance(model, OutsideVAE) else model
