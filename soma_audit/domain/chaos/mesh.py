"""Chaos Mesh 2.x objects as data: Schedules, the experiments inside them, their
validation and which pods they select — the pure logic behind the ``chaos.*`` checks.

Field names and rules follow Chaos Mesh's own CRDs and admission webhooks: an
object the webhook would reject never runs, so it is reported as invalid and does not
count. The 1.x ``scheduler:`` field no longer exists; experiments recur only inside a
``Schedule``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from soma_audit.core.durations import DurationError, parse_go_duration
from soma_audit.core.typed import wrong_type
from soma_audit.domain.chaos.cron import Cron, CronError, parse_cron
from soma_audit.kube.inventory import Resource
from soma_audit.kube.labels import parse_selector

GROUP = "chaos-mesh.org"
PAUSE_ANNOTATION = "experiment.chaos-mesh.org/pause"

#: Schedule ``spec.type`` → key of the inline experiment (Chaos Mesh's ScheduleItem tags).
TEMPLATE_KEYS = {
    "AWSChaos": "awsChaos",
    "AzureChaos": "azureChaos",
    "BlockChaos": "blockChaos",
    "DNSChaos": "dnsChaos",
    "GCPChaos": "gcpChaos",
    "HTTPChaos": "httpChaos",
    "IOChaos": "ioChaos",
    "JVMChaos": "jvmChaos",
    "KernelChaos": "kernelChaos",
    "NetworkChaos": "networkChaos",
    "PhysicalMachineChaos": "physicalmachineChaos",
    "PodChaos": "podChaos",
    "StressChaos": "stressChaos",
    "TimeChaos": "timeChaos",
    "Workflow": "workflow",
}
EXPERIMENT_KINDS = tuple(kind for kind in TEMPLATE_KEYS if kind != "Workflow")
#: Experiments that pick Kubernetes pods with ``selector`` and ``mode``.
POD_KINDS = frozenset(
    {"BlockChaos", "DNSChaos", "HTTPChaos", "IOChaos", "JVMChaos", "KernelChaos",
     "NetworkChaos", "PodChaos", "StressChaos", "TimeChaos"}
)
#: Owners whose experiments are instances of a schedule or workflow, not standalone.
_SPAWNING_OWNERS = frozenset({"Schedule", "Workflow", "WorkflowNode"})

#: The fault scenarios the plan asks for (``config.chaos.experiments``) and what realises them.
FAULTS = {
    "cpu-stress": "a StressChaos with a cpu stressor",
    "memory-stress": "a StressChaos with a memory stressor",
    "network-delay": "a NetworkChaos with action delay (or netem with delay)",
    "network-loss": "a NetworkChaos with action loss (or netem with loss)",
    "pod-failure": "a PodChaos with action pod-kill or pod-failure",
}
#: The experiment kind that realises each fault.
FAULT_KINDS = {
    "cpu-stress": "StressChaos",
    "memory-stress": "StressChaos",
    "network-delay": "NetworkChaos",
    "network-loss": "NetworkChaos",
    "pod-failure": "PodChaos",
}

_MODES = ("one", "all", "fixed", "fixed-percent", "random-max-percent")
_NETWORK_ACTIONS = ("netem", "delay", "loss", "duplicate", "corrupt", "partition", "bandwidth")
_NETEM_FIELDS = ("delay", "loss", "duplicate", "corrupt")
_POD_ACTIONS = ("pod-kill", "pod-failure", "container-kill")
_DIRECTIONS = ("to", "from", "both")
#: docker/go-units FromHumanSize, which Chaos Mesh uses for ``stressors.memory.size``.
_HUMAN_SIZE = re.compile(r"[0-9]+(?:\.[0-9]+)* ?[kKmMgGtTpP]?[iI]?[bB]?")
_PERCENT = re.compile(r"[0-9]+%")
_INT = re.compile(r"[+-]?[0-9]+")
#: Selector keys that cannot be matched to a service from manifests alone.
_OPAQUE_SELECTORS = ("nodes", "nodeSelectors", "annotationSelectors", "fieldSelectors")


def _mapping(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


#: The selector fields Chaos Mesh reads and their types (a wrong one is a finding about
#: the object, and the selection cannot be told).
_SELECTOR_FIELDS = (
    ("namespaces", list, "a list"),
    ("pods", dict, "a mapping"),
    ("labelSelectors", dict, "a mapping"),
    ("expressionSelectors", list, "a list"),
    ("podPhaseSelectors", list, "a list"),
)


@dataclass(frozen=True)
class Experiment:
    """An experiment spec, standalone (``spec``) or inline in a Schedule."""

    kind: str
    spec: dict[str, Any]
    #: Dotted path of the spec inside its object, for evidence ("spec.stressChaos").
    path: str
    #: The namespace it selects in when ``selector.namespaces`` is empty.
    namespace: str | None

    def problems(self) -> list[str]:
        """Why Chaos Mesh would reject it (empty when valid)."""
        found: list[str] = []
        if "scheduler" in self.spec:
            found.append(
                f"{self.path}.scheduler is the removed Chaos Mesh 1.x field "
                "(the API server drops or rejects it)"
            )
        if self.kind in POD_KINDS:
            found += self._selection_problems()
        found += self._duration_problems("duration")
        check = {
            "StressChaos": self._stress_problems,
            "NetworkChaos": self._network_problems,
            "PodChaos": self._pod_problems,
        }.get(self.kind)
        if check is not None:
            found += check()
        return found

    def faults(self) -> frozenset[str]:
        """The plan's fault scenarios (keys of :data:`FAULTS`) this experiment realises."""
        spec = self.spec
        if self.kind == "StressChaos":
            return frozenset(
                f"{kind}-stress" for kind in ("cpu", "memory") if kind in self.stressors()
            )
        if self.kind == "NetworkChaos":
            action = spec.get("action")
            kinds = {action} if action in ("delay", "loss") else set()
            if action == "netem":
                kinds = {k for k in ("delay", "loss") if _mapping(spec.get(k))}
            return frozenset(f"network-{k}" for k in kinds)
        if self.kind == "PodChaos" and spec.get("action") in ("pod-kill", "pod-failure"):
            return frozenset({"pod-failure"})
        return frozenset()

    def stressors(self) -> set[str]:
        """Which of cpu/memory it stresses (``stressors`` or stress-ng ``--cpu``/``--vm``)."""
        found = set()
        stressors = _mapping(self.spec.get("stressors")) or {}
        found.update(k for k in ("cpu", "memory") if _mapping(stressors.get(k)) is not None)
        stress_ng = self.spec.get("stressngStressors")
        if isinstance(stress_ng, str):
            if re.search(r"--cpu\b", stress_ng):
                found.add("cpu")
            if re.search(r"--vm\b", stress_ng):
                found.add("memory")
        return found

    def describe(self) -> str:
        """A short account for evidence: "StressChaos cpu+memory", "PodChaos pod-kill"."""
        if self.kind == "StressChaos":
            return f"StressChaos {'+'.join(sorted(self.stressors())) or 'without stressors'}"
        action = self.spec.get("action")
        return f"{self.kind} {action}" if action else self.kind

    def _selection_problems(self) -> list[str]:
        found = []
        selector = _mapping(self.spec.get("selector"))
        if selector is None:
            found.append(f"{self.path}.selector missing (required: which pods to target)")
        for key, kind, expected in _SELECTOR_FIELDS:
            value = (selector or {}).get(key)
            if value is not None and not isinstance(value, kind):
                found.append(wrong_type(f"{self.path}.selector.{key}", expected, value))
        mode = self.spec.get("mode")
        value = self.spec.get("value")
        if mode is None:
            found.append(f"{self.path}.mode missing (one of {', '.join(_MODES)})")
        elif not isinstance(mode, str) or mode not in _MODES:
            found.append(f"{self.path}.mode={mode!r}, expected one of {', '.join(_MODES)}")
        elif mode in ("fixed", "fixed-percent", "random-max-percent"):
            top = 100 if mode != "fixed" else None
            if not isinstance(value, str) or not _INT.fullmatch(value):
                found.append(
                    f"{self.path}.value={value!r}: mode {mode} needs value, a number as a string"
                )
            elif int(value) <= 0 or (top is not None and int(value) > top):
                bounds = "in (0, 100]" if top else "> 0"
                found.append(f"{self.path}.value={value!r}, expected {bounds} for mode {mode}")
        return found

    def _duration_problems(self, key: str, block: dict[str, Any] | None = None,
                           path: str | None = None, required: bool = False) -> list[str]:
        """A Go duration at ``key`` of ``block`` (default: the experiment spec)."""
        block = self.spec if block is None else block
        where = f"{path or self.path}.{key}"
        if key not in block:
            return [f"{where} missing (required)"] if required else []
        value = block[key]
        if not isinstance(value, str):
            return [f"{where}={value!r} must be a duration string such as 10m"]
        try:
            parse_go_duration(value)
        except DurationError as exc:
            return [f"{where}: {exc}"]
        return []

    def _stress_problems(self) -> list[str]:
        stressors = _mapping(self.spec.get("stressors"))
        if not stressors and not self.spec.get("stressngStressors"):
            return [f"{self.path}.stressors missing (set stressors.cpu and/or stressors.memory)"]
        if stressors is None:
            return []
        found = []
        if not any(_mapping(stressors.get(k)) is not None for k in ("cpu", "memory")):
            found.append(f"{self.path}.stressors has neither cpu nor memory")
        for kind in ("cpu", "memory"):
            block = _mapping(stressors.get(kind))
            if block is None:
                continue
            where = f"{self.path}.stressors.{kind}"
            workers = block.get("workers")
            if not _is_int(workers) or workers < 1:
                found.append(f"{where}.workers={workers!r}, expected a positive integer (required)")
            load = block.get("load")
            if kind == "cpu" and load is not None and (not _is_int(load) or not 0 <= load <= 100):
                found.append(f"{where}.load={load!r}, expected 0-100")
            size = block.get("size")
            if kind == "memory" and size is not None and not _valid_size(size):
                found.append(f"{where}.size={size!r}, expected e.g. 256MB or 50%")
        return found

    def _network_problems(self) -> list[str]:
        spec = self.spec
        action = spec.get("action")
        if action not in _NETWORK_ACTIONS:
            return [
                f"{self.path}.action={action!r}, expected one of {', '.join(_NETWORK_ACTIONS)}"
            ]
        found = []
        direction = spec.get("direction")
        if direction is not None and direction not in _DIRECTIONS:
            found.append(f"{self.path}.direction={direction!r}, expected to, from or both")
        if action == "netem":
            present = [k for k in _NETEM_FIELDS if k in spec]
            if not present:
                found.append(f"{self.path}: action netem needs delay, loss, duplicate or corrupt")
            for key in present:
                found += self._netem_problems(key)
        elif action in _NETEM_FIELDS:
            found += self._netem_problems(action)
        elif action == "bandwidth":
            block = _mapping(spec.get("bandwidth")) or {}
            found += [
                f"{self.path}.bandwidth.{k} missing (required for action bandwidth)"
                for k in ("rate", "limit", "buffer")
                if k not in block
            ]
        return found

    def _netem_problems(self, key: str) -> list[str]:
        """delay needs ``latency`` (a duration); loss/duplicate/corrupt a percentage string."""
        block = _mapping(self.spec.get(key))
        where = f"{self.path}.{key}"
        if block is None:
            return [f"{where} missing (required for {key})"]
        if key == "delay":
            found = self._duration_problems("latency", block, where, required=True)
            return found + self._duration_problems("jitter", block, where)
        value = block.get(key)
        if value is None:
            return [f"{where}.{key} missing (required: a percentage such as \"25\")"]
        if not isinstance(value, str) or not _is_percentage(value):
            return [f"{where}.{key}={value!r}, expected a percentage string 0-100"]
        return []

    def _pod_problems(self) -> list[str]:
        action = self.spec.get("action")
        if action not in _POD_ACTIONS:
            return [f"{self.path}.action={action!r}, expected one of {', '.join(_POD_ACTIONS)}"]
        if action == "pod-failure" and "duration" not in self.spec:
            return [f"{self.path}.duration missing (required for pod-failure)"]
        if action == "container-kill" and not self.spec.get("containerNames"):
            return [f"{self.path}.containerNames missing (required for container-kill)"]
        return []


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _valid_size(size: Any) -> bool:
    if not isinstance(size, str):
        return False
    if _PERCENT.fullmatch(size):
        return 0 <= int(size[:-1]) <= 100
    return bool(_HUMAN_SIZE.fullmatch(size))


