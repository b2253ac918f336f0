"""Challenges in Redis: one hash per challenge, a sorted set per shard indexing expiry.

Keys carry a `{prefix:sN}` hash tag: a challenge, its user's keys and its shard's expiry
index share one Redis Cluster slot, so every Lua script touches a single slot.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import TYPE_CHECKING, Any, ParamSpec, TypeAlias, TypeVar

import redis
from redis.cluster import RedisCluster

from mfa_pipeline.domain.challenges import (
    Challenge,
    ChallengePurpose,
    ChallengeStatus,
    Delivery,
    DeliveryStatus,
    FactorType,
    RequestContext,
    is_well_formed_challenge_id,
    shard_of,
    shard_of_challenge,
)
from mfa_pipeline.domain.errors import UnavailableError
from mfa_pipeline.ports import (
    ChallengeStore,
    ExpiredChallenge,
    IdempotencyMark,
    RateLimiter,
    StaleDelivery,
    StepClaim,
    StoreResult,
    Transition,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from redis.commands.core import Script

    from mfa_pipeline.domain.limits import RateLimit

P = ParamSpec("P")
R = TypeVar("R")

# Redis errors that mean "the store is not there right now".
# A sweep run stops after this many batches per shard; the next run takes the rest.
MAX_BATCHES_PER_SHARD = 20

REDIS_DOWN = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.BusyLoadingError,
    # Redis Cluster: slots without a reachable master (a node down, a failover under way).
    redis.exceptions.ClusterError,
    redis.exceptions.SlotNotCoveredError,
)

# One Redis, or a Redis Cluster (MFA_REDIS_CLUSTER): every key a script touches shares a slot,
# so the adapters run the same commands on either.
RedisClient: TypeAlias = redis.Redis | RedisCluster


def translate_redis_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a lost Redis into the domain's `UnavailableError` (HTTP 503 `unavailable`)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except REDIS_DOWN as exc:
            raise UnavailableError("The challenge store is unavailable; try again.") from exc

    return wrapper


def _lua(name: str) -> str:
    return (resources.files("mfa_pipeline.adapters") / "lua" / f"{name}.lua").read_text()


def _script(name: str) -> str:
    return _lua("_common") + "\n" + _lua(name)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _opt_float(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None


class RedisKeys:
    """The key layout, in one place."""

    def __init__(self, prefix: str, shards: int) -> None:
        self.prefix = prefix
        self.shards = shards

    def tag(self, shard: int) -> str:
        return f"{self.prefix}:{{s{shard}}}"

    def challenge(self, challenge_id: str) -> str:
        return f"{self.tag(shard_of_challenge(challenge_id))}:ch:{challenge_id}"

    def due(self, shard: int) -> str:
        return f"{self.tag(shard)}:due"

    def due_of(self, challenge_id: str) -> str:
        return self.due(shard_of_challenge(challenge_id))

    def deliveries(self, shard: int) -> str:
        return f"{self.tag(shard)}:dlv"

    def deliveries_of(self, challenge_id: str) -> str:
        return self.deliveries(shard_of_challenge(challenge_id))

    @property
    def channel_prefix(self) -> str:
        return f"{self.prefix}:ev:"

    def channel(self, challenge_id: str) -> str:
        return f"{self.channel_prefix}{challenge_id}"

    def rate(self, name: str) -> str:
        return f"{self.prefix}:rl:{name}"

    def totp_step(self, user_id: str, factor_id: str) -> str:
        """In the slot of the user's challenges: a one-shot login claims it as it creates one."""
        return f"{self.tag(shard_of(user_id, self.shards))}:ts:{factor_id}"

    def idempotency_marker(self, challenge_id: str, digest: str) -> str:
        """Beside the challenge (same slot), so one script writes both."""
        return f"{self.tag(shard_of_challenge(challenge_id))}:idem:{digest}"

    def idempotency_marker_of_user(self, user_id: str, digest: str) -> str:
        """The same key, found from the user (whose shard every challenge of theirs takes)."""
        return f"{self.tag(shard_of(user_id, self.shards))}:idem:{digest}"

    def idempotency(self, digest: str) -> str:
        """A key's reservation and answer: in a slot of its own, found from the key alone."""
        return f"{self.prefix}:{{idem:{digest}}}"


