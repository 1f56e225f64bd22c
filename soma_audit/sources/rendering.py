"""Helm charts and Kustomize overlays of a repository, rendered as Argo CD would render them.

What runs: the real ``helm template`` (Helm v4) and ``kustomize build`` (or ``kubectl
kustomize``), found like every tool (config ``tools.helm``/``tools.kustomize``, beside the
Python, then ``PATH``), each bounded in time (``tools.timeout_seconds``) and output size
(:data:`MAX_RENDER_BYTES`), in an environment of their own: an empty home, no Helm plugins
or repositories, no kubeconfig, so nothing but the repository's files is read and nothing
is fetched. Dependencies must be vendored (``charts/*.tgz``); a remote Kustomize base is
refused. Templates are data for the renderer, not code we run: ``lookup`` returns nothing
without a cluster and ``.Files`` reads only the chart's own files.

Which inputs: for a chart, each ``helm.charts[]`` entry of the config naming it; else each
Argo CD Application of the repository whose source path is the chart (its value files,
values, parameters, release name and destination namespace, in Argo CD's precedence);
else the chart's own ``values.yaml`` into the configured namespace. For a kustomization,
each Application pointing at it; else, when no other kustomization uses it as a base,
one build (a base is built only through its overlays).
"""

from __future__ import annotations

import bisect
import json
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from soma_audit.config import Config
from soma_audit.core.fileio import MAX_FILE_BYTES
from soma_audit.core.pools import result_of, unwaited_on_error
from soma_audit.core.yamlload import safe_load
from soma_audit.kube.inventory import Rendering, Resource
from soma_audit.services.tools import ToolError, ToolRun, ToolRunner
from soma_audit.sources.documents import parse_text

CHART_FILE = "Chart.yaml"
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
#: The most a single rendering may print: far above any real platform's manifests.
MAX_RENDER_BYTES = 64 * 1024 * 1024
#: Characters of a renderer's error message quoted in evidence.
MAX_MESSAGE = 600
#: Renderings of distinct inputs that run at once in one load (threads waiting on their
#: helm/kustomize process). Two at a time made loading 10 charts with 3 value sets each about
#: 1.7 times faster than one by one on a 2-core machine (bench/rendering.py); more only
#: takes a larger share of a shared machine.
RENDER_WORKERS = 2

#: Kinds that have no namespace. A namespaced object rendered without one is placed in
#: the rendering's namespace, as ``helm install -n`` and an Argo CD sync place it.
CLUSTER_SCOPED = frozenset({
    "Namespace", "Node", "PersistentVolume", "StorageClass", "PriorityClass", "RuntimeClass",
    "IngressClass", "CSIDriver", "CSINode", "VolumeAttachment", "ClusterRole",
    "ClusterRoleBinding", "CustomResourceDefinition", "APIService",
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "ClusterIssuer",
    "ClusterSecretStore", "ClusterPolicy", "ClusterServingRuntime",
})

_SOURCE_LINE = re.compile(r"^# Source: (\S.*?)\s*$", re.MULTILINE)
_KIND_LINE = re.compile(r"^kind:\s*[\"']?([A-Za-z][A-Za-z0-9]*)", re.MULTILINE)
#: What Helm accepts as a release name (a DNS-1123 subdomain, at most 53 characters); it
#: is also what keeps a name from the repository from being read as a flag of `helm`.
_RELEASE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|git@|github\.com/|gitlab\.com/)|\?ref=")


class RenderError(Exception):
    """A chart or overlay that cannot be rendered; the message names it and quotes why."""

    def __init__(self, message: str, *, tool_missing: bool = False) -> None:
        super().__init__(message)
        self.tool_missing = tool_missing


@dataclass(frozen=True)
class HelmInputs:
    """One ``helm template`` invocation, as its command line will say it."""

    chart: str
    release: str
    namespace: str
    value_files: tuple[str, ...] = ()
    inline_values: str = ""
    #: (name, value, string-only) as Argo CD's ``parameters``; config ``set`` as JSON.
    parameters: tuple[tuple[str, str, bool], ...] = ()
    set_json: tuple[tuple[str, str], ...] = ()
    file_parameters: tuple[tuple[str, str], ...] = ()
    include_crds: bool = True
    via: str = "defaults"
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class KustomizeInputs:
    path: str
    namespace: str = ""
    via: str = "defaults"
    #: An Application's ``kustomize:`` overrides as kustomization fields (YAML), applied
    #: by a wrapper kustomization around the overlay, as Argo CD applies them.
    overrides: str = ""


