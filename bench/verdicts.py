"""Proof that a change leaves every verdict as it was: record a cluster scan, replay it.

Performance work on decoding, the kube client or rendering must not change a single
verdict. This tool compares the reports of two trees of soma-audit on the *same* API
answers:

``record --out DIR [--kubeconfig FILE] [--context NAME] [-- SOMA-AUDIT ARGS]``
    Runs ``soma-audit --ci --format json`` (this tree) against a real API server (default:
    the test environment's admin kubeconfig, ``.testenv/admin.kubeconfig`` of this tree or
    of ``SOMA_TESTENV_DIR``) through a recording HTTPS reverse proxy on
    loopback: every answer (method and path with query, request body digest → status,
    ``Content-Type``/``Warning``/``Retry-After`` headers, body) is written to ``DIR``
    (at most :data:`MAX_ANSWER_BYTES` an answer, :data:`MAX_RECORDING_BYTES` in all),
    with the scan's JSON report. Extra arguments (``--only PATTERN``…) are kept for
    the replays.

``replay DIR --rev REV``
    Serves the recording from the same proxy (no upstream: a request that was not
    recorded gets a 404 and is listed), and runs ``--ci --format json`` and
    ``--format sarif`` of git revision ``REV`` (checked out with ``git worktree add
    --detach`` into a temporary folder, removed afterwards) and of this working tree,
    then compares them. Exit 0: same verdicts; 1: they differ (each difference printed);
    2: the tool could not run.

``demo --rev REV``
    The same comparison for ``--demo --ci`` (no recording needed).

What is compared: per check ``id``, its ``status`` and its ``evidence`` (objects and
messages, in order); per SARIF ``ruleId``, its results (level, message, locations, in
order). Checks only in one report are differences too.

The clock: a few checks read time (``chaos.recent-runs`` says how long ago a Schedule
last ran; attestations expire by date). Each scan runs with the clock frozen at the
recording's instant (the demo: at the comparison's start) by a launcher of this tool,
not by a hook of the product: soma-audit's modules are loaded once normally, then
again with ``datetime`` seen through a module whose ``datetime.now``/``date.today``
answer the frozen instant (other modules keep the real one). No field is excluded;
paths that differ from scan to scan (the scan's working folder, where the attestations
file is looked for; a temporary folder, such as the demo's copy; the checked-out tree)
are written as ``<scan-dir>``, ``<tmp>`` and ``<tree>`` before comparing.

Each scan runs in an empty folder, with ``KUBECONFIG`` naming the proxy and without the
``SOMA_AUDIT_*``/``FGA_*`` variables (no live probe of OpenFGA, Prometheus or Kafka:
their answers are not recorded).
"""

from __future__ import annotations

import argparse
import base64
import collections
import datetime as dt
import hashlib
import http.client
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `testenv` importable
    sys.path.insert(0, str(ROOT))

from testenv import config as testenv_config  # noqa: E402

#: The test environment's admin kubeconfig (``SOMA_TESTENV_DIR`` names another one's).
DEFAULT_KUBECONFIG = testenv_config.state_dir() / "admin.kubeconfig"
#: The largest answer kept (a LIST page of 500 objects is a few MB).
MAX_ANSWER_BYTES = 64 * 1024 * 1024
#: The largest recording: a scan bigger than this is refused, not half-recorded.
MAX_RECORDING_BYTES = 1024 * 1024 * 1024
#: The largest request body read from the scan (a SelfSubjectAccessReview is small).
MAX_REQUEST_BYTES = 1024 * 1024
#: Answer headers that matter to the client; the rest (dates, audit ids) are dropped.
KEPT_HEADERS = ("content-type", "warning", "retry-after")
#: One scan's bound in time; a scan of the test environment takes seconds.
SCAN_TIMEOUT_SECONDS = 600
#: Differences printed per check or rule before "… more".
SHOWN_PER_CHECK = 5
INDEX = "recording.json"
LIVE_REPORT = "live-report.json"
FORMATS = ("json", "sarif")
DROPPED_ENVIRONMENT = ("SOMA_AUDIT_", "FGA_", "KUBECONFIG")


