"""Backup codes and trusted sessions on the in-memory twins, with a frozen clock."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from structlog.testing import capture_logs

from mfa_pipeline.domain.backup_codes import (
    ALPHABET,
    BITS_PER_CODE,
    BurnedBackupCodeError,
    InvalidBackupCodeError,
    NoBackupCodesError,
    format_backup_code,
    generate_backup_codes,
    lookup_key,
    lookup_tag,
    normalize_backup_code,
)
from mfa_pipeline.domain.challenges import ChallengeStatus, RequestedFactor
from mfa_pipeline.domain.errors import (
    FactorNotEnrolledError,
    InvalidCodeError,
    NotFoundError,
    TooManyAttemptsError,
    WrongCodeError,
)
from mfa_pipeline.services.trusted_sessions import TrustedSessionService, token_digest
from tests.unit.service_kit import CHEAP_HASHER, ServiceKit, make_kit

if TYPE_CHECKING:
    from mfa_pipeline.services.backup_codes import BackupCodeService
    from mfa_pipeline.services.challenges import ChallengeService
    from mfa_pipeline.services.enrollment import EnrollmentService
    from tests.doubles.memory_account import (
        InMemoryAuditLog,
        InMemoryBackupCodeRepository,
        InMemoryTrustedSessionRepository,
    )

WEEK = 7 * 24 * 3600


@dataclass
class Kit:
    base: ServiceKit
    codes: InMemoryBackupCodeRepository
    sessions: InMemoryTrustedSessionRepository
    audit: InMemoryAuditLog
    backup: BackupCodeService
    trusted: TrustedSessionService
    challenges: ChallengeService
    enrollment: EnrollmentService

    def events(self, user_id: str) -> list[str]:
        return [e.event for e in self.audit.for_user(user_id)]


@pytest.fixture
def kit() -> Kit:
    base = make_kit()
    s = base.services
    return Kit(
        base,
        base.backup_codes,
        base.trusted_sessions,
        base.audit,
        s.backup_codes,
        s.trusted_sessions,
        s.challenges,
        s.enrollment,
    )


# --- the domain ------------------------------------------------------------------------------


def test_a_code_carries_at_least_40_bits_from_an_alphabet_without_look_alikes() -> None:
    assert len(ALPHABET) == len(set(ALPHABET)) == 32
    assert not set("ilou") & set(ALPHABET)
    assert math.isclose(BITS_PER_CODE, 40.0)
    assert 8 * math.log2(31) < 40  # why the alphabet keeps 0 and 1 (and folds o, i, l)


def test_a_set_is_ten_distinct_codes_of_eight_symbols() -> None:
    codes = generate_backup_codes()
    assert len(set(codes)) == 10
    assert all(len(c) == 8 and set(c) <= set(ALPHABET) for c in codes)
    assert format_backup_code("abcd2345") == "abcd-2345"


@pytest.mark.parametrize(
    ("typed", "normalized"),
    [
        ("abcd-2345", "abcd2345"),
        ("abcd2345", "abcd2345"),
        ("ABCD-2345", "abcd2345"),
        (" abcd 2345 ", "abcd2345"),
        ("ab-cd-23-45", "abcd2345"),
        ("oIlO-2345", "0110" + "2345"),
    ],
)
def test_a_typed_code_is_normalized(typed: str, normalized: str) -> None:
    assert normalize_backup_code(typed) == normalized


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "abcd-234",
        "abcd-23456",
        "abcd-234u",
        "abcd-23!5",
        "abcd-23\u06645",
        "ＡＢＣＤ2345",
        12345678,
    ],
)
def test_a_code_of_the_wrong_shape_is_refused_as_an_invalid_code(typed: object) -> None:
    with pytest.raises(InvalidBackupCodeError) as raised:
        normalize_backup_code(typed)
    assert isinstance(raised.value, InvalidCodeError)
    assert not isinstance(raised.value, WrongCodeError)  # it uses no attempt


def test_lookup_tags_are_short_keyed_and_bound_to_the_user() -> None:
    key = lookup_key(b"k" * 32)
    tag = lookup_tag(key, "alice", "abcd2345")
    assert len(tag) == 8
    assert tag != lookup_tag(key, "bob", "abcd2345")
    assert tag != lookup_tag(lookup_key(b"j" * 32), "alice", "abcd2345")


def test_the_backup_code_errors_map_onto_the_contracts_codes() -> None:
    assert BurnedBackupCodeError("used").code == "invalid_code"
    assert BurnedBackupCodeError("used").details["reason"] == "used"
    assert isinstance(NoBackupCodesError("none"), FactorNotEnrolledError)


# --- the service -----------------------------------------------------------------------------


def test_a_new_set_stores_only_hashes_and_replaces_the_old_one(kit: Kit) -> None:
    user_id = kit.base.add_user()
    old = kit.backup.generate(user_id=user_id)
    new = kit.backup.generate(user_id=user_id)
    assert kit.backup.remaining(user_id=user_id) == 10
    stored = [c.stored for c in kit.codes._codes.values()]
    assert len(stored) == 10
    for code in new.codes:
        assert all(code.replace("-", "") not in s.code_hash for s in stored)
    with pytest.raises(WrongCodeError):
        kit.backup.redeem(user_id=user_id, code=normalize_backup_code(old.codes[0]))
    assert kit.events(user_id).count("backup_codes_generated") == 2


def test_an_unknown_user_gets_no_codes(kit: Kit) -> None:
    with pytest.raises(NotFoundError):
        kit.backup.generate(user_id="nobody")


def test_a_code_works_once_then_reads_as_used(kit: Kit) -> None:
    user_id = kit.base.add_user()
    code = normalize_backup_code(kit.backup.generate(user_id=user_id).codes[3])
    assert kit.backup.redeem(user_id=user_id, code=code) == 9
    with pytest.raises(BurnedBackupCodeError):
        kit.backup.redeem(user_id=user_id, code=code)
    assert kit.events(user_id)[0] == "backup_code_rejected"
    assert kit.audit.for_user(user_id)[0].outcome == "used"


def test_a_login_checks_one_argon2_hash_not_ten(kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    user_id = kit.base.add_user()
    codes = kit.backup.generate(user_id=user_id).codes
    checked: list[str] = []
    original = CHEAP_HASHER.verify

    def counting(code_hash: str, code: str) -> bool:
        checked.append(code_hash)
        return original(code_hash, code)

    monkeypatch.setattr(CHEAP_HASHER, "verify", counting)
    kit.backup.redeem(user_id=user_id, code=normalize_backup_code(codes[9]))
    assert len(checked) == 1


def test_logs_and_audit_events_never_hold_the_code(kit: Kit) -> None:
    user_id = kit.base.add_user()
    codes = kit.backup.generate(user_id=user_id).codes
    with capture_logs() as logs:
        kit.backup.redeem(user_id=user_id, code=normalize_backup_code(codes[0]))
    text = repr(logs) + repr(kit.audit.for_user(user_id))
    assert all(c not in text and c.replace("-", "") not in text for c in codes)


def test_two_or_fewer_left_after_a_use_records_a_low_codes_event(kit: Kit) -> None:
    user_id = kit.base.add_user()
    codes = kit.backup.generate(user_id=user_id).codes
    for code in codes[:7]:
        kit.backup.redeem(user_id=user_id, code=normalize_backup_code(code))
    assert kit.backup.warning_for(user_id=user_id).warning is None
    assert "backup_codes_low" not in kit.events(user_id)
    kit.backup.redeem(user_id=user_id, code=normalize_backup_code(codes[7]))
    warning = kit.backup.warning_for(user_id=user_id)
    assert (warning.remaining, warning.warning) == (2, "backup_codes_low")
    assert kit.events(user_id)[0] == "backup_codes_low"


def test_a_backup_code_challenge_verifies_in_one_round_trip(kit: Kit) -> None:
    user_id = kit.base.add_user()
    code = kit.backup.generate(user_id=user_id).codes[0]
    view = kit.challenges.issue(
        user_id=user_id, factor=RequestedFactor.BACKUP_CODE, code=code.upper()
    )
    assert view.status is ChallengeStatus.VERIFIED
    assert view.challenge.factor_id is None


def test_a_wrong_code_on_a_backup_challenge_uses_an_attempt(kit: Kit) -> None:
    user_id = kit.base.add_user()
    codes = kit.backup.generate(user_id=user_id).codes
    view = kit.challenges.issue(user_id=user_id, factor=RequestedFactor.BACKUP_CODE)
    challenge_id = view.challenge.challenge_id
    with pytest.raises(InvalidBackupCodeError):
        kit.challenges.verify(challenge_id=challenge_id, code="123456")
    with pytest.raises(WrongCodeError) as wrong:
        kit.challenges.verify(challenge_id=challenge_id, code="zzzz-zzzz")
    assert wrong.value.attempts_remaining == 4
    assert kit.challenges.verify(challenge_id=challenge_id, code=codes[0]).status is (
        ChallengeStatus.VERIFIED
    )


def test_five_wrong_backup_codes_lock_the_challenge(kit: Kit) -> None:
    user_id = kit.base.add_user()
    kit.backup.generate(user_id=user_id)
    challenge_id = kit.challenges.issue(
        user_id=user_id, factor=RequestedFactor.BACKUP_CODE
    ).challenge.challenge_id
    for _ in range(4):
        with pytest.raises(WrongCodeError):
            kit.challenges.verify(challenge_id=challenge_id, code="zzzz-zzzz")
    with pytest.raises(TooManyAttemptsError):
        kit.challenges.verify(challenge_id=challenge_id, code="zzzz-zzzz")


def test_backup_codes_need_a_set_and_auto_never_picks_them(kit: Kit) -> None:
    user_id = kit.base.add_user()
    with pytest.raises(NoBackupCodesError):
        kit.challenges.issue(user_id=user_id, factor=RequestedFactor.BACKUP_CODE)
    kit.backup.generate(user_id=user_id)
    with pytest.raises(FactorNotEnrolledError):
        kit.challenges.issue(user_id=user_id, factor=RequestedFactor.AUTO)


# --- trusted sessions ------------------------------------------------------------------------


def test_a_trusted_token_is_valid_for_its_user_for_a_week(kit: Kit) -> None:
    token = kit.trusted.issue(user_id="alice", application="manage")
    assert len(token.token) >= 43
    assert token.expires_at == kit.base.clock.now() + WEEK
    assert token_digest(token.token) in kit.sessions._sessions
    assert kit.trusted.is_trusted(user_id="alice", token=token.token)
    assert not kit.trusted.is_trusted(user_id="bob", token=token.token)
    assert not kit.trusted.is_trusted(user_id="alice", token=None)
    assert not kit.trusted.is_trusted(user_id="alice", token="forged")
    kit.base.clock.advance(WEEK)
    assert not kit.trusted.is_trusted(user_id="alice", token=token.token)


def test_removing_a_factor_revokes_trusted_tokens(kit: Kit) -> None:
    user_id = kit.base.add_user()
    totp = kit.base.add_totp(user_id)
    token = kit.trusted.issue(user_id=user_id, application="grow")
    kit.enrollment.delete_factor(user_id=user_id, factor_id=totp.factor_id)
    assert not kit.trusted.is_trusted(user_id=user_id, token=token.token)
    assert kit.events(user_id)[:3] == [
        "trusted_sessions_revoked",
        "factor_removed",
        "trusted_session_issued",
    ]
