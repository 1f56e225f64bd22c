"""A second real kube-apiserver for fleet tests, and a kubeconfig naming several clusters.

The second server is the testenv's own cached kube-apiserver binary, started by the
testenv's own `start_apiserver`/`wait_apiserver` (so CRDs and the read-only identity are
installed the same way), on a fresh port, with the testenv's certificates, against the
same etcd under its own `--etcd-prefix`: an independent cluster at the cost of one process.
"""

from __future__ import annotations

import base64
import json
import shutil
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import yaml

import testenv
from testenv import kube
from testenv.context import Context
from testenv.proc import alive, stop_group
from tests.integration.cluster.kube_helpers import AdminKube


@dataclass
class SecondApiServer:
    """A running extra API server: its URL, admin access and how to stop it."""

    server: str
    admin: AdminKube
    pid: int
    started: int
    etcd_url: str
    etcd_prefix: str

    def running(self) -> bool:
        return alive(self.pid, self.started)

    def stop(self) -> None:
        """Stop the process group (idempotent) and drop its keys from the shared etcd."""
        if not stop_group(self.pid, self.started):
            raise RuntimeError(f"kube-apiserver {self.pid} would not stop")
        _etcd_delete_prefix(self.etcd_url, self.etcd_prefix)


def start_second_apiserver(admin_kubeconfig: Path, home: Path) -> SecondApiServer:
    """Start and bootstrap another API server next to the running testenv one.

    ``home`` holds its state, logs and a copy of the testenv's certificates (the same CA,
    so one admin credential works on both servers).
    """
    recorded = testenv.state()
    etcd_port = recorded["components"]["etcd"]["ports"]["client"]
    binary = Path(recorded["components"]["kube-apiserver"]["binary"])
    shutil.copytree(admin_kubeconfig.parent / "kube" / "pki", home / "kube" / "pki")
    ctx = Context(home=home, cache=Path(recorded["cache"]), quiet=True,
                  state={"components": {"etcd": {"ports": {"client": etcd_port}}}})
    prefix = f"/soma-fleet-{uuid.uuid4().hex[:8]}"
    kube.start_apiserver(ctx, binary, etcd_prefix=prefix)
    proc = ctx.process("kube-apiserver")
    second = SecondApiServer(
        server=ctx.state["kube"]["server"],
        admin=AdminKube(ctx.state["kube"]["server"], home / "kube" / "pki"),
        pid=proc["pid"],
        started=proc["start"],
        etcd_url=f"http://127.0.0.1:{etcd_port}",
        etcd_prefix=prefix,
    )
    try:
        kube.wait_apiserver(ctx)
    except BaseException:
        second.stop()
        raise
    return second


def _etcd_delete_prefix(etcd_url: str, prefix: str) -> None:
    """Delete every key under ``prefix`` (etcd's JSON gateway: key range [prefix, prefix+1))."""
    raw = prefix.encode()
    end = raw[:-1] + bytes([raw[-1] + 1])
    body = json.dumps({"key": base64.b64encode(raw).decode(),
                       "range_end": base64.b64encode(end).decode()}).encode()
    request = urllib.request.Request(f"{etcd_url}/v3/kv/deleterange", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def write_kubeconfig(path: Path, servers: dict[str, str], pki: Path) -> Path:
    """One context per ``servers`` entry (name → URL), all with the testenv admin identity."""
    def b64(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": url,
                                               "certificate-authority-data": b64("ca.crt")}}
                     for name, url in servers.items()],
        "users": [{"name": "admin", "user": {"client-certificate-data": b64("admin.crt"),
                                             "client-key-data": b64("admin.key")}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": "admin"}}
                     for name in servers],
        "current-context": next(iter(servers)),
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    path.chmod(0o600)
    return path
