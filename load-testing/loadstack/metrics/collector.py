"""Metric families for ``/metrics``, built on each scrape from the aggregated state and the runner.

Every series carries ``run_id`` and ``profile`` labels.  Labels rather than only an
info metric: each run gets its own series, so ``rate()`` never mixes two runs and
dashboards filter with a plain ``{run_id=~"$run_id"}``; the price, one set of
series per run, is what a load-testing Prometheus is for.  ``loadstack_run_info``
adds the target host (kept off the other series: it can be long and it is the
same for the whole run).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import accumulate
from typing import Any

from locust.env import Environment
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar

from loadstack import masking
from loadstack.inspect.rabbitmq import QueueSampler
from loadstack.metrics.aggregate import BUCKETS, RequestMetrics, RequestTally

WORKER_STATES = ("ready", "spawning", "running", "stopped", "missing")


def _histogram(family: HistogramMetricFamily, labels: list[str], tally: RequestTally) -> None:
    """One histogram series; a bucket with an exemplar carries it (served in OpenMetrics only)."""
    cumulative = list(accumulate(tally.buckets))
    bounds = [*map(repr, BUCKETS), "+Inf"]
    buckets: list[Any] = []
    for index, (bound, count) in enumerate(zip(bounds, cumulative, strict=True)):
        exemplar = tally.exemplars.get(index)
        if exemplar is None:
            buckets.append((bound, count))
        else:
            trace_id, span_id, seconds, at = exemplar
            buckets.append((bound, count, Exemplar({"trace_id": trace_id, "span_id": span_id}, seconds, at)))
    family.add_metric(labels, buckets, tally.seconds)


def _masked(family: Any) -> Any:
    """Label values (request names, error messages) pass the masker before anyone scrapes them."""
    mask = masking.current()
    family.samples = [s._replace(labels={k: mask(v) for k, v in s.labels.items()}) for s in family.samples]
    return family


class Masked(Collector):
    """Another feature's collector, its label values masked like loadstack's own."""

    def __init__(self, inner: Collector) -> None:
        self.inner = inner

    def collect(self) -> Iterator[Any]:
        return (_masked(family) for family in self.inner.collect())


class LoadstackCollector(Collector):
    def __init__(
        self,
        environment: Environment,
        metrics: RequestMetrics,
        run_id: str,
        profile: str,
        host: str,
        sampler: QueueSampler | None = None,
    ) -> None:
        self.env = environment
        self.sampler = sampler
        self.metrics = metrics
        self.run = [run_id, profile]
        self.host = host
        self.chains: set[str] = set()

    def collect(self) -> Iterator[Any]:
        return (_masked(family) for family in self._families())

    def _families(self) -> Iterator[Any]:
        base = ["run_id", "profile"]
        info = InfoMetricFamily("loadstack_run", "The run this exporter belongs to", labels=base)
        info.add_metric(self.run, {"host": self.host})
        yield info

        requests = CounterMetricFamily(
            "locust_requests", "Requests by outcome", labels=[*base, "method", "name", "status"]
        )
        duration = HistogramMetricFamily(
            "locust_request_duration_seconds", "Request duration", labels=[*base, "method", "name"]
        )
        chain_duration = HistogramMetricFamily(
            "loadstack_chain_duration_seconds", "End-to-end duration of a chain run", labels=[*base, "chain"]
        )
        step_duration = HistogramMetricFamily(
            "loadstack_chain_step_duration_seconds",
            "Duration of a chain step",
            labels=[*base, "chain", "step"],
        )
        self.metrics.sync()
        snapshot = self.metrics.by_request()
        self.chains |= {name for (method, name) in snapshot if method == "CHAIN"}
        for (method, name), tally in sorted(snapshot.items()):
            requests.add_metric([*self.run, method, name, "success"], tally.ok)
            requests.add_metric([*self.run, method, name, "failure"], tally.failed)
            _histogram(duration, [*self.run, method, name], tally)
            if method == "CHAIN":
                _histogram(chain_duration, [*self.run, name], tally)
            else:
                chain, sep, step = name.partition("/")
                if sep and chain in self.chains:
                    _histogram(step_duration, [*self.run, chain, step], tally)
        yield requests
        yield duration
        yield chain_duration
        yield step_duration

        errors = CounterMetricFamily(
            "locust_errors", "Failed requests by error", labels=[*base, "method", "name", "exception"]
        )
        for (method, name, error), count in sorted(self.metrics.errors.items()):
            errors.add_metric([*self.run, method, name, error], count)
        yield errors

        runner = self.env.runner
        users = GaugeMetricFamily("locust_users_active", "Running users", labels=base)
        users.add_metric(self.run, runner.user_count if runner else 0)
        yield users
        per_class = GaugeMetricFamily(
            "locust_users_active_per_class", "Running users per user class", labels=[*base, "user_class"]
        )
        counts = (
            getattr(runner, "reported_user_classes_count", None)
            or getattr(runner, "user_classes_count", {})
            or {}
        )
        for user_class, count in sorted(counts.items()):
            per_class.add_metric([*self.run, user_class], count)
        yield per_class
        rps = GaugeMetricFamily(
            "locust_requests_per_second", "Current requests per second (all requests)", labels=base
        )
        rps.add_metric(self.run, self.env.stats.total.current_rps if runner else 0.0)
        yield rps

        clients = getattr(runner, "clients", None)
        if clients is not None:
            workers = GaugeMetricFamily("locust_workers", "Workers by state", labels=[*base, "state"])
            for state in WORKER_STATES:
                workers.add_metric([*self.run, state], sum(1 for c in clients.values() if c.state == state))
            yield workers

        sampler = self.sampler
        if sampler is not None:
            depth = GaugeMetricFamily(
                "loadstack_queue_messages", "Messages ready in a queue (sampled)", labels=[*base, "queue"]
            )
            consumers = GaugeMetricFamily(
                "loadstack_queue_consumers", "Consumers of a queue (sampled)", labels=[*base, "queue"]
            )
            for queue, (messages, count) in sorted(sampler.latest.items()):
                depth.add_metric([*self.run, queue], messages)
                consumers.add_metric([*self.run, queue], count)
            yield depth
            yield consumers
