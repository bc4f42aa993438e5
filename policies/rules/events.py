"""Event bus rules: every event consumer of the catalog has a durable consumer, and streams are
replicated outside dev.

Both are stack rules: they look at the whole stack at once. A deployed workload is recognised by its
Deployment (named after the catalog entry); its consumer by a NACK ``Consumer`` whose durable name is
the workload and whose filter covers the subject. Validators tolerate missing properties (an
unknown value during preview is simply not matched) and read the wire form (camelCase, floats).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra import catalog, events

ReportViolation = Callable[[str, str | None], None]

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
STREAM = "kubernetes:jetstream.nats.io/v1beta2:Stream"
CONSUMER = "kubernetes:jetstream.nats.io/v1beta2:Consumer"
ENVIRONMENT_LABEL = "vinylhound.dev/environment"

DEFAULT_MIN_REPLICAS = 3
DEFAULT_EXEMPT = ("local", "dev")


def _get(props: Mapping[str, Any] | None, *path: str) -> Any:
    value: Any = props
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _filters(spec: Mapping[str, Any]) -> set[str]:
    subjects = set(spec.get("filterSubjects") or [])
    if isinstance(spec.get("filterSubject"), str):
        subjects.add(spec["filterSubject"])
    return subjects


def _deployed(resources: Iterable[PolicyResource]) -> set[str]:
    return {
        name
        for r in resources
        if r.resource_type == DEPLOYMENT and isinstance(name := _get(r.props, "metadata", "name"), str)
    }


def validate_durable_consumers(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Every deployed workload that consumes an event has a durable, explicit-ack consumer for it."""
    deployed = _deployed(args.resources)
    consumers = [r for r in args.resources if r.resource_type == CONSUMER]
    for workload in catalog.WORKLOADS:
        if workload.name not in deployed:
            continue
        for event in workload.consumes:
            subject = events.subject(event)
            durable = [
                r
                for r in consumers
                if _get(r.props, "spec", "durableName") == workload.name
                and subject in _filters(_get(r.props, "spec") or {})
            ]
            if not durable:
                report_violation(
                    f"{workload.name} consumes {event} but no Consumer has durableName "
                    f"{workload.name!r} filtering {subject}; without one, events published while it is "
                    "down are lost.",
                    None,
                )
                continue
            for r in durable:
                policy = _get(r.props, "spec", "ackPolicy")
                if policy != "explicit":
                    report_violation(
                        f"the consumer of {event} for {workload.name} acks with {policy!r}; use 'explicit' "
                        "so an event is redelivered until the handler confirms it.",
                        r.urn,
                    )


def _environment(resources: Iterable[PolicyResource]) -> str | None:
    for r in resources:
        env = _get(r.props, "metadata", "labels", ENVIRONMENT_LABEL)
        if isinstance(env, str):
            return env
    return None


def validate_stream_replicas(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Every stream keeps at least ``minReplicas`` copies, except in the exempt environments."""
    config = args.get_config() or {}
    minimum = int(config.get("minReplicas", DEFAULT_MIN_REPLICAS))
    exempt = set(config.get("exemptEnvironments", DEFAULT_EXEMPT))
    environment = _environment(args.resources)
    if environment in exempt:
        return
    for r in args.resources:
        if r.resource_type != STREAM:
            continue
        replicas = _get(r.props, "spec", "replicas")
        if not isinstance(replicas, int | float):
            replicas = 1  # the CRD's default
        if replicas < minimum:
            name = _get(r.props, "spec", "name") or r.name
            report_violation(
                f"stream {name} has {int(replicas)} replica(s); {environment or 'this environment'} needs "
                f"at least {minimum} so the stream survives the loss of a server.",
                r.urn,
            )


durable_consumers = StackValidationPolicy(
    name="events-durable-consumers",
    description="Every event a deployed workload consumes has a durable consumer with explicit acks.",
    validate=validate_durable_consumers,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
)

stream_replicas = StackValidationPolicy(
    name="events-stream-replicas",
    description="JetStream streams are replicated (>= minReplicas) outside the exempt environments.",
    validate=validate_stream_replicas,
    enforcement_level=EnforcementLevel.MANDATORY,
    severity=Severity.HIGH,
    config_schema=PolicyConfigSchema(
        properties={
            "minReplicas": {"type": "integer", "minimum": 1, "default": DEFAULT_MIN_REPLICAS},
            "exemptEnvironments": {
                "type": "array",
                "items": {"type": "string"},
                "default": list(DEFAULT_EXEMPT),
            },
        }
    ),
)

POLICIES: list[StackValidationPolicy] = [durable_consumers, stream_replicas]
