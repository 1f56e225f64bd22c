"""Obtain every binary once and keep it in the versioned cache.

kube-apiserver, etcd, openfga, helm and kustomize are built from their Go modules (module
downloads and the Go build cache live in the cache too, so a fresh cache dir is a true
from-scratch build); the Kafka jars come from Maven Central through testenv/kafka/pom.xml;
Prometheus and promtool are Debian's package. Each artifact is named after its version and
a hash of its build inputs, and is moved into place only when complete, so an interrupted
build is simply redone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from testenv import config
from testenv.proc import ComponentError, file_lock, run

Report = Callable[[str, str], None]

GO_BUILD_TIMEOUT = 40 * 60.0
GO_ARTIFACTS = ("kube-apiserver", "etcd", "openfga", "toxiproxy", "helm", "kustomize")

#: Set once a Go build ran in this process: its multi-GB build cache can then be trimmed.
go_built = threading.Event()


def go_env(cache: Path) -> dict[str, str]:
    """Go settings that keep module downloads and build cache inside our cache dir."""
    env = dict(os.environ)
    env.update(
        GOMODCACHE=str(cache / "go/mod"),
        GOCACHE=str(cache / "go/build"),
        # Read-write module files, so that the cache dir can be deleted with plain rm -rf.
        GOFLAGS="-modcacherw",
        GOTOOLCHAIN="local",
        GOWORK="off",
        CGO_ENABLED="0",
    )
    return env


def which(tool: str) -> str | None:
    """``tool`` on PATH, the environment's own bin folder left out: its links point at what
    this finds (found there, a tool would be linked to itself)."""
    own = (config.state_dir() / "bin").resolve()
    path = os.pathsep.join(folder for folder in os.environ.get("PATH", "").split(os.pathsep)
                           if folder and Path(folder).resolve() != own)
    return shutil.which(tool, path=path)


def _need(tool: str, component: str, hint: str) -> str:
    path = which(tool)
    if not path:
        raise ComponentError(component, f"`{tool}` is not on PATH; {hint}")
    return path


def _cached(artifact: Path, name: str, report: Report) -> bool:
    if artifact.exists():
        report(name, f"cached ({artifact})")
        return True
    return False


def _go_build(
    name: str,
    module_dir: Path,
    package: str,
    artifact: Path,
    ldflags: str,
    cache: Path,
    logs: Path,
    report: Report,
) -> Path:
    """go build a main package required by one of our small modules into the cache."""
    with file_lock(cache / "locks" / f"{name}.lock", what=name, timeout=GO_BUILD_TIMEOUT):
        if _cached(artifact, name, report):
            return artifact
        _need("go", name, "install Go 1.26 or newer")
        report(name, "building from Go modules (first time only; several minutes on 2 cores)")
        began = time.monotonic()
        artifact.parent.mkdir(parents=True, exist_ok=True)
        tmp = artifact.with_name(artifact.name + ".tmp")
        run(
            ["go", "build", "-trimpath", f"-ldflags={ldflags}", "-o", str(tmp), package],
            component=name,
            log=logs / f"build-{name}.log",
            env=go_env(cache),
            cwd=module_dir,
            timeout=GO_BUILD_TIMEOUT,
        )
        tmp.rename(artifact)
        go_built.set()
        report(name, f"built in {time.monotonic() - began:.0f}s")
        return artifact


def trim_go_build_cache(cache: Path, report: Report) -> None:
    """Delete the Go build cache (GBs) once the binaries exist; keep the module cache.

    The binaries are what `up` reuses; the module cache keeps a rebuild offline-capable.
    Set SOMA_TESTENV_KEEP_GOCACHE=1 to keep it (faster rebuilds while changing pins).
    """
    if os.environ.get("SOMA_TESTENV_KEEP_GOCACHE") == "1":
        return
    with contextlib.ExitStack() as stack:
        for name in GO_ARTIFACTS:  # no build of ours may be running meanwhile
            stack.enter_context(
                file_lock(cache / "locks" / f"{name}.lock", what=name, timeout=GO_BUILD_TIMEOUT)
            )
        shutil.rmtree(cache / "go/build", ignore_errors=True)
    report("testenv", "trimmed the Go build cache (binaries and module cache kept)")


def kube_apiserver(cache: Path, logs: Path, report: Report) -> Path:
    """kube-apiserver built from k8s.io/kubernetes with staging modules mapped to v0.x."""
    version = config.kubernetes_version()
    module = config.PACKAGE_DIR / "kube-apiserver"
    minor = version.lstrip("v").split(".")[1]
    pkg = "k8s.io/component-base/version"
    # Stamp the release into the binary as Kubernetes' own build does, so /version reports it.
    ldflags = (
        f"-s -w -X {pkg}.gitVersion={version} -X {pkg}.gitMajor=1 -X {pkg}.gitMinor={minor}"
        f" -X {pkg}.gitTreeState=clean"
    )
    key = config.inputs_key(module / "go.mod", module / "go.sum", extra=ldflags)
    artifact = cache / "bin" / f"kube-apiserver-{version}-{key}"
    return _go_build(
        "kube-apiserver",
        module,
        "k8s.io/kubernetes/cmd/kube-apiserver",
        artifact,
        ldflags,
        cache,
        logs,
        report,
    )


def etcd(cache: Path, logs: Path, report: Report) -> Path:
    """The etcd server built from go.etcd.io/etcd/server/v3."""
    version = config.etcd_version()
    module = config.PACKAGE_DIR / "etcd"
    ldflags = "-s -w"
    key = config.inputs_key(module / "go.mod", module / "go.sum", extra=ldflags)
    artifact = cache / "bin" / f"etcd-{version}-{key}"
    return _go_build(
        "etcd", module, "go.etcd.io/etcd/server/v3", artifact, ldflags, cache, logs, report
    )


def _go_install(
    name: str,
    module: str,
    version: str,
    binary: str,
    ldflags: str,
    cache: Path,
    logs: Path,
    report: Report,
) -> Path:
    """`go install module@version` into the cache as ``bin/<name>-<version>``."""
    artifact = cache / "bin" / f"{name}-{version}"
    with file_lock(cache / "locks" / f"{name}.lock", what=name, timeout=GO_BUILD_TIMEOUT):
        if _cached(artifact, name, report):
            return artifact
        _need("go", name, "install Go 1.26 or newer")
        report(name, f"go install {module}@{version} (first time only)")
        began = time.monotonic()
        gobin = cache / "bin" / f".{name}-{version}.tmp"
        shutil.rmtree(gobin, ignore_errors=True)
        gobin.mkdir(parents=True)
        env = go_env(cache)
        env["GOBIN"] = str(gobin)
        run(
            ["go", "install", "-trimpath", f"-ldflags={ldflags}", f"{module}@{version}"],
            component=name,
            log=logs / f"build-{name}.log",
            env=env,
            timeout=GO_BUILD_TIMEOUT,
        )
        (gobin / binary).rename(artifact)
        shutil.rmtree(gobin, ignore_errors=True)
        go_built.set()
        report(name, f"built in {time.monotonic() - began:.0f}s")
        return artifact


def openfga(cache: Path, logs: Path, report: Report) -> Path:
    """The OpenFGA server, `go install`ed at its pinned version into the cache."""
    version = config.OPENFGA_VERSION
    ldflags = f"-s -w -X github.com/openfga/openfga/internal/build.Version={version}"
    return _go_install(
        "openfga", config.OPENFGA_MODULE, version, "openfga", ldflags, cache, logs, report
    )


def toxiproxy(cache: Path, logs: Path, report: Report) -> Path:
    """The Toxiproxy server (fault-injecting TCP proxy of the reliability tier)."""
    version = config.TOXIPROXY_VERSION
    ldflags = f"-s -w -X github.com/Shopify/toxiproxy/v2.Version={version}"
    return _go_install(
        "toxiproxy", config.TOXIPROXY_MODULE, version, "server", ldflags, cache, logs, report
    )


def helm(cache: Path, logs: Path, report: Report) -> Path:
    """Helm v4 (`helm template` renders the charts of an audited repository)."""
    version = config.HELM_VERSION
    ldflags = f"-s -w -X helm.sh/helm/v4/internal/version.version={version}"
    return _go_install("helm", config.HELM_MODULE, version, "helm", ldflags, cache, logs, report)


def kustomize(cache: Path, logs: Path, report: Report) -> Path:
    """Kustomize v5 (`kustomize build` renders the overlays of an audited repository)."""
    version = config.KUSTOMIZE_VERSION
    return _go_install(
        "kustomize", config.KUSTOMIZE_MODULE, version, "kustomize", "-s -w", cache, logs, report
    )


def kafka(cache: Path, logs: Path, report: Report) -> Path:
    """The Kafka broker's jars (a libs/ dir) copied from Maven Central by testenv/kafka/pom.xml."""
    name = "kafka"
    pom = config.PACKAGE_DIR / "kafka/pom.xml"
    version = config.kafka_version()
    artifact = cache / f"kafka-{version}-{config.inputs_key(pom)}"
    with file_lock(cache / "locks" / f"{name}.lock", what=name, timeout=GO_BUILD_TIMEOUT):
        if _cached(artifact, name, report):
            return artifact
        ensure_debian("mvn", "maven", name, logs)
        report(name, f"fetching kafka_2.13 {version} jars with Maven (first time only)")
        began = time.monotonic()
        tmp = artifact.with_name(artifact.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(pom),
                f"-Dmaven.repo.local={cache / 'm2'}",
                "dependency:copy-dependencies",
                f"-DoutputDirectory={tmp / 'libs'}",
                "-DincludeScope=runtime",
            ],
            component=name,
            log=logs / f"build-{name}.log",
            timeout=20 * 60.0,
        )
        tmp.rename(artifact)
        report(name, f"fetched in {time.monotonic() - began:.0f}s")
        return artifact


