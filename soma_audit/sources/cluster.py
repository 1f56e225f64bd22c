"""A live cluster: one paginated cluster-wide LIST per kind, in parallel, as raw JSON.

Only the kinds the selected probes declared are fetched; nothing is written; Secrets are
never listed. A kind the user may not list, or that times out, makes only the checks that
read it ``error``; an API group that is not served (Argo CD, Strimzi … not installed) is
recorded as absent.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from soma_audit.config import Cluster as ClusterReading
from soma_audit.core.errors import AuditError
from soma_audit.core.escape import visible
from soma_audit.core.fastjson import orjson
from soma_audit.core.forking import ForkedCall, can_fork
from soma_audit.core.pools import result_of, unwaited_on_error
from soma_audit.kube.inventory import Inventory, Resource
from soma_audit.sources import SourceInfo, discovery
from soma_audit.sources.kinds import FORBIDDEN_KINDS, KINDS, KindInfo
from soma_audit.sources.kubeconfig import (
    Endpoint,
    from_kubeconfig,
    in_cluster,
    kubeconfig_path,
)

log = logging.getLogger(__name__)

PAGE_SIZE = 500
#: The largest answer read from the API server: a page of 500 objects is a few MB; a
#: body over this is refused, not buffered.
MAX_RESPONSE_BYTES = 128 * 1024 * 1024
#: Pages one LIST may take (a million objects of a kind): a server handing out
#: ``continue`` tokens without end stops here.
MAX_PAGES = 2000
_CHUNK = 256 * 1024
RETRYABLE = {429, 500, 502, 503, 504}


class ListError(Exception):
    """One request could not be completed; ``status`` is None when nothing answered."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class HttpResponse:
    """A successful answer: status, raw body and the API server's Warning headers."""

    status: int
    data: bytes
    warnings: list[str]


@dataclass(frozen=True)
class Timeouts:
    """Per-request bounds; the defaults are those of the config's ``cluster`` section."""

    connect: float = ClusterReading.connect_timeout_seconds
    read: float = ClusterReading.read_timeout_seconds
    retries: int = ClusterReading.retries
    backoff: float = 0.5
    #: The whole scan (discovery and every LIST), see ``Cluster.scan_deadline``.
    deadline: float = ClusterReading().scan_deadline

    @classmethod
    def of(cls, reading: ClusterReading) -> Timeouts:
        return cls(reading.connect_timeout_seconds, reading.read_timeout_seconds,
                   reading.retries, deadline=reading.scan_deadline)


def _announce_exec_plugin(user: str, command: str) -> None:
    """One stderr note when the context's user gets its token from an ``exec`` credential
    plugin: the kubeconfig's command runs, as kubectl runs it (docs/security.md)."""
    import sys

    if command in _ANNOUNCED:
        return
    _ANNOUNCED.add(command)
    print(f"soma-audit: note: kubeconfig user {visible(user)!r} gets its credentials by "
          f"running {visible(command)!r} (an exec plugin, as kubectl does)", file=sys.stderr)


#: Exec credential plugins already announced by this process (a fleet opens many clients).
_ANNOUNCED: set[str] = set()


def _endpoint(kubeconfig_file: str | None, context: str | None) -> Endpoint:
    """The context's endpoint (in a pod without a kubeconfig: the service account)."""
    inside_pod = (
        kubeconfig_file is None
        and context is None
        and "KUBERNETES_SERVICE_HOST" in os.environ
        and not kubeconfig_path(None).exists()
    )
    if inside_pod:
        return in_cluster()
    return from_kubeconfig(kubeconfig_file, context, announce=_announce_exec_plugin)


