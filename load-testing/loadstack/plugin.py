"""What loadstack adds to a Locust process, wired through Locust's own events.

Importing any loadstack user (``loadstack.users``) calls :func:`install`, so a
locustfile that uses them carries loadstack with it, however Locust is
started.  A locustfile without loadstack users can add
``loadstack/_hooks/loadstack_hooks.py`` to ``-f``.  On ``init``, by role:

* every process: the run's user-class weights, wait time and tags; per-user-class
  stats, exporter metrics and chain counters (:mod:`loadstack.aggregation`); its own loop lag
  and CPU share (:mod:`loadstack.generator_health`); where users run, their objects frozen
  once spawned (:mod:`loadstack.heap`);
* master (and a local runner): the run itself, see :mod:`loadstack.master`, and every body its
  web UI serves masked (:mod:`loadstack.webui`);
* workers: join the master's run when they connect.

Every feature is registered here, in one place; no other module adds listeners
to the plugin.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event
from locust import between, events
from locust.env import Environment
from locust.event import EventHook
from locust.exception import RPCError
from locust.runners import (
    STATE_INIT,
    STATE_RUNNING,
    STATE_SPAWNING,
    STATE_STOPPED,
    STATE_STOPPING,
    MasterRunner,
    Runner,
    WorkerRunner,
)

from loadstack import exitcodes, masking, runcontext, settings, webui, windows
from loadstack.configfile import ConfigError
from loadstack.generator_health import GeneratorHealth
from loadstack.heap import FrozenUsers
from loadstack.inspect.rabbitmq import QueueSampler
from loadstack.metrics.aggregate import RequestMetrics
from loadstack.profiles import RunSettings
from loadstack.user_classes import UserClassStats

log = logging.getLogger("loadstack")


@dataclass
class PluginState:
    """loadstack's parts of one Locust environment (what used to be attributes bolted onto it)."""

    role: str
    class_stats: UserClassStats
    metrics: RequestMetrics | None = None
    sampler: QueueSampler | None = None
    generator: GeneratorHealth = field(default_factory=GeneratorHealth)
    sections: dict[str, Any] = field(default_factory=dict)
    tracing: Any = None  # loadstack.telemetry.spans.Tracing when OTel is on (--otel)
    heap: FrozenUsers | None = None  # a worker's or local runner's users frozen once spawned


_states: weakref.WeakKeyDictionary[Environment, PluginState] = weakref.WeakKeyDictionary()
_installed = False


