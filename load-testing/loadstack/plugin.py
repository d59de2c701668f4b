"""What loadstack adds to a Locust process, wired through Locust's own events.

``loadstack run`` loads ``loadstack/_hooks/loadstack_hooks.py`` next to the
user's locustfile (Locust accepts ``-f a.py,b.py``).  That file calls
:func:`install`, which listens for ``init`` and then, depending on the
process's role:

* every process: apply the profile's user-class weights and wait time;
* workers (and a local runner): attribute each request to its user class and
  ship those stats with Locust's worker report;
* master (and a local runner): warm-up reset, a progress line, and
  ``summary.json`` when the process quits.

Later features (exporter, chains, gates) register here too, so a locustfile
never has to import anything for them to work.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import gevent
from locust import between, events
from locust.env import Environment
from locust.runners import MasterRunner, Runner, WorkerRunner
from locust.stats import RequestStats, StatsEntry

from loadstack import gates, profiles, results, runcontext, shape
from loadstack.inspect import sampling
from loadstack.masking import Masker
from loadstack.metrics import server as metrics_server

log = logging.getLogger("loadstack")
progress_log = logging.getLogger("loadstack.progress")

PROGRESS_INTERVAL_S = float(os.environ.get("LOADSTACK_PROGRESS_INTERVAL", "5"))
GATE_CHECK_INTERVAL_S = 2.0

# Extra summary sections contributed by other features: name -> fn(environment) -> value.
summary_sections: dict[str, Callable[[Environment], Any]] = {}
# Called once per process after loadstack's own setup: fn(environment, role).
init_hooks: list[Callable[[Environment, str], None]] = []

_installed = False


def install(event_hooks: Any = events) -> None:
    """Register loadstack's listeners (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    event_hooks.init.add_listener(_on_init)


def role_of(runner: Runner | None) -> str:
    if isinstance(runner, WorkerRunner):
        return "worker"
    if isinstance(runner, MasterRunner):
        return "master"
    return "local"


def _on_init(environment: Environment, runner: Runner | None = None, **_: Any) -> None:
    ctx = runcontext.current()
    apply_user_settings(environment, ctx.settings)
    role = role_of(runner)
    class_stats = UserClassStats(environment, role)
    environment.loadstack_class_stats = class_stats  # type: ignore[attr-defined]
    metrics_server.install(environment, role)
    if role != "worker":
        observer = RunObserver(environment, ctx, class_stats)
        observer.attach()
        sampler = sampling.start(environment, ctx.settings)
        if sampler is not None:
            observer.sections["queues"] = sampler.summary
    for hook in init_hooks:
        hook(environment, role)


def apply_user_settings(environment: Environment, settings: dict[str, Any]) -> None:
    """Profile ``user_classes`` weights and ``wait_time``.

    A class that names an environment variable in ``weight_env`` (see
    ``mixed_users.py``) keeps the weight that variable gave it.
    """
    weights = settings.get("user_classes") or {}
    wait = settings.get("wait_time")
    for cls in environment.user_classes:
        name = cls.__name__
        env_name = getattr(cls, "weight_env", None)
        if name in weights and not (env_name and os.environ.get(env_name)):
            cls.weight = weights[name]
        if wait:
            cls.wait_time = between(wait["min"], wait["max"])


def _greenlet_user_class() -> str | None:
    """The User running the current greenlet (Locust spawns user greenlets with the user as argument)."""
    args = getattr(gevent.getcurrent(), "args", None)
    return type(args[0]).__name__ if args else None


def _round_ms(ms: float) -> int:
    """Locust's response-time bucketing (exact below 100 ms, then 2 significant digits)."""
    if ms < 100:
        return round(ms)
    if ms < 1000:
        return round(ms, -1)
    if ms < 10000:
        return round(ms, -2)
    return round(ms, -3)


