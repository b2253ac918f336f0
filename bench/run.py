"""`python -m bench.run [--quick]`: throughput and latency of the whole pipeline on this machine.

Starts its own Redis, SQLite, fake Twilio, API and workers (see bench/stack.py), measures, prints
one table and writes bench/out/results.json. Figures are reported against the targets, never
asserted: a benchmark that fails on a slow machine tells nobody anything.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import pyotp
import redis

from bench import noop
from bench.client import Call, encode, run_burst, run_paced
from bench.report import (
    fmt_cores,
    fmt_ms,
    fmt_rate,
    machine,
    ms_per_op,
    ms_summary,
    table,
    write_json,
)
from bench.seed import Seeder, SmsUser, TotpUser
from bench.stack import API_KEY, Child, Stack, cpu_seconds
from mfa_pipeline.adapters.celery_app import celery_config

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from tests.fakes.fake_twilio import FakeTwilio

OUT = Path(__file__).resolve().parent / "out" / "results.json"
SWEEP = (("prefork", 2), ("prefork", 4), ("threads", 8))
DEFAULT_POOL = ("prefork", 2)
NOOP_COUNTER = "bench:noop:count"
SAMPLE_CHALLENGE_ID = "00a" + "x" * 28  # the SMS task's first argument, same size
TARGET_SMS_SHARE = 80.0  # % of the no-op rate
TARGET_P99_MS = 50.0
TARGET_TOTP_PER_S = 1000.0
RUN_LIMIT_SECONDS = 420  # a stuck run is stopped (and cleaned up) rather than left hanging


@dataclass(frozen=True)
class Plan:
    """Sizes per figure: the full run stays under ~3 minutes, `--quick` near 40 s."""

    quick: bool
    sweep: Sequence[tuple[str, int]]
    sweep_sms: int = 200
    warm_sms: int = 20
    noop_tasks: int = 3000
    sms_challenges: int = 1000
    sms_concurrency: int = 16
    latency_rate: float = 100.0
    latency_seconds: float = 10.0
    idle_rate: float = 25.0  # the same measurement well below capacity: latency without a queue
    idle_seconds: float = 4.0
    totp_create: int = 1000
    totp_users: int = 12000  # per API configuration; each verifies once
    totp_seconds: float = 10.0  # verification stops early if users remain (reported)
    totp_concurrency: int = 32
    api_workers: Sequence[int] = (1, 2)

    @classmethod
    def make(cls, *, quick: bool, pool: tuple[str, int] | None) -> Plan:
        sweep = [pool] if pool else [DEFAULT_POOL] if quick else list(SWEEP)
        if not quick:
            return cls(quick=False, sweep=sweep)
        return cls(
            quick=True,
            sweep=sweep,
            noop_tasks=1000,
            sms_challenges=300,
            latency_seconds=5.0,
            idle_seconds=2.0,
            totp_create=300,
            totp_users=4000,
            totp_seconds=4.0,
        )


@dataclass
class CpuMeter:
    """Cores each part used while a figure was measured: who was the bottleneck."""

    stack: Stack
    parts: dict[str, Child]
    cores: dict[str, float] = field(default_factory=dict)

    def _sample(self) -> dict[str, float]:
        sample = {name: child.cpu_seconds() for name, child in self.parts.items()}
        if self.stack.redis.process is not None:
            sample["redis"] = cpu_seconds([self.stack.redis.process.pid])
        sample["bench"] = time.process_time()  # the client and the fake Twilio
        return sample

    def __enter__(self) -> Self:
        self._start, self._t0 = self._sample(), time.monotonic()
        return self

    def __exit__(self, *_: object) -> None:
        end, elapsed = self._sample(), max(time.monotonic() - self._t0, 1e-9)
        self.cores = {k: round((end[k] - self._start[k]) / elapsed, 2) for k in end}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def users_of(items: list[Any], count: int) -> list[Any]:
    """Take `count` fresh users off the front of a list: no user is ever used twice."""
    taken = items[:count]
    del items[:count]
    return taken


def await_deliveries(
    fake: FakeTwilio, phones: set[str], cursor: int, idle_timeout: float = 20.0
) -> dict[str, float]:
    """When each of `phones` got its SMS (the fake's `received_at`); gives up when idle."""
    got: dict[str, float] = {}
    last_progress = time.monotonic()
    while len(got) < len(phones) and time.monotonic() - last_progress < idle_timeout:
        new = fake.messages[cursor:]
        cursor += len(new)
        for message in new:
            if message.get("To") in phones:
                got.setdefault(message["To"], message["received_at"])
        if new:
            last_progress = time.monotonic()
        time.sleep(0.005)
    return got


def sms_bodies(users: Sequence[SmsUser]) -> list[bytes]:
    return encode([{"user_id": u.user_id, "factor": "sms"} for u in users])


def statuses(calls: Sequence[Call]) -> dict[str, int]:
    return dict(Counter(call.label for call in calls))


# --- phases ----------------------------------------------------------------------------------


def warm_worker(stack: Stack, url: str, worker: Child, users: Sequence[SmsUser]) -> None:
    """Real SMS until each arrives: the worker consumes and its pool processes are connected."""
    cursor = len(stack.twilio.messages)
    run_burst(url, API_KEY, sms_bodies(users), concurrency=4)
    got = await_deliveries(stack.twilio, {u.phone for u in users}, cursor, idle_timeout=30)
    if len(got) < len(users):
        raise RuntimeError(f"the worker did not deliver its warm-up SMS:\n{worker.log_tail()}")


def sms_burst(
    stack: Stack, url: str, users: Sequence[SmsUser], concurrency: int, parts: dict[str, Child]
) -> dict[str, Any]:
    """N challenges as fast as the clients go; first creation → N-th message at the provider."""
    cursor = len(stack.twilio.messages)
    with CpuMeter(stack, parts) as meter:
        calls = run_burst(url, API_KEY, sms_bodies(users), concurrency)
        got = await_deliveries(stack.twilio, {u.phone for u in users}, cursor)
    first = min(call.sent for call in calls)
    created = [call for call in calls if call.status == 201]
    last_created = max((call.answered for call in created), default=first)
    last_delivered = max(got.values(), default=first)
    delivered_per_s = len(got) / (last_delivered - first) if got else None
    return {
        "challenges": len(users),
        "created": len(created),
        "delivered": len(got),
        "delivered_per_s": delivered_per_s,
        "created_per_s": len(created) / (last_created - first) if created else None,
        "statuses": statuses(calls),
        "api_response_ms": ms_summary([c.response_seconds for c in created]),
        "cpu_cores": meter.cores,
        "cpu_ms_per_op": ms_per_op(meter.cores, delivered_per_s),
    }


def pool_sweep(
    stack: Stack, api: Child, url: str, plan: Plan, sms: list[SmsUser]
) -> list[dict[str, Any]]:
    rows = []
    for pool, concurrency in plan.sweep:
        log(f"sweep: SMS through a {pool} worker, concurrency {concurrency}")
        worker = stack.start_worker(pool, concurrency)
        try:
            warm_worker(stack, url, worker, users_of(sms, plan.warm_sms))
            result = sms_burst(
                stack,
                url,
                users_of(sms, plan.sweep_sms),
                plan.sms_concurrency,
                {"api": api, "worker": worker},
            )
        finally:
            stack.stop(worker)
        rows.append({"pool": pool, "concurrency": concurrency, **result})
        log(f"  {fmt_rate(result['delivered_per_s'])} delivered")
    return rows


def noop_baseline(stack: Stack, pool: str, concurrency: int, tasks: int) -> dict[str, Any]:
    """Publish N no-op tasks from one process; first publish → N-th increment in Redis."""
    app = noop.create_app(stack.settings)
    worker = stack.start_noop_worker(pool, concurrency, NOOP_COUNTER)
    client = redis.Redis.from_url(stack.redis_url)

    def publish(count: int) -> None:
        for _ in range(count):
            app.send_task(noop.TASK, args=[SAMPLE_CHALLENGE_ID, 0], queue=noop.QUEUE)

    def wait_count(count: int, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while int(client.get(NOOP_COUNTER) or 0) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no-op worker stalled below {count}:\n{worker.log_tail()}")
            time.sleep(0.002)
        return time.monotonic()

    try:
        warm = 8 * concurrency
        publish(warm)
        wait_count(warm, timeout=30)
        client.set(NOOP_COUNTER, 0)
        with CpuMeter(stack, {"worker": worker}) as meter:
            start = time.monotonic()
            publish(tasks)
            published = time.monotonic()
            done = wait_count(tasks, timeout=max(60.0, tasks / 20))
    finally:
        client.close()
        stack.stop(worker)
        app.close()
    rate = tasks / (done - start)
    return {
        "tasks": tasks,
        "tasks_per_s": rate,
        "publish_per_s": tasks / (published - start),
        "cpu_cores": meter.cores,
        "cpu_ms_per_op": ms_per_op(meter.cores, rate),
    }


def latency(
    stack: Stack, url: str, users: Sequence[SmsUser], rate: float, parts: dict[str, Child]
) -> dict[str, Any]:
    """Open loop at a fixed rate; per challenge, POST sent → its SMS at the provider."""
    cursor = len(stack.twilio.messages)
    with CpuMeter(stack, parts) as meter:
        calls = run_paced(url, API_KEY, sms_bodies(users), rate)
        got = await_deliveries(stack.twilio, {u.phone for u in users}, cursor)
    e2e = [got[u.phone] - c.sent for c, u in zip(calls, users, strict=True) if u.phone in got]
    created = [call for call in calls if call.status == 201]
    first = min(c.sent for c in calls)
    span = max(c.sent for c in calls) - first
    return {
        "rate": rate,
        "challenges": len(users),
        "sent_per_s": (len(calls) - 1) / span if span > 0 else None,
        "delivered": len(got),
        "delivered_per_s": len(got) / (max(got.values()) - first) if got else None,
        "e2e_ms": ms_summary(e2e),
        "api_response_ms": ms_summary([c.response_seconds for c in created]),
        "schedule_lag_ms": ms_summary([c.sent - c.due for c in calls], qs=(99,)),
        "statuses": statuses(calls),
        "cpu_cores": meter.cores,
        "cpu_ms_per_op": ms_per_op(meter.cores, len(calls) / span if span > 0 else None),
    }


def totp_create(
    stack: Stack, url: str, users: Sequence[TotpUser], plan: Plan, parts: dict[str, Child]
) -> dict[str, Any]:
    """TOTP challenges without a code: the API, a SQL read and Redis; no worker, no write."""
    bodies = encode([{"user_id": u.user_id, "factor": "totp"} for u in users[: plan.totp_create]])
    with CpuMeter(stack, parts) as meter:
        calls = run_burst(url, API_KEY, bodies, plan.totp_concurrency)
    created = [call for call in calls if call.status == 201]
    span = max(c.answered for c in calls) - min(c.sent for c in calls)
    return {
        "requests": len(calls),
        "created": len(created),
        "created_per_s": len(created) / span,
        "statuses": statuses(calls),
        "api_response_ms": ms_summary([c.response_seconds for c in created]),
        "cpu_cores": meter.cores,
        "cpu_ms_per_op": ms_per_op(meter.cores, len(calls) / span),
    }


def totp_verify(
    stack: Stack, url: str, users: Sequence[TotpUser], plan: Plan, parts: dict[str, Child]
) -> dict[str, Any]:
    """One-round-trip verification (challenge + code), each user once, for a bounded time.

    Codes are computed just before the clock starts; the ±1 step window keeps them valid
    across a step boundary during the few seconds of the run.
    """
    rng = random.Random(7)
    bodies = encode(
        [
            {
                "user_id": u.user_id,
                "factor": "totp",
                "code": pyotp.TOTP(u.secret).now(),
                "context": {
                    "ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                },
            }
            for u in users
        ]
    )
    with CpuMeter(stack, parts) as meter:
        calls = run_burst(url, API_KEY, bodies, plan.totp_concurrency, seconds=plan.totp_seconds)
    verified = [c for c in calls if c.status == 201 and c.outcome == "verified"]
    span = max(c.answered for c in calls) - min(c.sent for c in calls)
    others = Counter(c.label for c in calls if c not in verified)
    return {
        "users": len(users),
        "requests": len(calls),
        "verified": len(verified),
        "verified_per_s": len(verified) / span,
        "seconds": span,
        "not_verified": dict(others),
        "api_response_ms": ms_summary([c.response_seconds for c in verified]),
        "cpu_cores": meter.cores,
        "cpu_ms_per_op": ms_per_op(meter.cores, len(calls) / span),
    }


# --- the run ---------------------------------------------------------------------------------


def measure(stack: Stack, plan: Plan) -> dict[str, Any]:
    seeder = Seeder(stack.container)
    sweep_sms = (plan.warm_sms + plan.sweep_sms) * len(plan.sweep) if len(plan.sweep) > 1 else 0
    latency_sms = int(plan.latency_rate * plan.latency_seconds)
    idle_sms = int(plan.idle_rate * plan.idle_seconds)
    sms = seeder.sms_users(sweep_sms + plan.warm_sms + plan.sms_challenges + latency_sms + idle_sms)
    totp = {w: seeder.totp_users(plan.totp_users) for w in plan.api_workers}
    seeder.close()
    log(f"seeded {len(sms)} SMS users and {sum(map(len, totp.values()))} TOTP users")
    results: dict[str, Any] = {}

    api, url = stack.start_api(workers=1)
    if len(plan.sweep) > 1:
        results["pool_sweep"] = pool_sweep(stack, api, url, plan, sms)
        best = max(results["pool_sweep"], key=lambda r: r["delivered_per_s"] or 0)
        pool, concurrency = best["pool"], best["concurrency"]
    else:
        pool, concurrency = plan.sweep[0]
    config = celery_config(stack.settings)
    results["worker"] = {
        "pool": pool,
        "concurrency": concurrency,
        "prefetch_multiplier": config["worker_prefetch_multiplier"],
        "acks_late": config["task_acks_late"],
    }

    log(f"no-op Celery baseline: {plan.noop_tasks} tasks, {pool} worker x{concurrency}")
    results["noop"] = noop_baseline(stack, pool, concurrency, plan.noop_tasks)

    worker = stack.start_worker(pool, concurrency)
    parts = {"api": api, "worker": worker}
    warm_worker(stack, url, worker, users_of(sms, plan.warm_sms))
    log(f"SMS end to end: {plan.sms_challenges} challenges")
    results["sms"] = sms_burst(
        stack, url, users_of(sms, plan.sms_challenges), plan.sms_concurrency, parts
    )
    noop_rate = results["noop"]["tasks_per_s"]
    delivered_rate = results["sms"]["delivered_per_s"]
    results["sms"]["pct_of_noop"] = 100 * delivered_rate / noop_rate if delivered_rate else None
    log(f"latency: {latency_sms} SMS challenges at {plan.latency_rate:g}/s, open loop")
    results["latency"] = latency(stack, url, users_of(sms, latency_sms), plan.latency_rate, parts)
    log(f"latency below capacity: {idle_sms} SMS challenges at {plan.idle_rate:g}/s")
    results["latency_idle"] = latency(stack, url, users_of(sms, idle_sms), plan.idle_rate, parts)
    stack.stop(worker)

    results["totp_create"], results["totp_verify"] = [], []
    for workers in plan.api_workers:
        if workers != 1:
            stack.stop(api)
            api, url = stack.start_api(workers=workers)
        users = totp[workers]
        warm = encode([{"user_id": u.user_id, "factor": "totp"} for u in users[:200]])
        run_burst(url, API_KEY, warm, 16)
        log(f"TOTP with API --workers {workers}: challenges without code, then verifications")
        create = totp_create(stack, url, users, plan, {"api": api})
        verify = totp_verify(stack, url, users, plan, {"api": api})
        results["totp_create"].append({"api_workers": workers, **create})
        results["totp_verify"].append({"api_workers": workers, **verify})
    stack.stop(api)
    return results


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else "met" if ok else "MISSED"


def rows_of(results: dict[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    w = results["worker"]
    pool = f"{w['pool']} x{w['concurrency']}"
    for row in results.get("pool_sweep", []):
        yield (
            f"sweep: SMS e2e, {row['pool']} x{row['concurrency']} ({row['challenges']})",
            fmt_rate(row["delivered_per_s"]),
            "",
            fmt_cores(row),
        )
    noop_result, sms = results["noop"], results["sms"]
    yield (
        f"1. no-op Celery tasks ({noop_result['tasks']}, {pool})",
        fmt_rate(noop_result["tasks_per_s"]),
        "",
        fmt_cores(noop_result),
    )
    yield ("   publish rate, one process", fmt_rate(noop_result["publish_per_s"]), "", "")
    share = sms["pct_of_noop"]
    yield (
        f"2. SMS e2e delivered ({sms['delivered']}/{sms['challenges']}, {pool})",
        f"{fmt_rate(sms['delivered_per_s'])} = {share:.0f}% of no-op" if share else "n/a",
        f">= {TARGET_SMS_SHARE:.0f}%: {verdict(share and share >= TARGET_SMS_SHARE)}",
        fmt_cores(sms),
    )
    yield ("   SMS challenges created meanwhile", fmt_rate(sms["created_per_s"]), "", "")
    for create in results["totp_create"]:
        yield (
            f"   TOTP challenges created, no code (API w{create['api_workers']})",
            fmt_rate(create["created_per_s"]),
            "",
            fmt_cores(create),
        )
    lat = results["latency"]
    e2e, resp = lat["e2e_ms"], lat["api_response_ms"]
    p99_ok = None if e2e["p99"] is None else e2e["p99"] < TARGET_P99_MS
    yield (
        (
            f"3. POST -> SMS at provider, {lat['rate']:g}/s open loop "
            f"({lat['delivered']}/{lat['challenges']}): p50"
        ),
        fmt_ms(e2e["p50"]),
        "",
        fmt_cores(lat),
    )
    yield ("   p95", fmt_ms(e2e["p95"]), "", "")
    yield ("   p99", fmt_ms(e2e["p99"]), f"< {TARGET_P99_MS:.0f} ms: {verdict(p99_ok)}", "")
    yield ("   max", fmt_ms(e2e["max"]), "", "")
    yield ("   API response p50 / p99", f"{fmt_ms(resp['p50'])} / {fmt_ms(resp['p99'])}", "", "")
    yield (
        "   sent / delivered rate",
        f"{fmt_rate(lat['sent_per_s'])} / {fmt_rate(lat['delivered_per_s'])}",
        "",
        "",
    )
    idle = results["latency_idle"]
    e2e, resp = idle["e2e_ms"], idle["api_response_ms"]
    yield (
        f"   same at {idle['rate']:g}/s ({idle['delivered']}/{idle['challenges']}): p50 / p99",
        f"{fmt_ms(e2e['p50'])} / {fmt_ms(e2e['p99'])}",
        "",
        fmt_cores(idle),
    )
    yield ("   API response p50 / p99", f"{fmt_ms(resp['p50'])} / {fmt_ms(resp['p99'])}", "", "")
    for verify in results["totp_verify"]:
        rate = verify["verified_per_s"]
        others = ", ".join(f"{k}: {v}" for k, v in verify["not_verified"].items()) or "none"
        yield (
            (
                f"4. TOTP verified (API w{verify['api_workers']}, {verify['verified']} in "
                f"{verify['seconds']:.1f} s)"
            ),
            fmt_rate(rate),
            f">= {TARGET_TOTP_PER_S:,.0f}/s: {verdict(rate >= TARGET_TOTP_PER_S)}",
            fmt_cores(verify),
        )
        yield ("   not verified", others, "", "")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, about 40 s")
    parser.add_argument(
        "--pool",
        metavar="POOL:CONCURRENCY",
        help="worker pool for SMS and the no-op baseline (e.g. prefork:2); default: the best "
        f"of a short sweep ({', '.join(f'{p}:{c}' for p, c in SWEEP)}), or "
        f"{':'.join(map(str, DEFAULT_POOL))} with --quick",
    )
    parser.add_argument("--out", type=Path, default=OUT, help=f"JSON results (default {OUT})")
    return parser.parse_args(argv)


def _stop_on_signal(signum: int, _frame: object) -> None:
    """SIGINT, SIGTERM and the run limit all unwind the stack, so every child is stopped.

    SIGINT is set explicitly: a shell starts background jobs with it ignored.
    """
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pool = None
    if args.pool:
        name, _, concurrency = args.pool.partition(":")
        pool = (name, int(concurrency or 2))
    plan = Plan.make(quick=args.quick, pool=pool)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
        signal.signal(signum, _stop_on_signal)
    signal.alarm(RUN_LIMIT_SECONDS)
    started = time.monotonic()
    info = machine()
    log(f"{'quick' if plan.quick else 'full'} run on {info['nproc']} x {info['cpu_model']}")
    try:
        with Stack.start() as stack:
            results = measure(stack, plan)
    except KeyboardInterrupt as exc:
        print(f"bench interrupted ({exc or 'SIGINT'}); every process it started is stopped")
        return 130
    finally:
        signal.alarm(0)
    results = {
        "mode": "quick" if plan.quick else "full",
        "machine": info,
        "seconds": round(time.monotonic() - started, 1),
        "targets": {
            "sms_pct_of_noop": TARGET_SMS_SHARE,
            "latency_p99_ms": TARGET_P99_MS,
            "totp_verified_per_s": TARGET_TOTP_PER_S,
        },
        **results,
    }
    write_json(results, args.out)
    print()
    print(
        f"mfa-pipeline bench ({results['mode']}, {results['seconds']} s): nproc {info['nproc']}, "
        f"{info['cpu_model']}, Python {info['python']}, {info['redis_server'].split(' sha')[0]}"
    )
    print(table(list(rows_of(results))))
    print(f"\nCPU cores: 'bench' is this process (HTTP client + fake Twilio). JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
