"""Bounded consumption per namespace and per container: ResourceQuota, LimitRange, ephemeral storage.

Sources: Kyverno best-practices ``add-ns-quota`` (a ResourceQuota and a LimitRange in every
namespace) and the OPA Gatekeeper library's ``ephemeralstoragelimit`` (every container limits its
ephemeral storage). A container without an ephemeral-storage limit can fill its node's disk with
logs or scratch files and get every pod on that node evicted; a namespace without a quota can
take the cluster's capacity from the others.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource, Severity

from ._support import (
    CORE,
    Rule,
    container_name,
    dig,
    in_namespace,
    items,
    kube,
    mapping,
    name_of,
    of_kind,
    pod_spec,
    string_list,
)
from ._support import containers as containers_of

EPHEMERAL = "ephemeral-storage"
#: What a namespace's ResourceQuota must bound (``spec.hard``): the compute a pod template can ask for.
QUOTA_KEYS = (
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
    f"requests.{EPHEMERAL}",
    f"limits.{EPHEMERAL}",
    "pods",
)
#: What a LimitRange's Container item must default (a container that names none, an injected
#: sidecar, still counts against the quota, and the API server rejects it unless defaulted).
DEFAULTED = ("cpu", "memory", EPHEMERAL)

_quota = Rule(
    name="namespace-resource-quota",
    description="Every namespace the stack declares has a ResourceQuota bounding CPU, memory, "
    "ephemeral storage (requests and limits) and pods, and a LimitRange defaulting each container's "
    "CPU, memory and ephemeral storage, so no namespace can take the cluster's capacity.",
    remediation="declare a ResourceQuota with spec.hard "
    + ", ".join(QUOTA_KEYS)
    + " and a LimitRange with a Container item whose default and defaultRequest set cpu, memory and "
    "ephemeral-storage (infra/targets/kubernetes/quota.py sizes both from the stack)",
    severity=Severity.MEDIUM,
    knobs={"exemptNamespaces": string_list([], "Namespaces that need no quota (say why in docs/policy.md).")},
)


def _limit_range_defaults(limit_range: PolicyResource) -> set[str]:
    """The resources a LimitRange defaults for containers, in both ``default`` and ``defaultRequest``."""
    found: set[str] = set()
    for item in items(dig(limit_range.props, "spec", "limits")):
        item = mapping(item)
        if item.get("type") != "Container":
            continue
        found |= set(mapping(item.get("default"))) & set(mapping(item.get("defaultRequest")))
    return found


def _quota_problems(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    quotas = of_kind(resources, CORE, "ResourceQuota")
    ranges = of_kind(resources, CORE, "LimitRange")
    for ns in of_kind(resources, CORE, "Namespace"):
        name = name_of(ns.props)
        if name in config["exemptNamespaces"]:
            continue
        hard: set[str] = set()
        for quota in in_namespace(quotas, name):
            hard |= set(mapping(dig(quota.props, "spec", "hard")))
        if not hard:
            yield ns.urn, f"namespace {name or '?'} has no ResourceQuota"
        elif missing := [k for k in QUOTA_KEYS if k not in hard]:
            yield ns.urn, f"namespace {name or '?'}: the ResourceQuota does not bound {', '.join(missing)}"
        defaulted: set[str] = set()
        for limit_range in in_namespace(ranges, name):
            defaulted |= _limit_range_defaults(limit_range)
        if missing := [k for k in DEFAULTED if k not in defaulted]:
            yield (
                ns.urn,
                f"namespace {name or '?'}: no LimitRange defaults {', '.join(missing)} for containers",
            )


_ephemeral = Rule(
    name="ephemeral-storage-limits",
    description="Every container (init containers, Jobs' and CloudNativePG instances' too) requests "
    "and limits ephemeral storage, so logs and scratch files cannot fill the node's disk and evict its "
    "other pods.",
    remediation="set resources.requests.ephemeral-storage and resources.limits.ephemeral-storage "
    "(above the sum of the pod's emptyDir sizeLimits)",
    severity=Severity.MEDIUM,
)


def _missing_ephemeral(resources: Any) -> str:
    sides = ("requests", "limits")
    return " or ".join(
        f"{side}.{EPHEMERAL}" for side in sides if dig(resources, side, EPHEMERAL) in (None, "")
    )


def _ephemeral_problems(token: str, props: Mapping[str, Any], _config: Mapping[str, Any]) -> Iterator[str]:
    if kube(token, "postgresql.cnpg.io", "Cluster"):
        # CloudNativePG gives every instance pod's postgres container the Cluster's resources.
        if missing := _missing_ephemeral(dig(props, "spec", "resources")):
            yield f"database {name_of(props, '?')}: spec.resources has no {missing}"
        return
    spec = pod_spec(token, props)
    if spec is None:
        return
    for c in containers_of(spec):
        if missing := _missing_ephemeral(c.get("resources")):
            yield f"container {container_name(c)}: no {missing}"


POLICIES = [_quota.stack(_quota_problems), _ephemeral.resource(_ephemeral_problems)]