def _pool(endpoint: Endpoint, size: int) -> Any:
    """urllib3's pool for the endpoint: ``size`` connections, no retries of its own."""
    import urllib3

    options: dict[str, Any] = {"maxsize": size, "block": True, "retries": False}
    if endpoint.tls is not None:
        options |= {"ssl_context": endpoint.tls,
                    "cert_reqs": "CERT_REQUIRED" if endpoint.verifies else "CERT_NONE"}
        if endpoint.server_hostname:
            options["server_hostname"] = endpoint.server_hostname
        if not endpoint.verifies:
            options["assert_hostname"] = False
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    if endpoint.proxy:
        try:
            return urllib3.ProxyManager(endpoint.proxy, **options)
        except ValueError as exc:  # socks5:// and malformed URLs
            raise AuditError(f"cannot use proxy-url of context {endpoint.name!r}: "
                             f"{_one_line(exc)}") from None
    return urllib3.PoolManager(**options)


class ClusterSource:
    def __init__(
        self,
        kubeconfig: str | None = None,
        context: str | None = None,
        repo: Path | None = None,
        timeouts: Timeouts | None = None,
        workers: int = ClusterReading.workers,
    ) -> None:
        self._endpoint = _endpoint(kubeconfig, context)
        self._http = _pool(self._endpoint, workers)
        name, host = self._endpoint.name, self._endpoint.server
        # Names the tool in the API server's audit log and metrics.
        from soma_audit import __version__

        self._user_agent = f"soma-audit/{__version__}"
        self._timeouts = timeouts or Timeouts()
        self._workers = workers
        self.server = host
        #: Requests sent per HTTP verb (retries included): what a scan cost the server.
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        #: One object per distinct value of the running scan (see share_equal_values).
        self._shared: dict[Any, Any] = {}
        #: The kinds whose status the running scan keeps (None: every kind's).
        self._status_of: frozenset[str] | None = None
        #: monotonic() time the running scan must end by (None outside a scan), and the
        #: flag that stops its workers (deadline passed, or the user interrupted).
        self._ends: float | None = None
        self._stop = threading.Event()
        self.info = SourceInfo("cluster", name or host, repo=repo, label=name or host)

    # -- HTTP -----------------------------------------------------------------------------
    def _send(self, method: str, path: str, query: list[tuple[str, Any]] | None,
              body: Any, content_type: str | None, accept: str = "application/json",
              ) -> HttpResponse:
        """One request on the pool; the body read within the bounds (any status)."""
        headers = {"Accept": accept, "User-Agent": self._user_agent}
        authorization = self._endpoint.authorization()
        if authorization:
            headers["Authorization"] = authorization
        if content_type:
            headers["Content-Type"] = content_type
        url = self.server + path + (f"?{urlencode(query)}" if query else "")
        if body is not None and not isinstance(body, bytes | str):
            body = json.dumps(body)
        with self._lock:
            self.requests[method] += 1
        response = self._http.request(
            method, url, body=body.encode() if isinstance(body, str) else body,
            headers=headers, preload_content=False, redirect=False,
            timeout=_urllib3_timeout(self._timeouts),
        )
        return HttpResponse(response.status, self._read_body(response),
                            _warnings(response.headers))

    def _call(self, method: str, path: str, query: list[tuple[str, Any]] | None = None,
              body: Any = None, content_type: str | None = None,
              accept: str = "application/json") -> HttpResponse:
        """One request with bounded retries on 429/5xx and connection errors.

        Only GET and dry-run PATCH are ever sent, so a retry cannot write twice.
        """
        from urllib3.exceptions import HTTPError

        timeouts = self._timeouts
        problem = "no answer"
        for attempt in range(timeouts.retries + 1):
            if attempt:
                self._stop.wait(timeouts.backoff * 2 ** (attempt - 1))
            self._check_deadline()
            try:
                response = self._send(method, path, query, body, content_type, accept)
            except (HTTPError, OSError, ValueError) as exc:
                problem = _describe(exc)
                log.debug("%s %s failed (attempt %d): %s", method, path, attempt + 1, problem)
                continue
            if response.status in RETRYABLE:
                problem = f"HTTP {response.status}"
                continue
            if not 200 <= response.status < 300:
                raise ListError(_status_message(response.status, response.data),
                                response.status)
            return response
        raise ListError(f"{problem} (after {timeouts.retries + 1} attempts)", None)

    def request(self, method: str, path: str, query: list[tuple[str, Any]] | None = None,
                body: Any = None, content_type: str = "application/json") -> HttpResponse:
        """One request, any status, for the remediation engine (server-side apply, its
        dry-runs and rollbacks): never retried, since a write must not be sent twice.
        ListError (status None) only when nothing answered."""
        from urllib3.exceptions import HTTPError

        try:
            return self._send(method, path, query, body, content_type)
        except (HTTPError, OSError, ValueError) as exc:
            raise ListError(f"{method} {path}: {_describe(exc)}", None) from None

    def _check_deadline(self) -> None:
        """ListError when the scan was stopped or its deadline passed."""
        if self._stop.is_set():
            raise ListError("the scan was stopped", None)
        if self._ends is not None and time.monotonic() > self._ends:
            raise ListError(f"the scan deadline ({self._timeouts.deadline:g}s, "
                            "cluster.scan_deadline_seconds) passed", None)

    def _read_body(self, raw: Any) -> bytes:
        """The body, at most :data:`MAX_RESPONSE_BYTES`, read as it arrives so that the
        scan deadline and a stop are checked between reads (a server trickling bytes
        within the read timeout cannot keep one request going)."""
        try:
            declared = int(raw.headers.get("Content-Length") or 0)
        except ValueError:
            declared = 0
        try:
            if declared > MAX_RESPONSE_BYTES:
                raise ListError(f"answer of {declared} bytes refused (over "
                                f"{MAX_RESPONSE_BYTES})", None)
            parts: list[bytes] = []
            size = 0
            read = _chunk_reader(raw)
            while part := read(_CHUNK):
                size += len(part)
                if size > MAX_RESPONSE_BYTES:
                    raise ListError(f"answer over {MAX_RESPONSE_BYTES} bytes refused", None)
                parts.append(part)
                self._check_deadline()
        except BaseException:
            raw.close()  # a connection left mid-body cannot be reused
            raise
        raw.release_conn()
        return b"".join(parts)

    def _get(self, path: str, query: list[tuple[str, Any]] | None = None,
             accept: str = "application/json") -> dict[str, Any]:
        """GET a JSON object (see :meth:`_call` for retries); any other answer is a
        ListError naming the path, never a crash further on."""
        response = self._call("GET", path, query, accept=accept)
        try:
            document = _decode(response.data)
        except (ValueError, RecursionError):
            raise ListError(f"invalid JSON from the API server for {path}",
                            response.status) from None
        if not isinstance(document, dict):
            raise ListError(f"unexpected answer from the API server for {path} (not an "
                            "object)", response.status)
        return document

    def server_minor(self) -> int | None:
        """The API server's minor version (from /version), None when it cannot be told."""
        try:
            minor = str(self._get("/version").get("minor", ""))
        except ListError:
            return None
        digits = "".join(ch for ch in minor if ch.isdigit())
        return int(digits) if digits else None

    def dry_run_label_namespace(self, name: str, labels: dict[str, str]) -> list[str]:
        """Server-side dry-run of labelling namespace ``name``; the Warning headers.

        ``dryRun=All`` makes the API server run admission (PodSecurity evaluates the pods
        already in the namespace against the new enforce level) and save nothing. It
        needs ``patch`` on namespaces: a 403 raises ListError with status 403.
        """
        response = self._call(
            "PATCH", f"/api/v1/namespaces/{name}",
            [("dryRun", "All"), ("fieldManager", "soma-audit")],
            body={"metadata": {"labels": labels}},
            content_type="application/merge-patch+json",
        )
        return response.warnings

    # -- discovery and listing ----------------------------------------------------------
    def served(self) -> discovery.Served:
        """What the server serves, from one discovery request (ListError if it fails)."""
        return discovery.parse(self._get("/apis", accept=discovery.ACCEPT))

    def _list(self, info: KindInfo, version: str) -> Iterator[Resource]:
        api_version = info.api_version(version)
        token = ""
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            query: list[tuple[str, Any]] = [("limit", PAGE_SIZE)]
            if token:
                query.append(("continue", token))
            page = self._get(info.collection(version), query)
            items = page.get("items")
            if not isinstance(items, list | None):
                raise ListError(f"unexpected LIST answer for {info.resource} (items is not "
                                "a list)", None)
            for item in items or []:
                if not isinstance(item, dict):
                    raise ListError(f"unexpected LIST answer for {info.resource} (an item "
                                    "is not an object)", None)
                # LIST responses omit kind/apiVersion on items; probes rely on them.
                item["kind"] = info.kind
                item["apiVersion"] = api_version
                _drop_unread(item.get("metadata"))
                if self._status_of is not None and info.kind not in self._status_of:
                    item.pop("status", None)
                share_equal_values(item, self._shared)
                yield Resource(item, "cluster")
            metadata = page.get("metadata")
            token = metadata.get("continue") if isinstance(metadata, dict) else None
            if not token:
                return
            if not isinstance(token, str) or token in seen:
                raise ListError(f"the API server repeated a continue token listing "
                                f"{info.resource}", None)
            seen.add(token)
        raise ListError(f"more than {MAX_PAGES} pages listing {info.resource}", None)

    def _fetch(self, jobs: list[tuple[KindInfo, str]]) -> dict[str, list[Resource] | ListError]:
        """Every page of each kind, ``workers`` kinds at a time; kind → objects or why not."""

        def fetch(job: tuple[KindInfo, str]) -> list[Resource] | ListError:
            try:
                return list(self._list(*job))
            except ListError as exc:
                return exc

        with unwaited_on_error(self._workers) as pool:
            try:
                futures = [pool.submit(fetch, job) for job in jobs]
                outcomes = [result_of(future) for future in futures]
            except BaseException:
                self._stop.set()  # the workers stop at their next read
                raise
        return {info.kind: outcome for (info, _), outcome in zip(jobs, outcomes, strict=True)}

    def _fetched_for_parent(self, jobs: list[tuple[KindInfo, str]]) -> tuple[
            dict[str, list[dict[str, Any]] | tuple[str, int | None]], Counter[str]]:
        """In a forked child: the kinds' objects as plain data (or the error's message and
        status), and the requests sent. The child has connections of its own: the
        parent's stay the parent's."""
        self._http = _pool(self._endpoint, self._workers)
        self.requests = Counter()
        sent: dict[str, list[dict[str, Any]] | tuple[str, int | None]] = {}
        for kind, outcome in self._fetch(jobs).items():
            sent[kind] = ((str(outcome), outcome.status) if isinstance(outcome, ListError)
                          else [resource.body for resource in outcome])
        return sent, self.requests

    def load(self, kinds: frozenset[str], status_of: frozenset[str] | None = None) -> Inventory:
        """One scan, bounded by the scan deadline; Ctrl-C stops every worker at its next
        read (the interrupt is raised again at once, without waiting for them). The status
        of a kind not in ``status_of`` is dropped as it is decoded: a running cluster's Pods
        and ReplicaSets carry a status of their own (IPs, container IDs, times) that no
        check reads, and keeping it cost a fifth of the listing's CPU and a third of its
        memory."""
        self._stop.clear()
        self._ends = time.monotonic() + self._timeouts.deadline
        self._status_of = status_of
        try:
            return self._load(kinds)
        finally:
            self._ends = None
            self._status_of = None
            self._shared = {}  # the inventory holds what it needs

    def _load(self, kinds: frozenset[str]) -> Inventory:
        inventory = Inventory()
        self._shared = {}
        try:
            served = self.served()
        except ListError as exc:
            raise AuditError(f"cannot reach the API server at {self.server}: {exc}") from None
        jobs: list[tuple[KindInfo, str]] = []
        for kind in sorted(kinds):
            info = KINDS.get(kind)
            if kind in FORBIDDEN_KINDS:
                inventory.unavailable[kind] = f"soma-audit never reads {kind} objects"
            elif info is None:
                inventory.unavailable[kind] = f"soma-audit does not know where {kind} is served"
            else:
                version, absent = served.locate(info)
                if version is None:
                    inventory.absent[kind] = absent
                else:
                    jobs.append((info, version))
        unreachable: list[str] = []
        forked = [job for job in jobs if job[0].kind in FORKED_KINDS]
        child = None
        if forked and len(forked) < len(jobs) and can_fork():
            child = ForkedCall.start(lambda: self._fetched_for_parent(forked))
        fetched = self._fetch(jobs if child is None else [j for j in jobs if j not in forked])
        if child is not None:
            sent = child.result()
            if sent is None:  # the child died: list its kinds here
                fetched.update(self._fetch(forked))
            else:
                bodies, requests = sent
                self.requests.update(requests)
                fetched.update(
                    (kind, [Resource(body, "cluster") for body in outcome]
                     if isinstance(outcome, list) else ListError(*outcome))
                    for kind, outcome in bodies.items())
        outcomes = [(info, fetched[info.kind]) for info, _ in jobs]
        for info, outcome in outcomes:
            if isinstance(outcome, ListError):
                if outcome.status == 404:
                    inventory.absent[info.kind] = info.not_installed
                    continue
                reason = str(outcome)
                if outcome.status == 403:
                    reason = f"forbidden (needs list on {info.resource})"
                inventory.unavailable[info.kind] = reason
                if outcome.status is None:
                    unreachable.append(reason)
            else:
                inventory.add_all(outcome)
        if jobs and len(unreachable) == len(jobs):
            raise AuditError(f"lost the API server at {self.server}: nothing could be listed "
                             f"({unreachable[0]})")
        return inventory


