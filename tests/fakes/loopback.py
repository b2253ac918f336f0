"""What every local stand-in for a provider shares: a threaded HTTP server on a free loopback
port, started and stopped with the test, and a keep-alive JSON request handler."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    # A worker opens dozens of connections at once; socketserver's backlog of 5 would drop
    # the SYNs past it, and each dropped one costs the client a 1 s retransmit.
    request_queue_size = 256

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that gave up (a timeout test) closes its socket: not worth a traceback."""


class JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real APIs do
    disable_nagle_algorithm = True  # headers and body go out without a delayed-ACK stall

    def log_message(self, *_: object) -> None:
        return

    def answer(self, status: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


class LoopbackServer:
    """Serves `handler` from a thread; a context manager that always closes the socket."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], name: str) -> None:
        self._server = _QuietServer(("127.0.0.1", 0), handler)
        # A short poll interval: `shutdown()` waits up to one, and every test stops a server.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name=name, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
