"""Hypothesis strategies for hostile input: YAML-ish text, Kubernetes-shaped documents."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import strategies as st

#: Keys the loaders and evaluators look at, so that generated documents reach deep code.
KEYS = [
    "apiVersion", "kind", "metadata", "name", "namespace", "labels", "annotations", "spec",
    "items", "template", "containers", "initContainers", "ephemeralContainers", "image",
    "securityContext", "privileged", "runAsNonRoot", "runAsUser", "capabilities", "add",
    "drop", "allowPrivilegeEscalation", "seccompProfile", "type", "localhostProfile",
    "appArmorProfile", "seLinuxOptions", "volumes", "hostPath", "path", "hostNetwork",
    "hostPID", "hostIPC", "ports", "hostPort", "containerPort", "protocol", "sysctls",
    "procMount", "windowsOptions", "hostProcess", "podSelector", "namespaceSelector",
    "matchLabels", "matchExpressions", "key", "operator", "values", "policyTypes", "ingress",
    "egress", "from", "to", "ipBlock", "cidr", "except", "port", "endPort", "readinessProbe",
    "lifecycle", "httpGet", "tcpSocket", "host", "services", "flows", "catalogs", "checks",
    "id", "phase", "area", "severity", "probe", "params", "attestations", "repo", "layout",
    "<<", "selector", "replicas", "resources", "limits", "requests",
]
WORDS = [
    "v1", "apps/v1", "networking.k8s.io/v1", "Pod", "Deployment", "NetworkPolicy", "List",
    "PodList", "Namespace", "CronJob", "Ingress", "Egress", "TCP", "UDP", "SCTP", "In",
    "NotIn", "Exists", "DoesNotExist", "ALL", "NET_RAW", "SYS_ADMIN", "NET_BIND_SERVICE",
    "RuntimeDefault", "Localhost", "Unconfined", "restricted", "baseline", "privileged",
    "0.0.0.0/0", "::/0", "10.0.0.0/8", "10.0.0.1/33", "http", "80", "65536", "-1",
    "Default", "Unmasked", "critical", "high", "low", "kube-system", "soma-agent-hub", "",
    "../../etc/passwd", "/etc", "a" * 300, "\u202e", "é", "null", "~", "yes", "0x1F",
]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(WORDS),
    st.text(max_size=12),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=8))
documents: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(keys, children, max_size=6),
    ),
    max_leaves=40,
)


@st.composite
def k8s_objects(draw: st.DrawFn) -> dict[str, Any]:
    """A mapping that looks like a Kubernetes object (so loaders keep it) with hostile parts."""
    body = draw(st.dictionaries(keys, documents, max_size=5))
    body["apiVersion"] = draw(st.sampled_from(WORDS[:3]) | scalars)
    body["kind"] = draw(st.sampled_from(WORDS[3:10]) | st.text(max_size=10))
    return body


def dump(value: Any) -> str:
    """YAML text of ``value`` (PyYAML can represent every generated value)."""
    return yaml.safe_dump(value, allow_unicode=True, sort_keys=False)


#: Characters that matter to YAML's grammar, for raw text fuzzing.
YAML_ALPHABET = st.sampled_from([*":-?[]{},&*!|>'\"%@`#\n \t", "---", "...", "<<",
                                "&a", "*a", "!!python/object", "!!binary", "kind: Pod",
                                "apiVersion: v1", "\ufeff", "\x85", "\u2028", "\x00"])
yaml_text = st.one_of(
    st.lists(YAML_ALPHABET | st.text(max_size=4), max_size=60).map("".join),
    st.builds(dump, documents),
    st.lists(st.builds(dump, k8s_objects()), min_size=1, max_size=4).map("---\n".join),
)


@st.composite
def mutated(draw: st.DrawFn, base: Any) -> Any:
    """``base`` with a few subtrees replaced by generated values (keeps most of a valid
    file so that the loader's later stages run)."""
    import copy

    value = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        node = value
        parent: Any = None
        slot: Any = None
        for _depth in range(draw(st.integers(min_value=0, max_value=5))):
            if isinstance(node, dict) and node:
                slot = draw(st.sampled_from(sorted(node, key=str)))
            elif isinstance(node, list) and node:
                slot = draw(st.integers(min_value=0, max_value=len(node) - 1))
            else:
                break
            parent, node = node, node[slot]
        replacement = draw(documents)
        if parent is None:
            if isinstance(value, dict) and draw(st.booleans()):
                value[draw(keys)] = replacement
            else:
                value = replacement
        else:
            parent[slot] = replacement
    return value
