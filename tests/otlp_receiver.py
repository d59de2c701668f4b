"""A local OTLP/HTTP receiver for tests: what loadstack (or the demo) really exported.

It accepts ``POST /v1/traces``, ``/v1/metrics`` and ``/v1/logs`` in OTLP's
HTTP/protobuf encoding (gzip or not) and decodes each body with the official
``opentelemetry-proto`` messages, never a hand-written decoder.  The raw bodies
are kept too, so a test can search every exported byte for a canary secret.

    receiver = OTLPReceiver()
    endpoint = receiver.start()          # "http://127.0.0.1:PORT" for OTEL_EXPORTER_OTLP_ENDPOINT
    ...run something with OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf...
    receiver.spans()                     # flat list of Span dicts (see below)
    receiver.metrics()                   # flat list of Metric protobufs with their resource
    receiver.stop()
"""

from __future__ import annotations

import gzip
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

_MESSAGES = {
    "/v1/traces": (ExportTraceServiceRequest, ExportTraceServiceResponse),
    "/v1/metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse),
    "/v1/logs": (ExportLogsServiceRequest, ExportLogsServiceResponse),
}


def any_value(value: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as the Python value it carries."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def attributes(kvs: Any) -> dict[str, Any]:
    """Repeated ``KeyValue`` as a dict."""
    return {kv.key: any_value(kv.value) for kv in kvs}


class OTLPReceiver:
    """An OTLP/HTTP protobuf endpoint on 127.0.0.1 (an ephemeral port) that records what it receives."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[str, list[Any]] = {path: [] for path in _MESSAGES}
        self.raw: list[bytes] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> str:
        """Listen; return the base endpoint URL (``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                path = self.path.split("?", 1)[0]
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if path not in _MESSAGES:
                    self.send_response(404)
                    self.end_headers()
                    return
                request_cls, response_cls = _MESSAGES[path]
                message = request_cls()
                message.ParseFromString(body)
                with receiver._lock:
                    receiver.raw.append(body)
                    receiver.requests[path].append(message)
                reply = response_cls().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self.endpoint

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=None)
            self._grpc = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> OTLPReceiver:
        self.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()

    # -- what arrived ----------------------------------------------------------------------
    def spans(self) -> list[dict[str, Any]]:
        """Every span received, flattened: ids as hex, attributes/resource as dicts, events, status."""
        with self._lock:
            batches = list(self.requests["/v1/traces"])
        out = []
        for batch in batches:
            for rs in batch.resource_spans:
                resource = attributes(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        out.append(
                            {
                                "name": span.name,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_span_id": span.parent_span_id.hex(),
                                "kind": span.kind,
                                "attributes": attributes(span.attributes),
                                "events": [
                                    {"name": e.name, "attributes": attributes(e.attributes)}
                                    for e in span.events
                                ],
                                "status_code": span.status.code,  # 0 unset, 1 ok, 2 error
                                "status_message": span.status.message,
                                "start_ns": span.start_time_unix_nano,
                                "end_ns": span.end_time_unix_nano,
                                "resource": resource,
                                "scope": ss.scope.name,
                            }
                        )
        return out

    def metrics(self) -> list[dict[str, Any]]:
        """Every metric received: ``{"name", "resource", "scope", "metric"}`` (``metric`` the protobuf)."""
        with self._lock:
            batches = list(self.requests["/v1/metrics"])
        out = []
        for batch in batches:
            for rm in batch.resource_metrics:
                resource = attributes(rm.resource.attributes)
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        out.append(
                            {
                                "name": metric.name,
                                "resource": resource,
                                "scope": sm.scope.name,
                                "metric": metric,
                            }
                        )
        return out

    def raw_bytes(self) -> bytes:
        """Every decoded body received, concatenated (to search for canaries)."""
        with self._lock:
            return b"".join(self.raw)

    def start_grpc(self) -> str:
        """Also listen for OTLP/gRPC traces (the official service stubs); return its endpoint."""
        from concurrent.futures import ThreadPoolExecutor

        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

        if "gevent.monkey" in sys.modules and sys.modules["gevent.monkey"].is_module_patched("threading"):
            # An earlier test imported Locust here (it gevent-patches the process): gRPC's server
            # threads must then cooperate with gevent's hub, or stopping the server blocks for good.
            from grpc.experimental import gevent as grpc_gevent

            grpc_gevent.init_gevent()

        receiver = self

        class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: ExportTraceServiceRequest, context: Any) -> ExportTraceServiceResponse:
                with receiver._lock:
                    receiver.raw.append(request.SerializeToString())
                    receiver.requests["/v1/traces"].append(request)
                return ExportTraceServiceResponse()

        self._grpc = grpc.server(ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(), self._grpc)
        port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        return f"http://127.0.0.1:{port}"

    _grpc: Any = None

    def wait_for(self, predicate: Callable[[OTLPReceiver], bool], timeout: float = 60.0) -> bool:
        """Poll until ``predicate(self)`` holds (readiness, not a fixed sleep); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.05)
        return predicate(self)
