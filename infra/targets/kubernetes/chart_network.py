"""NetworkPolicies of the namespaces the platform's charts run in: Istio's control plane and CNI
agent (``istio-system``), the ingress gateway (``istio-ingress``) and the CloudNativePG operator
(``cnpg-system``), under each namespace's default deny. (Consul's are the registry's.)

Pod labels and ports are the charts' own: istiod's Deployment (``app: istiod``; 15010 plaintext
and 15012 mutual-TLS xDS, 15017 the injection and validation webhooks), the
istio-cni DaemonSet (``k8s-app: istio-cni-node``, not host-network in sidecar mode), the gateway
chart's pods (``istio: ingressgateway`` from the release name; listeners on the Gateway's ports
directly, the chart lowering ``ip_unprivileged_port_start``; 15021 the load balancer's health
check, 15090 Envoy's metrics), and cloudnative-pg 0.26.1 (``app.kubernetes.io/name:
cloudnative-pg``; 9443 its webhooks). The API server's calls to the webhooks come
from addresses no selector names: they are allowed from any address on the webhook port alone.

Pure functions: each returns ``{policy name: spec}`` for the platform to register.
"""

from __future__ import annotations

from collections.abc import Mapping

from components.kubernetes.specs import KubeObject
from infra.targets.kubernetes import network
from infra.targets.kubernetes.network import NAMESPACE_NAME_LABEL

ISTIOD = {"app": "istiod"}
ISTIO_CNI = {"k8s-app": "istio-cni-node"}
ISTIOD_XDS_PORTS = (15010, 15012)
ISTIOD_WEBHOOK_PORT = 15017
GATEWAY_LISTENER_PORTS = (80, 443)
GATEWAY_STATUS_PORT = 15021
ENVOY_METRICS_PORT = 15090
CNPG_WEBHOOK_PORT = 9443


def _namespace(name: str) -> KubeObject:
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: name}}}


def _from_api_server(port: int) -> KubeObject:
    return {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": network.tcp(port)}


def istio_system_policies() -> dict[str, KubeObject]:
    """istiod: xDS and certificates from every pod of the cluster (sidecars and gateways), its
    webhooks from the API server; out to DNS and the API server. The CNI agent: nothing in; out to
    DNS and the API server (it watches pods to repair them). No monitor scrapes either (15014)."""
    return {
        "istiod": network.isolated(
            ISTIOD,
            ingress=[
                {"from": [{"namespaceSelector": {}}], "ports": network.tcp(*ISTIOD_XDS_PORTS)},
                _from_api_server(ISTIOD_WEBHOOK_PORT),
            ],
            egress=[network.dns_rule(), network.api_server_egress()],
        ),
        "istio-cni": network.isolated(
            ISTIO_CNI, ingress=[], egress=[network.dns_rule(), network.api_server_egress()]
        ),
    }


def ingress_gateway_policies(
    selector: Mapping[str, str],
    app_namespace: str,
    monitoring_namespace: str,
    extra_egress: list[KubeObject],
) -> dict[str, KubeObject]:
    """The edge: its listeners and health check from anywhere (clients, the load balancer), its
    metrics to Prometheus; out to DNS, istiod, the workloads' namespace (the mesh; each workload's
    own policy says which ports) and ``extra_egress`` (the tracing collector)."""
    return {
        "ingress-gateway": network.isolated(
            selector,
            ingress=[
                {"ports": network.tcp(*GATEWAY_LISTENER_PORTS, GATEWAY_STATUS_PORT)},
                {"from": [_namespace(monitoring_namespace)], "ports": network.tcp(ENVOY_METRICS_PORT)},
            ],
            egress=[
                network.dns_rule(),
                {
                    "to": [{**_namespace("istio-system"), "podSelector": {"matchLabels": dict(ISTIOD)}}],
                    "ports": network.tcp(*ISTIOD_XDS_PORTS[1:]),
                },
                {"to": [_namespace(app_namespace)]},
                *extra_egress,
            ],
        )
    }


def cnpg_operator_policies(operator: Mapping[str, str], app_namespace: str) -> dict[str, KubeObject]:
    """The CloudNativePG operator: its webhooks from the API server; out to DNS, the API server and
    the instances it manages (PostgreSQL and the instance manager's status port), as
    CloudNativePG's networking page lists. No monitor scrapes it (its chart's PodMonitor is off)."""
    instances: KubeObject = {
        **_namespace(app_namespace),
        "podSelector": {"matchExpressions": [{"key": network.CNPG_CLUSTER_LABEL, "operator": "Exists"}]},
    }
    return {
        "cnpg-operator": network.isolated(
            operator,
            ingress=[
                _from_api_server(CNPG_WEBHOOK_PORT),
            ],
            egress=[
                network.dns_rule(),
                network.api_server_egress(),
                {
                    "to": [instances],
                    "ports": network.tcp(network.POSTGRES_PORT, network.INSTANCE_MANAGER_PORT),
                },
            ],
        )
    }
