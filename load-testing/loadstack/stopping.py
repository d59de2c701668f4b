"""SIGINT/SIGTERM caught from the launcher's first line, before anything can need the handler.

A launcher (``loadstack run``/``ui``) may be told to stop at any moment: while
Python still imports loadstack, while the inputs are checked, while the target
starts.  Killed by the default SIGTERM disposition there, it would exit 143
with no summary (issue 27, finding 19).  ``loadstack/__main__.py`` calls
:func:`install` before importing anything else, so from then on a signal is
only *recorded*; :class:`loadstack.lifecycle.Stops` takes it over once the run
exists and stops the run at the next step, with a summary.

This module imports nothing but the standard library: it must be cheap to load
before the rest of loadstack.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)

received: int | None = None  # the first SIGINT/SIGTERM since install()
_callback: Callable[[int], None] | None = None
_previous: dict[int, Any] = {}


def command_line(argv: Sequence[str]) -> list[str]:
    """``argv[1:]`` from the subcommand on: the global options before it skipped
    (``--allow-proxy URL``), so ``loadstack --allow-proxy URL run …`` is a run like any other."""
    args = list(argv[1:])
    while args and args[0].startswith("-"):
        option = args.pop(0)
        if option == "--allow-proxy" and args:
            args.pop(0)  # its value
    return args


def is_launcher(argv: Sequence[str]) -> bool:
    """Whether this command line starts a run that needs :func:`install` from its first line."""
    args = command_line(argv)
    return args[:1] == ["run"] or (args[:1] == ["ui"] and "--foreground" in args)


def _record(signum: int, _frame: Any) -> None:
    global received
    first = received is None
    if first:
        received = signum
    if _callback is not None:
        _callback(signum)


def install() -> None:
    """Record SIGINT/SIGTERM from now on instead of dying (main thread only; idempotent)."""
    for sig in SIGNALS:
        if sig not in _previous:
            _previous[sig] = signal.signal(sig, _record)


def installed() -> bool:
    """Whether :func:`install` ran (``loadstack/__main__.py`` did, or a lifecycle in this process)."""
    return bool(_previous)


def on_signal(callback: Callable[[int], None] | None) -> int | None:
    """Call ``callback(signum)`` for each later signal; returns the one already received, if any."""
    global _callback
    install()
    _callback = callback
    return received


def uninstall() -> None:
    """The dispositions from before :func:`install` (for a process that goes on after the run)."""
    global _callback, received
    _callback = None
    received = None
    for sig, handler in _previous.items():
        signal.signal(sig, handler)
    _previous.clear()
