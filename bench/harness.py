"""The benchmarks' method: CPU cost per operation, pinned cores, alternating rounds, stated spread.

Throughput of a saturated generator moves with every scheduling hiccup of a shared machine; the
CPU time the OS charges to the generator for each operation does not, or far less.  So every
benchmark measures, per round and per variant, the operations done and the user+sys CPU seconds
of the generator process(es), and derives from them:

* the cost per operation in µs (primary figure), and throughput (secondary);
* per round, the extra µs/op of the candidate over the baseline and the ratio of their costs.

Rounds alternate the order of the variants (A B, B A, A B, …) so drift hits every side alike.
Each figure is the median over the rounds with its min–max, and a verdict is given only when the
whole min–max interval lies on one side of the target; otherwise it is ``UNRESOLVED``.

Pure logic, no Locust or gevent import: the harness is unit-tested in an ordinary process.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

OK, BELOW, ABOVE, UNRESOLVED = "OK", "BELOW TARGET", "ABOVE TARGET", "UNRESOLVED"
MIN_ROUNDS = 5

# Figures reported during this process, for ``python -m bench --json FILE``.
RESULTS: list[dict[str, Any]] = []


# -- cost accounting -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Unit:
    """What a :class:`Sample`'s ``cost`` counts: CPU seconds, or millions of instructions."""

    per_op: str  # the per-operation figure's name, e.g. "CPU µs"
    short: str  # its unit, e.g. "µs"
    spec: str  # how a per-op figure prints


CPU = Unit("CPU µs", "µs", ".2f")
INSTRUCTIONS = Unit("instructions", "instr", ",.0f")


def cost_unit() -> Unit:
    """INSTRUCTIONS when this process runs under ``--count instructions``, else CPU."""
    from bench.instructions import counter

    return INSTRUCTIONS if counter() is not None else CPU


def own_cost() -> float:
    """This process's cost so far in :func:`cost_unit`'s terms (seconds, or millions of instructions)."""
    from bench.instructions import counter

    count = counter()
    return count.read() / 1e6 if count is not None else own_cpu_seconds()


def own_cpu_seconds() -> float:
    """user+sys CPU seconds of this process, all threads (``getrusage``: µs resolution)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds(pids: Iterable[int] | None = None) -> float:
    """user+sys CPU seconds of this process (``pids`` None) or the sum over other processes.

    Another process's times come from ``psutil`` (``/proc/PID/stat``, clock-tick resolution,
    10 ms on Linux), which is why rounds that measure child processes last several seconds.
    """
    if pids is None:
        return own_cpu_seconds()
    import psutil

    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


@dataclass(frozen=True)
class Sample:
    """One measured window of one variant: ``cost`` is CPU seconds, or millions of instructions
    under ``--count instructions``, so ``per_op`` is CPU µs or instructions per operation."""

    ops: int
    cost: float
    wall_s: float

    @property
    def per_op(self) -> float:
        return self.cost * 1e6 / self.ops if self.ops else float("inf")

    @property
    def rate(self) -> float:
        """Operations per wall-clock second."""
        return self.ops / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_share(self) -> float:
        """CPU seconds per wall second (1.0 = one core saturated); CPU samples only."""
        return self.cost / self.wall_s if self.wall_s else 0.0


def settle_heap() -> None:
    """Collect garbage and freeze what survives: a later full collection then scans only what
    was allocated since, instead of the whole heap of set-up objects in one round's cost."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class Meter:
    """Start a window, do the work, ``stop(ops)``: a :class:`Sample` of what it cost.

    Without ``pids``: this process, in :func:`cost_unit`'s terms; with ``pids``: their CPU seconds."""

    def __init__(self, pids: Sequence[int] | None = None, clock: Callable[[], float] | None = None) -> None:
        self.pids = list(pids) if pids is not None else None
        self._clock = clock or (own_cost if self.pids is None else lambda: cpu_seconds(self.pids))
        self._cpu0 = self._wall0 = 0.0

    def start(self, settle: bool = True) -> Meter:
        """Begin the window; ``settle`` first collects garbage and freezes what survives, so a
        full collection of objects left over from set-up does not land in one round's cost."""
        if settle and self.pids is None:
            settle_heap()
        self._wall0 = time.perf_counter()
        self._cpu0 = self._clock()
        return self

    def stop(self, ops: int) -> Sample:
        cost = self._clock() - self._cpu0
        return Sample(ops=ops, cost=cost, wall_s=time.perf_counter() - self._wall0)