class UserClassStats:
    """Requests aggregated per user class.

    Locust keys its stats by (name, method) only; gates per user class need
    this second view.  On workers (and a local runner) each request costs a few
    dict updates here (this runs on every request, so it stays far lighter than
    Locust's own ``RequestStats.log_request``); the deltas travel with Locust's
    worker report and the master merges them into Locust ``StatsEntry``
    objects, which give percentiles and RPS exactly as Locust computes them.
    """

    REPORT_KEY = "loadstack_user_classes"

    def __init__(self, environment: Environment, role: str) -> None:
        self.stats = RequestStats(use_response_times_cache=False)
        # user class -> [count, failures, total_ms, min_ms, max_ms, total_bytes, {rounded_ms: n}]
        self._pending: dict[str, list] = {}
        ev = environment.events
        if role in ("worker", "local"):
            ev.request.add_listener(self.on_request)
        if role == "worker":
            ev.report_to_master.add_listener(self.on_report_to_master)
        if role == "master":
            ev.worker_report.add_listener(self.on_worker_report)

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response_length: int,
        exception: BaseException | None = None,
        context: dict | None = None,
        **_: Any,
    ) -> None:
        user_class = (context.get("user_class") if context else None) or _greenlet_user_class() or "unknown"
        acc = self._pending.get(user_class)
        if acc is None:
            acc = self._pending[user_class] = [0, 0, 0.0, response_time, response_time, 0, {}]
        acc[0] += 1
        if exception is not None:
            acc[1] += 1
        acc[2] += response_time
        if response_time < acc[3]:
            acc[3] = response_time
        if response_time > acc[4]:
            acc[4] = response_time
        acc[5] += response_length or 0
        bucket = _round_ms(response_time)
        histogram = acc[6]
        histogram[bucket] = histogram.get(bucket, 0) + 1

    def _drain(self) -> list[dict[str, Any]]:
        pending, self._pending = self._pending, {}
        now = time.time()  # requests are at most one report interval old: close enough for RPS
        return [
            {
                "name": cls,
                "count": a[0],
                "failures": a[1],
                "total_ms": a[2],
                "min_ms": a[3],
                "max_ms": a[4],
                "total_bytes": a[5],
                "histogram": a[6],
                "last": now,
            }
            for cls, a in pending.items()
        ]

    def _merge(self, deltas: list[dict[str, Any]]) -> None:
        for d in deltas:
            key = (d["name"], "")
            entry = self.stats.entries.get(key)
            if entry is None:
                entry = self.stats.entries[key] = StatsEntry(self.stats, d["name"], "")
            entry.num_requests += d["count"]
            entry.num_failures += d["failures"]
            entry.total_response_time += d["total_ms"]
            entry.min_response_time = min(entry.min_response_time or d["min_ms"], d["min_ms"])
            entry.max_response_time = max(entry.max_response_time, d["max_ms"])
            entry.total_content_length += d["total_bytes"]
            for bucket, n in d["histogram"].items():
                b = int(bucket)
                entry.response_times[b] = entry.response_times.get(b, 0) + n
            entry.last_request_timestamp = max(entry.last_request_timestamp or 0, d["last"])
            # Locust's total_rps divides by the span of RequestStats.total, not the entry's.
            total = self.stats.total
            total.last_request_timestamp = max(total.last_request_timestamp or 0, d["last"])

    def on_report_to_master(self, client_id: str, data: dict) -> None:
        data[self.REPORT_KEY] = self._drain()

    def on_worker_report(self, client_id: str, data: dict) -> None:
        self._merge(data.get(self.REPORT_KEY, ()))

    def reset(self) -> None:
        self._pending = {}
        self.stats.reset_all()

    def rows(self) -> list[dict[str, Any]]:
        self._merge(self._drain())  # a local runner keeps its own deltas
        return [
            {"user_class": name, **results.entry_figures(entry, histogram=False)}
            for (name, _), entry in sorted(self.stats.entries.items())
            if entry.num_requests
        ]


