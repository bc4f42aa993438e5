"""The workloads' namespace quota, judged against what each Kubernetes stack renders: every pod
template at its largest (autoscaler maximum plus the rollout's surge pod, CloudNativePG's extra
instance pod, every Job at once, the injected sidecar and the LimitRange's defaults) fits: a
deploy is never refused by its own quota."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import manifests_of, rendered

STACKS = ["dev", "staging", "prod"]
NS = "vinylhound"
DIMENSIONS = ("cpu", "memory", "ephemeral-storage")
_SUFFIX = {
    "m": Decimal("0.001"),
    **{unit: Decimal(1024**n) for n, unit in enumerate(("Ki", "Mi", "Gi", "Ti"), 1)},
}
Demand = dict[str, Decimal]


def add(total: Demand, more: Demand, times: int = 1) -> None:
    """``total += more * times``, dimension by dimension."""
    for key, value in more.items():
        total[key] = total.get(key, Decimal(0)) + value * times


def quantity(value: Any) -> Decimal:
    """A Kubernetes quantity as a number (cores or bytes): ``500m`` -> 0.5, ``1Gi`` -> 1073741824."""
    text = str(value)
    for suffix, factor in _SUFFIX.items():
        if text.endswith(suffix):
            return Decimal(text[: -len(suffix)]) * factor
    return Decimal(text)


def container_demand(resources: Mapping[str, Any], defaults: Mapping[str, Any]) -> Demand:
    """A container's requests and limits, the LimitRange filling in what it leaves unset (as the
    API server's LimitRanger admission plugin does)."""
    demand: Demand = {}
    for side, default_side in (("requests", "defaultRequest"), ("limits", "default")):
        given = resources.get(side) or {}
        for what in DIMENSIONS:
            value = given.get(what, defaults[default_side][what])
            demand[f"{side}.{what}"] = quantity(value)
    return demand


def pod_demand(
    spec: Mapping[str, Any], defaults: Mapping[str, Any], sidecar: Mapping[str, Any] | None
) -> Demand:
    """One pod: its containers plus the injected sidecar; an init container counts only where it
    asks for more than the containers together (Kubernetes' effective pod request)."""
    total: Demand = {}
    for c in spec.get("containers", []):
        add(total, container_demand(c.get("resources") or {}, defaults))
    if sidecar is not None:
        add(total, container_demand(sidecar, defaults))
    for c in spec.get("initContainers", []):
        for key, value in container_demand(c.get("resources") or {}, defaults).items():
            total[key] = max(total.get(key, Decimal(0)), value)
    total["pods"] = Decimal(1)
    return total


def namespace_demand(stack: str) -> tuple[Demand, Demand]:
    """What the stack's pods in the workloads' namespace can ask for at once, and its quota."""
    run = rendered(stack)
    objects = [o for o in manifests_of(run) if o["metadata"].get("namespace", "") == NS]
    (limit_range,) = [o for o in objects if o["kind"] == "LimitRange"]
    (quota,) = [o for o in objects if o["kind"] == "ResourceQuota"]
    defaults = next(item for item in limit_range["spec"]["limits"] if item["type"] == "Container")
    # The istiod release, by its Helm release name (its Pulumi name follows its component's).
    (istiod,) = [
        r for r in run.registrations if r.type.endswith("helm.sh/v3:Release") and r.inputs["name"] == "istiod"
    ]
    sidecar = istiod.inputs["values"]["global"]["proxy"]["resources"]
    autoscaled = {
        o["spec"]["scaleTargetRef"]["name"]: int(o["spec"]["maxReplicas"])
        for o in objects
        if o["kind"] == "HorizontalPodAutoscaler"
    }
    total: Demand = {}
    for o in objects:
        if o["kind"] == "Deployment":
            template = o["spec"]["template"]
            injected = template["metadata"].get("annotations", {}).get("sidecar.istio.io/inject") != "false"
            pods = autoscaled.get(o["metadata"]["name"], int(o["spec"].get("replicas", 1)))
            surge = int(o["spec"]["strategy"]["rollingUpdate"]["maxSurge"])
            pod = pod_demand(template["spec"], defaults, sidecar if injected else None)
            add(total, pod, pods + surge)
        elif o["kind"] == "Job":
            template = o["spec"]["template"]
            injected = template["metadata"].get("annotations", {}).get("sidecar.istio.io/inject") != "false"
            add(total, pod_demand(template["spec"], defaults, sidecar if injected else None))
        elif o["kind"] == "Cluster" and o["apiVersion"].startswith("postgresql.cnpg.io/"):
            # CloudNativePG runs each instance's postgres container with the Cluster's resources,
            # plus one pod (initdb or join Job, or the replacement instance) while it changes.
            pod = pod_demand({"containers": [{"resources": o["spec"]["resources"]}]}, defaults, None)
            add(total, pod, int(o["spec"]["instances"]) + 1)
    return total, {k: quantity(v) for k, v in quota["spec"]["hard"].items()}


@pytest.mark.parametrize("stack", STACKS)
def test_every_pod_the_stack_can_run_at_once_fits_its_namespaces_quota(stack: str) -> None:
    demand, hard = namespace_demand(stack)
    over = {k: (v, hard.get(k)) for k, v in demand.items() if k not in hard or v > hard[k]}
    assert not over, over


@pytest.mark.parametrize("stack", STACKS)
def test_every_container_of_the_programs_pods_bounds_its_ephemeral_storage(stack: str) -> None:
    for o in manifests_of(rendered(stack)):
        template = (o.get("spec") or {}).get("template")
        if o["kind"] not in ("Deployment", "Job") or template is None:
            continue
        for c in template["spec"]["containers"] + template["spec"].get("initContainers", []):
            assert {"requests", "limits"} <= set(c["resources"]), (o["metadata"]["name"], c["name"])
            assert "ephemeral-storage" in c["resources"]["requests"], (o["metadata"]["name"], c["name"])
            assert "ephemeral-storage" in c["resources"]["limits"], (o["metadata"]["name"], c["name"])
