"""Workload hygiene from the anchor libraries: no API token in pods, images from allowed registries
only, no bare or interactive pods, recommended labels, no ``default`` namespace, stable APIs.

Sources: Gatekeeper's general library (automount-serviceaccount-token, allowedrepos,
disallowinteractive, requiredlabels, verifydeprecatedapi), Kyverno's best-practices
(restrict-image-registries, require-labels, disallow-default-namespace, check-deprecated-apis) and
Pulumi's Kubernetes compliance policies (disallowPod, configureRecommendedLabels,
disallowAlpha/BetaResource). Every rule reads Jobs and CronJobs as it reads Deployments.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import Severity

from ._support import (
    CORE,
    DOCKER_CONTAINER,
    DOCKER_REMOTE_IMAGE,
    Rule,
    TypeToken,
    container_name,
    containers,
    dig,
    is_release,
    kube,
    labels_of,
    mapping,
    pod_template,
    string_list,
    text,
    walk,
)

# --- service-account tokens ----------------------------------------------------------------------

_token = Rule(
    name="no-service-account-token",
    description="Pods do not mount a Kubernetes API token: no workload here calls the API server, so a "
    "mounted token would only serve an attacker who got into the container.",
    remediation="set automountServiceAccountToken: false on the pod spec",
    severity=Severity.HIGH,
)


def _token_problems(token: str, props: Mapping[str, Any], _config: Mapping[str, Any]) -> Iterator[str]:
    template = pod_template(token, props)
    if template is None:
        return
    if dig(template, "spec", "automountServiceAccountToken") is not False:
        yield "automountServiceAccountToken is not false"


# --- allowed registries --------------------------------------------------------------------------

_registries = Rule(
    name="allowed-registries",
    description="Every image comes from an allowed registry or repository (pods, Jobs, Docker "
    "containers and image overrides in Helm values), so nothing is pulled from an unvetted source.",
    remediation="use an image from an allowed registry, or add its repository to the stack's "
    "allowed-registries.allowed in policies/config/<stack>.json after review",
    severity=Severity.HIGH,
    knobs={
        "allowed": string_list(
            # docker.io/library/python: the official image the contract-check Job runs its
            # stdlib-only script in (infra/targets/kubernetes/contract.py); docker.io/hashicorp/
            # consul: the official image whose CLI makes Prometheus' Consul token (registry.py).
            [
                "ghcr.io/vinylhound/",
                "ghcr.io/cloudnative-pg/",
                "docker.io/library/python",
                "docker.io/hashicorp/consul",
            ],
            "Allowed image repositories: an exact repository (docker.io/library/postgres) or a prefix "
            "ending in '/' (ghcr.io/vinylhound/). Docker Hub short names are read as docker.io/...",
        )
    },
)

_HOST = re.compile(r"^[^/]*[.:][^/]*$|^localhost$")


def repository(image: str) -> str:
    """The fully qualified repository of an image reference (tag and digest removed)."""
    name = image.partition("@")[0]
    head, _, last = name.rpartition("/")
    name = f"{head}/{last.partition(':')[0]}" if head else last.partition(":")[0]
    first, slash, _ = name.partition("/")
    if not slash:
        return f"docker.io/library/{name}"
    if not _HOST.match(first):
        return f"docker.io/{name}"
    return name


def image_allowed(image: str, allowed: list[str]) -> bool:
    """Whether an image's repository is one of ``allowed`` or under one of its prefixes."""
    repo = repository(image)
    return any(repo == a or (a.endswith("/") and repo.startswith(a)) for a in allowed)


def _values_images(values: Any) -> Iterator[tuple[str, str]]:
    """Image overrides in Helm values: ``{repository[, registry]}`` mappings (the charts' convention)."""
    for path, node in walk(values):
        repo = text(node.get("repository"))
        if repo:
            registry = text(node.get("registry"))
            yield path, f"{registry}/{repo}" if registry else repo


def _registry_problems(token: str, props: Mapping[str, Any], config: Mapping[str, Any]) -> Iterator[str]:
    allowed = list(config["allowed"])
    if token in (DOCKER_CONTAINER, DOCKER_REMOTE_IMAGE):
        image = text(props.get("image" if token == DOCKER_CONTAINER else "name"))
        if image and not image.startswith("sha256:") and not image_allowed(image, allowed):
            yield f"image {image} is not from an allowed registry"
        return
    if is_release(token):
        for path, image in _values_images(props.get("values")):
            if not image_allowed(image, allowed):
                yield f"values.{path} overrides the image with {image}, not from an allowed registry"
        return
    template = pod_template(token, props)
    if template is None:
        return
    for c in containers(mapping(template.get("spec"))):
        image = text(c.get("image"))
        if image and not image_allowed(image, allowed):
            yield f"container {container_name(c)}: image {image} is not from an allowed registry"


