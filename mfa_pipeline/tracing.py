"""OpenTelemetry tracing, off unless the standard `OTEL_*` variables turn it on.

One trace per challenge: the API request (FastAPI), its Redis and SQL calls, the Celery
publish whose task headers carry the trace context, the worker's task run, the provider call
(twilio and pyfcm speak `requests`, the result webhook `httpx`) and the store update with the
result. Every span comes from a maintained instrumentation; none is written by hand.

Spans leave the process only through `RedactingSpanExporter`: Redis statements are cut to
their command names (arguments carry code hashes and challenge state; the instrumentation
masks them too), and every other
attribute goes through the log redaction (secret-named keys, `name=secret` pairs and
credentials in URLs, phone numbers, 6-digit runs in messages), so a code, secret, token or
full phone number never reaches a trace backend, whatever an instrumentation records.

The packages are the `tracing` extra; asking for tracing without them is a startup error.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any, cast

from mfa_pipeline.logs import get_logger, scrub_attribute

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from fastapi import FastAPI
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    from mfa_pipeline.adapters.redis_store import RedisClient

log = get_logger(__name__)

# Health checks and scrapes arrive every few seconds and say nothing about a login.
EXCLUDED_URLS = "healthz,readyz,metrics"
_TRUE = frozenset({"1", "true", "yes", "on"})
_lock = threading.Lock()
_state: dict[str, Any] = {}


def tracing_requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the standard variables ask for traces: an exporter or an OTLP endpoint named."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE:
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def _exporters(environ: Mapping[str, str]) -> list[SpanExporter]:
    """The exporters `OTEL_TRACES_EXPORTER` names (`otlp` by default; `console` too)."""
    names = [n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")]
    exporters: list[SpanExporter] = []
    for name in filter(None, names):
        if name == "otlp":
            protocol = environ.get(
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            )
            if protocol != "http/protobuf":
                raise ValueError(
                    f"OTLP protocol {protocol!r} is not supported here: use http/protobuf"
                )
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
                OTLPSpanExporter,
            )

            exporters.append(OTLPSpanExporter())  # endpoint, headers, timeout: OTEL_* variables
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter  # noqa: PLC0415

            exporters.append(ConsoleSpanExporter())
        elif name != "none":
            raise ValueError(f"OTEL_TRACES_EXPORTER {name!r} is not supported: otlp or console")
    return exporters


def configure_tracing(
    service_name: str,
    *,
    exporter: SpanExporter | None = None,
    environ: Mapping[str, str] | None = None,
) -> TracerProvider | None:
    """Install tracing in this process once; None when the environment does not ask for it.

    `exporter` (tests: the SDK's in-memory exporter) is used as given, synchronously, instead
    of the environment's. Call it before the container is built: SQLAlchemy is instrumented
    by wrapping `create_engine`. A prefork worker's children inherit it through the fork (the
    SDK restarts its export thread there).
    """
    env = os.environ if environ is None else environ
    if exporter is None and not tracing_requested(env):
        return None
    with _lock:
        if "provider" in _state:
            return _state["provider"]  # type: ignore[no-any-return]
        provider = _install(service_name, exporter, env)
        _state["provider"] = provider
    log.info("tracing_on", service=service_name)
    return provider


def _install(
    service_name: str, exporter: SpanExporter | None, env: Mapping[str, str]
) -> TracerProvider:
    # Imported here: the packages are an optional extra, and a process without tracing pays
    # nothing for them.
    from opentelemetry import trace  # noqa: PLC0415
    from opentelemetry.instrumentation.celery import CeleryInstrumentor  # noqa: PLC0415
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor  # noqa: PLC0415
    from opentelemetry.instrumentation.requests import RequestsInstrumentor  # noqa: PLC0415
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor  # noqa: PLC0415
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
        BatchSpanProcessor,
        SimpleSpanProcessor,
    )

    # The role's name (`mfa-api`, `mfa-worker`) unless OTEL_SERVICE_NAME gives one;
    # OTEL_RESOURCE_ATTRIBUTES adds the rest.
    resource = Resource.create({SERVICE_NAME: env.get("OTEL_SERVICE_NAME") or service_name})
    provider = TracerProvider(resource=resource)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(_redacting(exporter)))
    else:
        for each in _exporters(env):
            provider.add_span_processor(BatchSpanProcessor(_redacting(each)))
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
    # Its declared range stops below SQLAlchemy 2.1, whose engine events it hooks are
    # unchanged; the tracing test checks that SQL spans arrive.
    SQLAlchemyInstrumentor().instrument(
        tracer_provider=provider, enable_commenter=False, skip_dep_check=True
    )
    RequestsInstrumentor().instrument(tracer_provider=provider)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    CeleryInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    return provider


def instrument_redis(client: RedisClient) -> RedisClient:
    """Spans for the store's own Redis client, when tracing is on in this process.

    Only this client: instrumenting redis-py as a whole would also trace the Celery broker's
    polling and acknowledgements, a stream of spans that belong to no login.
    """
    provider = _state.get("provider")
    if provider is not None:
        from opentelemetry.instrumentation.redis import RedisInstrumentor  # noqa: PLC0415

        RedisInstrumentor.instrument_client(client, tracer_provider=provider)
        _state.setdefault("redis_clients", []).append(client)
    return client


def instrument_app(app: FastAPI) -> None:
    """Spans for the app's requests, when tracing is on in this process."""
    provider = _state.get("provider")
    if provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor  # noqa: PLC0415

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=EXCLUDED_URLS,
        exclude_spans=["receive", "send"],
    )


