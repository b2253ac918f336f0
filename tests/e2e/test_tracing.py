"""Tracing across the pipeline: one trace per challenge, and nothing secret in any span.

The spans are the ones the exporter receives (`RedactingSpanExporter` in front of the SDK's
in-memory exporter), from the maintained instrumentations: FastAPI, Celery, Redis, SQLAlchemy,
requests (the real `twilio` client to the fake Twilio). The operator's option to record
every HTTP header is on, so the API key and Twilio's credentials are offered to the spans.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from mfa_pipeline.bootstrap import Container, bootstrap
from mfa_pipeline.tracing import configure_tracing, shutdown_tracing, tracing_requested
from tests.e2e.test_login_flows import (
    PHONE,
    PHONE_E164,
    create_user,
    enroll_sms,
    last_code,
)
from tests.fixtures.pipeline import MANAGE_KEY, wait_until
from tests.fixtures.twilio import TWILIO_TOKEN

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import httpx
    from mfa_pipeline.clock import FrozenClock
    from opentelemetry.sdk.trace import ReadableSpan

    from mfa_pipeline.config import Settings
    from tests.fakes.fake_twilio import FakeTwilio

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    # What an operator may ask for: every request header on server and client spans.
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", ".*")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST", ".*")
    exporter = InMemorySpanExporter()
    assert configure_tracing("mfa-test", exporter=exporter) is not None
    yield exporter
    shutdown_tracing()


@pytest.fixture
def container(
    spans: InMemorySpanExporter, settings: Settings, clock: FrozenClock
) -> Iterator[Container]:
    """Tracing on before the container exists: its SQL engine is created instrumented."""
    del spans
    built = bootstrap(settings, clock=clock)
    yield built
    built.close()


def attribute_texts(spans: Sequence[ReadableSpan]) -> list[str]:
    """Every attribute of every span and span event, as `name=value` text."""
    texts = []
    for span in spans:
        texts.append(f"span.name={span.name}")
        for event in span.events:
            texts.extend(f"{k}={v}" for k, v in (event.attributes or {}).items())
        texts.extend(f"{k}={v}" for k, v in (span.attributes or {}).items())
    return texts


def leaks(spans: Sequence[ReadableSpan], secrets: dict[str, str]) -> list[str]:
    """`what: attribute` for each secret found; codes only as a run of digits of their own."""
    found = []
    for text in attribute_texts(spans):
        for what, value in secrets.items():
            pattern = rf"(?<!\d){re.escape(value)}(?!\d)" if value.isdigit() else re.escape(value)
            if re.search(pattern, text):
                found.append(f"{what}: {text[:200]}")
    return found


def wait_for_span(exporter: InMemorySpanExporter, predicate: Any) -> list[ReadableSpan]:
    """The spans once one matching `predicate` arrived (the worker's end after its task)."""
    wait_until(lambda: any(predicate(s) for s in exporter.get_finished_spans()))
    return list(exporter.get_finished_spans())


def is_twilio_call(span: ReadableSpan) -> bool:
    url = str((span.attributes or {}).get("url.full") or (span.attributes or {}).get("http.url"))
    return span.kind is SpanKind.CLIENT and "/Messages.json" in url


def is_login_request(span: ReadableSpan) -> bool:
    attributes = span.attributes or {}
    return span.kind is SpanKind.SERVER and attributes.get("http.route") == "/v1/challenges"


def test_tracing_is_off_unless_the_standard_variables_ask_for_it() -> None:
    assert not tracing_requested({})
    assert not tracing_requested({"OTEL_SERVICE_NAME": "mfa"})
    assert not tracing_requested({"OTEL_TRACES_EXPORTER": "none"})
    assert not tracing_requested(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}
    )
    assert tracing_requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert tracing_requested({"OTEL_TRACES_EXPORTER": "otlp"})
    assert configure_tracing("mfa-test", environ={}) is None


