"""`python -m bench.push`: push logins end to end, their API CPU beside a TOTP login's, wake-ups.

Each push login: `POST /v1/challenges {"factor": "push"}`, the login page's long-poll
`GET /v1/challenges/{id}?wait=30` starts, the push reaches the fake FCM through the worker and
pyfcm, the simulated device signs an approval with the right number and posts it, and the
long-poll returns `approved`. Each one-shot TOTP login: `POST /v1/challenges {"factor": "totp",
"code": ...}`. Both start on a fixed schedule (open loop, `--rate` per second), each user once,
in short rounds taken in turn (push, TOTP, and with `--compare` the other checkout's API the
same way), so every kind sees the same machine load; the API runs as deployed (default rate
limits, INFO logs as JSON). Before that, wrk reads the bare endpoint of `bench/bare.py` (when
wrk is installed), the figure the wake-up target is stated beside.

Printed per API: push logins completed per second, the p50/p95/p99 of the whole login, of
creation → push at FCM, and of the wake-up (the answer's POST sent → the long-poll returned)
against the target (p99 < 20 ms at 100 pushes/s); the API's CPU milliseconds (all its
processes, from /proc) per push login and per TOTP login, and their ratio against the target
(a push login at most 3 times a TOTP login). `--profile DIR` then records a py-spy profile of
the API processes during push logins. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pyotp

from bench.arrivals import Arrivals
from bench.report import add_compare_and_profile
from bench.stack import API_KEY, ROOT, Stack
from bench.wrk import SERVICE_ENV, Users, measure, portable, start_bare
from mfa_pipeline.cli.device import SimulatedDevice

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from bench.seed import TotpUser
    from bench.stack import Child

TARGET_WAKE_P99_MS = 20.0
TARGET_CPU_RATIO = 3.0
WARM_SECONDS = 1.0
ROUNDS = 4
MAX_SECONDS = 60.0  # measured seconds per kind and API: the whole run stays within minutes
RUN_LIMIT_SECONDS = 900


@dataclass
class PushLogin:
    due: float
    steps: dict[str, float] = field(default_factory=dict)
    outcome: str = "pending"
    done_at: float | None = None


@dataclass
class Tally:
    """One kind of login through one API, summed over its rounds."""

    logins: int = 0
    ok: int = 0
    seconds: float = 0.0
    api_cpu: float = 0.0
    # The whole machine over the rounds (every process: API, worker, fake FCM, Redis, this
    # client): busy and available core-seconds, from /proc/stat.
    machine_busy: float = 0.0
    machine_total: float = 0.0
    push: list[PushLogin] = field(default_factory=list)
    others: dict[str, int] = field(default_factory=dict)

    @property
    def cpu_ms(self) -> float:
        return self.api_cpu * 1000 / self.ok if self.ok else float("nan")

    @property
    def machine_ms(self) -> float:
        """The machine's CPU, all processes, per completed login."""
        return self.machine_busy * 1000 / self.ok if self.ok else float("nan")


def machine_cpu() -> tuple[float, float]:
    """Busy and total core-seconds of the whole machine so far (Linux /proc/stat), or zeros."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0, 0.0
    ticks = [int(f) for f in fields[:8]]  # user nice system idle iowait irq softirq steal
    hz = os.sysconf("SC_CLK_TCK")
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


@dataclass
class Api:
    name: str
    child: Child
    url: str
    push: Tally = field(default_factory=Tally)
    totp: Tally = field(default_factory=Tally)


def push_arrivals(stack: Stack, loop: asyncio.AbstractEventLoop) -> Arrivals:
    """The fake FCM's pushes by challenge id."""
    return Arrivals(stack.fcm.messages, lambda m: str(m["data"]["challenge_id"]), loop)


def client(url: str) -> aiohttp.ClientSession:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    connector = aiohttp.TCPConnector(limit=1024, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=60)
    return aiohttp.ClientSession(url, headers=headers, connector=connector, timeout=timeout)


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


def address(n: int) -> str:
    """An address of its own per login: the default per-address limits never bind."""
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{(n & 255) or 1}"


