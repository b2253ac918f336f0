"""HTTP load on `POST /v1/challenges`: closed-loop bursts and an open-loop paced schedule.

aiohttp on one event loop with keep-alive connections: the client shares the machine's cores
with the service, and aiohttp costs about half of what httpx does per request. Bodies are
serialized before the clock starts. Times are `time.monotonic()`, the clock the fake Twilio
stamps messages with, so client and provider times compare directly.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

import aiohttp

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


def run_burst(
    url: str, api_key: str, bodies: Sequence[bytes], concurrency: int, seconds: float | None = None
) -> list[Call]:
    async def go() -> list[Call]:
        async with ApiClient(url, api_key) as client:
            deadline = None if seconds is None else time.monotonic() + seconds
            return await client.burst(bodies, concurrency, deadline)

    return asyncio.run(go())


def run_paced(url: str, api_key: str, bodies: Sequence[bytes], rate: float) -> list[Call]:
    async def go() -> list[Call]:
        async with ApiClient(url, api_key) as client:
            return await client.paced(bodies, rate)

    return asyncio.run(go())
