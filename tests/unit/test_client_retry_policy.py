"""The client's retry decisions and error mapping, without a server."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from mfa_pipeline.client import _calls as calls
from mfa_pipeline.client import errors


def refused(
    status: int, code: str, retry_after: str | None = None, **extra: object
) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after else {}
    body = {"error": {"code": code, "message": "no", **extra}}
    return httpx.Response(status, json=body, headers=headers)


def test_a_rate_limited_answer_is_retried_after_exactly_its_retry_after() -> None:
    error = calls.api_error(refused(429, "rate_limited", "7"))
    assert isinstance(error, errors.RateLimitedError)
    assert calls.RetryPolicy().delay(1, error) == 7


def test_an_unavailable_answer_without_retry_after_backs_off_with_full_jitter() -> None:
    error = calls.api_error(refused(503, "unavailable"))
    policy = calls.RetryPolicy(backoff=1.0, max_backoff=3.0)
    delays = [policy.delay(attempt, error) for attempt in (1, 2, 3)]
    assert all(d is not None and 0 <= d <= cap for d, cap in zip(delays, [1, 2, 3], strict=True))
    assert policy.delay(4, error) is None  # max_retries reached


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (429, "too_many_attempts"),
        (429, "too_many_resends"),
        (400, "invalid_code"),
        (404, "not_found"),
    ],
)
def test_final_answers_are_never_retried(status: int, code: str) -> None:
    assert calls.RetryPolicy().delay(1, calls.api_error(refused(status, code, "1"))) is None


def test_a_retry_after_longer_than_the_policy_allows_is_not_slept() -> None:
    error = calls.api_error(refused(429, "rate_limited", "900"))  # a "not me" push block
    assert calls.RetryPolicy(max_retry_after=30).delay(1, error) is None
    assert error.retry_after == 900


def test_retry_after_may_be_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    seconds = calls.retry_after_seconds(when)
    assert seconds is not None
    assert 110 < seconds <= 120
    assert calls.retry_after_seconds("soon") is None


def test_an_error_code_the_client_does_not_know_still_carries_its_code() -> None:
    error = calls.api_error(refused(418, "brand_new_code", detail="x"))
    assert type(error) is errors.MfaApiError
    assert (error.status, error.error_code, error.details) == (
        418,
        "brand_new_code",
        {"detail": "x"},
    )


def test_an_answer_that_is_not_the_contracts_json_still_raises_an_api_error() -> None:
    error = calls.api_error(httpx.Response(502, text="Bad gateway"))
    assert error.status == 502
    assert error.error_code == "error"


def test_the_details_of_a_wrong_code_are_typed() -> None:
    error = calls.api_error(refused(400, "invalid_code", attempts_remaining=3, reason="clock_skew"))
    assert isinstance(error, errors.InvalidCodeError)
    assert (error.attempts_remaining, error.reason) == (3, "clock_skew")


def test_each_creating_call_carries_its_own_idempotency_key_and_a_retry_reuses_it() -> None:
    first = calls.create_challenge(
        "alice", factor="sms", factor_id=None, context=None, code=None, remember_device=False
    )
    second = calls.create_challenge(
        "alice", factor="sms", factor_id=None, context=None, code=None, remember_device=False
    )
    enrollment = calls.enroll_sms("alice", "+12015550123", None)
    keys = [c.headers["Idempotency-Key"] for c in (first, second, enrollment)]
    assert len(set(keys)) == 3  # one key per logical call
    assert first.idempotent  # the same Call object, hence the same key, is sent on every retry
    chosen = calls.enroll_sms("alice", "+12015550123", None, idempotency_key="mine-1")
    assert chosen.headers["Idempotency-Key"] == "mine-1"
    assert not calls.activate_factor("alice", "f1", "123456").idempotent


def test_a_request_in_progress_is_retried_and_a_reused_key_is_not() -> None:
    policy = calls.RetryPolicy(max_retries=2, backoff=0.5)
    in_progress = errors.RequestInProgressError("the first one still runs", status=409)
    reused = errors.IdempotencyKeyReusedError("another body", status=422)
    assert policy.delay(1, in_progress) is not None
    assert policy.delay(1, reused) is None
