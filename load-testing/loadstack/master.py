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

import argparse
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
from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter

from loadstack import auth, checks, exitcodes, gates, junit, masking, results, settings
from loadstack.auth import preflight
from loadstack.data import seed, teardown
from loadstack.report import history, svg
from loadstack.runcontext import RunContext
from loadstack.shape import ProfileShape
from loadstack.user_classes import UserClassStats

T = TypeVar("T")
log = logging.getLogger("loadstack")
progress_log = logging.getLogger("loadstack.progress")
report_log = logging.getLogger("loadstack.report")

GATE_CHECK_INTERVAL_S = 2.0
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
        self._greenlets: list[gevent.Greenlet] = []

    # -- init ----------------------------------------------------------------------------------
    def start(self, prepare: Callable[[], T] | None = None) -> T | None:
        """Everything that happens before the first user starts; bad input ends the process (exit 2).

        ``prepare`` checks what needs Locust's final user classes (the workload plan, the data
        feeders); its ``ValueError`` is bad input too.  Both come before anything is written or
        seeded, so bad input leaves nothing behind on the target.  Returns what ``prepare`` made.
        """
        self._check_inputs()
        self._apply_to_locust()
        prepared = None
        if prepare is not None:
            try:
                prepared = prepare()
            except ValueError as exc:  # PlanError, FeederError: the profile asks for what cannot be done
                self._refuse([str(exc)])
        self.ctx.run_dir.mkdir(parents=True, exist_ok=True)
        self._result_files()
        self._write_metadata()
        if opts := self.env.parsed_options:  # travels to every worker with Locust's spawn messages
            opts.loadstack_run_id = self.ctx.run_id
            opts.loadstack_run = self.run.model_dump_json()
        ev = self.env.events
        ev.test_start.add_listener(self.on_test_start)
        ev.quitting.add_listener(self.on_quitting)
        # SIGINT means "stop now, keep the results".  A gevent signal handler runs in its own
        # greenlet; a bare KeyboardInterrupt can land in any greenlet and be lost.
        gevent.signal_handler(signal.SIGINT, self.interrupt)
        self._check_auth()
        if teardown.reopen(self.ctx.run_id, self.config, allow_remote=self.run.allow_remote):
            progress_log.info("run id %s was torn down before; its messages count again", self.ctx.run_id)
        if self.run.seed and self.run.seed.register_path and not self.run.skip_seed:
            self._seed()
        return prepared

    def _check_inputs(self) -> None:
        available = [c.__name__ for c in self.env.user_classes]
        found = checks.problems(self.run, self.config, available, self.env.host)
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
        # Locust writes its report and CSVs itself; they pass the masker once every file is closed.
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
        }
        results.write_json(self.ctx.run_dir / "run-metadata.json", self.masker.mask_obj(metadata))

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
            raise SystemExit(exitcodes.FAILURES) from None

    # -- test_start ---------------------------------------------------------------------------
    def on_test_start(self, **_: Any) -> None:
        if self.started is not None:
            return  # web UI restarts keep the first start time
        self.started = self.measured_from = time.time()
        self.class_stats.stats.total.start_time = self.started  # RPS per user class counts from here
        if self.run.warmup > 0:
            self._greenlets.append(gevent.spawn_later(self.run.warmup, self.end_warmup))
        self._greenlets.append(gevent.spawn(self._every, self.config.progress_interval, self.log_progress))
        if hasattr(self.env.runner, "clients"):
            self._greenlets.append(gevent.spawn(self._every, WORKER_CHECK_INTERVAL_S, self.watch_workers))
        watched = [g for g in self.run.gates if g.abort_on_breach]
        if watched:
            self._greenlets.append(gevent.spawn(self._watch_gates, watched))

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
            if client.state == "missing" and client.id not in self.missing_workers:
                self.missing_workers[client.id] = time.time()
                log.warning("worker %s is missing (no heartbeat); the run goes on without it", client.id)

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
        log.info("SIGINT: stopping the test and writing results")
        self.interrupted = True
        self.end_reason = "interrupted"
        self.stop()

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
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        if self.started is None:
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
        report = teardown.teardown(self.ctx.run_id, self.config, allow_remote=self.run.allow_remote)
        progress_log.info("teardown: %s", self.masker(report.line()))
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
            "events": [
                {"worker": worker, "state": "missing", "at_s": round(at - (self.started or at), 3)}
                for worker, at in self.missing_workers.items()
            ],
        }

    def _end_reason(self, ended: float) -> str:
        planned = self.expected_duration()
        if planned and self.started and ended - self.started < planned - 1:
            return "interrupted"
        return "completed"


def exit_code_for(summary: dict[str, Any]) -> int:
    """With SLO gates: 0 pass, 3 fail, 2 a gate that matches nothing.  Without: 1 if any request failed."""
    if summary.get("gates"):
        return {"pass": exitcodes.OK, "fail": exitcodes.GATE_FAILED, "error": exitcodes.BAD_INPUT}[
            summary.get("verdict", "pass")
        ]
    return exitcodes.FAILURES if summary["totals"]["failures"] else exitcodes.OK


def report_lines(summary: dict[str, Any], run_dir: Any) -> list[str]:
    """What a person watching the master reads at the end: the table, the gates, the verdict."""
    lines = ["", *results.format_table(summary).splitlines()]
    if summary.get("gates"):
        lines += ["", *gates.format_table(summary["gates"]).splitlines()]
    if "aborted" in str(summary.get("end_reason", "")):
        lines.append(f"run stopped early: {summary['end_reason']}")
    health = summary.get("worker_health") or {}
    if health.get("missing"):
        lines.append(
            f"workers missing during the run: {health['missing']} (see worker_health in summary.json)"
        )
    dropped = summary.get("dropped_iterations") or 0
    if dropped:
        gated = any(g.get("metric") == "dropped_iterations_max" for g in summary.get("gates") or [])
        lines.append(
            f"dropped iterations: {dropped} (the pool of users could not start them when the rate called"
            " for them; raise max_users" + (")" if gated else ", or gate on it: dropped_iterations_max)")
        )
    outcome = summary["outcome"]
    lines += [
        "",
        f"results: {run_dir}/ (summary.json, summary.csv, junit.xml, report.html, results_*.csv)   "
        f"verdict: {outcome['verdict']}   exit status: {outcome['exit_code']}",
    ]
    return lines


def add_arguments(parser: Any, **_: Any) -> None:
    """Locust's ``init_command_line_parser``: how the master's run reaches its workers."""
    for name in ("--loadstack-run-id", "--loadstack-run"):
        parser.add_argument(name, default=None, help=argparse.SUPPRESS, include_in_web_ui=False)


def join(environment: Environment, **_: Any) -> None:
    """Worker ``test_start`` (after Locust applied the master's options): adopt the master's run."""
    from loadstack import plugin, runcontext
    from loadstack.profiles import RunSettings

    opts = environment.parsed_options
    run_id, run = getattr(opts, "loadstack_run_id", None), getattr(opts, "loadstack_run", None)
    ctx = runcontext.current()
    if not run_id or not run or (run_id == ctx.run_id and run == ctx.settings.model_dump_json()):
        return
    ctx = runcontext.adopt(run_id, RunSettings.model_validate_json(run))
    plugin.apply_user_settings(environment, ctx.settings)
