"""What a run means, decided inside the Locust master (or a local runner).

However the master was started (``loadstack run``, ``loadstack master``, plain
``locust --master`` or ``locust --headless``, a container, a Kubernetes Job),
this is the one place where a run is checked, seeded, watched, judged and torn
down, so the exit status and ``summary.json`` are the same for every launcher:

``init``        check the inputs (exit 2) → results directory and metadata →
                auth start-up check (exit 2) → seed (exit 1 if it fails)
``test_start``  progress line, warm-up reset, live SLO gates, queue sampling,
                worker health
``quitting``    summary → gates → teardown → ``summary.json``/``summary.csv``/``junit.xml``,
                history, ``results/latest``, the report lines → exit status
                (``environment.process_exit_code``)

Workers do none of this.  They join the master's run through Locust's own
channel for custom arguments: the master sets ``--loadstack-run-id`` and
``--loadstack-run`` in its options, Locust sends them with every spawn
message, and a worker adopts them before its users start (:func:`join`).
"""

from __future__ import annotations

import atexit
import logging
import shlex
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import gevent
from locust.env import Environment
from locust.runners import STATE_STOPPED
from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter

from loadstack import (
    auth,
    checks,
    exitcodes,
    gates,
    generator_health,
    junit,
    masking,
    results,
    retention,
    settings,
    target_ready,
)
from loadstack.auth import preflight
from loadstack.data import seed, teardown
from loadstack.report import history, svg
from loadstack.runcontext import RunContext
from loadstack.shape import ProfileShape
from loadstack.user_classes import UserClassStats
from loadstack.workload import intended

T = TypeVar("T")
log = logging.getLogger("loadstack")
progress_log = logging.getLogger("loadstack.progress")
report_log = logging.getLogger("loadstack.report")

GATE_CHECK_INTERVAL_S = 2.0
MAX_EXCEPTION_KINDS = 20  # distinct tracebacks listed in summary.json (all of them are counted)
WORKER_CHECK_INTERVAL_S = 0.5
# Environment variables worth recording in run-metadata.json (masked).
RECORDED_ENV_PREFIXES = ("LOADSTACK_", "LOCUST_", "AUTH_")


