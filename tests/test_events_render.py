"""The event bus as every stack renders it: streams, durable consumers, wiring and dependencies."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from components import labels
from infra import catalog, events
from infra.config import ConfigError, parse_platform_config
from infra.program import main as program
from ops.mockrun import Registration, Run, run_offline
from tests.conftest import KUBE_STACKS, PROJECT, manifests_of, rendered

JETSTREAM = "kubernetes:jetstream.nats.io/v1beta2"
RELEASE = "kubernetes:helm.sh/v3:Release"


def _subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, a trailing ``>`` is one or more."""
    p, s = pattern.split("."), subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(s) > i
        if i >= len(s) or (token != "*" and token != s[i]):
            return False
    return len(p) == len(s)


def _enabled(stack: str) -> set[str]:
    return {m["metadata"]["name"] for m in manifests_of(rendered(stack)) if m["kind"] == "Deployment"}


def _kind(run: Run, kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests_of(run) if m["kind"] == kind]


def _bus_objects(run: Run, kind: str) -> list[dict[str, Any]]:
    """The objects of ``kind`` in the event bus's namespace (monitoring has its own of each kind)."""
    return [m for m in _kind(run, kind) if m["metadata"].get("namespace") == "nats"]


def _registration(run: Run, type_: str, name: str) -> Registration:
    (reg,) = [r for r in run.registrations if r.type == type_ and r.name == name]
    return reg


def _env(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e for e in container.get("env", [])}


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_every_consumer_in_the_catalog_has_a_durable_explicit_ack_consumer(stack: str) -> None:
    run = rendered(stack)
    streams = {s["spec"]["name"]: s["spec"] for s in _kind(run, "Stream")}
    consumers = [c["spec"] for c in _kind(run, "Consumer")]
    for w in catalog.WORKLOADS:
        if w.name not in _enabled(stack):
            continue
        for event in w.consumes:
            matching = [
                c
                for c in consumers
                if c["durableName"] == w.name and c["filterSubject"] == events.subject(event)
            ]
            assert len(matching) == 1, (w.name, event)
            (c,) = matching
            assert c["ackPolicy"] == "explicit" and c["maxDeliver"] >= 1
            assert any(_subject_matches(p, c["filterSubject"]) for p in streams[c["streamName"]]["subjects"])


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_exactly_the_consuming_workloads_declare_their_subjects_on_the_pod_template(stack: str) -> None:
    declared = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"].get("annotations", {})
        for d in _kind(rendered(stack), "Deployment")
    }
    consuming = {w.name: w.consumes for w in catalog.WORKLOADS if w.name in declared and w.consumes}
    assert consuming, "some enabled workload should consume an event"
    for name, pod_annotations in declared.items():
        if name in consuming:
            expected = ",".join(sorted(events.subject(e) for e in consuming[name]))
            assert pod_annotations[events.CONSUMES_ANNOTATION] == expected
        else:
            assert events.CONSUMES_ANNOTATION not in pod_annotations, name


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_every_published_event_lands_in_exactly_one_file_stream(stack: str) -> None:
    streams = [s["spec"] for s in _kind(rendered(stack), "Stream")]
    published = {e for w in catalog.WORKLOADS if w.name in _enabled(stack) for e in w.publishes}
    assert published
    for event in published:
        holding = [
            s for s in streams if any(_subject_matches(p, events.subject(event)) for p in s["subjects"])
        ]
        assert len(holding) == 1 and holding[0]["storage"] == "file", event


@pytest.mark.parametrize(("stack", "servers"), [("dev", 1), ("staging", 3), ("prod", 3)])
def test_streams_are_replicated_across_the_whole_nats_cluster(stack: str, servers: int) -> None:
    run = rendered(stack)
    values = _registration(run, RELEASE, "event-bus-nats").inputs["values"]
    assert values["config"]["cluster"]["replicas"] == servers
    assert values["config"]["cluster"]["enabled"] is (servers > 1)
    assert {s["spec"]["replicas"] for s in _kind(run, "Stream")} == {servers}


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_every_jetstream_resource_depends_on_the_release_that_installs_its_crds(stack: str) -> None:
    run = rendered(stack)
    nack = _registration(run, RELEASE, "event-bus-nack").urn
    jetstream = [r for r in run.registrations if r.type.startswith(JETSTREAM)]
    assert {r.type.rsplit(":", 1)[1] for r in jetstream} >= {"Stream", "Consumer", "Account"}
    assert all(nack in r.dependencies for r in jetstream)


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_a_consumer_waits_for_its_stream(stack: str) -> None:
    run = rendered(stack)
    by_stream_name = {
        r.inputs["spec"]["name"]: r.urn for r in run.registrations if r.type == f"{JETSTREAM}:Stream"
    }
    for r in run.registrations:
        if r.type == f"{JETSTREAM}:Consumer":
            assert by_stream_name[r.inputs["spec"]["streamName"]] in r.dependencies


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_only_publishing_or_consuming_workloads_get_nats_settings(stack: str) -> None:
    wired = {
        d["metadata"]["name"]: _env(d)
        for d in _kind(rendered(stack), "Deployment")
        if any(name.startswith("NATS_") for name in _env(d))
    }
    expected = {
        w.name for w in catalog.WORKLOADS if w.name in _enabled(stack) and (w.publishes or w.consumes)
    }
    assert set(wired) == expected
    for name, env in wired.items():
        assert env["NATS_URL"]["value"].startswith("nats://")
        assert env["NATS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": f"nats-{name}",
            "key": "password",
        }
        assert "value" not in env["NATS_USER"] and "value" not in env["NATS_PASSWORD"]


