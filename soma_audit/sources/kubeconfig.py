"""Where an API server is and how to authenticate to it, read as kubectl reads it.

The common credentials — client certificates, bearer tokens and token files, the in-cluster
service account — are read here with the bounded reader, without the official client:
importing the ``kubernetes`` package costs about a quarter of a second and 35 MB on every
scan, because it imports every API model. A kubeconfig user with an ``exec`` credential
plugin or an ``auth-provider`` is loaded by the official client's loader (imported only
then), which runs the plugin as kubectl does and refreshes its token; the HTTP itself is
always ours (see ``sources.cluster``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from soma_audit.core import fileio
from soma_audit.core.errors import AuditError
from soma_audit.core.yamlload import safe_load

SERVICEACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
SERVICEACCOUNT_DIR_ENV = "SOMA_AUDIT_SERVICEACCOUNT_DIR"
#: A token file is read again after this long (kubelet rotates projected tokens).
TOKEN_FILE_TTL_SECONDS = 60.0
#: User entries this module reads itself; anything else goes to the official loader.
_PLUGIN_KEYS = ("exec", "auth-provider")


@dataclass
class Endpoint:
    """One API server: its URL, the TLS settings and the Authorization header to send."""

    name: str
    server: str
    tls: ssl.SSLContext | None = None
    #: ``tls-server-name``: the name the server's certificate is checked against.
    server_hostname: str | None = None
    proxy: str | None = None
    #: The Authorization header value, asked for before every request (token files and
    #: plugins refresh), or None when the identity is the client certificate alone.
    authorization: Callable[[], str | None] = field(default=lambda: None)

    @property
    def verifies(self) -> bool:
        return self.tls is None or self.tls.verify_mode != ssl.CERT_NONE


def kubeconfig_path(kubeconfig: str | None) -> Path:
    """The kubeconfig file to read, as kubectl picks it: the flag, else the first
    $KUBECONFIG entry, else ~/.kube/config."""
    path = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    return Path(os.path.expanduser(path.split(os.pathsep)[0]))


def read_kubeconfig(path: Path) -> dict[str, Any]:
    """The kubeconfig document; AuditError when missing, unreadable or not a mapping."""
    if not path.exists():
        raise AuditError(f"kubeconfig not found: {path}")
    try:  # a FIFO, a device or a huge file is refused before it is parsed
        data = safe_load(fileio.read_text(path))
    except fileio.UnreadableFile as exc:
        raise AuditError(f"cannot read kubeconfig {path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise AuditError(f"cannot read kubeconfig {path}: not valid YAML{where}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise AuditError(f"cannot read kubeconfig {path}: not a mapping")
    return data


def _named(config: dict[str, Any], section: str, name: Any) -> dict[str, Any] | None:
    """The ``section`` entry called ``name`` (its inner mapping), None when absent."""
    entries = config.get(section)
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("name") == name:
            inner = entry.get(section[:-1])
            return inner if isinstance(inner, dict) else {}
    return None


def kube_contexts(path: Path) -> tuple[list[str], str]:
    """The context names of the kubeconfig at ``path``, in file order, and the current
    one; AuditError when the file is missing or unreadable."""
    return _contexts(read_kubeconfig(path))


def _contexts(config: dict[str, Any]) -> tuple[list[str], str]:
    contexts = config.get("contexts")
    names = [str(c["name"]) for c in (contexts if isinstance(contexts, list) else [])
             if isinstance(c, dict) and c.get("name")]
    current = config.get("current-context")
    return names, str(current) if current else ""


# -- from a kubeconfig ----------------------------------------------------------------------
def from_kubeconfig(kubeconfig: str | None, context: str | None,
                    announce: Callable[[str, str], None] | None = None) -> Endpoint:
    """The endpoint of ``context`` (else the current context) of the kubeconfig, read
    once. ``announce(user, command)`` is called before a user's ``exec`` plugin runs."""
    path = kubeconfig_path(kubeconfig)
    config = read_kubeconfig(path)
    names, current = _contexts(config)
    name = context or current
    if context and context not in names:
        raise AuditError(f"context {context!r} not found in {path}; known: {', '.join(names)}")
    if not name:
        raise AuditError(f"cannot use kubeconfig {path}: no current-context and no --context")
    entry = _named(config, "contexts", name)
    if entry is None:
        raise AuditError(f"cannot use kubeconfig {path}: context {name!r} is not defined")
    cluster = _named(config, "clusters", entry.get("cluster"))
    if cluster is None:
        raise AuditError(f"cannot use kubeconfig {path}: context {name!r} names cluster "
                         f"{entry.get('cluster')!r}, which is not defined")
    user = _named(config, "users", entry.get("user")) or {}
    if any(isinstance(user.get(key), dict) for key in _PLUGIN_KEYS):
        plugin = user.get("exec")
        if announce is not None and isinstance(plugin, dict):
            announce(str(entry.get("user")), str(plugin.get("command", "")))
        return _from_client_library(path, name)
    return _endpoint(path, name, cluster, user)


