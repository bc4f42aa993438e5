"""The Istio mesh on the cluster: the charts, the edge, mTLS and each workload's traffic policy.

Order on an empty cluster: ``base`` (CRDs) -> ``istiod`` (control plane, sidecar injector) ->
the ``gateway`` chart (ingress pods). Every Istio custom resource depends on ``base``; every
workload waits for ``istiod`` so its pods are created after the injector exists and get a
sidecar. The VirtualServices (``deploy_routes``) are declared after the databases: where writes
go follows each service's migration phase, so they wait for the Job that moves its tables.

Tracing is not configured here: the observability feature passes its mesh settings (e.g.
``extensionProviders``) as ``extra_mesh_config``, merged into istiod's ``meshConfig``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import labels
from components.kubernetes import istio
from components.kubernetes.custom_resource import custom_resource
from components.kubernetes.istio import BreakerSpec
from components.kubernetes.service_traffic import ServiceTraffic, ServiceTrafficArgs
from components.labels import LabelContext
from infra import catalog, traffic
from infra.catalog import Workload
from infra.config import MIN_REPLICAS, PlatformConfig
from infra.network import NAMESPACE_NAME_LABEL
from infra.targets.kubernetes import helm
from infra.targets.kubernetes.extras import WorkloadExtras
from infra.targets.kubernetes.helm import Chart

ISTIO_REPOSITORY = "https://istio-release.storage.googleapis.com/charts"
ISTIO_BASE = Chart("base", ISTIO_REPOSITORY)
ISTIOD = Chart("istiod", ISTIO_REPOSITORY)
ISTIO_GATEWAY = Chart("gateway", ISTIO_REPOSITORY)
ISTIO_NAMESPACE = "istio-system"
#: The port sidecars reach istiod on for configuration (xDS) and certificates. (15017 is the
#: injection webhook, called by the API server, never by pods.)
ISTIOD_XDS_PORT = 15012


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged in; nested mappings merge, anything else from ``extra`` wins."""
    merged = dict(base)
    for key, value in extra.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def istiod_values(cfg: PlatformConfig, extra_mesh_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Values of the ``istiod`` chart. ``extra_mesh_config`` is merged into ``meshConfig``; it is
    how other features (tracing) add mesh settings without editing this module."""
    mesh = {
        "accessLogFile": "/dev/stdout",
        "accessLogEncoding": "JSON",
        # Merge app and sidecar metrics on :15020 so one scrape per pod covers both.
        "enablePrometheusMerge": True,
        # The app starts only once its sidecar is ready: no failed first connections to the
        # database or the registry while the proxy is still starting.
        "defaultConfig": {"holdApplicationUntilProxyStarts": True},
    }
    small = cfg.environment == "dev"
    return {
        "autoscaleMin": MIN_REPLICAS[cfg.environment],
        "autoscaleMax": 5,
        "resources": {
            "requests": {"cpu": "100m" if small else "500m", "memory": "512Mi" if small else "2Gi"}
        },
        "meshConfig": deep_merge(mesh, extra_mesh_config or {}),
        "global": {
            "istioNamespace": ISTIO_NAMESPACE,
            "logAsJson": True,
            "proxy": {
                "resources": {
                    "requests": {"cpu": "50m", "memory": "64Mi"},
                    "limits": {"cpu": "1", "memory": "256Mi"},
                }
            },
        },
    }


def gateway_values(cfg: PlatformConfig) -> dict[str, Any]:
    """Values of the ``gateway`` chart: the ingress gateway behind a LoadBalancer Service."""
    replicas = MIN_REPLICAS[cfg.environment]
    values: dict[str, Any] = {
        "service": {"type": "LoadBalancer"},
        "autoscaling": {"enabled": True, "minReplicas": replicas, "maxReplicas": max(replicas, 5)},
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "2", "memory": "1Gi"},
        },
    }
    if replicas > 1:
        values["podDisruptionBudget"] = {"maxUnavailable": 1}
    return values


def sidecar_egress(_: Workload) -> list[dict[str, Any]]:
    """Every pod's sidecar fetches configuration and certificates from istiod."""
    return [
        {
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: ISTIO_NAMESPACE}},
                    "podSelector": {"matchLabels": {"app": "istiod"}},
                }
            ],
            "ports": [{"protocol": "TCP", "port": ISTIOD_XDS_PORT}],
        }
    ]


