"""The login service on the production graph: preauth's next step, what a login carries."""

from __future__ import annotations

from mfa_pipeline.domain.challenges import (
    ChallengeStatus,
    FactorType,
    RequestContext,
    RequestedFactor,
)
from mfa_pipeline.domain.policies import FirmPolicy
from mfa_pipeline.services.login import NextStep
from tests.unit.service_kit import make_kit

CONTEXT = RequestContext(ip="203.0.113.9", user_agent="pytest", application="grow")


def test_an_unknown_user_is_let_through_without_a_second_factor() -> None:
    kit = make_kit()
    preauth = kit.services.login.preauth(user_id="nobody", trusted_token=None)
    assert (preauth.next_step, preauth.factors, preauth.backup_codes) == (
        NextStep.BYPASS,
        [],
        False,
    )


def test_a_user_with_a_factor_is_asked_for_it_and_offered_backup_codes_once_they_exist() -> None:
    kit = make_kit()
    user_id = kit.add_user()
    totp = kit.add_totp(user_id)
    before = kit.services.login.preauth(user_id=user_id, trusted_token=None)
    assert before.next_step is NextStep.AUTH
    assert [f.factor_id for f in before.factors] == [totp.factor_id]
    assert not before.backup_codes
    kit.services.backup_codes.generate(user_id=user_id)
    assert kit.services.login.preauth(user_id=user_id, trusted_token=None).backup_codes


def test_a_firm_requiring_mfa_sends_a_user_without_factors_to_enrollment() -> None:
    kit = make_kit()
    kit.factors.upsert_user("u-firm", firm_id="firm", now=kit.clock.now())
    kit.ports.policies.put(FirmPolicy("firm", require_mfa=True))
    assert kit.services.login.preauth(user_id="u-firm", trusted_token=None).next_step is (
        NextStep.ENROLL
    )


def test_a_remembered_login_is_allowed_for_its_user_only() -> None:
    kit = make_kit()
    alice, bob = kit.add_user(), kit.add_user()
    totp = kit.add_totp(alice)
    kit.add_totp(bob)
    answer = kit.services.login.issue(
        user_id=alice,
        factor=RequestedFactor.TOTP,
        factor_id=None,
        context=CONTEXT,
        code=totp.code(at=kit.clock.now()),
        remember_device=True,
    )
    assert answer.view.status is ChallengeStatus.VERIFIED
    assert answer.trusted is not None
    assert answer.backup_codes is None
    login = kit.services.login
    assert login.preauth(user_id=alice, trusted_token=answer.trusted.token).next_step is (
        NextStep.ALLOW
    )
    assert login.preauth(user_id=bob, trusted_token=answer.trusted.token).next_step is (
        NextStep.AUTH
    )


def test_a_failed_or_pending_login_carries_no_token_even_when_one_was_asked_for() -> None:
    kit = make_kit()
    user_id = kit.add_user()
    kit.add_sms(user_id)
    answer = kit.services.login.issue(
        user_id=user_id,
        factor=RequestedFactor.SMS,
        factor_id=None,
        context=CONTEXT,
        code=None,
        remember_device=True,
    )
    assert answer.view.status is ChallengeStatus.PENDING
    assert answer.trusted is None
    assert kit.trusted_sessions.count_live(user_id, now=kit.clock.now()) == 0


def test_a_login_with_a_backup_code_says_how_many_are_left() -> None:
    kit = make_kit()
    user_id = kit.add_user()
    kit.add_totp(user_id)
    codes = kit.services.backup_codes.generate(user_id=user_id).codes
    answer = kit.services.login.issue(
        user_id=user_id,
        factor=RequestedFactor.BACKUP_CODE,
        factor_id=None,
        context=CONTEXT,
        code=codes[0],
        remember_device=False,
    )
    assert answer.view.challenge.factor is FactorType.BACKUP_CODE
    assert answer.view.status is ChallengeStatus.VERIFIED
    assert answer.backup_codes is not None
    assert answer.backup_codes.remaining == len(codes) - 1
    assert answer.trusted is None
