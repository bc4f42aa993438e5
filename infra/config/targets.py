"""Which settings each deployment target reads: Docker stacks reject Kubernetes-only keys and vice versa."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from pydantic.alias_generators import to_camel

from infra import catalog
from infra.config.types import (
    Problem,
)

if TYPE_CHECKING:
    from infra.config import PlatformConfig


#: What a docker stack reads; any other key set in one is a Kubernetes-only setting (Istio,
#: autoscaling, database instances, charts, ...), so features added later are rejected by default.
DOCKER_KEYS = frozenset(
    {
        "environment",
        "target",
        "domain",
        "image_registry",
        "cors_allowed_origins",
        "services",
        "spotify_client_id",
        "docker",
        # The event bus runs as one NATS container (see infra/targets/docker/events.py).
        "events",
    }
)
DOCKER_WORKLOAD_KEYS = frozenset({"enabled", "image", "resources", "cutover"})
_KUBERNETES_ONLY = "Kubernetes-only setting; a docker stack (target: docker) does not read it"


def target_rules(cfg: PlatformConfig) -> Iterator[Problem]:
    """Settings of one target are errors in a stack of the other target."""
    if cfg.target != "docker":
        if "docker" in cfg.model_fields_set:
            yield Problem("docker", f"Docker-only setting; this stack's target is {cfg.target}")
        return
    for key in sorted(cfg.model_fields_set - DOCKER_KEYS):
        yield Problem(to_camel(key), _KUBERNETES_ONLY)
    for name, svc in cfg.services.items():
        for key in sorted(svc.model_fields_set - DOCKER_WORKLOAD_KEYS):
            yield Problem(f"services.{name}.{to_camel(key)}", _KUBERNETES_ONLY)
        if svc.cutover.weight not in (0, 100):
            yield Problem(
                f"services.{name}.cutover.weight",
                f"{svc.cutover.weight} is a partial weight; a docker stack has no traffic split, "
                "use 0 (monolith) or 100 (service)",
            )
        if svc.cutover.mirror:
            yield Problem(f"services.{name}.cutover.mirror", f"{_KUBERNETES_ONLY} (mirroring needs the mesh)")
    events = cfg.events
    if "namespace" in events.model_fields_set:
        yield Problem("events.namespace", _KUBERNETES_ONLY)
    if events.cluster_size not in (None, 1):
        yield Problem(
            "events.clusterSize", f"{events.cluster_size}: a docker stack runs one NATS server; use 1"
        )
    gateway = cfg.services.get("api-gateway")
    if gateway is None or not gateway.enabled:
        yield Problem("services.api-gateway", "a docker stack needs the api-gateway: it is the edge there")
    known = set(catalog.names())
    for name in cfg.docker_settings().build_contexts:
        if name not in known:
            yield Problem(
                f"docker.buildContexts.{name}",
                f"unknown workload; the catalog has {', '.join(catalog.names())}",
            )