def _result(raw: Sequence[Any]) -> StoreResult:
    transition = Transition(raw[0])
    status = ChallengeStatus(raw[1]) if raw[1] else None
    extra = raw[2]
    if transition is Transition.TOO_SOON:
        return StoreResult(transition, status, retry_after=float(extra))
    if transition is Transition.DONE and isinstance(extra, str):
        return StoreResult(transition, status, seq=int(extra))
    return StoreResult(transition, status, attempts_remaining=int(extra))


class RedisChallengeStore(ChallengeStore):
    """`ChallengeStore` on Redis; each state change is one Lua script, hence atomic."""

    def __init__(
        self, client: RedisClient, *, prefix: str, shards: int, retention_seconds: int = 3600
    ) -> None:
        self._redis = client
        self._retain_ms = _ms(retention_seconds)
        self.keys = RedisKeys(prefix, shards)
        self._create = client.register_script(_script("create"))
        self._verify = client.register_script(_script("verify_code"))
        self._complete = client.register_script(_script("complete"))
        self._claim = client.register_script(_script("claim_delivery"))
        self._record = client.register_script(_script("record_delivery"))
        self._resend = client.register_script(_script("request_resend"))
        self._sweep = client.register_script(_script("sweep"))
        self._redeliver = client.register_script(_script("redeliver"))
        self._provider_status = client.register_script(_script("record_provider_status"))
        self._answer = client.register_script(_script("answer_push"))
        self._claim_step = client.register_script(_script("claim_totp_step"))

    def _pair(self, challenge_id: str) -> list[str]:
        """The challenge and its shard's indexes (expiry, sends in progress): one slot."""
        return [
            self.keys.challenge(challenge_id),
            self.keys.due_of(challenge_id),
            self.keys.deliveries_of(challenge_id),
        ]

    @translate_redis_errors
    def ping(self) -> None:
        self._redis.ping()

    @translate_redis_errors
    def create(
        self,
        challenge: Challenge,
        *,
        idempotency: IdempotencyMark | None = None,
        step_claim: StepClaim | None = None,
    ) -> bool:
        c = challenge
        fields: dict[str, str | int | float] = {
            "uid": c.user_id,
            "factor": c.factor.value,
            "fid": c.factor_id or "",
            "status": c.status.value,
            "purpose": c.purpose.value,
            "created": c.created_at,
            "exp": c.expires_at,
            "att": c.attempts,
            "max": c.max_attempts,
            "ip": c.context.ip or "",
            "ua": c.context.user_agent or "",
            "app": c.context.application or "",
            "kapp": c.context.api_application or "",
            "dst": c.delivery.status.value,
            "datt": c.delivery.attempts,
            "seq": c.send_seq,
            "cseq": -1,
            "rs": c.resends,
            "nm": c.number_match or "",
        }
        optional: dict[str, str | float | None] = {
            "dsid": c.delivery.provider_id,
            "derr": c.delivery.error_code,
            "dsent": c.delivery.sent_at,
            "dupd": c.delivery.updated_at,
            "lrs": c.last_resend_at,
            "done": c.completed_at,
            "wa": c.ceremony,
        }
        fields.update({name: value for name, value in optional.items() if value is not None})
        flat: list[str | int | float] = []
        for name, value in fields.items():
            flat += [name, value]
        life = max(0.0, c.expires_at - c.created_at) if not c.status.is_final else 0.0
        ttl_ms = _ms(life) + self._retain_ms
        keys = self._pair(c.challenge_id)
        marker_ttl_ms = 0
        if idempotency is not None:
            keys.append(self.keys.idempotency_marker(c.challenge_id, idempotency.digest))
            marker_ttl_ms = _ms(idempotency.ttl_seconds)
        step: int | str = ""
        keep_ms = 0
        if step_claim is not None:
            keys.append(self.keys.totp_step(c.user_id, step_claim.factor_id))
            step, keep_ms = step_claim.step, _ms(step_claim.keep_seconds)
        args = [c.challenge_id, c.expires_at, ttl_ms, marker_ttl_ms, step, keep_ms, *flat]
        return int(self._create(keys=keys, args=args)) != -1

    @translate_redis_errors
    def get(self, challenge_id: str) -> Challenge | None:
        if not is_well_formed_challenge_id(challenge_id):
            return None
        raw: dict[str, str] = self._redis.hgetall(self.keys.challenge(challenge_id))  # type: ignore[assignment]
        if not raw or "status" not in raw:
            return None
        return Challenge(
            challenge_id=challenge_id,
            user_id=raw["uid"],
            factor=FactorType(raw["factor"]),
            factor_id=raw.get("fid") or None,
            status=ChallengeStatus(raw["status"]),
            purpose=ChallengePurpose(raw.get("purpose", "login")),
            created_at=float(raw["created"]),
            expires_at=float(raw["exp"]),
            attempts=int(raw["att"]),
            max_attempts=int(raw["max"]),
            context=RequestContext(
                ip=raw.get("ip") or None,
                user_agent=raw.get("ua") or None,
                api_application=raw.get("kapp") or None,
                application=raw.get("app") or None,
            ),
            delivery=Delivery(
                status=DeliveryStatus(raw.get("dst", "none")),
                attempts=int(raw.get("datt", 0)),
                provider_id=raw.get("dsid") or None,
                error_code=raw.get("derr") or None,
                sent_at=_opt_float(raw.get("dsent")),
                updated_at=_opt_float(raw.get("dupd")),
            ),
            resends=int(raw.get("rs", 0)),
            send_seq=int(raw.get("seq", 0)),
            last_resend_at=_opt_float(raw.get("lrs")),
            completed_at=_opt_float(raw.get("done")),
            number_match=raw.get("nm") or None,
            fraud_reported=raw.get("fraud") == "1",
            ceremony=raw.get("wa") or None,
        )

    def _run(self, script: Any, challenge_id: str, *args: object) -> StoreResult:
        if not is_well_formed_challenge_id(challenge_id):
            return StoreResult(Transition.NOT_FOUND)
        return _result(script(keys=self._pair(challenge_id), args=[challenge_id, *args]))

    @translate_redis_errors
    def verify_code(
        self, challenge_id: str, candidates: Sequence[str], *, now: float
    ) -> StoreResult:
        channel = self.keys.channel(challenge_id)
        return self._run(self._verify, challenge_id, channel, now, self._retain_ms, 1, *candidates)

    @translate_redis_errors
    def record_miss(self, challenge_id: str, *, now: float) -> StoreResult:
        channel = self.keys.channel(challenge_id)
        return self._run(self._verify, challenge_id, channel, now, self._retain_ms, 0)

    @translate_redis_errors
    def claim_totp_step(self, user_id: str, claim: StepClaim) -> bool:
        key = self.keys.totp_step(user_id, claim.factor_id)
        return bool(self._claim_step(keys=[key], args=[claim.step, _ms(claim.keep_seconds)]))

    @translate_redis_errors
    def answer_push(
        self, challenge_id: str, *, approve: bool, number: str | None, fraud: bool, now: float
    ) -> StoreResult:
        channel = self.keys.channel(challenge_id)
        flags = (int(approve), number or "", int(fraud))
        return self._run(self._answer, challenge_id, channel, now, self._retain_ms, *flags)

    @translate_redis_errors
    def complete(self, challenge_id: str, status: ChallengeStatus, *, now: float) -> StoreResult:
        channel = self.keys.channel(challenge_id)
        return self._run(self._complete, challenge_id, channel, now, self._retain_ms, status.value)

    @translate_redis_errors
    def claim_delivery(
        self,
        challenge_id: str,
        seq: int,
        code_hash: str,
        *,
        now: float,
        ttl_seconds: int,
        in_flight_seconds: float = 0,
    ) -> StoreResult:
        # The key lives for the code's lifetime plus the retention after it.
        return self._run(
            self._claim,
            challenge_id,
            seq,
            code_hash,
            now,
            ttl_seconds,
            self._retain_ms,
            in_flight_seconds,
        )

    @translate_redis_errors
    def record_delivery(
        self,
        challenge_id: str,
        seq: int,
        *,
        status: str,
        now: float,
        provider_id: str | None = None,
        error_code: str | None = None,
        fail_challenge: bool = False,
    ) -> StoreResult:
        return self._run(
            self._record,
            challenge_id,
            self.keys.channel(challenge_id),
            now,
            self._retain_ms,
            seq,
            status,
            provider_id or "",
            error_code or "",
            1 if fail_challenge else 0,
        )

    @translate_redis_errors
    def record_provider_status(
        self,
        challenge_id: str,
        seq: int,
        *,
        provider_id: str,
        status: str,
        now: float,
        error_code: str | None = None,
    ) -> StoreResult:
        return self._run(
            self._provider_status,
            challenge_id,
            self.keys.channel(challenge_id),
            now,
            seq,
            provider_id,
            status,
            error_code or "",
        )

    @translate_redis_errors
    def request_resend(
        self, challenge_id: str, *, now: float, max_resends: int, min_interval: float
    ) -> StoreResult:
        return self._run(self._resend, challenge_id, now, max_resends, min_interval)

    @translate_redis_errors
    def sweep(self, *, now: float, batch_size: int) -> list[ExpiredChallenge]:
        expired: list[ExpiredChallenge] = []
        for shard in range(self.keys.shards):
            for _ in range(MAX_BATCHES_PER_SHARD):
                seen, batch = self._sweep_batch(shard, now=now, batch_size=batch_size)
                expired += batch
                if seen < batch_size:
                    break
        return expired

    def _sweep_batch(
        self, shard: int, *, now: float, batch_size: int
    ) -> tuple[int, list[ExpiredChallenge]]:
        """One bounded batch of one shard: read the due ids, then expire them atomically."""
        due = self.keys.due(shard)
        ids: list[str] = self._redis.zrangebyscore(due, "-inf", now, start=0, num=batch_size)  # type: ignore[assignment]
        if not ids:
            return 0, []
        keys = [due, *(self.keys.challenge(i) for i in ids)]
        rows = self._sweep(keys=keys, args=[now, self._retain_ms, self.keys.channel_prefix, *ids])
        return len(ids), [
            ExpiredChallenge(
                challenge_id=r[0],
                user_id=r[1],
                factor=r[2],
                application=r[3] or None,
                api_application=r[4] or None,
            )
            for r in rows
        ]

    @translate_redis_errors
    def stale_deliveries(
        self, *, now: float, stale_seconds: float, retry_grace_seconds: float, batch_size: int
    ) -> list[StaleDelivery]:
        found: list[StaleDelivery] = []
        for shard in range(self.keys.shards):
            watched = self.keys.deliveries(shard)
            ids: list[str] = self._redis.zrangebyscore(  # type: ignore[assignment]
                watched, "-inf", now - stale_seconds, start=0, num=batch_size
            )
            if not ids:
                continue
            keys = [watched, *(self.keys.challenge(i) for i in ids)]
            rows = self._redeliver(keys=keys, args=[now, stale_seconds, retry_grace_seconds, *ids])
            found += [
                StaleDelivery(challenge_id=r[0], user_id=r[1], factor=r[2], seq=int(r[3]))
                for r in rows
            ]
        return found


