"""The chain engine: runs steps in order with data flow, conditions, branches, repeats and failure policies.

Reporting: every step reports itself as a Locust request (``request_type`` =
the step kind, ``name`` = ``chain/step``) and a whole run of the chain is one
more request (``request_type`` ``CHAIN``, ``name`` = the chain, response time
= end-to-end time without ``think`` pauses, failed when the chain stopped on a
failure).  Branch choices and ``when:`` skips are counted by
:mod:`loadstack.chains.metrics`.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from loadstack import replay
from loadstack.chains import metrics
from loadstack.chains.templates import Expression, TemplateError, compile_value, render_value
from loadstack.workload import feeders

if TYPE_CHECKING:
    from loadstack.chains.kinds.base import Step
    from loadstack.chains.runtime import ChainRuntime


class StepFailed(Exception):
    """A step failed; its failure is already reported to Locust."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(message)
        self.step = step
        self.message = message


class Mismatch(Exception):
    """An expectation or check did not hold (raised inside a step's timed operation)."""


def truthy(value: Any) -> bool:
    return bool(value)


@dataclass(frozen=True, slots=True)
class Repeat:
    """A step's ``repeat:``: ``times`` runs, or up to ``limit`` runs while/until an expression holds."""

    times: int | None
    until: Expression | None
    while_: Expression | None
    limit: int


@dataclass(frozen=True, slots=True)
class Goto:
    """``on_failure: {goto: target, max: N}``: jump to ``target``, at most ``max`` times per run."""

    target: str
    max: int | None


OnFailure = Literal["stop", "continue"] | Goto


class ChainRun:
    """One execution of one chain by one user: variables, the last result, step timestamps."""

    def __init__(self, chain: Chain, runtime: ChainRuntime, data: dict[str, Any] | None = None) -> None:
        self.chain = chain
        self.rt = runtime
        self.data = data  # this run's row of the chain's data feeder
        self.vars: dict[str, Any] = {}
        self.last: Any = None
        self.seed: dict[str, Any] | None = runtime.draw_seed() if chain.seed else None
        # `vars:` may hold templates ("{{ faker.uuid4() }}"): fresh values for every run.
        self.vars.update(render_value(chain.defaults, self.scope()) if chain.templated else chain.defaults)
        self.done_at: dict[str, float] = {}
        self.think_s = 0.0

    def scope(self, **extra: Any) -> dict[str, Any]:
        scope = {
            "vars": self.vars,
            "last": self.last,
            "run_id": self.rt.run_id,
            "user": self.rt.identity,
            "seed": self.seed,
            "data": self.data,
            "faker": self.rt.faker,
            "env": replay.ENV,
        }
        scope.update(extra)
        return scope

    def stat_name(self, step: str) -> str:
        return f"{self.chain.name}/{step}"


def run_sequence(steps: list[Step], run: ChainRun) -> None:
    """Run ``steps`` in order; raises :class:`StepFailed` when a failure stops the sequence."""
    gotos: Counter[str] | None = None  # built on the first goto: most runs never jump
    i = 0
    while i < len(steps):
        step = steps[i]
        try:
            run_step(step, run)
        except StepFailed as failure:
            policy = step.on_failure
            if isinstance(policy, Goto):
                gotos = gotos if gotos is not None else Counter()
                gotos[step.name] += 1
                if policy.max is not None and gotos[step.name] > policy.max:
                    raise StepFailed(
                        step.name, f"{failure.message} (gave up after {policy.max} × goto {policy.target})"
                    ) from None
                i = next(n for n, s in enumerate(steps) if s.name == policy.target)
                continue
            if policy == "continue":
                i += 1
                continue
            raise
        i += 1


