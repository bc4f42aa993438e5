"""What Prometheus scrapes: Prometheus Operator ``PodMonitor``/``ServiceMonitor`` objects.

Every workload is covered by a PodMonitor on its Istio sidecar (request rate, errors and latency
without app changes); a workload whose catalog entry has ``metrics_path`` also gets a
ServiceMonitor on its own port. Jaeger and Consul report on themselves. CloudNativePG's database
monitors belong to the database feature.
"""

from __future__ import annotations

from collections.abc import Mapping

from components.kubernetes.specs import HTTP_PORT_NAME, KubeObject
from infra.catalog import Workload
from infra.targets.kubernetes import registry
from infra.targets.kubernetes.network import NAMESPACE_NAME_LABEL
from infra.targets.kubernetes.observability import tracing

API_VERSION = "monitoring.coreos.com/v1"
#: Namespace of kube-prometheus-stack (Prometheus, Alertmanager, Grafana).
NAMESPACE = "monitoring"
RELEASE = "kube-prometheus-stack"
CHART = "kube-prometheus-stack"
REPOSITORY = "https://prometheus-community.github.io/helm-charts"

#: The Envoy sidecar's Prometheus endpoint: container port ``http-envoy-prom`` (15090) on the
#: injected ``istio-proxy`` container, path ``/stats/prometheus``.
SIDECAR_PORT_NAME = "http-envoy-prom"
SIDECAR_PORT = 15090
SIDECAR_PATH = "/stats/prometheus"
SCRAPE_INTERVAL = "30s"


def _object(kind: str, name: str, namespace: str, labels: Mapping[str, str], spec: KubeObject) -> KubeObject:
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": spec,
    }


def sidecar_pod_monitor(
    workload: Workload, namespace: str, selector: Mapping[str, str], labels: Mapping[str, str]
) -> KubeObject:
    """A PodMonitor scraping the Istio sidecar of ``workload``'s pods (selected by ``selector``)."""
    return _object(
        "PodMonitor",
        f"{workload.name}-sidecar",
        namespace,
        labels,
        {
            "selector": {"matchLabels": dict(selector)},
            "podMetricsEndpoints": [
                {"port": SIDECAR_PORT_NAME, "path": SIDECAR_PATH, "interval": SCRAPE_INTERVAL}
            ],
        },
    )


def app_service_monitor(
    workload: Workload, namespace: str, selector: Mapping[str, str], labels: Mapping[str, str]
) -> KubeObject | None:
    """A ServiceMonitor on the workload's own metrics endpoint, when the catalog says it has one."""
    if workload.metrics_path is None:
        return None
    return _object(
        "ServiceMonitor",
        f"{workload.name}-app",
        namespace,
        labels,
        {
            "selector": {"matchLabels": dict(selector)},
            "endpoints": [
                {"port": HTTP_PORT_NAME, "path": workload.metrics_path, "interval": SCRAPE_INTERVAL}
            ],
        },
    )


def jaeger_service_monitor(labels: Mapping[str, str]) -> KubeObject:
    """Jaeger v2's own metrics (spans received, dropped, storage latency) on its Service."""
    return _object(
        "ServiceMonitor",
        "jaeger",
        tracing.NAMESPACE,
        labels,
        {
            "selector": {"matchLabels": dict(tracing.POD_LABELS)},
            "endpoints": [{"port": tracing.METRICS_PORT_NAME, "interval": SCRAPE_INTERVAL}],
        },
    )


