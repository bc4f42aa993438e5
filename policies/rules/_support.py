"""Shared reading of resources for the rules: type tokens, tolerant lookups, workloads, selectors.

Policies receive properties in wire form (camelCase keys, every number a float, mappings and lists
as read-only proxies), so everything here works on ``Mapping``/``Sequence`` and never assumes a
property is present. Resources are matched by Kubernetes API group and kind, whatever the version
(``networking.istio.io/v1`` and ``v1beta1`` alike).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

T = TypeVar("T")

NAME_LABEL = "app.kubernetes.io/name"
COMPONENT_LABEL = "app.kubernetes.io/component"
CORE = "core"

#: Kinds whose objects carry a pod template, with the path to the pod spec's parent.
_POD_TEMPLATE_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("apps", "Deployment"): ("spec", "template"),
    ("apps", "StatefulSet"): ("spec", "template"),
    ("apps", "DaemonSet"): ("spec", "template"),
    ("apps", "ReplicaSet"): ("spec", "template"),
    ("batch", "Job"): ("spec", "template"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template"),
    (CORE, "Pod"): (),
}
#: Kinds that run long-lived pods (probes, replicas and the mesh rules apply to these).
SERVING_KINDS = {("apps", "Deployment"), ("apps", "StatefulSet"), ("apps", "DaemonSet")}
#: What the presence rules call a workload: the platform's Deployments and StatefulSets.
WORKLOAD_KINDS = {("apps", "Deployment"), ("apps", "StatefulSet")}


# --- type tokens -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeToken:
    """``kubernetes:networking.istio.io/v1:DestinationRule`` -> provider, group, version, kind."""

    provider: str
    group: str
    version: str
    kind: str

    @classmethod
    def parse(cls, token: str) -> TypeToken:
        """Split a Pulumi type token; unknown shapes give empty parts rather than errors."""
        return _parse_token(token)

    def is_(self, group: str, *kinds: str) -> bool:
        """Whether this is a Kubernetes object of ``group`` and one of ``kinds`` (any version)."""
        return self.provider == "kubernetes" and self.group == group and self.kind in kinds


@functools.cache
def _parse_token(token: str) -> TypeToken:
    # Every rule parses every resource's token; a stack has a few dozen distinct ones, and a
    # TypeToken is immutable, so one parse each serves the pack's whole life.
    parts = token.split(":")
    if len(parts) != 3:
        return TypeToken(parts[0] if parts else "", "", "", parts[-1] if parts else "")
    provider, module, kind = parts
    group, _, version = module.partition("/")
    return TypeToken(provider, group, version, kind)


def kube(token: str, group: str, *kinds: str) -> bool:
    """Whether ``token`` is a Kubernetes type of ``group`` and one of ``kinds``, any version."""
    return TypeToken.parse(token).is_(group, *kinds)


def is_release(token: str) -> bool:
    """Whether ``token`` is a Helm release (``kubernetes:helm.sh/v3:Release`` or later versions)."""
    return kube(token, "helm.sh", "Release")


DOCKER_CONTAINER = "docker:index/container:Container"
DOCKER_REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"


# --- tolerant lookups --------------------------------------------------------------------------


def dig(value: Any, *path: str | int) -> Any:
    """``value[path[0]][path[1]]...`` or ``None`` as soon as a step is missing or the wrong shape."""
    for step in path:
        if isinstance(step, int):
            if not is_list(value) or not -len(value) <= step < len(value):
                return None
            value = value[step]
        else:
            if not isinstance(value, Mapping) or step not in value:
                return None
            value = value[step]
    return value


def is_list(value: Any) -> bool:
    """A sequence that is not a string."""
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def items(value: Any) -> list[Any]:
    """The elements of a list property, or ``[]``."""
    return list(value) if is_list(value) else []


def mapping(value: Any) -> Mapping[str, Any]:
    """A mapping property, or ``{}``."""
    return value if isinstance(value, Mapping) else {}


def text(value: Any) -> str:
    """A string property, or ``""``."""
    return value if isinstance(value, str) else ""


def number(value: Any) -> float | None:
    """A numeric property (the wire has only floats), or ``None``."""
    if isinstance(value, bool):
        return None
    return float(value) if isinstance(value, int | float) else None


def truthy(value: Any) -> bool:
    """A boolean property, also when written as a string (Helm values often are)."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def labels_of(props: Mapping[str, Any]) -> dict[str, str]:
    """``metadata.labels`` as a plain dict."""
    return {str(k): str(v) for k, v in mapping(dig(props, "metadata", "labels")).items()}


