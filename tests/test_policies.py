"""Every rule of the policy pack, through the real analyzer protocol: one compliant baseline, and one
changed field per way a rule can be violated, asserting the policy, its level and the resource."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ops import analyzer
from ops.analyzer import (
    AnalyzerError,
    Diagnostic,
    PolicyPackProcess,
    ResolvedPolicy,
    Resource,
    load_config,
    resolve_config,
)
from ops.check import resources_of
from tests.conftest import rendered
from tests.policy_baseline import CONSUMED, NAME, NS, baseline, container, env, mutated, without

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def pack(policy_pack: PolicyPackProcess) -> PolicyPackProcess:
    """The session's running pack (see conftest)."""
    return policy_pack


def config_of(pack: PolicyPackProcess, stack: str, **overrides: Any) -> dict[str, ResolvedPolicy]:
    """The resolved policy config of ``policies/config/<stack>.json`` with per-policy overrides."""
    document = load_config(ROOT / "policies" / "config" / f"{stack}.json") | overrides
    return resolve_config(pack.policies, document)


def analyze(
    pack: PolicyPackProcess, resources: dict[str, Resource], stack: str = "prod", **overrides: Any
) -> list[Diagnostic]:
    """Analyze every resource, then the stack, with a stack's policy config."""
    return pack.run(list(resources.values()), config_of(pack, stack, **overrides))


Change = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Case:
    """One way to violate ``policy``: change ``key``'s properties (or remove ``removed``), expect a
    report on ``reported`` (a baseline key; default: the changed resource)."""

    policy: str
    id: str
    key: str = ""
    change: Change | None = None
    removed: tuple[str, ...] = ()
    reported: str = ""
    overrides: tuple[tuple[str, Any], ...] = ()
    #: Another type token for the changed resource (a Deployment's template declared as a Pod).
    retype: str = ""

    def apply(self, resources: dict[str, Resource]) -> dict[str, Resource]:
        if self.change is not None:
            resources = mutated(resources, self.key, self.change)
        if self.retype:
            old = resources[self.key]
            resources = resources | {self.key: Resource(old.urn, self.retype, old.name, old.properties)}
        return without(resources, *self.removed)


