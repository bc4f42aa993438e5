"""NetworkPolicies of the monitoring and observability namespaces, under their default deny.

The pod labels and ports are the pinned charts' own (kube-prometheus-stack 79.5.0 with its
kube-state-metrics, prometheus-node-exporter and grafana subcharts; jaeger 4.x, whose all-in-one
Deployment and Service are unchanged from 4.11 on): read from their templates, not guessed.

What NetworkPolicy cannot express, and what that means here:
- The API server has no pod and no address the program knows: its webhook calls (to the
  Prometheus Operator) and the pods' calls to it are allowed on its ports from and to any address,
  as in the workloads' namespace (``network.API_AND_OBJECT_STORE_PORTS``).
- node-exporter runs with ``hostNetwork``: NetworkPolicy does not apply to host-network pods
  (their traffic is the node's), so no policy here selects or protects it; Prometheus reaches it,
  like the kubelets and the control plane's metrics endpoints, on node addresses.
- The kubelet's probes and ``kubectl port-forward`` (how the Grafana, Prometheus and Jaeger UIs
  are reached: nothing exposes them) come from the node, which NetworkPolicy always allows.

Pure functions: each returns ``{policy name: spec}`` for the component to register.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from components.kubernetes.istio import METRICS_PORTS as SIDECAR_METRICS_PORTS
from components.kubernetes.specs import KubeObject
from infra import events
from infra.config import TraceStorage
from infra.targets.kubernetes import network
from infra.targets.kubernetes.network import NAMESPACE_NAME_LABEL
from infra.targets.kubernetes.observability import tracing
from infra.targets.kubernetes.registry import CONSUL_HTTPS_PORT

_NAME = "app.kubernetes.io/name"
#: Prometheus and Alertmanager pods as the Prometheus Operator labels them (the chart's own
#: NetworkPolicies select them so); the other pods by their charts' selector labels.
PROMETHEUS = {_NAME: "prometheus"}
ALERTMANAGER = {_NAME: "alertmanager"}
GRAFANA = {_NAME: "grafana"}
KUBE_STATE_METRICS = {_NAME: "kube-state-metrics"}
#: ``kube-prometheus-stack.prometheus-operator.labels``: the operator's pods (it serves the
#: admission webhook itself: ``admissionWebhooks.deployment.enabled`` is false by default).
OPERATOR = {"app": "kube-prometheus-stack-operator"}
#: ``kube-prometheus-stack.prometheus-operator-webhook.labels``: the pre-install/upgrade hook Jobs
#: that create the webhook's certificate and patch it into the webhook configurations.
WEBHOOK_JOBS = {"app.kubernetes.io/component": "prometheus-operator-webhook"}

PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
ALERTMANAGER_CLUSTER_PORT = 9094
#: The config-reloader sidecar's metrics (Prometheus and Alertmanager pods).
RELOADER_PORT = 8080
GRAFANA_PORT = 3000
KUBE_STATE_METRICS_PORT = 8080
#: ``prometheusOperator.tls.internalPort``: webhook and metrics, HTTPS.
OPERATOR_PORT = 10250
#: What Prometheus scrapes in pods anywhere in the cluster: Envoy sidecars and gateways, the
#: databases' exporter, Jaeger, the Consul servers, the NATS exporter, CoreDNS.
CLUSTER_SCRAPE_PORTS = (
    *SIDECAR_METRICS_PORTS,
    network.POSTGRES_METRICS_PORT,
    tracing.METRICS_PORT,
    CONSUL_HTTPS_PORT,
    events.METRICS_PORT,
    9153,
)
#: What Prometheus scrapes on node addresses (the chart's default ServiceMonitors): kubelet and
#: cAdvisor, node-exporter, kube-controller-manager, kube-scheduler, etcd, kube-proxy, and the
#: API server itself.
NODE_SCRAPE_PORTS = (10250, 9100, 10257, 10259, 2381, 10249, *network.API_AND_OBJECT_STORE_PORTS)


def _pods(labels: Mapping[str, str]) -> KubeObject:
    return {"podSelector": {"matchLabels": dict(labels)}}


def _anywhere(ports: Iterable[int]) -> KubeObject:
    return {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": network.tcp(*ports)}


def monitoring_policies(app_metrics_ports: Sequence[int] = ()) -> dict[str, KubeObject]:
    """The kube-prometheus-stack's paths. ``app_metrics_ports``: the workloads' own ports that
    a ServiceMonitor scrapes (catalog ``metrics_path``), besides their sidecars."""
    everywhere: KubeObject = {"namespaceSelector": {}}
    scrape_anywhere = sorted({*CLUSTER_SCRAPE_PORTS, *app_metrics_ports})
    return {
        "prometheus": network.isolated(
            PROMETHEUS,
            ingress=[
                {"from": [_pods(GRAFANA)], "ports": network.tcp(PROMETHEUS_PORT)},
                {"from": [_pods(PROMETHEUS)], "ports": network.tcp(PROMETHEUS_PORT, RELOADER_PORT)},
            ],
            egress=[
                network.dns_rule(),
                {"to": [everywhere], "ports": network.tcp(*scrape_anywhere)},
                {
                    "to": [
                        _pods(PROMETHEUS),
                        _pods(ALERTMANAGER),
                        _pods(GRAFANA),
                        _pods(KUBE_STATE_METRICS),
                        _pods(OPERATOR),
                    ],
                    "ports": network.tcp(
                        PROMETHEUS_PORT,
                        ALERTMANAGER_PORT,
                        RELOADER_PORT,
                        GRAFANA_PORT,
                        KUBE_STATE_METRICS_PORT,
                        OPERATOR_PORT,
                    ),
                },
                _anywhere(NODE_SCRAPE_PORTS),
            ],
        ),
        "alertmanager": network.isolated(
            ALERTMANAGER,
            ingress=[
                {"from": [_pods(PROMETHEUS)], "ports": network.tcp(ALERTMANAGER_PORT, RELOADER_PORT)},
                {"from": [_pods(GRAFANA)], "ports": network.tcp(ALERTMANAGER_PORT)},
                _gossip("from"),
            ],
            # No receiver is configured (the chart's default routes to "null"): adding one
            # (Slack, PagerDuty: HTTPS) needs an egress rule here.
            egress=[network.dns_rule(), _gossip("to")],
        ),
        "grafana": network.isolated(
            GRAFANA,
            ingress=[{"from": [_pods(PROMETHEUS)], "ports": network.tcp(GRAFANA_PORT)}],
            # Its data sources, and the API server for the dashboard sidecar's ConfigMap watch.
            egress=[
                network.dns_rule(),
                {"to": [_pods(PROMETHEUS)], "ports": network.tcp(PROMETHEUS_PORT)},
                {"to": [_pods(ALERTMANAGER)], "ports": network.tcp(ALERTMANAGER_PORT)},
                network.api_server_egress(),
            ],
        ),
        "prometheus-operator": network.isolated(
            OPERATOR,
            ingress=[
                # The admission webhook, called by the API server from an address no selector names.
                {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": network.tcp(OPERATOR_PORT)},
                {"from": [_pods(PROMETHEUS)], "ports": network.tcp(OPERATOR_PORT)},
            ],
            egress=[network.dns_rule(), network.api_server_egress()],
        ),
        "operator-webhook-jobs": network.isolated(
            WEBHOOK_JOBS, ingress=[], egress=[network.dns_rule(), network.api_server_egress()]
        ),
        "kube-state-metrics": network.isolated(
            KUBE_STATE_METRICS,
            ingress=[{"from": [_pods(PROMETHEUS)], "ports": network.tcp(KUBE_STATE_METRICS_PORT)}],
            egress=[network.dns_rule(), network.api_server_egress()],
        ),
    }


def _gossip(direction: str) -> KubeObject:
    """Alertmanager replicas gossip with each other over TCP and UDP."""
    port = ALERTMANAGER_CLUSTER_PORT
    return {
        direction: [_pods(ALERTMANAGER)],
        "ports": [{"protocol": "TCP", "port": port}, {"protocol": "UDP", "port": port}],
    }


def _storage_ports(storage: TraceStorage) -> list[int]:
    """The ports of an Elasticsearch/OpenSearch backend's URLs (the scheme's when a URL names none)."""
    return sorted(
        {urlsplit(u).port or (443 if urlsplit(u).scheme == "https" else 80) for u in storage.server_urls}
    )


def tracing_policies(storage: TraceStorage, monitoring_namespace: str) -> dict[str, KubeObject]:
    """Jaeger's paths: spans over OTLP (gRPC and HTTP) from any pod of the cluster (every sidecar
    and gateway reports, and any workload that adds an SDK), its metrics to Prometheus; out only to
    DNS and, for a remote backend, its storage. The Jaeger config enables no Zipkin receiver, so
    9411 stays closed; the query UI (16686) is reached by port-forward only."""
    egress = [network.dns_rule()]
    if storage.server_urls:
        # The cluster's own or a managed search service: its address is the stack's to choose.
        egress.append({"ports": network.tcp(*_storage_ports(storage))})
    return {
        "jaeger": network.isolated(
            tracing.POD_LABELS,
            ingress=[
                {
                    "from": [{"namespaceSelector": {}}],
                    "ports": network.tcp(tracing.OTLP_GRPC_PORT, tracing.OTLP_HTTP_PORT),
                },
                {
                    "from": [
                        {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: monitoring_namespace}}}
                    ],
                    "ports": network.tcp(tracing.METRICS_PORT),
                },
            ],
            egress=egress,
        )
    }