def _selects(selector: dict[str, Any], pod_labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and In/NotIn/Exists/DoesNotExist)."""
    if any(pod_labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        value, op = pod_labels.get(expr["key"]), expr["operator"]
        if (
            (op == "In" and value not in expr["values"])
            or (op == "NotIn" and value in expr["values"])
            or (op == "Exists" and value is None)
            or (op == "DoesNotExist" and value is not None)
        ):
            return False
    return True


def _peer_admits(peer: dict[str, Any], namespace: str, pod_labels: dict[str, str], own_ns: str) -> bool:
    ns_labels = {"kubernetes.io/metadata.name": namespace}
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], ns_labels):
            return False
    elif namespace != own_ns:
        return False
    return "podSelector" not in peer or _selects(peer["podSelector"], pod_labels)


def _ingress_allows(policy: dict[str, Any], namespace: str, pod_labels: dict[str, str], port: int) -> bool:
    own = policy["metadata"]["namespace"]
    return any(
        any(p["port"] == port for p in rule.get("ports", []))
        and any(_peer_admits(peer, namespace, pod_labels, own) for peer in rule.get("from", []))
        for rule in policy["spec"].get("ingress", [])
    )


def _egress_allows(policy: dict[str, Any], namespace: str, pod_labels: dict[str, str], port: int) -> bool:
    own = policy["metadata"]["namespace"]
    return any(
        any(p["port"] == port for p in rule.get("ports", []))
        and any(_peer_admits(peer, namespace, pod_labels, own) for peer in rule.get("to", []))
        for rule in policy["spec"].get("egress", [])
    )


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_exactly_the_connected_workloads_may_reach_nats_through_both_network_policies(stack: str) -> None:
    run = rendered(stack)
    nats_pods = {labels.NAME: "nats", "app.kubernetes.io/instance": "nats"}
    # The policy in front of NATS (the namespace also has its default deny and egress policies).
    (nats_policy,) = [
        p
        for p in _kind(run, "NetworkPolicy")
        if p["metadata"]["namespace"] == "nats" and p["metadata"]["name"] == "nats"
    ]
    assert _selects(nats_policy["spec"]["podSelector"], nats_pods)
    own_policies = {
        p["metadata"]["name"]: p for p in _kind(run, "NetworkPolicy") if p["metadata"]["namespace"] != "nats"
    }
    connected = {w.name for w in catalog.WORKLOADS if w.publishes or w.consumes}
    for deployment in _kind(run, "Deployment"):
        name, ns = deployment["metadata"]["name"], deployment["metadata"]["namespace"]
        pod = deployment["spec"]["template"]["metadata"]["labels"]
        admitted = _ingress_allows(nats_policy, ns, pod, events.CLIENT_PORT)
        leaves = _egress_allows(own_policies[name], "nats", nats_pods, events.CLIENT_PORT)
        assert admitted == leaves == (name in connected), name


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_the_nats_values_hold_no_password_only_placeholders_the_server_fills_from_a_secret(
    stack: str,
) -> None:
    values = _registration(rendered(stack), RELEASE, "event-bus-nats").inputs["values"]
    users = values["config"]["merge"]["authorization"]["users"]
    env = values["container"]["env"]
    for user in users:
        match = re.fullmatch(r"<< \$([A-Z0-9_]+) >>", user["password"])
        assert match, user["password"]
        ref = env[match.group(1)]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "nats-users", "key": user["user"]}
    secret = next(m for m in manifests_of(rendered(stack)) if m["metadata"]["name"] == "nats-users")
    assert set(secret["stringData"]) == {u["user"] for u in users}


def test_prod_alerts_on_consumer_lag_and_stream_storage() -> None:
    (rule,) = _bus_objects(rendered("prod"), "PrometheusRule")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert "nats_consumer_num_pending" in alerts["VinylhoundEventConsumerLag"]["expr"]
    assert "nats_stream_total_bytes" in alerts["VinylhoundEventStreamStorage"]["expr"]


def test_the_pod_monitor_scrapes_the_exporter_port_of_the_nats_pods() -> None:
    (monitor,) = _bus_objects(rendered("prod"), "PodMonitor")
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == events.METRICS_PORT_NAME
    assert _selects(monitor["spec"]["selector"], {labels.NAME: "nats", "app.kubernetes.io/instance": "nats"})


def _config(**events_settings: Any) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(PROJECT.stack_config("staging").values["vinylhound:platform"])
    return {**raw, "events": events_settings}


def test_staging_refuses_a_single_nats_server() -> None:
    with pytest.raises(ConfigError, match=r"events\.clusterSize: 1 is below the staging minimum of 3"):
        parse_platform_config(_config(clusterSize=1), "stacks/Pulumi.staging.yaml")


def test_a_duplicate_window_longer_than_the_max_age_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"events\.duplicateWindow: 2h is longer than maxAge \(1h\)"):
        parse_platform_config(_config(maxAge="1h", duplicateWindow="2h"), "stacks/Pulumi.staging.yaml")


def test_a_stack_with_the_event_bus_off_has_no_nats_and_no_nats_settings() -> None:
    run = _run_staging_with(_config(enabled=False))
    assert not [r for r in run if r.type == RELEASE and r.name in ("nats", "nack")]
    assert not [r for r in run if r.type.startswith(JETSTREAM)]
    deployments = [r.inputs for r in run if r.type == "kubernetes:apps/v1:Deployment"]
    assert deployments and not any(
        e["name"].startswith("NATS_")
        for d in deployments
        for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
    )


def _run_staging_with(raw: dict[str, Any]) -> list[Registration]:
    """Run the program as the staging stack with ``raw`` as its platform config."""
    return run_offline(
        program,
        project="vinylhound",
        stack="staging",
        config={"vinylhound:platform": json.dumps(raw)},
        secret_keys=[],
    ).registrations
