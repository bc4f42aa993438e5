"""The service mesh (Istio): circuit breakers, bounded retries and timeouts, STRICT mutual TLS.

Applicability: these rules apply to a stack that uses Istio, i.e. that declares any
``*.istio.io`` resource or installs the ``istiod`` chart. A stack without a mesh is the business of
``platform-components``, which says which parts of the platform an environment must have.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource, Severity

from ._support import (
    EXEMPT_WORKLOADS,
    Rule,
    StackResources,
    Workload,
    dig,
    grouped,
    in_stack_order,
    integer,
    items,
    kube,
    mapping,
    name_of,
    namespace_of,
    namespace_of_resource,
    number,
    of_kind,
    releases,
    selecting,
    services_of,
    string_list,
    text,
    uses_group,
    workloads,
)

NETWORKING = "networking.istio.io"
SECURITY = "security.istio.io"


def uses_istio(resources: Sequence[PolicyResource]) -> bool:
    """Whether the stack runs a mesh: Istio resources or the istiod chart."""
    return uses_group(resources, "istio.io") or bool(releases(resources, "istiod"))


def host_matches(host: str, rule_namespace: str, service: str, namespace: str) -> bool:
    """Whether an Istio host (short, ``name.ns``, FQDN or ``*.ns.svc...`` wildcard) names the Service."""
    fqdn = f"{service}.{namespace}.svc.cluster.local"
    if host == "*":
        return True
    if host.startswith("*."):
        return fqdn.endswith(host[1:])
    if "." not in host:
        return host == service and rule_namespace == namespace
    return host in (f"{service}.{namespace}", f"{service}.{namespace}.svc", fqdn)


_SERVICE_SUFFIXES = ("", ".svc", ".svc.cluster.local")


def host_keys(host: str, rule_namespace: str) -> list[tuple[str, str]] | None:
    """Every (service, namespace) that ``host_matches`` accepts for ``host``; ``None`` for a
    wildcard, which has to be matched against each service."""
    if host == "*" or host.startswith("*."):
        return None
    if "." not in host:
        return [(host, rule_namespace)]
    keys = []
    for suffix in _SERVICE_SUFFIXES:
        if host.endswith(suffix):
            rest = host.removesuffix(suffix) if suffix else host
            keys += [(rest[:i], rest[i + 1 :]) for i, c in enumerate(rest) if c == "."]
    return keys


class _HostIndex:
    """DestinationRules by the (service, namespace) their host names; wildcards apart."""

    def __init__(self, rules: Sequence[PolicyResource]) -> None:
        self.by_service: dict[tuple[str, str], list[PolicyResource]] = {}
        self.wildcards: list[PolicyResource] = []
        for r in rules:
            keys = host_keys(text(dig(r.props, "spec", "host")), namespace_of(r.props))
            if keys is None:
                self.wildcards.append(r)
            for key in keys or ():
                self.by_service.setdefault(key, []).append(r)

    def candidates(self, names: Sequence[str], namespace: str) -> list[PolicyResource]:
        return [*self.wildcards, *(r for n in names for r in self.by_service.get((n, namespace), ()))]


def _rules_for(resources: Sequence[PolicyResource], w: Workload) -> list[PolicyResource]:
    """The DestinationRules whose host names one of the workload's Services (or the workload)."""
    names = [name_of(s.props) for s in services_of(resources, w)] or [w.object_name]
    if isinstance(resources, StackResources):
        index = resources.view(
            _HostIndex, lambda: _HostIndex(of_kind(resources, NETWORKING, "DestinationRule"))
        )
        rules = in_stack_order(resources, index.candidates(names, w.namespace))
    else:
        rules = of_kind(resources, NETWORKING, "DestinationRule")
    return [
        r
        for r in rules
        if any(
            host_matches(text(dig(r.props, "spec", "host")), namespace_of(r.props), n, w.namespace)
            for n in names
        )
    ]


# --- circuit breaker ----------------------------------------------------------------------------

_breaker = Rule(
    name="circuit-breaker",
    description="Every service has an Istio DestinationRule with a circuit breaker: outlier detection "
    "(eject failing endpoints) and a connection pool (bound queued requests).",
    remediation="declare a DestinationRule for the service host with trafficPolicy.outlierDetection "
    "and trafficPolicy.connectionPool",
    severity=Severity.HIGH,
    knobs={"exempt": EXEMPT_WORKLOADS},
)


