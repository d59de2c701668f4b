"""The workload model inside Locust: iterations paced, budgeted and fed, on every process.

An *iteration* is one run of a user's task (a chain user's task runs one chain).
For the user classes the run's :mod:`~loadstack.workload.plan` manages, every
task is wrapped once (:func:`wrap_tasks`) so that before it runs the user

1. waits for its next start time (open model, :mod:`~loadstack.workload.pacing`),
2. takes a permit of each iteration budget it draws from (:mod:`~loadstack.workload.budgets`),

and the iteration is counted (:mod:`~loadstack.workload.counters`).  An open-model
iteration is also timed from its scheduled start (:mod:`~loadstack.workload.intended`).  Open-model
classes get Locust's ``fixed_count`` (their pool) and a zero wait time: the
pacing decides when they start, not the user's own wait.  The master (or a local
runner) answers permit and row requests (:class:`Coordinator`) and ends the run
when every budget is used up or a ``unique`` feeder ran dry.
"""

from __future__ import annotations

import functools
import logging
import random
import time
import weakref
from collections.abc import Callable
from inspect import isclass
from typing import Any

import gevent
from gevent.event import Event
from locust import TaskSet, constant
from locust.env import Environment
from locust.exception import StopUser

from loadstack import retention, runcontext
from loadstack.profiles import RunSettings
from loadstack.workload import budgets, feeders, plan
from loadstack.workload.channel import Client, Server
from loadstack.workload.counters import counters
from loadstack.workload.intended import IntendedLatency
from loadstack.workload.pacing import Arrivals, Pacer

log = logging.getLogger("loadstack.workload")

SWEEP_S = 0.25  # drops counted and shares updated this often
FLUSH_S = 0.5  # finished permits and used rows reported this often
NO_START_S = 0.2  # no start time to claim yet (no share, or the schedule is over): look again
GOLDEN = 0.6180339887


class ClassRuntime:
    """One managed user class on one process."""

    def __init__(self, cplan: plan.ClassPlan, wl: Workload) -> None:
        self.plan = cplan
        self.wl = wl
        self.lanes = {lane.name: lane for lane in cplan.lanes}
        self.exhausted: set[str] = set()
        self.pacer: Pacer | None = None
        if cplan.open:
            phase = (0.5 + GOLDEN * wl.worker_index) % 1.0
            arrivals = [
                Arrivals(lane.name, lane.schedule, phase=phase) for lane in cplan.lanes if lane.schedule
            ]
            self.pacer = Pacer(arrivals, cplan.pool or 1, t0=wl.t0)
        self.changed = Event()  # set when this class's share of the rate changes

    def begin(self, user: Any) -> plan.Lane:
        while True:
            claimed = self._next_lane()
            if claimed is None:
                raise StopUser()  # every lane of this class used its budget up
            lane, due = claimed
            if self._take_permits(lane):
                break
            self._exhaust(lane)
        counters.count(lane.name, "started")
        user._loadstack_chain = lane.chain
        user._loadstack_due = due  # the scheduled start (open model), for the corrected latency
        return lane

    def end(self, user: Any, lane: plan.Lane) -> None:
        user._loadstack_chain = None
        counters.count(lane.name, "finished")
        permits = self.wl.permits
        if permits is not None:
            for scope in lane.scopes:
                permits.finish(scope)

    def _next_lane(self) -> tuple[plan.Lane, float | None] | None:
        """The lane of the next iteration and, in the open model, its scheduled start (epoch s)."""
        live = [lane for lane in self.plan.lanes if lane.name not in self.exhausted]
        if not live:
            return None
        if self.pacer is None:
            return (
                random.choices(live, weights=[lane.weight for lane in live])[0] if len(live) > 1 else live[0]
            ), None
        while True:
            claim = self.pacer.claim(time.time())
            if claim is None:
                if self.pacer.finished:
                    return None
                if not self.pacer.shared:  # the first users of the class: no share yet, take it now
                    self.wl.update_shares()
                    if self.pacer.shared:
                        continue
                self.changed.wait(NO_START_S)
                continue
            due, name, drops = claim
            self.wl.count_drops(drops)
            self.owe_missed()
            delay = due - time.time()
            if delay > 0:
                gevent.sleep(delay)
            return self.lanes[name], due

    def owe_missed(self) -> None:
        """Dropped iterations wait, for the latency from the intended start, until the class's next
        iteration on this process ends (:mod:`~loadstack.workload.intended`)."""
        if self.pacer is not None and (missed := self.pacer.take_missed()):
            self.wl.intended.owe(self.plan.user_class, [(self.lanes[n].chain, due) for n, due in missed])

    def _take_permits(self, lane: plan.Lane) -> bool:
        permits = self.wl.permits
        if permits is None or not lane.scopes:
            return True
        want = max(1, self.wl.users_of(self.plan.user_class))
        taken = []
        for scope in lane.scopes:
            if not permits.take(scope, want):
                for back in taken:
                    permits.untake(back)
                return False
            taken.append(scope)
        return True

    def _exhaust(self, lane: plan.Lane) -> None:
        self.exhausted.add(lane.name)
        if self.pacer is not None:
            self.pacer.close(lane.name)