def test_an_sms_login_is_one_trace_from_the_api_through_the_queue_to_twilio_without_secrets(
    api: httpx.Client, fake_twilio: FakeTwilio, spans: InMemorySpanExporter, settings: Settings
) -> None:
    user_id = create_user(api)
    enroll_sms(api, fake_twilio, user_id)
    enroll_code = last_code(fake_twilio, 1)
    spans.clear()

    created = api.post("/v1/challenges", json={"user_id": user_id, "factor": "sms"})
    assert created.status_code == 201, created.text
    challenge_id = created.json()["challenge_id"]
    code = last_code(fake_twilio, 2)
    assert fake_twilio.messages[1]["To"] == PHONE_E164
    wait_until(
        lambda: api.get(f"/v1/challenges/{challenge_id}").json()["delivery"]["status"] == "sent"
    )
    verified = api.post(f"/v1/challenges/{challenge_id}/verify", json={"code": code})
    assert verified.json()["status"] == "verified"
    finished = wait_for_span(spans, is_twilio_call)

    (login,) = [s for s in finished if is_login_request(s)]
    trace_id = login.context.trace_id
    in_trace = [s for s in finished if s.context.trace_id == trace_id]
    kinds = {(s.kind, s.name.split("/")[0]) for s in in_trace}
    # API request → publish (headers carry the context) → worker's run → provider → result.
    assert (SpanKind.PRODUCER, "apply_async") in kinds
    assert (SpanKind.CONSUMER, "run") in kinds
    (provider_call,) = [s for s in in_trace if is_twilio_call(s)]
    assert provider_call.context.trace_id == login.context.trace_id
    run = next(s for s in in_trace if s.kind is SpanKind.CONSUMER)
    after = [
        s
        for s in in_trace
        if (s.attributes or {}).get("db.system") == "redis"
        and s.parent is not None
        and s.parent.span_id == run.context.span_id
        and s.start_time > provider_call.end_time
    ]
    assert after, "the delivery's result is written to the store inside the same trace"
    # Another request (the verify) is a trace of its own, not glued to the login's.
    assert any(s.kind is SpanKind.SERVER and s.context.trace_id != trace_id for s in finished)

    secrets = {
        "SMS code": code,
        "enrollment code": enroll_code,
        "phone": PHONE_E164,
        "phone, national": PHONE_E164.removeprefix("+1"),
        "phone, as typed": PHONE,
        "API key": MANAGE_KEY,
        "Twilio auth token": TWILIO_TOKEN,
        "encryption key": settings.encryption_keys[0],
    }
    assert leaks(finished, secrets) == []
    texts = attribute_texts(finished)
    # The headers were offered to the spans, and arrived redacted.
    assert any(t.startswith("http.request.header.authorization=") for t in texts)


def test_a_totp_login_is_traced_without_its_code_or_secret(
    api: httpx.Client, clock: FrozenClock, spans: InMemorySpanExporter, settings: Settings
) -> None:
    user_id = create_user(api)
    spans.clear()
    created = api.post(f"/v1/users/{user_id}/factors/totp")
    secret = created.json()["secret"]
    totp = enroll_totp_with(api, clock, user_id, created.json())
    code = totp.at(clock.now())
    answer = api.post("/v1/challenges", json={"user_id": user_id, "factor": "totp", "code": code})
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "verified"
    replay = api.post("/v1/challenges", json={"user_id": user_id, "factor": "totp", "code": code})
    assert replay.json()["error"]["reason"] == "replayed"

    finished = list(spans.get_finished_spans())
    assert any(is_login_request(s) for s in finished)
    sql = [s for s in finished if (s.attributes or {}).get("db.system") in {"sqlite", "postgresql"}]
    assert sql, "the SQL of the login is traced"
    redis = [s for s in finished if (s.attributes or {}).get("db.system") == "redis"]
    assert redis, "the Redis calls of the login are traced"
    secrets = {
        "TOTP code": code,
        "TOTP secret": secret,
        "otpauth URI": created.json()["otpauth_uri"],
        "API key": MANAGE_KEY,
        "encryption key": settings.encryption_keys[0],
    }
    assert leaks(finished, secrets) == []


def enroll_totp_with(
    api: httpx.Client, clock: FrozenClock, user_id: str, body: dict[str, Any]
) -> Any:
    """Activation of a factor created by the caller (the test needs its secret)."""
    import pyotp  # noqa: PLC0415

    totp = pyotp.TOTP(body["secret"])
    activated = api.post(
        f"/v1/users/{user_id}/factors/{body['factor_id']}/activate",
        json={"code": totp.at(clock.now())},
    )
    assert activated.status_code == 200, activated.text
    clock.advance(30)
    return totp