class VerdictsError(Exception):
    """The tool could not do its work; the message says why, on one line."""


# -- the comparison (pure) -------------------------------------------------------------


def _items(values: Sequence[Any]) -> list[str]:
    return [json.dumps(v, sort_keys=True, ensure_ascii=False) for v in values]


def _listing(what: str, before: Sequence[Any], after: Sequence[Any]) -> list[str]:
    """How two ordered lists differ: items only in one, else the order."""
    if before == after:
        return []
    old, new = _items(before), _items(after)
    gone = list((collections.Counter(old) - collections.Counter(new)).elements())
    came = list((collections.Counter(new) - collections.Counter(old)).elements())
    if not gone and not came:
        return [f"{what}: same {len(old)} items in another order"]
    lines = [f"{what}: {len(old)} → {len(new)} items"]
    lines += [f"  - {item}" for item in gone[:SHOWN_PER_CHECK]]
    lines += [f"  + {item}" for item in came[:SHOWN_PER_CHECK]]
    hidden = max(0, len(gone) - SHOWN_PER_CHECK) + max(0, len(came) - SHOWN_PER_CHECK)
    if hidden:
        lines.append(f"  … {hidden} more")
    return lines


def json_differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Per check id: presence, status and evidence of two ``--format json`` reports."""
    old = {c.get("id"): c for c in before.get("checks", [])}
    new = {c.get("id"): c for c in after.get("checks", [])}
    lines: list[str] = []
    for check in sorted(old.keys() | new.keys(), key=str):
        if check not in new:
            lines.append(f"{check}: only before ({old[check].get('status')})")
        elif check not in old:
            lines.append(f"{check}: only after ({new[check].get('status')})")
        else:
            if old[check].get("status") != new[check].get("status"):
                lines.append(f"{check}: status {old[check].get('status')} → "
                             f"{new[check].get('status')}")
            lines += _listing(f"{check}: evidence", old[check].get("evidence", []),
                              new[check].get("evidence", []))
    return lines


def _sarif_results(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for run in report.get("runs", []):
        for result in run.get("results", []):
            by_rule.setdefault(str(result.get("ruleId")), []).append(
                {"level": result.get("level"), "message": result.get("message"),
                 "locations": result.get("locations", [])})
    return by_rule


def sarif_differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Per rule id: the results (level, message, locations) of two SARIF reports."""
    old, new = _sarif_results(before), _sarif_results(after)
    lines: list[str] = []
    for rule in sorted(old.keys() | new.keys()):
        lines += _listing(f"{rule}: SARIF results", old.get(rule, []), new.get(rule, []))
    return lines