class Workload:
    """The workload model in one Locust process (see the module docstring)."""

    def __init__(self, environment: Environment, role: str) -> None:
        self.env = environment
        self.role = role
        self.plan = plan.Plan()
        self.run: RunSettings | None = None
        self.classes: dict[str, ClassRuntime] = {}
        self.client = Client(environment) if role in ("worker", "local") else None
        self.permits: budgets.Permits | None = None
        self.feeders: feeders.Feeders | None = None
        self.coordinator: Coordinator | None = None
        self.intended = IntendedLatency()  # latency from the scheduled start (open model)
        self.t0 = time.time()
        self._counts: dict[str, int] = {}  # running users per class on this process (sampled)
        self._greenlets: list[gevent.Greenlet] = []

    @property
    def worker_index(self) -> int:
        return int(getattr(self.env.runner, "worker_index", 0) or 0)

    # -- setting up ---------------------------------------------------------------------------
    def configure(self, run: RunSettings) -> None:
        """Build the plan for ``run`` and apply it to the user classes (init, and when a worker joins)."""
        self.run = run
        names = run.user_class_names()
        classes = [c for c in self.env.user_classes if not names or c.__name__ in names]
        self.plan = plan.build(run, classes, _chains(run))
        for cls in classes:
            cplan = self.plan.classes.get(cls.__name__)
            if cplan is None:
                continue
            wrap_tasks(cls)
            if cplan.open:
                cls.fixed_count = cplan.pool or 1
                cls.wait_time = constant(0)
        if self.client is not None:
            scopes = list(self.plan.budgets)
            self.permits = budgets.Permits(self.client, scopes) if scopes else None
            self.feeders = feeders.Feeders(self.client, dict(run.data)) if run.data else None
            feeders.install(self.feeders)

    def on_test_start(self, **_: Any) -> None:
        opts = self.env.parsed_options
        if self.role in ("master", "local"):
            self.t0 = time.time()
            if opts is not None:
                opts.loadstack_t0 = self.t0  # travels to the workers with every spawn message
            if self.coordinator is not None:
                self.coordinator.start()
        else:
            self.t0 = float(getattr(opts, "loadstack_t0", None) or time.time())
            run = runcontext.current().settings
            if run is not self.run:  # the worker adopted its master's run
                self.configure(run)
        if self.role == "master":
            return
        self.classes = {name: ClassRuntime(cplan, self) for name, cplan in self.plan.classes.items()}
        self._greenlets = [gevent.spawn(self._sweep), gevent.spawn(self._flush)]

    def on_test_stop(self, **_: Any) -> None:
        self.intended.settle_all()
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        self._greenlets = []
        if self.permits is not None:
            self.permits.give_back()
        if self.feeders is not None:
            self.feeders.give_back()

    # -- while running ------------------------------------------------------------------------
    def users_of(self, user_class: str) -> int:
        return int(self._counts.get(user_class, 0))

    def count_drops(self, drops: dict[str, int]) -> None:
        for name, n in drops.items():
            counters.count(name, "dropped", n)

    def update_shares(self) -> None:
        """This process's share of each class's rate, from its running users; count what was dropped."""
        runner = self.env.runner
        self._counts = dict(runner.user_classes_count) if runner is not None else {}
        now = time.time()
        for name, rt in self.classes.items():
            if rt.pacer is None:
                continue
            before = rt.pacer.shares()
            self.count_drops(rt.pacer.update(self._counts.get(name, 0), now))
            rt.owe_missed()
            if rt.pacer.shares() != before:
                rt.changed.set()
                rt.changed = Event()

    def _sweep(self) -> None:
        while True:
            self.update_shares()
            gevent.sleep(SWEEP_S)

    def _flush(self) -> None:
        while True:
            gevent.sleep(FLUSH_S)
            if self.permits is not None:
                self.permits.flush()
            if self.feeders is not None:
                self.feeders.flush()


