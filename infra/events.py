"""The event bus, derived from the catalog: subjects, streams, durable consumers, NATS users.

This is the ONE place that turns the catalog's ``publishes``/``consumes`` into JetStream
definitions. Everything that needs them reads them from here: the Kubernetes target (NATS Helm
values, NACK ``Stream``/``Consumer`` resources, alerts), the local Docker stack (``server_config``
+ ``render_conf`` for a NATS container), the policy pack, and the tests that run the same
definitions against a real ``nats-server``. Pure functions, no Pulumi.

Decisions (see docs/architecture.md, "Event bus"):

- Subjects are ``vinylhound.<event>`` (``vinylhound.user.created``).
- One stream per event family (the first token: ``user.created`` and a later ``user.deleted``
  share ``VINYLHOUND_USER``). A family is one aggregate, so its events stay in order, and the
  number of replicated streams (one Raft group each) grows with aggregates, not events. A stream
  lists exactly the subjects the catalog declares, nothing broader.
- One durable pull consumer per consuming workload and family, named after the workload, with
  explicit acks: at-least-once delivery, so consumers must be idempotent (the playlist service
  creates a Favorites playlist only if the user has none). ``deliverPolicy: all`` so events
  published before a consumer existed are still delivered.
- One NATS user per publishing or consuming workload, allowed to publish only its own events and
  to pull and ack only on its own consumers; plus one user for the JetStream controller.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from components.values import EnvVar, SecretKeyRef
from infra import catalog
from infra.catalog import Workload
from infra.config import EventsConfig, duration_seconds, quantity_bytes

SUBJECT_PREFIX = "vinylhound"
CLIENT_PORT = 4222
CLUSTER_PORT = 6222
MONITOR_PORT = 8222
#: The chart's prometheus-nats-exporter sidecar (container port name ``prom-metrics``).
METRICS_PORT = 7777
METRICS_PORT_NAME = "prom-metrics"
#: The exporter runs with ``-prefix=nats``: its JetStream series are ``nats_consumer_*`` etc.
METRIC_PREFIX = "nats"
#: The NATS user the JetStream controller (NACK) manages streams and consumers with.
CONTROLLER_USER = "jetstream-controller"
#: Replies (publish acks, pulled messages) arrive on inboxes; every client needs them.
INBOX = "_INBOX.>"
#: Pod annotation naming the subjects a workload consumes (comma-separated, sorted). The policy pack
#: cannot import this module (it runs in its own virtualenv), so the fact travels on the pod.
CONSUMES_ANNOTATION = "vinylhound.dev/consumes"

Json = dict[str, Any]
V = TypeVar("V")


def subject(event: str) -> str:
    """The NATS subject of an event: ``user.created`` -> ``vinylhound.user.created``."""
    return f"{SUBJECT_PREFIX}.{event}"


def family(event: str) -> str:
    """The event family (aggregate) an event belongs to: ``user.created`` -> ``user``."""
    return event.split(".", 1)[0]


def stream_name(event_family: str) -> str:
    """The JetStream stream of a family: ``user`` -> ``VINYLHOUND_USER``."""
    return f"{SUBJECT_PREFIX}_{event_family}".upper().replace("-", "_")


def password_env(user: str) -> str:
    """The environment variable the NATS server reads a user's password from."""
    return "NATS_PASSWORD_" + re.sub(r"[^A-Za-z0-9]", "_", user).upper()


def _nanos(duration: str) -> int:
    return round(duration_seconds(duration) * 1_000_000_000)


@dataclass(frozen=True)
class StreamDef:
    """One JetStream stream (file storage, limits retention)."""

    name: str
    family: str
    subjects: tuple[str, ...]
    replicas: int
    max_age: str
    duplicate_window: str
    max_bytes: int
    storage: str = "file"
    retention: str = "limits"
    discard: str = "old"

    @property
    def resource_name(self) -> str:
        """The Kubernetes name of its ``Stream`` resource (``vinylhound-user``)."""
        return self.name.lower().replace("_", "-")

    def cr_spec(self, account: str | None = None) -> Json:
        """The ``spec`` of the NACK ``jetstream.nats.io/v1beta2`` ``Stream``."""
        spec: Json = {
            "name": self.name,
            "description": f"Vinylhound {self.family} events",
            "subjects": list(self.subjects),
            "retention": self.retention,
            "storage": self.storage,
            "replicas": self.replicas,
            "maxAge": self.max_age,
            "duplicateWindow": self.duplicate_window,
            "maxBytes": self.max_bytes,
            "discard": self.discard,
        }
        if account:
            spec["account"] = account
        return spec

    def api_config(self) -> Json:
        """The same stream as the JetStream API's ``$JS.API.STREAM.CREATE`` body (what NACK sends)."""
        return {
            "name": self.name,
            "description": f"Vinylhound {self.family} events",
            "subjects": list(self.subjects),
            "retention": self.retention,
            "storage": self.storage,
            "num_replicas": self.replicas,
            "max_age": _nanos(self.max_age),
            "duplicate_window": _nanos(self.duplicate_window),
            "max_bytes": self.max_bytes,
            "max_msgs": -1,
            "max_consumers": -1,
            "discard": self.discard,
        }


