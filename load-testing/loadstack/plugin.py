"""What loadstack adds to a Locust process, wired through Locust's own events.

Importing any loadstack user (``loadstack.users``) calls :func:`install`, so a
locustfile that uses them carries loadstack with it, however Locust is
started.  A locustfile without loadstack users can add
``loadstack/_hooks/loadstack_hooks.py`` to ``-f``.  On ``init``, by role:

* every process: the run's user-class weights, wait time and tags; per-user-class
  stats, exporter metrics and chain counters (:mod:`loadstack.aggregation`);
* master (and a local runner): the run itself, see :mod:`loadstack.master`;
* workers: join the master's run when they connect.

Every feature is registered here, in one place; no other module adds listeners
to the plugin.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass, field
from typing import Any

from locust import between, events
from locust.env import Environment
from locust.runners import STATE_RUNNING, STATE_SPAWNING, MasterRunner, Runner, WorkerRunner

from loadstack import exitcodes, masking, runcontext, windows
from loadstack.configfile import ConfigError
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
    sections: dict[str, Any] = field(default_factory=dict)


_states: weakref.WeakKeyDictionary[Environment, PluginState] = weakref.WeakKeyDictionary()
_installed = False


def install(event_hooks: Any = events) -> None:
    """Register loadstack's listeners (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    from loadstack import master
    from loadstack.workload import runtime as workload

    masking.mask_standard_streams()  # the master's output is a pod's log, a container's, a terminal's
    event_hooks.init_command_line_parser.add_listener(master.add_arguments)
    event_hooks.init_command_line_parser.add_listener(workload.add_arguments)
    event_hooks.init.add_listener(_on_init)


def state(environment: Environment) -> PluginState | None:
    return _states.get(environment)


def role_of(runner: Runner | None) -> str:
    if isinstance(runner, WorkerRunner):
        return "worker"
    if isinstance(runner, MasterRunner):
        return "master"
    return "local"


def _on_init(environment: Environment, runner: Runner | None = None, **_: Any) -> None:
    from loadstack import master
    from loadstack.chains import metrics as chain_metrics
    from loadstack.inspect import sampling
    from loadstack.metrics import server as metrics_server
    from loadstack.workload import runtime as workload

    role = role_of(runner)
    try:
        ctx = runcontext.current()
    except (ConfigError, ValueError) as exc:
        log.error("%s", exc)
        raise SystemExit(exitcodes.BAD_INPUT) from None
    apply_user_settings(environment, ctx.settings)
    st = _states[environment] = PluginState(role=role, class_stats=UserClassStats())
    st.class_stats.attach(environment, role)
    chain_metrics.counters.attach(environment, role)
    windows.seconds.attach(environment, role)
    if role == "worker":
        st.metrics = metrics_server.install(environment, role)
        environment.events.test_start.add_listener(master.join)
        try:
            workload.install(environment, role, ctx.settings)
        except ValueError as exc:  # the master reports bad input and ends the run
            log.error("workload: %s", exc)
        return
    st.sampler = sampling.start(environment, ctx.settings)
    st.metrics = metrics_server.install(
        environment, role, st.sampler, [workload.Exporter(ctx.run_id, ctx.profile)]
    )
    st.sections["chains"] = lambda: chain_metrics.section(environment)
    if st.sampler is not None:
        st.sections["queues"] = st.sampler.summary
    run_master = master.RunMaster(environment, ctx, st.class_stats, st.sections)

    def plan_workload() -> workload.Coordinator:  # after the input checks: it loads the chains they checked
        wl = workload.install(environment, role, ctx.settings)
        return workload.coordinate(wl, ctx.settings, run_master.finish)

    coordinator = run_master.start(prepare=plan_workload)
    assert coordinator is not None
    st.sections["workload"] = coordinator.section
    st.sections["dropped_iterations"] = coordinator.dropped
    sustained = windows.Sustained(ctx.settings.gates, windows.seconds, warmup=ctx.settings.warmup)
    if sustained.active:
        environment.events.test_start.add_listener(lambda **_: sustained.start())
        st.sections["sustained"] = lambda: sustained.section(
            final=environment.runner.state not in (STATE_RUNNING, STATE_SPAWNING)
        )


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