def run_step(step: Step, run: ChainRun) -> None:
    """``when``, then ``repeat`` around the step's own execution."""
    if step.when is not None and not _holds(step, step.when, run):
        metrics.counters.skipped(run.chain.name, step.name)
        return
    tracing = run.rt.tracing
    if tracing is None:
        _repeat_step(step, run)
    elif step.kind in ("think", "sleep"):  # a pause is an event of the iteration, not a span
        _repeat_step(step, run)
        tracing.event(step.kind, {"loadstack.chain.step": step.name})
    else:
        with tracing.step(run.chain.name, step.name, step.kind):
            _repeat_step(step, run)


def _repeat_step(step: Step, run: ChainRun) -> None:
    repeat = step.repeat
    if repeat is None:
        step.execute(run)
        return
    if repeat.times is not None:
        for _ in range(repeat.times):
            step.execute(run)
        return
    until, while_ = repeat.until, repeat.while_
    for _ in range(repeat.limit):
        if while_ is not None and not _holds(step, while_, run):
            return
        step.execute(run)
        if until is not None and _holds(step, until, run):
            return
    if until is not None:
        raise step.fail(run, f"repeat until `{until.source}` did not hold after {repeat.limit} times")


def _holds(step: Step, expr: Expression, run: ChainRun) -> bool:
    try:
        return truthy(expr(run.scope()))
    except TemplateError as exc:
        raise step.fail(run, str(exc)) from None


def _has_template(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    return getattr(value, "source", None) is not None and ("{{" in value.source or "{%" in value.source)


class Chain:
    """A named sequence of steps; build one from a file (``loaders``) or in Python (``steps``)."""

    def __init__(
        self,
        name: str,
        steps: list[Step],
        *,
        defaults: dict[str, Any] | None = None,
        seed: str | None = None,
        data: str | None = None,
        weight: float = 1.0,
        description: str = "",
        source: str | None = None,
    ) -> None:
        self.name = name
        self.steps = steps
        self.defaults = compile_value(defaults or {})
        self.templated = _has_template(self.defaults)
        if not self.templated:  # plain values, not compiled templates, in every run's scope
            self.defaults = render_value(self.defaults, {})
        self.seed = seed
        self.data = data
        self.weight = weight
        self.description = description
        self.source = source

    def prepare(self, runtime: ChainRuntime) -> None:
        """Once per user before the first run (e.g. bind AMQP taps so no event is missed)."""
        for step in self.walk():
            step.prepare(runtime, self)

    def walk(self) -> list[Step]:
        out: list[Step] = []
        for step in self.steps:
            out.append(step)
            out.extend(step.children())
        return out

    def run(self, runtime: ChainRuntime) -> bool:
        """Run once; report the CHAIN request; True when the chain completed."""
        # A row of the chain's data feeder, held by this run alone (waits while every row is held;
        # a used-up `unique` feeder stops the user).
        row_id, row = feeders.take(self.data) if self.data else (None, None)
        if runtime.tracing is None:
            return self._run(runtime, row_id, row)
        runtime.iterations += 1
        with runtime.tracing.iteration(
            self.name, user_class=type(runtime.user).__name__, number=runtime.iterations
        ):
            return self._run(runtime, row_id, row)

    def _run(self, runtime: ChainRuntime, row_id: Any, row: Any) -> bool:
        start = time.perf_counter()
        error: str | None = None
        try:
            run = ChainRun(self, runtime, row)
            run_sequence(self.steps, run)
        except StepFailed as failure:
            error = f"step {failure.step} failed: {failure.message}"
        except Exception as exc:  # seed draw etc.: the chain fails, the user lives on
            error = f"{type(exc).__name__}: {exc}"
            run = None
        finally:
            if self.data and row_id is not None:
                feeders.give(self.data, row_id)
        elapsed_ms = (time.perf_counter() - start - (run.think_s if run else 0.0)) * 1000.0
        runtime.timed.report(self.name, elapsed_ms, request_type="CHAIN", error=error)
        return error is None

    def __repr__(self) -> str:
        return f"Chain({self.name!r}, {len(self.steps)} steps)"
