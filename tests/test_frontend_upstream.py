"""The front end's API upstream on Kubernetes: the rendered ``vinylhound-backend`` Service selects
exactly the workload the docker target aliases (the api-gateway, else the monolith), on the port
nginx proxies to, and the network and authorization policies let the front end reach it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from infra import catalog
from tests.conftest import KUBE_STACKS, manifests_of, rendered
from tests.test_mesh_render import allowed

FRONTEND = catalog.workload("web-frontend")
#: Which workload each stack's front end should reach: the api-gateway where it is enabled.
EXPECTED_BACKEND = {"dev": "api-gateway", "staging": "monolith", "prod": "monolith"}


def objects(stack: str, kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests_of(rendered(stack)) if m["kind"] == kind}


def selects(selector: Mapping[str, str], pod_labels: Mapping[str, str]) -> bool:
    """Kubernetes equality-based selection: every selector label is on the pod."""
    return all(pod_labels.get(k) == v for k, v in selector.items())


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    return dict(deployment["spec"]["template"]["metadata"]["labels"])


def upstream(stack: str) -> dict[str, Any]:
    assert FRONTEND.api_upstream_host is not None
    return objects(stack, "Service")[FRONTEND.api_upstream_host]


def backend_deployment(stack: str) -> dict[str, Any]:
    """The one Deployment whose pods the upstream Service selects."""
    selector = upstream(stack)["spec"]["selector"]
    (picked,) = [d for d in objects(stack, "Deployment").values() if selects(selector, pod_labels(d))]
    return picked


def port_allowed(rule: Mapping[str, Any], port: int) -> bool:
    ports = rule.get("ports")
    return not ports or any(p.get("port") == port for p in ports)


def peer_selects(peer: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A same-namespace pod peer (no namespaceSelector) selecting ``labels``."""
    if "namespaceSelector" in peer or "podSelector" not in peer:
        return False
    return selects(peer["podSelector"].get("matchLabels", {}), labels)


def policies_for(stack: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
    return [
        n
        for n in objects(stack, "NetworkPolicy").values()
        if n["metadata"]["namespace"] == "vinylhound"
        and selects(n["spec"]["podSelector"].get("matchLabels", {}), labels)
    ]


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_every_kubernetes_stack_has_the_upstream_service_nginx_proxies_to(stack: str) -> None:
    svc = upstream(stack)
    assert svc["metadata"]["namespace"] == "vinylhound" and svc["spec"]["type"] == "ClusterIP"
    assert [p["port"] for p in svc["spec"]["ports"]] == [FRONTEND.api_upstream_port]


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_the_upstream_selects_exactly_the_gateway_or_else_the_monolith(stack: str) -> None:
    deployment = backend_deployment(stack)
    assert deployment["metadata"]["name"] == EXPECTED_BACKEND[stack]
    container_ports = {
        p["containerPort"] for c in deployment["spec"]["template"]["spec"]["containers"] for p in c["ports"]
    }
    assert {p["targetPort"] for p in upstream(stack)["spec"]["ports"]} <= container_ports


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_network_policy_lets_the_front_end_reach_the_upstream(stack: str) -> None:
    backend = backend_deployment(stack)
    frontend = objects(stack, "Deployment")["web-frontend"]
    port = upstream(stack)["spec"]["ports"][0]["targetPort"]
    backend_labels, frontend_labels = pod_labels(backend), pod_labels(frontend)
    egress_ok = [
        any(
            port_allowed(rule, port) and any(peer_selects(p, backend_labels) for p in rule.get("to", []))
            for rule in n["spec"].get("egress", [])
        )
        for n in policies_for(stack, frontend_labels)
        if "Egress" in n["spec"]["policyTypes"]
    ]
    ingress_ok = [
        any(
            port_allowed(rule, port) and any(peer_selects(p, frontend_labels) for p in rule.get("from", []))
            for rule in n["spec"].get("ingress", [])
        )
        for n in policies_for(stack, backend_labels)
        if "Ingress" in n["spec"]["policyTypes"]
    ]
    # Kubernetes: once a policy selects a pod for a direction, some policy must allow the traffic.
    assert egress_ok and any(egress_ok)
    assert ingress_ok and any(ingress_ok)


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_authorization_admits_the_front_ends_identity_at_the_upstream(stack: str) -> None:
    backend = backend_deployment(stack)
    frontend = objects(stack, "Deployment")["web-frontend"]
    account = frontend["spec"]["template"]["spec"]["serviceAccountName"]
    principal = f"cluster.local/ns/vinylhound/sa/{account}"
    port = upstream(stack)["spec"]["ports"][0]["targetPort"]
    policies = [
        p
        for p in objects(stack, "AuthorizationPolicy").values()
        if selects(p["spec"]["selector"]["matchLabels"], pod_labels(backend))
    ]
    assert policies and all(p["spec"]["action"] == "ALLOW" for p in policies)
    assert any(allowed(p, principal, port) for p in policies)
