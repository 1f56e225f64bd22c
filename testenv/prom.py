"""Prometheus (Debian's package, our own instance) scraping the SLI target, rules loaded.

Scrapes and rule evaluation run every few seconds so that recorded SLI series appear within
seconds of start. The rule file is read in place from testenv/prometheus/rules.yml and
--web.enable-lifecycle is on, so tests can POST /-/reload after changing rules.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

import yaml

from testenv import build, config
from testenv.context import Context
from testenv.proc import spawn, wait_for

RULES = config.PACKAGE_DIR / "prometheus/rules.yml"
SCRAPE_INTERVAL = "2s"


def prepare(ctx: Context) -> dict[str, Path]:
    """Install (or find) Debian's prometheus and promtool."""
    prom, promtool = build.prometheus(ctx.logs, ctx.report)
    return {"prometheus": prom, "promtool": promtool}


def start_target(ctx: Context) -> None:
    """Spawn the stdlib SLI metrics target (python -m testenv.sli_target)."""
    proc = ctx.process("sli-target")
    port = ctx.port("sli-target", "http")
    argv = [sys.executable, "-m", "testenv.sli_target", f"--port={port}"]
    proc.update(binary=sys.executable, log=str(ctx.log_path("sli-target")))
    proc["pid"], proc["start"] = spawn(
        argv, ctx.log_path("sli-target"), home=ctx.home, cwd=config.REPO
    )
    ctx.state.setdefault("prometheus", {})["target"] = f"127.0.0.1:{port}"
    ctx.save()


def wait_target(ctx: Context) -> None:
    """Wait until the target serves /healthz."""
    proc = ctx.process("sli-target")
    url = f"http://{ctx.state['prometheus']['target']}/healthz"
    wait_for(
        lambda: _get(url).strip() == "ok",
        what=url,
        component="sli-target",
        timeout=30,
        log=ctx.log_path("sli-target"),
        pid=proc["pid"],
        started=proc["start"],
    )


def start(ctx: Context, artifacts: dict[str, Path]) -> None:
    """Write prometheus.yml and spawn Prometheus on a free port with its own data dir."""
    proc = ctx.process("prometheus")
    port = ctx.port("prometheus", "http")
    conf_dir = ctx.home / "prometheus"
    conf_dir.mkdir(parents=True, exist_ok=True)
    conf = conf_dir / "prometheus.yml"
    conf.write_text(
        yaml.safe_dump(
            {
                "global": {
                    "scrape_interval": SCRAPE_INTERVAL,
                    "evaluation_interval": "5s",
                    "external_labels": {"environment": "soma-testenv"},
                },
                "rule_files": [str(RULES)],
                "scrape_configs": [
                    {
                        "job_name": "soma-agent-hub",
                        "static_configs": [{"targets": [ctx.state["prometheus"]["target"]]}],
                    },
                    {
                        "job_name": "prometheus",
                        "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
                    },
                ],
            },
            sort_keys=False,
        )
    )
    data = ctx.home / "data/prometheus"
    data.mkdir(parents=True, exist_ok=True)
    argv = [
        str(artifacts["prometheus"]),
        f"--config.file={conf}",
        f"--storage.tsdb.path={data}",
        "--storage.tsdb.retention.time=1d",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
        "--log.level=warn",
    ]
    proc.update(binary=str(artifacts["prometheus"]), log=str(ctx.log_path("prometheus")))
    proc["pid"], proc["start"] = spawn(argv, ctx.log_path("prometheus"), home=ctx.home)
    ctx.state["prometheus"].update(
        url=f"http://127.0.0.1:{port}",
        config=str(conf),
        rules_file=str(RULES),
        promtool=str(artifacts["promtool"]),
        version=_version(artifacts["prometheus"]),
    )
    ctx.save()


def wait(ctx: Context) -> None:
    """Wait for /-/ready and for the rule file to be loaded."""
    proc = ctx.process("prometheus")
    url = ctx.state["prometheus"]["url"]

    def rules_loaded() -> bool:
        data = json.loads(_get(f"{url}/api/v1/rules"))
        return any(group["file"] == str(RULES) for group in data["data"]["groups"])

    for what, check in (("/-/ready", lambda: "Ready" in _get(f"{url}/-/ready")),
                        ("rules loaded", rules_loaded)):  # fmt: skip
        wait_for(
            check,
            what=what,
            component="prometheus",
            timeout=60,
            log=ctx.log_path("prometheus"),
            pid=proc["pid"],
            started=proc["start"],
        )


def healthy(ctx: Context) -> bool:
    """Whether the recorded Prometheus is ready."""
    try:
        return "Ready" in _get(f"{ctx.state['prometheus']['url']}/-/ready")
    except Exception:
        return False


def target_healthy(ctx: Context) -> bool:
    """Whether the recorded SLI target still serves."""
    try:
        return _get(f"http://{ctx.state['prometheus']['target']}/healthz").strip() == "ok"
    except Exception:
        return False


def _version(binary: Path) -> str:
    import subprocess

    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).splitlines()[:1]
    return first[0].split()[2] if first and len(first[0].split()) > 2 else "unknown"


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=3) as resp:
        return str(resp.read().decode())