class RunMaster:
    """The master-side lifecycle of one run (see the module docstring)."""

    def __init__(
        self,
        environment: Environment,
        ctx: RunContext,
        class_stats: UserClassStats,
        sections: dict[str, Callable[[], Any]],
    ) -> None:
        self.env = environment
        self.ctx = ctx
        self.run = ctx.settings
        self.config = settings.current()
        self.class_stats = class_stats
        # Extra summary sections (chains, queue samples): name -> fn() -> value.
        self.sections = sections
        self.masker = masking.current()
        self.started: float | None = None
        self.measured_from: float | None = None
        self.peak_users = 0
        self.peak_workers = 0
        self.end_reason: str | None = None
        self.interrupted = False
        self.extra: dict[str, Any] = {}
        self.missing_workers: dict[str, float] = {}
        self.worker_users: dict[str, int] = {}  # each worker's users when last seen healthy
        self.users_lost: dict[str, int] = {}  # a missing worker's users at the time
        self.users_back: dict[str, float] = {}  # when the user count was back at its target
        self._quit_done = False
        self._initialised = False  # start() has finished: the checks, the files and the seed
        self._greenlets: list[gevent.Greenlet] = []
        self.teardown_tables: list[str] = []
        self.teardown_plan = teardown.Plan()
        self.retention = retention.Retention()

    # -- init ----------------------------------------------------------------------------------
    def start(self, prepare: Callable[[], T] | None = None) -> T | None:
        """Everything that happens before the first user starts; bad input ends the process (exit 2).

        ``prepare`` checks what needs Locust's final user classes (the workload plan, the data
        feeders); its ``ValueError`` is bad input too.  Both come before anything is written or
        seeded, so bad input leaves nothing behind on the target.  Returns what ``prepare`` made.
        """
        # SIGINT and SIGTERM mean "stop now, keep the results", from before anything is written or
        # seeded.  A gevent signal handler runs in its own greenlet; a bare KeyboardInterrupt can
        # land in any greenlet and be lost.  Locust installs its own SIGTERM handler only once a
        # headless run has started (after the wait for workers, after a whole shaped run): until
        # then SIGTERM (Kubernetes, a launcher that died) killed the master with no summary and
        # no teardown.
        gevent.signal_handler(signal.SIGINT, self.interrupt)
        gevent.signal_handler(signal.SIGTERM, self.interrupt)
        self._check_inputs()
        self._apply_to_locust()
        # The classes that run (after _apply_to_locust) may declare the tables they write.
        self.teardown_tables, bad_tables = teardown.declared_tables(
            self.run.teardown_tables(), self.env.user_classes
        )
        if bad_tables:
            self._refuse(bad_tables)
        prepared = None
        if prepare is not None:
            try:
                prepared = prepare()
            except ValueError as exc:  # PlanError, FeederError: the profile asks for what cannot be done
                self._refuse([str(exc)])
        # What teardown may touch, decided (and recorded in run-metadata.json) before anything is written.
        self.teardown_plan = (
            teardown.Plan(self.teardown_tables)
            if self.run.skip_teardown
            else teardown.plan(self.teardown_tables, self.config, allow_remote=self.run.allow_remote)
        )
        self.ctx.run_dir.mkdir(parents=True, exist_ok=True)
        self._result_files()
        self._write_metadata()
        if opts := self.env.parsed_options:  # travels to every worker with Locust's spawn messages
            opts.loadstack_run_id = self.ctx.run_id
            opts.loadstack_run = self.run.model_dump_json()
        ev = self.env.events
        ev.test_start.add_listener(self.on_test_start)
        ev.spawning_complete.add_listener(self.on_spawning_complete)
        ev.quitting.add_listener(self.on_quitting)
        self._wait_for_target()
        self._check_auth()
        if teardown.reopen(self.ctx.run_id, self.config, allow_remote=self.run.allow_remote):
            progress_log.info("run id %s was torn down before; its messages count again", self.ctx.run_id)
        if self.run.seed and self.run.seed.register_path and not self.run.skip_seed:
            self._seed()
        self._initialised = True
        if self.interrupted:  # a signal during the checks or the seed: end once the seed is complete
            self._end_before_start()
        return prepared

    def _check_inputs(self) -> None:
        available = [c.__name__ for c in self.env.user_classes]
        found = checks.problems(self.run, self.config, available, self.env.host, self.env.user_classes)
        if self.run.seed and self.run.seed.register_path and not self.run.skip_seed and not self.env.host:
            found.append(f"{self.run.profile_file}: seed: needs a target host (--host / LOCUST_HOST)")
        if found:
            self._refuse(found)

    def _refuse(self, problems: list[str]) -> NoReturn:
        for problem in problems:
            log.error("%s", self.masker(problem))
        log.error("bad input: nothing was started (exit %d)", exitcodes.BAD_INPUT)
        raise SystemExit(exitcodes.BAD_INPUT)

    def _apply_to_locust(self) -> None:
        """The profile's user classes and shape, where Locust has not been told otherwise."""
        opts = self.env.parsed_options
        if opts is not None:
            # A lost worker's users move to the remaining workers as soon as Locust marks it
            # missing (its heartbeat check); without this they come back only after 60 s.
            opts.enable_rebalancing = True
        names = self.run.user_class_names()
        if names and not (opts and opts.user_classes):
            self.env.user_classes = [c for c in self.env.user_classes if c.__name__ in names]
        if self.run.shaped and self.env.shape_class is None:
            shape = ProfileShape(self.run)
            shape.runner = self.env.runner
            self.env.shape_class = shape

    def _result_files(self) -> None:
        """Locust's report and CSVs in the run directory (only once the inputs are known good)."""
        opts = self.env.parsed_options
        # Locust writes its report and CSVs itself.  The report's data is masked before Locust
        # renders it; the files pass the masker, value by value, once every one is closed.
        mask_report_data(self.masker)
        atexit.register(self._mask_locust_files)
        if opts is not None:
            if not opts.html_file:
                opts.html_file = str(self.ctx.run_dir / "report.html")
            if not opts.csv_prefix:
                # Locust's own CSV writer, started here: Locust decides on its own before `init`.
                prefix = str(self.ctx.run_dir / "results")
                writer = StatsCSVFileWriter(self.env, PERCENTILES_TO_REPORT, prefix, True)
                gevent.spawn(writer.stats_writer)  # runs until the files close, as Locust's own does
                self.env.events.quit.add_listener(lambda **_: writer.close_files())
                if self.env.web_ui is not None:
                    # The web UI's CSV downloads come from the run's own writer, so its
                    # "full history" download serves results_stats_history.csv (masked as it is
                    # served, see loadstack.webui) instead of answering 404.
                    self.env.web_ui.stats_csv_writer = writer
                    opts.stats_history_enabled = True

    def _mask_locust_files(self) -> None:
        opts = self.env.parsed_options
        files = [Path(opts.html_file)] if opts is not None and opts.html_file else []
        files += self.ctx.run_dir.glob("results_*.csv")
        if opts is not None and opts.csv_prefix:
            files += Path(opts.csv_prefix).parent.glob(f"{Path(opts.csv_prefix).name}_*.csv")
        for path in files:
            self.masker.mask_file(path)

    def _write_metadata(self) -> None:
        env = {k: v for k, v in sorted(self.config.environ.items()) if k.startswith(RECORDED_ENV_PREFIXES)}
        env.pop("LOADSTACK_RUN_SETTINGS", None)
        metadata = {
            "run_id": self.ctx.run_id,
            "profile": self.run.to_dict(),
            "command": shlex.join(sys.argv),
            "host": self.env.host,
            "launcher": self.config.launcher,
            "web_ui": self.env.web_ui is not None,
            "started": results.iso(time.time()),
            "versions": results.versions(),
            "environment": self.masker.mask_env(env),
            # Read back by teardown.teardown_for_run_id when the master cannot tear down itself.
            "teardown": self.teardown_plan.as_dict(),
        }
        results.write_json(self.ctx.run_dir / "run-metadata.json", self.masker.mask_obj(metadata))

    def _wait_for_target(self) -> None:
        """The target's health path answers before the first user (exit 2 if it never does).

        In a cluster the target starts beside the master; without this wait the run's first
        seconds would be refused connections, counted as the target's failures.
        """
        limit = self.config.target_wait
        if limit <= 0 or not self.env.host:
            return
        url = target_ready.health_url(self.env.host, self.config.target_health_path)
        shown = self.masker(url)
        progress_log.info("waiting up to %.0f s for the target: %s", limit, shown)
        outcome = target_ready.wait(
            url, allow_remote=self.run.allow_remote, limit_s=limit, stop=lambda: self.interrupted
        )
        if outcome.ready:
            progress_log.info(
                "target answered %s after %.1f s (%d attempts)",
                outcome.last,
                outcome.waited_s,
                outcome.attempts,
            )
            return
        if self.interrupted:  # SIGTERM while waiting: nothing was seeded or sent; summary, exit 130
            self._initialised = True
            self._end_before_start()
        log.error(
            "the target did not answer %s within %.0f s (%d attempts, last: %s); no load was sent "
            "(LOADSTACK_TARGET_WAIT sets the limit)",
            shown,
            limit,
            outcome.attempts,
            self.masker(outcome.last),
        )
        log.error("bad input: nothing was started (exit %d)", exitcodes.BAD_INPUT)
        raise SystemExit(exitcodes.BAD_INPUT)

    def _check_auth(self) -> None:
        """One token, shown once to the target: a target that refuses it stops the run here (exit 2)."""
        if self.run.auth.mode == "none":
            return
        if not self.env.host:
            log.error("auth %s: no target host to check the token against", self.run.auth.mode)
            raise SystemExit(exitcodes.BAD_INPUT)
        try:
            line = preflight.check(
                self.run.auth.model_dump(), self.env.host, allow_remote=self.run.allow_remote
            )
            progress_log.info("%s", self.masker(line))
        except auth.AuthConfigError as exc:
            log.error("%s", self.masker(str(exc)))
            raise SystemExit(exitcodes.BAD_INPUT) from None

    def _seed(self) -> None:
        assert self.run.seed is not None and self.env.host
        try:
            self.extra["seed"] = seed.seed_run(
                self.env.host,
                self.ctx.run_id,
                self.run.seed,
                progress_log.info,
                allow_remote=self.run.allow_remote,
            )
        except seed.SeedError as exc:
            log.error("%s", self.masker(str(exc)))
            self._teardown()
            refused = isinstance(exc, seed.SeedRefused)  # the guard said no: bad input, not failures
            raise SystemExit(exitcodes.BAD_INPUT if refused else exitcodes.FAILURES) from None

    # -- test_start ---------------------------------------------------------------------------
    def on_test_start(self, **_: Any) -> None:
        if self.started is not None:
            return  # web UI restarts keep the first start time
        self.started = self.measured_from = time.time()
        self.class_stats.stats.total.start_time = self.started  # RPS per user class counts from here
        if self.run.warmup > 0:
            self._greenlets.append(gevent.spawn_later(self.run.warmup, self.end_warmup))
        self._greenlets.append(gevent.spawn(self._every, self.config.progress_interval, self.log_progress))
        # Locust's per-second counts and chart history grow with every second: bound them.
        self._greenlets.append(gevent.spawn(self._every, retention.INTERVAL_S, self.retain))
        if hasattr(self.env.runner, "clients"):
            self._greenlets.append(gevent.spawn(self._every, WORKER_CHECK_INTERVAL_S, self.watch_workers))
        watched = [g for g in self.run.gates if g.abort_on_breach]
        if watched:
            self._greenlets.append(gevent.spawn(self._watch_gates, watched))

    def retain(self) -> None:
        """Drop per-second counts no one reads any more and roll up old chart points (:mod:`retention`)."""
        self.retention.apply([self.env.stats, self.class_stats.stats])

    def on_spawning_complete(self, user_count: int, **_: Any) -> None:
        """The swarm is complete: its size counts for ``users_peak`` even when the test stops
        before the first progress line samples it (a web UI swarm stopped after a few seconds)."""
        self.peak_users = max(self.peak_users, user_count)

    @staticmethod
    def _every(seconds: float, fn: Callable[[], Any]) -> None:
        while True:
            gevent.sleep(seconds)
            fn()

    def end_warmup(self) -> None:
        self.env.runner.stats.reset_all()
        self.class_stats.reset()
        self.env.events.reset_stats.fire()
        self.measured_from = time.time()
        progress_log.info("warm-up over: stats reset")

    def _watch_gates(self, watched: list[gates.Gate]) -> None:
        """Live SLO check (``abort_on_breach``): stop the run at the first breach after the gate's grace."""
        while True:
            gevent.sleep(GATE_CHECK_INTERVAL_S)
            elapsed = time.time() - (self.started or time.time())
            due = [g for g in watched if elapsed >= self.run.warmup + g.grace]
            if not due:
                continue
            indexes = [next(i for i, g in enumerate(self.run.gates) if g is gate) for gate in due]
            summary = self.build_summary(time.time())
            breaches = [r for r in gates.evaluate(due, summary, indexes) if r["status"] == "fail"]
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
                self.stop()
                return

    def watch_workers(self) -> None:
        """Workers Locust's heartbeat check marked missing: logged once each, counted in the summary."""
        runner = self.env.runner
        self.peak_workers = max(self.peak_workers, runner.worker_count)
        for client in runner.clients.values():
            if client.state != "missing":
                self.worker_users[client.id] = client.user_count
            elif client.id not in self.missing_workers:
                self.missing_workers[client.id] = time.time()
                self.users_lost[client.id] = self.worker_users.get(client.id, 0)
                log.warning(
                    "worker %s is missing (no heartbeat); its %d users move to the remaining workers",
                    client.id,
                    self.users_lost[client.id],
                )
        target = getattr(runner, "target_user_count", None)
        for worker in self.missing_workers:
            if (
                worker not in self.users_back
                and target
                and runner.worker_count
                and runner.user_count >= target
            ):
                self.users_back[worker] = time.time()
                progress_log.info("users back at %d on %d workers", runner.user_count, runner.worker_count)

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

    def expected_duration(self) -> float | None:
        if isinstance(self.env.shape_class, ProfileShape):
            return self.run.planned_duration
        opts = self.env.parsed_options
        return float(opts.run_time) if opts is not None and opts.run_time else None

    # -- stopping ------------------------------------------------------------------------------
    def interrupt(self) -> None:
        if (
            self.env.web_ui is not None
            and self.started is not None
            and self.env.runner.state == STATE_STOPPED
        ):
            # A person stopped the test with the web UI's Stop button; ending the session after it
            # (`loadstack stop`) interrupts nothing, so the verdict is the test's, not "interrupted".
            log.info("SIGINT: ending the web UI session (its test was stopped in the UI); writing results")
            self.end_reason = "stopped in the web UI"
            self.stop()
            return
        log.info("SIGINT/SIGTERM: stopping the test and writing results")
        self.interrupted = True
        self.end_reason = "interrupted"
        if not self._initialised:
            return  # start() ends the run when it is done (a seed is never left half-made)
        if self.started is None and self.env.web_ui is None:
            self._end_before_start()
        self.stop()

    def _end_before_start(self) -> NoReturn:
        """Stopped before the first user (waiting for workers, seeding): summary, teardown, exit 130.

        Locust itself would go on waiting for its workers, or be killed by SIGTERM, and write
        nothing; the run's seed data would stay on the target.
        """
        self.on_quitting()
        raise SystemExit(exitcodes.INTERRUPTED)

    def finish(self, reason: str) -> None:
        """The run's work is done before its time (iteration budgets used up, data exhausted)."""
        self.end_reason = reason
        self.stop()

    def stop(self) -> None:
        self.env.runner.quit()
        if self.env.web_ui is not None:
            self.env.web_ui.stop()

    # -- quitting ------------------------------------------------------------------------------
    def on_quitting(self, **_: Any) -> None:
        if self._quit_done:  # SIGTERM reaches both Locust's handler and ours: one summary
            return
        self._quit_done = True
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        if self.started is None and not (self.interrupted and self.env.web_ui is None):
            self._teardown()  # a web UI session that never started a test may still have seeded
            return
        summary = self.build_summary(time.time())
        if self.run.gates:
            summary["gates"] = gates.evaluate(self.run.gates, summary)
            summary["verdict"] = gates.verdict(summary["gates"])
        torn_down = self._teardown()
        if torn_down is not None:
            summary["teardown"] = torn_down
        interrupted = self.interrupted or summary["end_reason"] == "interrupted"
        code = exitcodes.INTERRUPTED if interrupted else exit_code_for(summary)
        summary["outcome"] = {
            "verdict": history.verdict_of(summary, interrupted=interrupted),
            "exit_code": code,
        }
        summary = self.masker.mask_obj(summary)
        run_dir = self.ctx.run_dir
        results.write_json(run_dir / "summary.json", summary)
        results.write_summary_csv(summary, run_dir / "summary.csv", [g.target for g in self.run.gates])
        if self.run.gates:
            junit.write(run_dir / "junit.xml", summary, self.run.gates)
        if chart := svg.workload_chart(summary):
            (run_dir / "workload.svg").write_text(chart, encoding="utf-8")
        history.append(
            run_dir.parent, history.entry(summary, run_dir=run_dir, sut_version=self.run.sut_version)
        )
        results.update_latest(run_dir.parent, self.ctx.run_id)
        for line in report_lines(summary, run_dir):
            report_log.info("%s", line)
        self.env.process_exit_code = code

    def _teardown(self) -> dict[str, Any] | None:
        if self.run.skip_teardown:
            return None
        report = teardown.teardown(
            self.ctx.run_id, self.config, allow_remote=self.run.allow_remote, plan=self.teardown_plan
        )
        if report.ok:
            progress_log.info("teardown: %s", self.masker(report.line()))
        else:
            log.error("teardown: %s", self.masker(report.line()))
        return report.as_dict()

    def build_summary(self, ended: float) -> dict[str, Any]:
        runner = self.env.runner
        self.peak_users = max(self.peak_users, runner.user_count)
        shape = self.env.shape_class
        outcome = shape.outcome if isinstance(shape, ProfileShape) else {}
        extra: dict[str, Any] = {
            "warmup_s": float(self.run.warmup),
            "users_peak": self.peak_users,
            "workers": self.peak_workers or getattr(runner, "worker_count", 0),
            "end_reason": self.end_reason or outcome.get("reason") or self._end_reason(ended),
            "user_classes": self.class_stats.rows(),
            **self.extra,
        }
        if outcome:
            extra["shape"] = dict(outcome)
        if hasattr(runner, "clients"):
            extra["worker_health"] = self.worker_health()
        extra["exceptions"] = exception_section(runner, self.masker)
        for key, section in self.sections.items():
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
            host=self.masker(self.env.host or "") or None,
            started=self.started or ended,
            measured_from=self.measured_from or ended,
            ended=ended,
            extra=extra,
        )

    def worker_health(self) -> dict[str, Any]:
        opts = self.env.parsed_options
        return {
            "expected": int(getattr(opts, "expect_workers", 0) or 0),
            "peak_connected": self.peak_workers,
            "missing": len(self.missing_workers),
            "rebalancing": True,
            "events": [
                {
                    "worker": worker,
                    "state": "missing",
                    "at_s": round(at - (self.started or at), 3),
                    "users_lost": self.users_lost.get(worker, 0),
                    "users_back_at_s": (
                        round(self.users_back[worker] - (self.started or at), 3)
                        if worker in self.users_back
                        else None
                    ),
                }
                for worker, at in self.missing_workers.items()
            ],
        }

    def _end_reason(self, ended: float) -> str:
        planned = self.expected_duration()
        if planned and self.started and ended - self.started < planned - 1:
            return "interrupted"
        return "completed"


