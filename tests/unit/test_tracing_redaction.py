"""What a span may carry out of the process: the redaction in front of every exporter."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mfa_pipeline.logs import REDACTED
from mfa_pipeline.tracing import RedactingSpanExporter

CODE = "493817"
PHONE = "+12015550123"


def exported(
    attributes: dict[str, object], event: dict[str, object] | None = None
) -> tuple[dict[str, object], dict[str, object]]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(RedactingSpanExporter(memory)))
    with provider.get_tracer("test").start_as_current_span("span") as span:
        span.set_attributes(attributes)  # type: ignore[arg-type]
        if event is not None:
            span.add_event("exception", event)  # type: ignore[arg-type]
    provider.shutdown()
    (finished,) = memory.get_finished_spans()
    events = dict(finished.events[0].attributes or {}) if finished.events else {}
    return dict(finished.attributes or {}), events


def test_redis_statements_keep_only_their_command_names() -> None:
    attributes, _ = exported(
        {
            "db.system": "redis",
            "db.statement": f"EVALSHA 3fa9 2 mfa:c:{{s1}}abc {CODE} {PHONE}\nPUBLISH ch x",
        }
    )
    assert attributes["db.statement"] == "EVALSHA\nPUBLISH"


def test_codes_tokens_and_phones_in_urls_headers_and_messages_are_redacted() -> None:
    attributes, event = exported(
        {
            "url.full": f"https://hooks.example/cb?code={CODE}&token=s3cr3t-value",
            "http.url": "https://user:hunter2@hooks.example/cb",
            "http.request.header.authorization": ("Bearer bench_kkkkkkkkkkkkkkkkkkkkkkkkkk",),
            "http.request.header.x-api-key": ("abc123",),
            "messaging.destination": f"to {PHONE}",
        },
        {"exception.message": f"wrong code {CODE} for {PHONE}", "exception.type": "ValueError"},
    )
    text = repr(attributes) + repr(event)
    for secret in (CODE, "s3cr3t-value", "hunter2", "bench_k", "abc123", PHONE):
        assert secret not in text
    assert attributes["http.request.header.authorization"] == REDACTED
    assert event["exception.type"] == "ValueError"


def test_harmless_attributes_stay_readable() -> None:
    attributes, _ = exported(
        {
            "http.response.status_code": 201,
            "http.route": "/v1/challenges/{challenge_id}",
            "db.system": "sqlite",
            "db.statement": "UPDATE factors SET last_totp_step=? WHERE factors.factor_id = ?",
            "celery.task_name": "mfa.deliver_sms",
        }
    )
    assert attributes["http.response.status_code"] == 201
    assert attributes["http.route"] == "/v1/challenges/{challenge_id}"
    assert attributes["db.statement"].startswith("UPDATE factors SET last_totp_step=?")  # type: ignore[union-attr]
    assert attributes["celery.task_name"] == "mfa.deliver_sms"
