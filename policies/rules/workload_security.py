"""The pod rules: restricted security, no plain-text secrets, sized containers, probes, statelessness."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import Severity

from ._support import (
    DOCKER_CONTAINER,
    SENSITIVE_NAME,
    SERVING_KINDS,
    Rule,
    TypeToken,
    boolean,
    container_name,
    containers,
    dig,
    items,
    mapping,
    pod_spec,
    string_list,
    text,
)

# --- restricted pod security --------------------------------------------------------------------

_pod_security = Rule(
    name="restricted-pod-security",
    description="Pods follow the Kubernetes 'restricted' Pod Security Standard and a read-only root "
    "filesystem: non-root, no privilege escalation, every capability dropped, seccomp RuntimeDefault.",
    remediation="set securityContext runAsNonRoot: true, allowPrivilegeEscalation: false, "
    "capabilities.drop: [ALL], seccompProfile.type: RuntimeDefault, readOnlyRootFilesystem: true "
    "(mount an emptyDir where the process writes); never privileged or host namespaces",
    severity=Severity.HIGH,
)

_SECCOMP_OK = {"RuntimeDefault", "Localhost"}


def _security_problems(token: str, props: Mapping[str, Any], _config: Mapping[str, Any]) -> Iterator[str]:
    spec = pod_spec(token, props)
    if spec is None:
        return
    pod = mapping(spec.get("securityContext"))
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(host) is True:
            yield f"pod sets {host}: true"
    for c in containers(spec):
        ctx = mapping(c.get("securityContext"))
        name = container_name(c)
        non_root = ctx.get("runAsNonRoot", pod.get("runAsNonRoot"))
        if non_root is not True:
            yield f"container {name}: runAsNonRoot is not true"
        if ctx.get("runAsUser", pod.get("runAsUser")) == 0:
            yield f"container {name}: runAsUser is 0 (root)"
        if ctx.get("allowPrivilegeEscalation") is not False:
            yield f"container {name}: allowPrivilegeEscalation is not false"
        if ctx.get("privileged") is True:
            yield f"container {name}: privileged"
        dropped = {text(x) for x in items(dig(ctx, "capabilities", "drop"))}
        if "ALL" not in dropped:
            yield f"container {name}: capabilities.drop does not include ALL"
        added = {text(x) for x in items(dig(ctx, "capabilities", "add"))} - {"NET_BIND_SERVICE"}
        if added:
            yield f"container {name}: capabilities.add {sorted(added)}"
        seccomp = text(dig(ctx, "seccompProfile", "type")) or text(dig(pod, "seccompProfile", "type"))
        if seccomp not in _SECCOMP_OK:
            yield f"container {name}: seccompProfile.type is {seccomp or 'unset'}, not RuntimeDefault"
        if ctx.get("readOnlyRootFilesystem") is not True:
            yield f"container {name}: readOnlyRootFilesystem is not true"


# --- secrets in env -----------------------------------------------------------------------------

_plain_secrets = Rule(
    name="no-plain-secrets-in-env",
    description="Environment variables named like a secret (PASSWORD, SECRET, TOKEN, KEY, ...) never "
    "carry a plain-text value: they come from a Kubernetes Secret.",
    remediation="use env[].valueFrom.secretKeyRef pointing at a Secret (and keep the value a Pulumi "
    "secret); on the Docker stack, generate it as a Pulumi secret and never commit it",
    severity=Severity.CRITICAL,
    knobs={
        "allowedNames": string_list([], "Variable names that look sensitive but are not."),
    },
)


def _secret_problems(token: str, props: Mapping[str, Any], config: Mapping[str, Any]) -> Iterator[str]:
    allowed = set(config["allowedNames"])
    if token == DOCKER_CONTAINER:
        for entry in items(props.get("envs")):
            name, sep, value = text(entry).partition("=")
            if sep and value and SENSITIVE_NAME.search(name.upper()) and name not in allowed:
                yield f"container env {name} has a plain-text value"
        return
    spec = pod_spec(token, props)
    if spec is None:
        return
    for c in containers(spec):
        for env in (mapping(e) for e in items(c.get("env"))):
            name = text(env.get("name"))
            if name in allowed or not SENSITIVE_NAME.search(name.upper()):
                continue
            if text(env.get("value")):
                yield f"container {container_name(c)}: env {name} has a plain-text value"


# --- requests and limits --------------------------------------------------------------------------

_resources = Rule(
    name="resource-requests-limits",
    description="Every container declares CPU and memory requests and limits, so the scheduler can "
    "place it and one pod cannot starve its node.",
    remediation="set resources.requests.{cpu,memory} and resources.limits.{cpu,memory} "
    "(per workload in the stack config: services.<name>.resources)",
    severity=Severity.MEDIUM,
    knobs={"requireCpuLimit": boolean(True, "Whether a CPU limit is required as well.")},
)


def _resource_problems(token: str, props: Mapping[str, Any], config: Mapping[str, Any]) -> Iterator[str]:
    spec = pod_spec(token, props)
    if spec is None:
        return
    for c in containers(spec):
        wanted = [("requests", "cpu"), ("requests", "memory"), ("limits", "memory")]
        if config["requireCpuLimit"]:
            wanted.append(("limits", "cpu"))
        missing = [f"{side}.{what}" for side, what in wanted if dig(c, "resources", side, what) in (None, "")]
        if missing:
            yield f"container {container_name(c)}: no {', '.join(missing)}"


# --- health probes --------------------------------------------------------------------------------

_probes = Rule(
    name="health-probes",
    description="Every long-running container has a readiness and a liveness probe (the guide's "
    "health checks), so traffic only reaches ready pods and hung ones are restarted.",
    remediation="add readinessProbe and livenessProbe (httpGet on the catalog's health path, or "
    "tcpSocket where there is none)",
    severity=Severity.HIGH,
)


def _probe_problems(token: str, props: Mapping[str, Any], _config: Mapping[str, Any]) -> Iterator[str]:
    parsed = TypeToken.parse(token)
    spec = pod_spec(token, props)
    if spec is None or (parsed.group, parsed.kind) not in SERVING_KINDS:
        return
    for c in containers(spec, init=False):
        for probe in ("readinessProbe", "livenessProbe"):
            if not mapping(c.get(probe)):
                yield f"container {container_name(c)}: no {probe}"


# --- stateless services ---------------------------------------------------------------------------

_stateless = Rule(
    name="stateless-services",
    description="Services stay stateless: their pods mount no volume but emptyDir (state lives in the "
    "service's own database), and no StatefulSet claims volumes for them.",
    remediation="move state into the service's database; keep scratch space on emptyDir",
    severity=Severity.MEDIUM,
    knobs={
        "allowedVolumeSources": string_list(
            ["emptyDir"], "Volume sources allowed on service pods (e.g. add configMap, projected)."
        )
    },
)


def _stateless_problems(token: str, props: Mapping[str, Any], config: Mapping[str, Any]) -> Iterator[str]:
    parsed = TypeToken.parse(token)
    spec = pod_spec(token, props)
    if spec is None or (parsed.group, parsed.kind) not in SERVING_KINDS:
        return
    allowed = set(config["allowedVolumeSources"])
    for volume in (mapping(v) for v in items(spec.get("volumes"))):
        sources = sorted(set(volume) - {"name"})
        bad = [s for s in sources if s not in allowed]
        if bad:
            yield f"volume {text(volume.get('name')) or '?'} uses {', '.join(bad)}"
    if items(dig(props, "spec", "volumeClaimTemplates")):
        yield "StatefulSet claims persistent volumes (volumeClaimTemplates)"


POLICIES = [
    _pod_security.resource(_security_problems),
    _plain_secrets.resource(_secret_problems),
    _resources.resource(_resource_problems),
    _probes.resource(_probe_problems),
    _stateless.resource(_stateless_problems),
]