def exception_section(runner: Any, masker: Callable[[str], str]) -> dict[str, Any]:
    """User-code exceptions exactly as Locust counts them (``runner.exceptions``; workers send theirs
    to the master as they happen), so plain Locust and loadstack agree on whether a run had any.

    Per distinct traceback: how often, the first line of its message and its innermost frame (where
    the user's code raised), masked: a traceback's text may quote a secret the code held.
    """
    rows = sorted((getattr(runner, "exceptions", None) or {}).values(), key=lambda r: -int(r["count"]))
    kinds = [
        {
            "count": int(row["count"]),
            "message": _cut(masker(_first_line(str(row["msg"])))),
            "where": _cut(masker(_innermost_frame(str(row["traceback"])))),
            "nodes": len(row["nodes"]),
        }
        for row in rows[:MAX_EXCEPTION_KINDS]
    ]
    return {"count": sum(int(r["count"]) for r in rows), "kinds": kinds}


def _first_line(text: str, limit: int = 4096) -> str:
    """The first line, bounded (for the masker's sake); cut short only after masking (:func:`_cut`),
    so that a secret is never cut in half where the masker would no longer recognise it."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:limit]


def _cut(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _innermost_frame(formatted_tb: str) -> str:
    """``File "x.py", line 12, in task: code`` of the last frame (Locust's own frames come first)."""
    lines = formatted_tb.rstrip().splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].lstrip().startswith("File "):
            code = (
                lines[i + 1].strip()
                if i + 1 < len(lines) and not lines[i + 1].lstrip().startswith("File ")
                else ""
            )
            return _first_line(lines[i].strip() + (f": {code}" if code else ""))
    return _first_line(formatted_tb)


