"""OpenTelemetry spans through opentelemetry-api only: a no-op until a deployment installs and configures an SDK
(e.g. ``opentelemetry-sdk`` with ``OTEL_*`` exporter variables and ``opentelemetry-instrument``)."""

from __future__ import annotations

from opentelemetry import trace

TRACER_NAME = "mediasvc"


def tracer() -> trace.Tracer:
    # Looked up per call so a provider configured after import (tests, opentelemetry-instrument) is used.
    return trace.get_tracer(TRACER_NAME)
