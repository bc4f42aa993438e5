"""Consul's configuration on the docker target: one service with an HTTP check per workload.

Nothing in the applications registers itself (no code reads SERVICE_REGISTRY today), so the
platform declares every workload to Consul from the catalog, with the same health URL the
container healthcheck and the Prometheus probe use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from infra.targets.docker.prometheus_scrape import Endpoint


def service_definitions(
    endpoints: Sequence[Endpoint], *, environment: str, versions: Mapping[str, str]
) -> dict[str, Any]:
    """Consul agent configuration (JSON) declaring each workload and its HTTP health check."""
    return {
        "services": [
            {
                "id": e.workload.name,
                "name": e.workload.name,
                "address": e.host,
                "port": e.port,
                "tags": [e.workload.role, environment],
                "meta": {"version": versions.get(e.workload.name, "unknown"), "role": e.workload.role},
                "checks": [
                    {
                        "id": f"{e.workload.name}-http",
                        "name": f"GET {e.probe_url}",
                        "http": e.probe_url,
                        "method": "GET",
                        "interval": "10s",
                        "timeout": "3s",
                    }
                ],
            }
            for e in endpoints
        ]
    }


def telemetry() -> dict[str, Any]:
    """Consul agent configuration that serves its own metrics in Prometheus format."""
    # Without a retention time /v1/agent/metrics?format=prometheus answers with nothing.
    return {"telemetry": {"prometheus_retention_time": "60s", "disable_hostname": True}}
