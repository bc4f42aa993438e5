"""Default deny and its exceptions, judged by a NetworkPolicy evaluator (tests/netpol.py) over the
objects each Kubernetes stack renders: every path the platform needs is allowed, the rest denied."""

from __future__ import annotations

from typing import Any

import pytest

from infra.env import DatabaseEndpoint
from infra.targets.kubernetes import network
from tests.conftest import manifests_of, rendered
from tests.netpol import Cluster, External, Pod, pods_of

# --- the evaluator's own semantics (Kubernetes NetworkPolicy reference) ------------------------

WEB = Pod("web", "app", {"app": "web"}, {"http": 8080})
API = Pod("api", "app", {"app": "api"}, {"http": 9000})
OTHER_NS = Pod("probe", "elsewhere", {"app": "api"})


def policy(namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "NetworkPolicy", "metadata": {"name": "p", "namespace": namespace}, "spec": spec}


def test_a_pod_no_policy_selects_accepts_everything() -> None:
    assert Cluster({"app": {}}, []).allowed(WEB, API, 9000)


def test_a_policy_with_no_rules_isolates_the_pods_it_selects() -> None:
    deny = policy("app", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    assert not Cluster({"app": {}}, [deny]).allowed(WEB, API, 9000)


def test_policies_add_up_and_a_named_port_is_the_destinations_container_port() -> None:
    deny = policy("app", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    out = policy(
        "app", {"podSelector": {"matchLabels": {"app": "web"}}, "egress": [{"ports": [{"port": "http"}]}]}
    )
    into = policy(
        "app",
        {
            "podSelector": {"matchLabels": {"app": "api"}},
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 9000}]}
            ],
        },
    )
    cluster = Cluster({"app": {}}, [deny, out, into])
    assert cluster.allowed(WEB, API, 9000) and not cluster.allowed(WEB, API, 9001)


def test_a_pod_selector_alone_means_the_policys_own_namespace() -> None:
    into = policy(
        "app", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}]}]}
    )
    assert not Cluster({"app": {}, "elsewhere": {}}, [into]).allowed(OTHER_NS, WEB, 8080)


def test_an_ip_block_matches_outside_addresses_minus_its_exceptions() -> None:
    out = policy(
        "app",
        {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}]}],
        },
    )
    cluster = Cluster({"app": {}}, [out])
    assert cluster.allowed(WEB, External("203.0.113.9"), 443)
    assert not cluster.allowed(WEB, External("10.1.2.3"), 443)
    assert not cluster.allowed(WEB, API, 9000)  # an ipBlock does not stand for pods


def test_a_udp_rule_does_not_open_tcp() -> None:
    out = policy(
        "app",
        {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"ports": [{"protocol": "UDP", "port": 53}]}],
        },
    )
    cluster = Cluster({"app": {}}, [out])
    assert cluster.allowed(WEB, API, 53, "UDP") and not cluster.allowed(WEB, API, 53, "TCP")


# --- the rendered stacks --------------------------------------------------------------------------

STACKS = ["dev", "staging", "prod"]
NS = "vinylhound"
#: Pods the charts run, with the labels their charts give them (the policies name these labels):
#: CloudNativePG's operator (chart selector labels), Prometheus (kube-prometheus-stack: the
#: operator labels its pods app.kubernetes.io/name=prometheus), CoreDNS, the Istio ingress gateway.
OPERATOR = Pod("cnpg-operator", "cnpg-system", {"app.kubernetes.io/name": "cloudnative-pg"})
PROMETHEUS = Pod("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"})
DNS = Pod("coredns", "kube-system", {"k8s-app": "kube-dns"}, {"dns": 53})
GATEWAY = Pod("ingressgateway", "istio-ingress", {"istio": "ingressgateway"})
STRANGER = Pod("stranger", NS, {"app.kubernetes.io/name": "debug-shell"})
API_SERVER = External("172.20.0.1")
INTERNET = External("203.0.113.9")