def _pods(name: str) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": {labels.NAME: name}}}


def routed_ingress(cfg: PlatformConfig) -> Any:
    """NetworkPolicy ingress for callers the mesh may route to a workload (not listed by the
    catalog as its callers: the catalog's own are already allowed by ``infra.network``)."""

    def contribute(workload: Workload) -> list[dict[str, Any]]:
        routed = traffic.callers(workload, cfg).routed
        if not routed:
            return []
        return [{"from": [_pods(c) for c in routed], "ports": [{"protocol": "TCP", "port": workload.port}]}]

    return contribute


def routed_egress(cfg: PlatformConfig) -> Any:
    """NetworkPolicy egress to every workload the mesh may route a caller's requests to."""

    def contribute(workload: Workload) -> list[dict[str, Any]]:
        targets = [w for w, _ in cfg.enabled() if workload.name in traffic.callers(w, cfg).routed]
        return [{"to": [_pods(t.name)], "ports": [{"protocol": "TCP", "port": t.port}]} for t in targets]

    return contribute


@dataclass(frozen=True)
class Mesh:
    """What the mesh installed: its releases (for ``depends_on``) and the edge objects."""

    base: k8s.helm.v3.Release
    istiod: k8s.helm.v3.Release
    gateway: k8s.helm.v3.Release
    #: The workloads' namespace, which the namespaced Istio objects wait for.
    namespace: pulumi.Resource


def deploy_mesh(
    cfg: PlatformConfig,
    context: LabelContext,
    extras: WorkloadExtras,
    namespace: pulumi.Resource,
    extra_mesh_config: Mapping[str, Any] | None = None,
) -> Mesh:
    """Install Istio, declare the edge Gateway, mTLS and per-workload traffic policy; register what
    every workload needs (istiod egress, mesh-routed callers, waiting for the injector) in ``extras``.

    The routes (VirtualServices) come later, from ``deploy_routes``: they wait for the migration
    Jobs. ``namespace`` is the workloads' namespace, which the namespaced Istio objects wait for.
    """
    version = cfg.charts.istio
    base = helm.release(
        "istio-base",
        ISTIO_BASE,
        version,
        ISTIO_NAMESPACE,
        {"defaultRevision": "default"},
        create_namespace=True,
    )
    istiod = helm.release(
        "istiod",
        ISTIOD,
        version,
        ISTIO_NAMESPACE,
        istiod_values(cfg, extra_mesh_config),
        pulumi.ResourceOptions(depends_on=[base]),
        create_namespace=True,
    )
    gateway = helm.release(
        traffic.INGRESS_RELEASE,
        ISTIO_GATEWAY,
        version,
        traffic.INGRESS_NAMESPACE,
        gateway_values(cfg),
        pulumi.ResourceOptions(depends_on=[istiod]),
        create_namespace=True,
    )
    _edge_gateway(cfg, context, base, gateway)
    _mesh_policy(cfg, context, [namespace, base])

    extras.egress.append(sidecar_egress)
    extras.ingress.append(routed_ingress(cfg))
    extras.egress.append(routed_egress(cfg))
    extras.depends_on.append(istiod)
    return Mesh(base=base, istiod=istiod, gateway=gateway, namespace=namespace)