def shutdown_tracing() -> None:
    """Flush and remove what `configure_tracing` installed (tests; a process's exit)."""
    with _lock:
        provider = _state.pop("provider", None)
        if provider is None:
            return
        from opentelemetry.instrumentation.celery import CeleryInstrumentor  # noqa: PLC0415
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor  # noqa: PLC0415
        from opentelemetry.instrumentation.redis import RedisInstrumentor  # noqa: PLC0415
        from opentelemetry.instrumentation.requests import RequestsInstrumentor  # noqa: PLC0415
        from opentelemetry.instrumentation.sqlalchemy import (  # noqa: PLC0415
            SQLAlchemyInstrumentor,
        )

        for client in _state.pop("redis_clients", []):
            RedisInstrumentor.uninstrument_client(client)
        for instrumentor in (
            SQLAlchemyInstrumentor(),
            RequestsInstrumentor(),
            HTTPXClientInstrumentor(),
            CeleryInstrumentor(),  # type: ignore[no-untyped-call]
        ):
            instrumentor.uninstrument()
        provider.shutdown()


def _redis_statement(statement: str) -> str:
    """`EVALSHA <sha> 2 k1 k2 a1` → `EVALSHA`; a pipeline's lines, each cut the same way."""
    return "\n".join(line.split(" ", 1)[0] for line in statement.splitlines())


def redact_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Span attributes as they may leave the process."""
    redis = attributes.get("db.system") == "redis"
    out: dict[str, Any] = {}
    for name, value in attributes.items():
        if redis and name == "db.statement" and isinstance(value, str):
            out[name] = _redis_statement(value)
        else:
            out[name] = scrub_attribute(name, value)
    return out


def _redacting(inner: SpanExporter) -> SpanExporter:
    # Duck-typed rather than a subclass: this module must import without the SDK installed.
    return cast("SpanExporter", RedactingSpanExporter(inner))


class RedactingSpanExporter:
    """Hands spans on with their attributes (and their events' attributes) redacted."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([_redacted(span) for span in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def _redacted(span: ReadableSpan) -> ReadableSpan:
    from opentelemetry.sdk.trace import Event, ReadableSpan  # noqa: PLC0415

    events = [
        Event(e.name, redact_attributes(e.attributes or {}), e.timestamp) for e in span.events
    ]
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=redact_attributes(span.attributes or {}),
        events=events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
