"""argparse types for bounded flags: a bad value is argparse's exit status 2 naming the flag.

The same bounds as the files and variables (:mod:`loadstack.limits`), checked where
the flag is parsed, so ``--users 1e20`` or ``--spawn-rate inf`` never reaches a
run, a manifest or a traceback.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from loadstack import limits
from loadstack.durations import parse_duration


def int_in(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse type: a whole number within ``[lo, hi]``."""

    def whole_number(text: str) -> int:
        try:
            return limits.bounded_int(text, lo, hi)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return whole_number


def float_in(lo: float, hi: float, *, lo_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number within ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``)."""

    def number(text: str) -> float:
        try:
            return limits.bounded_float(text, lo, hi, lo_open=lo_open)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return number


def duration_flag(text: str) -> str:
    """An argparse type: a duration such as 30s or 5m (kept as text; profiles.resolve converts it)."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return text


PORT = int_in(1, 65535)
USERS = int_in(1, limits.MAX_USERS)
WORKERS = int_in(1, limits.MAX_WORKERS)
SPAWN_RATE = float_in(0, limits.MAX_SPAWN_RATE, lo_open=True)
MEGABYTES = float_in(0, 1024, lo_open=True)