def _endpoint(path: Path, name: str, cluster: dict[str, Any], user: dict[str, Any]) -> Endpoint:
    """An endpoint from the cluster and user entries (relative files: next to ``path``)."""
    base = path.parent
    server = str(cluster.get("server") or "").rstrip("/")
    if not server.startswith(("https://", "http://")):
        raise AuditError(f"cannot use kubeconfig {path}: cluster of context {name!r} has no "
                         "https:// server")
    try:
        tls = _tls_context(
            ca=_material(base, cluster, "certificate-authority"),
            cert=_material(base, user, "client-certificate"),
            key=_material(base, user, "client-key"),
            insecure=cluster.get("insecure-skip-tls-verify") is True,
        ) if server.startswith("https://") else None
        token = user.get("token")
        token_file = user.get("tokenFile")
        if token and not isinstance(token, str):
            raise ValueError("user token is not a string")
        authorization: Callable[[], str | None] = lambda: None  # noqa: E731
        if token:
            authorization = _static_bearer(token)
        elif token_file:
            authorization = _token_file_bearer(_resolve(base, str(token_file)))
            authorization()  # a missing or unreadable file is reported now, not per request
    except (ValueError, OSError, ssl.SSLError, fileio.UnreadableFile) as exc:
        raise AuditError(f"cannot use kubeconfig {path}: {_one_line(exc)}") from None
    server_name = cluster.get("tls-server-name")
    proxy = cluster.get("proxy-url")
    return Endpoint(name, server, tls, str(server_name) if server_name else None,
                    str(proxy) if proxy else None, authorization)


def _resolve(base: Path, name: str) -> Path:
    path = Path(os.path.expanduser(name))
    return path if path.is_absolute() else base / path


def _material(base: Path, entry: dict[str, Any], key: str) -> bytes | None:
    """PEM bytes from ``<key>-data`` (base64) or the file named by ``<key>``."""
    data = entry.get(f"{key}-data")
    if data:
        try:
            return base64.b64decode(str(data), validate=False)
        except (binascii.Error, ValueError):
            raise ValueError(f"{key}-data is not base64") from None
    name = entry.get(key)
    return _read_file(_resolve(base, str(name))) if name else None


def _read_file(path: Path, limit: int = fileio.MAX_FILE_BYTES) -> bytes:
    """A credential file, bounded; ValueError naming the file when it cannot be read."""
    try:
        return fileio.read_bytes(path, limit=limit)
    except fileio.UnreadableFile as exc:
        raise ValueError(f"{path}: {exc}") from None


def _tls_context(ca: bytes | None, cert: bytes | None, key: bytes | None,
                 insecure: bool) -> ssl.SSLContext:
    """Trust ``ca`` only (the system's roots when there is none), present the client
    certificate if any; ``insecure`` turns verification off, as kubectl's flag does."""
    if ca is not None and not insecure:
        try:
            context = ssl.create_default_context(cadata=ca.decode("ascii", "replace"))
        except ssl.SSLError:
            raise ValueError("certificate-authority is not a valid PEM certificate") from None
    else:
        context = ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert is not None or key is not None:
        if cert is None or key is None:
            raise ValueError("a client certificate needs both the certificate and the key")
        _load_client_certificate(context, cert, key)
    return context


