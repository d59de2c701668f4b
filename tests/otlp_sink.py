"""The OTLP receiver of the tests (:mod:`tests.otlp_receiver`) seen as typed spans and metric points.

The platform and metrics tests read spans as :class:`Span` records and metrics as (resource,
metric, point) rows; the receiving and decoding (official ``opentelemetry-proto`` messages, no
decoder of our own) is the one in :mod:`tests.otlp_receiver`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.otlp_receiver import OTLPReceiver, attributes

T = TypeVar("T")


@dataclass
class Span:
    """One received span, flattened with its resource's attributes."""

    resource: dict[str, Any]
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    status_code: int
    start_ns: int
    end_ns: int


class OtlpSink:
    """``with OtlpSink() as sink:`` a receiver on a free local port; ``sink.url`` is the base URL."""

    def __init__(self) -> None:
        self.receiver = OTLPReceiver()
        self.url = ""

    def __enter__(self) -> OtlpSink:
        self.url = self.receiver.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.receiver.stop()

    @property
    def traces(self) -> list[ExportTraceServiceRequest]:
        return list(self.receiver.requests["/v1/traces"])

    @property
    def metrics(self) -> list[ExportMetricsServiceRequest]:
        return list(self.receiver.requests["/v1/metrics"])

    @property
    def raw(self) -> list[bytes]:
        return list(self.receiver.raw)

    def spans(self) -> list[Span]:
        fields = Span.__dataclass_fields__
        return [Span(**{k: v for k, v in s.items() if k in fields}) for s in self.receiver.spans()]

    def metric_points(self) -> Iterator[tuple[dict[str, Any], Any, Any]]:
        """(resource attributes, metric, data point) of every metric received, in arrival order."""
        for request in self.metrics:
            for rm in request.resource_metrics:
                resource = attributes(rm.resource.attributes)
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        kind = metric.WhichOneof("data")
                        if kind is None:  # an instrument with no data yet
                            continue
                        for point in getattr(metric, kind).data_points:
                            yield resource, metric, point


def wait_for(what: Callable[[], T], timeout: float = 60.0, every: float = 0.1) -> T:
    """``what()`` once it is truthy (readiness, not a wall-clock assertion); its last value else."""
    deadline = time.monotonic() + timeout
    while True:
        result = what()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(every)