def world(stack: str) -> tuple[Cluster, dict[str, Pod]]:
    objects = manifests_of(rendered(stack))
    namespaces = {
        o["metadata"]["name"]: dict(o["metadata"].get("labels") or {})
        for o in objects
        if o["kind"] == "Namespace"
    }
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    return Cluster(namespaces, policies), pods_of(objects)


def databases_of(pods: dict[str, Pod]) -> list[str]:
    """The CloudNativePG clusters among the pods (named ``<service>-db``)."""
    return sorted(n for n, p in pods.items() if "cnpg.io/cluster" in p.labels)


def jobs_of(pods: dict[str, Pod], service: str) -> list[Pod]:
    return [
        p
        for name, p in pods.items()
        if name.startswith(f"{service}-db-") and p.labels.get("app.kubernetes.io/component") == "migration"
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_every_namespace_the_stack_declares_denies_by_default(stack: str) -> None:
    objects = manifests_of(rendered(stack))
    declared = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}
    denying = {
        o["metadata"]["namespace"]
        for o in objects
        if o["kind"] == "NetworkPolicy"
        and o["spec"]["podSelector"] == {}
        and set(o["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not o["spec"].get("ingress")
        and not o["spec"].get("egress")
    }
    charts = {"istio-system", "istio-ingress", "cnpg-system", "consul"}
    assert {NS, "nats", "monitoring", "observability"} | charts <= declared <= denying


@pytest.mark.parametrize("stack", STACKS)
def test_a_pod_nothing_allows_reaches_nothing_and_nothing_reaches_it(stack: str) -> None:
    cluster, pods = world(stack)
    assert not cluster.allowed(STRANGER, pods["user-service-db"], 5432)
    assert not cluster.allowed(STRANGER, INTERNET, 443)
    assert not cluster.allowed(pods["user-service"], STRANGER, 8080)


@pytest.mark.parametrize("stack", STACKS)
def test_each_service_reaches_its_own_database_and_no_other(stack: str) -> None:
    cluster, pods = world(stack)
    for db in databases_of(pods):
        owner = db.removesuffix("-db")
        for service in (
            n
            for n, p in pods.items()
            if p.labels.get("app.kubernetes.io/component") in ("service", "monolith", "frontend")
        ):
            assert cluster.allowed(pods[service], pods[db], 5432) == (service == owner), (service, db)


@pytest.mark.parametrize("stack", STACKS)
def test_each_migration_job_reaches_exactly_its_two_databases_and_dns(stack: str) -> None:
    cluster, pods = world(stack)
    databases = databases_of(pods)
    for db in databases:
        service = db.removesuffix("-db")
        for job in jobs_of(pods, service):
            reachable = {d for d in databases if cluster.allowed(job, pods[d], 5432)}
            assert reachable == {db, "monolith-db"}, job.name
            assert cluster.allowed(job, DNS, 53, "UDP")
            assert not cluster.allowed(job, INTERNET, 443) and not cluster.allowed(job, API_SERVER, 443)
            assert not cluster.allowed(pods["monolith"], job, 8080)


@pytest.mark.parametrize("stack", STACKS)
def test_databases_take_the_operator_their_peers_and_the_scrape_and_nothing_else(stack: str) -> None:
    cluster, pods = world(stack)
    db = pods["user-service-db"]
    assert cluster.allowed(OPERATOR, db, 8000) and cluster.allowed(OPERATOR, db, 5432)
    assert cluster.allowed(PROMETHEUS, db, 9187) and not cluster.allowed(PROMETHEUS, db, 5432)
    assert cluster.allowed(db, pods["monolith-db"], 5432)  # the subscription to the monolith
    assert cluster.allowed(pods["monolith-db"], db, 5432)  # the reverse one after a cut-over
    assert cluster.allowed(db, API_SERVER, 6443) and not cluster.allowed(db, INTERNET, 5432)
    assert not cluster.allowed(GATEWAY, db, 5432)
    assert not cluster.allowed(
        Pod("intruder", "default", {"app.kubernetes.io/name": "user-service"}), db, 5432
    )
    assert not cluster.allowed(db, pods["catalog-service-db"], 5432)


# --- NATS: in the mesh, reachable from its clients only -----------------------------------------

#: The NATS chart's pod labels (nats.selectorLabels, chart 1.3) and NACK's (jsc.selectorLabels).
NATS = Pod(
    "nats-0",
    "nats",
    {
        "app.kubernetes.io/name": "nats",
        "app.kubernetes.io/instance": "nats",
        "app.kubernetes.io/component": "nats",
    },
    {"nats": 4222, "cluster": 6222},
)
NATS_PEER = Pod("nats-1", "nats", dict(NATS.labels), dict(NATS.ports))
NACK = Pod("nack", "nats", {"app.kubernetes.io/name": "nack", "app.kubernetes.io/instance": "nack"})


@pytest.mark.parametrize("stack", STACKS)
def test_nats_takes_its_clients_and_the_controller_and_no_one_else(stack: str) -> None:
    cluster, pods = world(stack)
    assert cluster.allowed(pods["user-service"], NATS, 4222)  # publishes user.created
    assert cluster.allowed(pods["playlist-service"], NATS, 4222)  # consumes it
    assert not cluster.allowed(pods["catalog-service"], NATS, 4222)
    assert cluster.allowed(NACK, NATS, 4222) and cluster.allowed(NATS, NATS_PEER, 6222)
    assert cluster.allowed(NACK, API_SERVER, 443)
    assert not cluster.allowed(NATS, INTERNET, 443) and not cluster.allowed(NACK, INTERNET, 80)
    assert not cluster.allowed(Pod("stranger", "nats", {"app": "debug"}), NATS, 4222)


@pytest.mark.parametrize("stack", STACKS)
def test_nats_traffic_is_mutual_tls_except_the_metrics_port(stack: str) -> None:
    objects = manifests_of(rendered(stack))
    namespace = next(o for o in objects if o["kind"] == "Namespace" and o["metadata"]["name"] == "nats")
    assert namespace["metadata"]["labels"]["istio-injection"] == "enabled"
    auths = [o for o in objects if o["kind"] == "PeerAuthentication" and o["metadata"]["namespace"] == "nats"]
    for_nats = [
        a
        for a in auths
        if a["spec"].get("selector", {}).get("matchLabels", {}).items() <= NATS.labels.items()
        and "selector" in a["spec"]
    ]
    namespace_wide = [a for a in auths if "selector" not in a["spec"]]
    assert [a["spec"]["mtls"]["mode"] for a in namespace_wide] == ["STRICT"]
    (own,) = for_nats
    assert own["spec"]["mtls"]["mode"] == "STRICT"
    assert {port: s["mode"] for port, s in own["spec"]["portLevelMtls"].items()} == {"7777": "PERMISSIVE"}


# --- an external monolith database (no pods to select) ----------------------------------------


def _endpoint(cluster: str, external: bool = False) -> DatabaseEndpoint:
    host = "db.example.internal" if external else f"{cluster}-rw.{NS}.svc.cluster.local"
    return DatabaseEndpoint(
        cluster, host, host, "vinylhound", "vinylhound", f"{cluster}-creds", external=external
    )


def test_with_an_external_monolith_the_jobs_and_the_subscriber_still_reach_it() -> None:
    monolith, own = _endpoint("monolith-db", external=True), _endpoint("user-service-db")
    objects = [
        policy(NS, network.default_deny()),
        policy(NS, network.migration_job_policy(own, monolith)),
        policy(NS, network.database_policy(own, "user-service", monolith, [own], "monitoring")),
    ]
    cluster = Cluster({NS: {}}, objects)
    job = Pod("job", NS, network.migration_selector("user-service-db"))
    db = Pod("user-service-db", NS, {"cnpg.io/cluster": "user-service-db"})
    managed = External("10.20.0.5")  # the managed database, wherever it is
    assert cluster.allowed(job, managed, 5432) and cluster.allowed(job, db, 5432)
    assert cluster.allowed(db, managed, 5432)  # the subscription
    assert not cluster.allowed(job, managed, 443)


# --- monitoring and observability: what their charts need, nothing else --------------------------

#: kube-prometheus-stack 79.5.0's pods with the labels its templates (and the Prometheus Operator,
#: for Prometheus and Alertmanager) give them, and their container ports.
KPS = "kube-prometheus-stack"
PROM = Pod("prometheus-0", "monitoring", {"app.kubernetes.io/name": "prometheus"}, {"http-web": 9090})
PROM_PEER = Pod("prometheus-1", "monitoring", dict(PROM.labels), dict(PROM.ports))
ALERTMANAGER = Pod("alertmanager-0", "monitoring", {"app.kubernetes.io/name": "alertmanager"})
ALERTMANAGER_PEER = Pod("alertmanager-1", "monitoring", dict(ALERTMANAGER.labels))
GRAFANA = Pod(
    "grafana", "monitoring", {"app.kubernetes.io/name": "grafana", "app.kubernetes.io/instance": KPS}
)
OPERATOR_KPS = Pod(
    "prometheus-operator",
    "monitoring",
    {
        "app": f"{KPS}-operator",
        "app.kubernetes.io/name": f"{KPS}-prometheus-operator",
        "app.kubernetes.io/component": "prometheus-operator",
        "release": KPS,
    },
)
WEBHOOK_JOB = Pod(
    "admission-create",
    "monitoring",
    {
        "app": f"{KPS}-admission-create",
        "app.kubernetes.io/name": f"{KPS}-prometheus-operator",
        "app.kubernetes.io/component": "prometheus-operator-webhook",
    },
)
KSM = Pod("kube-state-metrics", "monitoring", {"app.kubernetes.io/name": "kube-state-metrics"})
#: jaeger chart: ``jaeger.selectorLabels`` plus the all-in-one component.
JAEGER = Pod(
    "jaeger",
    "observability",
    {
        "app.kubernetes.io/name": "jaeger",
        "app.kubernetes.io/instance": "jaeger",
        "app.kubernetes.io/component": "all-in-one",
    },
)
#: A node's address: the kubelet, node-exporter (hostNetwork) and the control plane's endpoints.
NODE = External("10.0.3.7")


@pytest.mark.parametrize("stack", STACKS)
def test_prometheus_scrapes_every_target_its_monitors_name(stack: str) -> None:
    cluster, pods = world(stack)
    assert cluster.allowed(PROM, pods["user-service"], 15090)  # the sidecar
    assert cluster.allowed(PROM, pods["user-service-db"], 9187)
    assert cluster.allowed(PROM, NATS, 7777) and cluster.allowed(PROM, JAEGER, 8888)
    consul_server = Pod("consul-server-0", "consul", {"app": "consul", "component": "server"})
    assert cluster.allowed(PROM, consul_server, 8501)  # its metrics, on the HTTPS API
    assert cluster.allowed(PROM, KSM, 8080) and cluster.allowed(PROM, ALERTMANAGER, 9093)
    assert cluster.allowed(PROM, OPERATOR_KPS, 10250) and cluster.allowed(PROM, GRAFANA, 3000)
    assert cluster.allowed(PROM, PROM_PEER, 9090)
    for port in (10250, 9100, 10257, 10259, 2381, 10249):  # kubelet, node-exporter, control plane
        assert cluster.allowed(PROM, NODE, port), port
    assert cluster.allowed(PROM, API_SERVER, 6443)


@pytest.mark.parametrize("stack", STACKS)
def test_prometheus_reaches_no_database_port_and_not_the_internet_beyond_its_scrape_ports(stack: str) -> None:
    cluster, pods = world(stack)
    assert not cluster.allowed(PROM, pods["user-service-db"], 5432)
    assert not cluster.allowed(PROM, pods["user-service"], 8080)  # the app port, no metrics there
    assert not cluster.allowed(PROM, INTERNET, 80) and not cluster.allowed(PROM, INTERNET, 25)


@pytest.mark.parametrize("stack", STACKS)
def test_grafana_and_alertmanager_reach_their_data_and_nothing_else_reaches_them(stack: str) -> None:
    cluster, pods = world(stack)
    assert cluster.allowed(GRAFANA, PROM, 9090) and cluster.allowed(GRAFANA, ALERTMANAGER, 9093)
    assert cluster.allowed(GRAFANA, API_SERVER, 443)  # the dashboards sidecar watches ConfigMaps
    assert not cluster.allowed(GRAFANA, pods["user-service-db"], 5432)
    assert not cluster.allowed(pods["user-service"], GRAFANA, 3000)
    assert not cluster.allowed(pods["user-service"], PROM, 9090)
    assert cluster.allowed(ALERTMANAGER, ALERTMANAGER_PEER, 9094, "UDP")
    assert not cluster.allowed(ALERTMANAGER, INTERNET, 443)  # no receiver configured


@pytest.mark.parametrize("stack", STACKS)
def test_the_operator_takes_the_api_servers_webhook_calls_and_reaches_only_the_api(stack: str) -> None:
    cluster, _ = world(stack)
    assert cluster.allowed(API_SERVER, OPERATOR_KPS, 10250)
    assert cluster.allowed(OPERATOR_KPS, API_SERVER, 443) and cluster.allowed(WEBHOOK_JOB, API_SERVER, 443)
    assert cluster.allowed(KSM, API_SERVER, 6443)
    assert not cluster.allowed(OPERATOR_KPS, PROM, 9090) and not cluster.allowed(WEBHOOK_JOB, KSM, 8080)
    assert not cluster.allowed(STRANGER, OPERATOR_KPS, 10250)


@pytest.mark.parametrize("stack", STACKS)
def test_jaeger_takes_spans_from_every_namespace_and_its_scrape_and_reaches_nothing(stack: str) -> None:
    cluster, pods = world(stack)
    # Envoy traces HTTP and gRPC only: the sidecars of the services and the gateway report spans,
    # NATS' (plain TCP) none. Any pod may send; its own egress decides (a stranger in a
    # namespace without policies here).
    for sender in (pods["user-service"], GATEWAY, Pod("sdk-client", "default", {"app": "x"})):
        assert cluster.allowed(sender, JAEGER, 4317) and cluster.allowed(sender, JAEGER, 4318)
    assert cluster.allowed(PROM, JAEGER, 8888) and not cluster.allowed(pods["user-service"], JAEGER, 8888)
    assert not cluster.allowed(pods["user-service"], JAEGER, 16686)  # the UI: port-forward only
    assert not cluster.allowed(pods["user-service"], JAEGER, 9411)  # no Zipkin receiver
    assert not cluster.allowed(JAEGER, INTERNET, 443) and not cluster.allowed(
        JAEGER, pods["user-service"], 8080
    )


@pytest.mark.parametrize("stack", STACKS)
def test_a_pod_nothing_allows_in_monitoring_or_observability_is_isolated(stack: str) -> None:
    cluster, pods = world(stack)
    for ns in ("monitoring", "observability"):
        stray = Pod("stray", ns, {"app.kubernetes.io/name": "debug-shell"})
        assert not cluster.allowed(stray, INTERNET, 443) and not cluster.allowed(stray, API_SERVER, 443)
        assert not cluster.allowed(pods["user-service"], stray, 8080)


# --- the chart namespaces: declared by the program, isolated, each chart's paths allowed ------------

ISTIOD = Pod("istiod", "istio-system", {"app": "istiod", "istio": "pilot"})
ISTIO_CNI = Pod("istio-cni-node", "istio-system", {"k8s-app": "istio-cni-node"})
#: The cloudnative-pg chart's selector labels (release "cnpg").
CNPG = Pod(
    "cnpg-operator",
    "cnpg-system",
    {"app.kubernetes.io/name": "cloudnative-pg", "app.kubernetes.io/instance": "cnpg"},
)


@pytest.mark.parametrize("stack", STACKS)
def test_istiod_serves_every_sidecar_and_the_api_servers_webhook_calls_only(stack: str) -> None:
    cluster, pods = world(stack)
    assert cluster.allowed(pods["user-service"], ISTIOD, 15012) and cluster.allowed(GATEWAY, ISTIOD, 15012)
    assert cluster.allowed(NATS, ISTIOD, 15012)
    assert cluster.allowed(API_SERVER, ISTIOD, 15017)
    assert not cluster.allowed(pods["user-service"], ISTIOD, 15017)
    assert not cluster.allowed(pods["user-service"], ISTIOD, 15014)
    assert cluster.allowed(ISTIOD, API_SERVER, 443) and not cluster.allowed(ISTIOD, INTERNET, 80)
    assert cluster.allowed(ISTIO_CNI, API_SERVER, 6443) and not cluster.allowed(ISTIO_CNI, INTERNET, 80)
    assert not cluster.allowed(Pod("stray", "istio-system", {"app": "debug"}), API_SERVER, 443)


@pytest.mark.parametrize("stack", STACKS)
def test_the_gateway_takes_clients_anywhere_and_reaches_the_mesh_not_the_databases(stack: str) -> None:
    cluster, pods = world(stack)
    assert cluster.allowed(INTERNET, GATEWAY, 443) and cluster.allowed(INTERNET, GATEWAY, 80)
    assert cluster.allowed(INTERNET, GATEWAY, 15021)  # the load balancer's health check
    assert not cluster.allowed(INTERNET, GATEWAY, 15000)  # Envoy's admin port
    assert cluster.allowed(PROM, GATEWAY, 15090)
    assert cluster.allowed(GATEWAY, pods["web-frontend"], pods["web-frontend"].ports["http"])
    assert cluster.allowed(GATEWAY, pods["user-service"], pods["user-service"].ports["http"])
    assert cluster.allowed(GATEWAY, JAEGER, 4317)
    assert not cluster.allowed(GATEWAY, pods["user-service-db"], 5432)
    assert not cluster.allowed(GATEWAY, INTERNET, 443)


@pytest.mark.parametrize("stack", STACKS)
def test_the_cnpg_operator_takes_its_webhook_calls_and_reaches_the_instances_and_the_api(stack: str) -> None:
    cluster, pods = world(stack)
    db = pods["user-service-db"]
    assert cluster.allowed(API_SERVER, CNPG, 9443) and not cluster.allowed(pods["user-service"], CNPG, 9443)
    assert cluster.allowed(CNPG, db, 8000) and cluster.allowed(CNPG, db, 5432)
    assert cluster.allowed(CNPG, API_SERVER, 443) and not cluster.allowed(CNPG, INTERNET, 80)
    assert not cluster.allowed(CNPG, pods["user-service"], pods["user-service"].ports["http"])


@pytest.mark.parametrize("stack", STACKS)
def test_the_chart_namespaces_are_declared_retained_and_no_release_creates_one(stack: str) -> None:
    run = rendered(stack)
    namespaces = {
        r.inputs["metadata"]["name"]: r for r in run.registrations if r.type == "kubernetes:core/v1:Namespace"
    }
    for name in ("istio-system", "istio-ingress", "cnpg-system", "consul"):
        assert namespaces[name].retain_on_delete, name
    releases = [r for r in run.registrations if r.type == "kubernetes:helm.sh/v3:Release"]
    assert releases
    for release in releases:
        assert not release.inputs.get("createNamespace"), release.name
        namespace = namespaces[release.inputs["namespace"]]
        assert namespace.urn in release.dependencies, release.name


@pytest.mark.parametrize("stack", STACKS)
def test_a_chart_in_a_namespace_this_change_isolates_waits_for_the_namespaces_policies(stack: str) -> None:
    run = rendered(stack)
    policies: dict[str, set[str]] = {}
    for r in run.registrations:
        if r.type == "kubernetes:networking.k8s.io/v1:NetworkPolicy":
            policies.setdefault(r.inputs["metadata"]["namespace"], set()).add(r.urn)
    for release in (r for r in run.registrations if r.type == "kubernetes:helm.sh/v3:Release"):
        namespace = release.inputs["namespace"]
        if namespace in ("istio-system", "istio-ingress", "cnpg-system", "monitoring", "observability"):
            assert policies[namespace] <= set(release.dependencies), release.name