def _edge_gateway(
    cfg: PlatformConfig,
    context: LabelContext,
    base: k8s.helm.v3.Release,
    gateway: k8s.helm.v3.Release,
) -> None:
    edge = cfg.traffic.edge
    custom_resource(
        "edge-gateway",
        {
            "apiVersion": istio.NETWORKING,
            "kind": "Gateway",
            # Beside the gateway pods: they read the TLS secret from their own namespace.
            "metadata": {
                "name": traffic.EDGE_GATEWAY,
                "namespace": traffic.INGRESS_NAMESPACE,
                "labels": context.common(),
            },
            # ``namespace/host``: only VirtualServices in the workloads' namespace may bind the domain.
            "spec": istio.gateway_spec(
                traffic.INGRESS_SELECTOR,
                [f"{cfg.namespace}/{cfg.domain}"],
                edge.tls_secret,
                edge.allow_plain_http,
            ),
        },
        pulumi.ResourceOptions(depends_on=[base, gateway]),
    )


def deploy_routes(
    cfg: PlatformConfig,
    context: LabelContext,
    mesh: Mesh,
    write_route_gates: Mapping[str, pulumi.Resource],
) -> None:
    """The edge VirtualService and, with the api-gateway, the mesh VirtualServices.

    ``write_route_gates``: per service at ``cut-over`` or ``rolled-back``, the migration Job that
    moves its tables. Every VirtualService whose routes carry the write routes (the edge without
    the api-gateway, each mesh VirtualService with it) depends on all of them, so ``pulumi up``
    changes where writes go only after the Jobs have completed (and not at all if one fails).
    """
    installed: list[pulumi.Resource] = [mesh.namespace, mesh.base]
    gates = [write_route_gates[name] for name in sorted(write_route_gates)]
    edge_after = installed if traffic.gateway_mode(cfg) else [*installed, *gates]
    custom_resource(
        "edge-routes",
        {
            "apiVersion": istio.NETWORKING,
            "kind": "VirtualService",
            "metadata": {"name": "edge", "namespace": cfg.namespace, "labels": context.common()},
            "spec": istio.virtual_service_spec(
                [cfg.domain],
                [f"{traffic.INGRESS_NAMESPACE}/{traffic.EDGE_GATEWAY}"],
                traffic.edge_routes(cfg),
            ),
        },
        pulumi.ResourceOptions(depends_on=edge_after),
    )
    for service in traffic.mesh_routed_hosts(cfg):
        custom_resource(
            f"{service}-mesh-routes",
            {
                "apiVersion": istio.NETWORKING,
                "kind": "VirtualService",
                "metadata": {
                    "name": f"{service}-routes",
                    "namespace": cfg.namespace,
                    "labels": context.common(),
                },
                "spec": istio.virtual_service_spec(
                    [traffic.host(catalog.workload(service), cfg.namespace)],
                    ["mesh"],
                    traffic.mesh_routes(cfg, service),
                ),
            },
            pulumi.ResourceOptions(depends_on=[*installed, *gates]),
        )


def _mesh_policy(cfg: PlatformConfig, context: LabelContext, requires: list[pulumi.Resource]) -> None:
    custom_resource(
        "mesh-mtls",
        {
            "apiVersion": istio.SECURITY,
            "kind": "PeerAuthentication",
            "metadata": {"name": "default", "namespace": cfg.namespace, "labels": context.common()},
            "spec": istio.peer_authentication_spec(cfg.traffic.mtls),
        },
        pulumi.ResourceOptions(depends_on=requires),
    )
    for workload, _ in cfg.enabled():
        b = cfg.traffic.breaker(workload.name)
        ServiceTraffic(
            f"{workload.name}-traffic",
            ServiceTrafficArgs(
                name=workload.name,
                namespace=cfg.namespace,
                host=traffic.host(workload, cfg.namespace),
                port=workload.port,
                selector=context.selector(workload.name),
                principals=traffic.allowed_principals(workload, cfg),
                labels=context.common(),
                breaker=BreakerSpec(
                    consecutive_5xx_errors=b.consecutive_5xx_errors,
                    interval=b.interval,
                    base_ejection_time=b.base_ejection_time,
                    max_ejection_percent=b.max_ejection_percent,
                    max_connections=b.max_connections,
                    max_pending_requests=b.max_pending_requests,
                    max_requests=b.max_requests,
                    connect_timeout=b.connect_timeout,
                ),
                requires=requires,
            ),
        )
