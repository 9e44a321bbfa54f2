"""`Metrics.child` keeps each labelled series once (sandbox/metrics.py): what it counts must
be exactly what `labels()` counts, in the same series of the exposition."""

from __future__ import annotations

from prometheus_client import generate_latest

from sandbox.metrics import Metrics
from sandbox.middleware import content_type


def test_a_child_is_the_labelled_series_itself() -> None:
    metrics = Metrics()
    metrics.child(metrics.requests, "/v1", "POST", "200").inc()
    metrics.child(metrics.requests, "/v1", "POST", "200").inc()
    metrics.requests.labels("/v1", "POST", "200").inc()
    metrics.child(metrics.requests, "/v1", "POST", "500").inc()
    assert metrics.child(metrics.requests, "/v1", "POST", "200") is metrics.requests.labels(
        "/v1", "POST", "200"
    )
    text = generate_latest(metrics.registry).decode()
    assert 'sealgate_http_requests_total{method="POST",route="/v1",status="200"} 3.0' in text
    assert 'sealgate_http_requests_total{method="POST",route="/v1",status="500"} 1.0' in text


def test_the_same_values_of_two_metrics_are_two_series() -> None:
    metrics = Metrics()
    metrics.child(metrics.streams, "/v1").inc()
    metrics.child(metrics.latency, "/v1").observe(0.5)
    text = generate_latest(metrics.registry).decode()
    assert 'sealgate_open_streams{route="/v1"} 1.0' in text
    assert 'sealgate_http_request_seconds_count{route="/v1"} 1.0' in text


def test_content_type_reads_the_start_message() -> None:
    start = {"type": "http.response.start", "status": 200, "headers": [(b"x", b"1")]}
    assert content_type(start) == b""
    start["headers"] = [(b"x", b"1"), (b"content-type", b"text/event-stream")]
    assert content_type(start) == b"text/event-stream"
    assert content_type({"type": "http.response.start", "status": 204}) == b""
