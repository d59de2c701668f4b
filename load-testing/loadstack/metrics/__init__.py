"""The Prometheus exporter: ``/metrics`` on the Locust master (port 9646), distributed-correct.

``aggregate`` counts requests into fixed histogram buckets where they happen
(workers, or a local runner); the deltas travel with Locust's worker report and
the master adds them up monotonically, independent of Locust's "reset stats".
``collector`` turns that state and the runner's gauges into metric families;
``server`` serves them with gevent's WSGI server.  Enabled by
``LOCUST_METRICS_EXPORT=1`` (``loadstack run`` sets it unless ``--no-metrics``);
disabled means no listener and no port.
"""

from __future__ import annotations

from loadstack.settings import current


def enabled() -> bool:
    return current().metrics_export
