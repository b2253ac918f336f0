"""`python -m bench.sms_cpu`: the SMS worker's CPU per delivered SMS against a no-op task's.

The no-op worker (`bench/noop.py`) and the SMS worker run side by side, with the same pool and
concurrency (by default the worker command's own), and get their tasks from this process on
one open-loop schedule (`--rate` per second each): no-op tasks, and the SMS tasks of
challenges created beforehand through `POST /v1/challenges` (the worker then reads them in
Redis and SQL and sends through the real `twilio` client to the fake Twilio). A round is
measured from its first task until the broker holds nothing for any worker (queues empty,
nothing unacknowledged), as the CPU time of each worker's process group read from /proc: CPU
per item, not rates, and all workers at once, since the machine is shared.

`--compare DIR` runs the SMS worker of another checkout (say, the main branch's) beside them,
on the `push` queue: before and after in one run.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from bench import noop
from bench.client import encode, run_burst
from bench.report import machine, write_json
from bench.seed import Seeder
from bench.stack import _CLOCK_TICKS, API_KEY, ROOT, Child, Stack, _cli, _proc_stat
from mfa_pipeline.adapters.celery_app import DELIVER_SMS, PUSH_QUEUE, SMS_QUEUE, create_producer
from mfa_pipeline.cli.commands import WORKER_CONCURRENCY, WORKER_POOL

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from bench.seed import SmsUser

COUNTER = "bench:sms-cpu:noop"
UNACKED = "unacked"  # kombu's Redis transport: tasks delivered to a worker, not yet acknowledged
TARGET_RATIO = 3.0  # issue 15: SMS worker CPU per SMS at most 3x a no-op task's
RUN_LIMIT_SECONDS = 900
IDLE_SECONDS = 2.0
NOOP = "no-op"
OUT = Path(__file__).resolve().parent / "out" / "sms_cpu.json"


def log(message: str) -> None:
    print(f"[sms-cpu {time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass(frozen=True)
class Code:
    """Which code a worker runs: a checkout, and the interpreter (with its packages) to run it."""

    root: Path
    python: str
    suffix: str  # "" for this checkout, "-compare" for the other

    @property
    def cli(self) -> list[str]:
        if self.python == sys.executable:
            return _cli()
        return [self.python, "-m", "mfa_pipeline.cli"]


@dataclass(frozen=True)
class Phase:
    """One measured batch: items done and the worker's CPU over them."""

    kind: str
    items: int
    done: int
    cpu_seconds: float
    sys_seconds: float  # of which in the kernel: sockets, files, futexes
    wall_seconds: float
    idle_ms_per_s: float  # the worker's CPU while it had nothing to do, before the batch
    round: int = 0

    @property
    def ms_per_item(self) -> float:
        return 1000 * self.cpu_seconds / max(self.done, 1)


def settle(client: redis.Redis, queue: str, timeout: float = 60.0) -> None:
    """Until the broker holds nothing for the worker: the last task ran and was acknowledged."""
    deadline = time.monotonic() + timeout
    while client.llen(queue) or client.hlen(UNACKED):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {queue} queue did not drain in {timeout:.0f} s")
        time.sleep(0.005)


def sys_seconds(worker: Child) -> float:
    """Kernel CPU time of the worker's process group (the `stime` part of `cpu_seconds`)."""
    fields = [_proc_stat(pid) for pid in worker.pids()]
    return sum(int(f[12]) for f in fields if f is not None) / _CLOCK_TICKS


def idle_cpu(worker: Child) -> float:
    """CPU milliseconds per second the worker spends waiting for work."""
    before = worker.cpu_seconds()
    time.sleep(IDLE_SECONDS)
    return 1000 * (worker.cpu_seconds() - before) / IDLE_SECONDS


def paced(count: int, rate: float, action: Callable[[int], object]) -> None:
    """`action(i)` at start + i/rate: the same open-loop schedule the SMS client keeps."""
    start = time.monotonic()
    for index in range(count):
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        action(index)


