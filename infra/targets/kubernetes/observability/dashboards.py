"""Grafana dashboards as JSON: RED per service from the mesh, and the migration's traffic split.

Grafana's sidecar (kube-prometheus-stack) loads each as a ConfigMap carrying ``LABEL``. Queries
use fixed ``[5m]`` windows rather than Grafana variables so the tests can parse every one of them
with promtool.
"""

from __future__ import annotations

import json
from typing import Any

from components.kubernetes.specs import KubeObject
from infra import endpoints
from infra.catalog import Workload
from infra.targets.kubernetes.network import EDGE_NAMESPACE

#: The label Grafana's dashboard sidecar looks for (the chart's default ``grafana_dashboard: "1"``).
LABEL = ("grafana_dashboard", "1")
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
MONOLITH = "monolith"

Panel = dict[str, Any]


def _panel(title: str, targets: list[tuple[str, str]], unit: str, index: int) -> Panel:
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": title,
        "datasource": dict(DATASOURCE),
        "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend, "datasource": dict(DATASOURCE)}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def _dashboard(uid: str, title: str, panels: list[Panel]) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "tags": ["vinylhound"],
        "timezone": "utc",
        "editable": False,
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": []},
        "panels": panels,
    }


def service_dashboard(workload: Workload, namespace: str) -> dict[str, Any]:
    """Rate, errors and duration of one workload as its Istio sidecar sees them."""
    sel = (
        f'reporter="destination",destination_workload_namespace="{namespace}",'
        f'destination_workload="{workload.name}"'
    )
    requests = f"rate(istio_requests_total{{{sel}}}[5m])"
    buckets = f"rate(istio_request_duration_milliseconds_bucket{{{sel}}}[5m])"
    specs: list[tuple[str, list[tuple[str, str]], str]] = [
        ("Requests per second", [(f"sum({requests})", "requests/s")], "reqps"),
        (
            "Requests by response code",
            [(f"sum by (response_code) ({requests})", "{{response_code}}")],
            "reqps",
        ),
        (
            "Error ratio (5xx)",
            [
                (
                    f'sum(rate(istio_requests_total{{{sel},response_code=~"5.."}}[5m])) / sum({requests})',
                    "5xx share",
                )
            ],
            "percentunit",
        ),
        (
            "Latency",
            [
                (f"histogram_quantile({q}, sum by (le) ({buckets}))", f"p{int(q * 100)}")
                for q in (0.5, 0.9, 0.99)
            ],
            "ms",
        ),
    ]
    panels = [_panel(title, targets, unit, i) for i, (title, targets, unit) in enumerate(specs)]
    return _dashboard(f"vinylhound-{workload.name}"[:40], f"Vinylhound / {workload.name}", panels)


def migration_dashboard(services: list[Workload]) -> dict[str, Any]:
    """Per endpoint each extracted service shares with the monolith: requests and 5xx ratio on the
    monolith vs the service.

    Measured at the edge (the ingress gateway is the client, ``reporter="source"``), where the
    VirtualService routes each endpoint by the cutover.
    """
    panels: list[Panel] = []
    for workload in services:
        for endpoint in endpoints.shared(workload):
            sel = (
                f'reporter="source",source_workload_namespace="{EDGE_NAMESPACE}",'
                f'route="{endpoints.route_name(endpoint)}",'
                f'destination_workload=~"{MONOLITH}|{workload.name}"'
            )
            requests = f"rate(istio_requests_total{{{sel}}}[5m])"
            errors = f'rate(istio_requests_total{{{sel},response_code=~"5.."}}[5m])'
            panels.append(
                _panel(
                    f"{endpoint.key}: traffic monolith vs {workload.name}",
                    [(f"sum by (destination_workload) ({requests})", "{{destination_workload}}")],
                    "reqps",
                    len(panels),
                )
            )
            panels.append(
                _panel(
                    f"{endpoint.key}: 5xx ratio per side",
                    [
                        (
                            f"sum by (destination_workload) ({errors})"
                            f" / sum by (destination_workload) ({requests})",
                            "{{destination_workload}}",
                        )
                    ],
                    "percentunit",
                    len(panels),
                )
            )
    return _dashboard("vinylhound-migration", "Vinylhound / migration", panels)


def expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression a dashboard runs."""
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def config_map(name: str, namespace: str, labels: dict[str, str], dashboard: dict[str, Any]) -> KubeObject:
    """The ConfigMap Grafana's sidecar provisions ``dashboard`` from."""
    key, value = LABEL
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"dashboard-{name}", "namespace": namespace, "labels": {**labels, key: value}},
        "data": {f"{name}.json": json.dumps(dashboard, indent=1, sort_keys=True)},
    }
