"""Toxiproxy, the fault-injecting TCP proxy of the reliability tier (tests/reliability).

Not part of `up`: a test session starts its own instance on a free port with
:func:`running` and stops it (the whole process group) when done. The binary is built
once from its Go module into the versioned cache (testenv/build.py) and reused.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testenv import build, config
from testenv.proc import free_port, spawn, stop_group, wait_for


def _report(component: str, message: str) -> None:
    print(f"[testenv] {component}: {message}", flush=True)


def _version(api: str) -> str:
    with urllib.request.urlopen(f"{api}/version", timeout=2) as response:
        return response.read().decode().strip()


@dataclass(frozen=True)
class Server:
    """A running Toxiproxy: its HTTP API, its log (one line per accepted client) and its
    process."""

    api: str
    log: Path
    pid: int

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One call of the HTTP API; its JSON answer (None when empty)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.api}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
        return json.loads(raw) if raw.strip() else None

    def create_proxy(self, name: str, upstream: str) -> str:
        """A proxy to ``upstream`` on a free loopback port; returns its host:port."""
        proxy = self.call("POST", "/proxies", {"name": name, "listen": "127.0.0.1:0",
                                               "upstream": upstream, "enabled": True})
        return str(proxy["listen"])

    def add_toxic(self, name: str, kind: str, stream: str, **attributes: Any) -> None:
        """Add a toxic (latency, bandwidth, reset_peer, timeout ...) on one direction
        (``downstream``: server to client; ``upstream``: client to server)."""
        self.call("POST", f"/proxies/{name}/toxics", {
            "name": f"{kind}-{stream}", "type": kind, "stream": stream, "toxicity": 1.0,
            "attributes": attributes})

    def remove_toxics(self, name: str) -> None:
        """Remove every toxic of one proxy."""
        for toxic in self.call("GET", f"/proxies/{name}/toxics") or []:
            self.call("DELETE", f"/proxies/{name}/toxics/{toxic['name']}")


@contextlib.contextmanager
def running(home: Path) -> Iterator[Server]:
    """A Toxiproxy server for the duration of the block.

    ``home`` holds its log and marks the process (SOMA_TESTENV_HOME) as ours.
    """
    logs = home / "logs"
    binary = build.toxiproxy(config.cache_dir(), logs, _report)
    port = free_port()
    log = logs / "toxiproxy.log"
    # info, not debug: one line per accepted client (the tests read them), not per call.
    env = dict(os.environ, LOG_LEVEL="info")
    # -proxy-metrics: bytes passed per proxy and direction (counted as connections end).
    argv = [str(binary), "-host", "127.0.0.1", "-port", str(port), "-proxy-metrics"]
    pid, started = spawn(argv, log, env=env, home=home)
    try:
        api = f"http://127.0.0.1:{port}"
        wait_for(lambda: _version(api), what="its HTTP API", component="toxiproxy",
                 timeout=30, log=log, pid=pid, started=started, interval=0.1)
        yield Server(api, log, pid)
    finally:
        if stop_group(pid, started, grace=5.0):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)  # our child: collected now, not left a zombie