#: Kinds listed by a forked child on a second core while this process lists the others:
#: usually the largest (and a real cluster's Pods carry a large status).
FORKED_KINDS = frozenset({"Pod", "ReplicaSet"})

#: Metadata no check reads, kept out of the inventory (a scan holds every listed object):
#: managedFields is about half of every object; the others are server bookkeeping the
#: remediation strips anyway (remediation.plan.SERVER_FIELDS, minus creationTimestamp,
#: which chaos.recent-runs reads).
UNREAD_METADATA = ("managedFields", "resourceVersion", "uid", "generation", "selfLink")
#: kubectl's copy of the last applied object: often as large as the object itself.
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def import_transport() -> None:
    """Import what a scan imports on its first request (urllib3, the JSON decoder): a
    process about to fork a child per cluster imports them once, for all of them."""
    import urllib3  # noqa: F401

    orjson()


def _decode(data: bytes) -> Any:
    """JSON from the API server: orjson when installed (a third less CPU on LIST pages),
    else the standard library. orjson refuses a few things json accepts (integers beyond
    64 bits, NaN, lone surrogates): those documents are decoded by json, so the result is
    always what json.loads gives."""
    fast = orjson()
    if fast is not None:
        try:
            return fast.loads(data)
        except ValueError:
            pass
    return json.loads(data)


