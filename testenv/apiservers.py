"""Further real kube-apiservers beside the testenv's own: independent clusters, cheaply.

Each one is the cached kube-apiserver binary, started by :func:`kube.start_apiserver` and
bootstrapped by :func:`kube.wait_apiserver` (CRDs and the read-only identity installed the
same way), on a fresh port with the testenv's certificates, against the running etcd under
its own ``--etcd-prefix``: fresh, empty storage at the cost of one process. The fleet
tests use two clusters this way; the benchmark gives every size of its series its own.
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
from testenv.kubeclient import Kube
from testenv.proc import alive, stop_group


@dataclass
class ExtraApiServer:
    """A running extra API server: its URL, admin access and how to stop it."""

    server: str
    pki: Path
    pid: int
    started: int
    etcd_url: str
    etcd_prefix: str

    @property
    def admin(self) -> Kube:
        """The testenv's stdlib client with the admin certificate."""
        return Kube(self.server, self.pki / "ca.crt", self.pki / "admin.crt",
                    self.pki / "admin.key")

    def running(self) -> bool:
        return alive(self.pid, self.started)

    def stop(self, keep_storage: bool = False) -> None:
        """Stop the process group (idempotent) and, unless ``keep_storage``, drop its keys
        from the shared etcd."""
        if not stop_group(self.pid, self.started):
            raise RuntimeError(f"kube-apiserver {self.pid} would not stop")
        if not keep_storage:
            delete_etcd_prefix(self.etcd_url, self.etcd_prefix)


def start_extra_apiserver(home: Path, prefix_name: str = "soma-extra",
                          unique: bool = True) -> ExtraApiServer:
    """Start and bootstrap another API server next to the running testenv one.

    ``home`` holds its state, logs, kubeconfigs (``admin.kubeconfig``,
    ``readonly.kubeconfig``) and a copy of the testenv's certificates (the same CA, so one
    admin credential works on every server). The storage is ``/<prefix_name>-<random>``,
    or ``/<prefix_name>`` itself when not ``unique`` (a later server finds what an earlier
    one stored there).
    """
    recorded = testenv.state()
    etcd_port = recorded["components"]["etcd"]["ports"]["client"]
    binary = Path(recorded["components"]["kube-apiserver"]["binary"])
    pki = home / "kube" / "pki"
    shutil.copytree(Path(recorded["home"]) / "kube" / "pki", pki, dirs_exist_ok=True)
    ctx = Context(home=home, cache=Path(recorded["cache"]), quiet=True,
                  state={"components": {"etcd": {"ports": {"client": etcd_port}}}})
    prefix = f"/{prefix_name}-{uuid.uuid4().hex[:8]}" if unique else f"/{prefix_name}"
    kube.start_apiserver(ctx, binary, etcd_prefix=prefix)
    proc = ctx.process("kube-apiserver")
    extra = ExtraApiServer(
        server=ctx.state["kube"]["server"],
        pki=pki,
        pid=proc["pid"],
        started=proc["start"],
        etcd_url=f"http://127.0.0.1:{etcd_port}",
        etcd_prefix=prefix,
    )
    try:
        kube.wait_apiserver(ctx)
    except BaseException:
        extra.stop()
        raise
    return extra


def delete_etcd_prefix(etcd_url: str, prefix: str) -> None:
    """Delete every key under the folder ``prefix`` (etcd's JSON gateway: the key range
    [prefix/, prefix0), so ``/a-1`` never takes ``/a-10`` with it)."""
    raw = prefix.rstrip("/").encode() + b"/"
    end = raw[:-1] + bytes([raw[-1] + 1])
    body = json.dumps({"key": base64.b64encode(raw).decode(),
                       "range_end": base64.b64encode(end).decode()}).encode()
    request = urllib.request.Request(f"{etcd_url}/v3/kv/deleterange", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
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