def _breaker_problems(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    if not uses_istio(resources):
        return
    for w in workloads(resources, config["exempt"]):
        matching = _rules_for(resources, w)
        if not matching:
            yield w.urn, f"no DestinationRule for {w.name}"
            continue
        for r in matching:
            policy = mapping(dig(r.props, "spec", "trafficPolicy"))
            missing = [k for k in ("outlierDetection", "connectionPool") if not mapping(policy.get(k))]
            if missing:
                yield r.urn, f"DestinationRule {name_of(r.props)} for {w.name} has no {' or '.join(missing)}"


# --- retries and timeouts -------------------------------------------------------------------------

_routes = Rule(
    name="http-route-resilience",
    description="Every HTTP route of a VirtualService has a timeout and bounded retries (attempts and "
    "a per-try timeout), so a slow service cannot hold callers forever nor be retried into the ground.",
    remediation="set http[].timeout and http[].retries "
    "{attempts <= maxRetryAttempts, perTryTimeout, retryOn}",
    severity=Severity.HIGH,
    knobs={"maxRetryAttempts": integer(3, "The most retries a route may make.", 0)},
)


def _route_problems(token: str, props: Mapping[str, Any], config: Mapping[str, Any]) -> Iterator[str]:
    if not kube(token, NETWORKING, "VirtualService"):
        return
    most = config["maxRetryAttempts"]
    for index, route in enumerate(mapping(r) for r in items(dig(props, "spec", "http"))):
        if not items(route.get("route")):
            continue  # redirects and direct responses call nothing
        label = f"http[{index}]" + (f" ({text(route.get('name'))})" if route.get("name") else "")
        if not text(route.get("timeout")):
            yield f"{label} has no timeout"
        retries = mapping(route.get("retries"))
        attempts = number(retries.get("attempts"))
        if attempts is None:
            yield f"{label} has no retries.attempts"
        elif attempts > most:
            yield f"{label} retries {attempts:g} times; at most {most:g}"
        if attempts and not text(retries.get("perTryTimeout")):
            yield f"{label} has no retries.perTryTimeout"


# --- mutual TLS -----------------------------------------------------------------------------------

_mtls = Rule(
    name="strict-mtls",
    description="Every workload's traffic is mutual TLS only: a PeerAuthentication in mode STRICT "
    "covers it (mesh-wide, namespace or workload) and no DestinationRule turns client TLS off.",
    remediation="declare PeerAuthentication spec.mtls.mode: STRICT for the namespace (or mesh-wide in "
    "the root namespace) and use trafficPolicy.tls.mode ISTIO_MUTUAL in DestinationRules",
    severity=Severity.HIGH,
    knobs={
        "rootNamespace": string_list(["istio-system"], "Istio root namespaces (mesh-wide policy)."),
        "exempt": EXEMPT_WORKLOADS,
    },
)


def _mode(auth: PolicyResource) -> str:
    return text(dig(auth.props, "spec", "mtls", "mode")) or "UNSET"


def _effective_mode(
    resources: Sequence[PolicyResource], auths: Sequence[PolicyResource], w: Workload, roots: set[str]
) -> tuple[str, PolicyResource | None]:
    """The most specific PeerAuthentication wins: workload selector, then namespace, then mesh.
    ``auths`` are the stack's PeerAuthentications (the mesh-wide ones are looked for there)."""
    selector = ("spec", "selector")
    for a in selecting(resources, SECURITY, ("PeerAuthentication",), selector, w.pod_labels, w.namespace):
        return _mode(a), a
    for a in grouped(resources, SECURITY, "PeerAuthentication", namespace_of_resource)(w.namespace):
        if dig(a.props, "spec", "selector") is None and _mode(a) != "UNSET":
            return _mode(a), a
    for a in auths:
        if namespace_of(a.props) in roots and dig(a.props, "spec", "selector") is None:
            return _mode(a), a
    return "PERMISSIVE (Istio's default)", None


def _mtls_problems(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    if not uses_istio(resources):
        return
    auths = of_kind(resources, SECURITY, "PeerAuthentication")
    roots = set(config["rootNamespace"])
    for w in workloads(resources, config["exempt"]):
        mode, source = _effective_mode(resources, auths, w, roots)
        if mode != "STRICT":
            yield (source.urn if source else w.urn), f"mTLS for {w.name} is {mode}, not STRICT"
        elif source is not None:
            for port, setting in mapping(dig(source.props, "spec", "portLevelMtls")).items():
                if text(dig(setting, "mode")) not in ("STRICT", "UNSET", ""):
                    yield source.urn, f"port {port} of {w.name} is {text(dig(setting, 'mode'))}, not STRICT"
        for r in _rules_for(resources, w):
            tls = text(dig(r.props, "spec", "trafficPolicy", "tls", "mode"))
            if tls and tls != "ISTIO_MUTUAL":
                yield r.urn, f"DestinationRule {name_of(r.props)} sets tls.mode {tls}, not ISTIO_MUTUAL"


POLICIES = [
    _breaker.stack(_breaker_problems),
    _routes.resource(_route_problems),
    _mtls.stack(_mtls_problems),
]
