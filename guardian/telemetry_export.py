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
from collections.abc import Callable, Mapping

from guardian import telemetry

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
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    telemetry.install(provider.get_tracer("sealgate.guardian", __version__))
    logger.info("tracing on: spans exported over OTLP/HTTP")

    def shutdown() -> None:
        telemetry.install(None)
        provider.shutdown()

    return shutdown
