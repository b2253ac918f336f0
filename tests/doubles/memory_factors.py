"""In-memory twin of the SQL repository, for unit tests (kept honest by a shared test suite)."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import TYPE_CHECKING

from mfa_pipeline.domain.factors import Factor, FactorStatus, Role, User
from mfa_pipeline.ports import FactorRepository, SecretRotationRepository, StoredSecret

if TYPE_CHECKING:
    from collections.abc import Sequence


class InMemoryFactorRepository(FactorRepository):
    def __init__(self) -> None:
        self._users: dict[str, User] = {}
        self._factors: dict[str, Factor] = {}
        self._lock = threading.Lock()

    def put_user(
        self, user_id: str, *, firm_id: str | None, role: Role | None, now: float
    ) -> tuple[User | None, User]:
        with self._lock:
            existing = self._users.get(user_id)
            if existing is None:
                user = User(user_id, firm_id, now, role=role or Role.MEMBER)
            else:
                user = replace(
                    existing,
                    firm_id=existing.firm_id if firm_id is None else firm_id,
                    role=existing.role if role is None else role,
                )
            self._users[user_id] = user
            return existing, user

    def lock_code_factors(self, user_id: str, *, now: float, until: float) -> bool:
        with self._lock:
            user = self._users.get(user_id)
            if user is None or user.code_factors_locked(now):
                return False
            self._users[user_id] = replace(user, locked_until=until)
            return True

    def unlock_code_factors(self, user_id: str, *, now: float) -> bool:
        with self._lock:
            user = self._users.get(user_id)
            if user is None or not user.code_factors_locked(now):
                return False
            self._users[user_id] = replace(user, locked_until=None)
            return True

    def get_user(self, user_id: str) -> User | None:
        with self._lock:
            return self._users.get(user_id)

    def add_factor(self, factor: Factor) -> None:
        with self._lock:
            if factor.user_id not in self._users or factor.factor_id in self._factors:
                raise ValueError("unknown user or duplicate factor id")
            self._factors[factor.factor_id] = factor

    def get_factor(self, user_id: str, factor_id: str) -> Factor | None:
        with self._lock:
            factor = self._factors.get(factor_id)
            return factor if factor is not None and factor.user_id == user_id else None

    def list_factors(self, user_id: str) -> list[Factor]:
        with self._lock:
            found = [f for f in self._factors.values() if f.user_id == user_id]
            return sorted(found, key=lambda f: (f.created_at, f.factor_id))

    def get_user_with_factors(self, user_id: str) -> tuple[User | None, list[Factor]]:
        return self.get_user(user_id), self.list_factors(user_id)

    def refresh_push_device(
        self,
        user_id: str,
        factor_id: str,
        *,
        push_token_ciphertext: str,
        label: str | None,
        platform: str,
    ) -> bool:
        with self._lock:
            factor = self._factors.get(factor_id)
            if factor is None or factor.user_id != user_id:
                return False
            self._factors[factor_id] = replace(
                factor,
                push_token_ciphertext=push_token_ciphertext,
                label=label,
                platform=platform,
                status=FactorStatus.ACTIVE,
            )
            return True

    def deactivate_factor(self, user_id: str, factor_id: str) -> bool:
        with self._lock:
            factor = self._factors.get(factor_id)
            if factor is None or factor.user_id != user_id or not factor.is_active:
                return False
            self._factors[factor_id] = replace(factor, status=FactorStatus.INACTIVE)
            return True

    def activate_factor(self, user_id: str, factor_id: str, *, now: float) -> bool:
        with self._lock:
            factor = self._factors.get(factor_id)
            if (
                factor is None
                or factor.user_id != user_id
                or factor.status is not FactorStatus.PENDING
            ):
                return False
            self._factors[factor_id] = replace(
                factor, status=FactorStatus.ACTIVE, activated_at=now, pending_challenge_id=None
            )
            return True

    def set_pending_challenge(self, user_id: str, factor_id: str, challenge_id: str) -> None:
        with self._lock:
            factor = self._factors.get(factor_id)
            if factor is not None and factor.user_id == user_id:
                self._factors[factor_id] = replace(factor, pending_challenge_id=challenge_id)

    def delete_factor(self, user_id: str, factor_id: str) -> bool:
        with self._lock:
            factor = self._factors.get(factor_id)
            if factor is None or factor.user_id != user_id:
                return False
            del self._factors[factor_id]
            return True

    def ping(self) -> None:
        return None


class InMemorySecretRotationRepository(SecretRotationRepository):
    """Key rotation's walk over the in-memory factor rows (the twin of `sql_secrets.py`)."""

    def __init__(self, factors: InMemoryFactorRepository) -> None:
        self._factors = factors

    @staticmethod
    def _stored(factor: Factor) -> StoredSecret:
        return StoredSecret(
            factor_id=factor.factor_id,
            user_id=factor.user_id,
            secret_ciphertext=factor.secret_ciphertext,
            phone_ciphertext=factor.phone_ciphertext,
            push_token_ciphertext=factor.push_token_ciphertext,
            public_key_ciphertext=factor.public_key,
        )

    def _rows(self) -> list[StoredSecret]:
        with self._factors._lock:
            rows = [self._stored(f) for f in self._factors._factors.values()]
        return sorted(
            (
                r
                for r in rows
                if any(
                    (
                        r.secret_ciphertext,
                        r.phone_ciphertext,
                        r.push_token_ciphertext,
                        r.public_key_ciphertext,
                    )
                )
            ),
            key=lambda r: r.factor_id,
        )

    def batch_after(self, factor_id: str | None, *, limit: int) -> list[StoredSecret]:
        return [r for r in self._rows() if factor_id is None or r.factor_id > factor_id][:limit]

    def replace(self, old: Sequence[StoredSecret], new: Sequence[StoredSecret]) -> int:
        written = 0
        with self._factors._lock:
            rows = self._factors._factors
            for before, after in zip(old, new, strict=True):
                factor = rows.get(before.factor_id)
                if factor is None or self._stored(factor) != before:
                    continue  # changed or removed since it was read: left alone
                rows[before.factor_id] = replace(
                    factor,
                    secret_ciphertext=after.secret_ciphertext,
                    phone_ciphertext=after.phone_ciphertext,
                    push_token_ciphertext=after.push_token_ciphertext,
                    public_key=after.public_key_ciphertext,
                )
                written += 1
        return written

    def count(self) -> int:
        return len(self._rows())
