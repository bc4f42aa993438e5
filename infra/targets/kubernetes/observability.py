"""Observability on the cluster: Jaeger, kube-prometheus-stack, monitors, alerts and dashboards.

Registers the two charts (official repositories, versions pinned in config), the mesh-wide Istio
``Telemetry`` that turns tracing on, one sidecar PodMonitor (plus an opt-in ServiceMonitor) and
one PrometheusRule per workload, one PrometheusRule per database, the Jaeger and Consul
self-monitors and the Grafana dashboards. It contributes the ``OTEL_*`` environment, egress to the
collector and ingress from Prometheus to every workload through ``WorkloadExtras``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.kubernetes.custom_resource import custom_resource
from components.labels import LabelContext
from infra import env, traffic
from infra.catalog import Workload
from infra.config import PlatformConfig
from infra.observability import alerts, dashboards, monitors, tracing
from infra.targets.kubernetes import helm
from infra.targets.kubernetes.extras import WorkloadExtras
from infra.targets.kubernetes.helm import Chart

#: The namespace Istio's mesh-wide configuration lives in (the mesh feature installs istiod there).
MESH_ROOT_NAMESPACE = "istio-system"
GRAFANA_ADMIN_SECRET = "grafana-admin"


@dataclass(frozen=True)
class Observability:
    """What the rest of the platform may need: the two releases and the collector's address."""

    jaeger: k8s.helm.v3.Release
    prometheus_stack: k8s.helm.v3.Release
    collector: str


def _namespace(name: str, context: LabelContext) -> k8s.core.v1.Namespace:
    # No sidecar injection: Jaeger and Prometheus stay outside the mesh so that scraping and span
    # export do not depend on the mesh they observe.
    return k8s.core.v1.Namespace(f"{name}-namespace", metadata={"name": name, "labels": context.common()})


def _version(cfg: PlatformConfig, workload: Workload) -> str:
    image = cfg.services[workload.name].image
    return image.tag or image.digest or "unknown"


