"""The system under test, started by the bench itself and stopped by it, whatever happens.

Redis, SQLite and the fake Twilio live in (or under) the bench process; the API and the
workers are child processes started exactly as a deployment starts them (`mfa-pipeline api`,
`mfa-pipeline worker`), each in a session of its own so that its whole process tree (uvicorn
workers, prefork children) can be found, measured and stopped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Self

import httpx

from mfa_pipeline.adapters.crypto import generate_key
from mfa_pipeline.adapters.sql_migrations import upgrade
from mfa_pipeline.bootstrap import bootstrap
from mfa_pipeline.cli.embedded_redis import EmbeddedRedis, free_port
from mfa_pipeline.config import Settings
from tests.fakes.fake_fcm import FakeFcm
from tests.fakes.fake_twilio import FakeTwilio

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mfa_pipeline.bootstrap import Container

ROOT = Path(__file__).resolve().parent.parent
TWILIO_SID = "AC" + "b" * 32
TWILIO_TOKEN = "bench" * 6  # a test credential of the local fake, not a secret
TWILIO_FROM = "+15005550006"
API_KEY = "bench_" + "k" * 26  # the fake deployment's own key, accepted by no real service
UNLIMITED = "100000000/600"  # rate limits high enough never to throttle the bench
# A busy 2-core machine can take tens of seconds to start a multi-process API.
START_SECONDS = 120
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cli() -> list[str]:
    """`mfa-pipeline` of this interpreter's environment (the console script, else `-m`)."""
    script = Path(sys.executable).with_name("mfa-pipeline")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mfa_pipeline.cli"]


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (index 0 is the state)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def group_pids(pgid: int) -> list[int]:
    """Live processes of one process group: a child and everything it forked or spawned."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            if fields is not None and int(fields[2]) == pgid:
                pids.append(int(entry.name))
    return pids


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of live processes (Linux /proc; 0 elsewhere)."""
    total = 0
    for pid in pids:
        fields = _proc_stat(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _CLOCK_TICKS


@dataclass
class Child:
    """A child process in its own session; stopping it stops its whole tree."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def pids(self) -> list[int]:
        return group_pids(self.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pids())

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the leader (warm shutdown), then SIGKILL whatever of its group remains."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        deadline = time.monotonic() + 3
        while (left := self.pids()) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@dataclass
class Stack:
    """Everything the bench runs against; a context manager that leaves nothing behind."""

    workdir: Path
    redis: EmbeddedRedis
    twilio: FakeTwilio
    fcm: FakeFcm
    env: dict[str, str]
    settings: Settings
    container: Container
    children: list[Child] = field(default_factory=list)

    @property
    def redis_url(self) -> str:
        return self.redis.url

    @classmethod
    def start(
        cls, database_url: str | None = None, extra_env: dict[str, str] | None = None
    ) -> Stack:
        """Everything up; SQLite under the work dir unless `database_url` names another store."""
        workdir = Path(tempfile.mkdtemp(prefix="mfa-bench-"))
        redis = EmbeddedRedis(workdir, persist=False, binary=shutil.which("redis-server"))
        twilio = FakeTwilio(TWILIO_SID, TWILIO_TOKEN)
        fcm = FakeFcm()
        try:
            redis.start()
            twilio.start()
            fcm.start()
            env = service_environment(workdir, redis.url, twilio.url)
            if database_url is not None:
                env["MFA_DATABASE_URL"] = database_url
            env |= extra_env or {}
            account = fcm.write_service_account(workdir / "fcm-service-account.json")
            env |= {
                "MFA_PUSH_PROVIDER": "fcm",
                "MFA_FCM_SERVICE_ACCOUNT_FILE": str(account),
                "MFA_FCM_API_BASE_URL": fcm.url,
            }
            settings = Settings(**{k.removeprefix("MFA_").lower(): v for k, v in env.items()})  # type: ignore[arg-type]
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            upgrade(settings.effective_database_url)
            container = bootstrap(settings)
        except BaseException:
            fcm.stop()
            twilio.stop()
            redis.stop()
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        return cls(workdir, redis, twilio, fcm, env, settings, container)

    def close(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
        self.container.close()
        self.fcm.stop()
        self.twilio.stop()
        self.redis.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- children ----------------------------------------------------------------------------

    def spawn(
        self,
        name: str,
        argv: list[str],
        extra_env: dict[str, str] | None = None,
        code_root: Path = ROOT,
    ) -> Child:
        log_dir = self.workdir / "logs"
        log_dir.mkdir(exist_ok=True)
        log_path = log_dir / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MFA_")}
        env.update(self.env)
        env.update(extra_env or {})
        # Children import this checkout, not whichever one the console script was installed
        # from: a bench run from an older commit's worktree measures that commit's code.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code_root), env.get("PYTHONPATH")]))
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: found and stopped as one
            )
        child = Child(name, process, log_path)
        self.children.append(child)
        return child

    def stop(self, child: Child) -> None:
        child.stop()
        if child in self.children:
            self.children.remove(child)

    def start_api(self, workers: int, code_root: Path = ROOT) -> tuple[Child, str]:
        """`mfa-pipeline api` on a free port; returns once it answers /readyz.

        `code_root`: the checkout whose code it runs (another commit's, to compare).
        """
        port = free_port()
        child = self.spawn(
            f"api-w{workers}",
            [*_cli(), "api", "--port", str(port), "--workers", str(workers)],
            code_root=code_root,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_SECONDS
        with httpx.Client(base_url=url, timeout=2) as client:
            while True:
                if not child.alive() or time.monotonic() > deadline:
                    self.stop(child)
                    raise RuntimeError(f"the API did not start:\n{child.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    # A supervisor plus `workers` servers, all up, before any figure is taken.
                    ready = client.get("/readyz").status_code == 200
                    if ready and (workers == 1 or len(child.pids()) > workers):
                        return child, url
                time.sleep(0.1)

    def start_worker(self, pool: str, concurrency: int, queues: str = "sms") -> Child:
        """`mfa-pipeline worker` for `queues`; the caller warms it up with real work."""
        argv = [
            *_cli(),
            "worker",
            "--queues",
            queues,
            "--concurrency",
            str(concurrency),
            "--pool",
            pool,
        ]
        return self.spawn(f"worker-{pool}{concurrency}", argv)

    def start_noop_worker(self, pool: str, concurrency: int, counter_key: str) -> Child:
        """The bare Celery worker of `bench.noop`: same broker, pool and delivery settings."""
        from bench import noop  # noqa: PLC0415 - only the bench process needs it here

        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench.noop",
            "worker",
            "--queues",
            noop.QUEUE,
            "--concurrency",
            str(concurrency),
            "--pool",
            pool,
            "--hostname",
            f"bench-noop-{pool}{concurrency}@%h",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
        ]
        return self.spawn(f"noop-{pool}{concurrency}", argv, {noop.COUNTER_ENV: counter_key})


def service_environment(workdir: Path, redis_url: str, twilio_url: str) -> dict[str, str]:
    """The `MFA_*` variables of the deployment under test (the bench process reads them too)."""
    return {
        "MFA_ENV": "test",
        "MFA_DATA_DIR": str(workdir / "data"),
        "MFA_LOG_LEVEL": "WARNING",
        "MFA_LOG_FORMAT": "console",
        "MFA_REDIS_URL": redis_url,
        "MFA_DATABASE_URL": f"sqlite:///{workdir / 'data' / 'mfa.sqlite3'}",
        "MFA_API_KEYS": f"bench:{API_KEY}",
        "MFA_ENCRYPTION_KEYS": generate_key(),
        "MFA_SMS_PROVIDER": "twilio",
        "MFA_TWILIO_ACCOUNT_SID": TWILIO_SID,
        "MFA_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "MFA_TWILIO_FROM": TWILIO_FROM,
        "MFA_TWILIO_API_BASE_URL": twilio_url,
        "MFA_TWILIO_TIMEOUT_SECONDS": "5",
        "MFA_LIMIT_CHALLENGES_PER_USER": UNLIMITED,
        "MFA_LIMIT_CHALLENGES_PER_IP": UNLIMITED,
        "MFA_LIMIT_VERIFICATIONS_PER_USER": UNLIMITED,
        "MFA_LIMIT_VERIFICATIONS_PER_IP": UNLIMITED,
        # The bench texts one number thousands of times a minute: pumping limits off.
        "MFA_SMS_LIMIT_PER_NUMBER": UNLIMITED,
        "MFA_SMS_LIMIT_PER_PREFIX": UNLIMITED,
        "MFA_SMS_LIMIT_PER_COUNTRY": UNLIMITED,
        "MFA_SMS_BREAKER_PER_MINUTE": "100000000",
        "MFA_SMS_BREAKER_SCOPED_PER_MINUTE": "100000000",
    }
