"""EnrollmentService on in-memory twins: TOTP and SMS enrollment, activation and removal."""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import phonenumbers
import pytest

from mfa_pipeline.domain.challenges import ChallengePurpose, ChallengeStatus, FactorType
from mfa_pipeline.domain.errors import (
    FactorExistsError,
    InvalidPhoneError,
    NotFoundError,
    WrongCodeError,
)
from mfa_pipeline.domain.events import SmsDeliveryRequested
from mfa_pipeline.domain.factors import Factor, FactorStatus
from mfa_pipeline.services.delivery import DeliveryOutcome
from tests.unit.service_kit import ServiceKit, TotpFactor, make_kit

if TYPE_CHECKING:
    from mfa_pipeline.services.enrollment import SmsEnrollment, TotpEnrollment

# A London number: valid, and a fixed line only (no SMS).
LANDLINE = "+44 20 7946 0958"


@pytest.fixture
def kit() -> ServiceKit:
    return make_kit()


def enroll_totp(kit: ServiceKit, user_id: str | None = None) -> TotpEnrollment:
    return kit.enrollment.enroll_totp(user_id=user_id or kit.add_user())


def enroll_sms(
    kit: ServiceKit, phone: str = "+1 201 555 0123", region: str | None = None
) -> SmsEnrollment:
    return kit.enrollment.enroll_sms(user_id=kit.add_user(), phone=phone, region=region)


def stored(kit: ServiceKit, factor: Factor) -> Factor:
    found = kit.factors.get_factor(factor.user_id, factor.factor_id)
    assert found is not None
    return found


def field_texts(factor: Factor) -> list[str]:
    return [str(getattr(factor, f.name)) for f in dataclasses.fields(factor)]


def current_code(kit: ServiceKit, enrollment: TotpEnrollment) -> str:
    return TotpFactor(enrollment.factor, enrollment.secret).code(at=kit.clock.now())


# --- TOTP ------------------------------------------------------------------------------------


def test_a_totp_enrollment_gives_a_32_character_base32_secret(kit: ServiceKit) -> None:
    assert re.fullmatch(r"[A-Z2-7]{32}", enroll_totp(kit).secret)


def test_a_totp_enrollment_gives_an_otpauth_uri_with_the_secret_and_issuer(
    kit: ServiceKit,
) -> None:
    enrollment = enroll_totp(kit)

    uri = urlsplit(enrollment.otpauth_uri)
    query = parse_qs(uri.query)
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert query["secret"] == [enrollment.secret]
    assert query["issuer"] == [kit.rules.totp_issuer]


def test_a_totp_enrollment_gives_a_qr_code_as_svg(kit: ServiceKit) -> None:
    svg = enroll_totp(kit).qr_svg

    assert svg.lstrip().startswith("<svg")
    assert svg.rstrip().endswith("</svg>")


def test_a_stored_totp_factor_is_pending_and_holds_the_secret_only_as_ciphertext(
    kit: ServiceKit,
) -> None:
    enrollment = enroll_totp(kit)

    factor = stored(kit, enrollment.factor)

    assert factor.status is FactorStatus.PENDING
    assert factor.secret_ciphertext is not None
    assert not [text for text in field_texts(factor) if enrollment.secret in text]


def test_a_current_code_activates_a_pending_totp_factor(kit: ServiceKit) -> None:
    enrollment = enroll_totp(kit)

    kit.enrollment.activate(
        user_id=enrollment.factor.user_id,
        factor_id=enrollment.factor.factor_id,
        code=current_code(kit, enrollment),
    )

    assert stored(kit, enrollment.factor).is_active


def test_a_wrong_code_leaves_a_totp_factor_pending(kit: ServiceKit) -> None:
    enrollment = enroll_totp(kit)
    wrong = TotpFactor(enrollment.factor, enrollment.secret).wrong_code(at=kit.clock.now())

    with pytest.raises(WrongCodeError):
        kit.enrollment.activate(
            user_id=enrollment.factor.user_id, factor_id=enrollment.factor.factor_id, code=wrong
        )

    assert stored(kit, enrollment.factor).status is FactorStatus.PENDING


def test_a_second_authenticator_is_refused_while_one_is_active(kit: ServiceKit) -> None:
    user_id = kit.add_user()
    kit.add_totp(user_id)

    with pytest.raises(FactorExistsError):
        enroll_totp(kit, user_id)


