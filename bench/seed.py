"""Users with active factors, written straight into the enrollment store.

The rows and ciphertexts are exactly what `EnrollmentService` writes (AES-GCM bound to
`totp_context` / `phone_context`, status `active`), but inserted in one transaction: the
repository commits once per call (about 2 ms a user on SQLite), which would spend half the
bench's time budget on 10,000 users before measuring anything. A sample is read back through
the real repository and decrypted, so a drift from the service's format fails loudly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import sqlalchemy as sa

from mfa_pipeline.adapters.sql_models import FactorRow, UserRow
from mfa_pipeline.adapters.sql_repository import create_engine_for
from mfa_pipeline.domain.challenges import FactorType
from mfa_pipeline.domain.factors import Factor, FactorStatus, new_factor_id
from mfa_pipeline.domain.totp import generate_secret
from mfa_pipeline.services.verification import phone_context, totp_context

if TYPE_CHECKING:
    from mfa_pipeline.bootstrap import Container

PHONE_BASE = 12015550000  # +1 201 555 XXXX: one number per SMS user, so each SMS is attributable
MAX_SMS_USERS = 10_000


@dataclass(frozen=True, slots=True)
class SmsUser:
    user_id: str
    phone: str  # E.164, as the fake Twilio records it in `To`


@dataclass(frozen=True, slots=True)
class TotpUser:
    user_id: str
    secret: str  # base32, for pyotp on the client side


def _factor(user_id: str, kind: FactorType, now: float) -> Factor:
    return Factor(
        factor_id=new_factor_id(),
        user_id=user_id,
        type=kind,
        status=FactorStatus.ACTIVE,
        created_at=now,
        activated_at=now,
    )


def _row(factor: Factor) -> dict[str, object]:
    return {
        "factor_id": factor.factor_id,
        "user_id": factor.user_id,
        "type": factor.type.value,
        "status": factor.status.value,
        "label": None,
        "secret_ciphertext": factor.secret_ciphertext,
        "phone_ciphertext": factor.phone_ciphertext,
        "phone_last2": factor.phone_last2,
        "phone_region": factor.phone_region,
        "last_totp_step": None,
        "pending_challenge_id": None,
        "created_at": factor.created_at,
        "activated_at": factor.activated_at,
    }


class Seeder:
    """Hands out fresh users: every challenge of the bench gets a user of its own."""

    def __init__(self, container: Container) -> None:
        self._container = container
        self._engine = create_engine_for(container.settings.effective_database_url)
        self._sms_count = 0
        self._totp_count = 0

    def close(self) -> None:
        self._engine.dispose()

    def sms_users(self, count: int) -> list[SmsUser]:
        if self._sms_count + count > MAX_SMS_USERS:
            raise ValueError(f"at most {MAX_SMS_USERS} distinct +1201555XXXX numbers")
        box, now = self._container.ports.secrets, time.time()
        users, factors = [], []
        for n in range(self._sms_count, self._sms_count + count):
            user = SmsUser(f"bench-sms-{n:05d}", f"+{PHONE_BASE + n}")
            base = replace(
                _factor(user.user_id, FactorType.SMS, now),
                phone_last2=user.phone[-2:],
                phone_region="US",
            )
            factors.append(
                replace(base, phone_ciphertext=box.encrypt(user.phone, context=phone_context(base)))
            )
            users.append(user)
        self._sms_count += count
        self._insert([u.user_id for u in users], factors)
        self._check(users[0].user_id, users[0].phone)
        return users

    def totp_users(self, count: int) -> list[TotpUser]:
        box, now = self._container.ports.secrets, time.time()
        users, factors = [], []
        for n in range(self._totp_count, self._totp_count + count):
            user = TotpUser(f"bench-totp-{n:05d}", generate_secret())
            base = _factor(user.user_id, FactorType.TOTP, now)
            factors.append(
                replace(
                    base, secret_ciphertext=box.encrypt(user.secret, context=totp_context(base))
                )
            )
            users.append(user)
        self._totp_count += count
        self._insert([u.user_id for u in users], factors)
        self._check(users[0].user_id, users[0].secret)
        return users

    def _insert(self, user_ids: list[str], factors: list[Factor]) -> None:
        now = time.time()
        with self._engine.begin() as connection:
            connection.execute(
                sa.insert(UserRow),
                [
                    {"user_id": u, "firm_id": "bench", "created_at": now, "updated_at": now}
                    for u in user_ids
                ],
            )
            connection.execute(sa.insert(FactorRow), [_row(f) for f in factors])

    def _check(self, user_id: str, plaintext: str) -> None:
        """Read one seeded user back the way the services do; fail now rather than mid-bench."""
        (factor,) = self._container.ports.factors.list_factors(user_id)
        ciphertext = factor.secret_ciphertext or factor.phone_ciphertext or ""
        context = (totp_context if factor.type is FactorType.TOTP else phone_context)(factor)
        if not factor.is_active or self._container.ports.secrets.decrypt(
            ciphertext, context=context
        ) != (plaintext):
            raise RuntimeError(f"seeded user {user_id} does not read back as enrolled")