class Coordinator:
    """Master (or local runner) side: permits, rows, when the run is done, and the summary section."""

    def __init__(self, wl: Workload, run: RunSettings, finish: Callable[[str], None]) -> None:
        self.wl = wl
        self.env = wl.env
        self.finish_run = finish
        self.finished: str | None = None
        runner = self.env.runner
        self.server = Server(self.env)
        self.budgets = budgets.Budgets(
            wl.plan.budgets, lambda: max(1, int(getattr(runner, "worker_count", 1) or 1))
        )
        # A take carries the asker's finished iterations too: the last of them may come that way.
        self.server.handle(budgets.KIND_TAKE, self._checked(self.budgets.take))
        self.server.handle(budgets.KIND_DONE, self._checked(self.budgets.done))
        self.distributor: feeders.Distributor | None = None
        if run.data:
            rows = {name: feeders.load(name, source) for name, source in run.data.items()}
            self.distributor = feeders.Distributor(dict(run.data), rows)
            self.server.handle(feeders.KIND_LEASE, self._checked(self.distributor.lease))
            self.server.handle(feeders.KIND_RETURN, self._checked(self.distributor.give_back))
            for name, pool in self.distributor.pools.items():
                log.info("data feeder %s: %d rows (%s)", name, len(pool.rows), pool.mode)
        # epoch second -> running users, sampled every second; only the changes are kept
        self.users = retention.ChangePoints()
        self._sampler: gevent.Greenlet | None = None

    def start(self) -> None:
        if self._sampler is None:
            self._sampler = gevent.spawn(self._sample_users)

    def _sample_users(self) -> None:
        while True:
            runner = self.env.runner
            self.users.record(int(time.time()), runner.user_count if runner is not None else 0)
            gevent.sleep(1)

    def _checked(self, handler: Callable[[dict[str, Any], str], dict[str, Any]]) -> Any:
        def handle(payload: dict[str, Any], client: str) -> dict[str, Any]:
            reply = handler(payload, client)
            self.check()
            return reply

        return handle

    def check(self) -> None:
        if self.finished:
            return
        reason = None
        if self.wl.plan.budgets and self.wl.plan.bounded and self.budgets.finished():
            reason = "iterations completed"
        elif self.distributor is not None and (used := self.distributor.used_up()):
            reason = f"data exhausted: {', '.join(used)}"
        if reason:
            self.finished = reason
            log.info("workload: %s; stopping the run", reason)
            gevent.spawn(self.finish_run, reason)  # not from inside Locust's message loop

    def dropped(self) -> int | None:
        """``summary.json`` → ``dropped_iterations`` (runs with an arrival rate)."""
        if not any(c.open for c in self.wl.plan.classes.values()):
            return None
        return counters.dropped()

    def section(self) -> dict[str, Any] | None:
        counters.sync()
        scenarios = self.wl.plan.scenarios()
        if not scenarios and self.distributor is None:
            return None
        start = min(self.users, default=None)
        for name, entry in scenarios.items():
            counts = counters.totals.get(name, {})
            rate = counters.steady_rate(name)
            entry.update(
                started=int(counts.get("started", 0)),
                finished=int(counts.get("finished", 0)),
                dropped=int(counts.get("dropped", 0)),
                achieved_rate=round(rate, 3) if rate is not None else None,
            )
        out: dict[str, Any] = {}
        if scenarios:
            models = {e["model"] for e in scenarios.values()}
            out["model"] = models.pop() if len(models) == 1 else "mixed"
            out["scenarios"] = scenarios
            out["dropped_iterations"] = sum(e["dropped"] for e in scenarios.values())
        if self.wl.plan.budgets:
            out["budgets"] = self.budgets.section()
        if self.distributor is not None:
            out["data"] = self.distributor.section()
        if start is not None:
            out["timeline"] = timeline(
                counters.timeline, self.users, start, lambda at: self.target_rate(at - self.wl.t0)
            )
        return out

    def target_rate(self, t: float) -> float | None:
        """The run's target arrival rate ``t`` seconds after the start (None: no arrival rate)."""
        lanes = [lane for c in self.wl.plan.classes.values() for lane in c.lanes if lane.schedule is not None]
        return sum(lane.schedule.rate_at(t) for lane in lanes if lane.schedule) if lanes else None


