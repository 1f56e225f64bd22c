"""Where each kind the probes read is served: API group, versions, plural, product.

This table is also the source of the bundled read-only ClusterRole
(``manifests/rbac/clusterrole.yaml``): the audit lists exactly these resources.
Secrets are deliberately absent — the audit never reads them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KindInfo:
    kind: str
    group: str
    #: Versions in order of preference; the first one the server serves is listed.
    versions: tuple[str, ...]
    plural: str
    #: What is "not installed" when the group is absent (None for built-in kinds).
    product: str | None = None

    @property
    def resource(self) -> str:
        """``plural.group`` as RBAC and error messages name it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def api_version(self, version: str) -> str:
        """The ``apiVersion`` of the kind's objects at ``version`` (the core group's is the
        bare version)."""
        return f"{self.group}/{version}" if self.group else version

    def collection(self, version: str) -> str:
        """The path that lists the kind's objects at ``version``, cluster-wide."""
        base = f"/apis/{self.api_version(version)}" if self.group else f"/api/{version}"
        return f"{base}/{self.plural}"

    @property
    def not_installed(self) -> str:
        """Why the kind is absent when the server does not serve its resource."""
        return f"{self.product or self.kind} not installed ({self.resource})"


#: networking.istio.io versions, newest first (v1 since Istio 1.22).
_ISTIO_NET = ("v1", "v1beta1", "v1alpha3")

