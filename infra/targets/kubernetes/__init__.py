"""The Kubernetes target: the platform realised on a cluster (dev, staging, prod).

One component per area; the stack root holds nothing else. Each area returns what the others
need as outputs (releases to wait for, the write-route gates, what it adds to every workload as
``extras``); the order below is only the order of those data dependencies.
"""

from __future__ import annotations

from typing import Any

from components.labels import LabelContext
from infra.config import PlatformConfig
from infra.stack_secrets import StackSecrets
from infra.targets.kubernetes import namespaces, network, traffic
from infra.targets.kubernetes.contract import ContractGate, contract_extras, contract_gate_args
from infra.targets.kubernetes.databases import Databases, databases_args
from infra.targets.kubernetes.events import EventBus, event_bus_args
from infra.targets.kubernetes.extras import WorkloadExtras
from infra.targets.kubernetes.frontend import FrontendUpstream, FrontendUpstreamArgs
from infra.targets.kubernetes.mesh import Mesh, mesh_args, mesh_extras
from infra.targets.kubernetes.namespaces import ChartNamespaces, ChartNamespacesArgs
from infra.targets.kubernetes.observability import Observability, monitors, observability_args, tracing
from infra.targets.kubernetes.platform import Platform, platform_args
from infra.targets.kubernetes.registry import Registry, RegistryArgs
from infra.targets.kubernetes.workloads import Workloads, workloads_args


def deploy(cfg: PlatformConfig, secrets: StackSecrets) -> dict[str, Any]:
    """Declare the whole platform for one stack; return the stack's exports."""
    context = LabelContext(environment=cfg.environment)
    charts = ChartNamespaces(
        "chart-namespaces",
        ChartNamespacesArgs(
            context,
            app_namespace=cfg.namespace,
            monitoring_namespace=monitors.NAMESPACE,
            gateway_selector=traffic.INGRESS_SELECTOR,
            cnpg_operator_labels=network.CNPG_OPERATOR_LABELS,
            gateway_egress=(tracing.collector_egress(),),
        ),
    )
    platform = Platform(
        "platform",
        platform_args(cfg, context, extra_mesh_config=tracing.mesh_config()),
        charts.wait_for(namespaces.ISTIO_SYSTEM, namespaces.ISTIO_INGRESS),
    )
    namespace = platform.namespace
    registry = Registry(
        "registry",
        RegistryArgs(
            cfg.namespace,
            cfg.charts.consul,
            cfg.registry_replicas(),
            cfg.traffic.registry.cli_image,
            context,
            monitoring_namespace=monitors.NAMESPACE,
        ),
    )
    observability = Observability(
        "observability",
        observability_args(
            cfg,
            context,
            namespace,
            mesh_crds=[platform.base],
            consul=[registry.metrics_token],
            ingress_gateway=[platform.gateway],
        ),
    )
    event_bus = EventBus(
        "event-bus",
        event_bus_args(
            cfg,
            context,
            namespace,
            monitoring=[observability.prometheus_stack],
            monitoring_namespace=monitors.NAMESPACE,
            mesh_crds=[platform.base],
        ),
    )
    databases = Databases(
        "databases",
        databases_args(
            cfg,
            context,
            namespace,
            monitoring_crds=[observability.prometheus_stack],
            monitoring_namespace=monitors.NAMESPACE,
        ),
        charts.wait_for(namespaces.CNPG_SYSTEM),
    )
    # The order of contributions is the order of each workload's env and rules.
    extras = WorkloadExtras.combine(
        [
            platform.extras,
            mesh_extras(cfg),
            registry.extras,
            observability.extras,
            event_bus.extras,
            databases.extras,
            contract_extras(cfg),
        ]
    )
    workloads = Workloads("workloads", workloads_args(cfg, secrets, context, namespace, extras))
    # Reads move only once the running versions answer like the monolith (a Job checks them)...
    contract = ContractGate("contract-gate", contract_gate_args(cfg, context, namespace, workloads.services))
    # ...and writes only once the migration Jobs have completed: the routes wait for both gates.
    Mesh(
        "mesh",
        mesh_args(
            cfg,
            context,
            namespace,
            crds=platform.base,
            gateway=platform.gateway,
            write_route_gates=databases.write_route_gates,
            read_route_gates=contract.read_route_gates,
        ),
    )
    FrontendUpstream(
        "frontend-upstream",
        FrontendUpstreamArgs(traffic.frontend_backend(cfg), context, cfg.namespace, namespace),
    )
    return {
        "environment": cfg.environment,
        "namespace": cfg.namespace,
        "publicUrl": f"https://{cfg.domain}",
        "serviceAddresses": {name: svc.address for name, svc in workloads.services.items()},
        "tracingCollector": observability.collector,
        "eventBus": event_bus.exports(),
        "databases": databases.exports(),
    }