# --- bare pods ------------------------------------------------------------------------------------

_bare = Rule(
    name="no-bare-pods",
    description="No Pod is declared on its own: a controller (Deployment, StatefulSet, Job) recreates "
    "its pods when a node goes away; a bare Pod is simply gone.",
    remediation="declare a Deployment (long-running) or a Job (run to completion) instead of a Pod",
    severity=Severity.MEDIUM,
)


def _bare_problems(token: str, _props: Mapping[str, Any], _config: Mapping[str, Any]) -> Iterator[str]:
    if kube(token, CORE, "Pod"):
        yield "a bare Pod has no controller to recreate it"


# --- interactive containers ------------------------------------------------------------------------

_interactive = Rule(
    name="no-interactive-containers",
    description="No container keeps stdin open or allocates a TTY: production pods are not shells.",
    remediation="remove stdin, stdinOnce and tty from the container",
    severity=Severity.LOW,
)


def _interactive_problems(token: str, props: Mapping[str, Any], _config: Mapping[str, Any]) -> Iterator[str]:
    template = pod_template(token, props)
    if template is None:
        return
    for c in containers(mapping(template.get("spec"))):
        for flag in ("stdin", "stdinOnce", "tty"):
            if c.get(flag) is True:
                yield f"container {container_name(c)}: {flag} is true"


# --- recommended labels -----------------------------------------------------------------------------

_labels = Rule(
    name="recommended-labels",
    description="Every workload (Deployment, StatefulSet, DaemonSet, Job, CronJob) and its pod template "
    "carry the recommended app.kubernetes.io labels the selectors, dashboards and policies read.",
    remediation="add the labels from the one LabelContext (components/labels.py) to the object and its "
    "pod template",
    severity=Severity.LOW,
    knobs={
        "required": string_list(
            ["app.kubernetes.io/name", "app.kubernetes.io/part-of"], "Labels every workload must carry."
        )
    },
)


def _label_problems(token: str, props: Mapping[str, Any], config: Mapping[str, Any]) -> Iterator[str]:
    template = pod_template(token, props)
    if template is None or kube(token, CORE, "Pod"):
        return
    pod_labels = {str(k) for k in mapping(dig(template, "metadata", "labels"))}
    own = set(labels_of(props))
    for label in config["required"]:
        if label not in own:
            yield f"no label {label}"
        if label not in pod_labels:
            yield f"pod template has no label {label}"


# --- the default namespace ------------------------------------------------------------------------------

_default_ns = Rule(
    name="no-default-namespace",
    description="Workloads and Helm releases name their namespace, and it is never 'default': the "
    "namespace is where NetworkPolicies, Pod Security Admission labels and quotas apply.",
    remediation="set metadata.namespace (a release's namespace) to the platform's namespace",
    severity=Severity.MEDIUM,
)


def _default_ns_problems(token: str, props: Mapping[str, Any], _config: Mapping[str, Any]) -> Iterator[str]:
    if is_release(token):
        namespace = text(props.get("namespace"))
    elif pod_template(token, props) is not None or kube(token, CORE, "Service", "Secret", "ConfigMap"):
        namespace = text(dig(props, "metadata", "namespace"))
    else:
        return
    if namespace in ("", "default"):
        yield f"namespace is {namespace or 'unset (default)'}"


# --- stable APIs ------------------------------------------------------------------------------------------

_apis = Rule(
    name="stable-apis",
    description="Built-in Kubernetes objects use a stable (GA) API version: alpha and beta versions "
    "of the built-in groups are removed in later releases (the extensions group entirely).",
    remediation="use the GA version of the API (apps/v1, batch/v1, policy/v1, autoscaling/v2, "
    "networking.k8s.io/v1, ...)",
    severity=Severity.MEDIUM,
)

_BUILT_IN_GROUP = re.compile(
    r"^(core|apps|batch|autoscaling|policy|extensions|[a-z.]*k8s\.io)$"  # *.k8s.io: networking, rbac...
)
_STABLE_VERSION = re.compile(r"^v\d+$")


def _api_problems(token: str, _props: Mapping[str, Any], _config: Mapping[str, Any]) -> Iterator[str]:
    parsed = TypeToken.parse(token)
    if parsed.provider != "kubernetes" or not _BUILT_IN_GROUP.match(parsed.group):
        return
    if parsed.group == "extensions" or not _STABLE_VERSION.match(parsed.version):
        yield f"{parsed.kind} uses {parsed.group}/{parsed.version}, not a stable version"


POLICIES = [
    _token.resource(_token_problems),
    _registries.resource(_registry_problems),
    _bare.resource(_bare_problems),
    _interactive.resource(_interactive_problems),
    _labels.resource(_label_problems),
    _default_ns.resource(_default_ns_problems),
    _apis.resource(_api_problems),
]
