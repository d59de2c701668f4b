"""Measurement helpers shared by the benchmarks."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def throughput(workers: int, duration: float, make_op: Callable[[], Callable[[], object]]) -> float:
    """Operations per second of ``workers`` greenlets, each looping on its own ``make_op()`` for ``duration``."""
    import gevent

    ops = [make_op() for _ in range(workers)]
    for op in ops:
        op()  # connect / warm up outside the timed window (lazy clients connect on first use)
    counts = [0] * workers
    deadline = time.perf_counter() + duration

    def loop(i: int) -> None:
        op, n = ops[i], 0
        while time.perf_counter() < deadline:
            op()
            n += 1
        counts[i] = n

    start = time.perf_counter()
    gevent.joinall([gevent.spawn(loop, i) for i in range(workers)])
    return sum(counts) / (time.perf_counter() - start)


def ab_arguments(description: str | None, argv: list[str] | None) -> argparse.Namespace:
    """The options of a two-sided benchmark run in ABBA rounds inside one Locust process."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=24, help="measured rounds in total, ABBA-ordered")
    return parser.parse_args(argv)


def abba(rounds: int, measure: Callable[[bool], T]) -> tuple[list[T], list[T]]:
    """``measure(True)`` (candidate) and ``measure(False)`` (baseline) in the order C B B C C B B C …

    Rounds are short and mirrored so that drift during the run (the VM's noise, a warming cache)
    hits both sides alike; the results come back as (baseline, candidate) lists.
    """
    baseline: list[T] = []
    candidate: list[T] = []
    for i in range(rounds):
        side = (True, False, False, True)[i % 4]
        (candidate if side else baseline).append(measure(side))
    return baseline, candidate


def verdict(bench: str, what: str, ratio: float, target: float) -> None:
    print(
        f"{bench}: {what} ratio {ratio:.3f} (target >= {target}) -> {'OK' if ratio >= target else 'BELOW TARGET'}"
    )
