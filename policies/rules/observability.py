"""Observability: every service traced, scraped and covered by alert rules.

Applicability: tracing applies when the stack runs a tracing backend (the ``jaeger`` or
``opentelemetry-collector`` chart, or an ``OpenTelemetryCollector``); scraping and alerts apply when
it runs the Prometheus Operator (the ``kube-prometheus-stack`` chart or any ``monitoring.coreos.com``
resource). Whether an environment must have them at all is ``platform-components``' business.

Alert rules are expected as ``monitoring.coreos.com`` ``PrometheusRule`` objects labelled
``app.kubernetes.io/name: <workload>`` for the workload they cover, with at least one ``alert``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource, Severity

from ._support import (
    EXEMPT_WORKLOADS,
    NAME_LABEL,
    Rule,
    Workload,
    dig,
    grouped,
    items,
    labels_of,
    mapping,
    namespace_of,
    releases,
    selecting,
    services_of,
    text,
    uses_group,
    workloads,
)

MONITORING = "monitoring.coreos.com"
TRACING_CHARTS = ("jaeger", "opentelemetry-collector", "tempo")
OTEL_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def has_tracing(resources: Sequence[PolicyResource]) -> bool:
    """Whether the stack runs a tracing backend."""
    return bool(releases(resources, *TRACING_CHARTS)) or any(
        r.resource_type.endswith(":OpenTelemetryCollector") for r in resources
    )


def has_prometheus_operator(resources: Sequence[PolicyResource]) -> bool:
    """Whether the stack runs the Prometheus Operator."""
    return bool(releases(resources, "kube-prometheus-stack")) or uses_group(resources, MONITORING)


_tracing = Rule(
    name="service-tracing",
    description="Every service is traced: its containers export spans over OTLP "
    "(OTEL_EXPORTER_OTLP_ENDPOINT set).",
    remediation="contribute OTEL_EXPORTER_OTLP_ENDPOINT (the collector's OTLP address) to every "
    "workload through WorkloadExtras.env",
    severity=Severity.MEDIUM,
    knobs={"exempt": EXEMPT_WORKLOADS},
)


def _tracing_problems(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    if not has_tracing(resources):
        return
    for w in workloads(resources, config["exempt"]):
        env = w.env()
        if not any(
            text(dig(env.get(name), "value")) or dig(env.get(name), "valueFrom") for name in OTEL_ENDPOINTS
        ):
            yield w.urn, f"{w.name} has no {OTEL_ENDPOINTS[0]}"


def _monitor_namespaces(monitor: PolicyResource) -> tuple[bool, set[str]]:
    selector = mapping(dig(monitor.props, "spec", "namespaceSelector"))
    if selector.get("any") is True:
        return True, set()
    names = {text(n) for n in items(selector.get("matchNames"))}
    return False, names or {namespace_of(monitor.props)}


def scraped_by(resources: Sequence[PolicyResource], w: Workload) -> list[PolicyResource]:
    """The PodMonitors selecting the workload's pods and ServiceMonitors selecting its Services."""
    selector = ("spec", "selector")
    monitors = selecting(resources, MONITORING, ("PodMonitor",), selector, w.pod_labels)
    for service in services_of(resources, w):
        monitors += selecting(resources, MONITORING, ("ServiceMonitor",), selector, labels_of(service.props))
    found = []
    for monitor in monitors:
        anywhere, namespaces = _monitor_namespaces(monitor)
        if (anywhere or w.namespace in namespaces) and monitor not in found:
            found.append(monitor)
    return found


_scraping = Rule(
    name="service-scraping",
    description="Every service is scraped: a PodMonitor or ServiceMonitor selects it.",
    remediation="declare a PodMonitor (sidecar metrics) or ServiceMonitor whose selector.matchLabels "
    "match the workload's pods or Service",
    severity=Severity.MEDIUM,
    knobs={"exempt": EXEMPT_WORKLOADS},
)


def _scraping_problems(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    if not has_prometheus_operator(resources):
        return
    for w in workloads(resources, config["exempt"]):
        if not scraped_by(resources, w):
            yield w.urn, f"no PodMonitor or ServiceMonitor selects {w.name}"


_alerts = Rule(
    name="service-alerts",
    description="Every service has alert rules: a PrometheusRule labelled app.kubernetes.io/name: "
    "<workload> with at least one alert.",
    remediation="declare a PrometheusRule for the workload (label app.kubernetes.io/name) with alerts "
    "on errors, latency and availability",
    severity=Severity.MEDIUM,
    knobs={"exempt": EXEMPT_WORKLOADS},
)


def _named(rule: PolicyResource) -> str | None:
    return labels_of(rule.props).get(NAME_LABEL)


def _alert_problems(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    if not has_prometheus_operator(resources):
        return
    rules_of = grouped(resources, MONITORING, "PrometheusRule", _named)
    for w in workloads(resources, config["exempt"]):
        covering = rules_of(w.name)
        alerts = [
            rule
            for r in covering
            for group in items(dig(r.props, "spec", "groups"))
            for rule in items(dig(group, "rules"))
            if text(dig(rule, "alert"))
        ]
        if not alerts:
            yield w.urn, f"no PrometheusRule with alerts covers {w.name}"


POLICIES = [
    _tracing.stack(_tracing_problems),
    _scraping.stack(_scraping_problems),
    _alerts.stack(_alert_problems),
]
