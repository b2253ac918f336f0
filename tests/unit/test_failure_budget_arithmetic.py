"""The failure budget's arithmetic that lets a passkey login skip its reset and lift."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import pytest

from mfa_pipeline.domain.failure_budget import FailureBudget, FailureCount
from mfa_pipeline.ports import NullMetrics
from mfa_pipeline.services.failure_budget import CodeFactorLock, FailureBudgetService
from tests.doubles.clock import FrozenClock
from tests.doubles.failure_counter import InMemoryFailureCounter
from tests.doubles.memory_factors import InMemoryFactorRepository

if TYPE_CHECKING:
    from mfa_pipeline.services.audit import Auditor

BUDGET = FailureBudget()
FIVE_MINUTES = 300.0


def test_from_no_failure_the_lock_is_over_an_hour_of_waits_away() -> None:
    # 20 free, then 1+2+4+8+16+32 s and 74 waits of 60 s: 4,503 s before the 100th failure.
    assert not BUDGET.can_lock_within(0, 4502)
    assert BUDGET.can_lock_within(0, 4503)


@pytest.mark.parametrize(
    ("failures", "seconds", "can"),
    [
        (99, 0, True),
        (98, 59, False),
        (98, 60, True),
        (19, 4502, False),
        (20, 4502, True),
        (30, FIVE_MINUTES, False),
    ],
)
def test_the_waits_left_decide(failures: int, seconds: float, *, can: bool) -> None:
    assert BUDGET.can_lock_within(failures, seconds) is can


def test_a_budget_without_waits_can_lock_at_once() -> None:
    eager = FailureBudget(free=1000)
    assert eager.can_lock_within(0, 0)


def _service(budget: FailureBudget = BUDGET) -> FailureBudgetService:
    clock, metrics = FrozenClock(1_800_000_000.0), NullMetrics()
    auditor = cast("Auditor", None)  # `settled` locks and audits nothing
    lock = CodeFactorLock(
        factors=InMemoryFactorRepository(), auditor=auditor, clock=clock, metrics=metrics
    )
    return FailureBudgetService(
        counter=InMemoryFailureCounter(), lock=lock, budget=budget, clock=clock, metrics=metrics
    )


def test_settled_only_with_no_count_no_lock_and_no_lock_possible_in_time() -> None:
    service = _service()
    clean = FailureCount(0, 0.0)
    assert service.settled(clean, locked=False, within_seconds=FIVE_MINUTES)
    assert not service.settled(FailureCount(1, 0.0), locked=False, within_seconds=FIVE_MINUTES)
    assert not service.settled(clean, locked=True, within_seconds=FIVE_MINUTES)
    assert not _service(FailureBudget(free=1000)).settled(
        clean, locked=False, within_seconds=FIVE_MINUTES
    )
