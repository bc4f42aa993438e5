"""Pod Security Admission on every namespace the stack declares.

Source: Kubernetes' Pod Security Admission (the ``pod-security.kubernetes.io/*`` labels). The pod
rules (restricted-pod-security) check what the pack can see; admission also checks the pods the
charts render, which the pack cannot.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource, Severity

from ._support import CORE, Rule, labels_of, name_of, of_kind, string_list

PREFIX = "pod-security.kubernetes.io"

_psa = Rule(
    name="pod-security-admission",
    description="Every namespace the stack declares enforces a Pod Security Standard at admission "
    "(restricted unless listed as an exception) with a pinned version, and audits and warns at "
    "restricted.",
    remediation="label the namespace pod-security.kubernetes.io/enforce: restricted (and audit, warn, "
    "each with a -version); list a namespace that must enforce less in this rule's knobs, with the "
    "reason in infra/pod_security.py",
    severity=Severity.HIGH,
    knobs={
        "baselineNamespaces": string_list([], "Namespaces that may enforce baseline."),
        "privilegedNamespaces": string_list([], "Namespaces that may enforce privileged."),
    },
)


def _psa_problems(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    for ns in of_kind(resources, CORE, "Namespace"):
        name, found = name_of(ns.props) or "?", labels_of(ns.props)
        enforce = found.get(f"{PREFIX}/enforce", "")
        allowed = {"restricted"}
        if name in config["baselineNamespaces"]:
            allowed.add("baseline")
        if name in config["privilegedNamespaces"]:
            allowed |= {"baseline", "privileged"}
        if enforce not in allowed:
            shown = enforce or "unset"
            yield ns.urn, f"namespace {name} enforces {shown}; allowed: {', '.join(sorted(allowed))}"
        for mode in ("audit", "warn"):
            if found.get(f"{PREFIX}/{mode}") != "restricted":
                yield ns.urn, f"namespace {name} does not {mode} at restricted"
        for mode in ("enforce", "audit", "warn"):
            version = found.get(f"{PREFIX}/{mode}-version", "")
            if not version or version == "latest":
                yield ns.urn, f"namespace {name}: {mode}-version is {version or 'unset'}, not pinned"


POLICIES = [_psa.stack(_psa_problems)]
