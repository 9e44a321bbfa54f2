"""A real OTLP/HTTP trace receiver on 127.0.0.1: what a collector would get from SealGate.

It answers `POST /v1/traces` (protobuf) in a thread of its own, decodes each export with
`opentelemetry-proto` and keeps the raw bodies too (a canary scan reads every byte sent).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def value_of(value: AnyValue) -> Any:
    """An attribute's value as Python (arrays as tuples), by the type it was sent as."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(value_of(v) for v in value.array_value.values)
    return getattr(value, kind) if kind else None


@dataclass
class Span:
    """One received span, flattened."""

    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    status_code: int


@dataclass
class Point:
    """One exported histogram point (cumulative)."""

    name: str
    unit: str
    attributes: dict[str, Any]
    count: int
    sum: float


@dataclass
class OTLPReceiver:
    bodies: list[bytes] = field(default_factory=list)
    metric_bodies: list[bytes] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver._received(self.path, dict(self.headers.items()), body)
                response = (
                    ExportMetricsServiceResponse()
                    if self.path == "/v1/metrics"
                    else ExportTraceServiceResponse()
                )
                reply = response.SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OTLPReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _received(self, path: str, headers: dict[str, str], body: bytes) -> None:
        if path == "/v1/metrics":
            self._metrics(headers, body)
            return
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        spans = []
        for resource_spans in request.resource_spans:
            resource = {a.key: value_of(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        Span(
                            service=str(resource.get("service.name", "")),
                            name=span.name,
                            kind=span.kind,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            attributes={a.key: value_of(a.value) for a in span.attributes},
                            events=[
                                (e.name, {a.key: value_of(a.value) for a in e.attributes})
                                for e in span.events
                            ],
                            status_code=span.status.code,
                        )
                    )
        with self._lock:
            self.paths.append(path)
            self.headers.append({k.lower(): v for k, v in headers.items()})
            self.bodies.append(body)
            self.spans.extend(spans)

    def _metrics(self, headers: dict[str, str], body: bytes) -> None:
        request = ExportMetricsServiceRequest()
        request.ParseFromString(body)
        points = []
        for resource_metrics in request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    for point in metric.histogram.data_points:
                        attributes = {a.key: value_of(a.value) for a in point.attributes}
                        points.append(
                            Point(metric.name, metric.unit, attributes, point.count, point.sum)
                        )
        with self._lock:
            self.metric_bodies.append(body)
            self.points.extend(points)

    def wait_for_point(self, name: str, timeout: float = 15.0, **attributes: Any) -> Point:
        """A histogram point of metric `name` whose attributes include `attributes`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for point in self.points:
                    if point.name == name and attributes.items() <= point.attributes.items():
                        return point
            time.sleep(0.05)
        raise AssertionError(f"no {name} point with {attributes}: {self.points}")

    def wait_for(self, name: str, count: int = 1, timeout: float = 15.0) -> list[Span]:
        """The spans called `name` once `count` of them arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = [s for s in self.spans if s.name == name]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{count} span(s) {name!r} not received: {self.spans}")

    def wait_in_trace(
        self, trace_id: str, names: set[str], timeout: float = 15.0
    ) -> dict[str, Span]:
        """The spans of `trace_id` by name, once every one of `names` arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = {s.name: s for s in self.spans if s.trace_id == trace_id}
            if names <= set(found):
                return found
            time.sleep(0.05)
        raise AssertionError(
            f"trace {trace_id}: {sorted(found)} arrived, not all of {sorted(names)}"
        )
