"""Shared state of one `up`/`down` run: where things live, ports, progress, state.json."""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testenv.proc import free_port, port_free

STATE_VERSION = 1


@dataclass
class Context:
    """Paths, the mutable state document and a progress printer, safe across threads."""

    home: Path
    cache: Path
    state: dict[str, Any]
    quiet: bool = False
    began: float = field(default_factory=time.monotonic)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _ports: set[int] = field(default_factory=set)

    @property
    def logs(self) -> Path:
        """Where every component and build writes its log."""
        return self.home / "logs"

    @property
    def state_file(self) -> Path:
        """The record of what runs (pids, ports, endpoints)."""
        return self.home / "state.json"

    def log_path(self, component: str) -> Path:
        """The log file of one component."""
        return self.logs / f"{component}.log"

    def report(self, component: str, message: str) -> None:
        """One progress line with the time since this run began."""
        if self.quiet:
            return
        with self._lock:
            elapsed = time.monotonic() - self.began
            print(f"[testenv {elapsed:6.1f}s] {component}: {message}", file=sys.stderr, flush=True)

    def process(self, name: str) -> dict[str, Any]:
        """The state record of one process (created empty on first use)."""
        with self._lock:
            procs = self.state.setdefault("components", {})
            return procs.setdefault(name, {"ports": {}})  # type: ignore[no-any-return]

    def port(self, name: str, label: str) -> int:
        """A port for a component: the recorded one when still free, else a new free one."""
        with self._lock:
            ports = self.process(name).setdefault("ports", {})
            old = ports.get(label)
            if old and old not in self._ports and port_free(old):
                self._ports.add(old)
                return int(old)
            ports[label] = free_port(self._ports)
            return int(ports[label])

    def save(self) -> None:
        """Write state.json atomically."""
        with self._lock:
            self.home.mkdir(parents=True, exist_ok=True)
            self.state["version"] = STATE_VERSION
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.state, indent=2, sort_keys=True) + "\n")
            tmp.rename(self.state_file)


def load_state(home: Path) -> dict[str, Any]:
    """The recorded state, or an empty one when there is none (or it is unreadable)."""
    try:
        data = json.loads((home / "state.json").read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        return {}
    return data