def java(logs: Path) -> str:
    """A java launcher (Kafka 4 brokers need Java 17 or newer)."""
    ensure_debian("java", "default-jre-headless", "kafka", logs)
    return _need("java", "kafka", "install a Java 17+ runtime")


def prometheus(logs: Path, report: Report) -> tuple[Path, Path]:
    """Debian's prometheus and promtool, installed with apt when missing (never as a service)."""
    name = "prometheus"
    prom, promtool = which("prometheus"), which("promtool")
    if prom and promtool:
        report(name, f"installed ({prom})")
        return Path(prom), Path(promtool)
    report(name, "apt-get install prometheus (first time only)")
    began = time.monotonic()
    _apt_install(config.PROMETHEUS_DEB, name, logs)
    prom, promtool = which("prometheus"), which("promtool")
    if not (prom and promtool):
        raise ComponentError(name, "package installed but prometheus/promtool not on PATH")
    report(name, f"installed in {time.monotonic() - began:.0f}s")
    return Path(prom), Path(promtool)


def ensure_debian(tool: str, package: str, component: str, logs: Path) -> None:
    """apt-get install package unless tool is on PATH (no service of it is left enabled)."""
    if which(tool):
        return
    _apt_install(package, component, logs)


_ensure_debian = ensure_debian  # the name tests/integration/live used first


