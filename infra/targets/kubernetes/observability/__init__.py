"""Observability on the cluster: Jaeger, kube-prometheus-stack, monitors, alerts and dashboards.

Registers the two charts (official repositories, versions pinned in config), the mesh-wide Istio
``Telemetry`` that turns tracing on, one sidecar PodMonitor (plus an opt-in ServiceMonitor) and
one PrometheusRule per workload, one PrometheusRule per database, the Jaeger and Consul
self-monitors and the Grafana dashboards. Its ``extras`` output gives every workload the ``OTEL_*``
environment, egress to the collector and ingress from Prometheus.

What it registers is built as pure data by this package's modules (``tracing``, ``monitors``,
``alerts``, ``dashboards``), which register nothing and read no config. The Vinylhound binaries
have no /metrics endpoint and no OpenTelemetry code, so every signal comes from the Istio sidecar
(metrics and spans) and from kube-state-metrics and CloudNativePG's exporters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.kubernetes.custom_resource import custom_resource
from components.kubernetes.specs import KubeObject
from components.labels import LabelContext
from components.options import child_opts
from infra import env, pod_security
from infra.catalog import Workload, predates_components
from infra.config import PlatformConfig
from infra.targets.kubernetes import helm, traffic
from infra.targets.kubernetes.extras import WorkloadExtras
from infra.targets.kubernetes.helm import Chart
from infra.targets.kubernetes.netpol import default_deny
from infra.targets.kubernetes.observability import alerts, dashboards, monitors, network, tracing

#: The namespace Istio's mesh-wide configuration lives in (the mesh feature installs istiod there).
TYPE = "vinylhound:observability:Observability"
MESH_ROOT_NAMESPACE = "istio-system"
GRAFANA_ADMIN_SECRET = "grafana-admin"


def _version(cfg: PlatformConfig, workload: Workload) -> str:
    image = cfg.services[workload.name].image
    return image.tag or image.digest or "unknown"


@dataclass(frozen=True)
class WorkloadSignals:
    """One workload's monitoring objects, whole: its sidecar PodMonitor, its opt-in app
    ServiceMonitor (``None`` without a metrics path), its PrometheusRule, its database's
    PrometheusRule (``None`` without a database) and its dashboard ConfigMap."""

    name: str
    sidecar_monitor: KubeObject
    app_monitor: KubeObject | None
    alerts: KubeObject
    database_alerts: KubeObject | None
    dashboard: KubeObject


@dataclass(frozen=True)
class ObservabilityArgs:
    """What observability registers and waits for (``observability_args`` builds it).

    ``namespace``: the workloads' namespace (the monitors and alerts live there). ``mesh_crds``:
    the release that installs Istio's CRDs; the mesh ``Telemetry`` waits for it. ``consul``: what
    makes Prometheus' Consul token (after the servers); the Consul PodMonitor waits for it.
    ``ingress_gateway``: what creates the edge namespace and gateway pods; the edge PodMonitor
    waits for it. ``versions``: each enabled workload's image version (``service.version`` of its
    traces). ``badger_claim``: the spec of Jaeger's volume claim, ``None`` unless it stores on
    badger. ``tracing_policies``/``monitoring_policies``: the NetworkPolicies (name -> spec) of the
    two namespaces, under their default deny (``observability.network``).
    """

    environment: str
    context: LabelContext
    namespace: pulumi.Resource
    jaeger_version: str
    jaeger_values: Mapping[str, Any]
    badger_claim: KubeObject | None
    sampling_percent: float
    prometheus_stack_version: str
    prometheus_stack_values: Mapping[str, Any]
    workloads: Sequence[WorkloadSignals]
    migration_dashboard: KubeObject
    versions: Mapping[str, str]
    tracing_policies: Mapping[str, KubeObject]
    monitoring_policies: Mapping[str, KubeObject]
    mesh_crds: Sequence[pulumi.Resource]
    consul: Sequence[pulumi.Resource] = ()
    ingress_gateway: Sequence[pulumi.Resource] = ()


def _signals(cfg: PlatformConfig, context: LabelContext, workload: Workload) -> WorkloadSignals:
    obs, namespace = cfg.observability, cfg.namespace
    selector = context.selector(workload.name)
    labels = context.workload(workload.name, _version(cfg, workload), workload.role)
    groups = [alerts.service_group(workload.name, namespace, obs.alerts, obs.runbook_url)]
    endpoint = env.database_endpoint(workload, namespace)
    database_alerts = None
    if endpoint is not None:
        db_groups = [
            alerts.database_group(endpoint.cluster, workload.name, namespace, obs.alerts, obs.runbook_url)
        ]
        database_alerts = alerts.prometheus_rule(f"{endpoint.cluster}-alerts", namespace, labels, db_groups)
    return WorkloadSignals(
        name=workload.name,
        sidecar_monitor=monitors.sidecar_pod_monitor(workload, namespace, selector, labels),
        app_monitor=monitors.app_service_monitor(workload, namespace, selector, labels),
        alerts=alerts.prometheus_rule(f"{workload.name}-alerts", namespace, labels, groups),
        database_alerts=database_alerts,
        dashboard=_config_map(
            dashboards.service_dashboard(workload, namespace), workload.name, context.common()
        ),
    )


def observability_args(
    cfg: PlatformConfig,
    context: LabelContext,
    namespace: pulumi.Resource,
    mesh_crds: Sequence[pulumi.Resource],
    consul: Sequence[pulumi.Resource] = (),
    ingress_gateway: Sequence[pulumi.Resource] = (),
) -> ObservabilityArgs:
    """Observability's args from the stack's config; the resources are what it waits for."""
    obs = cfg.observability
    storage = obs.trace_storage(cfg.environment)
    enabled = [w for w, _ in cfg.enabled()]
    return ObservabilityArgs(
        environment=cfg.environment,
        context=context,
        namespace=namespace,
        jaeger_version=cfg.charts.jaeger,
        jaeger_values=tracing.jaeger_values(storage),
        badger_claim=tracing.badger_claim_spec(storage) if storage.backend == "badger" else None,
        sampling_percent=obs.sampling_percent(cfg.environment),
        prometheus_stack_version=cfg.charts.kube_prometheus_stack,
        prometheus_stack_values=monitors.stack_values(
            environment=cfg.environment,
            retention=obs.metrics.retention,
            retention_size=obs.metrics.retention_size,
            volume_size=obs.metrics.volume_size,
            storage_class=obs.metrics.storage_class,
            grafana_admin_secret=GRAFANA_ADMIN_SECRET,
            dashboard_label=dashboards.LABEL,
        ),
        workloads=tuple(_signals(cfg, context, w) for w in enabled),
        migration_dashboard=_config_map(
            dashboards.migration_dashboard([w for w in enabled if w.role == "service"]),
            "migration",
            context.common(),
        ),
        versions={w.name: _version(cfg, w) for w in enabled},
        tracing_policies=network.tracing_policies(storage, monitors.NAMESPACE),
        monitoring_policies=network.monitoring_policies([w.port for w in enabled if w.metrics_path]),
        mesh_crds=mesh_crds,
        consul=consul,
        ingress_gateway=ingress_gateway,
    )


class Observability(pulumi.ComponentResource):
    """Tracing and metrics for the platform; ``extras`` gives every workload the ``OTEL_*``
    environment, egress to the collector and ingress from Prometheus."""

    jaeger: k8s.helm.v3.Release
    #: The release that installs the Prometheus Operator's CRDs.
    prometheus_stack: k8s.helm.v3.Release
    collector: str
    extras: WorkloadExtras

    def __init__(
        self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE, name, None, opts)
        self._prefix = name
        self.collector = f"{tracing.COLLECTOR_HOST}:{tracing.OTLP_GRPC_PORT}"
        self.jaeger = self._tracing(args)
        self.prometheus_stack = self._metrics(args)
        environment, versions = args.environment, args.versions
        self.extras = WorkloadExtras(
            env=(lambda w: tracing.otel_env(w, environment, versions[w.name]),),
            egress=(lambda _: [tracing.collector_egress()],),
            ingress=(monitors.scrape_ingress,),
        )
        self.register_outputs({"collector": self.collector})

    def _child(
        self, role: str, *after: pulumi.Resource, history: bool = True
    ) -> tuple[str, pulumi.ResourceOptions]:
        """A child's name (``<component>-<role>``) and options; ``role`` was its name before, at
        the stack root, unless it has no ``history`` (a workload's, for a workload added since)."""
        if not history:
            return f"{self._prefix}-{role}", child_opts(self, after)
        return f"{self._prefix}-{role}", child_opts(self, after, moved_from_root=True, renamed_from=role)

    def _namespace(
        self, name: str, context: LabelContext, policies: Mapping[str, KubeObject]
    ) -> tuple[k8s.core.v1.Namespace, list[pulumi.Resource]]:
        """The namespace, and its default deny with ``policies`` (name -> NetworkPolicy spec): the
        chart's release waits for both, so no pod of it starts denied what it needs."""
        # No sidecar injection: Jaeger and Prometheus stay outside the mesh so that scraping and
        # span export do not depend on the mesh they observe.
        resource_name, opts = self._child(f"{name}-namespace")
        namespace = k8s.core.v1.Namespace(
            resource_name,
            metadata={"name": name, "labels": {**context.common(), **pod_security.labels(name)}},
            opts=opts,
        )
        isolation: list[pulumi.Resource] = [
            default_deny(self, f"{self._prefix}-{name}-default-deny", name, context, [namespace])
        ]
        for policy, spec in policies.items():
            isolation.append(
                k8s.networking.v1.NetworkPolicy(
                    f"{self._prefix}-{name}-{policy}-netpol",
                    metadata={"name": policy, "namespace": name, "labels": context.common()},
                    spec=spec,
                    opts=child_opts(self, [namespace]),
                )
            )
        return namespace, isolation

    def _tracing(self, args: ObservabilityArgs) -> k8s.helm.v3.Release:
        common = args.context.common()
        tracing_ns, tracing_network = self._namespace(tracing.NAMESPACE, args.context, args.tracing_policies)
        jaeger_deps: list[pulumi.Resource] = [tracing_ns, *tracing_network]
        if args.badger_claim is not None:
            name, opts = self._child("jaeger-badger-claim", tracing_ns)
            jaeger_deps.append(
                k8s.core.v1.PersistentVolumeClaim(
                    name,
                    metadata={"name": tracing.BADGER_CLAIM, "namespace": tracing.NAMESPACE, "labels": common},
                    spec=args.badger_claim,
                    opts=opts,
                )
            )
        name, opts = self._child(tracing.RELEASE, *jaeger_deps)
        jaeger = helm.release(
            name,
            Chart(tracing.CHART, tracing.REPOSITORY),
            args.jaeger_version,
            tracing.NAMESPACE,
            args.jaeger_values,
            opts,
            release_name=tracing.RELEASE,
            create_namespace=False,
        )
        name, opts = self._child("mesh-telemetry", *args.mesh_crds, jaeger)
        custom_resource(
            name,
            {
                "apiVersion": "telemetry.istio.io/v1",
                "kind": "Telemetry",
                "metadata": {"name": "mesh-default", "namespace": MESH_ROOT_NAMESPACE, "labels": common},
                "spec": tracing.mesh_telemetry_spec(args.sampling_percent),
            },
            opts,
        )
        return jaeger

    def _metrics(self, args: ObservabilityArgs) -> k8s.helm.v3.Release:
        context, common = args.context, args.context.common()
        monitoring_ns, monitoring_network = self._namespace(
            monitors.NAMESPACE, context, args.monitoring_policies
        )
        name, opts = self._child("grafana-admin-password")
        grafana_password = random.RandomPassword(name, length=32, special=False, opts=opts)
        name, opts = self._child("grafana-admin-secret", monitoring_ns)
        grafana_secret = k8s.core.v1.Secret(
            name,
            metadata={"name": GRAFANA_ADMIN_SECRET, "namespace": monitors.NAMESPACE, "labels": common},
            type="Opaque",
            string_data={
                "admin-user": "admin",
                "admin-password": pulumi.Output.secret(grafana_password.result),
            },
            opts=opts,
        )
        name, opts = self._child(monitors.RELEASE, monitoring_ns, *monitoring_network, grafana_secret)
        stack = helm.release(
            name,
            Chart(monitors.CHART, monitors.REPOSITORY),
            args.prometheus_stack_version,
            monitors.NAMESPACE,
            args.prometheus_stack_values,
            opts,
            release_name=monitors.RELEASE,
            create_namespace=False,
        )

        # Custom resources wait for the chart that installs their CRDs; app-namespace ones also
        # for the namespace.
        def in_app_with_crds(role: str, obj: KubeObject, history: bool = True) -> None:
            name, opts = self._child(role, args.namespace, stack, history=history)
            custom_resource(name, obj, opts)

        def in_monitoring(role: str, obj: KubeObject, history: bool = True) -> None:
            name, opts = self._child(role, monitoring_ns, history=history)
            k8s.core.v1.ConfigMap(name, metadata=obj["metadata"], data=obj["data"], opts=opts)

        for signals in args.workloads:
            workload, old = signals.name, predates_components(signals.name)
            in_app_with_crds(f"{workload}-sidecar-monitor", signals.sidecar_monitor, old)
            if signals.app_monitor is not None:
                in_app_with_crds(f"{workload}-app-monitor", signals.app_monitor, old)
            in_app_with_crds(f"{workload}-alerts", signals.alerts, old)
            if signals.database_alerts is not None:
                in_app_with_crds(signals.database_alerts["metadata"]["name"], signals.database_alerts, old)
            in_monitoring(f"{workload}-dashboard", signals.dashboard, old)
        in_monitoring("migration-dashboard", args.migration_dashboard)
        name, opts = self._child("jaeger-monitor", stack, self.jaeger)
        custom_resource(name, monitors.jaeger_service_monitor(common), opts)
        # The consul namespace and release belong to the registry.
        name, opts = self._child("consul-monitor", stack, *args.consul)
        custom_resource(name, monitors.consul_pod_monitor(common), opts)
        # The edge's own metrics (the migration dashboard's source). The gateway chart renders no
        # NetworkPolicy unless ``global.networkPolicy.enabled`` (the platform leaves it off), so
        # Prometheus reaches :15090 there without an exception.
        name, opts = self._child("ingress-gateway-monitor", stack, *args.ingress_gateway)
        custom_resource(
            name,
            monitors.ingress_gateway_pod_monitor(traffic.INGRESS_NAMESPACE, traffic.INGRESS_SELECTOR, common),
            opts,
        )
        return stack


def _config_map(dashboard: dict[str, Any], name: str, labels: dict[str, str]) -> dict[str, Any]:
    obj = dashboards.config_map(name, monitors.NAMESPACE, labels, dashboard)
    return {"metadata": obj["metadata"], "data": obj["data"]}
