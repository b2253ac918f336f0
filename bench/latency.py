"""`python -m bench.latency`: delivery throughput and latency while the provider takes its time.

Twilio's API usually answers in 100-500 ms; a worker that waits for each answer in turn
delivers a login storm's codes seconds late. For each channel (SMS through the real `twilio`
client to the fake Twilio, push through `pyfcm` to the fake FCM) and each provider latency
(`--latencies`, default 0, 0.3 and 1 s), one worker started with the command's own defaults
(`mfa-pipeline worker --queues sms`, or `--worker-args` to compare another pool) takes a burst
of `--burst` logins (200) posted by 64 concurrent clients. Printed per row: deliveries per
second (burst size over first POST sent -> last message at the provider), that rate as a share
of the rate at latency 0, the p50/p99 of POST sent -> message at the provider, lost and
duplicated messages, and the worker's memory (RSS of its whole process group, after the burst).
Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from bench.arrivals import Arrivals
from bench.push import register
from bench.seed import Seeder
from bench.stack import API_KEY, Child, Stack, _cli

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mfa_pipeline.cli.device import SimulatedDevice

CLIENTS = 64
WARM_UP = 70  # enough to start every thread of the default pool before the burst
TARGET_SHARE = 0.8  # at 300 ms, at least 80% of the throughput at latency 0
TARGET_P99_S = 1.5  # at 300 ms, POST -> provider p99 at most 1.5 s


@dataclass
class Row:
    channel: str
    latency: float
    rate: float
    p50: float
    p99: float
    lost: int
    duplicated: int
    rss_mib: float


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def rss_mib(child: Child) -> float:
    """Resident memory of a child's whole process group (main process and any pool)."""
    total_kib = 0
    for pid in child.pids():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total_kib += int(line.split()[1])
    return total_kib / 1024


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Channel:
    """How one channel's logins are posted and recognised at its fake provider."""

    name: str

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    async def users(self, session: aiohttp.ClientSession, count: int) -> list[str]:
        raise NotImplementedError

    def set_latency(self, seconds: float) -> None:
        raise NotImplementedError

    def arrivals(self, loop: asyncio.AbstractEventLoop) -> Arrivals:
        raise NotImplementedError

    def key(self, user_id: str, created: dict[str, Any]) -> str:
        raise NotImplementedError


class Sms(Channel):
    name = "sms"

    def __init__(self, stack: Stack) -> None:
        super().__init__(stack)
        self._seeder = Seeder(stack.container)
        self._phones: dict[str, str] = {}

    async def users(self, session: aiohttp.ClientSession, count: int) -> list[str]:  # noqa: ARG002
        users = self._seeder.sms_users(count)
        self._phones.update({u.user_id: u.phone for u in users})
        return [u.user_id for u in users]

    def set_latency(self, seconds: float) -> None:
        self.stack.twilio.delay = seconds

    def arrivals(self, loop: asyncio.AbstractEventLoop) -> Arrivals:
        return Arrivals(self.stack.twilio.messages, lambda m: str(m["To"]), loop)

    def key(self, user_id: str, created: dict[str, Any]) -> str:  # noqa: ARG002
        return self._phones[user_id]


class Push(Channel):
    name = "push"

    async def users(self, session: aiohttp.ClientSession, count: int) -> list[str]:
        registered: list[tuple[str, SimulatedDevice]] = await register(session, count)
        return [user_id for user_id, _ in registered]

    def set_latency(self, seconds: float) -> None:
        self.stack.fcm.delay = seconds

    def arrivals(self, loop: asyncio.AbstractEventLoop) -> Arrivals:
        return Arrivals(self.stack.fcm.messages, lambda m: str(m["data"]["challenge_id"]), loop)

    def key(self, user_id: str, created: dict[str, Any]) -> str:  # noqa: ARG002
        return str(created["challenge_id"])


async def burst(
    session: aiohttp.ClientSession, channel: Channel, users: list[str]
) -> tuple[float, list[float], int, int]:
    """Post one login per user from `CLIENTS` lanes; (rate, latencies, lost, duplicated)."""
    arrivals = channel.arrivals(asyncio.get_running_loop())
    latencies: list[float] = []
    arrived: list[float] = []
    keys: list[str] = []
    lost = 0
    pending = iter(users)
    first = time.monotonic()

    async def one(user_id: str) -> None:
        nonlocal lost
        sent = time.monotonic()
        body = {"user_id": user_id, "factor": channel.name}
        try:
            async with session.post("/v1/challenges", json=body) as answer:
                created = await answer.json()
        except (aiohttp.ClientError, TimeoutError):
            lost += 1  # counted, not fatal: a busy API may drop a connection
            return
        if answer.status != 201:
            lost += 1
            return
        key = channel.key(user_id, created)
        keys.append(key)
        try:
            message = await asyncio.wait_for(arrivals.wait(key), 60)
        except TimeoutError:
            lost += 1
            return
        latencies.append(message["received_at"] - sent)
        arrived.append(message["received_at"])

    async def lane() -> None:
        for user_id in pending:
            await one(user_id)

    await asyncio.gather(*(lane() for _ in range(CLIENTS)))
    await asyncio.sleep(0.5)  # a late second copy would show here
    duplicated = sum(max(0, arrivals.count[k] - 1) for k in keys)
    arrivals.close()
    span = max(arrived, default=first) - first
    return len(latencies) / max(span, 1e-9), latencies, lost, duplicated


