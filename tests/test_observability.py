"""Observability in the rendered stacks: tracing env, scrape coverage evaluated against the pods,
network access for scraping and span export, chart wiring, dashboards and storage rules."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlparse

import pulumi
import pytest

from components.labels import LabelContext
from infra import catalog, endpoints
from infra.catalog import WORKLOADS
from infra.config import ConfigError, parse_platform_config
from infra.targets.kubernetes.network import NAMESPACE_NAME_LABEL
from infra.targets.kubernetes.observability import Observability, monitors, observability_args, tracing
from ops.mockrun import Registration, Run
from ops.render import HELM_RELEASE
from tests.conftest import KUBE_STACKS, manifests_of, rendered, run_program
from tests.test_config import SOURCE, baseline

Obj = dict[str, Any]


# --- helpers: evaluate what Kubernetes and the operator would evaluate ----------------------


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) against a set of labels."""
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def allows(
    policy: Obj, direction: str, peer_namespace: str, peer_labels: Mapping[str, str], port: int
) -> bool:
    """Whether a NetworkPolicy lets traffic in (``ingress``) from, or out (``egress``) to, a pod."""
    peers_key = "from" if direction == "ingress" else "to"
    own_namespace = policy["metadata"]["namespace"]
    for rule in policy["spec"].get(direction) or []:
        ports = rule.get("ports")
        if ports and not any(p.get("port") == port for p in ports):
            continue
        peers = rule.get(peers_key)
        if not peers:
            return True
        for peer in peers:
            if "ipBlock" in peer:
                continue
            ns_sel = peer.get("namespaceSelector")
            ns_ok = (
                selects(ns_sel, {NAMESPACE_NAME_LABEL: peer_namespace})
                if ns_sel is not None
                else peer_namespace == own_namespace
            )
            pod_sel = peer.get("podSelector")
            if ns_ok and (pod_sel is None or selects(pod_sel, peer_labels)):
                return True
    return False


def of_kind(run: Run, kind: str) -> list[Obj]:
    return [m for m in manifests_of(run) if m["kind"] == kind]


def workload_policies(run: Run) -> list[Obj]:
    """The NetworkPolicies of catalog workloads (other components, e.g. NATS, have their own)."""
    names = set(catalog.names())
    return [
        p
        for p in of_kind(run, "NetworkPolicy")
        if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") in names
    ]


def release(run: Run, name: str) -> Registration:
    (reg,) = [r for r in run.registrations if r.type == HELM_RELEASE and r.inputs["name"] == name]
    return reg


