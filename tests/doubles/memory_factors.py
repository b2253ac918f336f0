"""In-memory twin of the SQL repository, for unit tests (kept honest by a shared test suite)."""

from __future__ import annotations

import threading
from dataclasses import replace

from mfa_pipeline.domain.factors import Factor, FactorStatus, User
from mfa_pipeline.ports import FactorRepository


class InMemoryFactorRepository(FactorRepository):
    def __init__(self) -> None:
        self._users: dict[str, User] = {}
        self._factors: dict[str, Factor] = {}
        self._lock = threading.Lock()

    def upsert_user(self, user_id: str, *, firm_id: str | None, now: float) -> User:
        with self._lock:
            existing = self._users.get(user_id)
            user = (
                User(user_id, firm_id, now)
                if existing is None
                else replace(existing, firm_id=firm_id)
            )
            self._users[user_id] = user
            return user

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

    def accept_totp_step(self, factor_id: str, step: int) -> bool:
        with self._lock:
            factor = self._factors.get(factor_id)
            if factor is None or (
                factor.last_totp_step is not None and factor.last_totp_step >= step
            ):
                return False
            self._factors[factor_id] = replace(factor, last_totp_step=step)
            return True

    def ping(self) -> None:
        return None
