"""Service registry (Consul): every service registered.

Applicability: the rule applies when the stack installs Consul (the ``consul`` chart). Registration
is catalog sync (``syncCatalog.enabled``) covering the workload's namespace, with either
``syncCatalog.default`` (true unless set) or the Service annotated
``consul.hashicorp.com/service-sync: "true"``; or Consul service-mesh injection
(``connectInject.enabled`` with the pod annotated ``consul.hashicorp.com/connect-inject: "true"``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from fnmatch import fnmatch
from typing import Any

from pulumi_policy import PolicyResource, Severity

from ._support import (
    EXEMPT_WORKLOADS,
    Rule,
    Workload,
    dig,
    items,
    mapping,
    releases,
    services_of,
    text,
    truthy,
    workloads,
)

SYNC_ANNOTATION = "consul.hashicorp.com/service-sync"
INJECT_ANNOTATION = "consul.hashicorp.com/connect-inject"

_registry = Rule(
    name="service-registry",
    description="Every service is registered in the service registry (Consul catalog sync or "
    "connect injection).",
    remediation="enable syncCatalog in the Consul release values (default true, namespace allowed) "
    "or annotate the Service consul.hashicorp.com/service-sync: 'true'",
    severity=Severity.MEDIUM,
    knobs={"exempt": EXEMPT_WORKLOADS},
)


def _registered(consul: PolicyResource, resources: Sequence[PolicyResource], w: Workload) -> bool:
    values = mapping(consul.props.get("values"))
    sync = mapping(values.get("syncCatalog"))
    if truthy(sync.get("enabled")):
        allow = [text(n) for n in items(sync.get("k8sAllowNamespaces"))] or ["*"]
        deny = [text(n) for n in items(sync.get("k8sDenyNamespaces"))] or ["kube-system", "kube-public"]
        if any(fnmatch(w.namespace, a) for a in allow) and not any(fnmatch(w.namespace, d) for d in deny):
            default = sync.get("default", True)
            for service in services_of(resources, w):
                annotation = text(dig(service.props, "metadata", "annotations", SYNC_ANNOTATION))
                if (truthy(default) and annotation != "false") or annotation == "true":
                    return True
    if truthy(dig(values, "connectInject", "enabled")):
        pod_annotations = mapping(dig(w.resource.props, "spec", "template", "metadata", "annotations"))
        if text(pod_annotations.get(INJECT_ANNOTATION)) == "true" or truthy(
            dig(values, "connectInject", "default")
        ):
            return True
    return False


def _registry_problems(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    consuls = releases(resources, "consul")
    if not consuls:
        return
    for w in workloads(resources, config["exempt"]):
        if not any(_registered(c, resources, w) for c in consuls):
            yield w.urn, f"{w.name} is not registered in Consul"


POLICIES = [_registry.stack(_registry_problems)]