def exceptions_of(summary: dict[str, Any]) -> int:
    return int((summary.get("exceptions") or {}).get("count") or 0)


def teardown_left(summary: dict[str, Any]) -> dict[str, str]:
    """What teardown could not remove (empty: it finished, or it was skipped on purpose)."""
    return dict((summary.get("teardown") or {}).get("left") or {})


def mask_report_data(masker: masking.Masker) -> None:
    """Mask the data of Locust's report page (request names, failure messages, exceptions, host)
    before Locust renders it, wherever it does: the run's ``report.html`` and the web UI's report.

    The page is a JavaScript bundle with that data as JSON inside a ``<script>``: masking the
    rendered bytes rewrote the bundle's code (``password:!0``) and left a blank page.  Locust builds
    the data in ``get_html_report`` and hands it to ``render_template_from``, looked up in
    ``locust.html`` on every call; wrapping that one function masks the data and nothing else.
    In the web UI, the page it renders is marked as masked, so the UI's response hook
    (:mod:`loadstack.webui`) leaves its bytes alone.
    """
    import locust.html

    from loadstack import webui

    render = locust.html.render_template_from
    if getattr(render, "loadstack_masker", None) is masker:
        return
    inner = getattr(render, "__wrapped__", render)

    def masked_render(file: str, build_path: str = locust.html.DEFAULT_BUILD_PATH, **kwargs: Any) -> str:
        if "template_args" in kwargs:
            kwargs["template_args"] = masker.mask_obj(kwargs["template_args"])
            webui.note_masked_template()
        return inner(file, build_path, **kwargs)

    masked_render.__wrapped__ = inner  # type: ignore[attr-defined]
    masked_render.loadstack_masker = masker  # type: ignore[attr-defined]
    locust.html.render_template_from = masked_render


