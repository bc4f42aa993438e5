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
    is_release,
    items,
    mapping,
    number,
    pod_spec,
    pod_template,
    string_list,
    text,
    truthy,
    walk,
)

# --- restricted pod security --------------------------------------------------------------------

_pod_security = Rule(
    name="restricted-pod-security",
    description="Pods follow the Kubernetes 'restricted' Pod Security Standard (every baseline and "
    "restricted control: Kyverno pod-security, Gatekeeper's pod-security-policy library) and a "
    "read-only root filesystem: non-root, no privilege escalation, every capability dropped, seccomp "
    "RuntimeDefault, no host namespaces, ports, paths or processes, only the restricted volume types, "
    "default procMount, no custom SELinux user/role/type, AppArmor and sysctls left safe.",
    remediation="set securityContext runAsNonRoot: true, allowPrivilegeEscalation: false, "
    "capabilities.drop: [ALL], seccompProfile.type: RuntimeDefault, readOnlyRootFilesystem: true "
    "(mount an emptyDir where the process writes); never privileged, host namespaces, hostPort, "
    "hostPath or hostProcess; leave procMount, seLinuxOptions, AppArmor and sysctls at their defaults",
    severity=Severity.HIGH,
)

_SECCOMP_OK = {"RuntimeDefault", "Localhost"}
_HOST_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC")
#: The volume sources the restricted standard allows (Kubernetes Pod Security Standards).
RESTRICTED_VOLUMES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
#: The sysctls the baseline standard calls safe (namespaced, isolated per pod).
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
_SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
_APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def _apparmor_ok(profile: str) -> bool:
    return profile in ("", "runtime/default") or profile.startswith("localhost/")


def _context_problems(where: str, ctx: Mapping[str, Any]) -> Iterator[str]:
    """The controls a pod and a container security context share: SELinux, AppArmor, hostProcess."""
    selinux = mapping(ctx.get("seLinuxOptions"))
    if text(selinux.get("type")) not in _SELINUX_TYPES:
        yield f"{where}: seLinuxOptions.type {text(selinux.get('type'))}"
    for field_ in ("user", "role"):
        if text(selinux.get(field_)):
            yield f"{where}: seLinuxOptions.{field_} is set"
    apparmor = text(dig(ctx, "appArmorProfile", "type"))
    if apparmor == "Unconfined":
        yield f"{where}: appArmorProfile.type is Unconfined"
    if dig(ctx, "windowsOptions", "hostProcess") is True:
        yield f"{where}: windowsOptions.hostProcess is true"


def _pod_level_problems(template: Mapping[str, Any], spec: Mapping[str, Any]) -> Iterator[str]:
    pod = mapping(spec.get("securityContext"))
    for host in _HOST_NAMESPACES:
        if spec.get(host) is True:
            yield f"pod sets {host}: true"
    yield from _context_problems("pod", pod)
    for sysctl in (mapping(s) for s in items(pod.get("sysctls"))):
        if text(sysctl.get("name")) not in SAFE_SYSCTLS:
            yield f"pod sets sysctl {text(sysctl.get('name')) or '?'}"
    for volume in (mapping(v) for v in items(spec.get("volumes"))):
        for source in sorted(set(volume) - {"name"} - RESTRICTED_VOLUMES):
            yield f"volume {text(volume.get('name')) or '?'} is of type {source}"
    for key, value in mapping(dig(template, "metadata", "annotations")).items():
        if str(key).startswith(_APPARMOR_ANNOTATION) and not _apparmor_ok(text(value)):
            yield f"annotation {key} is {text(value)}"


def _security_problems(token: str, props: Mapping[str, Any], _config: Mapping[str, Any]) -> Iterator[str]:
    if is_release(token):
        yield from _release_security_problems(props)
        return
    template = pod_template(token, props)
    if template is None:
        return
    spec = mapping(template.get("spec"))
    pod = mapping(spec.get("securityContext"))
    yield from _pod_level_problems(template, spec)
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
        if text(ctx.get("procMount")) not in ("", "Default"):
            yield f"container {name}: procMount is {text(ctx.get('procMount'))}"
        yield from _context_problems(f"container {name}", ctx)
        for port in (mapping(p) for p in items(c.get("ports"))):
            if number(port.get("hostPort")):
                yield f"container {name}: hostPort {number(port.get('hostPort')):g}"


#: Keys in Helm values that put a chart's pods into the host or make them privileged, whatever the
#: chart: the pack cannot see the pods a chart renders, but it sees these overrides.
_UNSAFE_VALUES = ("hostNetwork", "hostPID", "hostIPC", "privileged", "allowPrivilegeEscalation")


def _release_security_problems(props: Mapping[str, Any]) -> Iterator[str]:
    for path, node in walk(props.get("values")):
        for key in _UNSAFE_VALUES:
            if truthy(node.get(key)):
                yield f"values.{path + '.' if path else ''}{key} is true in chart {text(props.get('chart'))}"


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
