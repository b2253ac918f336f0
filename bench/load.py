"""`python -m bench.load`: a realistic login mix at a fixed arrival rate, with 1 and 2 workers.

Logins arrive on a fixed schedule (open loop: login *i* starts at *i*/rate whatever happened to
the earlier ones) for a fixed time, as a deterministic mix: 70% TOTP (one round trip with the
code), 20% SMS (create, the code arrives at the fake Twilio, verify with it), 10% push (create,
the fake FCM receives the push, the device simulator signs an approval with the right number,
the login page's long-poll returns). The same schedule runs once against one worker process
and once against two (`mfa-pipeline worker --queues sms,push --concurrency 1` each), each on a
fresh stack (`bench/stack.py`: its own Redis, SQLite, fake providers, API with two processes).

Reported per run: logins completed per second, p50/p95/p99 of each step, the queue depths
sampled every 250 ms, and the deliveries lost (a created SMS challenge whose message never
came) or duplicated (a number that got two messages; each SMS user logs in once). Below
capacity both runs complete what is offered, so each run ends with a capacity burst: `--burst`
SMS challenges as fast as 16 clients go, delivered per second; the scaling ratio is the two
runs' burst rates (on a 2-core machine the API, both workers and Redis share the cores, so
expect far less than 2x there). A PNG plot
of latency and queue depth over time goes to `bench/out/load.png`. Bounded: the schedule, then
at most `--drain` seconds for stragglers; everything is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pyotp

from bench import push as push_bench
from bench.arrivals import Arrivals
from bench.client import run_burst
from bench.run import await_deliveries, sms_bodies
from bench.seed import Seeder
from bench.stack import API_KEY, ROOT, Child, Stack, _cli

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bench.seed import SmsUser, TotpUser

QUEUES = ("sms", "push")
MIX = (("totp", 70), ("sms", 20), ("push", 10))
_CODE = re.compile(r"\b(\d{6})\b")


@dataclass
class Login:
    """One login of the schedule and the times of its steps (monotonic seconds)."""

    kind: str
    due: float
    steps: dict[str, float] = field(default_factory=dict)  # step name → seconds it took
    outcome: str = "pending"
    done_at: float | None = None


@dataclass
class Run:
    workers: int
    logins: list[Login]
    depths: list[tuple[float, dict[str, int]]]
    started: float
    lost: int
    duplicated: int
    burst_per_s: float | None = None
    burst_depths: list[tuple[float, dict[str, int]]] = field(default_factory=list)


def schedule(rate: float, seconds: float, seed: int = 11) -> list[str]:
    """The kinds of the logins in arrival order, in the mix's proportions."""
    rng = random.Random(seed)
    kinds = [kind for kind, weight in MIX for _ in range(weight)]
    return [rng.choice(kinds) for _ in range(int(rate * seconds))]


