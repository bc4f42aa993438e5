"""Availability: enough replicas per environment, a disruption budget when there are several, and
one owner of the replica count."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource, Severity

from ._support import (
    EXEMPT_WORKLOADS,
    Rule,
    autoscalers_of,
    dig,
    effective_min_replicas,
    hpa_min_replicas,
    integer,
    number,
    selecting,
    workloads,
)

_replicas = Rule(
    name="minimum-replicas",
    description="Every workload runs at least the environment's minimum number of pods (its "
    "autoscaler's minReplicas when it has one, else spec.replicas).",
    remediation="raise services.<name>.replicas or autoscaling.minReplicas in the stack config",
    severity=Severity.HIGH,
    knobs={
        "minReplicas": integer(2, "The fewest pods a workload may run with.", 1),
        "exempt": EXEMPT_WORKLOADS,
    },
)


def _replica_problems(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    minimum = config["minReplicas"]
    for w in workloads(resources, config["exempt"]):
        count, autoscaled = effective_min_replicas(resources, w)
        if count < minimum:
            source = "autoscaler minReplicas" if autoscaled else "replicas"
            yield w.urn, f"{w.name} runs {count:g} pod(s) ({source}); the minimum is {minimum:g}"


_pdb = Rule(
    name="pod-disruption-budget",
    description="Every workload that runs more than one pod has a PodDisruptionBudget selecting its "
    "pods, so node drains never take all of them at once; and no budget forbids every voluntary "
    "disruption (maxUnavailable 0, minAvailable 100% or all the pods), which blocks node drains.",
    remediation="declare a PodDisruptionBudget (maxUnavailable: 1) whose selector matches the pods",
    severity=Severity.MEDIUM,
    knobs={"exempt": EXEMPT_WORKLOADS},
)


def _pdb_problems(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    for w in workloads(resources, config["exempt"]):
        count, _ = effective_min_replicas(resources, w)
        mine = selecting(
            resources, "policy", ("PodDisruptionBudget",), ("spec", "selector"), w.pod_labels, w.namespace
        )
        if count > 1 and not mine:
            yield w.urn, f"{w.name} runs {count:g} pods but no PodDisruptionBudget selects them"
        for budget in mine:
            if blocks_every_disruption(budget.props, count):
                yield budget.urn, f"the PodDisruptionBudget of {w.name} allows no voluntary disruption"


def _amount(value: Any, pods: float) -> float | None:
    """An int-or-percent PDB field as a number of pods (percentages of ``pods``)."""
    if isinstance(value, str) and value.endswith("%"):
        try:
            return float(value[:-1]) * pods / 100
        except ValueError:
            return None
    return number(value)


def blocks_every_disruption(props: Mapping[str, Any], pods: float) -> bool:
    """Whether a budget lets no pod be evicted: maxUnavailable 0, or minAvailable >= every pod."""
    spec = dig(props, "spec") or {}
    unavailable = _amount(dig(spec, "maxUnavailable"), pods)
    available = _amount(dig(spec, "minAvailable"), pods)
    return unavailable == 0 or (available is not None and available >= pods)


_hpa = Rule(
    name="autoscaler-owns-replicas",
    description="A workload with a HorizontalPodAutoscaler leaves spec.replicas unset: the two would "
    "fight on every apply (server-side apply resets the autoscaler's count).",
    remediation="set either services.<name>.replicas or autoscaling, not both",
    severity=Severity.MEDIUM,
    knobs={"exempt": EXEMPT_WORKLOADS},
)


def _hpa_problems(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    for w in workloads(resources, config["exempt"]):
        for hpa in autoscalers_of(resources, w):
            if w.replicas is not None:
                yield w.urn, f"{w.name} pins replicas ({w.replicas:g}) and has an autoscaler"
            low = hpa_min_replicas(hpa)
            high = number(dig(hpa.props, "spec", "maxReplicas")) or 0.0
            if high <= low:
                yield (
                    hpa.urn,
                    f"{w.name}'s autoscaler is pinned (minReplicas {low:g}, maxReplicas {high:g})",
                )


POLICIES = [_replicas.stack(_replica_problems), _pdb.stack(_pdb_problems), _hpa.stack(_hpa_problems)]
