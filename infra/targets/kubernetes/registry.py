"""Consul as the service registry, from HashiCorp's official chart.

Catalog sync registers every Kubernetes Service of the workloads' namespace in Consul (one way:
Kubernetes -> Consul), with a health check that follows the pods' readiness, so no application
code registers anything. Consul's own service mesh (Connect) is off: Istio is the mesh. The UI
is a ClusterIP Service, reachable with ``kubectl port-forward`` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.options import child_opts, waits
from components.values import EnvVar
from infra.catalog import Workload
from infra.targets.kubernetes import helm
from infra.targets.kubernetes.extras import WorkloadExtras
from infra.targets.kubernetes.helm import Chart
from infra.targets.kubernetes.network import NAMESPACE_NAME_LABEL

TYPE = "vinylhound:registry:Registry"
CONSUL_REPOSITORY = "https://helm.releases.hashicorp.com"
CONSUL_CHART = Chart("consul", CONSUL_REPOSITORY)
CONSUL_NAMESPACE = "consul"
#: ``global.name``: the chart prefixes its objects with it (``consul-server``, ``consul-ui``).
CONSUL_NAME = "consul"
CONSUL_HTTP_PORT = 8500
#: Labels the chart puts on the server pods.
SERVER_POD_LABELS = {"app": CONSUL_NAME, "component": "server"}


def server_address() -> str:
    """The Consul servers' HTTP API (``host:port``), the value of ``SERVICE_REGISTRY``."""
    return f"{CONSUL_NAME}-server.{CONSUL_NAMESPACE}.svc.cluster.local:{CONSUL_HTTP_PORT}"


def consul_values(args: RegistryArgs) -> dict[str, Any]:
    """Values of the ``consul`` chart."""
    replicas = args.replicas
    return {
        "global": {
            "name": CONSUL_NAME,
            # Servers expose Prometheus metrics (the observability feature scrapes them).
            "metrics": {"enabled": True, "enableAgentMetrics": True},
        },
        "server": {
            "replicas": replicas,
            "bootstrapExpect": replicas,
            # No Connect CA on the servers: Istio is the mesh.
            "connect": False,
            "resources": {
                "requests": {"cpu": "100m", "memory": "200Mi"},
                "limits": {"cpu": "500m", "memory": "512Mi"},
            },
        },
        "client": {"enabled": False},
        # Istio is the mesh; and Consul must not install the Gateway API CRDs either.
        "connectInject": {"enabled": False, "apiGateway": {"manageExternalCRDs": False}},
        "ui": {"enabled": True, "service": {"enabled": True, "type": "ClusterIP"}},
        "syncCatalog": {
            "enabled": True,
            "default": True,
            "toConsul": True,
            "toK8S": False,
            "k8sAllowNamespaces": [args.namespace],
            # Register ``user-service``, not ``user-service-vinylhound``.
            "addK8SNamespaceSuffix": False,
        },
    }


def registry_env(workload: Workload) -> list[EnvVar]:
    """``SERVICE_REGISTRY`` for every workload that runs application code (not the static front end)."""
    if workload.role == "frontend":
        return []
    return [EnvVar("SERVICE_REGISTRY", server_address())]


def registry_egress(workload: Workload) -> list[dict[str, Any]]:
    """NetworkPolicy egress to the Consul servers' HTTP API for the workloads that get the address."""
    if workload.role == "frontend":
        return []
    return [
        {
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: CONSUL_NAMESPACE}},
                    "podSelector": {"matchLabels": dict(SERVER_POD_LABELS)},
                }
            ],
            "ports": [{"protocol": "TCP", "port": CONSUL_HTTP_PORT}],
        }
    ]


@dataclass(frozen=True)
class RegistryArgs:
    """``namespace``: the workloads' namespace, whose Services are synced into Consul;
    ``chart_version``: the pinned consul chart; ``replicas``: Consul servers (odd, a quorum)."""

    namespace: str
    chart_version: str
    replicas: int


class Registry(pulumi.ComponentResource):
    """Consul from its chart; ``extras`` gives every workload its address and a way to reach it."""

    release: k8s.helm.v3.Release
    extras: WorkloadExtras

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        self.release = helm.release(
            "consul",
            CONSUL_CHART,
            args.chart_version,
            CONSUL_NAMESPACE,
            consul_values(args),
            # The consul namespace is declared by the program (``ChartNamespaces``).
            child_opts(self, waits(opts), moved_from_root=True),
        )
        self.extras = WorkloadExtras(env=(registry_env,), egress=(registry_egress,))
        self.register_outputs({"address": server_address()})
