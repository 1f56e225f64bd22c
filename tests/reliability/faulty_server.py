"""A loopback HTTP server that answers like a misbehaving Kubernetes API server.

A fake, used only for faults the real kube-apiserver cannot be made to produce: a body
trickled a byte at a time within the read timeout, ``continue`` tokens handed out without
end (the same one again, or a fresh one each page), a body of a gigabyte (declared, or
streamed without a length), discovery and LIST answers of the wrong JSON shape, an error
message made of terminal escapes, a compressed answer nobody asked for, a chunked body
broken off mid-chunk. Everything
else about the API server is tested against the real one (docs/testenv.md).

Bounded in count and time: it answers at most ``max_requests`` requests and no answer
lasts longer than ``max_seconds``; it stops when its ``with`` block ends.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MODES = ("trickle", "same-token", "fresh-tokens", "huge-declared", "huge-chunked",
         "wrong-discovery", "wrong-items", "silent", "hostile-error", "gzip-unasked",
         "broken-chunks")
#: The namespaces the ``gzip-unasked`` and ``broken-chunks`` modes list.
NAMESPACES = ("first", "second")
#: What the ``hostile-error`` mode says in its error answers: escapes, a line break, a
#: forged line.
HOSTILE_MESSAGE = "\x1b[2J\x1b[H\nsoma-audit: all checks passed \x07[/bold][red]x"
GIB = 1 << 30


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests count requests instead."""

    def _json(self, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        server = self.server
        with server.lock:
            server.requests += 1
            if "continue=" in self.path or "limit=" in self.path:
                server.lists += 1
            over = server.requests > server.max_requests
        if over:
            self.send_error(503)
            return
        ends = time.monotonic() + server.max_seconds
        mode = server.mode
        path = self.path.split("?")[0]
        if mode == "hostile-error":
            data = json.dumps({"kind": "Status", "message": HOSTILE_MESSAGE}).encode()
            self.send_response(403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif path == "/version":
            self._json({"major": "1", "minor": "31"})
        elif path == "/apis":
            self._json([1, 2] if mode == "wrong-discovery" else {"groups": [{"name": 5}]})
        elif mode == "trickle":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(10_000_000))
            self.end_headers()
            while time.monotonic() < ends and not server.closing.is_set():
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.1)
        elif mode == "silent":
            server.closing.wait(server.max_seconds)
        elif mode in ("same-token", "fresh-tokens"):
            token = "again" if mode == "same-token" else f"page-{server.lists}"
            self._json({"kind": "NamespaceList", "apiVersion": "v1", "items": [],
                        "metadata": {"continue": token}})
        elif mode.startswith("huge"):
            self._huge(mode == "huge-declared", ends)
        elif mode in ("gzip-unasked", "broken-chunks"):
            self._namespaces(compressed=mode == "gzip-unasked")
        elif mode == "wrong-items":
            self._json({"kind": "NamespaceList", "items": [1, "x", None], "metadata": 7})
        else:
            self._json({"kind": "NamespaceList", "items": 5})

    def _namespaces(self, compressed: bool) -> None:
        """A NamespaceList, gzip-compressed though the client did not ask for it, or
        chunked and broken off in the middle of its second chunk."""
        data = json.dumps({"kind": "NamespaceList", "apiVersion": "v1", "metadata": {},
                           "items": [{"metadata": {"name": name}} for name in NAMESPACES]}
                          ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if compressed:
            data = gzip.compress(data)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        half = len(data) // 2
        self.wfile.write(b"%x\r\n%s\r\n" % (half, data[:half]))
        self.wfile.write(b"%x\r\n%s" % (len(data) - half, data[half:half + 5]))
        self.wfile.flush()
        self.close_connection = True

    def _huge(self, declared: bool, ends: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if declared:
            self.send_header("Content-Length", str(GIB))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        block = b"[" * (1 << 20)
        sent = 0
        try:
            while sent < GIB and time.monotonic() < ends and not self.server.closing.is_set():
                if declared:
                    self.wfile.write(block)
                else:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                sent += len(block)
            with self.server.lock:
                self.server.sent = max(self.server.sent, sent)
        except OSError:
            with self.server.lock:
                self.server.sent = max(self.server.sent, sent)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, mode: str, max_requests: int, max_seconds: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = mode
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.requests = 0
        self.lists = 0
        self.sent = 0


@contextmanager
def faulty_server(mode: str, folder: Path, max_requests: int = 20_000,
                  max_seconds: float = 30.0) -> Iterator[tuple[_Server, Path]]:
    """The server in ``mode`` and a kubeconfig (token auth, plain HTTP) pointing at it."""
    assert mode in MODES, mode
    server = _Server(mode, max_requests, max_seconds)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    kubeconfig = folder / f"kubeconfig-{mode}"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "faulty",
        "clusters": [{"name": "faulty", "cluster": {"server": f"http://{host}:{port}"}}],
        "users": [{"name": "faulty", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "faulty", "context": {"cluster": "faulty", "user": "faulty"}}],
    }), encoding="utf-8")
    try:
        yield server, kubeconfig
    finally:
        server.closing.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