def timeline(
    seconds: dict[int, Any], users: dict[int, int], start: int, target: Callable[[float], float | None]
) -> list[dict[str, Any]]:  # target: epoch time -> rate
    """Per second since the start (all scenarios): the target rate, iterations started and dropped,
    users running and users busy in an iteration (started and not yet finished)."""
    last = max([*seconds, *users], default=start)
    rows: list[dict[str, Any]] = []
    busy = 0
    for s in range(start, last + 1):
        counts = seconds.get(s) or {}
        started = sum(n for (_, what), n in counts.items() if what == "started")
        finished = sum(n for (_, what), n in counts.items() if what == "finished")
        busy = max(0, busy + started - finished)
        row: dict[str, Any] = {"t": s - start}
        rate = target(s + 0.5)  # the middle of the second (epoch)
        if rate is not None:
            row["target"] = round(rate, 3)
        row.update(
            users=users.get(s, rows[-1]["users"] if rows else 0),
            busy=busy,
            started=started,
            dropped=sum(n for (_, what), n in counts.items() if what == "dropped"),
        )
        rows.append(row)
    return rows


# -- wiring ----------------------------------------------------------------------------------------
_workloads: weakref.WeakKeyDictionary[Environment, Workload] = weakref.WeakKeyDictionary()


def of(environment: Environment) -> Workload | None:
    return _workloads.get(environment)


def install(environment: Environment, role: str, run: RunSettings) -> Workload:
    """Plugin ``init``: the workload model of this process (the master's coordinator comes later)."""
    wl = _workloads[environment] = Workload(environment, role)
    counters.attach(environment, role)
    wl.intended.attach(environment, role)
    wl.configure(run)
    ev = environment.events
    ev.test_start.add_listener(wl.on_test_start)
    if role != "master":
        ev.test_stop.add_listener(wl.on_test_stop)
    return wl


def coordinate(wl: Workload, run: RunSettings, finish: Callable[[str], None]) -> Coordinator:
    """Master (or local runner): answer the workers and decide when the iterations are done."""
    wl.coordinator = Coordinator(wl, run, finish)
    return wl.coordinator


def add_arguments(parser: Any, **_: Any) -> None:
    """How the master's test start time reaches the workers (Locust's custom-argument channel)."""
    import argparse

    parser.add_argument(
        "--loadstack-t0", type=float, default=None, help=argparse.SUPPRESS, include_in_web_ui=False
    )


def wrap_tasks(cls: type) -> None:
    """Make every task of ``cls`` one managed iteration (idempotent; Locust's tags and weights are kept)."""
    wrapped: dict[Any, Any] = {}
    tasks = []
    for task in cls.tasks:
        if getattr(task, "_loadstack_iteration", False) or (isclass(task) and issubclass(task, TaskSet)):
            tasks.append(task)  # already an iteration; a nested TaskSet runs as Locust runs it
            continue
        if task not in wrapped:
            wrapped[task] = _iteration(task)
        tasks.append(wrapped[task])
    cls.tasks = tasks


def _iteration(task: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(task)
    def iteration(user: Any, *args: Any, **kwargs: Any) -> Any:
        wl = _workloads.get(user.environment)
        rt = wl.classes.get(type(user).__name__) if wl is not None else None
        if rt is None:
            return task(user, *args, **kwargs)
        lane = rt.begin(user)
        due = getattr(user, "_loadstack_due", None)
        timing = wl.intended.begin(due) if due is not None else None
        try:
            return task(user, *args, **kwargs)
        finally:
            if timing is not None:
                wl.intended.end(timing, type(user).__name__)
            rt.end(user, lane)

    iteration._loadstack_iteration = True  # type: ignore[attr-defined]
    return iteration


def chosen_chain(user: Any) -> str | None:
    """The chain the current iteration of a chain user is for (its lane), if the workload picked one."""
    return getattr(user, "_loadstack_chain", None)


def _chains(run: RunSettings) -> list[Any]:
    if not any(ref.rate or ref.iterations for ref in run.chains or []):
        return []
    from loadstack.chains.user import configured_chains

    return configured_chains()


class Exporter:
    """``/metrics``: iterations started, finished and dropped per scenario (a Prometheus collector)."""

    def __init__(self, run_id: str, profile: str) -> None:
        self.run = [run_id, profile]

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily

        base = ["run_id", "profile", "scenario"]
        iterations = CounterMetricFamily(
            "loadstack_iterations", "Iterations by outcome (started, finished)", labels=[*base, "outcome"]
        )
        dropped = CounterMetricFamily(
            "loadstack_dropped_iterations",
            "Iterations an arrival rate called for that no free user could start",
            labels=base,
        )
        counters.sync()
        for scenario, counts in sorted(counters.lifetime.items()):
            for outcome in ("started", "finished"):
                iterations.add_metric([*self.run, scenario, outcome], counts.get(outcome, 0))
            dropped.add_metric([*self.run, scenario], counts.get("dropped", 0))
        yield iterations
        yield dropped
