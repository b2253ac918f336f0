"""The SMS send gate: region lists at send time, clear errors, logs without phone numbers."""

from __future__ import annotations

import contextlib
import dataclasses
import json

import pytest
from structlog.testing import capture_logs

from mfa_pipeline.adapters.crypto import AesGcmSecretBox, generate_key, parse_keys
from mfa_pipeline.adapters.phonenumbers_parser import PhonenumbersPhoneNumbers, sms_destination
from mfa_pipeline.domain.challenges import FactorType
from mfa_pipeline.domain.errors import InvalidPhoneError, RateLimitedError
from mfa_pipeline.domain.factors import Factor, FactorStatus
from mfa_pipeline.domain.limits import RateLimit
from mfa_pipeline.domain.sms_spend import SmsSpendLimits, SmsUnavailableError
from mfa_pipeline.services.sms_spend import SmsSendGate
from mfa_pipeline.services.verification import phone_context
from tests.doubles.clock import FrozenClock
from tests.doubles.sms_spend import InMemorySmsSpendGuard

LIMITS = SmsSpendLimits(
    per_number=RateLimit(2, 3600),
    per_prefix=RateLimit(50, 3600),
    per_country=RateLimit(50, 3600),
    breaker_per_minute=3,
    breaker_scoped_per_minute=1000,
    breaker_cooldown_seconds=60,
)
UK = "+447400123456"


def make_gate(
    *,
    limits: SmsSpendLimits = LIMITS,
    allow_non_geographic: bool = False,
    **regions: list[str],
) -> tuple[SmsSendGate, AesGcmSecretBox, FrozenClock]:
    box = AesGcmSecretBox(parse_keys([generate_key()]))
    clock = FrozenClock(1_700_000_000.0)
    gate = SmsSendGate(
        guard=InMemorySmsSpendGuard(limits=limits),
        secrets_box=box,
        clock=clock,
        limits=limits,
        phones=PhonenumbersPhoneNumbers(),
        allowed_regions=regions.get("allowed", []),
        denied_regions=regions.get("denied", []),
        allow_non_geographic=allow_non_geographic,
    )
    return gate, box, clock


def sms_factor(box: AesGcmSecretBox, number: str) -> Factor:
    base = Factor("f_1", "alice", FactorType.SMS, FactorStatus.ACTIVE, created_at=0.0)
    return Factor(
        "f_1",
        "alice",
        FactorType.SMS,
        FactorStatus.ACTIVE,
        created_at=0.0,
        phone_ciphertext=box.encrypt(number, context=phone_context(base)),
        phone_last2=number[-2:],
    )


def test_an_enrolled_number_in_a_newly_denied_region_gets_no_more_codes() -> None:
    gate, box, _ = make_gate(denied=["gb"])
    with pytest.raises(InvalidPhoneError) as refused:
        gate.admit_factor(sms_factor(box, UK), application="manage")
    assert refused.value.details["region"] == "GB"


def test_a_number_outside_the_allowed_regions_gets_no_codes() -> None:
    gate, _, _ = make_gate(allowed=["US", "CA"])
    with pytest.raises(InvalidPhoneError):
        gate.admit_number(UK, user_id="alice", application="manage")
    gate.admit_number("+12015550123", user_id="alice", application="manage")


def test_a_number_over_its_limit_is_rate_limited_with_the_scope_and_a_wait() -> None:
    gate, box, _ = make_gate()
    factor = sms_factor(box, UK)
    gate.admit_factor(factor, application="manage")
    gate.admit_factor(factor, application="manage")
    with pytest.raises(RateLimitedError) as refused:
        gate.admit_factor(factor, application="manage")
    assert refused.value.details == {"limit": "sms_number"}
    assert refused.value.retry_after == 3600


def test_a_refunded_send_can_be_used_again() -> None:
    gate, _, _ = make_gate()
    gate.admit_number(UK, user_id="alice", application="manage")
    gate.refund(gate.admit_number(UK, user_id="alice", application="manage"))
    gate.admit_number(UK, user_id="alice", application="manage")


