"""Switching tracing on: the guardian's spans exported over OTLP/HTTP (protobuf).

Configured by the standard variables, read from the guardian's environment only (the
sandbox's environment is an explicit list without them): tracing is on when
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set, unless
`OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`. The exporter reads the rest itself
(`OTEL_EXPORTER_OTLP_*_HEADERS`, `_TIMEOUT`, `_COMPRESSION`), and the resource
`OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`. The headers often hold a backend's API key:
`guardian.secrets` redacts them like any secret.

The OpenTelemetry SDK is the optional extra `otel` (`pip install "sealgate[otel]"`); asked to
export without it, the guardian says so once and runs untraced.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from guardian import telemetry, telemetry_content

if TYPE_CHECKING:
    from protocol.contract import SpanRecord

logger = logging.getLogger("sealgate.guardian.telemetry")

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
#: service.name when OTEL_SERVICE_NAME does not say
DEFAULT_SERVICE_NAME = "sealgate"


def wanted(environ: Mapping[str, str]) -> bool:
    """Whether the environment asks for exported traces."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def start(environ: Mapping[str, str]) -> Callable[[], None] | None:
    """Tracing switched on as `environ` asks; returns the shutdown (flushes what is queued),
    or None when tracing stays off."""
    if not wanted(environ):
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        logger.warning(
            "an OTLP endpoint is set but the OpenTelemetry SDK is not installed"
            ' (pip install "sealgate[otel]"): tracing stays off'
        )
        return None
    from protocol import __version__

    attributes: dict[str, str] = {"service.version": __version__}
    if not environ.get("OTEL_SERVICE_NAME"):
        attributes[SERVICE_NAME] = DEFAULT_SERVICE_NAME
    provider = TracerProvider(resource=Resource.create(attributes))
    processor = BatchSpanProcessor(OTLPSpanExporter())
    provider.add_span_processor(processor)
    telemetry.install(
        provider.get_tracer("sealgate.guardian", __version__),
        sink=sandbox_sink(provider.resource, processor.on_end, __version__),
    )
    if telemetry_content.configure(environ):
        logger.warning(
            "%s=true: prompts and answers are exported on spans (redacted of known secrets)",
            telemetry_content.CAPTURE_VARIABLE,
        )
    meter_provider = start_metrics(environ, provider.resource, __version__)
    logger.info(
        "tracing on: spans%s exported over OTLP/HTTP",
        " and GenAI metrics" if meter_provider is not None else "",
    )

    def shutdown() -> None:
        telemetry.install(None)
        telemetry_content.disable()
        telemetry.install_meters(None)
        provider.shutdown()
        if meter_provider is not None:
            meter_provider.shutdown()

    return shutdown


def sandbox_sink(
    resource: Any, on_end: Callable[[Any], None], version: str
) -> Callable[[Sequence[SpanRecord]], None]:
    """The sandbox's spans, as finished SDK spans of the scope `sealgate.sandbox`, handed to
    the guardian's own span processor (one export, one batch queue)."""
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

    scope = InstrumentationScope("sealgate.sandbox", version)
    sampled = TraceFlags(TraceFlags.SAMPLED)
    kinds = {"server": SpanKind.SERVER, "internal": SpanKind.INTERNAL}

    def sink(records: Sequence[SpanRecord]) -> None:
        for record in records:
            trace_id = int(record.trace_id, 16)
            span_id = int(record.span_id, 16)
            if not trace_id or not span_id:
                continue
            parent = None
            if isinstance(record.parent_span_id, str) and int(record.parent_span_id, 16):
                parent = SpanContext(
                    trace_id,
                    int(record.parent_span_id, 16),
                    is_remote=record.parent_remote,
                    trace_flags=sampled,
                )
            attributes: dict[str, Any] = dict(record.attributes)
            status = Status(StatusCode.UNSET)
            if isinstance(record.error_type, str):
                attributes["error.type"] = record.error_type
                status = Status(StatusCode.ERROR)
            on_end(
                ReadableSpan(
                    name=record.name,
                    context=SpanContext(trace_id, span_id, is_remote=False, trace_flags=sampled),
                    parent=parent,
                    resource=resource,
                    attributes=attributes,
                    kind=kinds[record.kind],
                    status=status,
                    start_time=record.start_ns,
                    end_time=max(record.end_ns, record.start_ns),
                    instrumentation_scope=scope,
                )
            )

    return sink


#: `gen_ai.client.token.usage` buckets (the conventions' advice), and the duration's.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48)


def start_metrics(environ: Mapping[str, str], resource: Any, version: str) -> Any:
    """The GenAI client metrics over OTLP/HTTP, unless `OTEL_METRICS_EXPORTER=none`; returns
    the meter provider (its shutdown flushes), or None."""
    if environ.get("OTEL_METRICS_EXPORTER", "otlp").strip().lower() == "none":
        return None
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

    views = [
        View(
            instrument_name="gen_ai.client.token.usage",
            aggregation=ExplicitBucketHistogramAggregation(TOKEN_BUCKETS),
        ),
        View(
            instrument_name="gen_ai.client.operation.duration",
            aggregation=ExplicitBucketHistogramAggregation(DURATION_BUCKETS),
        ),
        View(
            instrument_name="gen_ai.client.operation.time_to_first_chunk",
            aggregation=ExplicitBucketHistogramAggregation(DURATION_BUCKETS),
        ),
    ]
    reader = PeriodicExportingMetricReader(OTLPMetricExporter())
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader], views=views)
    meter = meter_provider.get_meter("sealgate.guardian", version)
    telemetry.install_meters(
        _GenAIMeters(
            meter.create_histogram(
                "gen_ai.client.token.usage", unit="{token}", description="Tokens per attempt"
            ),
            meter.create_histogram(
                "gen_ai.client.operation.duration",
                unit="s",
                description="Duration of each attempt at a provider",
            ),
            meter.create_histogram(
                "gen_ai.client.operation.time_to_first_chunk",
                unit="s",
                description="Time from sending a streamed attempt to its first chunk",
            ),
        )
    )
    return meter_provider


class _GenAIMeters:
    def __init__(self, tokens: Any, duration: Any, first_chunk: Any) -> None:
        self._tokens = tokens
        self._duration = duration
        self._first_chunk = first_chunk

    def attempt(
        self,
        attributes: Mapping[str, Any],
        duration_s: float,
        input_tokens: int | None,
        output_tokens: int | None,
        first_chunk_s: float | None,
    ) -> None:
        self._duration.record(duration_s, attributes)
        if first_chunk_s is not None:
            self._first_chunk.record(first_chunk_s, attributes)
        for kind, count in (("input", input_tokens), ("output", output_tokens)):
            if count is not None:
                self._tokens.record(count, {**attributes, "gen_ai.token.type": kind})
