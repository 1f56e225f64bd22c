"""`make bench`, manifests mode: what rendering charts and overlays adds to loading a repository.

Two repositories, each measured the same way:

- ``platform``: a copy of the tests' platform repository (a chart rendered for two Argo CD
  Applications, plus a third Application with the same inputs as one of them, a vendored
  dependency, two Kustomize overlays, plain files);
- ``charts-10x3``: a generated repository of 10 charts (Deployment, Service, ConfigMap,
  HPA, NetworkPolicy and ServiceAccount over a few template helpers), each rendered for
  three Argo CD Applications (dev, staging and prod value files), plus one Application
  that repeats another's exact inputs.

For each, medians of several repetitions of:

- ``rendered``: ``ManifestsSource.load()`` with the real helm and kustomize of the test
  environment (through a shim that counts the processes started);
- ``plain``: the same objects written as plain YAML files, loaded by the same source
  (nothing to render): the baseline.

Distinct inputs are rendered once per load, up to ``RENDER_WORKERS`` at a time; the
``serial`` figure is the same load with one renderer at a time (the behaviour before
renderings ran in parallel), interleaved with the others so the machine's load weighs
on both alike. Prints the added cost and how many helm/kustomize processes one load
started, and records the 1-minute load average. Asserts no time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `testenv` and `soma_audit` importable
    sys.path.insert(0, str(ROOT))

from soma_audit.config import Config, load_config  # noqa: E402
from soma_audit.sources import rendering  # noqa: E402
from soma_audit.sources.manifests import ManifestsSource  # noqa: E402
from testenv import build  # noqa: E402
from testenv import config as testenv_config  # noqa: E402

PLATFORM = ROOT / "tests" / "fixtures" / "platform"
RESULTS = ROOT / "bench" / "results"
CHARTS, ENVIRONMENTS = 10, ("dev", "staging", "prod")


def _shim(folder: Path, name: str, binary: Path, counter: Path) -> Path:
    """A wrapper that records each start of ``binary`` in ``counter``, then runs it."""
    shim = folder / name
    shim.write_text(f'#!/bin/sh\necho {name} >> "{counter}"\nexec "{binary}" "$@"\n')
    shim.chmod(0o755)
    return shim


def _platform(scratch: Path, helm: Path) -> Path:
    root = scratch / "platform"
    shutil.copytree(PLATFORM, root)
    subprocess.run([str(helm), "package", str(root / "dependencies/soma-cache"),
                    "--destination", str(root / "k8s/helm/soma/charts")],
                   check=True, capture_output=True, timeout=120)
    prod = (root / "argocd/soma-prod.yaml").read_text()
    # Same chart, same inputs, another Application name: rendered once, counted once.
    (root / "argocd/soma-prod-mirror.yaml").write_text(
        prod.replace("name: soma-prod\n", "name: soma-prod-mirror\n"))
    return root


_HELPERS = """\
{{- define "svc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "svc.fullname" -}}
{{- if contains (include "svc.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "svc.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "svc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "svc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "svc.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "svc.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ .Values.partOf }}
{{- end -}}

{{- define "svc.serviceAccountName" -}}
{{- default (include "svc.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}
"""

_TEMPLATES = {
    "deployment.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "svc.fullname" . }}
  labels:
    {{- include "svc.labels" . | nindent 4 }}
spec:
  {{- if not .Values.autoscaling.enabled }}
  replicas: {{ .Values.replicaCount }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "svc.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      annotations:
        checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
      labels:
        {{- include "svc.selectorLabels" . | nindent 8 }}
    spec:
      serviceAccountName: {{ include "svc.serviceAccountName" . }}
      securityContext:
        runAsNonRoot: true
        seccompProfile: {type: RuntimeDefault}
      containers:
        - name: {{ .Chart.Name }}
          {{- $tag := .Values.image.tag | default .Chart.AppVersion }}
          image: "{{ .Values.image.repository }}:{{ $tag }}"
          imagePullPolicy: IfNotPresent
          ports:
            - {name: http, containerPort: {{ .Values.service.targetPort }}, protocol: TCP}
          envFrom:
            - configMapRef:
                name: {{ include "svc.fullname" . }}
          readinessProbe:
            httpGet: {path: /ready, port: http}
          livenessProbe:
            httpGet: {path: /healthz, port: http}
          resources:
            {{- toYaml .Values.resources | nindent 12 }}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: [ALL]}
""",
    "service.yaml": """\
apiVersion: v1
kind: Service
metadata:
  name: {{ include "svc.fullname" . }}
  labels:
    {{- include "svc.labels" . | nindent 4 }}
spec:
  type: ClusterIP
  ports:
    - {port: {{ .Values.service.port }}, targetPort: http, protocol: TCP, name: http}
  selector:
    {{- include "svc.selectorLabels" . | nindent 4 }}
""",
    "configmap.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "svc.fullname" . }}
  labels:
    {{- include "svc.labels" . | nindent 4 }}
data:
  {{- range $key, $value := .Values.config }}
  {{ $key }}: {{ $value | quote }}
  {{- end }}
""",
    "hpa.yaml": """\
{{- if .Values.autoscaling.enabled }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "svc.fullname" . }}
  labels:
    {{- include "svc.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "svc.fullname" . }}
  minReplicas: {{ .Values.autoscaling.minReplicas }}
  maxReplicas: {{ .Values.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target: {type: Utilization, averageUtilization: {{ .Values.autoscaling.cpu }}}
{{- end }}
""",
    "networkpolicy.yaml": """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "svc.fullname" . }}
  labels:
    {{- include "svc.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "svc.selectorLabels" . | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress:
    - from:
        {{- range .Values.networkPolicy.allowFrom }}
        - podSelector:
            matchLabels:
              app.kubernetes.io/name: {{ . }}
        {{- end }}
      ports:
        - {port: {{ .Values.service.targetPort }}, protocol: TCP}
  egress:
    - to:
        - namespaceSelector: {}
      ports:
        - {port: 53, protocol: UDP}
""",
    "serviceaccount.yaml": """\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "svc.serviceAccountName" . }}
  labels:
    {{- include "svc.labels" . | nindent 4 }}
automountServiceAccountToken: false
""",
}


def _values(index: int, environment: str) -> dict[str, Any]:
    scale = {"dev": 1, "staging": 2, "prod": 4}[environment]
    return {
        "replicaCount": scale,
        "image": {"tag": f"1.{index}.{scale}"},
        "resources": {"requests": {"cpu": f"{100 * scale}m", "memory": f"{128 * scale}Mi"},
                      "limits": {"memory": f"{256 * scale}Mi"}},
        "autoscaling": {"enabled": environment != "dev", "minReplicas": scale,
                        "maxReplicas": 3 * scale, "cpu": 70},
        "config": {"LOG_LEVEL": "debug" if environment == "dev" else "info",
                   "ENVIRONMENT": environment},
    }


def _charts(scratch: Path) -> Path:
    """10 charts, 3 environments each, as Argo CD Applications, and one Application repeating
    another's inputs (same chart, release, namespace and value file)."""
    root = scratch / "charts-10x3"
    for index in range(CHARTS):
        name = f"service-{index:02d}"
        chart = root / "charts" / name
        (chart / "templates").mkdir(parents=True)
        (chart / "Chart.yaml").write_text(json.dumps(
            {"apiVersion": "v2", "name": name, "version": "0.1.0", "appVersion": "1.0.0"}))
        (chart / "values.yaml").write_text(json.dumps({
            "nameOverride": "", "partOf": "platform", "replicaCount": 1,
            "image": {"repository": f"ghcr.io/example/{name}", "tag": ""},
            "serviceAccount": {"name": ""},
            "service": {"port": 80, "targetPort": 8080},
            "resources": {}, "autoscaling": {"enabled": False},
            "networkPolicy": {"allowFrom": [f"service-{(index + 1) % CHARTS:02d}", "gateway"]},
            "config": {},
        }, indent=1))
        (chart / "templates" / "_helpers.tpl").write_text(_HELPERS)
        for file, text in _TEMPLATES.items():
            (chart / "templates" / file).write_text(text)
        for environment in ENVIRONMENTS:
            (chart / f"values-{environment}.yaml").write_text(
                json.dumps(_values(index, environment), indent=1))
            _application(root, f"{name}-{environment}", name, environment)
    _application(root, "service-00-prod-mirror", "service-00", "prod")
    return root


def _application(root: Path, app: str, chart: str, environment: str) -> None:
    path = root / "argocd" / f"{app}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": app, "namespace": "argocd"},
        "spec": {"project": "default",
                 "source": {"repoURL": "https://git.example/platform.git",
                            "path": f"charts/{chart}", "targetRevision": "main",
                            "helm": {"releaseName": chart,
                                     "valueFiles": [f"values-{environment}.yaml"]}},
                 "destination": {"server": "https://kubernetes.default.svc",
                                 "namespace": environment}},
    }, indent=1))


@contextmanager
def _workers(count: int) -> Iterator[None]:
    """Loads in this block run ``count`` renderers at a time."""
    default = rendering.RENDER_WORKERS
    rendering.RENDER_WORKERS = count
    try:
        yield
    finally:
        rendering.RENDER_WORKERS = default


def _load_seconds(root: Path, config: Config) -> tuple[float, int]:
    began = time.perf_counter()
    inventory = ManifestsSource(root, config=config).load(frozenset())
    return time.perf_counter() - began, len(inventory)


def _measure(name: str, root: Path, scratch: Path, binaries: dict[str, Path],
             reps: int) -> dict[str, Any]:
    """One repository: processes per load, then ``reps`` rounds of (rendered, serial,
    plain) loads interleaved."""
    counter = scratch / f"{name}-starts.log"
    shims = scratch / f"{name}-bin"
    shims.mkdir()
    tools = {tool: str(_shim(shims, tool, path, counter)) for tool, path in binaries.items()}
    config = load_config(tools=tools)
    inventory = ManifestsSource(root, config=config).load(frozenset())
    starts = counter.read_text().split() if counter.exists() else []
    renderings = [s for s in inventory.sources if s.status == "rendered"]
    plain = scratch / f"{name}-plain"
    for index, resource in enumerate(inventory):
        path = plain / f"{index:04d}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(resource.body))
    walls: dict[str, list[float]] = {"rendered": [], "serial": [], "plain": []}
    objects: dict[str, int] = {}
    loads: list[float] = []
    runs: dict[str, Callable[[], tuple[float, int]]] = {
        "rendered": lambda: _load_seconds(root, config),
        "serial": lambda: _serial_load(root, config),
        "plain": lambda: _load_seconds(plain, config),
    }
    for _ in range(reps):
        for label, run in runs.items():
            seconds, objects[label] = run()
            walls[label].append(seconds)
        loads.append(os.getloadavg()[0])
    median = {label: statistics.median(values) for label, values in walls.items()}
    return {
        "repository": name,
        "objects": objects["rendered"],
        "serial_objects": objects["serial"],
        "plain_objects": objects["plain"],
        "renderings": len(renderings),
        "helm_processes_per_load": starts.count("helm"),
        "kustomize_processes_per_load": starts.count("kustomize"),
        "render_workers": rendering.RENDER_WORKERS,
        "rendered_wall_s": walls["rendered"],
        "serial_wall_s": walls["serial"],
        "plain_wall_s": walls["plain"],
        "median_rendered_s": round(median["rendered"], 4),
        "median_serial_s": round(median["serial"], 4),
        "median_plain_s": round(median["plain"], 4),
        "added_s": round(median["rendered"] - median["plain"], 4),
        "load_1m": [round(value, 2) for value in loads],
    }


def _serial_load(root: Path, config: Config) -> tuple[float, int]:
    with _workers(1):
        return _load_seconds(root, config)


def markdown(results: dict[str, Any]) -> str:
    """The figures of one results file as a Markdown table (for docs/performance.md)."""
    workers = results["repositories"][0]["render_workers"]
    lines = [
        "| repository | objects | renderings (helm / kustomize processes) | load plain s "
        f"| load rendered s, serial | load rendered s, {workers} at a time | added s "
        "| load average (1 min) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for entry in results["repositories"]:
        loads = entry["load_1m"]
        lines.append(
            f"| {entry['repository']} | {entry['objects']} | {entry['renderings']} "
            f"({entry['helm_processes_per_load']} / {entry['kustomize_processes_per_load']}) "
            f"| {entry['median_plain_s']:.3f} | {entry['median_serial_s']:.3f} "
            f"| {entry['median_rendered_s']:.3f} | {entry['added_s']:.3f} "
            f"| {min(loads):.2f} to {max(loads):.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    def report(component: str, message: str) -> None:
        print(f"[testenv] {component}: {message}")

    cache, logs = testenv_config.cache_dir(), testenv_config.state_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    binaries = {"helm": build.helm(cache, logs, report),
                "kustomize": build.kustomize(cache, logs, report)}
    with tempfile.TemporaryDirectory(prefix="soma-audit-bench-render-") as scratch_dir:
        scratch = Path(scratch_dir)
        repositories = [
            _measure("platform", _platform(scratch, binaries["helm"]), scratch, binaries,
                     args.reps),
            _measure("charts-10x3", _charts(scratch), scratch, binaries, args.reps),
        ]
    results = {"date": dt.date.today().isoformat(), "reps": args.reps,
               "repositories": repositories}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{results['date']}-rendering.json"
    path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path}")
    print(markdown(results), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
