"""Readiness: whether the stores this process needs answer now."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from mfa_pipeline.ports import ChallengeStore, FactorRepository


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    challenge_store: bool
    database: bool

    @property
    def ready(self) -> bool:
        return self.challenge_store and self.database


class Readiness:
    def __init__(self, *, store: ChallengeStore, factors: FactorRepository) -> None:
        self._store = store
        self._factors = factors

    def check(self) -> ReadinessReport:
        return ReadinessReport(
            challenge_store=_answers(self._store.ping), database=_answers(self._factors.ping)
        )


def _answers(ping: Callable[[], None]) -> bool:
    try:
        ping()
    except Exception:  # noqa: BLE001 - any failure means not ready
        return False
    return True