class RunObserver:
    """Master-side bookkeeping of a run: warm-up, progress, summary."""

    def __init__(
        self, environment: Environment, ctx: runcontext.RunContext, class_stats: UserClassStats
    ) -> None:
        self.env = environment
        self.ctx = ctx
        self.class_stats = class_stats
        self.settings = ctx.settings
        self.started: float | None = None
        self.measured_from: float | None = None
        self.peak_users = 0
        self.peak_workers = 0
        self.end_reason: str | None = None
        self._progress: gevent.Greenlet | None = None
        self._masker = Masker.from_env()
        # Summary sections of this run only (e.g. queue samples): name -> fn() -> value.
        self.sections: dict[str, Callable[[], Any]] = {}

    def attach(self) -> None:
        ev = self.env.events
        ev.test_start.add_listener(self.on_test_start)
        ev.quitting.add_listener(self.on_quitting)
        if self.ctx.run_dir is not None:
            # Under loadstack's runner, SIGINT means "stop now, keep the results".  A gevent signal
            # handler runs in its own greenlet; a bare KeyboardInterrupt can land in any greenlet
            # and be lost, leaving the master running.
            gevent.signal_handler(signal.SIGINT, self.interrupt)

    def interrupt(self) -> None:
        log.info("SIGINT: stopping the test and writing results")
        self.end_reason = "interrupted"
        self.env.runner.quit()
        if self.env.web_ui is not None:
            self.env.web_ui.stop()

    # -- lifecycle -------------------------------------------------------------
    def on_test_start(self, **_: Any) -> None:
        if self.started is not None:
            return  # web UI restarts keep the first start time
        self.started = self.measured_from = time.time()
        self.class_stats.stats.total.start_time = (
            self.started
        )  # RPS per user class counts from the test start
        warmup = float(self.settings.get("warmup") or 0)
        if warmup > 0:
            gevent.spawn_later(warmup, self.end_warmup)
        self._progress = gevent.spawn(self._progress_loop)
        watched = [g for g in self.settings.get("gates") or [] if g.get("abort_on_breach")]
        if watched:
            gevent.spawn(self._watch_gates, watched, warmup)

    def end_warmup(self) -> None:
        self.env.runner.stats.reset_all()
        self.class_stats.reset()
        self.env.events.reset_stats.fire()
        self.measured_from = time.time()
        progress_log.info("warm-up over: stats reset")

    def _watch_gates(self, watched: list[dict[str, Any]], warmup: float) -> None:
        """Live SLO check (``abort_on_breach``): stop the run at the first breach after the gate's grace."""
        while True:
            gevent.sleep(GATE_CHECK_INTERVAL_S)
            elapsed = time.time() - (self.started or time.time())
            due = [g for g in watched if elapsed >= warmup + float(g.get("grace") or 0)]
            if not due:
                continue
            snapshot = self.build_summary(time.time())
            breaches = [r for r in gates.evaluate(due, snapshot) if r["status"] == "fail"]
            if breaches:
                first = breaches[0]
                self.end_reason = f"aborted: SLO breach {first['target']} {first['metric']}"
                log.warning(
                    "SLO gate breached: %s %s = %s (threshold %s); stopping the run",
                    first["target"],
                    first["metric"],
                    first["actual"],
                    first["threshold"],
                )
                self.env.runner.quit()
                if self.env.web_ui is not None:
                    self.env.web_ui.stop()
                return

    def expected_duration(self) -> float | None:
        if self.env.shape_class is not None:
            return profiles.planned_duration(self.settings)
        opts = self.env.parsed_options
        return float(opts.run_time) if opts is not None and opts.run_time else None

    def _progress_loop(self) -> None:
        while True:
            gevent.sleep(PROGRESS_INTERVAL_S)
            self.log_progress()

    def log_progress(self) -> None:
        runner = self.env.runner
        total = self.env.stats.total
        elapsed = time.time() - (self.started or time.time())
        planned = self.expected_duration()
        self.peak_users = max(self.peak_users, runner.user_count)
        workers = getattr(runner, "worker_count", None)
        if workers is not None:
            self.peak_workers = max(self.peak_workers, workers)
        fail_pct = 100.0 * total.num_failures / total.num_requests if total.num_requests else 0.0
        progress_log.info(
            "%s users=%d rps=%.1f requests=%d failures=%d (%.2f%%)%s",
            f"{elapsed:5.0f}s/{planned:.0f}s" if planned else f"{elapsed:5.0f}s",
            runner.user_count,
            total.current_rps,
            total.num_requests,
            total.num_failures,
            fail_pct,
            f" workers={workers}" if workers is not None else "",
        )

    def on_quitting(self, environment: Environment, **_: Any) -> None:
        if self._progress is not None:
            self._progress.kill(block=False)
        if self.started is None or self.ctx.run_dir is None:
            return  # never started, or a plain Locust run without loadstack's runner
        self.write_summary()

    def write_summary(self) -> None:
        summary = self.build_summary(time.time())
        if self.settings.get("gates"):
            summary["gates"] = gates.evaluate(self.settings["gates"], summary)
            summary["verdict"] = gates.verdict(summary["gates"])
        results.write_json(self.ctx.run_dir / "summary.json", self._masker.mask_obj(summary))

    def build_summary(self, ended: float) -> dict[str, Any]:
        runner = self.env.runner
        self.peak_users = max(self.peak_users, runner.user_count)
        extra: dict[str, Any] = {
            "warmup_s": float(self.settings.get("warmup") or 0),
            "users_peak": self.peak_users,
            "workers": self.peak_workers or getattr(runner, "worker_count", 0),
            "end_reason": self.end_reason or self._end_reason(ended),
            "user_classes": self.class_stats.rows(),
        }
        if shape.outcome:
            extra["shape"] = dict(shape.outcome)
        sections: dict[str, Callable[[], Any]] = {
            **{k: (lambda fn=fn: fn(self.env)) for k, fn in summary_sections.items()},
            **self.sections,
        }
        for key, section in sections.items():
            try:
                value = section()
            except Exception as exc:  # one broken section must not cost the whole summary
                log.exception("summary section %s failed", key)
                value = {"error": str(exc)}
            if value is not None:
                extra[key] = value
        return results.build_summary(
            self.env.stats,
            run_id=self.ctx.run_id,
            profile=self.ctx.profile,
            host=self._masker(self.env.host or "") or None,
            started=self.started or ended,
            measured_from=self.measured_from or ended,
            ended=ended,
            extra=extra,
        )

    def _end_reason(self, ended: float) -> str:
        if shape.outcome.get("reason"):
            return str(shape.outcome["reason"])
        planned = self.expected_duration()
        if planned and self.started and ended - self.started < planned - 1:
            return "interrupted"
        return "completed"
