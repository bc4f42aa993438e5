"""The Istio mesh on the cluster: the edge, mTLS and each workload's traffic policy (``Mesh``),
and the values of the Istio charts (installed by ``platform.Platform``).

Order on an empty cluster: ``base`` (CRDs) -> ``istiod`` (control plane, sidecar injector) ->
the ``gateway`` chart (ingress pods). Every Istio custom resource depends on ``base``; every
workload waits for ``istiod`` so its pods are created after the injector exists and get a
sidecar. The VirtualServices wait for the Jobs that move each service's tables: where writes go
follows each service's migration phase, so ``Mesh`` takes the databases' write-route gates.

Tracing is not configured here: the observability feature passes its mesh settings (e.g.
``extensionProviders``) as ``extra_mesh_config``, merged into istiod's ``meshConfig``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi

from components import labels
from components.kubernetes import istio
from components.kubernetes.custom_resource import custom_resource
from components.kubernetes.istio import BreakerSpec
from components.kubernetes.service_traffic import ServiceTraffic, ServiceTrafficArgs
from components.kubernetes.specs import KubeObject, ResourceSpec
from components.labels import LabelContext
from components.options import child_opts
from infra import catalog
from infra.catalog import Workload
from infra.config import MIN_REPLICAS, PlatformConfig
from infra.targets.kubernetes import traffic
from infra.targets.kubernetes.extras import WorkloadExtras
from infra.targets.kubernetes.helm import Chart
from infra.targets.kubernetes.network import NAMESPACE_NAME_LABEL

TYPE = "vinylhound:mesh:Mesh"
ISTIO_REPOSITORY = "https://istio-release.storage.googleapis.com/charts"
ISTIO_BASE = Chart("base", ISTIO_REPOSITORY)
ISTIOD = Chart("istiod", ISTIO_REPOSITORY)
ISTIO_GATEWAY = Chart("gateway", ISTIO_REPOSITORY)
ISTIO_CNI = Chart("cni", ISTIO_REPOSITORY)
ISTIO_NAMESPACE = "istio-system"
#: Every injected sidecar's container (the injector copies ``global.proxy.resources``). Its
#: ephemeral storage equals the app namespace's LimitRange default, so the quota counts the same
#: whether the injector passes it through or the LimitRange fills it in.
PROXY_RESOURCES = ResourceSpec("50m", "64Mi", "1", "256Mi")
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
        # Traffic redirection by the CNI plugin (the istio-cni release), not by a privileged init
        # container: injected pods then pass the "restricted" Pod Security Standard.
        "cni": {"enabled": True},
        "global": {
            "istioNamespace": ISTIO_NAMESPACE,
            "logAsJson": True,
            "proxy": {
                "resources": PROXY_RESOURCES.to_kube(),
            },
        },
    }


def gateway_values(cfg: PlatformConfig) -> dict[str, Any]:
    """Values of the ``gateway`` chart: the ingress gateway behind a LoadBalancer Service."""
    replicas = MIN_REPLICAS[cfg.environment]
    values: dict[str, Any] = {
        "service": {"type": "LoadBalancer"},
        "autoscaling": {"enabled": True, "minReplicas": replicas, "maxReplicas": max(replicas, 5)},
        # Envoy writes only its logs (stdout) to disk: the program's default ephemeral storage.
        "resources": ResourceSpec("100m", "128Mi", "2", "1Gi").to_kube(),
        # The chart's default pod security context is only the sysctl that lets Envoy bind 80
        # and 443 unprivileged; with the seccomp profile added, the gateway's pods (non-root, all
        # capabilities dropped, read-only root: the chart's container defaults) pass the
        # "restricted" level istio-ingress enforces. Setting the field replaces the chart's
        # default, so the sysctl is repeated.
        "securityContext": {
            "seccompProfile": {"type": "RuntimeDefault"},
            "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}],
        },
    }
    if replicas > 1:
        values["podDisruptionBudget"] = {"maxUnavailable": 1}
    return values


def istiod_egress() -> dict[str, Any]:
    """The egress rule a sidecar needs: istiod's configuration and certificate port."""
    return {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: ISTIO_NAMESPACE}},
                "podSelector": {"matchLabels": {"app": "istiod"}},
            }
        ],
        "ports": [{"protocol": "TCP", "port": ISTIOD_XDS_PORT}],
    }


def sidecar_egress(_: Workload) -> list[dict[str, Any]]:
    """Every pod's sidecar fetches configuration and certificates from istiod."""
    return [istiod_egress()]


