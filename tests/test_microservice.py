"""The Microservice component under Pulumi's mocks: what it promises every workload."""

from __future__ import annotations

import dataclasses
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.kubernetes.microservice import Microservice
from components.kubernetes.specs import AutoscalingSpec, WorkloadSpec
from components.values import EnvVar, SecretKeyRef
from ops.mockrun import Registration, run_offline
from tests.conftest import run_program

SPEC = WorkloadSpec(
    name="user-service",
    namespace="vinylhound",
    image="ghcr.io/vinylhound/user-service:1.6.1",
    port=8001,
    health_path="/health",
    labels={"app.kubernetes.io/name": "user-service", "app.kubernetes.io/part-of": "vinylhound"},
    selector={"app.kubernetes.io/name": "user-service", "app.kubernetes.io/part-of": "vinylhound"},
    env=[
        EnvVar("PORT", "8001"),
        EnvVar("DB_PASSWORD", secret=SecretKeyRef("user-service-db-credentials", "password")),
    ],
)


def _component(spec: WorkloadSpec) -> None:
    Microservice("user-service", spec)


def registered(spec: WorkloadSpec = SPEC) -> dict[str, Registration]:
    regs = run_program(lambda: _component(spec))
    return {r.name: r for r in regs}


def container(regs: dict[str, Registration]) -> dict[str, Any]:
    spec = regs["user-service-deployment"].inputs["spec"]
    (c,) = spec["template"]["spec"]["containers"]
    return c  # type: ignore[no-any-return]


def test_children_are_parented_to_the_component() -> None:
    regs = registered()
    component = regs["user-service"]
    children = [r for r in regs.values() if r is not component]
    assert children and all(r.parent == component.urn for r in children)


def test_container_runs_non_root_read_only_without_escalation() -> None:
    ctx = container(registered())["securityContext"]
    assert ctx["runAsNonRoot"] is True
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}


def test_tmp_is_writable_under_the_read_only_root() -> None:
    c = container(registered())
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]


def test_probes_hit_the_health_path_on_the_named_port() -> None:
    c = container(registered())
    assert c["ports"] == [{"name": "http", "containerPort": 8001, "protocol": "TCP"}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health", "port": "http"}


def test_workload_without_health_path_gets_tcp_probes() -> None:
    c = container(registered(dataclasses.replace(SPEC, health_path=None)))
    assert c["readinessProbe"]["tcpSocket"] == {"port": "http"}


def test_secret_values_only_arrive_through_secret_key_refs() -> None:
    env = {e["name"]: e for e in container(registered())["env"]}
    assert env["DB_PASSWORD"] == {
        "name": "DB_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "user-service-db-credentials", "key": "password"}},
    }


def test_requests_and_limits_are_set_by_default() -> None:
    resources = container(registered())["resources"]
    assert set(resources) == {"requests", "limits"}
    assert set(resources["limits"]) == {"cpu", "memory", "ephemeral-storage"}
    assert set(resources["requests"]) == {"cpu", "memory", "ephemeral-storage"}


def test_service_account_token_is_not_mounted() -> None:
    regs = registered()
    assert regs["user-service-sa"].inputs["automountServiceAccountToken"] is False
    pod = regs["user-service-deployment"].inputs["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False


def test_fixed_replicas_without_autoscaling() -> None:
    regs = registered(dataclasses.replace(SPEC, replicas=2))
    assert regs["user-service-deployment"].inputs["spec"]["replicas"] == 2
    assert "user-service-hpa" not in regs


def test_autoscaling_leaves_replicas_to_the_hpa() -> None:
    regs = registered(dataclasses.replace(SPEC, autoscaling=AutoscalingSpec(3, 6)))
    assert "replicas" not in regs["user-service-deployment"].inputs["spec"]
    hpa = regs["user-service-hpa"].inputs["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 6)


def test_single_replica_has_no_disruption_budget() -> None:
    assert "user-service-pdb" not in registered()


def test_several_replicas_get_a_disruption_budget() -> None:
    regs = registered(dataclasses.replace(SPEC, replicas=3))
    assert regs["user-service-pdb"].inputs["spec"]["maxUnavailable"] == 1


def test_network_policy_denies_by_default() -> None:
    policy = registered()["user-service-netpol"].inputs["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"] == [] and policy["egress"] == []


def test_service_exposes_the_named_http_port() -> None:
    service = registered()["user-service-service"].inputs["spec"]
    assert service["type"] == "ClusterIP"
    assert service["ports"][0]["targetPort"] == "http"


def test_address_is_the_in_cluster_url() -> None:
    # Exported outputs are awaited by the offline runner, so this checks the resolved value.
    run = run_offline(
        lambda: pulumi.export("address", Microservice("user-service", SPEC).address),
        project="vinylhound",
        stack="test",
        config={},
        secret_keys=[],
    )
    assert run.exports["address"] == "http://user-service.vinylhound.svc.cluster.local:8001"


def test_children_wait_for_what_the_component_depends_on() -> None:
    def program() -> None:
        secret = pulumi.CustomResource("vinylhound:test:Secret", "shared-secret", {})
        Microservice("user-service", SPEC, pulumi.ResourceOptions(depends_on=[secret]))

    regs = {r.name: r for r in run_program(program)}
    secret_urn = regs["shared-secret"].urn
    children = [r for r in regs.values() if r.parent == regs["user-service"].urn]
    assert children and all(secret_urn in r.dependencies for r in children)


#: The Microservice's objects registered through the generic class, and the typed class of each.
TYPED = {
    "deployment": k8s.apps.v1.Deployment,
    "hpa": k8s.autoscaling.v2.HorizontalPodAutoscaler,
    "pdb": k8s.policy.v1.PodDisruptionBudget,
    "netpol": k8s.networking.v1.NetworkPolicy,
}


def test_generic_objects_register_as_their_typed_classes_would_without_version_aliases() -> None:
    ours = registered(dataclasses.replace(SPEC, autoscaling=AutoscalingSpec(3, 6)))

    def typed_program() -> None:
        for role, typed in TYPED.items():
            inputs = ours[f"user-service-{role}"].inputs
            typed(f"user-service-{role}", metadata=inputs["metadata"], spec=inputs["spec"])

    theirs = {r.name: r for r in run_program(typed_program)}
    for role in TYPED:
        generic, typed = ours[f"user-service-{role}"], theirs[f"user-service-{role}"]
        assert (generic.type, generic.inputs) == (typed.type, typed.inputs)
        assert generic.aliases == () and typed.aliases