def _load_client_certificate(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """ssl reads a key pair only from files: written to a private folder, loaded, deleted."""
    with tempfile.TemporaryDirectory(prefix="soma-audit-tls-") as folder:
        cert_path, key_path = Path(folder, "client.crt"), Path(folder, "client.key")
        for path, data in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        try:
            context.load_cert_chain(cert_path, key_path)
        except ssl.SSLError:
            raise ValueError("the client certificate or key is not valid PEM, or they do "
                             "not match") from None


def _static_bearer(token: str) -> Callable[[], str | None]:
    header = f"Bearer {token.strip()}"
    return lambda: header


def _token_file_bearer(path: Path) -> Callable[[], str | None]:
    """A bearer token read from ``path``, read again after :data:`TOKEN_FILE_TTL_SECONDS`."""
    lock = threading.Lock()
    cached: list[Any] = [None, 0.0]

    def header() -> str | None:
        with lock:
            if cached[0] is None or time.monotonic() - cached[1] > TOKEN_FILE_TTL_SECONDS:
                token = _read_file(path, limit=64 * 1024).decode("utf-8", "replace").strip()
                if not token:
                    raise ValueError(f"token file {path} is empty")
                cached[0], cached[1] = f"Bearer {token}", time.monotonic()
            return str(cached[0])

    return header


def _from_client_library(path: Path, name: str) -> Endpoint:
    """A plugin user: the official loader runs the plugin and keeps its token fresh."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    configuration = client.Configuration()
    try:
        with _logged_problems() as problems:
            config.load_kube_config(config_file=str(path), context=name,
                                    client_configuration=configuration, persist_config=False)
        if not _plugin_bearer(configuration) and not configuration.cert_file:
            # the loader logs a failing plugin and goes on without credentials
            reason = problems[-1] if problems else "it gave no credentials"
            raise AuditError(f"cannot use kubeconfig {path}: the credential plugin of context "
                             f"{name!r} failed: {_one_line(Exception(reason))}")
        tls = _tls_context(
            ca=Path(configuration.ssl_ca_cert).read_bytes() if configuration.ssl_ca_cert
            else None,
            cert=Path(configuration.cert_file).read_bytes() if configuration.cert_file else None,
            key=Path(configuration.key_file).read_bytes() if configuration.key_file else None,
            insecure=not configuration.verify_ssl,
        ) if configuration.host.startswith("https://") else None
    except AuditError:
        raise
    except ConfigException as exc:
        raise AuditError(f"cannot use kubeconfig {path}: {_one_line(exc)}") from None
    except Exception as exc:  # the plugin failed, or yaml/base64 errors the loader raises
        raise AuditError(f"cannot use kubeconfig {path}: {_one_line(exc)}") from None
    lock = threading.Lock()

    def authorization() -> str | None:
        with lock:
            if configuration.refresh_api_key_hook is not None:
                configuration.refresh_api_key_hook(configuration)
            return _plugin_bearer(configuration)

    return Endpoint(name, configuration.host.rstrip("/"), tls,
                    getattr(configuration, "tls_server_name", None) or None,
                    configuration.proxy or None, authorization)


#: Where the official client keeps a plugin's token: "BearerToken" in current releases
#: (37 here: "Bearer <token>"), "authorization" in older ones.
_TOKEN_KEYS = ("BearerToken", "authorization")


def _plugin_bearer(configuration: Any) -> str | None:
    """The Authorization header value the official loader set up, if any."""
    for key in _TOKEN_KEYS:
        value = configuration.get_api_key_with_prefix(key)
        if value:
            return str(value)
    return None


@contextlib.contextmanager
def _logged_problems() -> Iterator[list[str]]:
    """Error messages the official loader logs on the root logger meanwhile, kept out of
    the user's terminal (they become part of our one-line error instead)."""
    problems: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.ERROR:
                problems.append(record.getMessage())

    root = logging.getLogger()
    handler = Keep()
    root.addHandler(handler)
    try:
        yield problems
    finally:
        root.removeHandler(handler)


# -- in a pod -------------------------------------------------------------------------------
def in_cluster() -> Endpoint:
    """The pod's service account: token and CA from $SOMA_AUDIT_SERVICEACCOUNT_DIR when set
    (to run the in-cluster mode beside a pod or in tests, docs/exporter.md), else from where
    Kubernetes mounts them; the server from KUBERNETES_SERVICE_HOST/PORT."""
    directory = Path(os.environ.get(SERVICEACCOUNT_DIR_ENV) or SERVICEACCOUNT_DIR)
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "")
    what = "cannot use the in-cluster service account"
    if not host or not port:
        raise AuditError(f"{what}: KUBERNETES_SERVICE_HOST/PORT are not set")
    token = directory / "token"
    if not token.exists():
        raise AuditError(f"{what}: no token file at {token}")
    try:
        ca = _read_file(directory / "ca.crt") if (directory / "ca.crt").exists() else None
        if ca is None:
            raise ValueError(f"no CA certificate at {directory / 'ca.crt'}")
        tls = _tls_context(ca, None, None, insecure=False)
        authorization = _token_file_bearer(token)
        authorization()
    except (ValueError, OSError, fileio.UnreadableFile) as exc:
        raise AuditError(f"{what}: {_one_line(exc)}") from None
    address = f"[{host}]" if ":" in host else host
    return Endpoint("in-cluster", f"https://{address}:{port}", tls, None, None, authorization)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