def install(event_hooks: Any = events) -> None:
    """Register loadstack's listeners (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    from loadstack.workload import runtime as workload

    masking.mask_standard_streams()  # the master's output is a pod's log, a container's, a terminal's
    _refuse_telemetry_endpoint()
    event_hooks.init_command_line_parser.add_listener(add_run_arguments)
    event_hooks.init_command_line_parser.add_listener(workload.add_arguments)
    event_hooks.init.add_listener(_on_init)
    if "--worker" in sys.argv[1:]:
        _leave_on_sigterm_until_connected(event_hooks)


def _leave_on_sigterm_until_connected(event_hooks: Any) -> None:
    """A worker told to stop before it has joined a master leaves at once.

    Locust handles SIGTERM only once its worker is connected (``init``); until then the signal
    keeps its default action, and a container's PID 1 has none: a worker pod deleted while it
    waited for a master (between two runs) lived out its grace period, joined the next run's
    master meanwhile, and was killed in it, counted as a lost worker.
    """
    watcher = gevent.signal_handler(signal.SIGTERM, _leave_unjoined)
    event_hooks.init.add_listener(lambda **_: watcher.cancel())


def _leave_unjoined() -> None:
    log.info("worker: SIGTERM before joining a master; leaving")
    logging.shutdown()
    os._exit(exitcodes.OK)


def _refuse_telemetry_endpoint() -> None:
    """With --otel, an OTLP endpoint not allowed ends the process (exit 2) before Locust's OTel setup
    (after this import) builds exporters that could send anything there."""
    from loadstack import telemetry

    try:
        config = settings.current()
    except ConfigError:
        return  # reported with its variable's name on init
    if not (config.otel or "--otel" in sys.argv):
        return
    problem = telemetry.endpoint_problem(config)
    if problem is not None:
        log.error("%s", masking.current()(problem))
        raise SystemExit(exitcodes.BAD_INPUT)
    settings.hand_otel_to_locust(config)


def state(environment: Environment) -> PluginState | None:
    return _states.get(environment)


def register_state(environment: Environment, st: PluginState) -> PluginState:
    """Give an environment built without Locust's ``init`` (a bench, a test) loadstack's state."""
    _states[environment] = st
    return st


def role_of(runner: Runner | None) -> str:
    if isinstance(runner, WorkerRunner):
        return "worker"
    if isinstance(runner, MasterRunner):
        return "master"
    return "local"


def _on_init(environment: Environment, runner: Runner | None = None, **_: Any) -> None:
    if not isinstance(runner, WorkerRunner):
        _install(environment, runner)
        return
    release = hold_worker_until_installed(environment, runner)
    try:
        _install(environment, runner)
    except BaseException:
        release(installed=False)  # the worker is leaving (bad input): start nothing of it
        raise
    release(installed=True)


def hold_worker_until_installed(environment: Environment, runner: WorkerRunner) -> Callable[..., None]:
    """A worker starts no test until loadstack is installed in it; the returned call lets it go.

    A Locust worker says it is ready while it connects, before ``init`` fires, so its master may
    send the first ``spawn`` then: when that message is read before ``init``, ``test_start``
    fires with none of loadstack's listeners, and the worker's users run outside the workload
    model (a 300-iteration budget on 3 workers once ended with 964 requests).  So the worker's
    messages and its spawning wait until ``init`` is done, and the ``test_start`` listeners that
    ``init`` added are called then if Locust already fired the event.
    """
    missed = runner.worker_state != STATE_INIT  # Locust has fired test_start already
    hook = environment.events.test_start
    added_from = len(hook._handlers)
    ready = gevent.event.Event()
    handle, start = runner.handle_message, runner.start_worker

    def handle_when_installed(msg: Any) -> None:
        ready.wait()
        handle(msg)

    def start_when_installed(*args: Any, **kwargs: Any) -> None:
        ready.wait()
        start(*args, **kwargs)

    runner.handle_message = handle_when_installed  # type: ignore[method-assign]
    runner.start_worker = start_when_installed  # type: ignore[method-assign]

    def release(*, installed: bool) -> None:
        runner.handle_message, runner.start_worker = handle, start  # type: ignore[method-assign]
        if missed and installed:
            replay = EventHook()  # Locust's own firing: a failing listener is logged, not fatal
            for listener in hook._handlers[added_from:]:
                replay.add_listener(listener)
            log.debug("worker: the test started before loadstack was installed; starting its part now")
            replay.fire(environment=environment)
        ready.set()

    return release


def _install(environment: Environment, runner: Runner | None) -> None:
    from loadstack import generator_health, master, window_spread
    from loadstack.chains import metrics as chain_metrics
    from loadstack.inspect import sampling
    from loadstack.metrics import server as metrics_server
    from loadstack.workload import intended
    from loadstack.workload import runtime as workload

    role = role_of(runner)
    try:
        ctx = runcontext.current()
    except (ConfigError, ValueError) as exc:
        log.error("%s", exc)
        raise SystemExit(exitcodes.BAD_INPUT) from None
    apply_user_settings(environment, ctx.settings)
    st = _states[environment] = PluginState(role=role, class_stats=UserClassStats())
    env_settings = settings.current()
    st.generator.on_saturation = env_settings.generator_saturated
    if env_settings.otel or getattr(environment.parsed_options, "otel", False):
        from loadstack.telemetry import setup as telemetry  # imports opentelemetry: only when on

        st.tracing = telemetry.install(environment, env_settings, role)
    st.class_stats.attach(environment, role)
    chain_metrics.counters.attach(environment, role)
    windows.seconds.attach(environment, role)
    st.generator.attach(environment, role)
    if role != "master" and env_settings.gc_freeze:  # where the users live
        st.heap = FrozenUsers()
        st.heap.attach(environment)
    if role == "worker":
        st.metrics = metrics_server.install(environment, role)
        environment.events.test_start.add_listener(join)
        environment.events.test_stop.add_listener(lambda **_: report_now(environment))
        try:
            workload.install(environment, role, ctx.settings)
        except ValueError as exc:  # the master reports bad input and ends the run
            log.error("workload: %s", exc)
        return
    st.sampler = sampling.start(environment, ctx.settings)
    st.metrics = metrics_server.install(
        environment,
        role,
        st.sampler,
        [
            workload.Exporter(ctx.run_id, ctx.profile),
            intended.Exporter(ctx.run_id, ctx.profile, environment),
            generator_health.Exporter(st.generator, ctx.run_id, ctx.profile),
        ],
    )
    st.sections["generator"] = st.generator.section
    st.sections["chains"] = lambda: chain_metrics.section(environment)
    spread = window_spread.WindowSpread()  # each request name's own p95 noise, for compare
    spread.attach(environment)
    st.sections["window_p95"] = spread.section
    if st.sampler is not None:
        st.sections["queues"] = st.sampler.summary
    if isinstance(runner, MasterRunner):
        drain_workers_on_quit(runner)
    run_master = master.RunMaster(environment, ctx, st.class_stats, st.sections)
    if environment.web_ui is not None:  # before Locust starts its server: every body it serves is masked
        webui.mask_responses(environment.web_ui, run_master.masker)

    def plan_workload() -> workload.Coordinator:  # after the input checks: it loads the chains they checked
        wl = workload.install(environment, role, ctx.settings)
        return workload.coordinate(wl, ctx.settings, run_master.finish)

    coordinator = run_master.start(prepare=plan_workload)
    assert coordinator is not None
    st.sections["workload"] = coordinator.section
    st.sections["dropped_iterations"] = coordinator.dropped
    st.sections["corrected"] = coordinator.wl.intended.section
    sustained = windows.Sustained(ctx.settings.gates, windows.seconds, warmup=ctx.settings.warmup)
    if sustained.active:
        environment.events.test_start.add_listener(lambda **_: sustained.start())
        st.sections["sustained"] = lambda: sustained.section(
            final=environment.runner.state not in (STATE_RUNNING, STATE_SPAWNING)
        )


def report_now(environment: Environment) -> None:
    """A worker sends its stats to the master at once (as its 3-second reporter would, later).

    Called when the worker's test stops: the report reaches the master before the worker's
    "stopped" message, so once the master says STOPPED (a web UI's Stop button) its figures are
    final; otherwise the requests of the last seconds arrive up to 3 s later and the numbers a
    person just read change under them.
    """
    runner = environment.runner
    assert isinstance(runner, WorkerRunner)
    try:
        runner._send_stats()  # what Locust's reporter and its "quit" handler call
    except RPCError as exc:  # the master is gone: nobody to tell, as for Locust's own reporter
        log.warning("could not report the stopped test's stats to the master: %s", exc)


def drain_workers_on_quit(runner: MasterRunner) -> None:
    """The master's ``quit`` first stops its workers and waits until each has said it stopped.

    Locust's master quits by sending ``quit`` and giving the workers' last stats reports 0.5 s; on a
    busy machine they come later and the run's last seconds are missing from every figure (a chain
    run once counted 115 iterations where its workers had finished 141).  A worker reports its
    stats when its test stops, before it says "stopped" (:func:`report_now`), so once Locust's
    ``stop`` has waited for that (at most ``stop_timeout`` + 60 s), the master has every request.
    Not from inside the master's own message loop: it would wait for messages it cannot read.
    """
    quit_now = runner.quit

    def quit_after_stop() -> None:
        if (
            runner.state not in (STATE_INIT, STATE_STOPPED, STATE_STOPPING)
            and gevent.getcurrent() not in runner.greenlet
        ):
            runner.stop()
        quit_now()

    runner.quit = quit_after_stop  # type: ignore[method-assign]


def apply_user_settings(environment: Environment, run: RunSettings) -> None:
    """Profile ``user_classes`` weights, ``wait_time`` and tags.

    A class that names an environment setting in ``weight_setting`` (see
    ``mixed_users.py``) keeps the weight that setting gave it.
    """
    weights = run.user_classes or {}
    for cls in environment.user_classes:
        name = cls.__name__
        if name in weights and not getattr(cls, "weight_from_environment", False):
            cls.weight = weights[name]
        if run.wait_time:
            cls.wait_time = between(run.wait_time.min, run.wait_time.max)
    if run.tags and environment.tags is None:
        environment.tags = run.tags
    if run.exclude_tags and environment.exclude_tags is None:
        environment.exclude_tags = run.exclude_tags
    # Per-second request counts only when a sustained gate (`for:`) needs them.
    windows.seconds.enabled = any(g.sustained for g in run.gates)


def add_run_arguments(parser: Any, **_: Any) -> None:
    """Locust's ``init_command_line_parser``: how the master's run reaches its workers."""
    for name in ("--loadstack-run-id", "--loadstack-run"):
        parser.add_argument(name, default=None, help=argparse.SUPPRESS, include_in_web_ui=False)


def join(environment: Environment, **_: Any) -> None:
    """Worker ``test_start`` (after Locust applied the master's options): adopt the master's run."""
    opts = environment.parsed_options
    run_id, run = getattr(opts, "loadstack_run_id", None), getattr(opts, "loadstack_run", None)
    ctx = runcontext.current()
    if not run_id or not run or (run_id == ctx.run_id and run == ctx.settings.model_dump_json()):
        return
    ctx = runcontext.adopt(run_id, RunSettings.model_validate_json(run))
    apply_user_settings(environment, ctx.settings)
