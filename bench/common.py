"""Measurement helpers shared by the benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


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


def compare(
    name: str,
    baseline: Callable[[], float],
    candidate: Callable[[], float],
    rounds: int,
    labels: tuple[str, str] = ("bare", "loadstack"),
) -> dict[str, float]:
    """Alternate baseline/candidate ``rounds`` times (so drift hits both) and compare medians."""
    base, cand = [], []
    for _ in range(rounds):
        base.append(baseline())
        cand.append(candidate())
    b, c = statistics.median(base), statistics.median(cand)
    row = {"name": name, labels[0]: b, labels[1]: c, "ratio": c / b if b else float("nan")}
    print(
        f"{name:<28} {labels[0]} {b:>10.0f}/s   {labels[1]} {c:>10.0f}/s   ratio {row['ratio']:.3f}",
        flush=True,
    )
    return row
