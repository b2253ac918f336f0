"""Policies, the audit log, live-session counts and stored secrets: SQLite, PostgreSQL, twins."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from mfa_pipeline.adapters.sql_account import (
    SqlAuditLog,
    SqlPolicyRepository,
    SqlTrustedSessionRepository,
)
from mfa_pipeline.adapters.sql_repository import SqlFactorRepository, create_engine_for
from mfa_pipeline.adapters.sql_secrets import SqlSecretRotationRepository
from mfa_pipeline.domain.audit import AuditEvent
from mfa_pipeline.domain.challenges import FactorType
from mfa_pipeline.domain.factors import Factor, FactorStatus
from mfa_pipeline.domain.policies import FirmPolicy
from mfa_pipeline.ports import StoredSecret
from mfa_pipeline.services.audit import Auditor
from tests.doubles.clock import FrozenClock
from tests.doubles.memory_account import (
    InMemoryAuditLog,
    InMemoryPolicyRepository,
    InMemoryTrustedSessionRepository,
)
from tests.fixtures.services import migrated_url

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import sqlalchemy as sa

    from mfa_pipeline.ports import AuditLog, PolicyRepository, TrustedSessionRepository


@dataclass
class Repos:
    policies: PolicyRepository
    audit: AuditLog
    sessions: TrustedSessionRepository


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def repos(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Repos]:
    if request.param == "memory":
        yield Repos(
            InMemoryPolicyRepository(), InMemoryAuditLog(), InMemoryTrustedSessionRepository()
        )
        return
    engine = create_engine_for(migrated_url(request.param, request, tmp_path))
    SqlFactorRepository(engine).upsert_user("alice", firm_id="f1", now=1.0)
    yield Repos(
        SqlPolicyRepository(engine), SqlAuditLog(engine), SqlTrustedSessionRepository(engine)
    )
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    built = create_engine_for(migrated_url(request.param, request, tmp_path))
    yield built
    built.dispose()


def test_a_policy_reads_back_as_written_and_a_second_write_replaces_it(repos: Repos) -> None:
    assert repos.policies.get("f1") is None
    first = FirmPolicy(
        "f1",
        require_mfa=True,
        allowed_factors=frozenset({FactorType.TOTP, FactorType.SMS}),
        updated_at=5.0,
        updated_by="alice",
    )
    repos.policies.put(first)
    assert repos.policies.get("f1") == first
    second = FirmPolicy("f1", require_mfa=False, updated_at=6.0, updated_by="alice")
    repos.policies.put(second)
    assert repos.policies.get("f1") == second
    assert second.allows(FactorType.PUSH)


def test_the_audit_log_reads_newest_first_in_pages(repos: Repos) -> None:
    auditor = Auditor(log=repos.audit, clock=FrozenClock(1000.0))
    for n in range(5):
        auditor.record(f"e{n}", user_id="alice", outcome="ok", details={"n": n})
    auditor.record("other", user_id="bob", outcome="ok")
    page = auditor.for_user(user_id="alice", limit=3)
    assert [e.event for e in page] == ["e4", "e3", "e2"]
    rest = auditor.for_user(user_id="alice", limit=3, before=page[-1].id)
    assert [e.event for e in rest] == ["e1", "e0"]
    assert rest[0].details == {"n": 1}


def test_audit_details_that_sound_secret_are_dropped_before_writing(repos: Repos) -> None:
    auditor = Auditor(log=repos.audit, clock=FrozenClock(1000.0))
    auditor.record(
        "careless",
        user_id="alice",
        outcome="ok",
        details={
            "code": "123456",
            "secret": "JBSWY3DPEHPK3PXP",
            "phone": "+12015550123",
            "trusted_token": "t",
            "error_code": "21211",
            "attempts_remaining": 4,
        },
    )
    (event,) = auditor.for_user(user_id="alice")
    assert event.details == {"error_code": "21211", "attempts_remaining": 4}


def test_the_audit_log_keeps_every_column(repos: Repos) -> None:
    repos.audit.record(
        AuditEvent(
            event="challenge_verified",
            created_at=7.5,
            user_id="alice",
            firm_id="f1",
            actor_id="admin",
            application="grow",
            outcome="verified",
            factor="totp",
            factor_id="f_1",
            challenge_id="c_1",
            ip="203.0.113.9",
            user_agent="Browser/1.0",
        )
    )
    (event,) = repos.audit.for_user("alice")
    assert event.id is not None
    assert (event.application, event.ip, event.user_agent, event.created_at) == (
        "grow",
        "203.0.113.9",
        "Browser/1.0",
        7.5,
    )


def test_live_sessions_are_counted_without_revoked_or_expired_ones(repos: Repos) -> None:
    s = repos.sessions
    s.add("a" * 64, user_id="alice", application="manage", now=1.0, expires_at=100.0)
    s.add("b" * 64, user_id="alice", application="grow", now=1.0, expires_at=50.0)
    assert s.count_live("alice", now=10.0) == 2
    assert s.count_live("alice", now=60.0) == 1
    s.revoke_all("alice", now=61.0)
    assert s.count_live("alice", now=62.0) == 0


def _factor(n: int, *, secret: str | None = None, phone: str | None = None) -> Factor:
    return Factor(
        factor_id=f"f_{n:04d}",
        user_id="alice",
        type=FactorType.TOTP if secret else FactorType.SMS,
        status=FactorStatus.ACTIVE,
        created_at=1.0,
        secret_ciphertext=secret,
        phone_ciphertext=phone,
    )


def test_stored_secrets_are_walked_in_batches_and_replaced_only_where_unchanged(
    engine: sa.Engine,
) -> None:
    factors = SqlFactorRepository(engine)
    factors.upsert_user("alice", firm_id=None, now=1.0)
    for n in range(5):
        factors.add_factor(_factor(n, secret=f"s{n}") if n % 2 else _factor(n, phone=f"p{n}"))
    store = SqlSecretRotationRepository(engine)
    assert store.count() == 5
    first = store.batch_after(None, limit=2)
    assert [r.factor_id for r in first] == ["f_0000", "f_0001"]
    rest = store.batch_after(first[-1].factor_id, limit=10)
    assert [r.factor_id for r in rest] == ["f_0002", "f_0003", "f_0004"]

    stale = StoredSecret("f_0001", "alice", "not-what-is-stored", None)
    written = store.replace(
        [first[0], stale],
        [StoredSecret("f_0000", "alice", None, "P"), StoredSecret("f_0001", "alice", "S", None)],
    )
    assert written == 1
    rewritten = factors.get_factor("alice", "f_0000")
    assert rewritten is not None
    assert rewritten.phone_ciphertext == "P"
    assert factors.get_factor("alice", "f_0001") == _factor(1, secret="s1")  # left alone


def test_batched_login_outcomes_are_written_together_and_read_after_a_flush(
    repos: Repos,
) -> None:
    auditor = Auditor(log=repos.audit, clock=FrozenClock(1000.0), batch_seconds=30)
    auditor.record("challenge_verified", user_id="alice", outcome="verified", best_effort=True)
    auditor.record("policy_changed", user_id="alice", outcome="ok")  # written at once
    assert [e.event for e in repos.audit.for_user("alice")] == ["policy_changed"]
    # A reader of the trail through the service flushes the batch first.
    assert [e.event for e in auditor.for_user(user_id="alice")] == [
        "challenge_verified",
        "policy_changed",
    ]


def test_the_batch_is_written_by_its_thread_within_the_batch_time(repos: Repos) -> None:
    auditor = Auditor(log=repos.audit, clock=FrozenClock(1000.0), batch_seconds=0.05)
    for n in range(20):
        auditor.record("challenge_failed", user_id="bob", outcome=f"o{n}", best_effort=True)
    deadline = time.monotonic() + 5
    while len(repos.audit.for_user("bob")) < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(repos.audit.for_user("bob")) == 20


def test_the_audit_log_lists_by_event_time_when_ids_came_in_another_order(repos: Repos) -> None:
    """A batch of login outcomes is written after a later reset: it still lists before it."""
    repos.audit.record(AuditEvent(event="mfa_reset", created_at=30.0, user_id="alice"))
    repos.audit.record_many(
        [
            AuditEvent(event="challenge_verified", created_at=10.0, user_id="alice"),
            AuditEvent(event="challenge_failed", created_at=20.0, user_id="alice"),
        ]
    )
    repos.audit.record(AuditEvent(event="factor_enrolled", created_at=40.0, user_id="alice"))
    everything = repos.audit.for_user("alice")
    assert [e.event for e in everything] == [
        "factor_enrolled",
        "mfa_reset",
        "challenge_failed",
        "challenge_verified",
    ]
    first = repos.audit.for_user("alice", limit=2)
    rest = repos.audit.for_user("alice", limit=2, before_id=first[-1].id)
    assert first + rest == everything