def test_a_new_totp_enrollment_replaces_a_pending_one(kit: ServiceKit) -> None:
    user_id = kit.add_user()
    enroll_totp(kit, user_id)

    second = enroll_totp(kit, user_id)

    assert [f.factor_id for f in kit.factors.list_factors(user_id)] == [second.factor.factor_id]


# --- SMS -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("phone", "region"), [("+1 201 555 0123", None), ("(201) 555-0123", "US")])
def test_an_sms_enrollment_normalises_the_number_to_e164(
    kit: ServiceKit, phone: str, region: str | None
) -> None:
    assert enroll_sms(kit, phone, region).phone.e164 == "+12015550123"


def test_a_stored_sms_factor_holds_the_number_only_as_ciphertext(kit: ServiceKit) -> None:
    factor = stored(kit, enroll_sms(kit).factor)

    assert factor.phone_ciphertext is not None
    assert not [text for text in field_texts(factor) if "2015550123" in text]


def test_an_sms_enrollment_links_the_factor_to_a_pending_confirmation_challenge(
    kit: ServiceKit,
) -> None:
    enrollment = enroll_sms(kit)

    challenge = kit.store.get(enrollment.challenge_id)

    assert stored(kit, enrollment.factor).pending_challenge_id == enrollment.challenge_id
    assert challenge is not None
    assert (challenge.status, challenge.purpose, challenge.factor_id) == (
        ChallengeStatus.PENDING,
        ChallengePurpose.ENROLLMENT,
        enrollment.factor.factor_id,
    )


def test_an_sms_enrollment_requests_the_first_send_of_its_code(kit: ServiceKit) -> None:
    enrollment = enroll_sms(kit)

    assert kit.events(SmsDeliveryRequested) == [
        SmsDeliveryRequested(enrollment.challenge_id, enrollment.factor.user_id, seq=0)
    ]


def test_an_interrupted_enrollment_of_a_satellite_number_resumes_where_they_are_allowed() -> None:
    # Its stored region is the non-geographic "001", which is no region to parse with.
    kit = make_kit(sms_allow_non_geographic=True)
    enrollment = enroll_sms(kit, "+881 6 1234 5678")
    resumed = kit.enrollment.sms_enrollment_of(
        user_id=enrollment.factor.user_id, challenge_id=enrollment.challenge_id
    )
    assert resumed.phone.e164 == enrollment.phone.e164 == "+881612345678"
    assert resumed.challenge_id == enrollment.challenge_id


def test_the_landline_below_is_a_fixed_line_for_phonenumbers() -> None:
    number = phonenumbers.parse(LANDLINE)
    assert phonenumbers.number_type(number) is phonenumbers.PhoneNumberType.FIXED_LINE


@pytest.mark.parametrize(
    ("phone", "region"),
    [("+1 200 555 0123", None), (LANDLINE, None), ("hello", "US"), ("hello", None)],
)
def test_an_invalid_number_is_refused_and_nothing_is_stored(
    kit: ServiceKit, phone: str, region: str | None
) -> None:
    user_id = kit.add_user()

    with pytest.raises(InvalidPhoneError):
        kit.enrollment.enroll_sms(user_id=user_id, phone=phone, region=region)

    assert kit.factors.list_factors(user_id) == []
    assert kit.publisher.events == []


def test_the_code_of_the_delivered_sms_activates_the_sms_factor(kit: ServiceKit) -> None:
    enrollment = enroll_sms(kit)
    outcome = kit.delivery.deliver(challenge_id=enrollment.challenge_id, seq=0)
    assert outcome is DeliveryOutcome.SENT

    activated = kit.enrollment.activate(
        user_id=enrollment.factor.user_id,
        factor_id=enrollment.factor.factor_id,
        code=kit.sms.last.code,
    )

    assert (activated.type, activated.status) == (FactorType.SMS, FactorStatus.ACTIVE)
    assert stored(kit, enrollment.factor).is_active


# --- removal ---------------------------------------------------------------------------------


def test_removing_an_unknown_factor_is_not_found(kit: ServiceKit) -> None:
    with pytest.raises(NotFoundError):
        kit.enrollment.delete_factor(user_id=kit.add_user(), factor_id="f_nothing")