_TABLE = [
    KindInfo("Namespace", "", ("v1",), "namespaces"),
    KindInfo("Pod", "", ("v1",), "pods"),
    KindInfo("Service", "", ("v1",), "services"),
    KindInfo("ConfigMap", "", ("v1",), "configmaps"),
    KindInfo("ServiceAccount", "", ("v1",), "serviceaccounts"),
    KindInfo("ReplicationController", "", ("v1",), "replicationcontrollers"),
    KindInfo("Deployment", "apps", ("v1",), "deployments"),
    KindInfo("StatefulSet", "apps", ("v1",), "statefulsets"),
    KindInfo("DaemonSet", "apps", ("v1",), "daemonsets"),
    KindInfo("ReplicaSet", "apps", ("v1",), "replicasets"),
    KindInfo("Job", "batch", ("v1",), "jobs"),
    KindInfo("CronJob", "batch", ("v1",), "cronjobs"),
    KindInfo("HorizontalPodAutoscaler", "autoscaling", ("v2",), "horizontalpodautoscalers"),
    KindInfo("NetworkPolicy", "networking.k8s.io", ("v1",), "networkpolicies"),
    KindInfo("Application", "argoproj.io", ("v1alpha1",), "applications", "Argo CD"),
    KindInfo("ApplicationSet", "argoproj.io", ("v1alpha1",), "applicationsets", "Argo CD"),
    KindInfo("EventSource", "argoproj.io", ("v1alpha1",), "eventsources", "Argo Events"),
    KindInfo("Sensor", "argoproj.io", ("v1alpha1",), "sensors", "Argo Events"),
    KindInfo("EventBus", "argoproj.io", ("v1alpha1",), "eventbus", "Argo Events"),
    KindInfo("KafkaTopic", "kafka.strimzi.io", ("v1", "v1beta2"), "kafkatopics", "Strimzi"),
    KindInfo("KafkaUser", "kafka.strimzi.io", ("v1", "v1beta2"), "kafkausers", "Strimzi"),
    KindInfo("Schedule", "chaos-mesh.org", ("v1alpha1",), "schedules", "Chaos Mesh"),
    KindInfo("StressChaos", "chaos-mesh.org", ("v1alpha1",), "stresschaos", "Chaos Mesh"),
    KindInfo("NetworkChaos", "chaos-mesh.org", ("v1alpha1",), "networkchaos", "Chaos Mesh"),
    KindInfo("PodChaos", "chaos-mesh.org", ("v1alpha1",), "podchaos", "Chaos Mesh"),
    KindInfo("AWSChaos", "chaos-mesh.org", ("v1alpha1",), "awschaos", "Chaos Mesh"),
    KindInfo("AzureChaos", "chaos-mesh.org", ("v1alpha1",), "azurechaos", "Chaos Mesh"),
    KindInfo("BlockChaos", "chaos-mesh.org", ("v1alpha1",), "blockchaos", "Chaos Mesh"),
    KindInfo("DNSChaos", "chaos-mesh.org", ("v1alpha1",), "dnschaos", "Chaos Mesh"),
    KindInfo("GCPChaos", "chaos-mesh.org", ("v1alpha1",), "gcpchaos", "Chaos Mesh"),
    KindInfo("HTTPChaos", "chaos-mesh.org", ("v1alpha1",), "httpchaos", "Chaos Mesh"),
    KindInfo("IOChaos", "chaos-mesh.org", ("v1alpha1",), "iochaos", "Chaos Mesh"),
    KindInfo("JVMChaos", "chaos-mesh.org", ("v1alpha1",), "jvmchaos", "Chaos Mesh"),
    KindInfo("KernelChaos", "chaos-mesh.org", ("v1alpha1",), "kernelchaos", "Chaos Mesh"),
    KindInfo("PhysicalMachineChaos", "chaos-mesh.org", ("v1alpha1",), "physicalmachinechaos",
             "Chaos Mesh"),
    KindInfo("TimeChaos", "chaos-mesh.org", ("v1alpha1",), "timechaos", "Chaos Mesh"),
    KindInfo("Prometheus", "monitoring.coreos.com", ("v1",), "prometheuses",
             "Prometheus Operator"),
    KindInfo("PrometheusRule", "monitoring.coreos.com", ("v1",), "prometheusrules",
             "Prometheus Operator"),
    KindInfo("ServiceMonitor", "monitoring.coreos.com", ("v1",), "servicemonitors",
             "Prometheus Operator"),
    KindInfo("Alertmanager", "monitoring.coreos.com", ("v1",), "alertmanagers",
             "Prometheus Operator"),
    KindInfo("AlertmanagerConfig", "monitoring.coreos.com", ("v1alpha1",),
             "alertmanagerconfigs", "Prometheus Operator"),
    KindInfo("AuthorizationPolicy", "security.istio.io", ("v1", "v1beta1"),
             "authorizationpolicies", "Istio"),
    KindInfo("PeerAuthentication", "security.istio.io", ("v1", "v1beta1"),
             "peerauthentications", "Istio"),
    KindInfo("ServiceEntry", "networking.istio.io", _ISTIO_NET,
             "serviceentries", "Istio"),
    KindInfo("VirtualService", "networking.istio.io", _ISTIO_NET,
             "virtualservices", "Istio"),
    KindInfo("DestinationRule", "networking.istio.io", _ISTIO_NET,
             "destinationrules", "Istio"),
    KindInfo("Gateway", "networking.istio.io", _ISTIO_NET,
             "gateways", "Istio"),
    KindInfo("Sidecar", "networking.istio.io", _ISTIO_NET,
             "sidecars", "Istio"),
    KindInfo("WorkloadEntry", "networking.istio.io", _ISTIO_NET,
             "workloadentries", "Istio"),
    KindInfo("WorkloadGroup", "networking.istio.io", _ISTIO_NET,
             "workloadgroups", "Istio"),
    KindInfo("EnvoyFilter", "networking.istio.io", ("v1alpha3",), "envoyfilters", "Istio"),
    KindInfo("ProxyConfig", "networking.istio.io", ("v1beta1",), "proxyconfigs", "Istio"),
    KindInfo("RequestAuthentication", "security.istio.io", ("v1", "v1beta1"),
             "requestauthentications", "Istio"),
    KindInfo("ScaledObject", "keda.sh", ("v1alpha1",), "scaledobjects", "KEDA"),
]

KINDS: dict[str, KindInfo] = {info.kind: info for info in _TABLE}

#: Never listed, whatever a probe or a user catalog asks for.
FORBIDDEN_KINDS = frozenset({"Secret"})
