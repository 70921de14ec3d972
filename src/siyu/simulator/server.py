"""The HTTP layer: a threading HTTP/1.1 server (keep-alive, a thread per connection) over ``Simulator``.

Python's own ``ThreadingHTTPServer`` is enough here: the simulator's work per call is small and bounded,
and a thread per connection serves a client's pool of keep-alive connections in parallel.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from siyu.simulator import qrimage
from siyu.simulator.admin import handle_admin
from siyu.simulator.app import Answer

if TYPE_CHECKING:
    from siyu.simulator.app import Simulator

MAX_BODY = 32 << 20  # the largest upload WeCom takes is a 20 MB file


class SimulatorServer(ThreadingHTTPServer):
    """Serves one Simulator; remembers open connections so ``close_all`` can end idle keep-alives."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 1024  # bursts of thousands of calls queue here instead of being refused

    def __init__(self, address: tuple[str, int], sim: Simulator):
        self.sim = sim
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def close_all(self) -> None:
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    sys_version = ""
    timeout = 120  # idle keep-alive connections end after two minutes
    disable_nagle_algorithm = True  # headers and body are separate writes; Nagle would add ~40 ms each
    server: SimulatorServer

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)

    def log_message(self, format: str, *args: object) -> None:
        pass  # URLs carry access tokens; the simulator logs no requests

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def _handle(self, method: str) -> None:
        sim = self.server.sim
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True  # the unread body makes the connection unusable
            self._send(Answer(status=413, raw=b"", content_type="text/plain"))
            return
        body = self.rfile.read(length) if length else b""
        path = parts.path
        if path.startswith("/cgi-bin/"):
            answer = sim.handle_api(
                method,
                path[len("/cgi-bin/") :].strip("/"),
                query,
                body,
                client_ip=self.client_address[0],
                content_type=self.headers.get("Content-Type", ""),
            )
        elif path == "/_sim" or path.startswith("/_sim/"):
            answer = handle_admin(sim, method, path, query, body)
        elif path.startswith(qrimage.PREFIX) and method == "GET":
            image = qrimage.image_for(sim, path)
            answer = (
                Answer(raw=image, content_type="image/png")
                if image is not None
                else Answer(status=404, raw=b"", content_type="text/plain")
            )
        else:
            answer = Answer(status=404, raw=b"", content_type="text/plain")
        self._send(answer)

    def _send(self, answer: Answer) -> None:
        stopping = self.server.sim._stopping
        if answer.drop or answer.hold:
            if answer.hold:
                stopping.wait(answer.hold)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if answer.delay:
            stopping.wait(answer.delay)
        body = answer.body()
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in answer.headers.items():
            if value.isascii():
                self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