def exit_code_for(summary: dict[str, Any]) -> int:
    """The run's exit status (docs/results.md, "Exit status"), most specific first.

    3 a gate failed · 2 a gate matched nothing in a run that sent requests · 1 no request at all,
    user-code exceptions, or (no gates) a failed request · 0 otherwise.  A teardown that left data
    turns 0 or 1 into 5.  A run that sent nothing is never 0, whatever its gates say.  A run that
    would be 0 but whose generator was saturated is 7: its figures measured the generator; gate
    failures and failed requests still win, they are facts about the system either way.
    """
    gated = bool(summary.get("gates"))
    verdict = summary.get("verdict", "pass") if gated else None
    count = int(summary["totals"]["count"])
    if verdict == "fail":
        return exitcodes.GATE_FAILED
    if verdict == "error" and count:
        return exitcodes.BAD_INPUT
    if not count or exceptions_of(summary):
        code = exitcodes.FAILURES
    elif gated:
        code = exitcodes.OK
    else:
        code = exitcodes.FAILURES if summary["totals"]["failures"] else exitcodes.OK
    if teardown_left(summary):
        return exitcodes.TEARDOWN_FAILED
    if code == exitcodes.OK and history.saturation_decides(summary):
        return exitcodes.GENERATOR_SATURATED
    return code