def _pods(name: str) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": {labels.NAME: name}}}


def routed_ingress(cfg: PlatformConfig) -> Any:
    """NetworkPolicy ingress for callers the mesh may route to a workload (not listed by the
    catalog as its callers: the catalog's own are already allowed by ``network``)."""

    def contribute(workload: Workload) -> list[dict[str, Any]]:
        routed = traffic.callers(workload, cfg).routed
        if not routed:
            return []
        return [{"from": [_pods(c) for c in routed], "ports": [{"protocol": "TCP", "port": workload.port}]}]

    return contribute


def routed_egress(cfg: PlatformConfig) -> Any:
    """NetworkPolicy egress to every workload the mesh may route a caller's requests to."""

    def contribute(workload: Workload) -> list[dict[str, Any]]:
        targets = traffic.routed_targets(workload, cfg)
        return [{"to": [_pods(t.name)], "ports": [{"protocol": "TCP", "port": t.port}]} for t in targets]

    return contribute


def mesh_extras(cfg: PlatformConfig) -> WorkloadExtras:
    """What the mesh adds to every workload: NetworkPolicy exceptions for the callers it may route
    to a workload. Pure, so the workloads can be declared before the routes that wait for them."""
    return WorkloadExtras(ingress=(routed_ingress(cfg),), egress=(routed_egress(cfg),))


@dataclass(frozen=True)
class MeshArgs:
    """What the mesh registers and waits for (``mesh_args`` builds it).

    ``app_namespace``: the workloads' namespace, ``namespace`` the resource that creates it;
    ``crds``: the release that installs Istio's CRDs (both from ``Platform``); ``gateway``: the
    ingress gateway release, which the edge ``Gateway`` waits for. ``edge_gateway``,
    ``edge_routes``, ``mtls``: the specs of the edge Gateway, the edge VirtualService and the
    namespace's PeerAuthentication; ``edge_carries_writes``: whether the edge's routes move
    endpoints (no api-gateway), so it waits for the gates. ``mesh_routes``: per workload whose
    host the mesh routes (with the api-gateway), its VirtualService spec. ``traffic``: each
    workload's traffic policy. ``write_route_gates``: per service at ``cut-over`` or
    ``rolled-back``, the migration Job that moves its tables (``Databases.write_route_gates``).
    ``read_route_gates``: per service whose endpoints take live reads, its contract-check Job
    (``ContractGate.read_route_gates``).
    """

    app_namespace: str
    context: LabelContext
    namespace: pulumi.Resource
    crds: pulumi.Resource
    gateway: pulumi.Resource
    edge_gateway: KubeObject
    edge_routes: KubeObject
    edge_carries_writes: bool
    mesh_routes: Mapping[str, KubeObject]
    mtls: KubeObject
    traffic: Sequence[ServiceTrafficArgs]
    write_route_gates: Mapping[str, pulumi.Resource]
    read_route_gates: Mapping[str, pulumi.Resource] = field(default_factory=dict)


def _traffic_args(cfg: PlatformConfig, context: LabelContext, workload: Workload) -> ServiceTrafficArgs:
    b = cfg.traffic.breaker(workload.name)
    return ServiceTrafficArgs(
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
    )


def mesh_args(
    cfg: PlatformConfig,
    context: LabelContext,
    namespace: pulumi.Resource,
    crds: pulumi.Resource,
    gateway: pulumi.Resource,
    write_route_gates: Mapping[str, pulumi.Resource],
    read_route_gates: Mapping[str, pulumi.Resource] | None = None,
) -> MeshArgs:
    """The mesh's args from the stack's config: the route tables are decided here
    (``traffic``), the component registers them."""
    edge = cfg.traffic.edge
    return MeshArgs(
        app_namespace=cfg.namespace,
        context=context,
        namespace=namespace,
        crds=crds,
        gateway=gateway,
        # ``namespace/host``: only VirtualServices in the workloads' namespace may bind the domain.
        edge_gateway=istio.gateway_spec(
            traffic.INGRESS_SELECTOR,
            [f"{cfg.namespace}/{cfg.domain}"],
            edge.tls_secret,
            edge.allow_plain_http,
        ),
        edge_routes=istio.virtual_service_spec(
            [cfg.domain],
            [f"{traffic.INGRESS_NAMESPACE}/{traffic.EDGE_GATEWAY}"],
            traffic.edge_routes(cfg),
        ),
        edge_carries_writes=not traffic.gateway_mode(cfg),
        mesh_routes={
            service: istio.virtual_service_spec(
                [traffic.host(catalog.workload(service), cfg.namespace)],
                ["mesh"],
                traffic.mesh_routes(cfg, service),
            )
            for service in traffic.mesh_routed_hosts(cfg)
        },
        mtls=istio.peer_authentication_spec(cfg.traffic.mtls),
        traffic=tuple(_traffic_args(cfg, context, w) for w, _ in cfg.enabled()),
        write_route_gates=write_route_gates,
        read_route_gates=read_route_gates or {},
    )


