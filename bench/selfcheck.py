"""The harness measuring a known cost: a 20 µs CPU busy-wait per operation, added on one side.

This is a timing claim, so it lives here and not in the test suite: on a busy machine a
CPU-time measurement still moves by more than any fixed tolerance (23.1 µs was measured for
this 20 µs with two CPU-bound processes beside it).  The bench prints the measured extra cost
against the known one as a ratio, with its min–max over the rounds, and judges it like every
other bench figure: a verdict only when all of min–max lies on one side of 0.85 or 1.15.
"""

from __future__ import annotations

import argparse
import time

from bench import harness
from bench.harness import OK, UNRESOLVED, Comparison, Meter, Sample, Spread, Target, run_rounds

EXTRA_US = 20.0
OPS = 3000
LOW, HIGH = Target(0.85), Target(1.15, at_least=False)


def busy_wait(us: float) -> None:
    """Spend ``us`` µs of this thread's CPU time (not wall time: a preemption must not count)."""
    end = time.thread_time() + us / 1e6
    while time.thread_time() < end:
        pass


def workload(extra: bool, ops: int = OPS) -> Sample:
    """A base operation (some arithmetic), plus a 20 µs busy-wait per op on the candidate side."""
    meter = Meter().start()
    acc = 0
    for i in range(ops):
        for j in range(40):
            acc += i * j
        if extra:
            busy_wait(EXTRA_US)
    return meter.stop(ops)


def measure(rounds: int) -> Comparison:
    samples = run_rounds(rounds, ["bare", "extra"], lambda v: workload(v == "extra"))
    return Comparison(samples["bare"], samples["extra"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6, help="rounds (ABBA), >= 2")
    args, _ = parser.parse_known_args(argv)
    if args.rounds < 2:
        parser.error("--rounds must be at least 2")
    comparison = measure(args.rounds)
    ratio = Spread(*(v / EXTRA_US for v in (comparison.extra.median, comparison.extra.low, comparison.extra.high)),
                   comparison.extra.n)  # fmt: skip
    print(
        f"selfcheck: a known {EXTRA_US:g} µs of CPU per operation, {args.rounds} rounds of {OPS:,} ops per side"
    )
    print(f"    extra CPU per op measured: {comparison.extra.format('.2f', ' µs')}")
    print(
        f"    measured / known extra cost: {ratio.format('.3f')}  target 0.85–1.15: {judge(ratio)}",
        flush=True,
    )


def judge(ratio: Spread) -> str:
    """OK when all of min–max is inside 0.85–1.15; BELOW/ABOVE when all of it is out on one side."""
    verdicts = {harness.verdict(ratio, LOW), harness.verdict(ratio, HIGH)}
    result = OK if verdicts == {OK} else next((v for v in verdicts if v not in (OK, UNRESOLVED)), UNRESOLVED)
    harness.RESULTS.append({"bench": "selfcheck", "figure": "measured / known extra cost", **vars(ratio),
                            "target": "0.85–1.15", "verdict": result})  # fmt: skip
    return result
