"""OpenFGA server with the in-memory datastore, and the `soma-agent-hub` store.

The memory engine forgets everything on restart, so the store is (re)created whenever the
server is started, and its id is recorded in state.json and exported in env.sh.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from testenv import build, config
from testenv.context import Context
from testenv.proc import ComponentError, spawn, wait_for


def prepare(ctx: Context) -> dict[str, Path]:
    """go install (or find cached) the pinned openfga server."""
    return {"openfga": build.openfga(ctx.cache, ctx.logs, ctx.report)}


def start(ctx: Context, binary: Path) -> None:
    """Spawn `openfga run` on loopback; playground off, metrics on a free port."""
    proc = ctx.process("openfga")
    http = ctx.port("openfga", "http")
    grpc = ctx.port("openfga", "grpc")
    metrics = ctx.port("openfga", "metrics")
    argv = [
        str(binary),
        "run",
        "--datastore-engine=memory",
        f"--http-addr=127.0.0.1:{http}",
        f"--grpc-addr=127.0.0.1:{grpc}",
        "--playground-enabled=false",
        "--metrics-enabled=true",
        f"--metrics-addr=127.0.0.1:{metrics}",
        "--log-format=json",
    ]
    proc.update(binary=str(binary), log=str(ctx.log_path("openfga")))
    proc["pid"], proc["start"] = spawn(argv, ctx.log_path("openfga"), home=ctx.home)
    ctx.state["openfga"] = {
        "url": f"http://127.0.0.1:{http}",
        "grpc": f"127.0.0.1:{grpc}",
        "metrics_url": f"http://127.0.0.1:{metrics}/metrics",
        "version": config.OPENFGA_VERSION,
        "store_name": config.OPENFGA_STORE_NAME,
    }
    ctx.save()


def wait(ctx: Context) -> None:
    """Wait for /healthz SERVING, then create the soma-agent-hub store."""
    proc = ctx.process("openfga")
    url = ctx.state["openfga"]["url"]
    wait_for(
        lambda: _call("GET", f"{url}/healthz").get("status") == "SERVING",
        what="/healthz",
        component="openfga",
        timeout=60,
        log=ctx.log_path("openfga"),
        pid=proc["pid"],
        started=proc["start"],
    )
    try:
        store = _call("POST", f"{url}/stores", {"name": config.OPENFGA_STORE_NAME})
    except OSError as exc:
        log = ctx.log_path("openfga")
        raise ComponentError("openfga", f"could not create store: {exc}", log) from exc
    ctx.state["openfga"]["store_id"] = store["id"]
    ctx.save()
    ctx.report("openfga", f"store {config.OPENFGA_STORE_NAME} = {store['id']}")


def healthy(ctx: Context) -> bool:
    """Whether the recorded server still serves and still has our store."""
    info = ctx.state.get("openfga", {})
    try:
        store = _call("GET", f"{info['url']}/stores/{info['store_id']}")
    except Exception:
        return False
    return bool(store.get("name") == config.OPENFGA_STORE_NAME)


def _call(method: str, url: str, body: Any = None) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=5) as resp:
        result = json.loads(resp.read().decode())
    return result if isinstance(result, dict) else {}