def deploy_observability(
    cfg: PlatformConfig,
    context: LabelContext,
    extras: WorkloadExtras,
    in_namespace: pulumi.ResourceOptions,
    mesh_crds: Sequence[pulumi.Resource],
    consul: Sequence[pulumi.Resource] = (),
    ingress_gateway: Sequence[pulumi.Resource] = (),
) -> Observability:
    """Declare the observability stack and contribute tracing and scrape access to every workload.

    ``mesh_crds`` are the resources that install Istio's CRDs (the Istio base release); the mesh
    ``Telemetry`` waits for them. ``consul`` is what creates the consul namespace and servers (the
    Consul release); the Consul PodMonitor waits for it. ``ingress_gateway`` is what creates the
    edge namespace and gateway pods (the gateway release); the edge PodMonitor waits for it.
    """
    obs = cfg.observability
    storage = obs.trace_storage(cfg.environment)
    common = context.common()

    # --- tracing -------------------------------------------------------------------------------
    tracing_ns = _namespace(tracing.NAMESPACE, context)
    in_tracing = pulumi.ResourceOptions(depends_on=[tracing_ns])
    jaeger_deps: list[pulumi.Resource] = [tracing_ns]
    if storage.backend == "badger":
        jaeger_deps.append(
            k8s.core.v1.PersistentVolumeClaim(
                "jaeger-badger-claim",
                metadata={"name": tracing.BADGER_CLAIM, "namespace": tracing.NAMESPACE, "labels": common},
                spec=tracing.badger_claim_spec(storage),
                opts=in_tracing,
            )
        )
    jaeger = helm.release(
        tracing.RELEASE,
        Chart(tracing.CHART, tracing.REPOSITORY),
        cfg.charts.jaeger,
        tracing.NAMESPACE,
        tracing.jaeger_values(storage),
        pulumi.ResourceOptions(depends_on=jaeger_deps),
        create_namespace=False,
    )
    custom_resource(
        "mesh-telemetry",
        {
            "apiVersion": "telemetry.istio.io/v1",
            "kind": "Telemetry",
            "metadata": {"name": "mesh-default", "namespace": MESH_ROOT_NAMESPACE, "labels": common},
            "spec": tracing.mesh_telemetry_spec(obs.sampling_percent(cfg.environment)),
        },
        pulumi.ResourceOptions(depends_on=[*mesh_crds, jaeger]),
    )
    extras.env.append(lambda w: tracing.otel_env(w, cfg.environment, _version(cfg, w)))
    extras.egress.append(lambda _: [tracing.collector_egress()])

    # --- metrics -------------------------------------------------------------------------------
    monitoring_ns = _namespace(monitors.NAMESPACE, context)
    in_monitoring = pulumi.ResourceOptions(depends_on=[monitoring_ns])
    grafana_password = random.RandomPassword("grafana-admin-password", length=32, special=False)
    grafana_secret = k8s.core.v1.Secret(
        "grafana-admin-secret",
        metadata={"name": GRAFANA_ADMIN_SECRET, "namespace": monitors.NAMESPACE, "labels": common},
        type="Opaque",
        string_data={
            "admin-user": "admin",
            "admin-password": pulumi.Output.secret(grafana_password.result),
        },
        opts=in_monitoring,
    )
    stack = helm.release(
        monitors.RELEASE,
        Chart(monitors.CHART, monitors.REPOSITORY),
        cfg.charts.kube_prometheus_stack,
        monitors.NAMESPACE,
        monitors.stack_values(
            environment=cfg.environment,
            retention=obs.metrics.retention,
            retention_size=obs.metrics.retention_size,
            volume_size=obs.metrics.volume_size,
            storage_class=obs.metrics.storage_class,
            grafana_admin_secret=GRAFANA_ADMIN_SECRET,
            dashboard_label=dashboards.LABEL,
        ),
        pulumi.ResourceOptions(depends_on=[monitoring_ns, grafana_secret]),
        create_namespace=False,
    )
    # Custom resources wait for the chart that installs their CRDs; app-namespace ones also for
    # the namespace.
    with_crds = pulumi.ResourceOptions(depends_on=[stack])
    in_app_with_crds = pulumi.ResourceOptions.merge(in_namespace, with_crds)

    enabled = cfg.enabled()
    for workload, _ in enabled:
        selector = context.selector(workload.name)
        labels = context.workload(workload.name, _version(cfg, workload), workload.role)
        custom_resource(
            f"{workload.name}-sidecar-monitor",
            monitors.sidecar_pod_monitor(workload, cfg.namespace, selector, labels),
            in_app_with_crds,
        )
        app_monitor = monitors.app_service_monitor(workload, cfg.namespace, selector, labels)
        if app_monitor is not None:
            custom_resource(f"{workload.name}-app-monitor", app_monitor, in_app_with_crds)
        groups = [alerts.service_group(workload.name, cfg.namespace, obs.alerts, obs.runbook_url)]
        custom_resource(
            f"{workload.name}-alerts",
            alerts.prometheus_rule(f"{workload.name}-alerts", cfg.namespace, labels, groups),
            in_app_with_crds,
        )
        endpoint = env.database_endpoint(workload, cfg.namespace)
        if endpoint is not None:
            db_groups = [
                alerts.database_group(
                    endpoint.cluster, workload.name, cfg.namespace, obs.alerts, obs.runbook_url
                )
            ]
            custom_resource(
                f"{endpoint.cluster}-alerts",
                alerts.prometheus_rule(f"{endpoint.cluster}-alerts", cfg.namespace, labels, db_groups),
                in_app_with_crds,
            )
        k8s.core.v1.ConfigMap(
            f"{workload.name}-dashboard",
            **_config_map(dashboards.service_dashboard(workload, cfg.namespace), workload.name, common),
            opts=in_monitoring,
        )
    k8s.core.v1.ConfigMap(
        "migration-dashboard",
        **_config_map(
            dashboards.migration_dashboard([w for w, _ in enabled if w.role == "service"]),
            "migration",
            common,
        ),
        opts=in_monitoring,
    )
    custom_resource(
        "jaeger-monitor",
        monitors.jaeger_service_monitor(common),
        pulumi.ResourceOptions(depends_on=[stack, jaeger]),
    )
    # The consul namespace and release belong to the mesh feature.
    custom_resource(
        "consul-monitor",
        monitors.consul_pod_monitor(common),
        pulumi.ResourceOptions(depends_on=[stack, *consul]),
    )
    # The edge's own metrics (the migration dashboard's source). The gateway chart renders no
    # NetworkPolicy unless ``global.networkPolicy.enabled`` (the mesh feature leaves it off), so
    # Prometheus reaches :15090 there without an exception.
    custom_resource(
        "ingress-gateway-monitor",
        monitors.ingress_gateway_pod_monitor(traffic.INGRESS_NAMESPACE, traffic.INGRESS_SELECTOR, common),
        pulumi.ResourceOptions(depends_on=[stack, *ingress_gateway]),
    )
    extras.ingress.append(monitors.scrape_ingress)

    return Observability(
        jaeger=jaeger, prometheus_stack=stack, collector=f"{tracing.COLLECTOR_HOST}:{tracing.OTLP_GRPC_PORT}"
    )


def _config_map(dashboard: dict[str, Any], name: str, labels: dict[str, str]) -> dict[str, Any]:
    obj = dashboards.config_map(name, monitors.NAMESPACE, labels, dashboard)
    return {"metadata": obj["metadata"], "data": obj["data"]}