async def push_login(
    session: aiohttp.ClientSession,
    pushes: Arrivals,
    user: tuple[str, SimulatedDevice],
    record: PushLogin,
    ip: str,
) -> None:
    user_id, device = user
    started = time.monotonic()
    body = {"user_id": user_id, "factor": "push", "context": {"ip": ip}}
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
    try:
        message = await asyncio.wait_for(arrival, 30)
        record.steps["push_at_fcm"] = message["received_at"] - started
        signed = device.answer(cid, "approve", number=created["number_match"])
        sent_at = time.monotonic()
        async with session.post("/v1/push/responses", json=signed) as answer:
            await answer.read()
        record.steps["answer"] = time.monotonic() - sent_at
        returned_at, status = await waiting
    finally:
        waiting.cancel()  # a login that failed on the way leaves no poll behind
    record.steps["wake"] = returned_at - sent_at
    record.steps["login"] = returned_at - started
    record.outcome = status
    record.done_at = returned_at


async def totp_login(session: aiohttp.ClientSession, user: TotpUser, ip: str) -> str:
    code = pyotp.TOTP(user.secret).now()
    body = {"user_id": user.user_id, "factor": "totp", "code": code, "context": {"ip": ip}}
    async with session.post("/v1/challenges", json=body) as answer:
        created = await answer.json()
    if answer.status == 201 and created.get("status") == "verified":
        return "verified"
    return f"{answer.status} {created.get('error', {}).get('code')}"


