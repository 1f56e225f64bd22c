"""Certificates and keys for the test API server, made with the openssl command line.

openssl is on every Debian machine, so the testenv needs no Python crypto package. EC P-256
keys keep generation instant. Files are created once per state dir and reused.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from testenv.proc import ComponentError

DAYS = "3650"
EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


def _openssl(*args: str) -> None:
    if not shutil.which("openssl"):
        raise ComponentError("certs", "`openssl` is not on PATH (apt-get install openssl)")
    proc = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ComponentError("certs", f"openssl {args[0]} failed: {proc.stderr.strip()}")


def ensure(directory: Path) -> dict[str, Path]:
    """CA, API server serving pair, admin client pair (system:masters) and SA signing keys."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "ca_crt": directory / "ca.crt",
        "ca_key": directory / "ca.key",
        "server_crt": directory / "apiserver.crt",
        "server_key": directory / "apiserver.key",
        "admin_crt": directory / "admin.crt",
        "admin_key": directory / "admin.key",
        "sa_key": directory / "sa.key",
        "sa_pub": directory / "sa.pub",
    }
    if all(path.exists() for path in files.values()):
        return files
    ca_crt, ca_key = str(files["ca_crt"]), str(files["ca_key"])
    _openssl(
        "req", "-x509", *EC, "-keyout", ca_key, "-out", ca_crt, "-days", DAYS,
        "-subj", "/CN=soma-testenv-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    )  # fmt: skip
    sans = ",".join(
        [
            "IP:127.0.0.1",
            "IP:10.96.0.1",
            "DNS:localhost",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local",
        ]
    )
    _openssl(
        "req", "-x509", *EC, "-CA", ca_crt, "-CAkey", ca_key,
        "-keyout", str(files["server_key"]), "-out", str(files["server_crt"]), "-days", DAYS,
        "-subj", "/CN=kube-apiserver",
        "-addext", f"subjectAltName={sans}",
        "-addext", "basicConstraints=critical,CA:FALSE",
        "-addext", "keyUsage=critical,digitalSignature,keyEncipherment",
        "-addext", "extendedKeyUsage=serverAuth",
    )  # fmt: skip
    # O=system:masters makes this identity a cluster admin without any RBAC object.
    _openssl(
        "req", "-x509", *EC, "-CA", ca_crt, "-CAkey", ca_key,
        "-keyout", str(files["admin_key"]), "-out", str(files["admin_crt"]), "-days", DAYS,
        "-subj", "/O=system:masters/CN=soma-testenv-admin",
        "-addext", "basicConstraints=critical,CA:FALSE",
        "-addext", "keyUsage=critical,digitalSignature,keyEncipherment",
        "-addext", "extendedKeyUsage=clientAuth",
    )  # fmt: skip
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-out", str(files["sa_key"]),
    )  # fmt: skip
    _openssl("pkey", "-in", str(files["sa_key"]), "-pubout", "-out", str(files["sa_pub"]))
    for key in ("ca_key", "server_key", "admin_key", "sa_key"):
        files[key].chmod(0o600)
    return files