def differences(fmt: str, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return json_differences(before, after) if fmt == "json" else \
        sarif_differences(before, after)


# -- the recording ---------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


#: What soma-audit asks for, except where it negotiates another form (discovery).
PLAIN = "application/json"


def request_key(method: str, path: str, body: bytes, accept: str = PLAIN) -> str:
    """What identifies a request: method, path with query, the body's digest, and the
    form asked for when it is not plain JSON (the answer depends on it)."""
    digest = f" sha256:{hashlib.sha256(body).hexdigest()}" if body else ""
    form = f" accept:{accept}" if accept != PLAIN else ""
    return f"{method} {path}{digest}{form}"


@dataclass
class Recording:
    """Answers by request; a request asked again gets the next answer, then the last."""

    answers: dict[str, list[Answer]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    missed: list[str] = field(default_factory=list)
    size: int = 0
    _served: collections.Counter[str] = field(default_factory=collections.Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, key: str, answer: Answer) -> None:
        with self._lock:
            self.size += len(answer.body)
            if self.size > MAX_RECORDING_BYTES:
                raise VerdictsError(f"the scan's answers passed {MAX_RECORDING_BYTES:,} bytes: "
                                    "not recorded (narrow it with --only)")
            self.answers.setdefault(key, []).append(answer)

    def answer(self, key: str) -> Answer | None:
        with self._lock:
            recorded = self.answers.get(key)
            if not recorded:
                self.missed.append(key)
                return None
            index = min(self._served[key], len(recorded) - 1)
            self._served[key] += 1
            return recorded[index]

    def rewind(self) -> None:
        """Serve every request's first answer again (a new scan starts)."""
        with self._lock:
            self._served.clear()
            self.missed.clear()

    def save(self, directory: Path) -> None:
        bodies = directory / "answers"
        bodies.mkdir(parents=True, exist_ok=True)
        index = []
        for number, (key, answer) in enumerate(
                (k, a) for k, answers in self.answers.items() for a in answers):
            name = f"answers/{number:05d}.body"
            (directory / name).write_bytes(answer.body)
            index.append({"request": key, "status": answer.status,
                          "headers": answer.headers, "body": name})
        (directory / INDEX).write_text(json.dumps({**self.meta, "answers": index}, indent=1))

    @classmethod
    def load(cls, directory: Path) -> Recording:
        try:
            data = json.loads((directory / INDEX).read_text())
            recording = cls(meta={k: v for k, v in data.items() if k != "answers"})
            for entry in data["answers"]:
                body = directory / entry["body"]
                if body.resolve().parent != (directory / "answers").resolve():
                    raise VerdictsError(f"{directory / INDEX}: {entry['body']} is outside "
                                        "the recording")
                if body.stat().st_size > MAX_ANSWER_BYTES:
                    raise VerdictsError(f"{body}: larger than {MAX_ANSWER_BYTES:,} bytes")
                recording.add(entry["request"], Answer(
                    int(entry["status"]), [(str(k), str(v)) for k, v in entry["headers"]],
                    body.read_bytes()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise VerdictsError(f"{directory}: not a readable recording ({exc})") from None
        return recording


# -- the proxy -------------------------------------------------------------------------


@dataclass(frozen=True)
class Upstream:
    """The API server of a kubeconfig context, and how to reach it as that user."""

    host: str
    port: int
    context: ssl.SSLContext
    token: str = ""

    def ask(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        connection = http.client.HTTPSConnection(self.host, self.port, context=self.context,
                                                 timeout=60)
        sent = {k: v for k, v in headers.items()
                if k.lower() in ("accept", "content-type", "user-agent", "authorization")}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        sent["Accept-Encoding"] = "identity"
        try:
            connection.request(method, path, body=body or None, headers=sent)
            response = connection.getresponse()
            data = response.read(MAX_ANSWER_BYTES + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise VerdictsError(f"the API server did not answer {method} {path}: {exc}") \
                from None
        finally:
            connection.close()
        if len(data) > MAX_ANSWER_BYTES:
            raise VerdictsError(f"{method} {path}: answer over {MAX_ANSWER_BYTES:,} bytes")
        kept = [(k, v) for k, v in response.getheaders() if k.lower() in KEPT_HEADERS]
        return Answer(response.status, kept, data)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Proxy

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the scan's own output is what the user reads."""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            self._send(Answer(413, [], b""))
            return
        body = self.rfile.read(length)
        key = request_key(self.command, self.path, body, self.headers.get("Accept", PLAIN))
        try:
            answer = self.server.answer(key, self.command, self.path, dict(self.headers), body)
        except VerdictsError as exc:
            self.server.failures.append(str(exc))
            answer = Answer(502, [("Content-Type", "text/plain")], str(exc).encode())
        self._send(answer)

    def _send(self, answer: Answer) -> None:
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve


_NOT_RECORDED = json.dumps({
    "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
    "code": 404, "message": "not in the recording"}).encode()


class _Proxy(ThreadingHTTPServer):
    """HTTPS on loopback: forwards and records (``upstream``), or replays ``recording``."""

    daemon_threads = True

    def __init__(self, recording: Recording, upstream: Upstream | None,
                 tls: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.recording = recording
        self.upstream = upstream
        self.failures: list[str] = []

    def answer(self, key: str, method: str, path: str, headers: dict[str, str],
               body: bytes) -> Answer:
        if self.upstream is not None:
            answer = self.upstream.ask(method, path, headers, body)
            self.recording.add(key, answer)
            if key != (plain := request_key(method, path, body)):
                # A revision that asks for plain JSON (one before aggregated discovery)
                # replays too: the plain form is recorded beside the negotiated one.
                asked = {k: v for k, v in headers.items() if k.lower() != "accept"}
                self.recording.add(plain, self.upstream.ask(
                    method, path, {**asked, "Accept": PLAIN}, body))
            return answer
        return self.recording.answer(key) or Answer(
            404, [("Content-Type", "application/json")], _NOT_RECORDED)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server_address[1]}"


def _openssl(*args: str) -> None:
    if not shutil.which("openssl"):
        raise VerdictsError("`openssl` is not on PATH (apt-get install openssl)")
    run = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False,
                         timeout=60)
    if run.returncode != 0:
        raise VerdictsError(f"openssl {args[0]} failed: {run.stderr.strip()[:300]}")


@contextmanager
def serving(recording: Recording, upstream: Upstream | None, scratch: Path
            ) -> Iterator[tuple[_Proxy, Path]]:
    """The proxy running on loopback, with a throwaway certificate for 127.0.0.1 (its
    CA file is the second value)."""
    cert, key = scratch / "proxy.crt", scratch / "proxy.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
             "-addext", "basicConstraints=critical,CA:TRUE")
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    proxy = _Proxy(recording, upstream, tls)
    thread = threading.Thread(target=proxy.serve_forever, name="verdicts-proxy", daemon=True)
    thread.start()
    try:
        yield proxy, cert
    finally:
        proxy.shutdown()
        proxy.server_close()


# -- kubeconfigs -----------------------------------------------------------------------


def _named(entries: Any, name: str, what: str) -> dict[str, Any]:
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry.get(what) or {}
    raise VerdictsError(f"kubeconfig: no {what} named {name!r}")


def _material(section: dict[str, Any], name: str, base: Path, scratch: Path) -> str | None:
    """A certificate or key of the kubeconfig as a file path (``-data`` written out)."""
    if section.get(f"{name}-data"):
        path = scratch / f"upstream-{name}.pem"
        path.write_bytes(base64.b64decode(section[f"{name}-data"]))
        path.chmod(0o600)
        return str(path)
    if section.get(name):
        return str(base / section[name])
    return None


def read_kubeconfig(path: Path, context_name: str | None, scratch: Path
                    ) -> tuple[Upstream, dict[str, Any]]:
    """The upstream of a kubeconfig context, and the kubeconfig's data."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise VerdictsError(f"kubeconfig {path}: {exc}") from None
    if not isinstance(data, dict):
        raise VerdictsError(f"kubeconfig {path}: not a kubeconfig")
    name = context_name or data.get("current-context") or ""
    context = _named(data.get("contexts"), name, "context")
    cluster = _named(data.get("clusters"), context.get("cluster"), "cluster")
    user = _named(data.get("users"), context.get("user"), "user")
    server = urlsplit(str(cluster.get("server", "")))
    if server.scheme != "https" or not server.hostname:
        raise VerdictsError(f"kubeconfig {path}: the server must be an https:// URL")
    tls = ssl.create_default_context(cafile=_material(cluster, "certificate-authority",
                                                       path.parent, scratch))
    if cluster.get("insecure-skip-tls-verify"):
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    certificate = _material(user, "client-certificate", path.parent, scratch)
    if certificate:
        tls.load_cert_chain(certificate, _material(user, "client-key", path.parent, scratch))
    upstream = Upstream(server.hostname, server.port or 443, tls, str(user.get("token") or ""))
    return upstream, {"context": name, "cluster": context.get("cluster"),
                      "user": context.get("user")}


def proxy_kubeconfig(names: dict[str, Any], url: str, ca: Path, scratch: Path) -> Path:
    """A kubeconfig naming the proxy, with the recorded context's names (they are in the
    report's ``source``); the proxy brings the credentials upstream."""
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": names["context"],
        "clusters": [{"name": names["cluster"], "cluster": {
            "server": url,
            "certificate-authority-data": base64.b64encode(ca.read_bytes()).decode()}}],
        "users": [{"name": names["user"], "user": {}}],
        "contexts": [{"name": names["context"], "context": {
            "cluster": names["cluster"], "user": names["user"]}}],
    }
    path = scratch / "proxy.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


# -- running soma-audit ----------------------------------------------------------------

#: Run as ``python -c`` with the frozen instant then soma-audit's arguments: loads every
#: soma_audit module once normally (third-party modules bind the real ``datetime``),
#: then again with ``datetime`` replaced by a module whose clock is frozen.
LAUNCHER = r'''
import datetime, importlib, pkgutil, runpy, sys, types
frozen = datetime.datetime.fromisoformat(sys.argv[1])

class _Same(type):
    """Instances of the real class count as instances of the frozen one."""
    def __instancecheck__(cls, obj):
        return isinstance(obj, cls.__mro__[1])
    def __subclasscheck__(cls, sub):
        return issubclass(sub, cls.__mro__[1])

class FrozenDatetime(datetime.datetime, metaclass=_Same):
    @classmethod
    def now(cls, tz=None):
        return frozen.astimezone(tz) if tz else frozen.astimezone().replace(tzinfo=None)
    @classmethod
    def utcnow(cls):
        return frozen.astimezone(datetime.UTC).replace(tzinfo=None)
    @classmethod
    def today(cls):
        return cls.now()

class FrozenDate(datetime.date, metaclass=_Same):
    @classmethod
    def today(cls):
        return frozen.astimezone().date()

frozen_module = types.ModuleType("datetime")
frozen_module.__dict__.update(vars(datetime))
frozen_module.datetime, frozen_module.date = FrozenDatetime, FrozenDate

def load_all():
    import soma_audit
    for info in pkgutil.walk_packages(soma_audit.__path__, "soma_audit."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)

load_all()
for name in [n for n in sys.modules if n == "soma_audit" or n.startswith("soma_audit.")]:
    del sys.modules[name]
sys.modules["datetime"] = frozen_module
try:
    load_all()
finally:
    sys.modules["datetime"] = datetime
sys.argv = ["soma-audit", *sys.argv[2:]]
runpy.run_module("soma_audit", run_name="__main__")
'''


def scan(tree: Path, frozen: str, args: Sequence[str], scratch: Path,
         kubeconfig: Path | None = None) -> dict[str, Any]:
    """The report of ``soma-audit ARGS -o FILE`` from ``tree`` with the clock at ``frozen``,
    the folders that differ from scan to scan written as ``<scan-dir>``, ``<tmp>`` (a
    temporary folder the scan made) and ``<tree>``."""
    workdir = Path(tempfile.mkdtemp(prefix="scan-", dir=scratch))
    output, temporary = workdir / "report", workdir / "tmp"
    temporary.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROPPED_ENVIRONMENT)}
    env.update(PYTHONPATH=str(tree), TMPDIR=str(temporary))
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    try:
        run = subprocess.run([sys.executable, "-c", LAUNCHER, frozen, *args, "-o", str(output)],
                             cwd=workdir, env=env, capture_output=True, text=True,
                             timeout=SCAN_TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        raise VerdictsError(f"soma-audit of {tree} took over {SCAN_TIMEOUT_SECONDS}s") from None
    if run.returncode not in (0, 1) or not output.is_file():
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        raise VerdictsError(f"soma-audit of {tree} exited {run.returncode}: {last[:300]}")
    text = placeholders(output.read_text(), temporary, workdir, tree)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise VerdictsError(f"soma-audit of {tree}: the report is not JSON ({exc})") from None


def placeholders(text: str, temporary: Path, workdir: Path, tree: Path) -> str:
    """``text`` with the folders that differ from scan to scan written as placeholders:
    a temporary folder the scan made as ``<tmp>`` (the command's own ``soma-audit-*``
    folders as one, however nested: since the command makes its temporary folders inside
    one, the demo's copy is a level deeper than it was), the scan's working folder and the
    checked-out tree."""
    base = re.escape(str(temporary))
    text = re.sub(rf"{base}(?:/soma-audit-[^/\"\s]+)+|{base}/[^/\"\s]+", "<tmp>", text)
    return text.replace(str(workdir), "<scan-dir>").replace(str(tree), "<tree>")


@contextmanager
def checkout(rev: str, scratch: Path) -> Iterator[Path]:
    """Revision ``rev`` of this repository in a temporary detached worktree."""
    tree = scratch / "rev"
    added = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet",
                            str(tree), rev], capture_output=True, text=True, check=False,
                           timeout=120)
    if added.returncode != 0:
        raise VerdictsError(f"git worktree add {rev}: {added.stderr.strip()[:300]}")
    try:
        yield tree
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                       capture_output=True, check=False, timeout=120)


