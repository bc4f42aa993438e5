"""What platform features add to every workload, collected before the workloads are declared.

Each feature of the Kubernetes target (databases, mesh, tracing, registry, events, ...) lives in its
own module and contributes here: environment variables, NetworkPolicy exceptions, pod annotations
and resources the workloads must wait for. ``deploy_workloads`` applies them all, so no feature
edits another feature's code or the Microservice component.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pulumi

from components.kubernetes.specs import EnvVar, KubeObject
from infra.catalog import Workload

EnvContribution = Callable[[Workload], list[EnvVar]]
RuleContribution = Callable[[Workload], list[KubeObject]]
AnnotationContribution = Callable[[Workload], dict[str, str]]


@dataclass
class WorkloadExtras:
    """Contributions from platform features, applied to every enabled workload."""

    env: list[EnvContribution] = field(default_factory=list)
    ingress: list[RuleContribution] = field(default_factory=list)
    egress: list[RuleContribution] = field(default_factory=list)
    pod_annotations: list[AnnotationContribution] = field(default_factory=list)
    #: Resources every workload depends on (e.g. the Secrets it reads).
    depends_on: list[pulumi.Resource] = field(default_factory=list)

    def env_for(self, workload: Workload) -> list[EnvVar]:
        """Every contributed variable for ``workload``, in contribution order."""
        return [var for contribute in self.env for var in contribute(workload)]

    def ingress_for(self, workload: Workload) -> list[KubeObject]:
        """Every contributed ingress rule for ``workload``."""
        return [rule for contribute in self.ingress for rule in contribute(workload)]

    def egress_for(self, workload: Workload) -> list[KubeObject]:
        """Every contributed egress rule for ``workload``."""
        return [rule for contribute in self.egress for rule in contribute(workload)]

    def annotations_for(self, workload: Workload) -> dict[str, str]:
        """Every contributed pod annotation for ``workload`` (later contributions win)."""
        merged: dict[str, str] = {}
        for contribute in self.pod_annotations:
            merged.update(contribute(workload))
        return merged
