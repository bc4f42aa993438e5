"""What a platform feature adds to every workload, returned by the feature's component.

Each area component (mesh, registry, observability, events, databases) exposes one
``WorkloadExtras`` as its ``extras`` output: environment variables, NetworkPolicy exceptions, pod
annotations and resources the workloads must wait for. The ``Workloads`` component takes them as
an input and applies them, so no feature edits another feature's code or the Microservice
component, and nothing is filled in behind anyone's back: a feature's contribution is a value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pulumi

from components.kubernetes.specs import KubeObject
from components.values import EnvVar
from infra.catalog import Workload

EnvContribution = Callable[[Workload], list[EnvVar]]
RuleContribution = Callable[[Workload], list[KubeObject]]
AnnotationContribution = Callable[[Workload], dict[str, str]]


@dataclass(frozen=True)
class WorkloadExtras:
    """Contributions of one or more platform features, applied to every enabled workload."""

    env: tuple[EnvContribution, ...] = ()
    ingress: tuple[RuleContribution, ...] = ()
    egress: tuple[RuleContribution, ...] = ()
    pod_annotations: tuple[AnnotationContribution, ...] = ()
    #: Resources every workload depends on (e.g. the Secrets it reads).
    depends_on: tuple[pulumi.Resource, ...] = ()

    @staticmethod
    def combine(parts: Sequence[WorkloadExtras]) -> WorkloadExtras:
        """All of ``parts`` in one, each list in the order of ``parts``."""
        return WorkloadExtras(
            env=tuple(c for p in parts for c in p.env),
            ingress=tuple(c for p in parts for c in p.ingress),
            egress=tuple(c for p in parts for c in p.egress),
            pod_annotations=tuple(c for p in parts for c in p.pod_annotations),
            depends_on=tuple(r for p in parts for r in p.depends_on),
        )

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
