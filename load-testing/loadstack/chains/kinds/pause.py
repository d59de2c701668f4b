"""``sleep`` and ``think`` steps: pauses.  ``sleep`` counts in the chain's end-to-end time, ``think`` does not."""

from __future__ import annotations

import time

import gevent

from loadstack.chains.engine import ChainRun
from loadstack.chains.kinds.base import Builder, Step
from loadstack.chains.schema import SleepStepSpec, ThinkSpec, ThinkStepSpec


class SleepStep(Step[SleepStepSpec]):
    kind = "sleep"

    def __init__(self, spec: SleepStepSpec, builder: Builder) -> None:
        super().__init__(spec, builder)
        self.seconds = float(spec.sleep)

    def execute(self, run: ChainRun) -> None:
        gevent.sleep(self.seconds)
        run.done_at[self.name] = time.perf_counter()


class ThinkStep(Step[ThinkStepSpec]):
    """A user's pause; excluded from the chain's end-to-end time."""

    kind = "think"

    def __init__(self, spec: ThinkStepSpec, builder: Builder) -> None:
        super().__init__(spec, builder)
        t = spec.think
        self.range = (t.min, t.max) if isinstance(t, ThinkSpec) else None  # drawn per run, seeded per user
        self.fixed = 0.0 if isinstance(t, ThinkSpec) else float(t)

    def execute(self, run: ChainRun) -> None:
        seconds = run.rt.rng.uniform(*self.range) if self.range is not None else self.fixed
        gevent.sleep(seconds)
        run.think_s += seconds
        run.done_at[self.name] = time.perf_counter()