def consul_pod_monitor(labels: Mapping[str, str]) -> KubeObject:
    """Consul servers' telemetry on ``/v1/agent/metrics?format=prometheus``.

    Needs ``global.metrics.enabled`` and ``global.metrics.enableAgentMetrics`` on the consul
    release (the registry's). With TLS the API is HTTPS only: the scrape verifies the servers with
    the chart's CA, under the name their certificate carries (pods are scraped by IP). With ACLs
    the endpoint needs ``agent:read``: the registry's Job makes that token, whose Secret lives
    beside this monitor (the operator reads Secrets from the monitor's namespace only).
    """
    return _object(
        "PodMonitor",
        "consul-server",
        registry.CONSUL_NAMESPACE,
        labels,
        {
            "selector": {"matchLabels": dict(registry.SERVER_POD_LABELS)},
            "podMetricsEndpoints": [
                {
                    "port": registry.CONSUL_HTTPS_PORT_NAME,
                    "scheme": "https",
                    "path": "/v1/agent/metrics",
                    "params": {"format": ["prometheus"]},
                    "interval": SCRAPE_INTERVAL,
                    "authorization": {
                        "type": "Bearer",
                        "credentials": {"name": registry.METRICS_TOKEN_SECRET, "key": registry.TOKEN_KEY},
                    },
                    "tlsConfig": {
                        "ca": {"secret": {"name": registry.CA_CERT_SECRET, "key": registry.CA_CERT_KEY}},
                        "serverName": registry.SERVER_HOST,
                    },
                }
            ],
        },
    )


def ingress_gateway_pod_monitor(
    namespace: str, selector: Mapping[str, str], labels: Mapping[str, str]
) -> KubeObject:
    """The Istio ingress gateway's Envoy stats (``http-envoy-prom``, ``/stats/prometheus``).

    The migration dashboard's edge series (``reporter="source"`` from the ``istio-ingress``
    namespace) come from these pods, which no sidecar monitor covers: the gateway is a standalone
    Envoy, not a workload of the app namespace. Lives beside the gateway pods (Prometheus selects
    PodMonitors in every namespace, see ``stack_values``).
    """
    return _object(
        "PodMonitor",
        "istio-ingressgateway",
        namespace,
        labels,
        {
            "selector": {"matchLabels": dict(selector)},
            "podMetricsEndpoints": [
                {"port": SIDECAR_PORT_NAME, "path": SIDECAR_PATH, "interval": SCRAPE_INTERVAL}
            ],
        },
    )


def scrape_ingress(workload: Workload) -> list[KubeObject]:
    """NetworkPolicy ingress letting Prometheus (monitoring namespace) reach what it scrapes."""
    ports = [SIDECAR_PORT] + ([workload.port] if workload.metrics_path else [])
    return [
        {
            "from": [{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: NAMESPACE}}}],
            "ports": [{"protocol": "TCP", "port": p} for p in ports],
        }
    ]


def stack_values(
    environment: str,
    retention: str,
    retention_size: str | None,
    volume_size: str,
    storage_class: str | None,
    grafana_admin_secret: str,
    dashboard_label: tuple[str, str],
) -> KubeObject:
    """Values for kube-prometheus-stack.

    The chart's Prometheus only selects monitors and rules carrying its own ``release`` label
    unless the ``*SelectorNilUsesHelmValues`` switches are off; they are off here, so the
    project's PodMonitors, ServiceMonitors and PrometheusRules in any namespace are picked up.
    Grafana's sidecar loads every ConfigMap labelled ``dashboard_label`` from any namespace.
    """
    claim: KubeObject = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": volume_size}},
    }
    if storage_class:
        claim["storageClassName"] = storage_class
    prometheus_spec: KubeObject = {
        "retention": retention,
        "externalLabels": {"environment": environment},
        "storageSpec": {"volumeClaimTemplate": {"spec": claim}},
        "serviceMonitorSelectorNilUsesHelmValues": False,
        "podMonitorSelectorNilUsesHelmValues": False,
        "ruleSelectorNilUsesHelmValues": False,
        "probeSelectorNilUsesHelmValues": False,
        "scrapeConfigSelectorNilUsesHelmValues": False,
    }
    if retention_size:
        prometheus_spec["retentionSize"] = retention_size
    label, value = dashboard_label
    return {
        "crds": {"enabled": True},
        "prometheus": {"prometheusSpec": prometheus_spec},
        "grafana": {
            "admin": {
                "existingSecret": grafana_admin_secret,
                "userKey": "admin-user",
                "passwordKey": "admin-password",
            },
            "ingress": {"enabled": False},
            "sidecar": {
                "dashboards": {
                    "enabled": True,
                    "label": label,
                    "labelValue": value,
                    "searchNamespace": "ALL",
                }
            },
        },
    }
