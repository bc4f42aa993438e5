"""The rendered mesh and registry: Istio installed in order, every custom resource after its CRDs
and valid against Istio's schemas, circuit breakers, mTLS, caller-only authorization, Consul."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from infra import catalog
from infra.config import parse_platform_config
from infra.targets.kubernetes.mesh import istiod_values
from ops.crds import validate_custom
from ops.mockrun import Registration, Run
from ops.render import HELM_RELEASE
from tests.conftest import KUBE_STACKS, manifests_of, rendered

ISTIO_REPO = "https://istio-release.storage.googleapis.com/charts"
INGRESS = "cluster.local/ns/istio-ingress/sa/istio-ingressgateway"


def releases(run: Run) -> dict[str, Registration]:
    """By the Helm release's name."""
    return {r.inputs["name"]: r for r in run.registrations if r.type == HELM_RELEASE}


def objects(stack: str, kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests_of(rendered(stack)) if m["kind"] == kind}


def workload_netpols(stack: str) -> dict[str, dict[str, Any]]:
    """The NetworkPolicies of the workloads (other features have their own, e.g. NATS)."""
    return {
        name: netpol
        for name, netpol in objects(stack, "NetworkPolicy").items()
        if netpol["metadata"]["namespace"] == "vinylhound" and name in enabled(stack)
    }


def enabled(stack: str) -> set[str]:
    return set(objects(stack, "Deployment"))


# --- installation order -----------------------------------------------------------------------


def test_istio_charts_install_base_then_istiod_then_gateway_at_one_pinned_version() -> None:
    rel = releases(rendered("prod"))
    base, istiod, gateway = rel["istio-base"], rel["istiod"], rel["istio-ingressgateway"]
    assert [r.inputs["chart"] for r in (base, istiod, gateway)] == ["base", "istiod", "gateway"]
    assert {r.inputs["version"] for r in (base, istiod, gateway)} == {"1.30.4"}
    assert {r.inputs["repositoryOpts"]["repo"] for r in (base, istiod, gateway)} == {ISTIO_REPO}
    assert base.urn in istiod.dependencies and istiod.urn in gateway.dependencies
    assert (base.inputs["namespace"], istiod.inputs["namespace"], gateway.inputs["namespace"]) == (
        "istio-system",
        "istio-system",
        "istio-ingress",
    )


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_every_istio_resource_depends_on_the_base_release(stack: str) -> None:
    run = rendered(stack)
    base = releases(run)["istio-base"].urn
    istio = [r for r in run.registrations if "istio.io" in r.type]
    assert istio and all(base in r.dependencies for r in istio)


def test_every_workload_waits_for_istiod_so_its_pods_get_a_sidecar() -> None:
    run = rendered("prod")
    istiod = releases(run)["istiod"].urn
    components = [r for r in run.registrations if r.type == "vinylhound:kubernetes:Microservice"]
    assert components and all(istiod in r.dependencies for r in components)


def test_istiod_values_take_extra_mesh_config_without_losing_their_own() -> None:
    cfg = parse_platform_config(
        {
            "environment": "dev",
            "domain": "dev.vinylhound.app",
            "imageRegistry": "ghcr.io/vinylhound",
            "services": {"monolith": {"image": {"tag": "1"}}},
        },
        "stacks/Pulumi.dev.yaml",
    )
    tracing = {"extensionProviders": [{"name": "otel", "opentelemetry": {"service": "jaeger", "port": 4317}}]}
    mesh = istiod_values(cfg, {**tracing, "defaultConfig": {"tracing": {}}})["meshConfig"]
    assert mesh["extensionProviders"] == tracing["extensionProviders"]
    assert mesh["defaultConfig"] == {"holdApplicationUntilProxyStarts": True, "tracing": {}}
    assert mesh["enablePrometheusMerge"] is True


# --- schemas ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_every_istio_resource_is_valid_against_the_istio_crd_schemas(stack: str) -> None:
    found = [m for m in manifests_of(rendered(stack)) if m["apiVersion"].split("/")[0].endswith(".istio.io")]
    results = [validate_custom(m) for m in found]
    assert found and [r for r in results if r.status != "ok"] == []