def compare_trees(rev: str, args: Sequence[str], frozen: str, scratch: Path,
                  kubeconfig: Path | None = None,
                  before_each: Callable[[], None] = lambda: None) -> list[str]:
    """Differences between ``rev`` and this working tree, in every format."""
    found: list[str] = []
    with checkout(rev, scratch) as tree:
        for fmt in FORMATS:
            reports = []
            for source in (tree, ROOT):
                before_each()
                reports.append(scan(source, frozen, [*args, "--format", fmt], scratch,
                                    kubeconfig))
            found += [f"[{fmt}] {line}" for line in differences(fmt, *reports)]
    return found


# -- commands --------------------------------------------------------------------------


def record(out: Path, kubeconfig: Path, context: str | None, extra: Sequence[str]) -> int:
    if out.exists() and any(out.iterdir()):
        raise VerdictsError(f"{out} is not empty")
    frozen = dt.datetime.now(dt.UTC).isoformat()
    with tempfile.TemporaryDirectory(prefix="soma-audit-verdicts-") as scratch_dir:
        scratch = Path(scratch_dir)
        upstream, names = read_kubeconfig(kubeconfig, context, scratch)
        recording = Recording(meta={"recorded_at": frozen, "args": list(extra), **names})
        with serving(recording, upstream, scratch) as (proxy, ca):
            report = scan(ROOT, frozen, ["--ci", *extra, "--format", "json"], scratch,
                          proxy_kubeconfig(names, proxy.url, ca, scratch))
        if proxy.failures:
            raise VerdictsError(f"not recorded: {proxy.failures[0]}")
    out.mkdir(parents=True, exist_ok=True)
    recording.save(out)
    (out / LIVE_REPORT).write_text(json.dumps(report, indent=1))
    answers = sum(len(a) for a in recording.answers.values())
    print(f"recorded {answers} answers ({recording.size:,} bytes) and "
          f"{len(report.get('checks', []))} verdicts into {out}")
    return 0


