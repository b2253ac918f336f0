"""Operations on a user's MFA by an administrator or an operator: reset, inspect, rotate keys.

The HTTP API (`DELETE /v1/users/{id}/mfa`) and the CLI (`mfa-pipeline admin ...`) both call
this service; neither holds logic of its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import structlog

from mfa_pipeline.domain.challenges import FactorType
from mfa_pipeline.domain.errors import NotFoundError
from mfa_pipeline.domain.factors import Factor, FactorStatus
from mfa_pipeline.services import audit
from mfa_pipeline.services.push import public_key_context, push_token_context
from mfa_pipeline.services.verification import phone_context, totp_context

if TYPE_CHECKING:
    from collections.abc import Callable

    from mfa_pipeline.domain.audit import AuditEvent
    from mfa_pipeline.domain.challenges import RequestContext
    from mfa_pipeline.domain.factors import User
    from mfa_pipeline.ports import (
        BackupCodeRepository,
        Clock,
        FactorRepository,
        SecretBox,
        SecretRotationRepository,
        StoredSecret,
        TrustedSessionRepository,
    )
    from mfa_pipeline.services.administrators import FirmAdministrators
    from mfa_pipeline.services.audit import Auditor
    from mfa_pipeline.services.failure_budget import CodeFactorLock

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ResetResult:
    user_id: str
    factors_removed: int
    backup_codes_removed: int
    trusted_sessions_revoked: int


@dataclass(frozen=True, slots=True)
class UserReport:
    user: User
    factors: list[Factor]
    backup_codes_remaining: int
    trusted_sessions: int
    recent_events: list[AuditEvent]


@dataclass(frozen=True, slots=True)
class RotationProgress:
    scanned: int
    rewritten: int
    skipped: int  # already under the first key
    elapsed_seconds: float


def _row_factor(user_id: str, factor_id: str, factor_type: FactorType) -> Factor:
    """Enough of a factor to name its ciphertext's context (user and factor ids)."""
    return Factor(factor_id, user_id, factor_type, FactorStatus.ACTIVE, created_at=0.0)


