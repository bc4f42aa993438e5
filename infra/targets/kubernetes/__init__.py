"""The Kubernetes target: the platform realised on a cluster (dev, staging, prod)."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.labels import LabelContext
from infra.config import PlatformConfig
from infra.observability import monitors, tracing
from infra.stack_secrets import StackSecrets
from infra.targets.kubernetes.databases import deploy_databases
from infra.targets.kubernetes.events import deploy_events
from infra.targets.kubernetes.extras import WorkloadExtras
from infra.targets.kubernetes.frontend import deploy_frontend_upstream
from infra.targets.kubernetes.mesh import deploy_mesh, deploy_routes
from infra.targets.kubernetes.observability import deploy_observability
from infra.targets.kubernetes.registry import deploy_registry
from infra.targets.kubernetes.workloads import deploy_workloads


def deploy(cfg: PlatformConfig, secrets: StackSecrets) -> dict[str, Any]:
    """Declare the whole platform for one stack; return the stack's exports."""
    context = LabelContext(environment=cfg.environment)
    namespace = k8s.core.v1.Namespace(
        "namespace",
        metadata={
            "name": cfg.namespace,
            # Every pod in the namespace gets an Istio sidecar: mTLS, metrics and traces for free.
            "labels": {**context.common(), "istio-injection": "enabled"},
        },
    )
    in_namespace = pulumi.ResourceOptions(depends_on=[namespace])
    extras = WorkloadExtras()
    # Platform features register their resources and add to `extras` here, one call each,
    # before the workloads that use them are declared.
    mesh = deploy_mesh(cfg, context, extras, namespace, extra_mesh_config=tracing.mesh_config())
    consul = deploy_registry(cfg, extras)
    observability = deploy_observability(
        cfg,
        context,
        extras,
        in_namespace,
        mesh_crds=[mesh.base],
        consul=[consul],
        ingress_gateway=[mesh.gateway],
    )
    event_bus = deploy_events(
        cfg,
        context,
        extras,
        in_namespace,
        monitoring=[observability.prometheus_stack],
        monitoring_namespace=monitors.NAMESPACE,
    )
    databases = deploy_databases(
        cfg,
        context,
        extras,
        in_namespace,
        monitoring_crds=[observability.prometheus_stack],
        monitoring_namespace=monitors.NAMESPACE,
    )
    # The routes after the databases: writes move only once the migration Jobs have completed.
    deploy_routes(cfg, context, mesh, databases.write_route_gates)
    workloads = deploy_workloads(cfg, secrets, context, extras, in_namespace)
    deploy_frontend_upstream(cfg, context, in_namespace)
    return {
        "environment": cfg.environment,
        "namespace": cfg.namespace,
        "publicUrl": f"https://{cfg.domain}",
        "serviceAddresses": {name: svc.address for name, svc in workloads.items()},
        "tracingCollector": observability.collector,
        "eventBus": event_bus.exports(cfg),
        "databases": databases.exports(),
    }
