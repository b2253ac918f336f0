"""`python -m bench.push`: push logins end to end, and how fast the waiting page learns the answer.

Each login: `POST /v1/challenges {"factor": "push"}`, the login page's long-poll
`GET /v1/challenges/{id}?wait=30` starts, the push reaches the fake FCM through the worker and
pyfcm, the simulated device signs an approval with the right number and posts it, and the
long-poll returns `approved`. Logins start on a fixed schedule (open loop, `--rate` per second
for `--seconds`), each user once. Printed: logins completed per second, the p50/p95/p99 of the
whole login, of creation → push at FCM, and of the wake-up (the answer's POST sent → the
long-poll returned) against the target (p99 < 20 ms at 100 pushes/s). Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp

from bench.arrivals import Arrivals
from bench.run import CpuMeter
from bench.stack import API_KEY, Stack
from mfa_pipeline.cli.device import SimulatedDevice

if TYPE_CHECKING:
    from collections.abc import Sequence

TARGET_WAKE_P99_MS = 20.0


@dataclass
class PushLogin:
    due: float
    steps: dict[str, float] = field(default_factory=dict)
    outcome: str = "pending"
    done_at: float | None = None


def push_arrivals(stack: Stack, loop: asyncio.AbstractEventLoop) -> Arrivals:
    """The fake FCM's pushes by challenge id."""
    return Arrivals(stack.fcm.messages, lambda m: str(m["data"]["challenge_id"]), loop)


async def register(session: aiohttp.ClientSession, count: int) -> list[tuple[str, SimulatedDevice]]:
    """`count` users with one simulated phone each, registered through the API."""
    users: list[tuple[str, SimulatedDevice]] = []
    lanes = asyncio.Semaphore(16)

    async def one(n: int) -> None:
        user_id, device = f"bench-push-{n:05d}", SimulatedDevice.generate()
        async with lanes:
            async with session.put(f"/v1/users/{user_id}", json={"firm_id": "bench"}) as answer:
                answer.raise_for_status()
            path = f"/v1/users/{user_id}/factors/push"
            async with session.post(path, json=device.registration()) as answer:
                answer.raise_for_status()
                device.device_id = (await answer.json())["device_id"]
        device.user_id = user_id
        users.append((user_id, device))

    await asyncio.gather(*(one(n) for n in range(count)))
    return users


async def login(
    session: aiohttp.ClientSession,
    pushes: Arrivals,
    user: tuple[str, SimulatedDevice],
    record: PushLogin,
) -> None:
    user_id, device = user
    started = time.monotonic()
    body = {"user_id": user_id, "factor": "push"}
    async with session.post("/v1/challenges", json=body) as answer:
        created = await answer.json()
    if answer.status != 201:
        record.outcome = f"{answer.status} {created.get('error', {}).get('code')}"
        return
    record.steps["create"] = time.monotonic() - started
    cid = created["challenge_id"]
    arrival = pushes.wait(cid)

    async def poll() -> tuple[float, str]:
        async with session.get(f"/v1/challenges/{cid}", params={"wait": "30"}) as answer:
            status = (await answer.json())["status"]
        return time.monotonic(), status

    waiting = asyncio.create_task(poll())
    message = await asyncio.wait_for(arrival, 30)
    record.steps["push_at_fcm"] = message["received_at"] - started
    assert message["data"]["challenge_id"] == cid
    signed = device.answer(cid, "approve", number=created["number_match"])
    sent_at = time.monotonic()
    async with session.post("/v1/push/responses", json=signed) as answer:
        await answer.read()
    record.steps["answer"] = time.monotonic() - sent_at
    returned_at, status = await waiting
    record.steps["wake"] = returned_at - sent_at
    record.steps["login"] = returned_at - started
    record.outcome = status
    record.done_at = returned_at


async def drive(
    stack: Stack, url: str, rate: float, seconds: float, meter: CpuMeter
) -> list[PushLogin]:
    count = int(rate * seconds)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    connector = aiohttp.TCPConnector(limit=1024, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        url, headers=headers, connector=connector, timeout=timeout
    ) as s:
        users = await register(s, count)
        pushes = push_arrivals(stack, asyncio.get_running_loop())
        meter.__enter__()
        start = time.monotonic() + 0.2
        records = [PushLogin(start + i / rate) for i in range(count)]

        async def one(user: tuple[str, SimulatedDevice], record: PushLogin) -> None:
            delay = record.due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                await login(s, pushes, user, record)
            except (aiohttp.ClientError, TimeoutError, KeyError, ValueError) as exc:
                record.outcome = type(exc).__name__

        await asyncio.gather(*(one(u, r) for u, r in zip(users, records, strict=True)))
        meter.__exit__()
        pushes.close()
    return records


def ms(values: Sequence[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)

    def pick(q: float) -> float:
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return f"{pick(0.5):.1f} / {pick(0.95):.1f} / {pick(0.99):.1f} ms"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--pool", default="prefork:2", help="push worker pool:concurrency")
    args = parser.parse_args(argv)
    # The fake FCM answers from threads of this process while the client's event loop keeps
    # the GIL busy: with the default 5 ms switch interval every push waits on that, and the
    # fake, not the service, sets the pace. Hand the GIL over sooner.
    sys.setswitchinterval(0.0002)
    pool, concurrency = args.pool.split(":")
    with Stack.start() as stack:
        api, url = stack.start_api(workers=args.api_workers)
        worker = stack.start_worker(pool, int(concurrency), queues="push")
        time.sleep(3)  # the worker connects before the clock starts
        meter = CpuMeter(stack, {"api": api, "worker": worker})
        records = asyncio.run(drive(stack, url, args.rate, min(args.seconds, 60.0), meter))
    done = [r for r in records if r.outcome == "approved" and r.done_at is not None]
    first = min(r.due for r in records)
    span = max((r.done_at or 0) for r in done) - first if done else 0
    others: dict[str, int] = {}
    for r in records:
        if r.outcome != "approved":
            others[r.outcome] = others.get(r.outcome, 0) + 1
    wake = [r.steps["wake"] for r in done]
    p99 = sorted(wake)[min(len(wake) - 1, int(0.99 * len(wake)))] * 1000 if wake else None
    verdict = "met" if p99 is not None and p99 < TARGET_WAKE_P99_MS else "MISSED"
    rate = len(done) / span if span else 0
    print(f"\npush logins: {args.rate:g}/s offered for {args.seconds:g} s", end="")
    print(f", API w{args.api_workers}, worker {args.pool}")
    print(f"  approved end to end        {len(done)}/{len(records)} = {rate:.0f}/s")
    print(f"  login (create → long-poll) {ms([r.steps['login'] for r in done])} (p50/p95/p99)")
    print(f"  create → push at FCM       {ms([r.steps['push_at_fcm'] for r in done])}")
    print(f"  POST /v1/challenges        {ms([r.steps['create'] for r in done])}")
    print(f"  POST /v1/push/responses    {ms([r.steps['answer'] for r in done])}")
    target = f"target p99 < {TARGET_WAKE_P99_MS:g} ms: {verdict}"
    print(f"  answer sent → poll returns {ms(wake)}  {target}")
    if others:
        print(f"  not approved: {others}")
    print(f"  CPU cores used: {meter.cores} ('bench': the client, the device and the fake FCM)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