async def on_schedule(
    api: Child, rate: float, count: int, one: Callable[[int, float], Awaitable[str]]
) -> tuple[float, float, list[str], tuple[float, float]]:
    """`count` logins at `rate` per second (login i at i/rate).

    Returns the elapsed time, the API's CPU, the outcomes and the machine's busy and total
    core-seconds meanwhile.
    """
    cpu_before = api.cpu_seconds()
    busy_before, total_before = machine_cpu()
    start = time.monotonic() + 0.05

    async def timed(i: int) -> str:
        due = start + i / rate
        if (delay := due - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        try:
            return await one(i, due)
        except (aiohttp.ClientError, TimeoutError, KeyError, ValueError) as exc:
            return type(exc).__name__

    outcomes = await asyncio.gather(*(timed(i) for i in range(count)))
    busy, total = machine_cpu()
    machine = (busy - busy_before, total - total_before)
    return time.monotonic() - start, api.cpu_seconds() - cpu_before, list(outcomes), machine


class Driver:
    """Hands out fresh users and runs rounds of either kind against one API."""

    def __init__(
        self,
        pushers: list[tuple[str, SimulatedDevice]],
        totp_users: list[TotpUser],
        pushes: Arrivals,
        rate: float,
    ) -> None:
        self.pushers, self.totp_users, self.pushes, self.rate = pushers, totp_users, pushes, rate
        self.logins = 0

    async def push_round(self, api: Api, session: aiohttp.ClientSession, count: int) -> Tally:
        users, self.pushers = self.pushers[:count], self.pushers[count:]
        first = self.logins
        self.logins += len(users)
        records = [PushLogin(0.0) for _ in users]

        async def one(i: int, due: float) -> str:
            records[i].due = due
            await push_login(session, self.pushes, users[i], records[i], address(first + i))
            return records[i].outcome

        elapsed, cpu, outcomes, machine = await on_schedule(api.child, self.rate, len(users), one)
        return tally(outcomes, "approved", elapsed, cpu, machine=machine, push=records)

    async def totp_round(self, api: Api, session: aiohttp.ClientSession, count: int) -> Tally:
        users, self.totp_users = self.totp_users[:count], self.totp_users[count:]
        first = self.logins
        self.logins += len(users)

        async def one(i: int, _: float) -> str:
            return await totp_login(session, users[i], address(first + i))

        elapsed, cpu, outcomes, machine = await on_schedule(api.child, self.rate, len(users), one)
        return tally(outcomes, "verified", elapsed, cpu, machine=machine)


def tally(
    outcomes: list[str],
    ok: str,
    seconds: float,
    cpu: float,
    *,
    machine: tuple[float, float],
    push: list[PushLogin] | None = None,
) -> Tally:
    t = Tally(len(outcomes), outcomes.count(ok), seconds, cpu, *machine, push or [])
    for outcome in outcomes:
        if outcome != ok:
            t.others[outcome] = t.others.get(outcome, 0) + 1
    return t


def add(total: Tally, part: Tally) -> None:
    total.logins += part.logins
    total.ok += part.ok
    total.seconds += part.seconds
    total.api_cpu += part.api_cpu
    total.machine_busy += part.machine_busy
    total.machine_total += part.machine_total
    total.push += part.push
    for k, v in part.others.items():
        total.others[k] = total.others.get(k, 0) + v


def per_round_and_warm(args: argparse.Namespace) -> tuple[int, int]:
    per_round = max(1, round(args.rate * args.seconds / args.rounds))
    return per_round, max(1, round(args.rate * WARM_SECONDS))


def logins_per_api(args: argparse.Namespace) -> int:
    """Users of each kind one API takes: the rounds, the warm-up and a profile's round."""
    per_round, warm = per_round_and_warm(args)
    return (args.rounds + 1) * per_round + warm


async def drive(
    stack: Stack, apis: list[Api], totp_users: list[TotpUser], args: argparse.Namespace
) -> None:
    per_round, warm = per_round_and_warm(args)
    sessions = [client(api.url) for api in apis]
    try:
        pushers = await register(sessions[0], len(apis) * logins_per_api(args))
        pushes = push_arrivals(stack, asyncio.get_running_loop())
        driver = Driver(pushers, totp_users, pushes, args.rate)
        for api, session in zip(apis, sessions, strict=True):  # imports, connections, caches
            await driver.push_round(api, session, warm)
            await driver.totp_round(api, session, warm)
        for _ in range(args.rounds):
            for api, session in zip(apis, sessions, strict=True):
                add(api.push, await driver.push_round(api, session, per_round))
                add(api.totp, await driver.totp_round(api, session, per_round))
        if args.profile:
            for api, session in zip(apis, sessions, strict=True):
                await profile_push(api, session, driver, args)
        driver.pushes.close()
    finally:
        for session in sessions:
            await session.close()


async def profile_push(
    api: Api, session: aiohttp.ClientSession, driver: Driver, args: argparse.Namespace
) -> None:
    """A py-spy profile of every API process (`--gil`: CPU, not waits) during push logins."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    suffix = {"flamegraph": "svg", "raw": "txt", "speedscope": "json"}[args.profile_format]
    out = Path(args.profile) / f"push-login-{api.name.replace(' ', '-')}.{suffix}"
    out.parent.mkdir(parents=True, exist_ok=True)
    count = min(len(driver.pushers), per_round_and_warm(args)[0])
    recorder = subprocess.Popen(  # noqa: ASYNC220 - started, not awaited; reaped below
        [
            py_spy,
            "record",
            "--pid",
            str(api.child.pid),
            "--subprocesses",
            "--gil",
            "--rate",
            "200",
            "--format",
            args.profile_format,
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    await asyncio.sleep(0.5)
    # Until the round's last login is done, however long a loaded machine takes: a profile
    # cut off early would hold the creations and miss the answers.
    await driver.push_round(api, session, count)
    recorder.send_signal(signal.SIGINT)
    _, err = await asyncio.to_thread(recorder.communicate, timeout=60)
    if not out.exists():
        print(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
        return
    portable(out)
    if args.compare:  # the other checkout's directory goes too
        out.write_text(out.read_text().replace(f"{args.compare.resolve()}/", ""))
    print(f"profile of {api.name}: {out}")


def ms(values: Sequence[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)

    def pick(q: float) -> float:
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return f"{pick(0.5):.1f} / {pick(0.95):.1f} / {pick(0.99):.1f} ms"


def bare_rate(stack: Stack, users: Users, args: argparse.Namespace) -> str:
    """The bare endpoint's rate with wrk, 8 connections, as `bench.wrk` reads it."""
    wrk = shutil.which("wrk")
    if wrk is None or args.bare_seconds <= 0:
        return "not measured (wrk is not installed)" if wrk is None else "not measured"
    settings = argparse.Namespace(
        threads=1,
        connections=8,
        seconds=args.bare_seconds,
        warmup=1.0,
        users=2000,
        warm_users=500,
    )
    bare, url = start_bare(stack, args.api_workers)
    try:
        work = stack.workdir / "wrk"
        work.mkdir(exist_ok=True)
        figures = measure(wrk, bare, url, users=users, args=settings, name="bare", workdir=work)
    finally:
        stack.stop(bare)
    return (
        f"{figures['per_s']:,.0f}/s (wrk -t1 -c8, {args.bare_seconds:g} s,"
        f" {args.api_workers} uvicorn processes)"
    )


def report(apis: list[Api], args: argparse.Namespace, bare: str, load: float) -> None:
    print(f"\npush and TOTP logins: {args.rate:g}/s offered, {args.seconds:g} s of each per API")
    print(f"  in {args.rounds} rounds taken in turn; API w{args.api_workers}, worker {args.pool}")
    print(f"  bare endpoint, same run: {bare}")
    print(f"  load average before the run: {load:.2f} (other work on the machine)")
    for api in apis:
        push, totp = api.push, api.totp
        done = [r for r in push.push if r.outcome == "approved" and r.done_at is not None]
        wake = [r.steps["wake"] for r in done]
        p99 = sorted(wake)[min(len(wake) - 1, int(0.99 * len(wake)))] * 1000 if wake else None
        verdict = "met" if p99 is not None and p99 < TARGET_WAKE_P99_MS else "MISSED"
        ratio = push.cpu_ms / totp.cpu_ms if totp.ok else float("nan")
        ratio_verdict = "met" if ratio <= TARGET_CPU_RATIO else "MISSED"
        print(f"\n[{api.name}]")
        rate = push.ok / push.seconds if push.seconds else 0
        print(f"  push approved              {push.ok}/{push.logins} ({rate:.0f}/s)")
        print(f"  login (create → long-poll) {ms([r.steps['login'] for r in done])} (p50/p95/p99)")
        print(f"  create → push at FCM       {ms([r.steps['push_at_fcm'] for r in done])}")
        print(f"  POST /v1/challenges        {ms([r.steps['create'] for r in done])}")
        print(f"  POST /v1/push/responses    {ms([r.steps['answer'] for r in done])}")
        target = f"target p99 < {TARGET_WAKE_P99_MS:g} ms: {verdict}"
        print(f"  answer sent → poll returns {ms(wake)}  {target}")
        print(f"  TOTP verified              {totp.ok}/{totp.logins}")
        for name, t in (("push", push), ("TOTP", totp)):
            if t.others:
                print(f"  {name} not completed: {t.others}")
        if push.machine_total:
            busy = 100 * push.machine_busy / push.machine_total
            print(
                f"  machine during push rounds {busy:.0f}% busy (all cores, every process);"
                f" {push.machine_ms:.1f} ms of CPU per push login"
            )
        print(f"  API CPU per push login     {push.cpu_ms:.2f} ms")
        print(f"  API CPU per TOTP login     {totp.cpu_ms:.2f} ms")
        target = f"target <= {TARGET_CPU_RATIO:g}x: {ratio_verdict}"
        print(f"  push / TOTP                {ratio:.2f}x  {target}")
    if len(apis) > 1:
        a, b = apis
        print(
            f"\nAPI CPU per push login, {b.name} / {a.name}: {b.push.cpu_ms / a.push.cpu_ms:.2f}x"
        )


def _stop_on_signal(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0, help="of each kind, per API")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--pool", default="prefork:2", help="push worker pool:concurrency")
    parser.add_argument("--bare-seconds", type=float, default=4.0, help="0: skip the bare figure")
    add_compare_and_profile(parser, profiles="py-spy profiles")
    args = parser.parse_args(argv)
    args.seconds = min(args.seconds, MAX_SECONDS)
    # The fake FCM answers from threads of this process while the client's event loop keeps
    # the GIL busy: with the default 5 ms switch interval every push waits on that, and the
    # fake, not the service, sets the pace. Hand the GIL over sooner.
    sys.setswitchinterval(0.0002)
    pool, concurrency = args.pool.split(":")
    load = os.getloadavg()[0]
    # Everything it started is stopped on Ctrl-C, SIGTERM or the time limit (the stack's exit).
    signal.signal(signal.SIGTERM, _stop_on_signal)
    signal.signal(signal.SIGALRM, _stop_on_signal)
    signal.alarm(RUN_LIMIT_SECONDS)
    with Stack.start(extra_env=SERVICE_ENV) as stack:
        users = Users(stack)  # one seeder: the bare figure's users and the logins' differ
        bare = bare_rate(stack, users, args)
        apis = []
        if args.compare:
            child, url = stack.start_api(args.api_workers, code_root=args.compare.resolve())
            apis.append(Api("other code", child, url))
        child, url = stack.start_api(args.api_workers, code_root=ROOT)
        apis.append(Api("this code", child, url))
        stack.start_worker(pool, int(concurrency), queues="push")
        totp_users = users.seeder.totp_users(len(apis) * logins_per_api(args))
        users.seeder.close()
        time.sleep(3)  # the worker connects before the clock starts
        asyncio.run(drive(stack, apis, totp_users, args))
    signal.alarm(0)
    report(apis, args, bare, load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
