"""Who is in the mesh and who may call whom: sidecar injection, authorization, the edge's hosts and TLS.

Sources: Kyverno's ``istio/`` policies (enforce-sidecar-injection-namespace,
prevent-disabling-injection-pods, require-authorizationpolicy, restrict-virtual-service-wildcard)
and Gatekeeper's general library (block-wildcard-ingress, httpsonly), read for Istio's Gateway and
VirtualService. Like ``mesh``, they apply to a stack that runs Istio.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource, Severity

from ._support import (
    CORE,
    Rule,
    TypeToken,
    dig,
    items,
    kube,
    labels_of,
    mapping,
    name_of,
    namespace_of,
    of_kind,
    pod_template,
    selecting,
    string_list,
    text,
    workloads,
)
from .mesh import NETWORKING, SECURITY, uses_istio

INJECT = "sidecar.istio.io/inject"

# --- sidecar injection ----------------------------------------------------------------------------

_injection = Rule(
    name="sidecar-injection",
    description="Every namespace the stack declares has Istio sidecar injection on, and no long-running "
    "pod opts out, so mTLS and authorization cover every service. Jobs may opt out (a sidecar would "
    "keep the pod from completing); they are held by NetworkPolicy instead.",
    remediation="label the namespace istio-injection: enabled (or list it in exemptNamespaces with a "
    "reason in docs/security.md); remove sidecar.istio.io/inject: 'false' from the pod template",
    severity=Severity.HIGH,
    knobs={
        "exemptNamespaces": string_list([], "Namespaces deliberately outside the mesh."),
        "optOutKinds": string_list(["Job", "CronJob"], "Workload kinds whose pods may opt out."),
    },
)


def _opted_out(template: Mapping[str, Any]) -> bool:
    meta = mapping(template.get("metadata"))
    return any(
        text(mapping(meta.get(where)).get(INJECT)).lower() == "false" for where in ("annotations", "labels")
    )


def _injection_problems(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    if not uses_istio(resources):
        return
    exempt = set(config["exemptNamespaces"])
    for ns in of_kind(resources, CORE, "Namespace"):
        name = name_of(ns.props)
        injected = labels_of(ns.props).get("istio-injection") == "enabled" or bool(
            labels_of(ns.props).get("istio.io/rev")
        )
        if name not in exempt and not injected:
            yield ns.urn, f"namespace {name or '?'} does not have istio-injection: enabled"
    for r in resources:
        template = pod_template(r.resource_type, r.props)
        kind = TypeToken.parse(r.resource_type).kind
        if template is None or kind in config["optOutKinds"] or namespace_of(r.props) in exempt:
            continue
        if _opted_out(template):
            yield r.urn, f"{kind} {name_of(r.props, r.name)} opts its pods out of sidecar injection"


# --- authorization ---------------------------------------------------------------------------------

_authz = Rule(
    name="mesh-authorization",
    description="Every long-running workload in the mesh is selected by an Istio AuthorizationPolicy "
    "with action ALLOW (so only listed callers reach it; everything else is denied), and no ALLOW "
    "policy has an empty rule (which allows everyone).",
    remediation="declare an AuthorizationPolicy (action ALLOW) selecting the workload, each rule naming "
    "its sources (principals, namespaces) or operations",
    severity=Severity.HIGH,
    knobs={"rootNamespace": string_list(["istio-system"], "Istio root namespaces (mesh-wide policy).")},
)


def _allow_all(rule: Any) -> bool:
    return not mapping(rule) or not any(items(mapping(rule).get(k)) for k in ("from", "to", "when"))


def _authz_problems(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    if not uses_istio(resources):
        return
    policies = of_kind(resources, SECURITY, "AuthorizationPolicy")
    allow = [p for p in policies if (text(dig(p.props, "spec", "action")) or "ALLOW") == "ALLOW"]
    for p in allow:
        if any(_allow_all(rule) for rule in items(dig(p.props, "spec", "rules"))):
            yield p.urn, f"AuthorizationPolicy {name_of(p.props)} has a rule that allows every request"
    roots = set(config["rootNamespace"])
    allowing = {id(p) for p in allow}
    # Namespaces with an ALLOW policy for every pod (no selector): a root one covers the mesh.
    unscoped = {namespace_of(p.props) for p in allow if dig(p.props, "spec", "selector") is None}
    for w in workloads(resources):
        scope = roots | {w.namespace}
        covered = bool(unscoped & scope) or any(
            id(p) in allowing and namespace_of(p.props) in scope
            for p in selecting(
                resources, SECURITY, ("AuthorizationPolicy",), ("spec", "selector"), w.pod_labels
            )
        )
        if not covered:
            yield w.urn, f"no ALLOW AuthorizationPolicy selects {w.name}"


# --- wildcard hosts ---------------------------------------------------------------------------------

_wildcards = Rule(
    name="no-wildcard-hosts",
    description="No VirtualService or Gateway answers for a wildcard host: the edge serves the "
    "platform's own domain, and a '*' would capture traffic meant for others.",
    remediation="list the exact hostnames (the stack's domain) in hosts",
    severity=Severity.HIGH,
)


def _host_problems(token: str, props: Mapping[str, Any], _config: Mapping[str, Any]) -> Iterator[str]:
    if kube(token, NETWORKING, "VirtualService"):
        hosts = [text(h) for h in items(dig(props, "spec", "hosts"))]
    elif kube(token, NETWORKING, "Gateway"):
        # Gateway hosts may carry a namespace prefix: "vinylhound/vinylhound.app".
        hosts = [
            text(h).rpartition("/")[2]
            for server in items(dig(props, "spec", "servers"))
            for h in items(dig(server, "hosts"))
        ]
    else:
        return
    for host in hosts:
        if "*" in host:
            yield f"host {host} is a wildcard"


# --- HTTPS only at the edge ---------------------------------------------------------------------------

_https = Rule(
    name="edge-https-only",
    description="The ingress Gateway serves HTTPS with TLS 1.2 or later, and its plain-HTTP servers "
    "only redirect to HTTPS.",
    remediation="give every HTTPS server tls.mode SIMPLE or MUTUAL with minProtocolVersion TLSV1_2 or "
    "TLSV1_3, and every HTTP server tls.httpsRedirect: true",
    severity=Severity.HIGH,
)

_TLS_OK = {"TLSV1_2", "TLSV1_3"}


def _https_problems(token: str, props: Mapping[str, Any], _config: Mapping[str, Any]) -> Iterator[str]:
    if not kube(token, NETWORKING, "Gateway"):
        return
    for index, server in enumerate(mapping(s) for s in items(dig(props, "spec", "servers"))):
        label = text(server.get("name")) or f"servers[{index}]"
        protocol = text(dig(server, "port", "protocol")).upper()
        tls = mapping(server.get("tls"))
        if protocol == "HTTP" and tls.get("httpsRedirect") is not True:
            yield f"server {label} serves plain HTTP without redirecting to HTTPS"
        if protocol == "HTTPS":
            if text(tls.get("mode")) not in ("SIMPLE", "MUTUAL", "ISTIO_MUTUAL"):
                yield f"server {label} has tls.mode {text(tls.get('mode')) or 'unset'}"
            if text(tls.get("minProtocolVersion")) not in _TLS_OK:
                yield f"server {label} accepts TLS older than 1.2"


POLICIES = [
    _injection.stack(_injection_problems),
    _authz.stack(_authz_problems),
    _wildcards.resource(_host_problems),
    _https.resource(_https_problems),
]