def env_of(deployment: Obj) -> dict[str, str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def pod_labels(deployment: Obj) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


# --- tracing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_every_workload_exports_spans_to_the_jaeger_release(stack: str) -> None:
    run = rendered(stack)
    jaeger = release(run, tracing.RELEASE).inputs
    for deployment in of_kind(run, "Deployment"):
        endpoint = urlparse(env_of(deployment)["OTEL_EXPORTER_OTLP_ENDPOINT"])
        service, namespace = (endpoint.hostname or "").split(".")[:2]
        assert (service, namespace, endpoint.port) == (jaeger["name"], jaeger["namespace"], 4317)


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_every_workload_names_itself_its_environment_and_version(stack: str) -> None:
    for deployment in of_kind(rendered(stack), "Deployment"):
        env = env_of(deployment)
        attributes = dict(pair.split("=", 1) for pair in env["OTEL_RESOURCE_ATTRIBUTES"].split(","))
        assert env["OTEL_SERVICE_NAME"] == deployment["metadata"]["name"]
        assert attributes["deployment.environment"] == stack
        assert attributes["service.version"] == pod_labels(deployment)["app.kubernetes.io/version"]


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_every_workload_may_reach_the_collector_and_nothing_else_new(stack: str) -> None:
    run = rendered(stack)
    jaeger_ns = release(run, tracing.RELEASE).inputs["namespace"]
    for policy in workload_policies(run):
        assert allows(policy, "egress", jaeger_ns, tracing.POD_LABELS, 4317), policy["metadata"]["name"]
        # The collector rule opens the collector only, not the whole observability namespace.
        assert not allows(policy, "egress", jaeger_ns, {"app": "something-else"}, 4317)


def test_mesh_sampling_is_complete_in_dev_and_sparse_in_prod() -> None:
    def rate(stack: str) -> float:
        (telemetry,) = of_kind(rendered(stack), "Telemetry")
        return float(telemetry["spec"]["tracing"][0]["randomSamplingPercentage"])

    assert rate("dev") == 100 and rate("prod") < rate("staging") < 100


def test_the_mesh_provider_the_telemetry_uses_points_at_the_collector() -> None:
    provider = tracing.mesh_extension_provider()
    (telemetry,) = of_kind(rendered("prod"), "Telemetry")
    jaeger = release(rendered("prod"), tracing.RELEASE).inputs
    assert telemetry["metadata"]["namespace"] == "istio-system"
    assert telemetry["spec"]["tracing"][0]["providers"] == [{"name": provider["name"]}]
    host = provider["opentelemetry"]["service"]
    assert host.split(".")[:2] == [jaeger["name"], jaeger["namespace"]]
    assert provider["opentelemetry"]["port"] == 4317


def test_dev_keeps_traces_in_memory_and_prod_on_a_claimed_volume() -> None:
    dev = release(rendered("dev"), tracing.RELEASE).inputs["values"]
    assert "memory" in dev["userconfig"]["extensions"]["jaeger_storage"]["backends"]["primary_store"]
    prod_run = rendered("prod")
    prod = release(prod_run, tracing.RELEASE).inputs["values"]
    store = prod["userconfig"]["extensions"]["jaeger_storage"]["backends"]["primary_store"]
    (volume,) = prod["jaeger"]["extraVolumes"]
    (mount,) = prod["jaeger"]["extraVolumeMounts"]
    claims = {c["metadata"]["name"] for c in of_kind(prod_run, "PersistentVolumeClaim")}
    assert volume["persistentVolumeClaim"]["claimName"] in claims
    assert store["badger"]["directories"]["keys"].startswith(mount["mountPath"] + "/")


def test_the_jaeger_ui_is_not_exposed() -> None:
    run = rendered("prod")
    values = release(run, tracing.RELEASE).inputs["values"]["jaeger"]
    assert values["ingress"]["enabled"] is False and values["httproute"]["enabled"] is False
    assert values["service"]["type"] == "ClusterIP"
    assert not [
        m
        for m in manifests_of(run)
        if m["kind"] in {"Ingress", "Gateway", "VirtualService", "HTTPRoute"} and "jaeger" in json.dumps(m)
    ]


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_charts_come_from_their_official_repositories_pinned(stack: str) -> None:
    run = rendered(stack)
    repos = {
        "jaeger": "https://jaegertracing.github.io/helm-charts",
        "kube-prometheus-stack": "https://prometheus-community.github.io/helm-charts",
    }
    for name, repo in repos.items():
        inputs = release(run, name).inputs
        assert inputs["repositoryOpts"]["repo"] == repo and inputs["version"][0].isdigit()
    # Chart 4.x is the one that deploys Jaeger v2.
    assert int(release(run, "jaeger").inputs["version"].split(".")[0]) >= 4


# --- storage rules in config ------------------------------------------------------------------


def test_memory_trace_storage_outside_dev_is_one_config_error() -> None:
    raw = baseline()
    raw["observability"] = {"tracing": {"storage": {"backend": "memory"}}}
    with pytest.raises(ConfigError) as caught:
        parse_platform_config(raw, SOURCE)
    assert caught.value.lines() == [
        "stacks/Pulumi.prod.yaml: vinylhound:platform.observability.tracing.storage.backend: "
        "'memory' loses every trace on restart and is allowed only in dev; "
        "prod needs badger, elasticsearch or opensearch"
    ]


def test_memory_trace_storage_is_fine_in_dev() -> None:
    raw = baseline() | {"environment": "dev"}
    raw["observability"] = {"tracing": {"storage": {"backend": "memory"}}}
    assert parse_platform_config(raw, SOURCE).observability.trace_storage("dev").backend == "memory"


def test_an_unset_backend_is_persistent_outside_dev() -> None:
    assert parse_platform_config(baseline(), SOURCE).observability.trace_storage("prod").backend == "badger"


def test_elasticsearch_without_server_urls_is_rejected() -> None:
    raw = baseline()
    raw["observability"] = {"tracing": {"storage": {"backend": "elasticsearch"}}}
    with pytest.raises(ConfigError) as caught:
        parse_platform_config(raw, SOURCE)
    assert [line.split(": ", 2)[1] for line in caught.value.lines()] == [
        "vinylhound:platform.observability.tracing.storage.serverUrls"
    ]


def test_elasticsearch_storage_points_jaeger_at_the_configured_urls() -> None:
    raw = baseline()
    urls = ["https://es-0.search.internal:9200", "https://es-1.search.internal:9200"]
    raw["observability"] = {"tracing": {"storage": {"backend": "elasticsearch", "serverUrls": urls}}}
    storage = parse_platform_config(raw, SOURCE).observability.trace_storage("prod")
    values = tracing.jaeger_values(storage)
    store = values["userconfig"]["extensions"]["jaeger_storage"]["backends"]["primary_store"]
    assert store["elasticsearch"]["server_urls"] == urls and "extraVolumes" not in values["jaeger"]


# --- metrics ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_every_workload_is_covered_by_a_monitor_that_selects_its_pods(stack: str) -> None:
    run = rendered(stack)
    deployments = of_kind(run, "Deployment")
    pod_monitors = of_kind(run, "PodMonitor")
    services = of_kind(run, "Service")
    service_monitors = of_kind(run, "ServiceMonitor")
    for deployment in deployments:
        ns, labels = deployment["metadata"]["namespace"], pod_labels(deployment)
        by_pod = [
            m
            for m in pod_monitors
            if m["metadata"]["namespace"] == ns and selects(m["spec"]["selector"], labels)
        ]
        fronting = [
            s
            for s in services
            if s["metadata"]["namespace"] == ns and s["spec"]["selector"].items() <= labels.items()
        ]
        by_service = [
            m
            for m in service_monitors
            if m["metadata"]["namespace"] == ns
            and any(selects(m["spec"]["selector"], s["metadata"]["labels"]) for s in fronting)
        ]
        assert by_pod or by_service, deployment["metadata"]["name"]


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_each_sidecar_pod_monitor_selects_exactly_one_workload(stack: str) -> None:
    run = rendered(stack)
    app_ns = {d["metadata"]["namespace"] for d in of_kind(run, "Deployment")}
    for monitor in of_kind(run, "PodMonitor"):
        if monitor["metadata"]["namespace"] not in app_ns:
            continue
        matched = [
            d for d in of_kind(run, "Deployment") if selects(monitor["spec"]["selector"], pod_labels(d))
        ]
        assert len(matched) == 1, monitor["metadata"]["name"]


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_prometheus_may_scrape_every_sidecar(stack: str) -> None:
    run = rendered(stack)
    monitoring = release(run, "kube-prometheus-stack").inputs["namespace"]
    for policy in workload_policies(run):
        assert allows(policy, "ingress", monitoring, {"app.kubernetes.io/name": "prometheus"}, 15090)
        assert not allows(policy, "ingress", "default", {}, 15090)


def test_a_catalog_metrics_path_adds_a_service_monitor_and_scrape_access() -> None:
    with_metrics = replace(WORKLOADS[1], metrics_path="/metrics")
    monitor = monitors.app_service_monitor(with_metrics, "vinylhound", {"app.kubernetes.io/name": "x"}, {})
    assert monitor is not None and monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    (rule,) = monitors.scrape_ingress(with_metrics)
    assert {p["port"] for p in rule["ports"]} == {15090, with_metrics.port}
    assert monitors.app_service_monitor(WORKLOADS[1], "vinylhound", {}, {}) is None


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_monitoring_custom_resources_wait_for_the_chart_that_installs_their_crds(stack: str) -> None:
    run = rendered(stack)
    stack_urn = release(run, "kube-prometheus-stack").urn
    custom = [r for r in run.registrations if r.type.startswith("kubernetes:monitoring.coreos.com/")]
    assert custom and all(stack_urn in r.dependencies for r in custom)


def test_prometheus_selects_monitors_and_rules_without_the_release_label() -> None:
    run = rendered("prod")
    spec = release(run, "kube-prometheus-stack").inputs["values"]["prometheus"]["prometheusSpec"]
    objects = [m for m in manifests_of(run) if m["apiVersion"].startswith("monitoring.coreos.com/")]
    # By default the chart selects only objects labelled release=<its release>; none of ours is.
    assert objects and not any("release" in m["metadata"]["labels"] for m in objects)
    for kind in ("serviceMonitor", "podMonitor", "rule", "probe"):
        assert spec[f"{kind}SelectorNilUsesHelmValues"] is False


def test_prometheus_retention_and_storage_follow_the_stack_config() -> None:
    spec = release(rendered("prod"), "kube-prometheus-stack").inputs["values"]["prometheus"]["prometheusSpec"]
    claim = spec["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert (spec["retention"], spec["retentionSize"], claim["resources"]["requests"]["storage"]) == (
        "30d",
        "180GB",
        "200Gi",
    )


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_every_workload_and_database_has_alert_rules(stack: str) -> None:
    run = rendered(stack)
    groups = {g["name"] for r in of_kind(run, "PrometheusRule") for g in r["spec"]["groups"]}
    for deployment in of_kind(run, "Deployment"):
        name = deployment["metadata"]["name"]
        assert f"vinylhound.service.{name}" in groups
        if any(
            e["name"] in {"DB_HOST", "DATABASE_URL"}
            for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        ):
            assert f"vinylhound.database.{name}-db" in groups


# --- dashboards ------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_grafana_loads_one_dashboard_per_workload_and_the_migration_one(stack: str) -> None:
    run = rendered(stack)
    sidecar = release(run, "kube-prometheus-stack").inputs["values"]["grafana"]["sidecar"]["dashboards"]
    loaded = [
        json.loads(data)
        for cm in of_kind(run, "ConfigMap")
        if cm["metadata"]["labels"].get(sidecar["label"]) == sidecar["labelValue"]
        for data in cm["data"].values()
    ]
    titles = {d["title"] for d in loaded}
    workloads = {d["metadata"]["name"] for d in of_kind(run, "Deployment")}
    assert sidecar["enabled"] is True
    assert titles == {f"Vinylhound / {w}" for w in workloads} | {"Vinylhound / migration"}


def test_the_migration_dashboard_splits_every_endpoint_each_deployed_service_shares() -> None:
    run = rendered("prod")
    (board,) = [
        json.loads(cm["data"]["migration.json"])
        for cm in of_kind(run, "ConfigMap")
        if "migration.json" in cm["data"]
    ]
    deployed = {d["metadata"]["name"] for d in of_kind(run, "Deployment")}
    titles = {p["title"] for p in board["panels"]}
    for w in WORKLOADS:
        if w.role == "service" and w.name in deployed:
            for e in endpoints.shared(w):
                assert f"{e.key}: traffic monolith vs {w.name}" in titles
                assert f"{e.key}: 5xx ratio per side" in titles


# --- the seam with the mesh feature ----------------------------------------------------------


def test_mesh_resources_wait_for_what_the_mesh_feature_passes_in() -> None:
    cfg = parse_platform_config(baseline(), SOURCE)

    def program() -> None:
        crds = pulumi.CustomResource("test:index:IstioBase", "istio-base", {})
        consul = pulumi.CustomResource("test:index:Consul", "consul", {})
        namespace = pulumi.CustomResource("test:index:Namespace", "namespace", {})
        Observability(
            "observability",
            observability_args(cfg, LabelContext("prod"), namespace, [crds], consul=[consul]),
        )

    regs = {r.name: r for r in run_program(program)}
    assert regs["istio-base"].urn in regs["observability-mesh-telemetry"].dependencies
    assert regs["consul"].urn in regs["observability-consul-monitor"].dependencies


def test_the_mesh_config_fragment_declares_the_provider_the_telemetry_uses() -> None:
    fragment = tracing.mesh_config()
    names = {p["name"] for p in fragment["extensionProviders"]}
    spec = tracing.mesh_telemetry_spec(10)
    assert {p["name"] for t in spec["tracing"] for p in t["providers"]} <= names
    tags = {tag for m in spec["metrics"] for o in m["overrides"] for tag in o["tagOverrides"]}
    assert tags <= set(fragment["defaultConfig"]["extraStatTags"])
