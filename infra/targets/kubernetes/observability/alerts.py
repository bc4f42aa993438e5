"""Alerting rules as Prometheus rule groups, one group per service and one per database.

Service alerts read the Istio sidecar's request metrics (``reporter="destination"``: what the
workload itself answered) and kube-state-metrics; database alerts read CloudNativePG's exporter.
Annotations are plain text (no ``$value`` templates) so that promtool unit tests can state exactly
what an alert says. Every alert carries ``severity``, ``service`` and ``namespace`` labels and a
``runbook_url`` pointing at its section of docs/runbooks.md.
"""

from __future__ import annotations

from typing import Any

from components.kubernetes.specs import KubeObject
from infra.config import AlertThresholds

Rule = dict[str, Any]

#: The window every rate is taken over.
WINDOW = "5m"


def _runbook(base: str, alert: str) -> str:
    return f"{base}#{alert.lower()}"


def _alert(
    name: str,
    expr: str,
    duration: str,
    severity: str,
    labels: dict[str, str],
    summary: str,
    description: str,
    runbooks: str,
) -> Rule:
    return {
        "alert": name,
        "expr": expr,
        "for": duration,
        "labels": {"severity": severity, **labels},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": _runbook(runbooks, name),
        },
    }


def _percent(ratio: float) -> str:
    return f"{ratio * 100:g}%"


def service_group(service: str, namespace: str, t: AlertThresholds, runbooks: str) -> Rule:
    """Error ratio, p99 latency, no available replica and restarts for one workload."""
    mesh = (
        f'reporter="destination",destination_workload_namespace="{namespace}",'
        f'destination_workload="{service}"'
    )
    deployment = f'namespace="{namespace}",deployment="{service}"'
    pods = f'namespace="{namespace}",pod=~"{service}-[a-z0-9]+-[a-z0-9]+",container="{service}"'
    labels = {"service": service, "namespace": namespace}
    return {
        "name": f"vinylhound.service.{service}",
        "rules": [
            _alert(
                "ServiceHighErrorRatio",
                f'sum(rate(istio_requests_total{{{mesh},response_code=~"5.."}}[{WINDOW}]))'
                f" / sum(rate(istio_requests_total{{{mesh}}}[{WINDOW}])) > {t.error_ratio:g}",
                "5m",
                "critical",
                labels,
                f"{service} answers more than {_percent(t.error_ratio)} of requests with 5xx",
                f"Over the last {WINDOW}, more than {_percent(t.error_ratio)} of the requests {service} "
                f"received in {namespace} ended in a 5xx response (measured by its Istio sidecar).",
                runbooks,
            ),
            _alert(
                "ServiceHighLatencyP99",
                f"histogram_quantile(0.99, sum by (le) "
                f"(rate(istio_request_duration_milliseconds_bucket{{{mesh}}}[{WINDOW}])))"
                f" > {t.latency_p99_ms}",
                "10m",
                "warning",
                labels,
                f"{service} p99 latency is above {t.latency_p99_ms} ms",
                f"The 99th percentile of request durations at {service} in {namespace} has been above "
                f"{t.latency_p99_ms} ms for 10 minutes.",
                runbooks,
            ),
            _alert(
                "ServiceNoHealthyReplicas",
                f"kube_deployment_status_replicas_available{{{deployment}}} < 1",
                "2m",
                "critical",
                labels,
                f"{service} has no available replica",
                f"Deployment {namespace}/{service} has had no ready pod for 2 minutes; every request "
                f"routed to it fails.",
                runbooks,
            ),
            _alert(
                "ServiceRestarting",
                f"max by (pod) (increase(kube_pod_container_status_restarts_total{{{pods}}}[1h]))"
                f" > {t.restarts_per_hour}",
                "1m",
                "warning",
                labels,
                f"{service} keeps restarting",
                f"A {service} container in {namespace} restarted more than {t.restarts_per_hour} "
                f"times within the last hour.",
                runbooks,
            ),
        ],
    }


def database_group(cluster: str, owner: str, namespace: str, t: AlertThresholds, runbooks: str) -> Rule:
    """Replication lag, backup age and connection use for one CloudNativePG cluster."""
    pods = f'namespace="{namespace}",pod=~"{cluster}-[0-9]+"'
    labels = {"service": owner, "namespace": namespace, "cnpg_cluster": cluster}
    max_age = t.backup_max_age_hours * 3600
    return {
        "name": f"vinylhound.database.{cluster}",
        "rules": [
            _alert(
                "DatabaseReplicationLagHigh",
                f"max(cnpg_pg_replication_lag{{{pods}}}) > {t.replication_lag_seconds}",
                "5m",
                "warning",
                labels,
                f"{cluster} replicas lag behind the primary",
                f"A replica of {namespace}/{cluster} has been more than {t.replication_lag_seconds} s "
                f"behind its primary for 5 minutes; reads from the ro endpoint are stale.",
                runbooks,
            ),
            _alert(
                "DatabaseBackupTooOld",
                f"time() - max(cnpg_collector_last_available_backup_timestamp{{{pods}}}) > {max_age}",
                "10m",
                "critical",
                labels,
                f"{cluster} has no recent successful backup",
                f"The newest successful backup of {namespace}/{cluster} is older than "
                f"{t.backup_max_age_hours} hours (or there is none).",
                runbooks,
            ),
            _alert(
                "DatabaseConnectionsNearLimit",
                f"max(sum by (pod) (cnpg_backends_total{{{pods}}})"
                f' / max by (pod) (cnpg_pg_settings_setting{{name="max_connections",{pods}}}))'
                f" > {t.connections_ratio:g}",
                "5m",
                "warning",
                labels,
                f"{cluster} is close to max_connections",
                f"An instance of {namespace}/{cluster} uses more than {_percent(t.connections_ratio)} "
                f"of its max_connections; new connections will soon be refused.",
                runbooks,
            ),
        ],
    }


def prometheus_rule(name: str, namespace: str, labels: dict[str, str], groups: list[Rule]) -> KubeObject:
    """A ``PrometheusRule`` holding ``groups``."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"groups": groups},
    }