def report_lines(summary: dict[str, Any], run_dir: Any) -> list[str]:
    """What a person watching the master reads at the end: the table, the gates, the verdict."""
    lines = ["", *results.format_table(summary).splitlines(), *intended.format_table(summary)]
    if summary.get("gates"):
        lines += ["", *gates.format_table(summary["gates"]).splitlines()]
    if "aborted" in str(summary.get("end_reason", "")):
        lines.append(f"run stopped early: {summary['end_reason']}")
    health = summary.get("worker_health") or {}
    if health.get("missing"):
        lines.append(
            f"workers missing during the run: {health['missing']} (see worker_health in summary.json)"
        )
    if not summary["totals"]["count"]:
        lines.append("no requests were sent: a run that sent nothing does not pass")
    exceptions = summary.get("exceptions") or {}
    if exceptions.get("count"):
        first = exceptions["kinds"][0]
        lines.append(
            f"user code raised {exceptions['count']} exceptions ({len(exceptions['kinds'])} distinct); "
            f"most often ({first['count']}×): {first['message'] or '(no message)'} at {first['where']}"
            " (all of them: exceptions in summary.json, tracebacks in the worker logs)"
        )
    left = teardown_left(summary)
    if left:
        lines.append(
            "teardown could not finish; left on the target: "
            + "; ".join(f"{what}: {why}" for what, why in left.items())
        )
    dropped = summary.get("dropped_iterations") or 0
    if dropped:
        gated = any(g.get("metric") == "dropped_iterations_max" for g in summary.get("gates") or [])
        lines.append(
            f"dropped iterations: {dropped} (the pool of users could not start them when the rate called"
            " for them; raise max_users" + (")" if gated else ", or gate on it: dropped_iterations_max)")
        )
    if generator := generator_health.report_line(summary):
        lines.append(generator)
    outcome = summary["outcome"]
    lines += [
        "",
        f"results: {run_dir}/ (summary.json, summary.csv, junit.xml, report.html, results_*.csv)   "
        f"verdict: {outcome['verdict']}   exit status: {outcome['exit_code']}",
    ]
    return lines
