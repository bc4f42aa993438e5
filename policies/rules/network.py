"""Network exposure: every workload under a NetworkPolicy, nothing exposed but the ingress gateway."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource, Severity

from ._support import (
    CORE,
    EXEMPT_WORKLOADS,
    Rule,
    dig,
    in_namespace,
    is_release,
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
    template_labels,
    text,
    walk,
    workloads,
)

NETWORKING = "networking.k8s.io"

_coverage = Rule(
    name="network-policy-coverage",
    description="Every workload's pods are selected by a NetworkPolicy in their namespace, so only "
    "the traffic the catalog allows reaches them (default deny).",
    remediation="declare a NetworkPolicy whose podSelector matches the workload's pods",
    severity=Severity.HIGH,
    knobs={"exempt": EXEMPT_WORKLOADS},
)


def _coverage_problems(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    selector = ("spec", "podSelector")
    for w in workloads(resources, config["exempt"]):
        if not selecting(resources, NETWORKING, ("NetworkPolicy",), selector, w.pod_labels, w.namespace):
            yield w.urn, f"no NetworkPolicy selects the pods of {w.name}"
    # Jobs hold credentials too (the migration Jobs: two databases' worth).
    for job in of_kind(resources, "batch", "Job", "CronJob"):
        labels = template_labels(pod_template(job.resource_type, job.props) or {})
        namespace = namespace_of(job.props)
        if not selecting(resources, NETWORKING, ("NetworkPolicy",), selector, labels, namespace):
            yield job.urn, f"no NetworkPolicy selects the pods of Job {name_of(job.props, job.name)}"


_default_deny = Rule(
    name="namespace-default-deny",
    description="Every namespace the stack declares has a default-deny NetworkPolicy (all pods, "
    "Ingress and Egress, no rules), so a pod no other policy names can neither be reached nor "
    "reach anything.",
    remediation="declare a NetworkPolicy with podSelector: {} and policyTypes [Ingress, Egress] and "
    "no rules in the namespace; then allow each needed path with its own policy",
    severity=Severity.HIGH,
    knobs={"exemptNamespaces": string_list([], "Namespaces that need no default-deny policy.")},
)


def is_default_deny(policy: PolicyResource) -> bool:
    """A NetworkPolicy selecting every pod, isolating both ways, allowing nothing."""
    spec = mapping(dig(policy.props, "spec"))
    return (
        mapping(spec.get("podSelector")) == {}
        and isinstance(spec.get("podSelector"), Mapping)
        and {text(t) for t in items(spec.get("policyTypes"))} == {"Ingress", "Egress"}
        and not items(spec.get("ingress"))
        and not items(spec.get("egress"))
    )


def _default_deny_problems(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    policies = of_kind(resources, "networking.k8s.io", "NetworkPolicy")
    for ns in of_kind(resources, CORE, "Namespace"):
        name = name_of(ns.props)
        if name in config["exemptNamespaces"]:
            continue
        if not any(is_default_deny(p) for p in in_namespace(policies, name)):
            yield ns.urn, f"namespace {name or '?'} has no default-deny NetworkPolicy"


_exposure = Rule(
    name="no-external-services",
    description="No Service of type LoadBalancer or NodePort except the ingress gateway, and no "
    "Service with externalIPs (a man-in-the-middle path, CVE-2020-8554): the edge is the one way in.",
    remediation="use type ClusterIP and route through the Istio ingress gateway",
    severity=Severity.HIGH,
    knobs={
        "allowedServices": string_list(
            ["istio-ingressgateway", "istio-ingress", "ingressgateway"],
            "Service names (metadata.name or the 'istio' label) that may be exposed.",
        ),
        "allowedCharts": string_list(
            ["gateway"], "Charts whose Services may be exposed (the Istio gateway)."
        ),
    },
)


_EXPOSED = ("LoadBalancer", "NodePort")


def _exposure_problems(token: str, props: Mapping[str, Any], config: Mapping[str, Any]) -> Iterator[str]:
    if is_release(token):
        # A chart's Services are invisible to the pack; its values are not.
        chart = text(props.get("chart")).rsplit("/", 1)[-1]
        if chart in config["allowedCharts"]:
            return
        for path, node in walk(props.get("values")):
            if path.rsplit(".", 1)[-1].lower().endswith("service") and text(node.get("type")) in _EXPOSED:
                yield f"values.{path}.type is {text(node.get('type'))} in chart {chart}"
        return
    if not kube(token, CORE, "Service"):
        return
    kind = text(dig(props, "spec", "type")) or "ClusterIP"
    allowed = set(config["allowedServices"])
    name = name_of(props)
    if kind in _EXPOSED and name not in allowed and labels_of(props).get("istio") not in allowed:
        yield f"Service {name or '?'} is of type {kind}"
    if items(dig(props, "spec", "externalIPs")):
        yield f"Service {name or '?'} sets externalIPs"


POLICIES = [
    _coverage.stack(_coverage_problems),
    _default_deny.stack(_default_deny_problems),
    _exposure.resource(_exposure_problems),
]