class AdminService:
    def __init__(
        self,
        *,
        factors: FactorRepository,
        backup_codes: BackupCodeRepository,
        trusted_sessions: TrustedSessionRepository,
        auditor: Auditor,
        clock: Clock,
        administrators: FirmAdministrators,
        code_factor_lock: CodeFactorLock,
        secrets_box: SecretBox,
        stored_secrets: SecretRotationRepository,
    ) -> None:
        self._factors = factors
        self._backup_codes = backup_codes
        self._trusted_sessions = trusted_sessions
        self._auditor = auditor
        self._clock = clock
        self._administrators = administrators
        self._code_factor_lock = code_factor_lock
        self._box = secrets_box
        self._stored = stored_secrets

    # --- reset -------------------------------------------------------------------------------

    def reset_user(
        self,
        *,
        user_id: str,
        actor_id: str,
        context: RequestContext | None = None,
        same_firm_only: bool = True,
    ) -> ResetResult:
        """Remove every factor, backup code and trusted session of a user who lost a device.

        Over HTTP the actor must be an administrator of the same firm with MFA enabled
        (`same_firm_only`); an operator at the CLI is named but not looked up. A failure-budget
        lock is lifted too. The audit trail stays, and gains this reset.
        """
        user = self._factors.get_user(user_id)
        if user is None:
            raise NotFoundError("No such user.")
        if same_firm_only:
            self._administrators.require(
                actor_id=actor_id, firm_id=user.firm_id, action=audit.MFA_RESET, context=context
            )
        removed = [
            f
            for f in self._factors.list_factors(user_id)
            if self._factors.delete_factor(user_id, f.factor_id)
        ]
        codes = self._backup_codes.delete_all(user_id)
        sessions = self._trusted_sessions.revoke_all(user_id, now=self._clock.now())
        self._code_factor_lock.lift(
            user_id=user_id, actor_id=actor_id, context=context, by=audit.MFA_RESET
        )
        result = ResetResult(user_id, len(removed), codes, sessions)
        self._auditor.record(
            audit.MFA_RESET,
            user_id=user_id,
            actor_id=actor_id,
            firm_id=user.firm_id,
            context=context,
            outcome="ok",
            details={
                "factors_removed": result.factors_removed,
                "factor_ids": [f.factor_id for f in removed],
                "factor_types": sorted({f.type.value for f in removed}),
                "backup_codes_removed_count": codes,
                "trusted_sessions_revoked": sessions,
            },
        )
        log.info(
            "mfa_reset",
            user_id=user_id,
            actor_id=actor_id,
            factors=result.factors_removed,
            backup_codes=codes,
            trusted_sessions=sessions,
        )
        return result

    # --- inspect -----------------------------------------------------------------------------

    def show_user(self, *, user_id: str, events: int = 10) -> UserReport:
        user = self._factors.get_user(user_id)
        if user is None:
            raise NotFoundError("No such user.")
        return UserReport(
            user=user,
            factors=self._factors.list_factors(user_id),
            backup_codes_remaining=self._backup_codes.remaining(user_id),
            trusted_sessions=self._trusted_sessions.count_live(user_id, now=self._clock.now()),
            recent_events=self._auditor.for_user(user_id=user_id, limit=events),
        )

    # --- key rotation ------------------------------------------------------------------------

    def rotate_keys(
        self,
        *,
        batch_size: int = 500,
        progress: Callable[[RotationProgress], None] | None = None,
    ) -> RotationProgress:
        """Re-encrypt every stored secret under the first `MFA_ENCRYPTION_KEYS` key.

        Batches commit one by one, so an interrupted run keeps its work; a second run skips
        rows already under the first key (`reencrypt` answers None) and finishes the rest.
        """
        started = time.monotonic()
        scanned = rewritten = skipped = 0
        after: str | None = None
        while True:
            batch = self._stored.batch_after(after, limit=batch_size)
            if not batch:
                break
            after = batch[-1].factor_id
            old, new = [], []
            for row in batch:
                rotated = self._rotate_row(row)
                if rotated is None:
                    skipped += 1
                else:
                    old.append(row)
                    new.append(rotated)
            if old:
                rewritten += self._stored.replace(old, new)
            scanned += len(batch)
            if progress is not None:
                progress(RotationProgress(scanned, rewritten, skipped, time.monotonic() - started))
        done = RotationProgress(scanned, rewritten, skipped, time.monotonic() - started)
        log.info(
            "keys_rotated",
            scanned=scanned,
            rewritten=rewritten,
            skipped=skipped,
            elapsed_s=round(done.elapsed_seconds, 3),
        )
        return done

    def _rotate_row(self, row: StoredSecret) -> StoredSecret | None:
        secret = phone = None
        if row.secret_ciphertext is not None:
            factor = _row_factor(row.user_id, row.factor_id, FactorType.TOTP)
            secret = self._box.reencrypt(row.secret_ciphertext, context=totp_context(factor))
        if row.phone_ciphertext is not None:
            factor = _row_factor(row.user_id, row.factor_id, FactorType.SMS)
            phone = self._box.reencrypt(row.phone_ciphertext, context=phone_context(factor))
        token = key = None
        if row.push_token_ciphertext is not None or row.public_key_ciphertext is not None:
            device = _row_factor(row.user_id, row.factor_id, FactorType.PUSH)
            if row.push_token_ciphertext is not None:
                token = self._box.reencrypt(
                    row.push_token_ciphertext, context=push_token_context(device)
                )
            if row.public_key_ciphertext is not None:
                key = self._box.reencrypt(
                    row.public_key_ciphertext, context=public_key_context(device)
                )
        if secret is None and phone is None and token is None and key is None:
            return None
        return replace(
            row,
            secret_ciphertext=secret or row.secret_ciphertext,
            phone_ciphertext=phone or row.phone_ciphertext,
            push_token_ciphertext=token or row.push_token_ciphertext,
            public_key_ciphertext=key or row.public_key_ciphertext,
        )