def _apt_install(package: str, component: str, logs: Path) -> None:
    """apt-get install a package without letting its maintainer scripts start a service."""
    if os.geteuid() != 0:
        raise ComponentError(
            component, f"Debian package `{package}` is missing; run: sudo apt-get install {package}"
        )
    log = logs / f"build-{component}.log"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    policy = Path("/usr/sbin/policy-rc.d")
    ours = not policy.exists()
    if ours:  # exit 101 = "action not allowed": postinst scripts then start no daemon
        policy.write_text("#!/bin/sh\n# soma-audit testenv: no services during install\nexit 101\n")
        policy.chmod(0o755)
    try:
        argv = ["apt-get", "install", "-y", "--no-install-recommends", package]
        try:
            run(argv, component=component, log=log, env=env, timeout=15 * 60.0)
        except ComponentError:
            # Usually stale or missing package lists on a fresh machine: update once, retry.
            run(["apt-get", "update"], component=component, log=log, env=env, timeout=10 * 60.0)
            run(argv, component=component, log=log, env=env, timeout=15 * 60.0)
    finally:
        if ours:
            policy.unlink(missing_ok=True)
    _disable_service(package, log)


def _disable_service(package: str, log: Path) -> None:
    """A package that ships a service (prometheus does) gets it disabled, and stopped should
    it run anyway: the test environment runs its own instances on free ports."""
    unit = Path(f"/lib/systemd/system/{package}.service")
    script = Path(f"/etc/init.d/{package}")
    if not (unit.exists() or script.exists()):
        return
    commands = []
    if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        commands.append(["systemctl", "disable", "--now", package])
    else:
        if script.exists():
            commands.append(["invoke-rc.d", package, "stop"])
        commands.append(["update-rc.d", package, "disable"])
    with log.open("a") as out:
        for argv in commands:
            if shutil.which(argv[0]):
                done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
                out.write(f"{' '.join(argv)}: exit {done.returncode}\n")