class Mesh(pulumi.ComponentResource):
    """The edge (Gateway, VirtualServices), mTLS, and each workload's traffic policy.

    Every VirtualService whose routes carry the write routes (the edge without the api-gateway,
    each mesh VirtualService with it) depends on every write-route gate, so ``pulumi up`` changes
    where writes go only after the Jobs have completed (and not at all if one fails). The same
    VirtualServices carry the endpoint routes that move reads, and wait for every contract-check Job
    (``read_route_gates``) the same way: a service that answers unlike the monolith moves nothing.
    What the mesh adds to the workloads (``mesh_extras``) is pure, so they are declared before it.
    """

    def __init__(self, name: str, args: MeshArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        self._prefix = name
        self._edge_gateway(args)
        self._mesh_policy(args)
        self._routes(args)
        self.register_outputs({})

    def _named(self, role: str) -> str:
        return f"{self._prefix}-{role}"

    def _after(self, role: str, *after: pulumi.Resource, history: bool = True) -> pulumi.ResourceOptions:
        """Options of the child that was called ``role`` before it was named after the mesh
        (unless it has no ``history``: declared since, for a workload added since)."""
        if not history:
            return child_opts(self, after)
        return child_opts(self, after, moved_from_root=True, renamed_from=role)

    def _edge_gateway(self, args: MeshArgs) -> None:
        custom_resource(
            self._named("edge-gateway"),
            {
                "apiVersion": istio.NETWORKING,
                "kind": "Gateway",
                # Beside the gateway pods: they read the TLS secret from their own namespace.
                "metadata": {
                    "name": traffic.EDGE_GATEWAY,
                    "namespace": traffic.INGRESS_NAMESPACE,
                    "labels": args.context.common(),
                },
                "spec": args.edge_gateway,
            },
            self._after("edge-gateway", args.crds, args.gateway),
        )

    def _routes(self, args: MeshArgs) -> None:
        """The edge VirtualService and, with the api-gateway, the mesh VirtualServices."""
        ns, common = args.app_namespace, args.context.common()
        installed = [args.namespace, args.crds]
        gates = [args.write_route_gates[name] for name in sorted(args.write_route_gates)]
        gates += [args.read_route_gates[name] for name in sorted(args.read_route_gates)]
        edge_after = [*installed, *gates] if args.edge_carries_writes else installed
        custom_resource(
            self._named("edge-routes"),
            {
                "apiVersion": istio.NETWORKING,
                "kind": "VirtualService",
                "metadata": {"name": "edge", "namespace": ns, "labels": common},
                "spec": args.edge_routes,
            },
            self._after("edge-routes", *edge_after),
        )
        for service, spec in args.mesh_routes.items():
            custom_resource(
                self._named(f"{service}-mesh-routes"),
                {
                    "apiVersion": istio.NETWORKING,
                    "kind": "VirtualService",
                    "metadata": {"name": f"{service}-routes", "namespace": ns, "labels": common},
                    "spec": spec,
                },
                self._after(
                    f"{service}-mesh-routes",
                    *installed,
                    *gates,
                    history=catalog.predates_components(service),
                ),
            )

    def _mesh_policy(self, args: MeshArgs) -> None:
        requires = [args.namespace, args.crds]
        custom_resource(
            self._named("mtls"),
            {
                "apiVersion": istio.SECURITY,
                "kind": "PeerAuthentication",
                "metadata": {
                    "name": "default",
                    "namespace": args.app_namespace,
                    "labels": args.context.common(),
                },
                "spec": args.mtls,
            },
            # Named ``<mesh>-mtls`` already: only the parent moved.
            child_opts(self, requires, moved_from_root=True),
        )
        for traffic_args in args.traffic:
            ServiceTraffic(
                f"{traffic_args.name}-traffic",
                traffic_args,
                child_opts(self, requires, moved_from_root=catalog.predates_components(traffic_args.name)),
            )