def _set(path: str, value: Any) -> Change:
    """A change setting the dotted ``path`` (``spec.replicas``) to ``value``; ``None`` deletes it."""

    def change(props: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = props
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value

    return change


def _both(first: Change, second: Change) -> Change:
    """Both changes, in order."""

    def change(props: dict[str, Any]) -> None:
        first(props)
        second(props)

    return change


def _container(field: str, value: Any) -> Change:
    return lambda p: _set(field, value)(container(p))


def _env(name: str, entry: dict[str, Any]) -> Change:
    def change(props: dict[str, Any]) -> None:
        target = env(props)[name]
        target.clear()
        target.update({"name": name, **entry})

    return change


def _add_volume(volume: dict[str, Any]) -> Change:
    return lambda p: p["spec"]["template"]["spec"]["volumes"].append(volume)


POD = "spec.template.spec"


def _consumes(subjects: str | None) -> Change:
    """Set (or, with ``None``, remove) the pod template's ``vinylhound.dev/consumes`` annotation."""

    def change(props: dict[str, Any]) -> None:
        annotations = props["spec"]["template"]["metadata"].setdefault("annotations", {})
        if subjects is None:
            annotations.pop("vinylhound.dev/consumes", None)
        else:
            annotations["vinylhound.dev/consumes"] = subjects

    return change


def _pod_ctx(field: str, value: Any) -> Change:
    return _set(f"{POD}.securityContext.{field}", value)


def _as_pod(props: dict[str, Any]) -> None:
    """Replace a Deployment's properties by its pod template's (what a bare Pod would declare)."""
    template = props["spec"]["template"]
    props.clear()
    props.update({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": NAME, "namespace": NS}, **template})


def _as_job(props: dict[str, Any]) -> None:
    """The Deployment's pod template as a Job's (kind changes through ``retype``)."""
    props["spec"] = {"template": props["spec"]["template"]}


def _inject(where: str, value: str) -> Change:
    return lambda p: (
        p["spec"]["template"]
        .setdefault("metadata", {})
        .setdefault(where, {})
        .update({"sidecar.istio.io/inject": value})
    )


def _no_seccomp(props: dict[str, Any]) -> None:
    _container("securityContext.seccompProfile", None)(props)
    _set(f"{POD}.securityContext.seccompProfile", None)(props)


CASES = [
    Case(
        "restricted-pod-security",
        "run as root",
        "deployment",
        _container("securityContext.runAsNonRoot", False),
    ),
    Case("restricted-pod-security", "uid 0", "deployment", _container("securityContext.runAsUser", 0)),
    Case(
        "restricted-pod-security",
        "escalation",
        "deployment",
        _container("securityContext.allowPrivilegeEscalation", True),
    ),
    Case(
        "restricted-pod-security",
        "capabilities kept",
        "deployment",
        _container("securityContext.capabilities", None),
    ),
    Case(
        "restricted-pod-security", "privileged", "deployment", _container("securityContext.privileged", True)
    ),
    Case(
        "restricted-pod-security",
        "writable root",
        "deployment",
        _container("securityContext.readOnlyRootFilesystem", False),
    ),
    Case("restricted-pod-security", "no seccomp", "deployment", _no_seccomp),
    Case("restricted-pod-security", "host network", "deployment", _set(f"{POD}.hostNetwork", True)),
    Case("restricted-pod-security", "host pid", "deployment", _set(f"{POD}.hostPID", True)),
    Case(
        "restricted-pod-security",
        "host port",
        "deployment",
        _container("ports", [{"containerPort": 8001, "hostPort": 8001}]),
    ),
    Case(
        "restricted-pod-security",
        "host path in a job",
        "deployment",
        _both(_as_job, _add_volume({"name": "sock", "hostPath": {"path": "/var/run/cri.sock"}})),
        retype="kubernetes:batch/v1:Job",
    ),
    Case(
        "restricted-pod-security",
        "host process",
        "deployment",
        _pod_ctx("windowsOptions", {"hostProcess": True}),
    ),
    Case(
        "restricted-pod-security",
        "unmasked proc",
        "deployment",
        _container("securityContext.procMount", "Unmasked"),
    ),
    Case(
        "restricted-pod-security",
        "selinux type",
        "deployment",
        _container("securityContext.seLinuxOptions", {"type": "spc_t"}),
    ),
    Case(
        "restricted-pod-security", "selinux user", "deployment", _pod_ctx("seLinuxOptions", {"user": "root"})
    ),
    Case(
        "restricted-pod-security",
        "apparmor unconfined",
        "deployment",
        _container("securityContext.appArmorProfile", {"type": "Unconfined"}),
    ),
    Case(
        "restricted-pod-security",
        "apparmor annotation",
        "deployment",
        _set(
            "spec.template.metadata.annotations",
            {"container.apparmor.security.beta.kubernetes.io/user-service": "unconfined"},
        ),
    ),
    Case(
        "restricted-pod-security",
        "unsafe sysctl",
        "deployment",
        _pod_ctx("sysctls", [{"name": "kernel.msgmax", "value": "65536"}]),
    ),
    Case(
        "restricted-pod-security",
        "nfs volume",
        "deployment",
        _add_volume({"name": "n", "nfs": {"server": "x"}}),
    ),
    Case(
        "restricted-pod-security",
        "privileged through helm values",
        "jaeger",
        _set("values.collector.securityContext", {"privileged": True}),
    ),
    Case(
        "restricted-pod-security",
        "host network through helm values",
        "jaeger",
        _set("values.hostNetwork", True),
    ),
    Case(
        "no-service-account-token",
        "token mounted",
        "deployment",
        _set(f"{POD}.automountServiceAccountToken", None),
    ),
    Case(
        "no-service-account-token",
        "token mounted in a job",
        "deployment",
        _both(_as_job, _set(f"{POD}.automountServiceAccountToken", True)),
        retype="kubernetes:batch/v1:Job",
    ),
    Case("allowed-registries", "docker hub", "deployment", _container("image", "nginx:1.29.3")),
    Case(
        "allowed-registries",
        "another ghcr owner",
        "deployment",
        _container("image", "ghcr.io/someone/user-service:1.6.1"),
    ),
    Case("allowed-registries", "docker container", "container", _set("image", "redis:8.2.2")),
    Case(
        "allowed-registries",
        "helm values override",
        "consul",
        _set("values.global.image", {"repository": "example.com/consul", "tag": "1.21.5"}),
    ),
    Case("no-bare-pods", "pod", "deployment", _as_pod, retype="kubernetes:core/v1:Pod"),
    Case("no-interactive-containers", "tty", "deployment", _container("tty", True)),
    Case("no-interactive-containers", "stdin", "deployment", _container("stdin", True)),
    Case("recommended-labels", "no name label", "deployment", _set("metadata.labels", {"app": NAME})),
    Case(
        "recommended-labels",
        "pod template without part-of",
        "deployment",
        _set("spec.template.metadata.labels", {"app.kubernetes.io/name": NAME}),
    ),
    Case(
        "no-default-namespace", "deployment in default", "deployment", _set("metadata.namespace", "default")
    ),
    Case("no-default-namespace", "service without namespace", "service", _set("metadata.namespace", None)),
    Case("no-default-namespace", "release in default", "consul", _set("namespace", "default")),
    Case(
        "stable-apis",
        "beta autoscaler",
        "hpa",
        lambda p: None,
        retype="kubernetes:autoscaling/v2beta2:HorizontalPodAutoscaler",
    ),
    Case(
        "stable-apis",
        "extensions",
        "deployment",
        lambda p: None,
        retype="kubernetes:extensions/v1beta1:Deployment",
    ),
    Case(
        "sidecar-injection",
        "namespace without injection",
        "namespace",
        _set("metadata.labels", {"istio-injection": "disabled"}),
    ),
    Case("sidecar-injection", "pod opts out", "deployment", _inject("annotations", "false")),
    Case("sidecar-injection", "pod opts out by label", "deployment", _inject("labels", "false")),
    Case("mesh-authorization", "no policy", removed=("authorizationpolicy",), reported="deployment"),
    Case(
        "mesh-authorization",
        "policy selects others",
        "authorizationpolicy",
        _set("spec.selector.matchLabels", {"app": "x"}),
        reported="deployment",
    ),
    Case(
        "mesh-authorization",
        "deny policy only",
        "authorizationpolicy",
        _set("spec.action", "DENY"),
        reported="deployment",
    ),
    Case("mesh-authorization", "allow-all rule", "authorizationpolicy", _set("spec.rules", [{}])),
    Case("no-wildcard-hosts", "virtual service", "virtualservice", _set("spec.hosts", ["*"])),
    Case("no-wildcard-hosts", "gateway", "gateway", _set("spec.servers.0.hosts", ["*/*.vinylhound.app"])),
    Case("edge-https-only", "http without redirect", "gateway", _set("spec.servers.1.tls", None)),
    Case("edge-https-only", "old tls", "gateway", _set("spec.servers.0.tls.minProtocolVersion", "TLSV1_0")),
    Case("edge-https-only", "tls passthrough", "gateway", _set("spec.servers.0.tls.mode", "PASSTHROUGH")),
    Case(
        "no-plain-secrets-in-env", "plain password", "deployment", _env("DB_PASSWORD", {"value": "hunter2"})
    ),
    Case("no-plain-secrets-in-env", "plain jwt", "deployment", _env("JWT_SECRET", {"value": "s3cret"})),
    Case(
        "no-plain-secrets-in-env",
        "docker plain token",
        "container",
        lambda p: p["envs"].append("API_TOKEN=abc"),
    ),
    Case(
        "resource-requests-limits",
        "no memory limit",
        "deployment",
        _container("resources.limits.memory", None),
    ),
    Case(
        "resource-requests-limits", "no cpu request", "deployment", _container("resources.requests.cpu", None)
    ),
    Case("health-probes", "no readiness", "deployment", _container("readinessProbe", None)),
    Case("health-probes", "no liveness", "deployment", _container("livenessProbe", None)),
    Case(
        "stateless-services",
        "hostPath",
        "deployment",
        _add_volume({"name": "data", "hostPath": {"path": "/data"}}),
    ),
    Case(
        "stateless-services",
        "claim",
        "deployment",
        _add_volume({"name": "data", "persistentVolumeClaim": {"claimName": "x"}}),
    ),
    Case(
        "pinned-images", "latest", "deployment", _container("image", "ghcr.io/vinylhound/user-service:latest")
    ),
    Case("pinned-images", "no tag", "deployment", _container("image", "ghcr.io/vinylhound/user-service")),
    Case(
        "pinned-images",
        "no digest in prod",
        "deployment",
        _container("image", "ghcr.io/vinylhound/user-service:1.6.1"),
    ),
    Case("pinned-images", "docker latest", "container", _set("image", "postgres:latest")),
    Case("consul-security", "acls off", "consul", _set("values.global.acls.manageSystemACLs", False)),
    Case("consul-security", "tls off", "consul", _set("values.global.tls", None)),
    Case("consul-security", "plain http port", "consul", _set("values.global.tls.httpsOnly", False)),
    Case("consul-security", "rpc unverified", "consul", _set("values.global.tls.verify", "false")),
    Case("consul-security", "gossip in clear", "consul", _set("values.global.gossipEncryption", None)),
    Case(
        "consul-security",
        "gossip key half set",
        "consul",
        _set("values.global.gossipEncryption.secretKey", ""),
    ),
    Case("pinned-charts", "range", "consul", _set("version", "~1.8")),
    Case("pinned-charts", "unpinned", "consul", _set("version", None)),
    Case(
        "minimum-replicas",
        "autoscaler below minimum",
        "hpa",
        _set("spec.minReplicas", 2),
        reported="deployment",
    ),
    Case("minimum-replicas", "one replica", "deployment", _set("spec.replicas", 1), removed=("hpa",)),
    Case("pod-disruption-budget", "no budget", removed=("pdb",), reported="deployment"),
    Case(
        "pod-disruption-budget",
        "budget selects others",
        "pdb",
        _set("spec.selector.matchLabels", {"app": "x"}),
        reported="deployment",
    ),
    Case("pod-disruption-budget", "no disruption allowed", "pdb", _set("spec.maxUnavailable", 0)),
    Case(
        "pod-disruption-budget",
        "every pod must stay",
        "pdb",
        _both(_set("spec.maxUnavailable", None), _set("spec.minAvailable", "100%")),
    ),
    Case("autoscaler-owns-replicas", "replicas pinned too", "deployment", _set("spec.replicas", 3)),
    Case("autoscaler-owns-replicas", "autoscaler pinned", "hpa", _set("spec.maxReplicas", 3)),
    # The namespace's default-deny policy selects every pod: without it, coverage is per workload.
    Case("network-policy-coverage", "no policy", removed=("netpol", "defaultdeny"), reported="deployment"),
    Case(
        "network-policy-coverage",
        "policy selects others",
        "netpol",
        _set("spec.podSelector.matchLabels", {"app": "x"}),
        removed=("defaultdeny",),
        reported="deployment",
    ),
    Case(
        "network-policy-coverage",
        "job no policy selects",
        "deployment",
        _both(_as_job, _set("spec.template.metadata.labels", {"app.kubernetes.io/name": "migration"})),
        removed=("defaultdeny",),
        reported="deployment",
        retype="kubernetes:batch/v1:Job",
    ),
    Case("namespace-default-deny", "no default deny", removed=("defaultdeny",), reported="namespace"),
    Case(
        "namespace-default-deny",
        "default policy allows something",
        "defaultdeny",
        _set("spec.egress", [{"ports": [{"port": 443}]}]),
        reported="namespace",
    ),
    Case(
        "namespace-default-deny",
        "default policy isolates ingress only",
        "defaultdeny",
        _set("spec.policyTypes", ["Ingress"]),
        reported="namespace",
    ),
    Case("namespace-resource-quota", "no quota", removed=("resourcequota",), reported="namespace"),
    Case(
        "namespace-resource-quota",
        "quota leaves ephemeral storage unbounded",
        "resourcequota",
        lambda p: p["spec"]["hard"].pop("limits.ephemeral-storage"),
        reported="namespace",
    ),
    Case("namespace-resource-quota", "no limit range", removed=("limitrange",), reported="namespace"),
    Case(
        "namespace-resource-quota",
        "limit range defaults no ephemeral storage",
        "limitrange",
        _set("spec.limits.0.default.ephemeral-storage", None),
        reported="namespace",
    ),
    Case(
        "ephemeral-storage-limits",
        "no ephemeral-storage limit",
        "deployment",
        _container("resources.limits.ephemeral-storage", None),
    ),
    Case(
        "ephemeral-storage-limits",
        "no ephemeral-storage request",
        "deployment",
        _container("resources.requests.ephemeral-storage", None),
    ),
    Case(
        "ephemeral-storage-limits",
        "database instances without ephemeral-storage limit",
        "database",
        lambda p: p["spec"]["resources"]["limits"].pop("ephemeral-storage"),
    ),
    Case(
        "ephemeral-storage-limits",
        "job without ephemeral-storage limit",
        "deployment",
        _both(_as_job, _container("resources.limits.ephemeral-storage", None)),
        retype="kubernetes:batch/v1:Job",
    ),
    Case(
        "pod-security-admission",
        "nothing enforced",
        "namespace",
        _set("metadata.labels", {"istio-injection": "enabled"}),
    ),
    Case(
        "pod-security-admission",
        "baseline without exception",
        "namespace",
        lambda p: p["metadata"]["labels"].update({"pod-security.kubernetes.io/enforce": "baseline"}),
    ),
    Case(
        "pod-security-admission",
        "version unpinned",
        "namespace",
        lambda p: p["metadata"]["labels"].update({"pod-security.kubernetes.io/enforce-version": "latest"}),
    ),
    Case(
        "pod-security-admission",
        "no restricted warnings",
        "namespace",
        lambda p: p["metadata"]["labels"].pop("pod-security.kubernetes.io/warn"),
    ),
    Case("no-external-services", "load balancer", "service", _set("spec.type", "LoadBalancer")),
    Case("no-external-services", "node port", "service", _set("spec.type", "NodePort")),
    Case("no-external-services", "external ips", "service", _set("spec.externalIPs", ["203.0.113.7"])),
    Case("circuit-breaker", "no destination rule", removed=("destinationrule",), reported="deployment"),
    Case(
        "circuit-breaker",
        "rule for another host",
        "destinationrule",
        _set("spec.host", "other"),
        reported="deployment",
    ),
    Case(
        "circuit-breaker",
        "no outlier detection",
        "destinationrule",
        _set("spec.trafficPolicy.outlierDetection", None),
    ),
    Case(
        "circuit-breaker",
        "no connection pool",
        "destinationrule",
        _set("spec.trafficPolicy.connectionPool", None),
    ),
    Case("http-route-resilience", "no timeout", "virtualservice", _set("spec.http.0.timeout", None)),
    Case("http-route-resilience", "no retries", "virtualservice", _set("spec.http.0.retries", None)),
    Case(
        "http-route-resilience",
        "unbounded retries",
        "virtualservice",
        _set("spec.http.0.retries.attempts", 10),
    ),
    Case(
        "http-route-resilience",
        "no per-try timeout",
        "virtualservice",
        _set("spec.http.0.retries.perTryTimeout", None),
    ),
    Case("strict-mtls", "permissive", "peerauthentication", _set("spec.mtls.mode", "PERMISSIVE")),
    Case("strict-mtls", "no peer authentication", removed=("peerauthentication",), reported="deployment"),
    Case("strict-mtls", "client tls off", "destinationrule", _set("spec.trafficPolicy.tls.mode", "DISABLE")),
    Case(
        "database-per-service",
        "another service's host",
        "deployment",
        _env("DB_HOST", {"value": "catalog-service-db-rw.vinylhound"}),
    ),
    Case(
        "database-per-service",
        "another service's credentials",
        "deployment",
        _env(
            "DB_PASSWORD",
            {"valueFrom": {"secretKeyRef": {"name": "catalog-service-db-credentials", "key": "password"}}},
        ),
    ),
    Case("database-backups", "no backup section", "database", _set("spec.backup", None)),
    Case("database-backups", "no scheduled backup", removed=("scheduledbackup",), reported="database"),
    Case(
        "database-backups",
        "scheduled backup suspended",
        "scheduledbackup",
        _set("spec.suspend", True),
        reported="database",
    ),
    Case("database-read-replicas", "no replicas", "database", _set("spec.instances", 1)),
    Case("service-tracing", "no otlp endpoint", "deployment", lambda p: container(p)["env"].pop()),
    Case("service-scraping", "no monitor", removed=("podmonitor",), reported="deployment"),
    Case(
        "service-scraping",
        "monitor selects others",
        "podmonitor",
        _set("spec.selector.matchLabels", {"app": "x"}),
        reported="deployment",
    ),
    Case(
        "service-scraping",
        "monitor in another namespace",
        "podmonitor",
        _set("metadata.namespace", "elsewhere"),
        reported="deployment",
    ),
    Case("service-alerts", "no alert rules", removed=("prometheusrule",), reported="deployment"),
    Case(
        "service-alerts",
        "rules for another service",
        "prometheusrule",
        _set("metadata.labels", {"app.kubernetes.io/name": "x"}),
        reported="deployment",
    ),
    Case(
        "service-registry",
        "catalog sync off",
        "consul",
        _set("values.syncCatalog.enabled", False),
        reported="deployment",
    ),
    Case(
        "service-registry",
        "namespace denied",
        "consul",
        _set("values.syncCatalog.k8sDenyNamespaces", [NS]),
        reported="deployment",
    ),
    Case(
        "service-registry",
        "opt-in without annotation",
        "consul",
        _set("values.syncCatalog.default", False),
        reported="deployment",
    ),
    Case(
        "platform-components",
        "registry missing",
        removed=("consul",),
        reported="",
        overrides=(("platform-components", {"required": ["consul", "istio"]}),),
    ),
    Case("docker-ports-on-loopback", "all interfaces", "container", _set("ports.0.ip", "0.0.0.0")),
    Case("docker-ports-on-loopback", "address unset", "container", _set("ports.0.ip", None)),
    Case("docker-healthcheck", "no healthcheck", "container", _set("healthcheck", None)),
    Case("docker-healthcheck", "healthcheck disabled", "container", _set("healthcheck.tests", ["NONE"])),
    Case(
        "docker-healthcheck",
        "attached but must keep running",
        "container",
        _both(_set("healthcheck", None), _set("attach", True)),
    ),
    Case("events-durable-consumers", "no consumer", removed=("consumer",), reported="deployment"),
    Case(
        "events-durable-consumers",
        "consumer filters another subject",
        "consumer",
        _set("spec.filterSubject", "vinylhound.playlist.deleted"),
        reported="deployment",
    ),
    Case(
        "events-durable-consumers",
        "consumer of another workload",
        "consumer",
        _set("spec.durableName", "catalog-service"),
        reported="deployment",
    ),
    Case(
        "events-durable-consumers",
        "second subject without consumer",
        "deployment",
        _consumes(f"{CONSUMED},vinylhound.user.deleted"),
    ),
    Case("events-durable-consumers", "acks not explicit", "consumer", _set("spec.ackPolicy", "none")),
    Case("events-durable-consumers", "ack policy unset", "consumer", _set("spec.ackPolicy", None)),
    Case("events-stream-replicas", "one replica", "stream", _set("spec.replicas", 1)),
    Case("events-stream-replicas", "replicas unset", "stream", _set("spec.replicas", None)),
]


def test_the_baseline_complies_with_every_rule_in_prod(pack: PolicyPackProcess) -> None:
    assert analyze(pack, baseline()) == []


def test_every_rule_of_the_pack_has_violating_cases() -> None:
    from policies.rules import POLICIES

    assert {p.name for p in POLICIES} == {c.policy for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=[f"{c.policy}: {c.id}" for c in CASES])
def test_a_violation_is_reported_as_mandatory_on_the_resource_at_fault(
    pack: PolicyPackProcess, case: Case
) -> None:
    resources = baseline()
    found = [
        d for d in analyze(pack, case.apply(resources), **dict(case.overrides)) if d.policy == case.policy
    ]
    reported = case.reported if case.reported or not case.key else case.key
    expected_urn = resources[reported].urn if reported else ""
    assert found, f"{case.policy} reported nothing"
    assert {(d.level, d.urn) for d in found} == {("mandatory", expected_urn)}
    assert all("Fix: " in d.detail for d in found)


def test_a_database_shared_by_two_services_is_reported(pack: PolicyPackProcess) -> None:
    resources = baseline()
    twin = mutated(
        resources, "deployment", _set("metadata.labels", {"app.kubernetes.io/name": "catalog-service"})
    )["deployment"]
    shared = resources | {
        "twin": Resource(twin.urn.replace(NAME, "catalog-service"), twin.type, "twin", twin.properties)
    }
    messages = [d.detail for d in analyze(pack, shared) if d.policy == "database-per-service"]
    assert any("shared by catalog-service, user-service" in m for m in messages)


@pytest.mark.parametrize(
    ("policy", "key", "change"),
    [
        ("health-probes", "deployment", _container("readinessProbe", None)),
        # Consul's ACLs off: fails staging and prod.
        ("consul-security", "consul", _set("values.global.acls.manageSystemACLs", False)),
    ],
)
def test_dev_reports_as_advisory_what_prod_reports_as_mandatory(
    pack: PolicyPackProcess, policy: str, key: str, change: Change
) -> None:
    broken = mutated(baseline(), key, change)
    levels = {
        stack: {d.level for d in analyze(pack, broken, stack) if d.policy == policy}
        for stack in ("dev", "staging", "prod")
    }
    assert levels == {"dev": {"advisory"}, "staging": {"mandatory"}, "prod": {"mandatory"}}


def test_dev_keeps_plain_secrets_and_unpinned_images_mandatory(pack: PolicyPackProcess) -> None:
    broken = mutated(baseline(), "deployment", _env("DB_PASSWORD", {"value": "hunter2"}))
    broken = mutated(broken, "deployment", _container("image", "ghcr.io/vinylhound/user-service:latest"))
    found = {(d.policy, d.level) for d in analyze(pack, broken, "dev")}
    assert {("no-plain-secrets-in-env", "mandatory"), ("pinned-images", "mandatory")} <= found


def test_dev_needs_no_digest_where_prod_does(pack: PolicyPackProcess) -> None:
    tagged = mutated(baseline(), "deployment", _container("image", "ghcr.io/vinylhound/user-service:1.6.1"))
    assert [d for d in analyze(pack, tagged, "dev") if d.policy == "pinned-images"] == []


def test_the_minimum_replicas_knob_follows_the_environment(pack: PolicyPackProcess) -> None:
    two = mutated(baseline(), "hpa", _set("spec.minReplicas", 2))
    reported = {
        stack: any(d.policy == "minimum-replicas" for d in analyze(pack, two, stack))
        for stack in ("staging", "prod")
    }
    assert reported == {"staging": False, "prod": True}


#: Every Istio resource of the baseline and the istiod chart: a stack without a mesh.
NO_MESH = (
    "destinationrule",
    "virtualservice",
    "peerauthentication",
    "authorizationpolicy",
    "gateway",
    "istiod",
)


@pytest.mark.parametrize(
    ("policy", "removed"),
    [
        ("circuit-breaker", NO_MESH),
        ("strict-mtls", NO_MESH),
        ("mesh-authorization", NO_MESH),
        ("service-registry", ("consul",)),
        ("service-tracing", ("jaeger",)),
        ("service-scraping", ("podmonitor", "prometheusrule", "prometheus")),
        ("service-alerts", ("podmonitor", "prometheusrule", "prometheus")),
    ],
)
def test_a_presence_rule_does_not_apply_to_a_stack_without_that_part_of_the_platform(
    pack: PolicyPackProcess, policy: str, removed: tuple[str, ...]
) -> None:
    resources = without(baseline(), *removed)
    assert [d for d in analyze(pack, resources) if d.policy == policy] == []


def test_validators_tolerate_resources_with_no_properties(pack: PolicyPackProcess) -> None:
    hollow = {key: Resource(r.urn, r.type, r.name, {}) for key, r in baseline().items()}
    shells = {
        f"{key}-shell": Resource(r.urn + "-shell", r.type, r.name, {"metadata": {}, "spec": {}})
        for key, r in baseline().items()
    }
    diagnostics = analyze(pack, hollow | shells)
    assert not any("can't run policy" in d.message for d in diagnostics)


def test_every_policy_states_a_description_remediation_and_severity(pack: PolicyPackProcess) -> None:
    assert all(p.description and p.remediation for p in pack.policies)
    assert {p.kind for p in pack.policies} == {"resource", "stack"}


def test_a_service_monitor_selecting_the_service_counts_as_scraping(pack: PolicyPackProcess) -> None:
    resources = baseline()
    monitor = mutated(
        resources,
        "podmonitor",
        _set("spec", {"selector": {"matchLabels": {"app.kubernetes.io/component": "service"}}}),
    )
    service_monitor = Resource(
        urn=resources["podmonitor"].urn.replace("PodMonitor", "ServiceMonitor"),
        type="kubernetes:monitoring.coreos.com/v1:ServiceMonitor",
        name="user-service-servicemonitor",
        properties=monitor["podmonitor"].properties,
    )
    swapped = without(resources, "podmonitor") | {"servicemonitor": service_monitor}
    assert [d for d in analyze(pack, swapped) if d.policy == "service-scraping"] == []


def test_an_older_istio_api_version_is_read_the_same(pack: PolicyPackProcess) -> None:
    resources = baseline()
    old = resources["destinationrule"]
    beta = Resource(old.urn, old.type.replace("/v1:", "/v1beta1:"), old.name, old.properties)
    broken = mutated(
        resources | {"destinationrule": beta},
        "destinationrule",
        _set("spec.trafficPolicy.outlierDetection", None),
    )
    assert {d.policy for d in analyze(pack, resources | {"destinationrule": beta})} == set()
    assert "circuit-breaker" in {d.policy for d in analyze(pack, broken)}


def test_the_rules_import_nothing_but_the_policy_sdk_and_the_standard_library() -> None:
    # The CLI runs the pack in its own virtualenv with policies/requirements.txt only.
    import ast
    import sys

    allowed = {"pulumi_policy", "pulumi", *sys.stdlib_module_names}
    rules = ROOT / "policies" / "rules"
    imported = set()
    for path in [*rules.glob("*.py"), ROOT / "policies" / "__main__.py", ROOT / "policies" / "servicer.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
    # __main__ imports the pack's own rules package and servicer module
    assert imported - allowed == {"rules", "servicer"}


def test_knob_values_read_as_the_numbers_they_are_in_messages(pack: PolicyPackProcess) -> None:
    two = mutated(baseline(), "hpa", _set("spec.minReplicas", 2))
    (finding,) = [d for d in analyze(pack, two) if d.policy == "minimum-replicas"]
    assert "runs 2 pod(s) (autoscaler minReplicas); the minimum is 3." in finding.detail


def test_a_workload_that_consumes_nothing_needs_no_durable_consumer(pack: PolicyPackProcess) -> None:
    resources = without(mutated(baseline(), "deployment", _consumes(None)), "consumer")
    assert [d for d in analyze(pack, resources) if d.policy == "events-durable-consumers"] == []


@pytest.mark.parametrize(
    "filters",
    [
        {"filterSubjects": ["vinylhound.playlist.deleted", CONSUMED]},
        {"filterSubject": "vinylhound.playlist.>"},
    ],
    ids=["one of several filters", "wildcard filter"],
)
def test_a_consumer_whose_filters_match_the_subject_counts(
    pack: PolicyPackProcess, filters: dict[str, Any]
) -> None:
    def refilter(props: dict[str, Any]) -> None:
        props["spec"].pop("filterSubject")
        props["spec"].update(filters)

    resources = mutated(baseline(), "consumer", refilter)
    assert [d for d in analyze(pack, resources) if d.policy == "events-durable-consumers"] == []


def test_the_stream_replica_minimum_follows_the_environment(pack: PolicyPackProcess) -> None:
    single = mutated(baseline(), "stream", _set("spec.replicas", 1))
    levels = {
        stack: {d.level for d in analyze(pack, single, stack) if d.policy == "events-stream-replicas"}
        for stack in ("local", "dev", "staging", "prod")
    }
    assert levels == {"local": set(), "dev": set(), "staging": {"mandatory"}, "prod": {"mandatory"}}


def test_a_missing_durable_consumer_is_advisory_in_dev(pack: PolicyPackProcess) -> None:
    resources = without(baseline(), "consumer")
    found = {d.level for d in analyze(pack, resources, "dev") if d.policy == "events-durable-consumers"}
    assert found == {"advisory"}


def test_a_stack_without_a_mesh_needs_no_injection_label(pack: PolicyPackProcess) -> None:
    unlabelled = mutated(baseline(), "namespace", _set("metadata.labels", {}))
    assert [d for d in analyze(pack, without(unlabelled, *NO_MESH)) if d.policy == "sidecar-injection"] == []


def test_a_job_may_opt_out_of_the_mesh(pack: PolicyPackProcess) -> None:
    job = Case(
        "sidecar-injection",
        "job",
        "deployment",
        _both(_as_job, _inject("annotations", "false")),
        retype="kubernetes:batch/v1:Job",
    ).apply(baseline())
    assert [d for d in analyze(pack, job) if d.policy == "sidecar-injection"] == []


def test_a_namespace_listed_as_exempt_may_stay_outside_the_mesh(pack: PolicyPackProcess) -> None:
    outside = mutated(baseline(), "namespace", _set("metadata.labels", {"istio-injection": "disabled"}))
    exempt: dict[str, Any] = {"sidecar-injection": {"exemptNamespaces": [NS]}}
    assert [d for d in analyze(pack, outside, **exempt) if d.policy == "sidecar-injection"] == []


@pytest.mark.parametrize(
    ("image", "allowed"),
    [
        ("postgres:17.6-alpine", "docker.io/library/postgres"),
        ("docker.io/library/postgres:17.6-alpine", "docker.io/library/postgres"),
        ("hashicorp/consul:1.21.5", "docker.io/hashicorp/consul"),
        ("ghcr.io/vinylhound/frontend:3.9.0@sha256:" + "ab" * 32, "ghcr.io/vinylhound/"),
    ],
)
def test_an_allowed_repository_is_matched_in_every_spelling_of_the_image(
    pack: PolicyPackProcess, image: str, allowed: str
) -> None:
    resources = mutated(baseline(), "deployment", _container("image", image))
    # The baseline's Docker container keeps its ghcr.io/vinylhound image.
    overrides: dict[str, Any] = {"allowed-registries": {"allowed": [allowed, "ghcr.io/vinylhound/"]}}
    found = analyze(pack, resources, **overrides)
    assert [d for d in found if d.policy == "allowed-registries"] == []


def test_a_repository_prefix_does_not_admit_a_longer_name(pack: PolicyPackProcess) -> None:
    # "docker.io/library/postgres" must not admit docker.io/library/postgres-evil.
    resources = mutated(baseline(), "deployment", _container("image", "postgres-evil:1.0"))
    overrides: dict[str, Any] = {"allowed-registries": {"allowed": ["docker.io/library/postgres"]}}
    found = [d for d in analyze(pack, resources, **overrides) if d.policy == "allowed-registries"]
    assert resources["deployment"].urn in {d.urn for d in found}


def test_a_namespace_listed_as_privileged_may_enforce_privileged(pack: PolicyPackProcess) -> None:
    def privileged(props: dict[str, Any]) -> None:
        props["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] = "privileged"

    loose = mutated(baseline(), "namespace", privileged)
    allowed: dict[str, Any] = {"pod-security-admission": {"privilegedNamespaces": [NS]}}
    assert [d for d in analyze(pack, loose, **allowed) if d.policy == "pod-security-admission"] == []
    assert [d for d in analyze(pack, loose) if d.policy == "pod-security-admission"] != []


def test_analyze_calls_in_flight_report_what_one_call_at_a_time_reports(
    pack: PolicyPackProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The dev stack judged by prod's config: many resources with findings of their own.
    resources, config = resources_of(rendered("dev")), config_of(pack, "prod")
    monkeypatch.setattr(analyzer, "IN_FLIGHT", 1)
    one_at_a_time = pack.run(resources, config)
    monkeypatch.undo()
    in_flight = pack.run(resources, config)
    reporting = [i for i, r in enumerate(resources) if any(d.urn == r.urn for d in one_at_a_time)]
    assert reporting[-1] - reporting[0] > analyzer.IN_FLIGHT  # findings across several windows
    assert in_flight == one_at_a_time


def test_an_analyze_call_that_fails_is_reported_as_the_packs_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    resources = list(baseline().values())
    with PolicyPackProcess(ROOT / "policies") as lost:
        monkeypatch.setattr(lost, "configure", lambda resolved: None)
        assert lost._process is not None
        lost._process.kill()
        lost._process.wait()
        with pytest.raises(AnalyzerError, match="policy pack Analyze failed"):
            lost.run(resources, {})