def inside(root: Path, candidate: Path) -> Path | None:
    """``candidate`` resolved, if it stays inside ``root`` (no ``..`` or symlink escape)."""
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError, ValueError):  # a loop, a NUL byte in a hostile path
        return None
    return resolved if resolved == root or root in resolved.parents else None


def regular_file_size(path: Path) -> int | None:
    """The size of a regular file, None for anything else (a FIFO would block a read, a
    device never ends) or when it cannot be looked at."""
    try:
        status = path.stat()
    except (OSError, ValueError):
        return None
    return status.st_size if stat.S_ISREG(status.st_mode) else None


def _read_yaml(path: Path) -> Any:
    """A Chart.yaml or kustomization as data; None when absent, too large or not YAML."""
    size = regular_file_size(path)
    if size is None or size > MAX_FILE_BYTES:
        return None
    try:
        return safe_load(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


def kustomization_file(directory: Path) -> Path | None:
    return next((directory / n for n in KUSTOMIZATION_FILES if (directory / n).is_file()), None)


def kinds_in(files: Iterable[Path]) -> frozenset[str]:
    """Kinds a chart's templates or an overlay's files declare (top-level ``kind:``): what
    a failed rendering hides from the checks."""
    kinds: set[str] = set()
    for path in files:
        size = regular_file_size(path)
        if size is None or size > MAX_FILE_BYTES:
            continue
        try:
            kinds.update(_KIND_LINE.findall(path.read_text(errors="replace")))
        except OSError:
            continue
    return frozenset(kinds)


def yaml_files(directory: Path) -> Iterator[Path]:
    for dirpath, _, names in os.walk(directory):
        for name in names:
            if name.endswith((".yaml", ".yml", ".tpl", ".json")):
                yield Path(dirpath, name)


def _quote(run_output: str) -> str:
    """The tool's error on one line, from its ``Error:`` on (warnings before it dropped)."""
    text = " ".join(run_output.split())
    text = text[text.find("Error:"):] if "Error:" in text else text
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "…"


def _tool_env(home: Path) -> dict[str, str]:
    """An environment that reads nothing of the user's: no plugins, no repositories, no
    registry credentials, no kubeconfig (so ``helm template`` cannot reach a cluster)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "HELM_PLUGINS": str(home / "plugins"),
        "KUBECONFIG": str(home / "no-kubeconfig"),
        "GIT_TERMINAL_PROMPT": "0",
        "NO_COLOR": "1",
    }
    for key in ("LANG", "LC_ALL", "TMPDIR"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


class Renderer:
    """Renders every chart and overlay of one repository, once per distinct inputs."""

    def __init__(self, root: Path, config: Config) -> None:
        self.root = root.resolve()
        self.config = config
        self.tools = ToolRunner(config.tools)
        self._cache: dict[Any, list[Resource]] = {}

    def relative(self, path: Path) -> str:
        return path.resolve().relative_to(self.root).as_posix() or "."

    # -- helm -------------------------------------------------------------------------

    def chart_name(self, chart: Path) -> str:
        meta = _read_yaml(chart / CHART_FILE)
        name = meta.get("name") if isinstance(meta, dict) else None
        return str(name) if name else chart.name

    def missing_dependencies(self, chart: Path) -> list[str]:
        """Dependencies of Chart.yaml with no ``charts/<name>-*.tgz`` or ``charts/<name>/``."""
        meta = _read_yaml(chart / CHART_FILE)
        wanted = meta.get("dependencies") if isinstance(meta, dict) else None
        try:
            present = [p.name for p in (chart / "charts").iterdir()]
        except OSError:  # no charts/ folder (or an unreadable one): nothing vendored
            present = []
        missing = []
        for dependency in wanted if isinstance(wanted, list) else []:
            if not isinstance(dependency, dict) or not dependency.get("name"):
                continue
            name = str(dependency["name"])
            if not any(p == name or (p.startswith(f"{name}-") and p.endswith(".tgz"))
                       for p in present):
                version = dependency.get("version")
                origin = dependency.get("repository")
                missing.append(name + (f" {version}" if version else "")
                               + (f" from {origin}" if origin else ""))
        return missing

    def local_dependencies(self, chart: Path) -> list[Path]:
        """Charts of the repository that ``chart`` depends on (``repository: file://…``)."""
        meta = _read_yaml(chart / CHART_FILE)
        wanted = meta.get("dependencies") if isinstance(meta, dict) else None
        found = []
        for dependency in wanted if isinstance(wanted, list) else []:
            origin = dependency.get("repository") if isinstance(dependency, dict) else None
            if isinstance(origin, str) and origin.startswith("file://"):
                target = inside(self.root, chart / origin.removeprefix("file://"))
                if target is not None:
                    found.append(target)
        return found

    def is_library(self, chart: Path) -> bool:
        meta = _read_yaml(chart / CHART_FILE)
        return isinstance(meta, dict) and meta.get("type") == "library"

    def default_helm(self, chart: Path) -> HelmInputs:
        return HelmInputs(self.relative(chart), self.chart_name(chart), self.config.namespace)

    def configured_helm(self, chart: Path) -> list[HelmInputs]:
        """The config's ``helm.charts[]`` entries for ``chart`` (paths from the repo root)."""
        found = []
        for index, entry in enumerate(self.config.helm.charts):
            if inside(self.root, self.root / entry.path) != chart.resolve():
                continue
            found.append(HelmInputs(
                self.relative(chart),
                entry.release or self.chart_name(chart),
                entry.namespace or self.config.namespace,
                value_files=tuple(entry.values),
                set_json=tuple((k, _json(v)) for k, v in entry.set.items()),
                via=f"config helm.charts[{index}]",
            ))
        return found

    def _value_file(self, chart: Path, name: str) -> Path | None:
        if name.startswith("$"):  # Argo CD multi-source `$ref/path`: this repository
            name = name.partition("/")[2]
            base = self.root
        else:
            base = chart
        if _REMOTE.search(name):
            return None
        path = inside(self.root, base / name)
        return path if path is not None and path.is_file() else None

    def _helm(self, inputs: HelmInputs) -> list[Resource]:
        chart = self.root / inputs.chart
        special = next(self._unreadable_files(chart), None)
        if special is not None:
            raise RenderError(f"chart {inputs.chart}: {self.relative(special)} is not a "
                              "regular file (helm would block reading it): not rendered")
        missing = self.missing_dependencies(chart)
        if missing:
            raise RenderError(
                f"chart {inputs.chart}: dependency {', '.join(missing)} missing from "
                f"{inputs.chart}/charts/ (vendor it with `helm dependency build`; the audit "
                "runs offline)")
        if len(inputs.release) > 53 or not _RELEASE_NAME.match(inputs.release):
            raise RenderError(f"chart {inputs.chart}: release name {inputs.release[:60]!r} is "
                              "not a valid Helm release name")
        with tempfile.TemporaryDirectory(prefix="soma-audit-helm-") as scratch:
            home = Path(scratch)
            args = ["template", inputs.release, str(chart), "--namespace", inputs.namespace]
            if inputs.include_crds:
                args.append("--include-crds")
            used = ["values.yaml"] if (chart / "values.yaml").is_file() else []
            for name in inputs.value_files:
                path = self._value_file(chart, name)
                if path is None:
                    raise RenderError(f"chart {inputs.chart}: value file {name} not found in "
                                      "the repository")
                args += ["--values", str(path)]
                used.append(self.relative(path))
            if inputs.inline_values:
                inline = home / "values-inline.yaml"
                inline.write_text(inputs.inline_values)
                args += ["--values", str(inline)]
                used.append(f"{inputs.via} values")
            for name, path_text in inputs.file_parameters:
                path = self._value_file(chart, path_text)
                if path is None:
                    raise RenderError(f"chart {inputs.chart}: file parameter {name}: "
                                      f"{path_text} not found in the repository")
                args += ["--set-file", f"{name}={path}"]
            for name, value, as_string in inputs.parameters:
                args += ["--set-string" if as_string else "--set", f"{name}={value}"]
            for name, value in inputs.set_json:
                args += ["--set-json", f"{name}={value}"]
            run = self._run("helm", args, home, cwd=chart)
        if run.returncode != 0:
            raise RenderError(f"helm template {inputs.chart} failed: "
                              f"{_quote(run.stderr or run.stdout)}")
        rendering = Rendering("helm", inputs.chart, inputs.release, inputs.namespace,
                              tuple(used), inputs.via)
        return self._objects(run.stdout, rendering, self._helm_origin(inputs.chart))

    def _unreadable_files(self, chart: Path) -> Iterator[Path]:
        """Entries of the chart helm would open that are FIFOs, devices or sockets."""
        for dirpath, _, names in os.walk(chart):
            for name in names:
                path = Path(dirpath, name)
                if regular_file_size(path) is None and path.exists():
                    yield path

    @staticmethod
    def _helm_origin(chart: str) -> Callable[[str], str]:
        def origin(source: str) -> str:
            # `# Source: <chart name>/templates/x.yaml`: the chart name is not its folder.
            _, _, inner = source.partition("/")
            return f"{chart}/{inner}" if inner else chart
        return origin

    # -- kustomize --------------------------------------------------------------------

    def kustomize_references(self, directory: Path) -> list[Path]:
        """Directories a kustomization builds on (resources, bases, components)."""
        data = _read_yaml(kustomization_file(directory) or directory / KUSTOMIZATION_FILES[0])
        if not isinstance(data, dict):
            return []
        found = []
        for key in ("resources", "bases", "components"):
            entries = data.get(key)
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, str) and not _REMOTE.search(entry):
                    target = inside(self.root, directory / entry)
                    if target is not None and target.is_dir():
                        found.append(target)
        return found

    def remote_references(self, directory: Path) -> list[str]:
        data = _read_yaml(kustomization_file(directory) or directory / KUSTOMIZATION_FILES[0])
        if not isinstance(data, dict):
            return []
        return [entry for key in ("resources", "bases", "components")
                for entry in (data.get(key) if isinstance(data.get(key), list) else [])
                if isinstance(entry, str) and _REMOTE.search(entry)]

    def render_kustomize(self, inputs: KustomizeInputs) -> list[Resource]:
        key = _cache_key(inputs)
        if key not in self._cache:
            self._cache[key] = self._kustomize(inputs)
        return self._cache[key]

    # -- a load's plan ----------------------------------------------------------------

    def render_all(self, plan: Sequence[HelmInputs | KustomizeInputs]
                   ) -> list[list[Resource] | RenderError]:
        """Each planned rendering's objects, or why it failed, in the plan's order.

        Distinct inputs are rendered once, up to :data:`RENDER_WORKERS` at a time, each
        bounded in time and output as when alone; the results are taken in the plan's
        order, so objects, sources and errors read as in a one-by-one rendering.
        """
        pending: dict[Any, HelmInputs | KustomizeInputs] = {}
        for inputs in plan:
            key = _cache_key(inputs)
            if key not in self._cache:
                pending.setdefault(key, inputs)
        outcomes: dict[Any, list[Resource] | RenderError] = {}
        if len(pending) > 1 and RENDER_WORKERS > 1:
            # Ctrl-C/SIGTERM leaves now: a renderer still running is not waited for.
            with unwaited_on_error(min(RENDER_WORKERS, len(pending)),
                                   "soma-audit-render") as pool:
                futures = {key: pool.submit(self._outcome, inputs)
                           for key, inputs in pending.items()}
                outcomes = {key: result_of(future) for key, future in futures.items()}
        else:
            outcomes = {key: self._outcome(inputs) for key, inputs in pending.items()}
        for key, outcome in outcomes.items():
            if not isinstance(outcome, RenderError):
                self._cache[key] = outcome
        return [outcomes[key] if key in outcomes else self._cache[key]
                for key in map(_cache_key, plan)]

    def _outcome(self, inputs: HelmInputs | KustomizeInputs) -> list[Resource] | RenderError:
        try:
            if isinstance(inputs, HelmInputs):
                return self._helm(inputs)
            return self._kustomize(inputs)
        except RenderError as exc:
            return exc

    def _kustomize(self, inputs: KustomizeInputs) -> list[Resource]:
        directory = self.root / inputs.path
        remote = self.remote_references(directory)
        if remote:
            raise RenderError(f"kustomization {inputs.path}: remote base {', '.join(remote)} "
                              "not fetched (the audit runs offline; vendor it in the repository)")
        with tempfile.TemporaryDirectory(prefix="soma-audit-kustomize-") as scratch:
            home = Path(scratch)
            target = directory
            if inputs.overrides:
                # Kustomize takes a base outside its root only by a relative path.
                target = home / "overrides"
                target.mkdir()
                (target / "kustomization.yaml").write_text(yaml.safe_dump(
                    {"resources": [os.path.relpath(directory, target)]}) + inputs.overrides)
            tool, args = "kustomize", ["build", str(target)]
            if not self._has("kustomize") and self._has("kubectl"):
                tool, args = "kubectl", ["kustomize", str(target)]
            run = self._run(tool, args, home, cwd=directory)
        if run.returncode != 0:
            raise RenderError(f"kustomize build {inputs.path} failed: "
                              f"{_quote(run.stderr or run.stdout)}")
        origin_file = kustomization_file(directory)
        origin = self.relative(origin_file) if origin_file else inputs.path
        rendering = Rendering("kustomize", inputs.path, "", inputs.namespace, (), inputs.via)
        return self._objects(run.stdout, rendering, lambda _source: origin)

    # -- shared -----------------------------------------------------------------------

    def _has(self, tool: str) -> bool:
        try:
            self.tools.find(tool)
        except ToolError:
            return False
        return True

    def _run(self, tool: str, args: list[str], home: Path, cwd: Path) -> ToolRun:
        try:
            return self.tools.run_bounded(tool, args, env=_tool_env(home),
                                          max_output=MAX_RENDER_BYTES, cwd=cwd)
        except ToolError as exc:
            raise RenderError(str(exc), tool_missing="not found" in str(exc)) from None

    @staticmethod
    def _objects(stream: str, rendering: Rendering,
                 origin_of: Callable[[str], str]) -> list[Resource]:
        """The rendered objects, each with its template file and the rendering's inputs;
        a namespaced object without a namespace lands in the rendering's namespace."""
        parsed = parse_text(stream, "rendered", strict=True)
        if parsed.problems:
            raise RenderError(f"{rendering.tool} {rendering.path}: output is not valid YAML "
                              f"({parsed.problems[0].message})")
        sources = _source_by_line(stream)
        resources = []
        for resource in parsed.resources:
            line = int(resource.origin.rpartition(":")[2] or 1)
            body = resource.body
            if rendering.namespace and resource.namespace is None \
                    and resource.kind not in CLUSTER_SCOPED:
                body = {**body, "metadata": {**resource.metadata,
                                             "namespace": rendering.namespace}}
            resources.append(Resource(body, origin_of(sources(line)), rendering))
        return resources


def _cache_key(inputs: HelmInputs | KustomizeInputs) -> tuple[Any, ...]:
    """What makes two renderings the same (the notes and ``via`` do not)."""
    if isinstance(inputs, HelmInputs):
        return ("helm", inputs.chart, inputs.release, inputs.namespace, inputs.value_files,
                inputs.inline_values, inputs.parameters, inputs.set_json,
                inputs.file_parameters, inputs.include_crds)
    return ("kustomize", inputs.path, inputs.namespace, inputs.overrides)


def _source_by_line(stream: str) -> Callable[[int], str]:
    """line → the nearest preceding ``# Source:`` of a helm stream ("" when none)."""
    lines: list[int] = []
    sources: list[str] = []
    line, offset = 1, 0
    for match in _SOURCE_LINE.finditer(stream):
        line += stream.count("\n", offset, match.start())
        offset = match.start()
        lines.append(line)
        sources.append(match.group(1))

    def lookup(at: int) -> str:
        index = bisect.bisect_right(lines, at) - 1
        return sources[index] if index >= 0 else ""
    return lookup


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# -- Argo CD Applications -----------------------------------------------------------------


def _strings(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def application_sources(app: Resource) -> list[dict[str, Any]]:
    spec = app.spec
    sources = spec.get("sources")
    if isinstance(sources, list) and sources:
        return [s for s in sources if isinstance(s, dict)]
    source = spec.get("source")
    return [source] if isinstance(source, dict) else []


def application_namespace(app: Resource, default: str) -> str:
    destination = app.spec.get("destination")
    namespace = destination.get("namespace") if isinstance(destination, dict) else None
    return str(namespace) if namespace else default


def _image_override(text: str) -> dict[str, str]:
    """Argo CD's ``[old=]new[:tag|@digest]`` image override as a kustomize ``images`` entry."""
    old, _, new = text.rpartition("=")
    reference, at, digest = new.partition("@")
    name, colon, tag = reference.rpartition(":") if ":" in reference.rsplit("/", 1)[-1] \
        else (reference, "", "")
    entry = {"name": old or name}
    if old and name:
        entry["newName"] = name
    if colon:
        entry["newTag"] = tag
    if at:
        entry["digest"] = digest
    return entry


def kustomize_overrides(source: dict[str, Any]) -> str:
    """The kustomization fields of an Application source's ``kustomize:`` block that Argo
    CD applies on top of the overlay ("" when there are none)."""
    given = source.get("kustomize") if isinstance(source.get("kustomize"), dict) else {}
    fields: dict[str, Any] = {}
    for key in ("namePrefix", "nameSuffix", "namespace"):
        if isinstance(given.get(key), str) and given[key]:
            fields[key] = given[key]
    labels = given.get("commonLabels")
    if isinstance(labels, dict) and labels:  # commonLabels' meaning, without its warning
        fields["labels"] = [{"pairs": {str(k): str(v) for k, v in labels.items()},
                             "includeSelectors": True}]
    annotations = given.get("commonAnnotations")
    if isinstance(annotations, dict) and annotations:
        fields["commonAnnotations"] = {str(k): str(v) for k, v in annotations.items()}
    images = [_image_override(i) for i in _strings(given.get("images"))]
    if images:
        fields["images"] = images
    replicas = [{"name": str(r["name"]), "count": r["count"]} for r in _dicts(given.get("replicas"))
                if r.get("name") and isinstance(r.get("count"), int)]
    if replicas:
        fields["replicas"] = replicas
    patches = [{k: p[k] for k in ("patch", "target") if k in p}
               for p in _dicts(given.get("patches")) if isinstance(p.get("patch"), str)]
    if patches:
        fields["patches"] = patches
    return yaml.safe_dump(fields, sort_keys=False) if fields else ""


def helm_inputs_of_application(renderer: Renderer, chart: Path, app: Resource,
                               source: dict[str, Any]) -> HelmInputs:
    """The ``helm template`` Argo CD would run for ``app``: valueFiles (relative to the
    chart; missing ones skipped when ``ignoreMissingValueFiles``), then values or
    valuesObject, then parameters; release name and namespace as Argo CD defaults them."""
    helm = source.get("helm") if isinstance(source.get("helm"), dict) else {}
    namespace = str(helm.get("namespace") or application_namespace(app, renderer.config.namespace))
    release = str(helm.get("releaseName") or app.name)
    notes = []
    files = []
    for name in _strings(helm.get("valueFiles")):
        if renderer._value_file(chart, name) is None and helm.get("ignoreMissingValueFiles"):
            notes.append(f"value file {name} missing, ignored (ignoreMissingValueFiles)")
            continue
        files.append(name)
    inline = ""
    if isinstance(helm.get("valuesObject"), dict):
        inline = yaml.safe_dump(helm["valuesObject"], sort_keys=False)
    elif isinstance(helm.get("values"), str):
        inline = helm["values"]
    parameters = tuple(
        (str(p["name"]), str(p.get("value", "")), bool(p.get("forceString")))
        for p in _dicts(helm.get("parameters")) if p.get("name")
    )
    file_parameters = tuple(
        (str(p["name"]), str(p["path"]))
        for p in _dicts(helm.get("fileParameters")) if p.get("name") and p.get("path")
    )
    return HelmInputs(
        renderer.relative(chart), release, namespace, tuple(files), inline, parameters,
        file_parameters=file_parameters, include_crds=not helm.get("skipCrds"),
        via=f"Application/{app.namespace}/{app.name}" if app.namespace else
        f"Application/{app.name}",
        notes=tuple(notes),
    )

