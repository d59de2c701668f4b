"""Upper bounds on what a profile, chain, SLO file, flag or variable may ask for.

A typo such as ``users: 1e20`` or ``workers: 1000000`` must be an error naming the
field, not a machine brought to its knees.  The maxima are far above any real
run on one machine; the types are strict where YAML would otherwise let a
``true`` or ``1.5`` pass as a count.
"""

from __future__ import annotations

import math
import os
from typing import Annotated

from pydantic import Field, Strict

MAX_USERS = 1_000_000
MAX_SPAWN_RATE = 100_000.0  # users started per second
MAX_ITERATIONS = 10**12  # an iteration budget
MAX_RATE = 1_000_000.0  # iterations started per second, an arrival rate
MAX_WORKERS = 1024  # worker processes/containers, even with --allow-many-workers
WORKERS_PER_CPU = 4  # without --allow-many-workers
MAX_WEIGHT = 1_000_000.0
MAX_MS = 86_400_000.0  # a day, as a latency threshold
MAX_ITEMS = 1000  # entries of a list or mapping in a profile (stages, tags, thresholds, env, ...)
MAX_NAME = 256  # characters of a name, tag, queue or path field

# Integers that must be integers (not ``true``, not ``2.0``), within bounds.
Users = Annotated[int, Strict(), Field(ge=1, le=MAX_USERS)]
UsersOrZero = Annotated[int, Strict(), Field(ge=0, le=MAX_USERS)]
Workers = Annotated[int, Strict(), Field(ge=1, le=MAX_WORKERS)]
Iterations = Annotated[int, Strict(), Field(ge=1, le=MAX_ITERATIONS)]
# Numbers that must be finite numbers (an integer is fine, ``true`` and ``.inf`` are not).
SpawnRate = Annotated[float, Strict(), Field(gt=0, le=MAX_SPAWN_RATE, allow_inf_nan=False)]
Weight = Annotated[float, Strict(), Field(gt=0, le=MAX_WEIGHT, allow_inf_nan=False)]
WeightOrZero = Annotated[float, Strict(), Field(ge=0, le=MAX_WEIGHT, allow_inf_nan=False)]
Rate = Annotated[float, Strict(), Field(ge=0, le=1, allow_inf_nan=False)]
Millis = Annotated[float, Strict(), Field(gt=0, le=MAX_MS, allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]


def cpu_count() -> int:
    return os.cpu_count() or 1


def worker_limit() -> int:
    """Workers this machine starts without ``--allow-many-workers``: 4 per CPU."""
    return WORKERS_PER_CPU * cpu_count()


def worker_cap(allowed: bool) -> int | None:
    """Most workers one machine starts: 4 per CPU, None when the user allowed more."""
    return None if allowed else worker_limit()


def too_many_workers(workers: int, allowed: bool) -> str | None:
    """Why ``workers`` is refused on this machine, or None when it is within the cap.

    ``run``, ``ui``, ``stack up`` and profile resolution all ask here, so the rule and its
    message are one.
    """
    cap = worker_cap(allowed)
    if cap is None or workers <= cap:
        return None
    return (
        f"{workers} workers is more than {WORKERS_PER_CPU} per CPU on this machine "
        f"({cap} for {cpu_count()} CPUs); pass --allow-many-workers "
        "(or LOADSTACK_ALLOW_MANY_WORKERS=1) to start them anyway"
    )


def bounded_int(text: str | int, lo: int, hi: int) -> int:
    """An integer from a flag or variable, ``ValueError`` naming the bounds otherwise."""
    if isinstance(text, bool):
        raise ValueError("expected a whole number")
    # Bounded before conversion: Python refuses to convert more than 4300 digits (and a few
    # thousand digits cost quadratic time), so a longer text is out of bounds as text.
    if isinstance(text, str) and len(text.strip().lstrip("+-").lstrip("0")) > max(len(str(lo)), len(str(hi))):
        raise ValueError(f"must be between {lo} and {hi}, got a number of {len(text.strip())} characters")
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ValueError(f"expected a whole number, got {str(text)[:40]!r}") from None
    if not lo <= value <= hi:
        raise ValueError(f"must be between {lo} and {hi}, got {value}")
    return value


def bounded_float(text: str | float, lo: float, hi: float, *, lo_open: bool = False) -> float:
    """A finite number from a flag or variable within ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``)."""
    if isinstance(text, bool):
        raise ValueError("expected a number")
    try:
        value = float(text)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"expected a number, got {str(text)[:40]!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {str(text)[:40]!r}")
    if value < lo or (lo_open and value == lo) or value > hi:
        low = f"> {lo:g}" if lo_open else f">= {lo:g}"
        raise ValueError(f"must be {low} and <= {hi:g}, got {value:g}")
    return value