def replay(directory: Path, rev: str) -> int:
    recording = Recording.load(directory)
    names = {k: recording.meta.get(k) for k in ("context", "cluster", "user")}
    args = ["--ci", *recording.meta.get("args", [])]
    missed: set[str] = set()

    def rewind() -> None:
        missed.update(recording.missed)
        recording.rewind()

    with tempfile.TemporaryDirectory(prefix="soma-audit-verdicts-") as scratch_dir:
        scratch = Path(scratch_dir)
        with serving(recording, None, scratch) as (proxy, ca):
            found = compare_trees(rev, args, recording.meta["recorded_at"], scratch,
                                  proxy_kubeconfig(names, proxy.url, ca, scratch), rewind)
            rewind()
    for key in sorted(missed):
        print(f"note: not in the recording, answered 404: {key}")
    return _verdict(found, f"{rev} and the working tree, on the recording {directory}")


def demo(rev: str) -> int:
    frozen = dt.datetime.now(dt.UTC).isoformat()
    with tempfile.TemporaryDirectory(prefix="soma-audit-verdicts-") as scratch_dir:
        found = compare_trees(rev, ["--demo", "--ci"], frozen, Path(scratch_dir))
    return _verdict(found, f"{rev} and the working tree, on the demo")


def _verdict(found: list[str], what: str) -> int:
    if found:
        print(f"verdicts differ between {what}:")
        print("\n".join(found))
        return 1
    print(f"same verdicts ({', '.join(FORMATS)}) for {what}")
    return 0


