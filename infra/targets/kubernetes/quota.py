"""The workloads' namespace budget: a ResourceQuota sized from the stack, and a LimitRange.

The quota is the most the stack's own pods can ask for at once, each workload at its autoscaler's
maximum plus a rollout's surge pod, each database at its instances plus the one pod CloudNativePG
adds while it creates, joins or replaces an instance, every migration and contract-check Job
running together. Anything beyond that (a pod someone starts by hand, a runaway scale-up) is
refused at admission instead of taking the cluster's capacity. The LimitRange gives containers
that set no resources (the injected sidecar's ephemeral storage) the same defaults as the
program's own containers, so the quota can count them. Pure functions; ``budget`` registers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.kubernetes.specs import ROLLOUT_SURGE, KubeObject, ResourceSpec
from components.labels import LabelContext
from components.options import child_opts
from infra.config import PlatformConfig
from infra.config.types import cpu_millicores, quantity_bytes
from infra.targets.kubernetes import contract
from infra.targets.kubernetes.databases import MIGRATION_JOB_RESOURCES, instance_resources
from infra.targets.kubernetes.mesh import PROXY_RESOURCES
from infra.targets.kubernetes.workloads import container_resources

#: Migration Jobs per service database that can run at once: schema, consistency, cutover, rollback.
JOBS_PER_DATABASE = 4
#: The defaults of a container that sets nothing: the program's own ``ResourceSpec`` defaults.
CONTAINER_DEFAULTS = ResourceSpec()
_MI = 1024**2


@dataclass(frozen=True)
class Footprint:
    """What some pods ask for, in millicores and bytes."""

    cpu_request: int = 0
    memory_request: int = 0
    cpu_limit: int = 0
    memory_limit: int = 0
    ephemeral_request: int = 0
    ephemeral_limit: int = 0
    pods: int = 0

    @classmethod
    def of(cls, *containers: ResourceSpec) -> Footprint:
        """One pod running ``containers``."""
        return cls(
            cpu_request=sum(cpu_millicores(c.cpu_request) for c in containers),
            memory_request=sum(quantity_bytes(c.memory_request) for c in containers),
            cpu_limit=sum(cpu_millicores(c.cpu_limit) for c in containers),
            memory_limit=sum(quantity_bytes(c.memory_limit) for c in containers),
            ephemeral_request=sum(quantity_bytes(c.ephemeral_request) for c in containers),
            ephemeral_limit=sum(quantity_bytes(c.ephemeral_limit) for c in containers),
            pods=1,
        )

    def __add__(self, other: Footprint) -> Footprint:
        return Footprint(*(a + b for a, b in zip(self._values(), other._values(), strict=True)))

    def __mul__(self, times: int) -> Footprint:
        return Footprint(*(a * times for a in self._values()))

    def _values(self) -> tuple[int, ...]:
        return (
            self.cpu_request,
            self.memory_request,
            self.cpu_limit,
            self.memory_limit,
            self.ephemeral_request,
            self.ephemeral_limit,
            self.pods,
        )

    def hard(self) -> dict[str, str]:
        """The ResourceQuota ``spec.hard`` allowing exactly this (memory rounded up to Mi)."""

        def mi(value: int) -> str:
            return f"{math.ceil(value / _MI)}Mi"

        return {
            "requests.cpu": f"{self.cpu_request}m",
            "requests.memory": mi(self.memory_request),
            "limits.cpu": f"{self.cpu_limit}m",
            "limits.memory": mi(self.memory_limit),
            "requests.ephemeral-storage": mi(self.ephemeral_request),
            "limits.ephemeral-storage": mi(self.ephemeral_limit),
            "pods": str(self.pods),
        }


def app_namespace_footprint(cfg: PlatformConfig) -> Footprint:
    """The most the stack's pods in the workloads' namespace ask for at once (see the module)."""
    total = Footprint()
    for workload, settings in cfg.enabled():
        scaling = settings.autoscaling
        pods = scaling.max_replicas if scaling else cfg.replicas(workload.name)
        pod = Footprint.of(container_resources(settings.resources), PROXY_RESOURCES)
        total += pod * (pods + ROLLOUT_SURGE)
        if workload.database is not None:
            instance = Footprint.of(instance_resources(cfg))
            total += instance * (cfg.databases.instances_for(cfg.environment) + 1)
            total += Footprint.of(MIGRATION_JOB_RESOURCES) * JOBS_PER_DATABASE
        if workload.role == "service":
            total += Footprint.of(contract.RESOURCES)
    return total


def limit_range_spec() -> KubeObject:
    """Defaults for a container that sets no resources: the program's own container defaults."""
    defaults = CONTAINER_DEFAULTS.to_kube()
    return {
        "limits": [
            {"type": "Container", "default": defaults["limits"], "defaultRequest": defaults["requests"]}
        ]
    }


def budget(
    parent: pulumi.Resource,
    name: str,
    namespace: str,
    context: LabelContext,
    footprint: Footprint,
    after: Sequence[pulumi.Resource],
) -> tuple[k8s.core.v1.ResourceQuota, k8s.core.v1.LimitRange]:
    """The namespace's ResourceQuota (``footprint``) and LimitRange (``limit_range_spec``), children
    of ``parent`` named ``<name>-resource-quota`` and ``<name>-limit-range``."""
    opts = child_opts(parent, after)
    quota = k8s.core.v1.ResourceQuota(
        f"{name}-resource-quota",
        metadata={"name": "compute", "namespace": namespace, "labels": context.common()},
        spec={"hard": footprint.hard()},
        opts=opts,
    )
    limits = k8s.core.v1.LimitRange(
        f"{name}-limit-range",
        metadata={"name": "container-defaults", "namespace": namespace, "labels": context.common()},
        spec=limit_range_spec(),
        opts=opts,
    )
    return quota, limits
