"""Service registry (Consul): every service registered, and Consul secured.

``service-registry`` applies when the stack installs Consul (the ``consul`` chart). Registration
is catalog sync (``syncCatalog.enabled``) covering the workload's namespace, with either
``syncCatalog.default`` (true unless set) or the Service annotated
``consul.hashicorp.com/service-sync: "true"``; or Consul service-mesh injection
(``connectInject.enabled`` with the pod annotated ``consul.hashicorp.com/connect-inject: "true"``).

``consul-security`` reads a consul release's values the way hashicorp/consul-k8s's chart (v1.8)
does: ACLs only with ``global.acls.manageSystemACLs``; TLS with ``global.tls.enabled``, where
``verify`` and ``httpsOnly`` default to true (false reopens unverified RPC or the plain HTTP port);
gossip encryption with ``global.gossipEncryption.autoGenerate`` or both ``secretName`` and
``secretKey``.
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
    is_release,
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


_security = Rule(
    name="consul-security",
    description="Consul runs with ACLs (default deny), verified TLS with the HTTP API on HTTPS only, "
    "and gossip encryption: without them any pod that reaches it can rewrite the catalog, and its "
    "traffic crosses the cluster in clear text.",
    remediation="set global.acls.manageSystemACLs, global.tls.enabled (verify and httpsOnly not false) "
    "and global.gossipEncryption (secretName + secretKey, or autoGenerate) in the consul release values",
    severity=Severity.HIGH,
)


def _security_problems(token: str, props: Mapping[str, Any], _config: Mapping[str, Any]) -> Iterator[str]:
    if not is_release(token) or text(props.get("chart")).rsplit("/", 1)[-1] != "consul":
        return
    values = mapping(props.get("values"))
    if not truthy(dig(values, "global", "acls", "manageSystemACLs")):
        yield "Consul ACLs are off (global.acls.manageSystemACLs)"
    tls = mapping(dig(values, "global", "tls"))
    if not truthy(tls.get("enabled")):
        yield "Consul TLS is off (global.tls.enabled)"
    else:
        for knob in ("verify", "httpsOnly"):
            if tls.get(knob) is False or text(tls.get(knob)).lower() == "false":
                yield f"Consul TLS is weakened (global.tls.{knob}: false)"
    gossip = mapping(dig(values, "global", "gossipEncryption"))
    if not truthy(gossip.get("autoGenerate")) and not (
        text(gossip.get("secretName")) and text(gossip.get("secretKey"))
    ):
        yield "Consul gossip is not encrypted (global.gossipEncryption)"


POLICIES = [_registry.stack(_registry_problems), _security.resource(_security_problems)]
