"""Consul's configuration on the docker target: one service with an HTTP check per workload.

Nothing in the applications registers itself (no code reads SERVICE_REGISTRY today), so the
platform declares every workload to Consul from the catalog, with the same health URL the
container healthcheck and the Prometheus probe use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi

from components.docker.service import ContainerService
from components.docker.specs import ContainerSpec
from components.options import child_opts
from infra.targets.docker.prometheus_scrape import Endpoint

TYPE = "vinylhound:registry:LocalRegistry"


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


class LocalRegistry(pulumi.ComponentResource):
    """Consul (dev mode) with every workload declared; ``consul`` is its container."""

    consul: ContainerService

    def __init__(self, name: str, args: ContainerSpec, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        # Named by its container, as every ContainerService: its children are named after it.
        self.consul = ContainerService(args.name, args, child_opts(self, moved_from_root=True))
        self.register_outputs({})
