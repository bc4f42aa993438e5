"""Observability on the docker target: Jaeger, Prometheus and the blackbox exporter, whose specs
``platform.platform_specs`` builds (Prometheus probes every workload through the exporter)."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi

from components.docker.service import ContainerService
from components.docker.specs import ContainerSpec
from components.options import child_opts

TYPE = "vinylhound:observability:LocalObservability"


class LocalObservability(pulumi.ComponentResource):
    """Jaeger, Prometheus and the blackbox exporter it probes the workloads through, by name."""

    containers: dict[str, ContainerService]

    def __init__(
        self, name: str, args: Sequence[ContainerSpec], opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE, name, None, opts)
        self.containers = {
            spec.name: ContainerService(spec.name, spec, child_opts(self, moved_from_root=True))
            for spec in args
        }
        self.register_outputs({})