def test_the_open_breaker_alerts_once_and_refuses_with_sms_unavailable() -> None:
    gate, _, clock = make_gate()
    for n in range(3):
        gate.admit_number(f"+1201555{n:04d}", user_id="alice", application="manage")
    with capture_logs() as logs:
        for n in range(5):
            with pytest.raises(SmsUnavailableError) as refused:
                gate.admit_number(f"+1202555{n:04d}", user_id="bob", application="manage")
            assert refused.value.code == "sms_unavailable"
            assert 1 <= refused.value.retry_after <= 60
    assert [e["event"] for e in logs].count("sms_circuit_open") == 1
    clock.advance(61)
    gate.admit_number("+12025550000", user_id="bob", application="manage")


def test_refusal_logs_never_carry_the_phone_number() -> None:
    gate, _, _ = make_gate(denied=["FR"])
    with capture_logs() as logs:
        for _ in range(3):
            with contextlib.suppress(RateLimitedError):
                gate.admit_number(UK, user_id="alice", application="manage")
        with pytest.raises(InvalidPhoneError):
            gate.admit_number("+33612345678", user_id="alice", application="manage")
    text = json.dumps(logs)
    assert logs
    assert "7400123456" not in text
    assert "612345678" not in text


@pytest.mark.parametrize("number", ["+881612345678", "+8823421234", "+870301234567"])
def test_a_satellite_or_other_non_geographic_number_gets_no_codes_by_default(number: str) -> None:
    gate, _, _ = make_gate()
    with capture_logs() as logs, pytest.raises(InvalidPhoneError) as refused:
        gate.admit_number(number, user_id="alice", application="manage")
    assert refused.value.details == {"reason": "non_geographic"}
    assert number[1:] not in json.dumps(logs) + refused.value.message


def test_a_deployment_that_allows_non_geographic_numbers_counts_each_calling_code_apart() -> None:
    limits = dataclasses.replace(
        LIMITS, per_number=RateLimit(50, 3600), per_country=RateLimit(2, 3600)
    )
    gate, _, _ = make_gate(limits=limits, allow_non_geographic=True)
    for number in ("+881612345678", "+881612345679"):
        gate.admit_number(number, user_id="alice", application="manage")
    with pytest.raises(RateLimitedError) as full:
        gate.admit_number("+881612345670", user_id="alice", application="manage")
    assert full.value.details == {"limit": "sms_country"}
    # +882 is another network, not the same "001" bucket as +881.
    gate.admit_number("+8823421234", user_id="alice", application="manage")


def test_non_geographic_calling_codes_are_separate_countries() -> None:
    satellite, network = sms_destination("+881612345678"), sms_destination("+8823421234")
    assert (satellite.country, satellite.non_geographic) == ("+881", True)
    assert (network.country, network.non_geographic) == ("+882", True)
    assert (sms_destination(UK).country, sms_destination(UK).non_geographic) == ("GB", False)


def test_an_open_breaker_of_one_application_and_country_leaves_the_others_sending() -> None:
    limits = dataclasses.replace(
        LIMITS, per_number=RateLimit(50, 3600), breaker_per_minute=1000, breaker_scoped_per_minute=2
    )
    gate, _, _ = make_gate(limits=limits)
    for n in range(2):
        gate.admit_number(f"+1201555{n:04d}", user_id="alice", application="manage")
    with capture_logs() as logs, pytest.raises(SmsUnavailableError) as paused:
        gate.admit_number("+12025550000", user_id="alice", application="manage")
    assert paused.value.details == {"breaker": "application_country"}
    alert = next(e for e in logs if e["event"] == "sms_circuit_open")
    assert (alert["breaker"], alert["application"], alert["country"]) == (
        "application_country",
        "manage",
        "US",
    )
    gate.admit_number("+12025550000", user_id="bob", application="grow")
    gate.admit_number(UK, user_id="alice", application="manage")