def test_the_istio_schema_check_catches_a_misspelt_field() -> None:
    rule = copy.deepcopy(objects("prod", "DestinationRule")["monolith"])
    rule["spec"]["trafficPolicy"]["outlierDetection"]["consecutive5xxError"] = 3
    result = validate_custom(rule)
    assert result.status == "invalid"
    assert result.message.startswith("spec.trafficPolicy.outlierDetection.consecutive5xxError")


def test_the_istio_schema_check_catches_a_bad_enum() -> None:
    policy = copy.deepcopy(objects("prod", "PeerAuthentication")["default"])
    policy["spec"]["mtls"]["mode"] = "MANDATORY"
    assert validate_custom(policy).status == "invalid"


# --- traffic policy ---------------------------------------------------------------------------


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_every_workload_has_a_circuit_breaker_and_mutual_tls(stack: str) -> None:
    rules = objects(stack, "DestinationRule")
    assert set(rules) == enabled(stack)
    for name, rule in rules.items():
        policy = rule["spec"]["trafficPolicy"]
        assert rule["spec"]["host"] == f"{name}.vinylhound.svc.cluster.local"
        assert policy["tls"] == {"mode": "ISTIO_MUTUAL"}
        assert policy["outlierDetection"]["consecutive5xxErrors"] > 0
        assert policy["connectionPool"]["tcp"]["maxConnections"] > 0
        assert policy["connectionPool"]["http"]["http1MaxPendingRequests"] > 0


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_staging_and_prod_enforce_strict_mtls(stack: str) -> None:
    # The workloads' namespace (NATS has its own, see test_network_policies).
    (policy,) = [
        m
        for m in manifests_of(rendered(stack))
        if m["kind"] == "PeerAuthentication" and m["metadata"]["namespace"] == "vinylhound"
    ]
    assert "selector" not in policy["spec"]
    assert policy["spec"]["mtls"] == {"mode": "STRICT"}


def test_prod_edge_serves_https_from_the_configured_secret_and_only_redirects_http() -> None:
    gateway = objects("prod", "Gateway")["vinylhound-edge"]
    servers = {s["port"]["number"]: s for s in gateway["spec"]["servers"]}
    assert gateway["metadata"]["namespace"] == "istio-ingress"
    assert servers[443]["tls"]["credentialName"] == "vinylhound-tls" and servers[443]["hosts"] == [
        "vinylhound/vinylhound.app"
    ]
    assert servers[80]["tls"] == {"httpsRedirect": True}


def allowed(policy: dict[str, Any], principal: str, port: int) -> bool:
    """Whether an ALLOW policy admits ``principal`` on ``port`` (Istio: any rule, all its parts)."""
    for rule in policy["spec"]["rules"]:
        sources = [f["source"] for f in rule.get("from", [])]
        ports = [p for t in rule.get("to", []) for p in t["operation"].get("ports", [])]
        if sources and not any(principal in s.get("principals", []) for s in sources):
            continue
        if ports and str(port) not in ports:
            continue
        return True
    return False


def principal(workload: str) -> str:
    return f"cluster.local/ns/vinylhound/sa/{workload}"


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_the_ingress_gateway_may_call_every_workload(stack: str) -> None:
    for name, policy in objects(stack, "AuthorizationPolicy").items():
        assert allowed(policy, INGRESS, catalog.workload(name).port)


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_services_may_not_call_each_other(stack: str) -> None:
    policies = objects(stack, "AuthorizationPolicy")
    services = [w.name for w in catalog.WORKLOADS if w.role == "service" and w.name in policies]
    for callee in services:
        for caller in services:
            assert not allowed(policies[callee], principal(caller), catalog.workload(callee).port)


def test_with_the_gateway_in_dev_it_may_call_the_services_and_the_monolith_but_not_the_front_end() -> None:
    policies = objects("dev", "AuthorizationPolicy")
    for name in ("monolith", "user-service", "catalog-service", "rating-service", "playlist-service"):
        assert allowed(policies[name], principal("api-gateway"), catalog.workload(name).port)
    assert not allowed(policies["web-frontend"], principal("api-gateway"), 3000)


