"""Event bus settings (NATS JetStream) and their rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from infra.config.types import (
    DnsLabel,
    Duration,
    MemoryQuantity,
    Model,
    Percent,
    Problem,
    duration_seconds,
)

if TYPE_CHECKING:
    from infra.config import PlatformConfig


class EventsConfig(Model):
    """The event bus: NATS with JetStream, its streams and durable consumers (see ``infra/events.py``).

    Streams and consumers follow from the catalog's ``publishes``/``consumes``; these are the knobs.
    """

    #: Default: on. Off registers no NATS at all and wires no workload to it.
    enabled: bool = True
    #: The namespace NATS and its JetStream controller run in (no Istio sidecar there).
    namespace: DnsLabel = "nats"
    #: NATS servers, and replicas of every stream. Default: 1 in local/dev, 3 in staging/prod.
    cluster_size: Literal[1, 3, 5] | None = None
    #: The JetStream file-store volume of each server.
    storage_size: MemoryQuantity = "10Gi"
    #: How long a stream keeps an event (consumers that fall behind longer lose it). Default 7 days.
    max_age: Duration = "168h"
    #: Within this window a second publish with the same ``Nats-Msg-Id`` is dropped.
    duplicate_window: Duration = "2m"
    #: The most a stream may hold; the oldest events go first beyond it.
    stream_max_bytes: MemoryQuantity = "1Gi"
    #: Deliveries of one event before a consumer gives up on it (a poison message stops retrying).
    max_deliver: int = Field(default=5, ge=1)
    #: How long a consumer may hold an event unacknowledged before it is delivered again.
    ack_wait: Duration = "30s"
    #: Alert when a consumer has more pending events than this for ``lag_alert_for``.
    lag_alert_threshold: int = Field(default=100, ge=1)
    lag_alert_for: Duration = "10m"
    #: Alert when a stream or a server's JetStream store is fuller than this.
    storage_alert_percent: Percent = 80


def event_rules(cfg: PlatformConfig) -> Iterator[Problem]:
    events = cfg.events
    if not events.enabled:
        return
    size = events.cluster_size
    if size is not None and size < 3 and cfg.environment in ("staging", "prod"):
        yield Problem(
            "events.clusterSize",
            f"{size} is below the {cfg.environment} minimum of 3 (a stream needs a quorum to survive a node)",
        )
    if duration_seconds(events.duplicate_window) > duration_seconds(events.max_age):
        yield Problem(
            "events.duplicateWindow",
            f"{events.duplicate_window} is longer than maxAge ({events.max_age}); JetStream refuses that",
        )
    if duration_seconds(events.ack_wait) <= 0:
        yield Problem("events.ackWait", "must be longer than zero")