def _is_percentage(value: str) -> bool:
    try:
        number = float(value)
    except ValueError:
        return False
    return 0 <= number <= 100


@dataclass(frozen=True)
class ChaosSchedule:
    """A ``Schedule`` with its parsed cron, its inline experiment and what is wrong with it."""

    resource: Resource
    cron: Cron | None
    experiment: Experiment | None
    problems: tuple[str, ...]

    @property
    def paused(self) -> bool:
        annotations = _mapping(self.resource.metadata.get("annotations")) or {}
        return str(annotations.get(PAUSE_ANNOTATION, "")).lower() == "true"

    @property
    def runs(self) -> bool:
        """Valid and not paused: Chaos Mesh really starts it on its schedule."""
        return not self.problems and not self.paused

    def describe(self) -> str:
        what = self.experiment.describe() if self.experiment else self.resource.spec.get("type")
        return f"{what} on schedule {self.resource.spec.get('schedule')!r}"


def read_schedule(resource: Resource) -> ChaosSchedule:
    """Parse and validate a Schedule as Chaos Mesh's webhook would."""
    spec = resource.spec
    problems: list[str] = []
    cron = None
    expression = spec.get("schedule")
    if not isinstance(expression, str):
        problems.append("spec.schedule missing (required: a cron expression)")
    else:
        try:
            cron = parse_cron(expression)
        except CronError as exc:
            problems.append(f"spec.schedule {expression!r}: {exc}")
    kind = spec.get("type")
    experiment = None
    if not isinstance(kind, str | None):
        problems.append(wrong_type("spec.type", "a chaos kind such as StressChaos", kind))
    elif kind not in TEMPLATE_KEYS:
        problems.append(f"spec.type={kind!r}, expected a chaos kind such as StressChaos")
    elif kind != "Workflow":
        key = TEMPLATE_KEYS[kind]
        inline = _mapping(spec.get(key))
        if inline is None:
            problems.append(f"spec.{key} missing: spec.type {kind} needs its experiment there")
        else:
            experiment = Experiment(kind, inline, f"spec.{key}", resource.namespace)
            problems += experiment.problems()
    history = spec.get("historyLimit")
    if history is not None and (not _is_int(history) or history < 1):
        problems.append(f"spec.historyLimit={history!r}, expected an integer >= 1")
    policy = spec.get("concurrencyPolicy")
    if policy not in (None, "", "Forbid", "Allow"):
        problems.append(f"spec.concurrencyPolicy={policy!r}, expected Forbid or Allow")
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None and (not _is_int(deadline) or deadline < 0):
        problems.append(f"spec.startingDeadlineSeconds={deadline!r}, expected an integer >= 0")
    return ChaosSchedule(resource, cron, experiment, tuple(problems))


