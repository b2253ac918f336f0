"""HTTP clients of `POST /v1/challenges`: closed-loop bursts and an open-loop paced schedule.

The client shares the machine's cores with the service, so it must cost little. Closed-loop
bursts use a minimal HTTP/1.1 client: one keep-alive connection per lane, each request a
prebuilt byte string, each answer read by its Content-Length (about a tenth of aiohttp's CPU
per request here, so that a 1,000/s run leaves the cores to the service). The paced schedule,
at a hundred requests a second, uses aiohttp. Bodies are serialized before the clock starts.
Times are `time.monotonic()`, the clock the fake Twilio stamps messages with, so client and
provider times compare directly.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

import aiohttp
from yarl import URL

if TYPE_CHECKING:
    from collections.abc import Sequence

CHALLENGES = "/v1/challenges"


@dataclass(slots=True)
class Call:
    """One request: when it was due, sent and answered, and what came back."""

    index: int
    due: float
    sent: float
    answered: float
    status: int  # 0 when no HTTP answer came
    outcome: str  # the challenge's status on success, else the error code
    challenge_id: str | None = None  # on success

    @property
    def response_seconds(self) -> float:
        return self.answered - self.sent

    @property
    def label(self) -> str:
        return f"{self.status} {self.outcome}"


def encode(bodies: Sequence[dict[str, object]]) -> list[bytes]:
    return [json.dumps(body, separators=(",", ":")).encode() for body in bodies]


class ApiClient:
    """An aiohttp session on the API; use as `async with ApiClient(...) as client`."""

    def __init__(self, base_url: str, api_key: str, connections: int = 64) -> None:
        self._base_url = base_url
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            self._base_url,
            headers=self._headers,
            connector=aiohttp.TCPConnector(limit=self._connections, keepalive_timeout=60),
            timeout=aiohttp.ClientTimeout(total=30),
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def create(self, index: int, body: bytes, due: float | None = None) -> Call:
        assert self._session is not None
        sent = time.monotonic()
        try:
            async with self._session.post(CHALLENGES, data=body) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Call(index, due or sent, sent, time.monotonic(), 0, type(exc).__name__)
        answered = time.monotonic()
        try:
            answer = json.loads(raw)
            outcome = answer["status"] if status < 300 else answer["error"]["code"]
        except (ValueError, KeyError, TypeError):
            outcome = "unreadable"
        return Call(index, due or sent, sent, answered, status, str(outcome))

    async def burst(
        self, bodies: Sequence[bytes], concurrency: int, deadline: float | None = None
    ) -> list[Call]:
        """Closed loop: `concurrency` requests in flight until the bodies (or the time) run out."""
        calls: list[Call] = []
        cursor = iter(enumerate(bodies))

        async def lane() -> None:
            for index, body in cursor:
                if deadline is not None and time.monotonic() >= deadline:
                    return
                calls.append(await self.create(index, body))

        await asyncio.gather(*(lane() for _ in range(concurrency)))
        calls.sort(key=lambda call: call.index)
        return calls

    async def paced(self, bodies: Sequence[bytes], rate: float) -> list[Call]:
        """Open loop: request i goes at start + i/rate, however slow the earlier answers are."""
        start = time.monotonic() + 0.05
        tasks = []
        for index, body in enumerate(bodies):
            due = start + index / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.create(index, body, due)))
        return list(await asyncio.gather(*tasks))


class _Lane:
    """One keep-alive HTTP/1.1 connection that posts prebuilt requests, one at a time."""

    def __init__(self, url: URL, api_key: str) -> None:
        self._host = url.host or "127.0.0.1"
        self._port = url.port or 80
        self._head = (
            f"POST {url.path.rstrip('/')}{CHALLENGES} HTTP/1.1\r\n"
            f"Host: {self._host}:{self._port}\r\n"
            f"Authorization: Bearer {api_key}\r\n"
            "Content-Type: application/json\r\n"
        ).encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connected(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        return self._reader, self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def post(self, index: int, body: bytes) -> Call:
        sent = time.monotonic()
        try:
            reader, writer = await self._connected()
            writer.write(self._head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
            raw = await reader.readexactly(int(headers.get("content-length", "0")))
            if headers.get("connection") == "close":
                self.close()
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            self.close()
            return Call(index, sent, sent, time.monotonic(), 0, type(exc).__name__)
        answered = time.monotonic()
        try:
            answer = json.loads(raw)
            outcome = answer["status"] if status < 300 else answer["error"]["code"]
        except (ValueError, KeyError, TypeError):
            return Call(index, sent, sent, answered, status, "unreadable")
        challenge_id = answer.get("challenge_id") if status < 300 else None
        return Call(index, sent, sent, answered, status, str(outcome), challenge_id)


async def raw_burst(
    url: str,
    api_key: str,
    bodies: Sequence[bytes],
    concurrency: int,
    deadline: float | None = None,
) -> list[Call]:
    """Closed loop on `_Lane`s: `concurrency` requests in flight until bodies or time run out."""
    calls: list[Call] = []
    cursor = iter(enumerate(bodies))
    lanes = [_Lane(URL(url), api_key) for _ in range(concurrency)]

    async def run(lane: _Lane) -> None:
        for index, body in cursor:
            if deadline is not None and time.monotonic() >= deadline:
                return
            calls.append(await lane.post(index, body))

    try:
        await asyncio.gather(*(run(lane) for lane in lanes))
    finally:
        for lane in lanes:
            lane.close()
    calls.sort(key=lambda call: call.index)
    return calls


def run_burst(
    url: str, api_key: str, bodies: Sequence[bytes], concurrency: int, seconds: float | None = None
) -> list[Call]:
    deadline = None if seconds is None else time.monotonic() + seconds
    return asyncio.run(raw_burst(url, api_key, bodies, concurrency, deadline))


def run_paced(url: str, api_key: str, bodies: Sequence[bytes], rate: float) -> list[Call]:
    async def go() -> list[Call]:
        async with ApiClient(url, api_key) as client:
            return await client.paced(bodies, rate)

    return asyncio.run(go())
