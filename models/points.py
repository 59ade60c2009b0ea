"""Named points in training and file writes, where tests wait for a moment or stop a process.

Code calls ``reach("batch", epoch, step)`` at moments that matter (a batch about to run,
a checkpoint half written ...). Nobody listens by default, and a point then costs one
list check. Tests listen in two ways:

- in the same process, ``listen(callback)``: the callback gets each point's label
  ("batch 2 3"), and may raise to fail the code at that point;
- in a subprocess, through the environment: ``VAE_TUI_POINTS=FILE`` appends each label
  as a line to FILE (flushed at once, so a test can wait for a line), and
  ``VAE_TUI_SIGNAL_AT="LABEL=SIGNAL"`` makes the process send itself SIGNAL (SIGINT,
  SIGTERM, SIGKILL ...) when it reaches LABEL, so a stop lands at an exact moment; with
  ``VAE_TUI_SIGNAL_RANK=R``, only the torchrun rank R (its RANK variable) does.
"""

import os
import signal
from collections.abc import Callable

Listener = Callable[[str], None]

_listeners: list[Listener] = []


def reach(name: str, *details: object) -> None:
    """Announce that the point `name` (with details such as epoch and step) is reached."""
    if _listeners:
        label = " ".join([name, *map(str, details)])
        for listener in list(_listeners):
            listener(label)


def listen(listener: Listener) -> Callable[[], None]:
    """Call listener at every point reached from now on; return the function that stops it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener)


def _log_to(path: str) -> Listener:
    def log(label: str) -> None:
        with open(path, "a") as file:
            file.write(label + "\n")

    return log


def _signal_at(spec: str) -> Listener:
    target, _, signal_name = spec.rpartition("=")
    signum = signal.Signals[signal_name.strip().upper()]

    def send(label: str) -> None:
        if label == target:
            os.kill(os.getpid(), signum)

    return send


def listen_as_the_environment_says() -> None:
    """Listen as VAE_TUI_POINTS and VAE_TUI_SIGNAL_AT say, in place of any listener so far (a process started, or
    forked, for a test)."""
    _listeners.clear()
    if os.environ.get("VAE_TUI_POINTS"):
        listen(_log_to(os.environ["VAE_TUI_POINTS"]))
    rank = os.environ.get("VAE_TUI_SIGNAL_RANK")
    if os.environ.get("VAE_TUI_SIGNAL_AT") and rank in (None, os.environ.get("RANK", "0")):
        listen(_signal_at(os.environ["VAE_TUI_SIGNAL_AT"]))


listen_as_the_environment_says()
