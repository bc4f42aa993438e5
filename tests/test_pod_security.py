"""Pod Security Admission: every namespace a Kubernetes stack declares enforces its level (one
list of exceptions, infra/pod_security.py), and the policy pack's config holds the same list."""

from __future__ import annotations

import json

import pytest

from infra import pod_security
from tests.conftest import ROOT, manifests_of, rendered

STACKS = ["dev", "staging", "prod"]


@pytest.mark.parametrize("stack", STACKS)
def test_every_declared_namespace_carries_its_pod_security_labels(stack: str) -> None:
    namespaces = [o for o in manifests_of(rendered(stack)) if o["kind"] == "Namespace"]
    assert namespaces
    for ns in namespaces:
        expected = pod_security.labels(ns["metadata"]["name"])
        assert expected.items() <= ns["metadata"]["labels"].items(), ns["metadata"]["name"]


def test_the_workloads_namespace_enforces_restricted() -> None:
    assert pod_security.labels("vinylhound")["pod-security.kubernetes.io/enforce"] == "restricted"


def test_every_label_audits_and_warns_at_restricted_with_a_pinned_version() -> None:
    labels = pod_security.labels("monitoring")
    assert (
        labels["pod-security.kubernetes.io/audit"]
        == labels["pod-security.kubernetes.io/warn"]
        == "restricted"
    )
    assert all(
        labels[f"pod-security.kubernetes.io/{m}-version"] == pod_security.VERSION
        for m in ("enforce", "audit", "warn")
    )


@pytest.mark.parametrize("stack", STACKS)
def test_the_policy_config_allows_exactly_the_documented_exceptions(stack: str) -> None:
    config = json.loads((ROOT / "policies" / "config" / f"{stack}.json").read_text())[
        "pod-security-admission"
    ]
    by_level = {
        level: sorted(ns for ns, (lvl, _) in pod_security.EXCEPTIONS.items() if lvl == level)
        for level in ("baseline", "privileged")
    }
    assert sorted(config["baselineNamespaces"]) == by_level["baseline"]
    assert sorted(config["privilegedNamespaces"]) == by_level["privileged"]