@dataclass(frozen=True)
class ConsumerDef:
    """One durable pull consumer: a workload's subscription to one subject of one stream."""

    workload: str
    stream: str
    subjects: tuple[str, ...]
    ack_wait: str
    max_deliver: int
    max_ack_pending: int = 1000
    ack_policy: str = "explicit"
    deliver_policy: str = "all"

    @property
    def durable(self) -> str:
        """The durable name: the consuming workload."""
        return self.workload

    @property
    def resource_name(self) -> str:
        """The Kubernetes name of its ``Consumer`` resource (``playlist-service-vinylhound-user``)."""
        return f"{self.workload}-{self.stream.lower().replace('_', '-')}"

    def _filter(self) -> tuple[str, Any]:
        # One subject: ``filterSubject`` (every server version). Several: ``filterSubjects`` (2.10+).
        if len(self.subjects) == 1:
            return "filter_subject", self.subjects[0]
        return "filter_subjects", list(self.subjects)

    def cr_spec(self, account: str | None = None) -> Json:
        """The ``spec`` of the NACK ``jetstream.nats.io/v1beta2`` ``Consumer``."""
        key, value = self._filter()
        spec: Json = {
            "streamName": self.stream,
            "durableName": self.durable,
            "description": f"{self.workload} consuming {', '.join(self.subjects)}",
            "deliverPolicy": self.deliver_policy,
            "ackPolicy": self.ack_policy,
            "ackWait": self.ack_wait,
            "maxDeliver": self.max_deliver,
            "maxAckPending": self.max_ack_pending,
            "filterSubject" if key == "filter_subject" else "filterSubjects": value,
        }
        if account:
            spec["account"] = account
        return spec

    def api_config(self) -> Json:
        """The JetStream API's ``$JS.API.CONSUMER.DURABLE.CREATE`` body for the same consumer."""
        key, value = self._filter()
        return {
            "stream_name": self.stream,
            "config": {
                "durable_name": self.durable,
                "description": f"{self.workload} consuming {', '.join(self.subjects)}",
                "deliver_policy": self.deliver_policy,
                "ack_policy": self.ack_policy,
                "ack_wait": _nanos(self.ack_wait),
                "max_deliver": self.max_deliver,
                "max_ack_pending": self.max_ack_pending,
                key: value,
            },
        }

    def client_subjects(self) -> tuple[str, ...]:
        """What the consuming workload must be allowed to publish to use this consumer: pull the
        next message, acknowledge (the reply subject of each message), and read its own info."""
        return (
            f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self.durable}",
            f"$JS.ACK.{self.stream}.{self.durable}.>",
            f"$JS.API.CONSUMER.INFO.{self.stream}.{self.durable}",
        )


@dataclass(frozen=True)
class NatsUser:
    """A NATS user and exactly what it may publish and subscribe to."""

    name: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    #: The catalog workload this user is for; ``None`` for the JetStream controller.
    workload: str | None = None

    @property
    def password_env(self) -> str:
        """The server-side environment variable holding this user's password."""
        return password_env(self.name)

    def authorization_entry(self, password: str) -> Json:
        """This user's entry in the server's ``authorization.users``."""
        return {
            "user": self.name,
            "password": password,
            "permissions": {
                "publish": {"allow": list(self.publish)},
                "subscribe": {"allow": list(self.subscribe)},
            },
        }


