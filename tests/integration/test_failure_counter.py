"""The failure budget's counter: Redis (`failure_budget.lua`) and its in-memory twin agree.

Every test runs on both; the Redis one also under racing processes' threads, where each
wrong code must count (a lost increment is a free guess).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest

from mfa_pipeline.adapters.failure_counter import RedisFailureCounter
from mfa_pipeline.domain.failure_budget import FailureBudget, FailureCount
from tests.doubles.failure_counter import InMemoryFailureCounter

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mfa_pipeline.ports import FailureCounter

T0 = 1_800_000_000.25
BUDGET = FailureBudget()


@pytest.fixture(params=["redis", "memory"])
def counter(request: pytest.FixtureRequest) -> Iterator[FailureCounter]:
    if request.param == "redis":
        client = request.getfixturevalue("redis_client")
        yield RedisFailureCounter(client, prefix=request.getfixturevalue("key_prefix"))
    else:
        yield InMemoryFailureCounter()


def test_the_free_failures_cost_no_wait_and_the_next_ones_double_up_to_the_cap(
    counter: FailureCounter,
) -> None:
    waits = []
    for n in range(1, 31):
        count = counter.record_failure("alice", BUDGET, now=T0)
        assert count.failures == n
        waits.append(max(0.0, round(count.retry_at - T0, 3)))
    assert waits == [float(BUDGET.delay_after(n)) for n in range(1, 31)]
    assert waits[: BUDGET.free - 1] == [0.0] * (BUDGET.free - 1)
    assert waits[BUDGET.free - 1 : BUDGET.free + 7] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert counter.state("alice").retry_at == pytest.approx(T0 + 60, abs=0.001)
    assert counter.state("alice").failures == 30
    assert counter.state("bob") == FailureCount(0, 0.0)


def test_a_reset_starts_the_count_again(counter: FailureCounter) -> None:
    for _ in range(BUDGET.free + 3):
        counter.record_failure("alice", BUDGET, now=T0)
    counter.reset("alice")
    assert counter.state("alice") == FailureCount(0, 0.0)
    assert counter.record_failure("alice", BUDGET, now=T0).failures == 1


def test_a_wait_is_never_shortened_by_a_later_failure(counter: FailureCounter) -> None:
    for _ in range(BUDGET.free + 6):
        counter.record_failure("alice", BUDGET, now=T0)
    early = FailureBudget(free=1000)  # a later failure that would ask for no wait at all
    assert counter.record_failure("alice", early, now=T0 + 1).retry_at == pytest.approx(
        T0 + 60, abs=0.001
    )


def test_racing_failures_all_count(counter: FailureCounter) -> None:
    threads, per_thread = 8, 25
    barrier = threading.Barrier(threads)

    def fail() -> None:
        barrier.wait()
        for _ in range(per_thread):
            counter.record_failure("alice", BUDGET, now=T0)

    workers = [threading.Thread(target=fail) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert counter.record_failure("alice", BUDGET, now=T0).failures == threads * per_thread + 1


def test_the_arithmetic_of_the_budget_docs() -> None:
    """docs/security.md: a guessed TOTP before the lock, with the current step and ±1."""
    per_guess = 3 / 10**6
    before_lock = 1 - (1 - per_guess) ** BUDGET.limit
    assert 2.9e-4 < before_lock < 3.1e-4  # about 3 in 10,000
    # The slow-down alone: the least time 100 failures take (the waits before each try).
    least = sum(BUDGET.delay_after(n) for n in range(1, BUDGET.limit))
    assert least == 1 + 2 + 4 + 8 + 16 + 32 + 60 * 74 == 4503  # about 75 minutes