# -- rounds ---------------------------------------------------------------------------------------
def alternating(rounds: int, variants: Sequence[str]) -> list[list[str]]:
    """The order of the variants in each round: forward, backward, forward, … (ABBA for two)."""
    return [list(variants) if i % 2 == 0 else list(reversed(variants)) for i in range(rounds)]


def run_rounds(
    rounds: int, variants: Sequence[str], measure: Callable[[str], Sample], *, warmup: int = 1
) -> dict[str, list[Sample]]:
    """``measure(variant)`` once per variant per round, in alternating order; samples by variant.

    ``warmup`` rounds go first and are dropped: first-use costs (imports, pools, caches) would
    otherwise land in one side's first round."""
    for _ in range(warmup):
        for variant in variants:
            measure(variant)
    samples: dict[str, list[Sample]] = {v: [] for v in variants}
    for order in alternating(rounds, variants):
        for variant in order:
            samples[variant].append(measure(variant))
    return samples


# -- spread and verdicts -------------------------------------------------------------------------
@dataclass(frozen=True)
class Spread:
    """Median of a figure over the rounds, with its min and max."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread:
        vals = list(values)
        if not vals:
            raise ValueError("no values")
        return cls(statistics.median(vals), min(vals), max(vals), len(vals))

    def format(self, spec: str = ".1f", unit: str = "") -> str:
        return f"{self.median:{spec}}{unit} ({self.low:{spec}}–{self.high:{spec}})"


@dataclass(frozen=True)
class Target:
    """``value`` the figure must reach (``at_least``) or stay under (``not at_least``)."""

    value: float
    at_least: bool = True

    def __str__(self) -> str:
        return f"{'>=' if self.at_least else '<'} {self.value:g}"


def verdict(spread: Spread, target: Target) -> str:
    """OK / BELOW TARGET (ABOVE TARGET for a ceiling) only when all of min–max is on one side."""
    if target.at_least:
        if spread.low >= target.value:
            return OK
        if spread.high < target.value:
            return BELOW
    else:
        if spread.high < target.value:
            return OK
        if spread.low >= target.value:
            return ABOVE
    return UNRESOLVED


def verdict_text(spread: Spread, target: Target, rounds: int) -> str:
    result = verdict(spread, target)
    if result == UNRESOLVED:
        return f"{result} (min–max straddles the target; run more rounds: --rounds {max(2 * rounds, 10)})"
    return result


@dataclass
class Comparison:
    """A candidate against a baseline, round by round (rounds pair up in measurement order)."""

    baseline: list[Sample]
    candidate: list[Sample]
    extra: Spread = field(init=False)  # candidate's per-op cost minus the baseline's
    ratio: Spread = field(init=False)  # baseline's per-op cost / candidate's

    def __post_init__(self) -> None:
        pairs = list(zip(self.baseline, self.candidate, strict=True))
        self.extra = Spread.of(c.per_op - b.per_op for b, c in pairs)
        self.ratio = Spread.of(b.per_op / c.per_op for b, c in pairs)


def cost(samples: Sequence[Sample]) -> Spread:
    return Spread.of(s.per_op for s in samples)


def rate(samples: Sequence[Sample]) -> Spread:
    return Spread.of(s.rate for s in samples)


# -- reporting ------------------------------------------------------------------------------------
def record(bench: str, figure: str, spread: Spread, target: Target | None = None, **extra: Any) -> str | None:
    """Keep a figure for ``--json`` and return its verdict (None without a target)."""
    result = verdict(spread, target) if target is not None else None
    RESULTS.append(
        {
            "bench": bench,
            "figure": figure,
            **asdict(spread),
            "target": str(target) if target is not None else None,
            "verdict": result,
            **extra,
        }
    )
    return result


def print_comparison(
    bench: str,
    name: str,
    samples: dict[str, list[Sample]],
    baseline: str,
    candidates: Sequence[str],
    *,
    target: Target | None = None,
    judged: str | None = None,
    unit: str = "op",
) -> dict[str, Comparison]:
    """Print one block: cost per op (primary), extra per op, ratio, throughput; verdict on
    ``judged``'s ratio.  The cost is CPU µs, or instructions under ``--count instructions``."""
    rounds = len(samples[baseline])
    width = max(len(v) for v in samples)
    u = cost_unit()
    per = f"{u.short}/{unit}"
    print(
        f"  {name}"
        + (" (instructions counted by callgrind; op/s is meaningless here)" if u is INSTRUCTIONS else "")
    )
    print(
        f"    {'variant':<{width}}  {u.per_op + '/' + unit + ' (min–max)':>30}  {'extra ' + per:>26}"
        f"  {'ratio base/this':>22}  {unit + '/s':>10}"
    )
    comparisons: dict[str, Comparison] = {}
    c = cost(samples[baseline])
    print(
        f"    {baseline:<{width}}  {c.format(u.spec):>30}  {'':>26}  {'':>22}  {rate(samples[baseline]).median:>10,.0f}"
    )
    record(bench, f"{name}: {baseline} {per}", c, count=u.per_op)
    for cand in candidates:
        comp = comparisons[cand] = Comparison(samples[baseline], samples[cand])
        c = cost(samples[cand])
        print(
            f"    {cand:<{width}}  {c.format(u.spec):>30}  {comp.extra.format('+' + u.spec):>26}"
            f"  {comp.ratio.format('.3f'):>22}  {rate(samples[cand]).median:>10,.0f}"
        )
        record(bench, f"{name}: {cand} {per}", c, count=u.per_op)
        record(bench, f"{name}: {cand} extra {per}", comp.extra, count=u.per_op)
        record(
            bench,
            f"{name}: {cand} ratio",
            comp.ratio,
            target if cand == judged else None,
            rate=rate(samples[cand]).median,
            count=u.per_op,
        )
    if target is not None and judged is not None:
        r = comparisons[judged].ratio
        print(
            f"    -> {judged} ratio of {u.per_op} {r.format('.3f')} target {target}: "
            f"{verdict_text(r, target, rounds)}",
            flush=True,
        )
    return comparisons