def test_without_the_gateway_in_prod_only_the_edge_may_call_the_monolith() -> None:
    policy = objects("prod", "AuthorizationPolicy")["monolith"]
    assert not allowed(policy, principal("api-gateway"), 8080)
    assert not allowed(policy, principal("user-service"), 8080)


@pytest.mark.parametrize("port", [15020, 15090])
def test_authorization_leaves_sidecar_metrics_scrapable(port: int) -> None:
    for policy in objects("prod", "AuthorizationPolicy").values():
        assert allowed(policy, "cluster.local/ns/monitoring/sa/prometheus", port)


# --- network policy and environment contributed to every workload -----------------------------


def egress_to(netpol: dict[str, Any], namespace: str, port: int) -> bool:
    for rule in netpol["spec"]["egress"]:
        peers = rule.get("to", [])
        names = [
            p.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
            for p in peers
        ]
        if namespace in names and any(p["port"] == port for p in rule.get("ports", [])):
            return True
    return False


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_every_workload_may_reach_istiod_for_its_sidecar(stack: str) -> None:
    for netpol in workload_netpols(stack).values():
        assert egress_to(netpol, "istio-system", 15012)


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_every_workload_still_admits_the_edge_namespace(stack: str) -> None:
    for name, netpol in workload_netpols(stack).items():
        peers = [p for rule in netpol["spec"]["ingress"] for p in rule["from"]]
        edge = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-ingress"}}}
        assert edge in peers, name


def test_in_dev_the_gateway_may_reach_the_monolith_the_mesh_routes_its_calls_to() -> None:
    netpols = workload_netpols("dev")
    gateway_egress = netpols["api-gateway"]["spec"]["egress"]
    assert {
        "to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "monolith"}}}],
        "ports": [{"protocol": "TCP", "port": 8080}],
    } in gateway_egress
    monolith_from = [p for rule in netpols["monolith"]["spec"]["ingress"] for p in rule["from"]]
    assert {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "api-gateway"}}} in monolith_from


def env_of(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_every_backend_gets_the_registry_address_and_may_reach_it(stack: str) -> None:
    netpols = workload_netpols(stack)
    for name, deployment in objects(stack, "Deployment").items():
        if catalog.workload(name).role == "frontend":
            assert "SERVICE_REGISTRY" not in env_of(deployment)
            continue
        assert env_of(deployment)["SERVICE_REGISTRY"] == "consul-server.consul.svc.cluster.local:8501"
        assert egress_to(netpols[name], "consul", 8501)


# --- Consul -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("stack", "servers"), [("dev", 1), ("staging", 3), ("prod", 3)])
def test_consul_runs_the_environments_number_of_servers(stack: str, servers: int) -> None:
    values = releases(rendered(stack))["consul"].inputs["values"]
    assert values["server"]["replicas"] == servers


def test_consul_registers_the_workloads_services_without_its_own_mesh_or_a_public_ui() -> None:
    consul = releases(rendered("prod"))["consul"].inputs
    values = consul["values"]
    assert consul["repositoryOpts"]["repo"] == "https://helm.releases.hashicorp.com"
    assert consul["chart"] == "consul" and consul["version"] == "1.8.2"
    assert values["syncCatalog"]["enabled"] and values["syncCatalog"]["toConsul"]
    assert values["syncCatalog"]["k8sAllowNamespaces"] == ["vinylhound"]
    assert values["connectInject"]["enabled"] is False and values["server"]["connect"] is False
    assert values["ui"]["service"]["type"] == "ClusterIP"


def test_rendered_istiod_carries_the_tracing_provider_beside_its_own_mesh_settings() -> None:
    mesh = releases(rendered("prod"))["istiod"].inputs["values"]["meshConfig"]
    assert [p["name"] for p in mesh["extensionProviders"]] == ["vinylhound-jaeger"]
    assert mesh["defaultConfig"]["holdApplicationUntilProxyStarts"] is True
