"""Queue depth sampling during a run (master side): a greenlet polling passive declares.

Queues come from the profile's ``sample_queues`` (or ``$LOADSTACK_SAMPLE_QUEUES``,
comma separated); ``{run_id}`` in a name is replaced by the run id.  The samples
end up in ``summary.json`` under ``queues`` and in the exporter's
``loadstack_queue_messages`` / ``loadstack_queue_consumers`` gauges.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import gevent
from locust.env import Environment

from loadstack import runcontext
from loadstack.inspect.rabbitmq import QueueSampler

log = logging.getLogger("loadstack.sampling")


def configured_queues(settings: dict[str, Any]) -> list[str]:
    names = list(settings.get("sample_queues") or [])
    if env := os.environ.get("LOADSTACK_SAMPLE_QUEUES"):
        names += [n.strip() for n in env.split(",") if n.strip()]
    run_id = runcontext.current().run_id
    return list(dict.fromkeys(n.replace("{run_id}", run_id) for n in names))


def start(environment: Environment, settings: dict[str, Any]) -> QueueSampler | None:
    """Start sampling (if any queue is configured); the sampler is also ``environment.loadstack_queue_sampler``."""
    queues = configured_queues(settings)
    if not queues:
        return None
    url = os.environ.get("LOADSTACK_AMQP_URL") or "amqp://guest:guest@127.0.0.1:5672//"
    sampler = QueueSampler(url, queues, allow_remote=os.environ.get("LOADSTACK_ALLOW_REMOTE") == "1")
    interval = float(settings.get("sample_interval") or 5)

    def loop() -> None:
        while True:
            sampler.sample_once()
            gevent.sleep(interval)

    def begin(**_: Any) -> None:
        if not getattr(sampler, "_greenlet", None):
            sampler._greenlet = gevent.spawn(loop)  # type: ignore[attr-defined]

    def finish(**_: Any) -> None:
        greenlet = getattr(sampler, "_greenlet", None)
        if greenlet is not None:
            greenlet.kill(block=False)
        sampler.sample_once()
        sampler.inspector.close()

    environment.events.test_start.add_listener(begin)
    environment.events.quitting.add_listener(finish)
    environment.loadstack_queue_sampler = sampler  # type: ignore[attr-defined]
    log.info("sampling queue depth every %.0fs: %s", interval, ", ".join(queues))
    return sampler
