"""One conformance suite for every `SmsSpendGuard`: Redis (real server) and the in-memory twin.

The windows slide (no burst of twice the limit across a boundary), a refused send counts
nowhere, a refund gives the send back, and the breaker opens once and says so once.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import TYPE_CHECKING

import pytest
from redis.crc import key_slot

from mfa_pipeline.adapters.phonenumbers_parser import sms_destination
from mfa_pipeline.adapters.sms_spend import RedisSmsSpendGuard
from mfa_pipeline.domain.limits import RateLimit
from mfa_pipeline.domain.sms_spend import (
    SmsBreaker,
    SmsDestination,
    SmsLimitScope,
    SmsSpendLimits,
)
from tests.doubles.sms_spend import InMemorySmsSpendGuard

if TYPE_CHECKING:
    from collections.abc import Callable

    import redis

    from mfa_pipeline.ports import SmsSpendGuard

T0 = 1_700_000_000.0
HASH_KEY = b"h" * 32
LIMITS = SmsSpendLimits(
    per_number=RateLimit(3, 3600),
    per_prefix=RateLimit(5, 3600),
    per_country=RateLimit(8, 3600),
    breaker_per_minute=10,
    breaker_scoped_per_minute=1000,
    breaker_cooldown_seconds=300,
)


@pytest.fixture(params=["redis", "memory"])
def make_guard(request: pytest.FixtureRequest) -> Callable[[SmsSpendLimits], SmsSpendGuard]:
    if request.param == "memory":
        return lambda limits: InMemorySmsSpendGuard(limits=limits)
    client: redis.Redis = request.getfixturevalue("redis_client")
    prefix: str = request.getfixturevalue("key_prefix")
    return lambda limits: RedisSmsSpendGuard(
        client, prefix=prefix, limits=limits, hash_key=HASH_KEY
    )


def us(number: int) -> SmsDestination:
    """A US mobile in the 201-555 block."""
    return sms_destination(f"+1201555{number:04d}")


def admitted(guard: SmsSpendGuard, dest: SmsDestination, now: float, ticket: str) -> bool:
    return guard.admit(dest, ticket=ticket, now=now).allowed


def test_a_destination_gets_its_limit_then_is_refused_until_the_oldest_send_leaves_the_window(
    make_guard: Callable[[SmsSpendLimits], SmsSpendGuard],
) -> None:
    guard = make_guard(LIMITS)
    dest = us(123)
    for i in range(3):
        assert admitted(guard, dest, T0 + i * 100, f"t{i}")
    refused = guard.admit(dest, ticket="t3", now=T0 + 1000)
    assert not refused.allowed
    assert refused.scope is SmsLimitScope.NUMBER
    assert refused.retry_after == pytest.approx(2600, abs=0.01)
    assert not admitted(guard, dest, T0 + 3599.9, "t4")
    assert admitted(guard, dest, T0 + 3600, "t5")  # the first send left the window


def test_a_sliding_window_lets_no_burst_of_twice_the_limit_through_at_a_boundary(
    make_guard: Callable[[SmsSpendLimits], SmsSpendGuard],
) -> None:
    guard = make_guard(LIMITS)
    dest = us(124)
    late = [admitted(guard, dest, T0 + 3599 + i * 0.1, f"a{i}") for i in range(3)]
    early = [admitted(guard, dest, T0 + 3601 + i * 0.1, f"b{i}") for i in range(3)]
    assert late == [True, True, True]
    assert early == [False, False, False]


def test_many_numbers_of_one_block_hit_the_prefix_limit(
    make_guard: Callable[[SmsSpendLimits], SmsSpendGuard],
) -> None:
    guard = make_guard(LIMITS)
    results = [guard.admit(us(n), ticket=f"p{n}", now=T0) for n in range(7)]
    assert [r.allowed for r in results] == [True] * 5 + [False] * 2
    assert results[5].scope is SmsLimitScope.PREFIX


def test_many_blocks_of_one_country_hit_the_country_limit(
    make_guard: Callable[[SmsSpendLimits], SmsSpendGuard],
) -> None:
    guard = make_guard(LIMITS)
    dests = [sms_destination(f"+1{area}5550100") for area in (201, 202, 212, 213, 305, 312)]
    dests += [sms_destination(f"+1{area}5550100") for area in (404, 415, 503, 617)]
    results = [guard.admit(d, ticket=f"c{i}", now=T0) for i, d in enumerate(dests)]
    assert [r.allowed for r in results] == [True] * 8 + [False] * 2
    assert results[8].scope is SmsLimitScope.COUNTRY
    assert admitted(guard, sms_destination("+447400123456"), T0, "uk")  # another country


def test_a_refused_send_counts_nowhere(
    make_guard: Callable[[SmsSpendLimits], SmsSpendGuard],
) -> None:
    guard = make_guard(LIMITS)
    dest = us(125)
    for i in range(3):
        assert admitted(guard, dest, T0, f"n{i}")
    for i in range(20):  # hammering a full number does not eat the block's budget
        assert not admitted(guard, dest, T0, f"x{i}")
    assert [admitted(guard, us(200 + i), T0, f"o{i}") for i in range(3)] == [True, True, False]


def test_a_refunded_send_is_given_back(
    make_guard: Callable[[SmsSpendLimits], SmsSpendGuard],
) -> None:
    guard = make_guard(LIMITS)
    dest = us(126)
    for i in range(3):
        assert admitted(guard, dest, T0, f"r{i}")
    guard.refund(dest, ticket="r2")
    assert admitted(guard, dest, T0, "r3")
    assert not admitted(guard, dest, T0, "r4")


def test_the_breaker_opens_once_refuses_everything_for_the_cooldown_then_closes(
    make_guard: Callable[[SmsSpendLimits], SmsSpendGuard],
) -> None:
    limits = SmsSpendLimits(
        per_number=RateLimit(100, 3600),
        per_prefix=RateLimit(100, 3600),
        per_country=RateLimit(100, 3600),
        breaker_per_minute=4,
        breaker_scoped_per_minute=1000,
        breaker_cooldown_seconds=300,
    )
    guard = make_guard(limits)
    for i in range(4):
        assert admitted(guard, us(i), T0, f"g{i}")
    tripping = guard.admit(us(10), ticket="g5", now=T0 + 1)
    assert (tripping.allowed, tripping.scope, tripping.opened) == (
        False,
        SmsLimitScope.CIRCUIT,
        True,
    )
    assert tripping.retry_after == pytest.approx(300)
    later = guard.admit(sms_destination("+447400123456"), ticket="g6", now=T0 + 200)
    assert (later.allowed, later.scope, later.opened) == (False, SmsLimitScope.CIRCUIT, False)
    assert later.retry_after == pytest.approx(101, abs=0.01)
    assert admitted(guard, us(11), T0 + 301, "g7")


def test_redis_guard_keys_share_one_cluster_slot(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    guard = RedisSmsSpendGuard(redis_client, prefix=key_prefix, limits=LIMITS, hash_key=HASH_KEY)
    keys = [*guard.keys.windows(us(1)), *guard.keys.breakers(us(1), "manage")]
    assert len({key_slot(k.encode()) for k in keys}) == 1
    assert all(k.startswith(key_prefix) for k in keys)


def test_racing_processes_never_admit_more_than_the_limit(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    guard = RedisSmsSpendGuard(redis_client, prefix=key_prefix, limits=LIMITS, hash_key=HASH_KEY)
    dest = us(321)
    wins: list[bool] = []
    lock = threading.Lock()

    def send(i: int) -> None:
        ok = admitted(guard, dest, T0, f"race{i}")
        with lock:
            wins.append(ok)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert wins.count(True) == LIMITS.per_number.count
    assert len(wins) == 24


SCOPED = dataclasses.replace(
    LIMITS,
    per_number=RateLimit(100, 3600),
    per_prefix=RateLimit(100, 3600),
    per_country=RateLimit(100, 3600),
    breaker_per_minute=7,
    breaker_scoped_per_minute=3,
)
UK = "+447400123456"


def test_a_surge_of_one_application_to_one_country_opens_only_that_pairs_breaker(
    make_guard: Callable[[SmsSpendLimits], SmsSpendGuard],
) -> None:
    guard = make_guard(SCOPED)
    for i in range(3):
        assert guard.admit(us(i), ticket=f"m{i}", now=T0, application="manage").allowed
    tripping = guard.admit(us(3), ticket="m3", now=T0, application="manage")
    assert (tripping.allowed, tripping.scope, tripping.breaker, tripping.opened) == (
        False,
        SmsLimitScope.CIRCUIT,
        SmsBreaker.SCOPED,
        True,
    )
    assert tripping.retry_after == pytest.approx(300)
    assert guard.admit(us(4), ticket="g0", now=T0 + 1, application="grow").allowed
    assert guard.admit(sms_destination(UK), ticket="m4", now=T0 + 1, application="manage").allowed
    still = guard.admit(us(5), ticket="m5", now=T0 + 100, application="manage")
    assert (still.allowed, still.breaker, still.opened) == (False, SmsBreaker.SCOPED, False)
    assert still.retry_after == pytest.approx(200, abs=0.01)
    assert guard.admit(us(6), ticket="m6", now=T0 + 301, application="manage").allowed


def test_the_global_breaker_is_the_last_resort_for_a_surge_spread_over_applications(
    make_guard: Callable[[SmsSpendLimits], SmsSpendGuard],
) -> None:
    guard = make_guard(SCOPED)
    spread = [("manage", us(i)) for i in range(3)] + [("grow", us(10 + i)) for i in range(3)]
    spread.append(("manage", sms_destination(UK)))
    for i, (application, dest) in enumerate(spread):
        assert guard.admit(dest, ticket=f"s{i}", now=T0, application=application).allowed
    tripping = guard.admit(sms_destination("+33612345678"), ticket="s7", now=T0, application="grow")
    assert (tripping.allowed, tripping.breaker, tripping.opened) == (
        False,
        SmsBreaker.GLOBAL,
        True,
    )
    other = guard.admit(sms_destination("+4915112345678"), ticket="s8", now=T0, application="x")
    assert (other.allowed, other.breaker) == (False, SmsBreaker.GLOBAL)


def test_a_refund_gives_the_send_back_to_the_breakers_too(
    make_guard: Callable[[SmsSpendLimits], SmsSpendGuard],
) -> None:
    guard = make_guard(SCOPED)
    for i in range(3):
        assert guard.admit(us(i), ticket=f"r{i}", now=T0, application="manage").allowed
    guard.refund(us(2), ticket="r2", application="manage")
    assert guard.admit(us(3), ticket="r3", now=T0, application="manage").allowed


def test_redis_keys_hold_no_number_block_or_country_and_depend_on_the_key(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    guard = RedisSmsSpendGuard(redis_client, prefix=key_prefix, limits=LIMITS, hash_key=HASH_KEY)
    dest = sms_destination("+12015550123")
    assert guard.admit(dest, ticket="k1", now=T0, application="manage").allowed
    keys = list(redis_client.scan_iter(f"{key_prefix}:*"))
    assert len(keys) == 5  # number, block, country, the pair's breaker, the global breaker
    for plain in ("2015550123", "201555", "US", "+1"):
        assert not any(plain in k.removeprefix(key_prefix) for k in keys)
    other = RedisSmsSpendGuard(redis_client, prefix=key_prefix, limits=LIMITS, hash_key=b"o" * 32)
    assert set(other.keys.windows(dest)).isdisjoint(guard.keys.windows(dest))