def is_standalone(resource: Resource) -> bool:
    """An experiment object not created by a Schedule or Workflow (so not scheduled)."""
    owners = resource.metadata.get("ownerReferences")
    owners = owners if isinstance(owners, list) else []
    owner_kinds = {o.get("kind") for o in owners if isinstance(o, dict)}
    return resource.kind in EXPERIMENT_KINDS and not owner_kinds & _SPAWNING_OWNERS


def standalone_experiment(resource: Resource) -> Experiment:
    return Experiment(resource.kind, resource.spec, "spec", resource.namespace)


def legacy_scheduler(spec: dict[str, Any]) -> str | None:
    """The 1.x ``scheduler:`` block of an experiment spec, described; None if absent."""
    if "scheduler" not in spec:
        return None
    scheduler = spec["scheduler"]
    if isinstance(scheduler, dict) and scheduler:
        return ", ".join(f"{k}: {v!r}" for k, v in scheduler.items())
    return repr(scheduler)


def selects(experiment: Experiment, namespace: str,
            pod_labels: Iterable[dict[str, str]]) -> bool | None:
    """Whether the experiment targets pods with one of ``pod_labels`` in ``namespace``.

    None means it cannot be told from manifests (selection by pod or node name,
    annotations, fields or an unknown operator).
    """
    selector = _mapping(experiment.spec.get("selector"))
    if selector is None:
        return False
    if any(selector.get(key) is not None and not isinstance(selector[key], kind)
           for key, kind, _ in _SELECTOR_FIELDS):
        return None  # reported by Experiment.problems()
    namespaces = selector.get("namespaces") or [experiment.namespace]
    if namespace not in namespaces:
        return False
    pods = _mapping(selector.get("pods"))
    if pods:
        return None if namespace in pods else False
    parsed = parse_selector(selector, "selector", [], labels_key="labelSelectors",
                            expressions_key="expressionSelectors")
    verdicts = [parsed.verdict(labels) for labels in pod_labels]
    if True in verdicts:
        phases = selector.get("podPhaseSelectors")
        opaque = any(selector.get(k) for k in _OPAQUE_SELECTORS)
        return None if opaque or (phases and "Running" not in phases) else True
    return None if None in verdicts else False
