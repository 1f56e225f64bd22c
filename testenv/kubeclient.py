"""A tiny Kubernetes REST client (stdlib only) for bootstrapping the test cluster.

The testenv must not depend on the product or on a heavyweight client just to apply a few
objects: this speaks HTTPS with the admin client certificate, finds resource paths through
discovery, and applies objects with server-side apply.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

FIELD_MANAGER = "soma-testenv"


class KubeError(RuntimeError):
    """An API call failed; carries the HTTP status and the server's message."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"HTTP {status}: {message}")


class Kube:
    """Admin access to one API server."""

    def __init__(self, server: str, ca: Path, cert: Path, key: Path) -> None:
        self.server = server.rstrip("/")
        self.ctx = ssl.create_default_context(cafile=str(ca))
        self.ctx.load_cert_chain(str(cert), str(key))
        self._resources: dict[str, dict[str, tuple[str, bool]]] = {}

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        query: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> Any:
        """One API call; returns the decoded JSON body (or text) or raises KubeError."""
        url = self.server + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=timeout) as resp:
                raw = resp.read().decode()
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            try:
                message = json.loads(text).get("message", text)
            except ValueError:
                message = text
            raise KubeError(exc.code, message) from None
        try:
            return json.loads(raw)
        except ValueError:
            return raw

    def resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(plural, namespaced) of a kind, by discovery of its group/version."""
        if api_version not in self._resources:
            base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            listing = self.request("GET", base)
            self._resources[api_version] = {
                item["kind"]: (item["name"], bool(item["namespaced"]))
                for item in listing.get("resources", [])
                if "/" not in item["name"]
            }
        try:
            return self._resources[api_version][kind]
        except KeyError:
            raise KubeError(404, f"{api_version} {kind} is not served") from None

    def path(self, obj: dict[str, Any]) -> str:
        """The REST path of one object."""
        api_version, kind = obj["apiVersion"], obj["kind"]
        plural, namespaced = self.resource(api_version, kind)
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        name = obj["metadata"]["name"]
        if namespaced:
            namespace = obj["metadata"].get("namespace") or "default"
            return f"{base}/namespaces/{namespace}/{plural}/{name}"
        return f"{base}/{plural}/{name}"

    def apply(self, obj: dict[str, Any], *, timeout: float = 30.0) -> Any:
        """Server-side apply (force) one object; waits out a kind that is not served yet."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                path = self.path(obj)
                return self.request(
                    "PATCH",
                    path,
                    obj,
                    content_type="application/apply-patch+yaml",
                    query={"fieldManager": FIELD_MANAGER, "force": "true"},
                )
            except KubeError as exc:
                # A just-created CRD or namespace may take a moment to be served.
                if exc.status != 404 or time.monotonic() > deadline:
                    raise
                self._resources.pop(obj["apiVersion"], None)
                time.sleep(0.3)
