"""The challenge store past one Redis: a real local 3-master Redis Cluster.

The conformance suite (test_challenge_store.py) already runs every store operation on the
cluster, where a script whose keys spanned slots would be refused. These tests add what only a
cluster has: shards of the expiry index living on different masters, rate-limit counters of
one login on different masters, and pub/sub wake-ups crossing nodes.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import TYPE_CHECKING

import pytest
from redis.cluster import RedisCluster
from redis.crc import key_slot

from mfa_pipeline.adapters.push_guard import RedisPushGuard
from mfa_pipeline.adapters.redis_store import RedisChallengeStore, RedisRateLimiter
from mfa_pipeline.api.watcher import ChallengeWatcher
from mfa_pipeline.bootstrap import bootstrap
from mfa_pipeline.config import ConfigurationError
from mfa_pipeline.domain.challenges import ChallengeStatus, shard_of
from mfa_pipeline.domain.limits import RateLimit
from mfa_pipeline.ports import Transition
from tests.fixtures.pipeline import make_settings
from tests.integration.test_challenge_store import T0, digest, make_challenge

if TYPE_CHECKING:
    from pathlib import Path

    from tests.fixtures.redis_cluster import LocalRedisCluster

SHARDS = 16


def user_on_each_shard(shards: int) -> dict[int, str]:
    """One user id per shard (shards come from a hash of the user id)."""
    users: dict[int, str] = {}
    while len(users) < shards:
        user_id = f"user-{uuid.uuid4().hex[:12]}"
        users.setdefault(shard_of(user_id, shards), user_id)
    return users


def masters_of(cluster: LocalRedisCluster, keys: list[str]) -> set[int]:
    return {cluster.port_of(key) for key in keys}


def test_the_expiry_index_shards_spread_over_every_master(
    redis_cluster: LocalRedisCluster, key_prefix: str
) -> None:
    store = RedisChallengeStore(
        RedisCluster.from_url(redis_cluster.url), prefix=key_prefix, shards=SHARDS
    )
    due_keys = [store.keys.due(shard) for shard in range(SHARDS)]
    assert len({key_slot(key.encode()) for key in due_keys}) == SHARDS
    assert masters_of(redis_cluster, due_keys) == set(redis_cluster.ports)


def test_a_sweep_expires_due_challenges_shard_by_shard_on_every_master(
    redis_cluster_client: RedisCluster, redis_cluster: LocalRedisCluster, key_prefix: str
) -> None:
    store = RedisChallengeStore(redis_cluster_client, prefix=key_prefix, shards=SHARDS)
    created = []
    for user_id in user_on_each_shard(SHARDS).values():
        challenge = make_challenge(user_id=user_id, shards=SHARDS, lifetime=60)
        store.create(challenge)
        created.append(challenge.challenge_id)
    assert masters_of(redis_cluster, [store.keys.challenge(c) for c in created]) == set(
        redis_cluster.ports
    )
    expired = store.sweep(now=T0 + 60, batch_size=5)
    assert sorted(e.challenge_id for e in expired) == sorted(created)
    assert store.sweep(now=T0 + 61, batch_size=5) == []
    assert {store.get(c).status for c in created} == {ChallengeStatus.EXPIRED}  # type: ignore[union-attr]


def test_one_login_counts_rate_limits_living_on_different_masters_in_one_call(
    redis_cluster_client: RedisCluster, redis_cluster: LocalRedisCluster, key_prefix: str
) -> None:
    limiter = RedisRateLimiter(redis_cluster_client, prefix=key_prefix)
    names = [f"cu:{uuid.uuid4().hex}" for _ in range(12)]
    full_keys = [f"{key_prefix}:rl:{name}" for name in names]
    assert len(masters_of(redis_cluster, full_keys)) > 1
    limit = RateLimit(2, 600)
    hits = [(name, limit) for name in names]
    assert limiter.hit_many(hits, now=T0) == [0.0] * len(names)
    assert limiter.hit_many(hits, now=T0) == [0.0] * len(names)
    refused = limiter.hit_many(hits, now=T0)
    assert all(wait > 0 for wait in refused)


def test_the_limiter_reloads_its_script_on_every_master_that_lost_it(
    redis_cluster_client: RedisCluster, key_prefix: str
) -> None:
    limiter = RedisRateLimiter(redis_cluster_client, prefix=key_prefix)
    names = [f"ip:{uuid.uuid4().hex}" for _ in range(8)]
    limit = RateLimit(1, 600)
    redis_cluster_client.script_flush()  # every master: as after restarts
    assert limiter.hit_many([(n, limit) for n in names], now=T0) == [0.0] * len(names)
    # Each counter was incremented exactly once: the second hit is over the limit of one.
    assert all(w > 0 for w in limiter.hit_many([(n, limit) for n in names], now=T0))


def test_the_push_guard_admits_on_a_cluster(
    redis_cluster_client: RedisCluster, key_prefix: str
) -> None:
    guard = RedisPushGuard(redis_cluster_client, prefix=key_prefix)
    assert guard.admit("alice", "c1", now=T0, expires_at=T0 + 120) == 0.0
    guard.release("alice", "c1")
    guard.block("alice", seconds=60, now=T0)
    assert guard.admit("alice", "c2", now=T0, expires_at=T0 + 120) > 0


def test_a_watcher_on_one_master_wakes_when_a_challenge_on_another_master_changes(
    redis_cluster_client: RedisCluster, redis_cluster: LocalRedisCluster, key_prefix: str
) -> None:
    """Scripts PUBLISH on the node owning the challenge; classic pub/sub reaches every node."""
    store = RedisChallengeStore(redis_cluster_client, prefix=key_prefix, shards=SHARDS)
    challenge = make_challenge(shards=SHARDS)
    cid = challenge.challenge_id
    store.create(challenge)
    store.claim_delivery(cid, 0, digest(cid), now=T0, ttl_seconds=600)
    owner = redis_cluster.port_of(store.keys.challenge(cid))
    listener = next(port for port in redis_cluster.ports if port != owner)

    async def wait_for_the_change() -> None:
        watcher = ChallengeWatcher(
            redis_cluster.node_url(listener), channel_prefix=store.keys.channel_prefix
        )
        await watcher.start()
        try:
            async with watcher.watch(cid) as changed:
                verifier = threading.Thread(
                    target=store.verify_code, args=(cid, [digest(cid)]), kwargs={"now": T0 + 1}
                )
                verifier.start()
                await asyncio.wait_for(changed, timeout=5)
                verifier.join()
        finally:
            await watcher.stop()

    asyncio.run(wait_for_the_change())
    assert store.verify_code(cid, [digest(cid)], now=T0 + 2).transition is Transition.COMPLETED


def test_a_cluster_store_without_a_broker_of_its_own_is_refused(
    tmp_path: Path, redis_cluster: LocalRedisCluster
) -> None:
    settings = make_settings(tmp_path, redis_cluster.url, "refused", redis_cluster=True)
    with pytest.raises(ConfigurationError, match="MFA_BROKER_URL"):
        bootstrap(settings)