def name_of(props: Mapping[str, Any], fallback: str = "") -> str:
    """``metadata.name``."""
    return text(dig(props, "metadata", "name")) or fallback


def namespace_of(props: Mapping[str, Any]) -> str:
    """``metadata.namespace`` (``default`` when unset, as the API server would have it)."""
    return text(dig(props, "metadata", "namespace")) or "default"


def namespace_of_resource(resource: PolicyResource) -> str:
    """A resource's namespace (see ``namespace_of``): a key for ``grouped``."""
    return namespace_of(resource.props)


# --- pods and containers -----------------------------------------------------------------------


def pod_template(token: str, props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod template (``metadata`` + ``spec``) of a pod-carrying object, else ``None``."""
    parsed = TypeToken.parse(token)
    if parsed.provider != "kubernetes":
        return None
    path = _POD_TEMPLATE_PATHS.get((parsed.group, parsed.kind))
    if path is None:
        return None
    template = dig(props, *path) if path else props
    return template if isinstance(template, Mapping) else {}


def pod_spec(token: str, props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod spec of a pod-carrying object, else ``None``."""
    template = pod_template(token, props)
    return None if template is None else mapping(template.get("spec"))


def template_labels(template: Mapping[str, Any]) -> dict[str, str]:
    """A pod template's ``metadata.labels`` as a plain dict."""
    return {str(k): str(v) for k, v in mapping(dig(template, "metadata", "labels")).items()}


def containers(spec: Mapping[str, Any], *, init: bool = True) -> list[Mapping[str, Any]]:
    """The pod's containers (and init containers unless ``init`` is false)."""
    found = [mapping(c) for c in items(spec.get("containers"))]
    if init:
        found += [mapping(c) for c in items(spec.get("initContainers"))]
    return found


def container_name(container: Mapping[str, Any]) -> str:
    """A container's name for messages."""
    return text(container.get("name")) or "?"


# --- label selectors ---------------------------------------------------------------------------


def selects(selector: Any, labels: Mapping[str, str]) -> bool:
    """Kubernetes LabelSelector semantics: ``matchLabels`` and ``matchExpressions``; an empty
    selector selects everything. ``None`` (no selector at all) selects nothing."""
    if not isinstance(selector, Mapping):
        return False
    for key, value in mapping(selector.get("matchLabels")).items():
        if labels.get(key) != value:
            return False
    for expr in items(selector.get("matchExpressions")):
        key, op = text(dig(expr, "key")), text(dig(expr, "operator"))
        values = {str(v) for v in items(dig(expr, "values"))}
        present = key in labels
        if (
            (op == "In" and not (present and labels[key] in values))
            or (op == "NotIn" and present and labels[key] in values)
            or (op == "Exists" and not present)
            or (op == "DoesNotExist" and present)
        ):
            return False
    return True


def plain_selector(selector: Any) -> dict[str, Any]:
    """A ``{key: value}`` selector (Service.spec.selector) as a LabelSelector."""
    return {"matchLabels": dict(mapping(selector))}


# --- workloads -----------------------------------------------------------------------------------


@dataclass
class Workload:
    """A Deployment or StatefulSet as the presence rules see it."""

    name: str
    namespace: str
    resource: PolicyResource
    kind: str
    pod_labels: dict[str, str]
    spec: Mapping[str, Any]
    replicas: float | None
    pod_annotations: dict[str, str] = field(default_factory=dict)

    @property
    def urn(self) -> str:
        """The resource's URN, for reports."""
        return self.resource.urn

    @property
    def object_name(self) -> str:
        """``metadata.name`` of the Deployment/StatefulSet."""
        return name_of(self.resource.props, self.name)

    def env(self) -> dict[str, Mapping[str, Any]]:
        """Every env entry of every (non-init) container, by variable name."""
        return {
            text(e.get("name")): e
            for c in containers(self.spec, init=False)
            for e in (mapping(x) for x in items(c.get("env")))
        }


def workloads(resources: Iterable[PolicyResource], exempt: Iterable[str] = ()) -> list[Workload]:
    """Every Deployment/StatefulSet, named by its ``app.kubernetes.io/name`` label."""
    skip = set(exempt)
    found = []
    for r in resources:
        parsed = TypeToken.parse(r.resource_type)
        if parsed.provider != "kubernetes" or (parsed.group, parsed.kind) not in WORKLOAD_KINDS:
            continue
        template = pod_template(r.resource_type, r.props) or {}
        pod_labels = template_labels(template)
        pod_annotations = {
            str(k): str(v) for k, v in mapping(dig(template, "metadata", "annotations")).items()
        }
        name = labels_of(r.props).get(NAME_LABEL) or pod_labels.get(NAME_LABEL) or name_of(r.props, r.name)
        if name in skip:
            continue
        found.append(
            Workload(
                name=name,
                namespace=namespace_of(r.props),
                resource=r,
                kind=parsed.kind,
                pod_labels=pod_labels,
                spec=mapping(template.get("spec")),
                replicas=number(dig(r.props, "spec", "replicas")),
                pod_annotations=pod_annotations,
            )
        )
    return sorted(found, key=lambda w: (w.namespace, w.name))


# --- indexes -------------------------------------------------------------------------------------


class StackResources(list[PolicyResource]):
    """The resources a stack policy was given, with indexes built on first use.

    Stack rules look resources up per workload (its Services, autoscaler, DestinationRules...);
    scanning the whole stack for each made the pack's stack checks grow with the square of the
    workloads. ``Rule.stack`` hands its check one of these, and the lookups below use its indexes;
    given a plain sequence they scan, with the same results in the same order.
    """

    def __init__(self, resources: Iterable[PolicyResource] = ()) -> None:
        super().__init__(resources)
        self._views: dict[Hashable, Any] = {}

    def view(self, key: Hashable, build: Callable[[], T]) -> T:
        """``build()``, computed once per ``key``."""
        if key not in self._views:
            self._views[key] = build()
        result: T = self._views[key]
        return result


def in_stack_order(resources: StackResources, found: Iterable[PolicyResource]) -> list[PolicyResource]:
    """``found`` without repeats, in the stack's order."""
    position = resources.view("position", lambda: {id(r): i for i, r in enumerate(resources)})
    unique = {id(r): r for r in found}
    return [unique[key] for key in sorted(unique, key=position.__getitem__)]


def _by_kind(resources: StackResources) -> dict[tuple[str, str], list[PolicyResource]]:
    index: dict[tuple[str, str], list[PolicyResource]] = {}
    for r in resources:
        parsed = TypeToken.parse(r.resource_type)
        if parsed.provider == "kubernetes":
            index.setdefault((parsed.group, parsed.kind), []).append(r)
    return index


def of_kind(resources: Iterable[PolicyResource], group: str, *kinds: str) -> list[PolicyResource]:
    """The resources of a Kubernetes group and kind, any version."""
    if isinstance(resources, StackResources):
        index = resources.view(_by_kind, lambda: _by_kind(resources))
        if len(kinds) == 1:
            return list(index.get((group, kinds[0]), ()))
        return in_stack_order(resources, (r for kind in kinds for r in index.get((group, kind), ())))
    return [r for r in resources if kube(r.resource_type, group, *kinds)]


def in_namespace(resources: Iterable[PolicyResource], namespace: str) -> list[PolicyResource]:
    """The resources whose ``metadata.namespace`` is ``namespace``."""
    return [r for r in resources if namespace_of(r.props) == namespace]


def grouped(
    resources: Iterable[PolicyResource], group: str, kind: str, key: Callable[[PolicyResource], Hashable]
) -> Callable[[Hashable], list[PolicyResource]]:
    """Look up the resources of a kind by ``key(resource)`` (a module-level function: the index
    is kept per function), in the stack's order."""
    if isinstance(resources, StackResources):
        index = resources.view(
            ("grouped", group, kind, key),
            lambda: _group(of_kind(resources, group, kind), key),
        )
        return lambda value: list(index.get(value, ()))
    candidates = of_kind(resources, group, kind)
    return lambda value: [r for r in candidates if key(r) == value]


def _group(
    resources: Iterable[PolicyResource], key: Callable[[PolicyResource], Hashable]
) -> dict[Hashable, list[PolicyResource]]:
    index: dict[Hashable, list[PolicyResource]] = {}
    for r in resources:
        index.setdefault(key(r), []).append(r)
    return index


def _selector_at(r: PolicyResource, path: tuple[str, ...], plain: bool) -> Any:
    selector = dig(r.props, *path)
    if plain:
        # A Service's {key: value} selector; an absent or empty one selects no pods.
        return plain_selector(selector) if selector else None
    return selector


class _SelectorIndex:
    """Resources filed under one ``matchLabels`` pair of their selector: a selector selects a
    pod only if the pod has every pair, so the pod's own pairs find every candidate. Selectors
    without pairs (empty, expressions only, not a mapping) are always candidates."""

    def __init__(self, resources: Iterable[PolicyResource], path: tuple[str, ...], plain: bool) -> None:
        self.path, self.plain = path, plain
        self.by_pair: dict[tuple[str, Any], list[PolicyResource]] = {}
        self.always: list[PolicyResource] = []
        for r in resources:
            pairs = mapping(mapping(_selector_at(r, path, plain)).get("matchLabels"))
            first = min(pairs.items(), default=None, key=lambda kv: str(kv[0]))
            if first is None or not isinstance(first[1], Hashable):
                self.always.append(r)
            else:
                self.by_pair.setdefault((str(first[0]), first[1]), []).append(r)

    def candidates(self, labels: Mapping[str, str]) -> Iterator[PolicyResource]:
        yield from self.always
        for pair in labels.items():
            yield from self.by_pair.get(pair, ())


def selecting(
    resources: Iterable[PolicyResource],
    group: str,
    kinds: tuple[str, ...],
    path: tuple[str, ...],
    labels: Mapping[str, str],
    namespace: str | None = None,
    *,
    plain: bool = False,
) -> list[PolicyResource]:
    """The resources of ``group``/``kinds`` (in ``namespace`` when given) whose selector at
    ``path`` selects ``labels``: a LabelSelector, or with ``plain`` a Service's ``{key: value}``
    selector. In the stack's order."""
    if isinstance(resources, StackResources):
        index = resources.view(
            ("selecting", group, kinds, path, plain),
            lambda: _SelectorIndex(of_kind(resources, group, *kinds), path, plain),
        )
        candidates: Iterable[PolicyResource] = in_stack_order(resources, index.candidates(labels))
    else:
        candidates = of_kind(resources, group, *kinds)
    return [
        r
        for r in candidates
        if (namespace is None or namespace_of(r.props) == namespace)
        and selects(_selector_at(r, path, plain), labels)
    ]


def services_of(resources: Iterable[PolicyResource], w: Workload) -> list[PolicyResource]:
    """The Services in the workload's namespace whose selector picks its pods."""
    return selecting(
        resources, CORE, ("Service",), ("spec", "selector"), w.pod_labels, w.namespace, plain=True
    )


def releases(resources: Iterable[PolicyResource], *charts: str) -> list[PolicyResource]:
    """Helm releases of any of ``charts`` (matched on the chart name, with or without a repo prefix)."""
    wanted = set(charts)
    return [
        r
        for r in resources
        if is_release(r.resource_type) and text(r.props.get("chart")).rsplit("/", 1)[-1] in wanted
    ]


def uses_group(resources: Iterable[PolicyResource], suffix: str) -> bool:
    """Whether any Kubernetes resource's API group ends with ``suffix`` (``istio.io``)."""
    return any(
        (p := TypeToken.parse(r.resource_type)).provider == "kubernetes" and p.group.endswith(suffix)
        for r in resources
    )


def _scale_target(hpa: PolicyResource) -> tuple[str, str, str]:
    ref = dig(hpa.props, "spec", "scaleTargetRef")
    return namespace_of(hpa.props), text(dig(ref, "kind")), text(dig(ref, "name"))


def autoscalers_of(resources: Sequence[PolicyResource], w: Workload) -> list[PolicyResource]:
    """The HorizontalPodAutoscalers whose ``scaleTargetRef`` is the workload."""
    by_target = grouped(resources, "autoscaling", "HorizontalPodAutoscaler", _scale_target)
    return by_target((w.namespace, w.kind, w.object_name))


def hpa_min_replicas(hpa: PolicyResource) -> float:
    """An autoscaler's ``minReplicas`` (Kubernetes' default: 1)."""
    return number(dig(hpa.props, "spec", "minReplicas")) or 1.0


def effective_min_replicas(resources: Sequence[PolicyResource], w: Workload) -> tuple[float, bool]:
    """The fewest pods the workload runs with, and whether an HPA decides it."""
    for hpa in autoscalers_of(resources, w):
        return hpa_min_replicas(hpa), True
    return (w.replicas if w.replicas is not None else 1.0), False


# --- building policies ---------------------------------------------------------------------------

ResourceCheck = Callable[[str, Mapping[str, Any], Mapping[str, Any]], Iterator[str]]
StackCheck = Callable[[Sequence[PolicyResource], Mapping[str, Any]], Iterator[tuple[str, str]]]


@dataclass(frozen=True)
class Knob:
    """One configuration property of a rule: JSON schema plus its default."""

    schema: dict[str, Any]
    default: Any


def _schema(knobs: Mapping[str, Knob]) -> PolicyConfigSchema | None:
    if not knobs:
        return None
    return PolicyConfigSchema(properties={k: {**v.schema, "default": v.default} for k, v in knobs.items()})


def _config(raw: Mapping[str, Any] | None, knobs: Mapping[str, Knob]) -> dict[str, Any]:
    """The rule's knobs: the resolved config where given, the defaults elsewhere."""
    given = dict(raw or {})
    return {k: given.get(k, knob.default) for k, knob in knobs.items()}


@dataclass(frozen=True)
class Rule:
    """What every rule states: name, description, severity, remediation, knobs."""

    name: str
    description: str
    remediation: str
    severity: Severity = Severity.HIGH
    knobs: Mapping[str, Knob] = field(default_factory=dict)

    def _message(self, problem: str) -> str:
        return f"{problem}. Fix: {self.remediation}"

    def _policy_fields(self) -> dict[str, Any]:
        """What a resource and a stack policy built from this rule have in common."""
        return {
            "name": self.name,
            "description": self.description,
            "enforcement_level": EnforcementLevel.MANDATORY,
            "config_schema": _schema(self.knobs),
            "severity": self.severity,
            "remediation_steps": self.remediation,
        }

    def resource(self, check: ResourceCheck) -> ResourceValidationPolicy:
        """A per-resource policy: ``check(type, props, config)`` yields one problem per violation."""

        def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
            config = _config(args.get_config(), self.knobs)
            for problem in check(args.resource_type, args.props, config):
                report(self._message(problem), None)

        return ResourceValidationPolicy(validate=validate, **self._policy_fields())

    def stack(self, check: StackCheck) -> StackValidationPolicy:
        """A stack policy: ``check(resources, config)`` yields ``(urn, problem)`` per violation."""

        def validate(args: StackValidationArgs, report: ReportViolation) -> None:
            config = _config(args.get_config(), self.knobs)
            for urn, problem in check(StackResources(args.resources), config):
                report(self._message(problem), urn or None)

        return StackValidationPolicy(validate=validate, **self._policy_fields())


def string_list(default: list[str], description: str) -> Knob:
    """A knob holding a list of strings."""
    return Knob({"type": "array", "items": {"type": "string"}, "description": description}, default)


#: The ``exempt`` knob of every rule that checks workloads.
EXEMPT_WORKLOADS = string_list([], "Workload names (app.kubernetes.io/name) this rule does not apply to.")


def integer(default: int, description: str, minimum: int = 0) -> Knob:
    """A knob holding an integer."""
    return Knob({"type": "integer", "minimum": minimum, "description": description}, default)


def boolean(default: bool, description: str) -> Knob:
    """A knob holding a boolean."""
    return Knob({"type": "boolean", "description": description}, default)


SENSITIVE_NAME = re.compile(r"(^|_)(PASSWORD|PASSWD|SECRET|TOKEN|KEY|APIKEY|CREDENTIALS?|PRIVATE)(_|$)")


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every mapping inside ``value`` (Helm values, say) with its dotted path."""
    if isinstance(value, Mapping):
        yield path, value
        for key, child in value.items():
            yield from walk(child, f"{path}.{key}" if path else str(key))
    elif is_list(value):
        for index, child in enumerate(value):
            yield from walk(child, f"{path}[{index}]")
