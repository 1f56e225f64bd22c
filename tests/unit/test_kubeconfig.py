"""Reading kubeconfigs without the official client: what kubectl would use, or one clear
error. Certificates are real (made by the testenv's openssl helper); the TLS contexts are
checked by what they load, the HTTP by the integration tier against the real API server."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path
from typing import Any

import pytest
import yaml

from soma_audit.core.errors import AuditError
from soma_audit.sources import kubeconfig
from testenv import certs


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return certs.ensure(tmp_path_factory.mktemp("pki"))


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _write(path: Path, cluster: dict[str, Any], user: dict[str, Any],
           current: str | None = "main") -> Path:
    doc = {"apiVersion": "v1", "kind": "Config",
           "clusters": [{"name": "c", "cluster": cluster}],
           "users": [{"name": "u", "user": user}],
           "contexts": [{"name": "main", "context": {"cluster": "c", "user": "u"}},
                        {"name": "other", "context": {"cluster": "c", "user": "u"}}]}
    if current:
        doc["current-context"] = current
    path.write_text(yaml.safe_dump(doc))
    return path


def test_client_certificate_data_and_ca_data(tmp_path: Path, pki: dict[str, Path]) -> None:
    path = _write(tmp_path / "config",
                  {"server": "https://127.0.0.1:6443/", "certificate-authority-data":
                   _b64(pki["ca_crt"])},
                  {"client-certificate-data": _b64(pki["admin_crt"]),
                   "client-key-data": _b64(pki["admin_key"])})
    endpoint = kubeconfig.from_kubeconfig(str(path), None)
    assert endpoint.name == "main" and endpoint.server == "https://127.0.0.1:6443"
    assert endpoint.tls is not None and endpoint.verifies
    assert endpoint.tls.verify_mode == ssl.CERT_REQUIRED and endpoint.tls.check_hostname
    assert [c["subject"] for c in endpoint.tls.get_ca_certs()] == [
        ((("commonName", "soma-testenv-ca"),),)]
    assert endpoint.authorization() is None  # the certificate is the identity
    assert not list(tmp_path.glob("**/client.key"))  # the key pair left no file behind


def test_relative_files_and_token_file_next_to_the_kubeconfig(
        tmp_path: Path, pki: dict[str, Path]) -> None:
    (tmp_path / "ca.crt").write_bytes(pki["ca_crt"].read_bytes())
    (tmp_path / "token").write_text("  file-token\n")
    path = _write(tmp_path / "config", {"server": "https://k.example:443",
                                        "certificate-authority": "ca.crt",
                                        "tls-server-name": "api.internal"},
                  {"tokenFile": "token"})
    endpoint = kubeconfig.from_kubeconfig(str(path), "other")
    assert endpoint.name == "other"
    assert endpoint.authorization() == "Bearer file-token"
    assert endpoint.server_hostname == "api.internal"


def test_inline_token_and_insecure_skip_verify(tmp_path: Path) -> None:
    path = _write(tmp_path / "config", {"server": "https://10.0.0.1",
                                        "insecure-skip-tls-verify": True},
                  {"token": "abc"})
    endpoint = kubeconfig.from_kubeconfig(str(path), None)
    assert endpoint.authorization() == "Bearer abc"
    assert endpoint.tls is not None and not endpoint.verifies


@pytest.mark.parametrize(("cluster", "user", "current", "context", "message"), [
    ({"server": "https://h"}, {}, "main", "nowhere", "context 'nowhere' not found in"),
    ({"server": "https://h"}, {}, None, None, "no current-context and no --context"),
    ({}, {}, "main", None, "has no https:// server"),
    ({"server": "https://h", "certificate-authority-data": "bm90IGEgY2VydA=="}, {}, "main",
     None, "certificate-authority is not a valid PEM certificate"),
    ({"server": "https://h"}, {"client-certificate-data": "eA=="}, "main", None,
     "needs both the certificate and the key"),
    ({"server": "https://h"}, {"tokenFile": "missing"}, "main", None, "missing"),
    ({"server": "https://h", "certificate-authority": "/nonexistent/ca.crt"}, {}, "main",
     None, "/nonexistent/ca.crt"),
])
def test_unusable_kubeconfigs_are_one_clear_error(
        tmp_path: Path, cluster: dict[str, Any], user: dict[str, Any], current: str | None,
        context: str | None, message: str) -> None:
    path = _write(tmp_path / "config", cluster, user, current)
    with pytest.raises(AuditError, match=r"cannot use kubeconfig|not found in") as caught:
        kubeconfig.from_kubeconfig(str(path), context)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("text", ["[1, 2]", "a: [unclosed", "\t- tab"])
def test_a_file_that_is_not_a_kubeconfig(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config"
    path.write_text(text)
    with pytest.raises(AuditError, match=f"cannot read kubeconfig {path}"):
        kubeconfig.kube_contexts(path)


def test_missing_kubeconfig(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="kubeconfig not found"):
        kubeconfig.from_kubeconfig(str(tmp_path / "none"), None)


def test_plugin_users_are_recognised(tmp_path: Path) -> None:
    """An exec user is announced before its plugin runs; a plain user is not."""
    announced: list[tuple[str, str]] = []
    path = _write(tmp_path / "config", {"server": "https://h"},
                  {"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                            "command": str(tmp_path / "get-token")}})
    with pytest.raises(AuditError, match="cannot use kubeconfig"):  # no such plugin here
        kubeconfig.from_kubeconfig(str(path), "main", lambda *user: announced.append(user))
    assert announced == [("u", str(tmp_path / "get-token"))]
    plain = _write(tmp_path / "plain", {"server": "https://h"}, {"token": "t"})
    kubeconfig.from_kubeconfig(str(plain), "main", lambda *user: announced.append(user))
    assert len(announced) == 1


def test_an_exec_plugin_token_is_the_bearer(tmp_path: Path, pki: dict[str, Path]) -> None:
    """The official loader runs the plugin (a real process) and its token authorizes every
    request, whichever key the installed client keeps it under."""
    credential = ('{"apiVersion": "client.authentication.k8s.io/v1", '
                  '"kind": "ExecCredential", "status": {"token": "t0k3n"}}')
    plugin = tmp_path / "get-token"
    plugin.write_text(f"#!/bin/sh\necho '{credential}'\n", encoding="utf-8")
    plugin.chmod(0o755)
    path = _write(tmp_path / "config", {"server": "https://127.0.0.1:6443",
                                        "certificate-authority-data": _b64(pki["ca_crt"])},
                  {"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                            "command": str(plugin), "interactiveMode": "Never"}})
    endpoint = kubeconfig.from_kubeconfig(str(path), None)
    assert endpoint.authorization() == "Bearer t0k3n"
    assert endpoint.server == "https://127.0.0.1:6443" and endpoint.verifies


def test_a_failing_exec_plugin_is_one_clear_error(tmp_path: Path) -> None:
    """The official loader runs the plugin; its failure is the kubeconfig's error."""
    path = _write(tmp_path / "config", {"server": "https://h"},
                  {"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                            "command": str(tmp_path / "no-such-plugin")}})
    with pytest.raises(AuditError, match="cannot use kubeconfig") as caught:
        kubeconfig.from_kubeconfig(str(path), None)
    assert "\n" not in str(caught.value)


def test_the_kubernetes_package_is_not_imported_for_plain_credentials(
        tmp_path: Path, pki: dict[str, Path]) -> None:
    import subprocess
    import sys

    path = _write(tmp_path / "config", {"server": "https://127.0.0.1:1",
                                        "certificate-authority-data": _b64(pki["ca_crt"])},
                  {"token": "t"})
    code = ("import sys; from soma_audit.sources.cluster import ClusterSource; "
            f"ClusterSource({str(path)!r}); print('kubernetes' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("proxy", ["socks5://127.0.0.1:1080", "http://not a host"])
def test_a_proxy_url_urllib3_cannot_use_is_one_clear_error(tmp_path: Path, proxy: str) -> None:
    from soma_audit.sources.cluster import ClusterSource

    path = _write(tmp_path / "config", {"server": "https://h", "proxy-url": proxy},
                  {"token": "t"})
    with pytest.raises(AuditError, match="cannot use proxy-url of context 'main'") as caught:
        ClusterSource(str(path))
    assert "\n" not in str(caught.value)