def wait_for(condition: Callable[[], bool], what: str, worker: Child, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline or not worker.alive():
            raise RuntimeError(f"{what} did not happen:\n{worker.log_tail()}")
        time.sleep(0.005)


@dataclass
class Lane:
    """One worker measured in a round, and how to feed it and count what it did."""

    kind: str
    worker: Child
    queue: str
    publish: Callable[[int], object]  # task i of the round's schedule
    done: Callable[[], int]
    users: Sequence[SmsUser] = ()  # an SMS lane's, in the order of its tasks
    cpu: float = 0.0
    sys: float = 0.0


class Bench:
    def __init__(self, stack: Stack, url: str, args: argparse.Namespace) -> None:
        self.stack, self.url, self.args = stack, url, args
        self.client = redis.Redis.from_url(stack.redis_url)
        self.app = noop.create_app(stack.settings)
        self.producer = create_producer(stack.settings)  # the API's own producer
        self.round = 0

    def close(self) -> None:
        self.client.close()
        self.app.close()
        self.producer.close()

    def delivered(self, users: Sequence[SmsUser], cursor: int) -> int:
        phones = {u.phone for u in users}
        return len({m.get("To") for m in self.stack.twilio.messages[cursor:]} & phones)

    def create_challenges(self, users: Sequence[SmsUser]) -> list[str]:
        """SMS challenges through the API while no SMS worker runs; their tasks are dropped.

        The bench publishes those tasks itself, as the API does (`mfa.deliver_sms`, the
        challenge id and send 0), on the no-op tasks' schedule: every worker sees the same
        arrivals, and neither the API nor the HTTP client runs meanwhile.
        """
        bodies = encode([{"user_id": u.user_id, "factor": "sms"} for u in users])
        calls = run_burst(self.url, API_KEY, bodies, concurrency=16)
        ids = [c.challenge_id for c in calls if c.status == 201 and c.challenge_id]
        if len(ids) < len(users):
            failed = [c.label for c in calls if c.status != 201]
            raise RuntimeError(f"{len(users) - len(ids)} challenges not created: {failed[:3]}")
        self.client.delete(SMS_QUEUE)
        return ids

    def noop_lane(self, code: Code) -> Lane:
        """`celery -A bench.noop worker` as `Stack.start_noop_worker` starts it, under `code`."""
        counter, queue = COUNTER + code.suffix, noop.QUEUE + code.suffix
        argv = [code.python, "-m", "celery", "-A", "bench.noop", "worker", "--queues", queue]
        argv += ["--concurrency", str(self.args.concurrency), "--pool", self.args.pool]
        argv += ["--hostname", f"bench-noop{code.suffix}@%h", "--loglevel", "WARNING"]
        argv += ["--without-gossip", "--without-mingle"]
        kind = NOOP + code.suffix
        worker = self.stack.spawn(kind, argv, {noop.COUNTER_ENV: counter}, code_root=code.root)
        return Lane(
            kind,
            worker,
            queue,
            lambda _: self.app.send_task(noop.TASK, args=["00a" + "x" * 28, 0], queue=queue),
            lambda: int(self.client.get(counter) or 0),
        )

    def sms_lane(self, code: Code, queue: str, users: list[SmsUser], ids: list[str]) -> Lane:
        """An SMS worker on `queue`: the second one listens on `push`, the bench's SMS lane."""
        argv = [*code.cli, "worker", "--queues", queue, *self.args.pool_args]
        env = {"MFA_LOG_LEVEL": self.args.log_level, "MFA_LOG_FORMAT": "json"}
        kind = f"sms{code.suffix}"
        worker = self.stack.spawn(kind, argv, env, code_root=code.root)
        return Lane(
            kind,
            worker,
            queue,
            lambda i: self.producer.send_task(DELIVER_SMS, args=[ids[i], 0], queue=queue),
            lambda: 0,
            users,
        )

    def feed(self, lanes: Sequence[Lane], offset: int, count: int) -> None:
        """Tasks offset..offset+count-1 of each lane on one schedule, lanes interleaved."""
        paced(count, self.args.rate, lambda i: [lane.publish(offset + i) for lane in lanes])

    def wait_done(self, lanes: Sequence[Lane], targets: dict[str, int]) -> None:
        deadline = time.monotonic() + 90
        while any(lane.done() < targets[lane.kind] for lane in lanes):
            dead = [lane for lane in lanes if not lane.worker.alive()]
            if dead or time.monotonic() > deadline:
                late = dead or lanes
                raise RuntimeError(f"{late[0].kind} stalled:\n{late[0].worker.log_tail()}")
            time.sleep(0.01)
        for lane in lanes:
            settle(self.client, lane.queue)

    def count_from_now(self, lanes: Sequence[Lane], users: dict[str, Sequence[SmsUser]]) -> None:
        """Each lane's `done` counts from here on: the no-op counter, SMS at the fake."""
        for lane in lanes:
            if lane.kind.startswith(NOOP):
                self.client.set(COUNTER + lane.kind.removeprefix(NOOP), 0)
        cursor = len(self.stack.twilio.messages)
        for lane in lanes:
            if lane.kind in users:
                lane.done = functools.partial(self.delivered, users[lane.kind], cursor)

    def run_round(self, codes: Sequence[Code], users: list[SmsUser]) -> list[Phase]:
        """Every worker of the round at once, fed on one schedule: the same machine for all."""
        warm, count = self.args.warm, self.args.count
        batches = []
        for _ in codes:
            batches.append(users[: warm + count])
            del users[: warm + count]
        ids = [self.create_challenges(batch) for batch in batches]
        lanes: list[Lane] = []
        try:
            lanes += [self.noop_lane(code) for code in codes]
            for code, queue, batch, batch_ids in zip(
                codes, (SMS_QUEUE, PUSH_QUEUE), batches, ids, strict=False
            ):
                lanes.append(self.sms_lane(code, queue, batch, batch_ids))
            sms = {lane.kind: lane.users for lane in lanes if lane.users}
            # Warm-up: the pools' threads and their clients start; not measured.
            self.count_from_now(lanes, {k: v[:warm] for k, v in sms.items()})
            self.feed(lanes, 0, warm)
            self.wait_done(lanes, {lane.kind: warm for lane in lanes})
            idle = {lane.kind: lane.worker.cpu_seconds() for lane in lanes}
            time.sleep(IDLE_SECONDS)
            idle = {lane.kind: lane.worker.cpu_seconds() - idle[lane.kind] for lane in lanes}
            self.count_from_now(lanes, {k: v[warm:] for k, v in sms.items()})
            for lane in lanes:
                lane.cpu, lane.sys = lane.worker.cpu_seconds(), sys_seconds(lane.worker)
            start = time.monotonic()
            with contextlib.ExitStack() as profiles:
                for lane in lanes:
                    profiles.enter_context(self.profile(lane.worker, lane.kind))
                self.feed(lanes, warm, count)
                self.wait_done(lanes, {lane.kind: count for lane in lanes})
            wall = time.monotonic() - start
            return [
                Phase(
                    lane.kind,
                    count,
                    lane.done(),
                    lane.worker.cpu_seconds() - lane.cpu,
                    sys_seconds(lane.worker) - lane.sys,
                    wall,
                    1000 * idle[lane.kind] / IDLE_SECONDS,
                    self.round,
                )
                for lane in lanes
            ]
        finally:
            for lane in lanes:
                self.stack.stop(lane.worker)

    @contextlib.contextmanager
    def profile(self, worker: Child, kind: str) -> Iterator[None]:
        """py-spy on the worker while it is measured (`--profile DIR`): where its CPU goes.

        `--gil` samples only the thread holding the GIL: Python's CPU, not threads waiting.
        """
        if self.args.profile is None:
            yield
            return
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        suffix = {"raw": "txt", "flamegraph": "svg", "speedscope": "json"}[self.args.profile_format]
        self.args.profile.mkdir(parents=True, exist_ok=True)
        out = self.args.profile / f"{kind}-round{self.round}.{suffix}"
        argv = [spy, "record", "--gil", "--nonblocking", "-r", "200", "-p", str(worker.pid)]
        recorder = subprocess.Popen(
            [*argv, "-f", self.args.profile_format, "-o", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield
        finally:
            recorder.send_signal(signal.SIGINT)  # py-spy writes its output and exits
            with contextlib.suppress(subprocess.TimeoutExpired):
                recorder.wait(timeout=30)
            log(f"  profile: {out}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sms_cpu", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--count", type=int, default=1000, help="items per measured phase")
    parser.add_argument("--warm", type=int, default=200, help="unmeasured items first, per phase")
    parser.add_argument("--rate", type=float, default=100.0, help="items per second, both kinds")
    parser.add_argument("--rounds", type=int, default=2, help="phases alternate this many times")
    parser.add_argument(
        "--pool",
        metavar="POOL:CONCURRENCY",
        help="both workers' pool; default: the worker command's own, "
        f"{WORKER_POOL}:{WORKER_CONCURRENCY}, with no flag given",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        help="the SMS worker's MFA_LOG_LEVEL (default: INFO, as deployed)",
    )
    parser.add_argument(
        "--compare", type=Path, metavar="DIR", help="also the SMS worker of this other checkout"
    )
    parser.add_argument(
        "--compare-python",
        default=sys.executable,
        metavar="PYTHON",
        help="interpreter of the --compare worker (another environment's packages)",
    )
    parser.add_argument("--out", type=Path, default=OUT, help=f"JSON results (default {OUT})")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="py-spy each SMS phase here")
    parser.add_argument(
        "--profile-format", choices=["raw", "flamegraph", "speedscope"], default="flamegraph"
    )
    args = parser.parse_args(argv)
    if args.pool:
        name, _, concurrency = args.pool.partition(":")
        args.pool, args.concurrency = name, int(concurrency or WORKER_CONCURRENCY)
        args.pool_args = ["--pool", args.pool, "--concurrency", str(args.concurrency)]
    else:  # the command's defaults: no flag at all, as a deployment starts it
        args.pool, args.concurrency, args.pool_args = WORKER_POOL, WORKER_CONCURRENCY, []
    return args


def report(phases: list[Phase], args: argparse.Namespace) -> dict[str, Any]:
    """Print each phase and the medians; the no-op phase is the unit of the ratio."""
    kinds = list(dict.fromkeys(p.kind for p in phases))
    med = {k: statistics.median(p.ms_per_item for p in phases if p.kind == k) for k in kinds}
    print()
    print(
        f"Worker CPU per item, whole process group: {args.pool} x{args.concurrency}, "
        f"{args.count} items per phase at {args.rate:g}/s, {args.rounds} rounds, "
        f"SMS worker log level {args.log_level}"
    )
    head = ("phase", "round", "done", "CPU ms/item", "kernel %", "idle ms/s", "wall s")
    print("{:<14} {:>5} {:>6} {:>11} {:>8} {:>9} {:>6}".format(*head))
    for p in phases:
        print(
            f"{p.kind:<14} {p.round:>5} {p.done:>6} {p.ms_per_item:>11.2f} "
            f"{100 * p.sys_seconds / max(p.cpu_seconds, 1e-9):>8.0f} {p.idle_ms_per_s:>9.1f} "
            f"{p.wall_seconds:>6.1f}"
        )
    print()
    ratios = {}
    for kind in kinds:  # against the no-op worker of the same code and interpreter
        ratios[kind] = med[kind] / med[NOOP + kind.removeprefix("sms").removeprefix(NOOP)]
        verdict = ""
        if kind.startswith("sms"):
            met = "met" if ratios[kind] <= TARGET_RATIO else "MISSED"
            verdict = f"  target <= {TARGET_RATIO:g}x: {met}"
        print(f"median {kind:<14} {med[kind]:5.2f} ms/item = {ratios[kind]:4.2f}x no-op{verdict}")
    return {
        "args": {k: str(v) for k, v in vars(args).items()},
        "phases": [{**asdict(p), "ms_per_item": p.ms_per_item} for p in phases],
        "median_ms_per_item": med,
        "ratio_to_noop": ratios,
    }


def _stop_on_signal(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
        signal.signal(signum, _stop_on_signal)
    signal.alarm(RUN_LIMIT_SECONDS)
    info = machine()
    log(f"on {info['nproc']} x {info['cpu_model']}")
    codes = [Code(ROOT, sys.executable, "")]
    if args.compare:
        codes.append(Code(args.compare.resolve(), args.compare_python, "-compare"))
    phases: list[Phase] = []
    try:
        with Stack.start() as stack:
            seeder = Seeder(stack.container)
            users = seeder.sms_users((args.warm + args.count) * args.rounds * len(codes))
            seeder.close()
            api, url = stack.start_api(workers=1)
            bench = Bench(stack, url, args)
            try:
                for round_ in range(1, args.rounds + 1):
                    bench.round = round_
                    log(f"round {round_}: no-op and SMS workers side by side")
                    phases += bench.run_round(codes, users)
                    mine = [p for p in phases if p.round == round_]
                    log("  ms/item: " + ", ".join(f"{p.kind} {p.ms_per_item:.2f}" for p in mine))
            finally:
                bench.close()
                stack.stop(api)
    except KeyboardInterrupt as exc:
        print(f"bench interrupted ({exc or 'SIGINT'}); every process it started is stopped")
        return 130
    finally:
        signal.alarm(0)
    write_json({"machine": info, **report(phases, args)}, args.out)
    print(f"JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