async def run_channel(  # noqa: PLR0917 - one bench row's whole setup
    stack: Stack,
    url: str,
    channel: Channel,
    latencies: Sequence[float],
    size: int,
    worker_args: list[str],
) -> list[Row]:
    rows: list[Row] = []
    worker = stack.spawn(
        f"worker-{channel.name}", [*_cli(), "worker", "--queues", channel.name, *worker_args]
    )
    headers = {"Authorization": f"Bearer {API_KEY}"}

    def session() -> aiohttp.ClientSession:
        # A fresh one per burst: no keep-alive connection the API closed while idle.
        return aiohttp.ClientSession(
            url,
            headers=headers,
            connector=aiohttp.TCPConnector(limit=256, keepalive_timeout=60),
            timeout=aiohttp.ClientTimeout(total=120),
        )

    async with session() as s:
        users = await channel.users(s, WARM_UP + size * len(latencies))
        channel.set_latency(0.0)
        await burst(s, channel, users[:WARM_UP])  # starts the pool's threads
    del users[:WARM_UP]
    for latency in latencies:
        channel.set_latency(latency)
        async with session() as s:
            rate, times, lost, duplicated = await burst(s, channel, users[:size])
        del users[:size]
        row = Row(
            channel.name,
            latency,
            rate,
            quantile(times, 0.5),
            quantile(times, 0.99),
            lost,
            duplicated,
            rss_mib(worker),
        )
        log(
            f"{channel.name} at {latency * 1000:.0f} ms: {rate:.0f}/s, "
            f"p50 {row.p50:.2f} s, p99 {row.p99:.2f} s"
        )
        rows.append(row)
    stack.stop(worker)
    return rows


def report(rows: list[Row], worker_args: list[str], size: int) -> None:
    command = " ".join(["mfa-pipeline worker --queues CHANNEL", *worker_args])
    print(f"\none worker: `{command}`; a burst of {size} logins per row")
    print(
        "| channel | provider latency | deliveries/s | share of latency 0 | "
        "POST -> provider p50 / p99 | lost / duplicated | worker RSS |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    base: dict[str, float] = {}
    for row in rows:
        base.setdefault(row.channel, row.rate if row.latency == 0 else float("nan"))
        share = row.rate / base[row.channel]
        verdict = ""
        if abs(row.latency - 0.3) < 1e-9:
            met = share >= TARGET_SHARE and row.p99 <= TARGET_P99_S
            verdict = " (target >= 80%, p99 <= 1.5 s: " + ("met" if met else "missed") + ")"
        print(
            f"| {row.channel} | {row.latency * 1000:.0f} ms | {row.rate:.0f}/s | "
            f"{share:.0%}{verdict} | {row.p50:.2f} / {row.p99:.2f} s | "
            f"{row.lost} / {row.duplicated} | {row.rss_mib:.0f} MiB |"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=200, help="logins per burst")
    parser.add_argument("--latencies", default="0,0.3,1", help="provider latencies, seconds")
    parser.add_argument("--channels", default="sms,push")
    parser.add_argument(
        "--worker-args",
        default="",
        help="extra worker flags to compare, e.g. '--pool prefork --concurrency 8'",
    )
    parser.add_argument("--api-workers", type=int, default=2)
    args = parser.parse_args(argv)
    latencies = [float(x) for x in args.latencies.split(",")]
    worker_args = shlex.split(args.worker_args)
    rows: list[Row] = []
    with Stack.start() as stack:
        _, url = stack.start_api(args.api_workers)
        for name in args.channels.split(","):
            channel: Channel = Sms(stack) if name == "sms" else Push(stack)
            log(f"{name}: worker `{' '.join(worker_args) or 'defaults'}`")
            rows += asyncio.run(
                run_channel(stack, url, channel, latencies, args.burst, worker_args)
            )
    report(rows, worker_args, args.burst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