def bench(rev: str, size: int, out: Path) -> int:
    """``make bench``'s check: a recorded scan of the size's own API server (bench/run.py)
    and the demo, each compared between ``rev`` and this tree; writes
    ``<out>/<date>-verdicts.json`` for docs/performance.md."""
    from bench.run import namespaces_for, seed, size_cluster

    outcome: dict[str, Any] = {"date": dt.date.today().isoformat(), "rev": rev,
                               "head": _git("rev-parse", "--short", "HEAD"), "size": size}
    with tempfile.TemporaryDirectory(prefix="soma-audit-verdicts-rec-") as folder:
        recording = Path(folder) / "recording"
        with size_cluster(size, fresh=False) as (api, home):
            seed(api, namespaces_for(size))
            record(recording, home / "admin.kubeconfig", None, [])
        report = json.loads((recording / LIVE_REPORT).read_text())
        outcome["checks"] = len(report.get("checks", []))
        outcome["evidence"] = sum(len(c.get("evidence") or []) for c in report["checks"])
        outcome["replay_same"] = replay(recording, rev) == 0
    outcome["demo_same"] = demo(rev) == 0
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{outcome['date']}-verdicts.json"
    path.write_text(json.dumps(outcome, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path}")
    return 0 if outcome["replay_same"] and outcome["demo_same"] else 1


def _before_every_lever() -> str:
    from soma_audit.core.yamlload import load_file

    levers = load_file(ROOT / "bench" / "levers.yaml", "levers")
    return str(levers[0]["before"])


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                          check=True, timeout=60).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rec = commands.add_parser("record", help="record a --ci scan of an API server")
    rec.add_argument("--out", type=Path, required=True, help="an empty or new folder")
    rec.add_argument("--kubeconfig", type=Path, default=DEFAULT_KUBECONFIG)
    rec.add_argument("--context", help="kubeconfig context (default: the current one)")
    rec.add_argument("extra", nargs="*", help="more soma-audit arguments, after --")
    rep = commands.add_parser("replay", help="compare a revision and this tree on a recording")
    rep.add_argument("recording", type=Path)
    rep.add_argument("--rev", required=True, help="git revision to compare with")
    dem = commands.add_parser("demo", help="compare a revision and this tree on --demo")
    dem.add_argument("--rev", required=True, help="git revision to compare with")
    ben = commands.add_parser("bench", help="record the bench size's cluster, compare the "
                              "revision and this tree on it and on the demo, write the result")
    ben.add_argument("--rev", help="git revision to compare with (default: the code before "
                     "the first change of bench/levers.yaml)")
    ben.add_argument("--size", type=int, default=10_000)
    ben.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    try:
        if args.command == "bench":
            return bench(args.rev or _before_every_lever(), args.size, args.out)
        if args.command == "record":
            return record(args.out, args.kubeconfig, args.context, args.extra)
        if args.command == "replay":
            return replay(args.recording, args.rev)
        return demo(args.rev)
    except VerdictsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
