"""Event bus: every event a workload consumes has a durable, explicit-ack JetStream consumer, and
streams keep enough copies to survive the loss of a server.

The pack cannot read the catalog (it runs in its own virtualenv), so the facts travel on the
resources: the program annotates the pod template of every consuming workload with
``vinylhound.dev/consumes`` (its subjects, comma-separated), and declares NACK
``jetstream.nats.io`` ``Consumer`` (``durableName``, ``filterSubject``/``filterSubjects``,
``ackPolicy``) and ``Stream`` (``replicas``) objects. A consumer counts for a workload when its
``durableName`` is the workload's name and one of its filters matches the subject (NATS wildcards
``*`` and ``>`` included). How many stream replicas an environment needs is the ``minReplicas``
knob of its config file (1 in local/dev, 3 in staging/prod).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource, Severity

from ._support import (
    EXEMPT_WORKLOADS,
    Rule,
    dig,
    grouped,
    integer,
    items,
    name_of,
    number,
    of_kind,
    text,
    workloads,
)

JETSTREAM = "jetstream.nats.io"
CONSUMES_ANNOTATION = "vinylhound.dev/consumes"
#: The NACK CRD's default when ``spec.replicas`` is not set.
CRD_DEFAULT_REPLICAS = 1.0


def consumed_subjects(annotations: Mapping[str, str]) -> list[str]:
    """The subjects of the ``vinylhound.dev/consumes`` annotation (comma-separated)."""
    return [s.strip() for s in annotations.get(CONSUMES_ANNOTATION, "").split(",") if s.strip()]


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, a trailing ``>`` one or more."""
    wanted, tokens = pattern.split("."), subject.split(".")
    for i, token in enumerate(wanted):
        if token == ">":
            return len(tokens) > i
        if i >= len(tokens) or token not in ("*", tokens[i]):
            return False
    return len(wanted) == len(tokens)


def filters(consumer: PolicyResource) -> list[str]:
    """A consumer's ``filterSubject`` and ``filterSubjects``."""
    spec = dig(consumer.props, "spec")
    found = [text(s) for s in items(dig(spec, "filterSubjects")) if text(s)]
    single = text(dig(spec, "filterSubject"))
    return [single, *found] if single else found


_durable = Rule(
    name="events-durable-consumers",
    description="Every event subject a workload consumes (pod annotation vinylhound.dev/consumes) has a "
    "durable JetStream Consumer named after the workload, filtering that subject, with explicit acks, "
    "so events published while the workload is down or failing are delivered again.",
    remediation="declare the event under the workload's `consumes` in infra/catalog.py so the event bus "
    "derives a NACK Consumer (durableName: <workload>, filterSubject: <subject>, ackPolicy: explicit)",
    severity=Severity.HIGH,
    knobs={"exempt": EXEMPT_WORKLOADS},
)


def _durable_name(consumer: PolicyResource) -> str:
    return text(dig(consumer.props, "spec", "durableName"))


def _durable_problems(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    consumers_of = grouped(resources, JETSTREAM, "Consumer", _durable_name)
    for w in workloads(resources, config["exempt"]):
        for subject in consumed_subjects(w.pod_annotations):
            durable = [
                c for c in consumers_of(w.name) if any(subject_matches(f, subject) for f in filters(c))
            ]
            if not durable:
                yield (
                    w.urn,
                    f"{w.name} consumes {subject} but no Consumer with durableName {w.name!r} filters it; "
                    "events published while it is down are lost",
                )
            for c in durable:
                policy = text(dig(c.props, "spec", "ackPolicy"))
                if policy != "explicit":
                    yield (
                        c.urn,
                        f"the Consumer {name_of(c.props, c.name)} of {subject} for {w.name} acks with "
                        f"{policy or 'the default'!r}, not 'explicit': an event would count as handled "
                        "before the handler confirms it",
                    )


_replicas = Rule(
    name="events-stream-replicas",
    description="Every JetStream Stream keeps at least the environment's minimum number of replicas "
    "(spec.replicas, 1 when unset), so it survives the loss of a NATS server.",
    remediation="run a NATS cluster of at least minReplicas servers (events.clusterSize in the stack "
    "config); streams take their replicas from it",
    severity=Severity.HIGH,
    knobs={"minReplicas": integer(3, "The fewest copies a stream may keep.", 1)},
)


def _replica_problems(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    minimum = config["minReplicas"]
    for stream in of_kind(resources, JETSTREAM, "Stream"):
        replicas = number(dig(stream.props, "spec", "replicas"))
        count = CRD_DEFAULT_REPLICAS if replicas is None else replicas
        if count < minimum:
            name = text(dig(stream.props, "spec", "name")) or name_of(stream.props, stream.name)
            yield stream.urn, f"stream {name} keeps {count:g} replica(s); the minimum is {minimum:g}"


POLICIES = [_durable.stack(_durable_problems), _replicas.stack(_replica_problems)]