class RedisRateLimiter(RateLimiter):
    """Fixed-window counters; one atomic script per hit."""

    def __init__(self, client: RedisClient, *, prefix: str) -> None:
        self._redis = client
        self._keys = RedisKeys(prefix, 1)
        self._hit = client.register_script(_lua("rate_limit"))
        # One Redis holds every counter: all of a login's hits are one script call.
        self._hit_all = (
            None
            if isinstance(client, RedisCluster)
            else client.register_script(_lua("rate_limit_many"))
        )

    @translate_redis_errors
    def hit(self, key: str, limit: RateLimit, *, now: float) -> float:
        return self.hit_many([(key, limit)], now=now)[0]

    def hit_many_reading(
        self,
        hits: Sequence[tuple[str, RateLimit]],
        *,
        now: float,  # noqa: ARG002 - Redis keeps the window
        hash_key: str,
        fields: Sequence[str],
    ) -> tuple[list[float], list[str | None]] | None:
        """`hit_many`, and the `fields` of the hash at `hash_key` read in the same script call.

        None on a cluster, where the keys live in different slots: the caller asks twice.
        """
        if self._hit_all is None:
            return None
        return self._hit_all_at_once(self._hit_all, hits, fields, hash_key)

    def _hit_all_at_once(
        self,
        script: Script,
        hits: Sequence[tuple[str, RateLimit]],
        fields: Sequence[str],
        hash_key: str | None = None,
    ) -> tuple[list[float], list[str | None]]:
        args: list[int | str] = [len(hits)]
        for _, limit in hits:
            args += [limit.count, _ms(limit.window_seconds)]
        keys = [self._keys.rate(key) for key, _ in hits]
        if hash_key is not None:
            keys.append(hash_key)
            args += list(fields)
        replies = script(keys=keys, args=args)
        waits = [int(reply) / 1000 for reply in replies[: len(hits)]]
        values = [None if v is None else str(v) for v in replies[len(hits) :]]
        return waits, values

    @translate_redis_errors
    def hit_many(self, hits: Sequence[tuple[str, RateLimit]], *, now: float) -> list[float]:  # noqa: ARG002 - Redis keeps the window
        """All counters in one round trip: one script call, or on a cluster one pipeline.

        On one Redis a single script counts every key: a pipeline of one call per key costs
        the client and the server a command each. On a cluster the keys live in different
        slots, so each is its own call in a pipeline.

        EVALSHA straight away: redis-py's pipelined scripts ask SCRIPT EXISTS first, one more
        round trip on every login. A server that lost its scripts (restart, flush) answers
        NOSCRIPT for the hits not counted; only those are loaded and sent again. On a cluster
        the pipeline is split per node by each key's slot; its `evalsha` method is blocked there,
        the raw command is not (one key per call, so the slot is known).
        """
        if self._hit_all is not None:
            return self._hit_all_at_once(self._hit_all, hits, ())[0]
        waits: list[float | None] = [None] * len(hits)
        pending = list(range(len(hits)))
        for _ in range(2):
            pipe = self._redis.pipeline(transaction=False)
            for index in pending:
                key, limit = hits[index]
                pipe.execute_command(
                    "EVALSHA",
                    self._hit.sha,
                    1,
                    self._keys.rate(key),
                    limit.count,
                    _ms(limit.window_seconds),
                )
            missing: list[int] = []
            for index, reply in zip(pending, pipe.execute(raise_on_error=False), strict=True):
                if isinstance(reply, redis.exceptions.NoScriptError):
                    missing.append(index)
                elif isinstance(reply, Exception):
                    raise reply
                else:
                    waits[index] = int(reply) / 1000
            if not missing:
                break
            self._redis.script_load(self._hit.script)
            pending = missing
        if any(wait is None for wait in waits):
            msg = "Redis refused the rate-limit script."
            raise redis.exceptions.ResponseError(msg)
        return [wait or 0.0 for wait in waits]
