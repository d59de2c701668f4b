"""Queue depth sampling during a run (master side): a greenlet polling passive declares.

Queues come from the profile's ``sample_queues`` (or ``$LOADSTACK_SAMPLE_QUEUES``,
comma separated); ``{run_id}`` in a name is replaced by the run id.  The samples
end up in ``summary.json`` under ``queues`` and in the exporter's
``loadstack_queue_messages`` / ``loadstack_queue_consumers`` gauges.
"""

from __future__ import annotations

import logging
from typing import Any

import gevent
from locust.env import Environment

from loadstack import runcontext, settings
from loadstack.inspect.rabbitmq import QueueSampler
from loadstack.profiles import RunSettings

log = logging.getLogger("loadstack.sampling")


def configured_queues(run: RunSettings) -> list[str]:
    names = list(run.sample_queues or [])
    if env := settings.current().sample_queues:
        names += [n.strip() for n in env.split(",") if n.strip()]
    run_id = runcontext.current().run_id
    return list(dict.fromkeys(n.replace("{run_id}", run_id) for n in names))


def start(environment: Environment, run: RunSettings) -> QueueSampler | None:
    """Start sampling (if any queue is configured)."""
    queues = configured_queues(run)
    if not queues:
        return None
    sampler = QueueSampler(settings.current().amqp_url, queues, allow_remote=run.allow_remote)
    interval = run.sample_interval

    def loop() -> None:
        while True:
            sampler.sample_once()
            gevent.sleep(interval)

    running: list[gevent.Greenlet] = []

    def begin(**_: Any) -> None:
        if not running:
            running.append(gevent.spawn(loop))

    def finish(**_: Any) -> None:
        for greenlet in running:
            greenlet.kill(block=False)
        sampler.sample_once()
        sampler.inspector.close()

    environment.events.test_start.add_listener(begin)
    environment.events.quitting.add_listener(finish)
    log.info("sampling queue depth every %.0fs: %s", interval, ", ".join(queues))
    return sampler