#: Sharing stops this deep (a hostile object cannot exhaust the stack; it is only
#: left unshared below).
_SHARE_DEPTH = 32
#: The keys of a listed object that are its own by construction (its name is in them):
#: never shared, so the table of shared values does not hold one entry per object.
_OWN_KEYS = frozenset({"metadata"})
_SHARED_LEAVES = (str, dict, list)


def share_equal_values(item: dict[str, Any], table: dict[Any, Any]) -> None:
    """Make equal values inside one listed object and across a scan one object each.

    Listed objects repeat the same few thousand strings (image names, labels, defaults
    such as "IfNotPresent") and the same structures (pod specs of one workload, resources,
    probes, security contexts, tolerations, ports, label sets) across tens of thousands of
    objects; each is kept once per scan. Equal values stay equal, so nothing a check reads
    changes; the inventory is read-only (checks and plans copy what they change, a test
    holds them to it), so one shared structure can serve many objects.
    """
    for key, value in item.items():
        if value.__class__ in _SHARED_LEAVES:
            if key in _OWN_KEYS and value.__class__ is dict:
                for inner, child in value.items():
                    value[inner] = _shared(child, table, 2)
            else:
                item[key] = _shared(value, table, 1)


def _shared(node: Any, table: dict[Any, Any], depth: int) -> Any:
    """The scan's one copy of ``node``, looked up from the top down.

    A structure is found by its compact JSON text (length and hash as the key, equality
    confirming a hit), so a structure seen before is taken whole without walking it; only
    a new one is walked, to share what it holds. ``table`` also maps each string to its
    one copy (a string key never equals a tuple key).
    """
    kind = node.__class__
    if kind is str:
        return table.setdefault(node, node)
    if (kind is not dict and kind is not list) or depth > _SHARE_DEPTH:
        return node
    key: tuple[int, int] | None = None
    text = _compact_json(node)
    if text is not None:
        key = (len(text), hash(text))
        found = table.get(key)
        if found is None:
            table[key] = node
        elif found.__class__ is kind and found == node:
            return found
    pairs: Iterable[tuple[Any, Any]] = node.items() if kind is dict else enumerate(node)
    for name, value in pairs:
        child = value.__class__
        if child is str:
            node[name] = table.setdefault(value, value)
        elif child is dict or child is list:
            node[name] = _shared(value, table, depth + 1)
    return node