class Driver:
    """Runs the schedule against the API with one aiohttp session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        messages: Arrivals,
        totp: Sequence[TotpUser],
        sms: Sequence[SmsUser],
    ) -> None:
        self._session = session
        self._messages = messages
        self._totp = iter(totp)
        self._sms = iter(sms)
        self.sms_created: list[str] = []

    async def _post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        async with self._session.post(path, json=body) as response:
            return response.status, await response.json()

    async def totp(self, login: Login) -> None:
        user = next(self._totp)
        started = time.monotonic()
        body = {"user_id": user.user_id, "factor": "totp", "code": pyotp.TOTP(user.secret).now()}
        status, answer = await self._post("/v1/challenges", body)
        login.steps["verify"] = time.monotonic() - started
        login.outcome = answer.get("status", "?") if status == 201 else f"{status}"

    async def sms(self, login: Login, deliver_timeout: float) -> None:
        user = next(self._sms)
        started = time.monotonic()
        arrival = self._messages.wait(user.phone)
        status, answer = await self._post(
            "/v1/challenges", {"user_id": user.user_id, "factor": "sms"}
        )
        created = time.monotonic()
        login.steps["create"] = created - started
        if status != 201:
            login.outcome = f"{status}"
            return
        self.sms_created.append(user.phone)
        try:
            message = await asyncio.wait_for(asyncio.shield(arrival), deliver_timeout)
        except TimeoutError:
            login.outcome = "not_delivered"
            return
        login.steps["deliver"] = message["received_at"] - started
        match = _CODE.search(message.get("Body", ""))
        verify_started = time.monotonic()
        status, answer = await self._post(
            f"/v1/challenges/{answer['challenge_id']}/verify", {"code": match[1] if match else ""}
        )
        login.steps["verify"] = time.monotonic() - verify_started
        login.outcome = answer.get("status", "?") if status == 200 else f"{status}"


def queue_depths(stack: Stack) -> dict[str, int]:
    """Messages waiting in each Celery queue (the Redis broker keeps a queue as a list)."""
    redis = stack.container.redis
    return {queue: int(redis.llen(queue)) for queue in QUEUES}  # type: ignore[arg-type]


async def drive(
    stack: Stack, url: str, *, kinds: Sequence[str], rate: float, drain: float, burst: int
) -> tuple[list[Login], list[tuple[float, dict[str, int]]], float, Arrivals, Driver, list[SmsUser]]:
    loop = asyncio.get_running_loop()
    seeder = Seeder(stack.container)
    counts = Counter(kinds)
    totp_users = seeder.totp_users(counts["totp"] + 1)
    sms_users = seeder.sms_users(counts["sms"] + 1 + burst)
    seeder.close()
    messages = Arrivals(stack.twilio.messages, lambda m: str(m.get("To", "")), loop)
    depths: list[tuple[float, dict[str, int]]] = []
    headers = {"Authorization": f"Bearer {API_KEY}"}
    connector = aiohttp.TCPConnector(limit=256, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        url, headers=headers, connector=connector, timeout=timeout
    ) as s:
        driver = Driver(s, messages, totp_users, sms_users)
        push_users = iter(await push_bench.register(s, counts["push"]))
        pushes = push_bench.push_arrivals(stack, loop)
        start = time.monotonic() + 0.2
        logins = [Login(kind, start + i / rate) for i, kind in enumerate(kinds)]

        async def sample() -> None:
            while True:
                depths.append((time.monotonic(), await asyncio.to_thread(queue_depths, stack)))
                await asyncio.sleep(0.25)

        async def one(login: Login) -> None:
            try:
                if login.kind == "totp":
                    await driver.totp(login)
                elif login.kind == "sms":
                    await driver.sms(login, deliver_timeout=drain)
                else:
                    record = push_bench.PushLogin(login.due)
                    await push_bench.login(s, pushes, next(push_users), record)
                    login.outcome = record.outcome
                    login.steps.update(record.steps)
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
                login.outcome = type(exc).__name__
            login.done_at = time.monotonic()

        sampler = asyncio.create_task(sample())
        tasks = []
        for login in logins:
            delay = login.due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(login)))
        await asyncio.wait(tasks, timeout=drain + 5)
        sampler.cancel()
        pushes.close()
    return logins, depths, start, messages, driver, sms_users[counts["sms"] + 1 :]


def capacity_burst(
    stack: Stack, url: str, users: Sequence[SmsUser]
) -> tuple[float | None, list[tuple[float, dict[str, int]]], int, int]:
    """SMS challenges as fast as 16 clients go; first POST → last message at the provider."""
    depths: list[tuple[float, dict[str, int]]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            depths.append((time.monotonic(), queue_depths(stack)))
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    cursor = len(stack.twilio.messages)
    sampler.start()
    try:
        calls = run_burst(url, API_KEY, sms_bodies(users), 16)
        got = await_deliveries(stack.twilio, {u.phone for u in users}, cursor, idle_timeout=10)
    finally:
        stop.set()
        sampler.join(2)
    time.sleep(0.5)  # a late duplicate would show up here
    first = min(call.sent for call in calls)
    last = max(got.values(), default=first)
    sent = Counter(m.get("To") for m in stack.twilio.messages[cursor:])
    created = {u.phone for u, c in zip(users, calls, strict=True) if c.status == 201}
    lost = sum(1 for phone in created if sent[phone] == 0)
    duplicated = sum(1 for phone in created if sent[phone] > 1)
    rate = len(got) / (last - first) if got and last > first else None
    return rate, depths, lost, duplicated


def run_once(workers: int, kinds: Sequence[str], rate: float, drain: float, burst: int) -> Run:
    with Stack.start() as stack:
        _api, url = stack.start_api(workers=2)
        worker_children: list[Child] = [
            stack.spawn(
                f"worker{n}",
                [*_cli(), "worker", "--queues", ",".join(QUEUES), "--concurrency", "1"],
            )
            for n in range(workers)
        ]
        time.sleep(3)  # the workers connect and declare their queues before the clock starts
        for child in worker_children:
            if not child.alive():
                raise RuntimeError(f"a worker did not start:\n{child.log_tail()}")
        logins, depths, started, messages, driver, burst_users = asyncio.run(
            drive(stack, url, kinds=kinds, rate=rate, drain=drain, burst=burst)
        )
        time.sleep(0.5)  # a late duplicate would show up here
        messages.close()
        lost = sum(1 for phone in driver.sms_created if messages.count[phone] == 0)
        duplicated = sum(1 for phone in driver.sms_created if messages.count[phone] > 1)
        run = Run(workers, logins, depths, started, lost, duplicated)
        if burst:
            run.burst_per_s, run.burst_depths, lost, duplicated = capacity_burst(
                stack, url, burst_users
            )
            run.lost += lost
            run.duplicated += duplicated
        return run


def ms(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99)}


def summarize(run: Run) -> dict[str, Any]:
    ok = {"verified", "approved"}
    done = [x for x in run.logins if x.outcome in ok and x.done_at is not None]
    span = max((x.done_at or 0) for x in done) - run.started if done else 0
    steps: dict[str, dict[str, Any]] = {}
    for kind in {x.kind for x in run.logins}:
        mine = [x for x in run.logins if x.kind == kind]
        names = sorted({name for x in mine for name in x.steps})
        steps[kind] = {
            "offered": len(mine),
            "completed": sum(1 for x in mine if x.outcome in ok),
            "outcomes": dict(Counter(x.outcome for x in mine)),
            **{name: ms([x.steps[name] for x in mine if name in x.steps]) for name in names},
        }
    peak = {q: max((d[q] for _, d in run.depths), default=0) for q in QUEUES}
    return {
        "workers": run.workers,
        "completed_per_s": len(done) / span if span > 0 else None,
        "sms_burst_delivered_per_s": run.burst_per_s,
        "sms_burst_peak_queue_depth": max((d["sms"] for _, d in run.burst_depths), default=0),
        "lost": run.lost,
        "duplicated": run.duplicated,
        "peak_queue_depth": peak,
        "mean_queue_depth": {
            q: statistics.fmean(d[q] for _, d in run.depths) if run.depths else 0 for q in QUEUES
        },
        "steps": steps,
    }


def _plot_depths(
    axis: Any,
    depths: Sequence[tuple[float, dict[str, int]]],
    queues: Sequence[str],
    title: str,
    origin: float | None = None,
) -> None:
    """Messages waiting per queue; the y axis starts at 0 and shows 1 even for empty queues."""
    start = origin if origin is not None else (depths[0][0] if depths else 0.0)
    peak = 0
    for queue in queues:
        values = [d.get(queue, 0) for _, d in depths]
        peak = max([peak, *values])
        axis.plot([t - start for t, _ in depths], values, label=f"{queue} queue")
    axis.set_ylim(0, max(1, peak) * 1.1)
    axis.set_ylabel("messages waiting")
    axis.set_title(title, fontsize="medium")
    axis.legend(loc="upper right")


def plot(runs: Sequence[Run], path: Path) -> None:
    """Latency of each login (by kind) and queue depths over time, one column per run."""
    import matplotlib as mpl  # noqa: PLC0415 - only when a plot is asked for

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(3, len(runs), figsize=(6 * len(runs), 10), squeeze=False)
    for column, run in enumerate(runs):
        top, middle, bottom = (axes[row][column] for row in range(3))
        for kind, colour in (("totp", "tab:blue"), ("sms", "tab:orange"), ("push", "tab:green")):
            points = [
                (x.due - run.started, 1000 * ((x.done_at or x.due) - x.due))
                for x in run.logins
                if x.kind == kind and x.done_at is not None
            ]
            if points:
                xs, ys = zip(*points, strict=True)
                top.scatter(xs, ys, s=4, label=kind, color=colour)
        top.set_yscale("log")
        top.set_ylabel("login time, ms (log)")
        top.set_title(f"{run.workers} worker process{'es' if run.workers > 1 else ''}")
        top.legend(loc="upper right")
        top.set_xlabel("seconds since the first login")
        _plot_depths(middle, run.depths, QUEUES, "during the schedule", run.started)
        middle.set_xlabel("seconds since the first login")
        _plot_depths(bottom, run.burst_depths, ("sms",), "during the SMS burst")
        bottom.set_xlabel("seconds since the burst started")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


def report(results: Sequence[dict[str, Any]], rate: float, seconds: float) -> None:
    print(f"\nload: {rate:g} logins/s for {seconds:g} s, mix {dict(MIX)} (%)")
    for result in results:
        print(
            f"\n{result['workers']} worker process(es): {result['completed_per_s'] or 0:.0f} "
            f"logins/s completed; lost {result['lost']}, duplicated {result['duplicated']}; "
            f"queue depth peak {result['peak_queue_depth']}"
        )
        if result["sms_burst_delivered_per_s"]:
            print(
                f"  capacity burst: {result['sms_burst_delivered_per_s']:.0f} SMS delivered/s, "
                f"sms queue peak {result['sms_burst_peak_queue_depth']}"
            )
        for kind, figures in sorted(result["steps"].items()):
            steps = ", ".join(
                f"{name} {v['p50']:.1f}/{v['p95']:.1f}/{v['p99']:.1f} ms"
                for name, v in figures.items()
                if isinstance(v, dict) and "p50" in v and v["p50"] is not None
            )
            print(
                f"  {kind:5s} {figures['completed']}/{figures['offered']} "
                f"{steps} (p50/p95/p99) outcomes {figures['outcomes']}"
            )
    rates = [r["sms_burst_delivered_per_s"] for r in results]
    if len(results) == 2 and all(rates):
        print(f"\nscaling, 2 workers vs 1: {rates[1] / rates[0]:.2f}x SMS delivered/s in the burst")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=60.0, help="logins per second offered")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the schedule")
    parser.add_argument("--drain", type=float, default=20.0, help="seconds allowed after it")
    parser.add_argument("--workers", default="1,2", help="worker process counts to run")
    parser.add_argument("--burst", type=int, default=600, help="SMS challenges in the burst")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args(argv)
    seconds = min(args.seconds, 120.0)
    kinds = schedule(args.rate, seconds)
    drain, burst = min(args.drain, 60.0), min(args.burst, 5000)
    runs = [run_once(int(w), kinds, args.rate, drain, burst) for w in args.workers.split(",")]
    results = [summarize(run) for run in runs]
    report(results, args.rate, seconds)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "load.json").write_text(json.dumps(results, indent=2))
    plot(runs, args.out / "load.png")
    print(f"\nplot: {args.out / 'load.png'}; JSON: {args.out / 'load.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
