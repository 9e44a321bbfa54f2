"""Tracing's settings (`guardian.telemetry_export`): off unless an OTLP endpoint is set, and
the exporter's headers (a tracing backend's API key, often) redacted like any secret."""

from __future__ import annotations

import pytest

from guardian.redact import Redactor
from guardian.secrets import load_secrets
from guardian.telemetry_export import wanted


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "gw"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, False),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "TRUE"},
            False,
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
                "OTEL_TRACES_EXPORTER": "none",
            },
            False,
        ),
    ],
)
def test_tracing_is_on_only_with_an_endpoint(environ: dict[str, str], on: bool) -> None:
    assert wanted(environ) is on


def test_otlp_headers_are_redacted_whole_and_per_header() -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_HEADERS": "api-key=backend-key-0123456789,x-team=observability-team",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "authorization=Bearer%20trace-token-abcdef",
        "OTEL_SERVICE_NAME": "sealgate-prod",
    }
    secrets = load_secrets(wanted=[], environ=environ, env_file=None, credentials_dir=None)
    redactor = Redactor(secrets.values_to_redact())
    text = "export failed: api-key=backend-key-0123456789 team observability-team"
    text += " auth Bearer%20trace-token-abcdef service sealgate-prod"
    redacted = redactor.redact(text)
    assert "backend-key-0123456789" not in redacted
    assert "observability-team" not in redacted
    assert "trace-token-abcdef" not in redacted
    assert "sealgate-prod" in redacted  # a service name is no secret
