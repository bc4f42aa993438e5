"""Which parts of the platform an environment must run at all.

The presence rules elsewhere (circuit breakers, registry, tracing, scraping, alerts, backups) apply
once the stack runs the part they are about; this rule says which parts a Kubernetes stack must run,
per environment, through its ``required`` knob (see ``policies/config/<stack>.json``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource, Severity

from ._support import Knob, Rule, releases, uses_group, workloads
from .mesh import uses_istio
from .observability import has_prometheus_operator, has_tracing

COMPONENTS: dict[str, Callable[[Sequence[PolicyResource]], bool]] = {
    "istio": uses_istio,
    "cloudnative-pg": lambda rs: bool(releases(rs, "cloudnative-pg")) or uses_group(rs, "postgresql.cnpg.io"),
    "consul": lambda rs: bool(releases(rs, "consul")),
    "tracing": has_tracing,
    "prometheus-operator": has_prometheus_operator,
    "nats": lambda rs: bool(releases(rs, "nats")) or uses_group(rs, "jetstream.nats.io"),
}

_platform = Rule(
    name="platform-components",
    description="A Kubernetes stack runs the platform parts its environment requires (mesh, "
    "databases operator, registry, tracing, monitoring, event bus).",
    remediation="enable the missing platform part for this environment in infra/targets/kubernetes",
    severity=Severity.HIGH,
    knobs={
        "required": Knob(
            {
                "type": "array",
                "items": {"type": "string", "enum": sorted(COMPONENTS)},
                "description": "The platform parts this environment must run.",
            },
            [],
        )
    },
)


def _platform_problems(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    if not workloads(resources):
        return  # not a Kubernetes stack (the Docker stack has its own rules)
    for part in config["required"]:
        present = COMPONENTS.get(part)
        if present is not None and not present(resources):
            yield "", f"the stack does not run {part}"


POLICIES = [_platform.stack(_platform_problems)]