@dataclass(frozen=True)
class EventBus:
    """Everything the event bus of one stack consists of."""

    streams: tuple[StreamDef, ...]
    consumers: tuple[ConsumerDef, ...]
    users: tuple[NatsUser, ...]

    def user(self, name: str) -> NatsUser:
        """The user called ``name``."""
        for u in self.users:
            if u.name == name:
                return u
        raise KeyError(f"no NATS user {name!r}; the bus has {', '.join(u.name for u in self.users)}")

    def stream(self, name: str) -> StreamDef:
        """The stream called ``name``."""
        for s in self.streams:
            if s.name == name:
                return s
        raise KeyError(f"no stream {name!r}")

    def consumer(self, workload: str, stream: str) -> ConsumerDef:
        """The durable consumer of ``workload`` on ``stream``."""
        for c in self.consumers:
            if c.workload == workload and c.stream == stream:
                return c
        raise KeyError(f"no consumer of {workload} on {stream}")

    def consumed_subjects(self, workload: str) -> tuple[str, ...]:
        """Every subject ``workload`` consumes through its durable consumers, sorted."""
        return tuple(sorted({s for c in self.consumers if c.workload == workload for s in c.subjects}))

    def consumes_annotation(self, workload: str) -> dict[str, str]:
        """The pod annotation declaring what ``workload`` consumes; nothing if it consumes nothing."""
        consumed = self.consumed_subjects(workload)
        return {CONSUMES_ANNOTATION: ",".join(consumed)} if consumed else {}

    def workload_users(self) -> tuple[NatsUser, ...]:
        """The users that belong to catalog workloads (not the controller)."""
        return tuple(u for u in self.users if u.workload is not None)

    def connected_workloads(self) -> frozenset[str]:
        """Workloads that publish or consume: exactly those that get NATS credentials."""
        return frozenset(u.workload for u in self.users if u.workload is not None)


def _in_scope(workloads: Iterable[Workload]) -> list[Workload]:
    return [w for w in workloads if w.publishes or w.consumes]


def event_bus(settings: EventsConfig, cluster_size: int, enabled: Iterable[str]) -> EventBus:
    """The streams, consumers and users for the enabled workloads of one stack.

    A stream exists for every family an enabled workload publishes or consumes; it lists the
    subjects of that family the enabled workloads use. Replicas equal the cluster size.
    """
    on = set(enabled)
    active = _in_scope(w for w in catalog.WORKLOADS if w.name in on)
    events = sorted({e for w in active for e in (*w.publishes, *w.consumes)})
    families = sorted({family(e) for e in events})
    streams = tuple(
        StreamDef(
            name=stream_name(f),
            family=f,
            subjects=tuple(subject(e) for e in events if family(e) == f),
            replicas=cluster_size,
            max_age=settings.max_age,
            duplicate_window=settings.duplicate_window,
            max_bytes=quantity_bytes(settings.stream_max_bytes),
        )
        for f in families
    )
    consumers = tuple(
        ConsumerDef(
            workload=w.name,
            stream=stream_name(f),
            subjects=tuple(subject(e) for e in w.consumes if family(e) == f),
            ack_wait=settings.ack_wait,
            max_deliver=settings.max_deliver,
        )
        for w in active
        for f in sorted({family(e) for e in w.consumes})
    )
    users = [
        NatsUser(
            name=w.name,
            workload=w.name,
            publish=tuple(
                [subject(e) for e in w.publishes]
                + [s for c in consumers if c.workload == w.name for s in c.client_subjects()]
            ),
            subscribe=(INBOX,),
        )
        for w in active
    ]
    # The controller creates, updates and deletes streams and consumers through the JetStream API.
    users.append(NatsUser(name=CONTROLLER_USER, publish=("$JS.API.>",), subscribe=(INBOX,)))
    return EventBus(streams=streams, consumers=consumers, users=tuple(users))


# --- the NATS server's configuration -----------------------------------------------------------


def chart_password(user: NatsUser) -> str:
    """The NATS chart's placeholder for an unquoted variable: the server reads the password from
    its own environment (filled from a Kubernetes Secret), so no password is in the chart values."""
    return f"<< ${user.password_env} >>"


def authorization(bus: EventBus, password: Callable[[NatsUser], str] = chart_password) -> Json:
    """The server's ``authorization`` block: every user with its permissions."""
    return {"users": [u.authorization_entry(password(u)) for u in bus.users]}