def print_figure(
    bench: str, name: str, spread: Spread, target: Target | None, *, spec: str = ".1f", unit: str = ""
) -> str | None:
    """One figure with its spread and (if given) its verdict."""
    result = record(bench, name, spread, target, unit=unit)
    tail = f"  target {target}{unit}: {verdict_text(spread, target, spread.n)}" if target is not None else ""
    print(f"    {name}: {spread.format(spec, unit)}{tail}", flush=True)
    return result


def write_results(path: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(RESULTS, fh, indent=1)


def machine_load() -> str:
    """The 1-minute load average against the cores: says whether the machine was busy.

    A bench itself keeps about one core busy (generator and server), so only a load above the
    number of cores counts as busy: other processes then compete for the cores."""
    try:
        with open("/proc/loadavg", encoding="ascii") as fh:
            one = float(fh.read().split()[0])
    except OSError:
        return "load average unknown"
    cores = os.cpu_count() or 1
    busy = "busy" if one > cores else "quiet"
    return f"load average {one:.2f} on {cores} cores ({busy})"


@dataclass(frozen=True)
class Rest:
    """What the rest of the machine did over a window: other processes' CPU and the
    hypervisor's steal, in cores (1.0 = one core busy), and the busiest other processes."""

    others: float
    steal: float
    busiest: list[str]

    def text(self) -> str:
        top = f" ({', '.join(self.busiest)})" if self.busiest else ""
        return f"rest of the machine {self.others:.0%} of a core{top}, steal {self.steal:.0%}"


class RestMeter:
    """Start with the processes the window is about; ``stop()`` says what everything else did."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = set(pids)

    @staticmethod
    def _per_process() -> dict[tuple[int, str], float]:
        import psutil

        seen = {}
        for proc in psutil.process_iter(["name", "cpu_times"]):
            times = proc.info["cpu_times"]
            if times is not None:
                seen[(proc.pid, proc.info["name"] or "?")] = times.user + times.system
        return seen

    def start(self) -> RestMeter:
        import psutil

        self._procs = self._per_process()
        self._machine = psutil.cpu_times()
        self._wall = time.perf_counter()
        return self

    def stop(self) -> Rest:
        import psutil

        machine, procs = psutil.cpu_times(), self._per_process()
        wall = max(time.perf_counter() - self._wall, 1e-9)
        used = {
            key: seconds - self._procs.get(key, 0.0)
            for key, seconds in procs.items()
            if key[0] not in self.pids and key[0] != os.getpid()
        }
        busiest = sorted(
            ((s, pid, name) for (pid, name), s in used.items() if s / wall >= 0.05), reverse=True
        )
        steal = getattr(machine, "steal", 0.0) - getattr(self._machine, "steal", 0.0)
        return Rest(
            others=sum(s for s in used.values() if s > 0) / wall,
            steal=steal / wall,
            busiest=[f"{name}[{pid}] {s / wall:.0%}" for s, pid, name in busiest[:3]],
        )


def print_machine(bench: str, when: str) -> None:
    text = machine_load()
    RESULTS.append({"bench": bench, "figure": f"machine {when}", "note": text})
    print(f"{bench}: machine {when}: {text}", flush=True)


# -- pinning ---------------------------------------------------------------------------------------
def plan_cores(available: Iterable[int]) -> tuple[set[int], set[int]] | None:
    """(generator cores, system-under-test cores): the last core for the generator, the rest for
    the system under test; None on a single core (nothing to separate)."""
    cores = sorted(available)
    if len(cores) < 2:
        return None
    return {cores[-1]}, set(cores[:-1])


def cores_text(cores: Iterable[int]) -> str:
    return "cpu " + ",".join(str(c) for c in sorted(cores))


class Pinning:
    """Pin processes (all their threads) to cores, remember what they had, put it back on ``restore``."""

    def __init__(self) -> None:
        self.plan = plan_cores(os.sched_getaffinity(0))
        self._saved: dict[int, set[int]] = {}
        # Roots pinned with their children: a child forked while pinned inherits the pin, so
        # restore() gives every current child its root's original cores.
        self._trees: dict[int, set[int]] = {}
        self.lines: list[str] = []

    @property
    def generator(self) -> set[int] | None:
        return self.plan[0] if self.plan else None

    @property
    def sut(self) -> set[int] | None:
        return self.plan[1] if self.plan else None

    def _set(self, tid: int, cores: set[int]) -> None:
        try:
            if tid not in self._saved:
                self._saved[tid] = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, cores)
        except (ProcessLookupError, PermissionError, OSError):
            pass  # a thread that ended meanwhile, or a process we may not touch

    def pin(self, label: str, pid: int, cores: set[int] | None, *, tree: bool = False) -> None:
        """Pin ``pid`` (every thread; with ``tree`` its children too) and note it for the printout."""
        if cores is None:
            self.lines.append(f"{label} (pid {pid}): not pinned (single core)")
            return
        import psutil

        try:
            procs = [psutil.Process(pid)]
            if tree:
                self._trees.setdefault(pid, os.sched_getaffinity(pid))
                procs += procs[0].children(recursive=True)
            for proc in procs:
                for thread in proc.threads():
                    self._set(thread.id, cores)
        except psutil.Error as exc:
            self.lines.append(f"{label} (pid {pid}): not pinned ({type(exc).__name__})")
            return
        self.lines.append(f"{label} (pid {pid}) -> {cores_text(cores)}")

    def pin_self(self, label: str = "generator (this process)") -> None:
        self.pin(label, os.getpid(), self.generator)

    def note(self, line: str) -> None:
        self.lines.append(line)

    def restore(self) -> None:
        import psutil

        for root, cores in self._trees.items():
            try:
                children = psutil.Process(root).children(recursive=True)
                for proc in children:
                    for thread in proc.threads():
                        if thread.id not in self._saved:
                            self._saved[thread.id] = cores
            except psutil.Error:
                pass
        for tid, cores in self._saved.items():
            try:
                os.sched_setaffinity(tid, cores)
            except OSError:
                pass
        self._saved.clear()
        self._trees.clear()

    def report(self, bench: str) -> None:
        print(f"{bench}: pinning: " + "; ".join(self.lines or ["none"]), flush=True)


def listening_pid(port: int) -> int | None:
    """The process listening on local TCP ``port`` (to pin a shared service), or None."""
    import psutil

    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return conn.pid
    except psutil.Error:
        return None
    return None