def _compact_json(node: Any) -> bytes | None:
    """``node`` as compact JSON (None when it cannot be written: it is then not shared)."""
    fast = orjson()
    try:
        if fast is not None:
            return fast.dumps(node)
        return json.dumps(node, separators=(",", ":"), ensure_ascii=False).encode()
    except (TypeError, ValueError, RecursionError):
        return None


def _drop_unread(metadata: Any) -> None:
    if isinstance(metadata, dict):
        for key in UNREAD_METADATA:
            metadata.pop(key, None)
        annotations = metadata.get("annotations")
        if isinstance(annotations, dict):
            annotations.pop(LAST_APPLIED, None)


def _chunk_reader(raw: Any) -> Callable[[int], bytes]:
    """How to read a body as it arrives, a part at a time: from the standard library's
    response inside urllib3's when the body is not compressed (the API server sends a
    chunk per object, and urllib3's own ``read1`` costs about ten microseconds a call: a
    CPU-second per 100,000 objects); through urllib3 otherwise, which decodes."""
    inner = getattr(raw, "_fp", None)
    if not isinstance(inner, http.client.HTTPResponse) or raw.headers.get("Content-Encoding"):
        return raw.read1  # type: ignore[no-any-return]

    def read(amount: int) -> bytes:
        try:
            return inner.read1(amount)
        except http.client.HTTPException as exc:  # as urllib3 reports a broken body
            from urllib3.exceptions import ProtocolError

            raise ProtocolError(f"connection broken: {exc!r}") from exc

    return read


def _urllib3_timeout(timeouts: Timeouts) -> Any:
    import urllib3

    return urllib3.Timeout(connect=timeouts.connect, read=timeouts.read)


def _status_message(status: int, data: bytes) -> str:
    try:
        message = json.loads(data).get("message", "")
    except (ValueError, AttributeError):
        message = ""
    names = {401: "unauthorized", 403: "forbidden", 404: "HTTP 404 not found"}
    return f"{names.get(status, f'HTTP {status}')}: {message}".rstrip(": ")


_WARNING = re.compile(r'^\s*\d{3}\s+\S+\s+"(?P<text>(?:[^"\\]|\\.)*)"')


def _warnings(headers: Any) -> list[str]:
    """The texts of RFC 7234 ``Warning: 299 - "text"`` headers, in order."""
    values = headers.getlist("Warning") if hasattr(headers, "getlist") else (
        [headers.get("Warning")] if headers and headers.get("Warning") else [])
    found = []
    for value in values:
        match = _WARNING.match(value)
        text = match.group("text") if match else value
        found.append(re.sub(r"\\(.)", r"\1", text))
    return found


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _describe(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    text = str(reason or exc)
    return text.splitlines()[0][:200] if text else type(exc).__name__
