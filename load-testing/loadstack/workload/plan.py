"""What each user class of a run does under the workload model: its pool, arrival processes, budgets.

Built the same way in every Locust process from the run's settings and the
locustfile's user classes, so the master and every worker agree on it without
talking.  A profile-wide ``rate`` (or rate stages / a rate breakpoint) and its
``max_users`` pool are split between the run's user classes by weight; a class
with its own ``rate`` in ``user_classes`` keeps its own; chains with a ``rate``
or ``iterations`` become arrival processes ("lanes") of the chain user class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from loadstack.profiles import RunSettings
from loadstack.workload.rates import Schedule, Segment

RUN_SCOPE = "run"


class PlanError(ValueError):
    """A workload the run's user classes cannot carry out (exit status 2 at start)."""


def scaled(schedule: Schedule, factor: float) -> Schedule:
    return Schedule([Segment(s.start, s.end, s.r0 * factor, s.r1 * factor) for s in schedule.segments])


@dataclass(frozen=True)
class Lane:
    """One kind of iteration of a user class: the class's own tasks, or one chain."""

    name: str  # the scenario's name in summary.json: the class, or the chain
    weight: float = 1.0
    schedule: Schedule | None = None  # None: closed model (the user's own wait time paces it)
    scopes: tuple[str, ...] = ()  # iteration budgets this lane draws from
    chain: str | None = None  # the chain's name, for chain lanes


@dataclass
class ClassPlan:
    user_class: str
    lanes: list[Lane]
    pool: int | None = None  # open model: this many users (Locust's fixed_count)

    @property
    def open(self) -> bool:
        return any(lane.schedule is not None for lane in self.lanes)


@dataclass
class Plan:
    classes: dict[str, ClassPlan] = field(default_factory=dict)
    budgets: dict[str, int] = field(default_factory=dict)
    unmanaged: list[str] = field(default_factory=list)  # classes of the run the model leaves alone

    @property
    def bounded(self) -> bool:
        """Every iteration of the run draws from a budget: the run ends when they are used up."""
        return (
            bool(self.classes)
            and not self.unmanaged
            and all(lane.scopes for plan in self.classes.values() for lane in plan.lanes)
        )

    def scenarios(self) -> dict[str, dict[str, Any]]:
        """The targets, as the summary shows them next to what was achieved."""
        out: dict[str, dict[str, Any]] = {}
        for plan in self.classes.values():
            for lane in plan.lanes:
                entry: dict[str, Any] = {"user_class": plan.user_class}
                if lane.chain:
                    entry["chain"] = lane.chain
                if lane.schedule is not None:
                    segs = lane.schedule.segments
                    entry["model"] = "open"
                    entry["target_rate"] = round(segs[0].r0, 6) if len(segs) == 1 else None
                    entry["pool"] = plan.pool
                else:
                    entry["model"] = "closed"
                if lane.scopes:
                    entry["budgets"] = list(lane.scopes)
                out[lane.name] = entry
        return out


def _split(total: int, weights: dict[str, float]) -> dict[str, int]:
    """``total`` users over classes by weight (largest remainder), each at least one."""
    names = [n for n, w in weights.items() if w > 0]
    if total < len(names):
        raise PlanError(
            f"max_users: {total} users cannot serve {len(names)} user classes ({', '.join(names)}); "
            f"give at least {len(names)}"
        )
    wsum = sum(weights[n] for n in names)
    exact = {n: total * weights[n] / wsum for n in names}
    out = {n: max(1, math.floor(exact[n])) for n in names}
    for n in sorted(names, key=lambda n: exact[n] - math.floor(exact[n]), reverse=True):
        if sum(out.values()) >= total:
            break
        out[n] += 1
    while sum(out.values()) > total:  # the minimum of one pushed it over: take from the largest
        largest = max(names, key=lambda n: out[n])
        out[largest] -= 1
    return out


def build(run: RunSettings, classes: list[Any], chains: list[Any] | None = None) -> Plan:
    """The plan for ``classes`` (the run's Locust user classes) and the run's loaded ``chains``."""
    plan = Plan()
    weights = {
        c.__name__: float((run.user_classes or {}).get(c.__name__, getattr(c, "weight", 1))) for c in classes
    }
    workloads = run.class_workloads or {}
    schedule = run.schedule()
    pools = _split(run.users, weights) if schedule is not None else {}
    wsum = sum(w for w in weights.values() if w > 0) or 1.0
    if run.iterations:
        plan.budgets[RUN_SCOPE] = run.iterations
    chain_lanes = _chain_lanes(run, chains or [], plan)
    for cls in classes:
        name = cls.__name__
        own = workloads.get(name)
        scopes = (RUN_SCOPE,) if run.iterations else ()
        if own and own.iterations:
            plan.budgets[name] = own.iterations
            scopes += (name,)
        class_schedule = None
        pool = None
        if schedule is not None and weights[name] > 0:
            class_schedule, pool = scaled(schedule, weights[name] / wsum), pools[name]
        elif own and own.rate:
            class_schedule, pool = Schedule.constant(own.rate), own.max_users
        lanes: list[Lane] = []
        if chain_lanes and _runs_chains(cls):
            lanes = _with_class(chain_lanes, class_schedule, scopes)
            if any(lane.schedule is not None for lane in lanes) and pool is None:
                pool = run.users
        elif class_schedule is not None or scopes:
            lanes = [Lane(name, schedule=class_schedule, scopes=scopes)]
        if lanes:
            plan.classes[name] = ClassPlan(name, lanes, pool)
        else:
            plan.unmanaged.append(name)
    return plan


def _runs_chains(cls: Any) -> bool:
    from loadstack.chains.user import ChainUser

    return isinstance(cls, type) and issubclass(cls, ChainUser)


def _chain_lanes(run: RunSettings, chains: list[Any], plan: Plan) -> list[Lane]:
    """Lanes for the run's chains when any of them has its own rate or budget."""
    refs = {ref.path: ref for ref in run.chains or []}
    if not any(ref.rate or ref.iterations for ref in refs.values()):
        return []
    lanes = []
    for chain in chains:
        ref = refs.get(str(chain.source))
        rate = ref.rate if ref else None
        scopes: tuple[str, ...] = ()
        if ref and ref.iterations:
            scope = f"chain:{chain.name}"
            plan.budgets[scope] = ref.iterations
            scopes = (scope,)
        lanes.append(
            Lane(
                chain.name,
                weight=chain.weight,
                schedule=Schedule.constant(rate) if rate else None,
                scopes=scopes,
                chain=chain.name,
            )
        )
    return lanes


def _with_class(lanes: list[Lane], class_schedule: Schedule | None, scopes: tuple[str, ...]) -> list[Lane]:
    """Chain lanes of one class: chains without a rate share the class's rate by chain weight."""
    rest = [lane for lane in lanes if lane.schedule is None]
    rest_weight = sum(lane.weight for lane in rest) or 1.0
    out = []
    for lane in lanes:
        schedule = lane.schedule
        if schedule is None and class_schedule is not None:
            schedule = scaled(class_schedule, lane.weight / rest_weight)
        out.append(Lane(lane.name, lane.weight, schedule, scopes + lane.scopes, lane.chain))
    return out
