"""A TCP proxy on loopback that fault drills cut or turn into a black hole.

It stands between the service and a dependency (PostgreSQL, the fake Twilio) so a test can
take the dependency away without touching the real server:

- `cut()`: every open connection is reset and new ones are refused (a server or network down);
- `blackhole()`: connections are accepted and whatever they send is swallowed, so clients wait
  for their own timeouts (a provider that hangs). Nothing sent into the hole ever reaches the
  server, even after `restore()`: a request either arrived whole or never arrived.
- `restore()`: forward again; connections that fell into the hole are closed.

An asyncio loop on a thread of its own; the methods may be called from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Self


class _Link:
    """One client connection and, unless it fell into the hole, its upstream connection."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.swallowed = False

    def close(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                with contextlib.suppress(Exception):
                    writer.transport.abort()


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._mode = "forward"
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tcp-proxy", daemon=True
        )

    # --- control, from any thread --------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self._call(self._listen())

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._close_everything())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        self._call(self._cut())

    def blackhole(self) -> None:
        """Accept, and swallow everything sent from now on; nothing is answered."""
        self._call(self._set_mode("blackhole"))

    def restore(self) -> None:
        self._call(self._restore())

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _call(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)  # type: ignore[arg-type]

    # --- the loop's side -----------------------------------------------------------------

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _set_mode(self, mode: str) -> None:
        self._mode = mode

    async def _cut(self) -> None:
        self._mode = "cut"
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for link in list(self._links):
            link.close()
        self._links.clear()

    async def _restore(self) -> None:
        for link in [link for link in self._links if link.swallowed]:
            link.close()
            self._links.discard(link)
        self._mode = "forward"
        if self._server is None:
            await self._listen()

    async def _close_everything(self) -> None:
        await self._cut()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(writer)
        if self._mode == "cut":
            link.close()
            return
        self._links.add(link)
        try:
            if self._mode == "blackhole":
                link.swallowed = True
                await self._swallow(reader)
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                return
            link.upstream = up_writer
            await asyncio.gather(
                self._pipe(reader, up_writer, link, to_server=True),
                self._pipe(up_reader, writer, link, to_server=False),
            )
        finally:
            link.close()
            self._links.discard(link)

    async def _swallow(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError):
            while await reader.read(65536):
                pass

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: _Link,
        *,
        to_server: bool,
    ) -> None:
        try:
            while data := await reader.read(65536):
                if self._mode == "blackhole" or link.swallowed:
                    # Fell into the hole mid-conversation: from now on nothing passes either way.
                    link.swallowed = True
                    if to_server:
                        continue
                    return
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            if not link.swallowed:
                link.close()