def server_config(
    bus: EventBus,
    *,
    store_dir: str,
    port: int = CLIENT_PORT,
    http_port: int = MONITOR_PORT,
    host: str = "0.0.0.0",
    max_file_store: int | None = None,
    password: Callable[[NatsUser], str] = chart_password,
    server_name: str = "vinylhound-nats",
) -> Json:
    """A complete single-server configuration (the local Docker stack and the tests use it):
    JetStream on file storage, the monitoring endpoint, and the same users as the cluster."""
    jetstream: Json = {"store_dir": store_dir}
    if max_file_store is not None:
        jetstream["max_file_store"] = max_file_store
    return {
        "server_name": server_name,
        "host": host,
        "port": port,
        "http_port": http_port,
        "jetstream": jetstream,
        "authorization": authorization(bus, password),
    }


_PLACEHOLDER = re.compile(r'"<<\s+(.*)\s+>>"')


def render_conf(config: Mapping[str, Any]) -> str:
    """``nats.conf`` text exactly as the NATS chart renders its config: JSON, with every
    ``"<< $VAR >>"`` string unquoted so the server resolves ``$VAR`` from its environment."""
    return _PLACEHOLDER.sub(r"\1", json.dumps(config, indent=2, sort_keys=True)) + "\n"


def server_environment(bus: EventBus, passwords: Mapping[str, V]) -> dict[str, V]:
    """The environment a server started from ``render_conf`` needs: one password per user
    (plain strings, or a target's secret Outputs)."""
    return {u.password_env: passwords[u.name] for u in bus.users}


# --- the clients ------------------------------------------------------------------------------


def client_env(workload: Workload, bus: EventBus, url: str, secret: str) -> list[EnvVar]:
    """``NATS_URL`` and the credentials (``user`` and ``password`` keys of ``secret``) for a
    publishing or consuming workload; nothing for any other. Every target wires clients with this."""
    if workload.name not in bus.connected_workloads():
        return []
    return [
        EnvVar("NATS_URL", url),
        EnvVar("NATS_USER", secret=SecretKeyRef(secret, "user")),
        EnvVar("NATS_PASSWORD", secret=SecretKeyRef(secret, "password")),
    ]


# --- alerts ------------------------------------------------------------------------------------


def alert_rules(bus: EventBus, s: EventsConfig, runbooks: str) -> list[Json]:
    """Prometheus alerting rules on the exporter's JetStream series for this stack's streams, with
    the thresholds of ``s``.

    Each links to its section of ``runbooks`` (``<url>#<alert name in lowercase>``).
    """
    if not bus.streams:
        return []
    streams = "|".join(st.name for st in bus.streams)
    ratio = s.storage_alert_percent / 100
    max_bytes = max(st.max_bytes for st in bus.streams)
    p = METRIC_PREFIX
    rules: list[dict[str, Any]] = [
        {
            "alert": "VinylhoundEventConsumerLag",
            "expr": (
                f'max by (stream_name, consumer_name) ({p}_consumer_num_pending{{stream_name=~"{streams}"}})'
                f" > {s.lag_alert_threshold}"
            ),
            "for": s.lag_alert_for,
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "Event consumer {{ $labels.consumer_name }} is falling behind",
                "description": (
                    "{{ $labels.consumer_name }} has {{ $value }} undelivered events on "
                    "{{ $labels.stream_name }}; events older than " + s.max_age + " are lost."
                ),
            },
        },
        {
            "alert": "VinylhoundEventStreamStorage",
            "expr": (
                f'max by (stream_name) ({p}_stream_total_bytes{{stream_name=~"{streams}"}})'
                f" > {ratio} * {max_bytes}"
            ),
            "for": "5m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "Stream {{ $labels.stream_name }} is almost full",
                "description": (
                    f"Above {s.storage_alert_percent}% of its {s.stream_max_bytes} limit; "
                    "the oldest events are discarded beyond it."
                ),
            },
        },
        {
            "alert": "VinylhoundJetStreamStorage",
            "expr": (
                f"max by (server_name) ({p}_server_total_message_bytes / {p}_server_max_storage) > {ratio}"
            ),
            "for": "5m",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "NATS server {{ $labels.server_name }} JetStream store is almost full",
                "description": (
                    f"Above {s.storage_alert_percent}% of the file store; publishes fail when it is full."
                ),
            },
        },
    ]
    for rule in rules:
        rule["annotations"]["runbook_url"] = f"{runbooks}#{rule['alert'].lower()}"
    return rules
