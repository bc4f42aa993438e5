"""Tracing, metrics and alerting settings (kube-prometheus-stack, Jaeger) and their rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from infra.config.types import (
    ByteSize,
    DnsLabel,
    Duration,
    MemoryQuantity,
    Model,
    Problem,
    PromDuration,
    Url,
)

if TYPE_CHECKING:
    from infra.config import PlatformConfig


# --- observability ---------------------------------------------------------------------------

TraceBackend = Literal["memory", "badger", "elasticsearch", "opensearch"]


class TraceStorage(Model):
    """Where Jaeger keeps traces. Default: in memory in dev (lost on every restart), badger
    elsewhere; ``memory`` set explicitly outside dev is an error.

    ``badger`` stores on a PersistentVolumeClaim of ``volumeSize`` (cluster default storage class
    unless ``storageClass``) and keeps spans for ``retention``. ``elasticsearch`` and ``opensearch``
    write to an existing cluster at ``serverUrls`` under ``indexPrefix``.
    """

    backend: TraceBackend | None = None
    max_traces: int = Field(default=100_000, ge=1)
    volume_size: MemoryQuantity = "10Gi"
    storage_class: DnsLabel | None = None
    retention: Duration = "168h"
    # Lax so a YAML list becomes the tuple.
    server_urls: Annotated[tuple[Url, ...], Field(strict=False)] = ()
    index_prefix: DnsLabel = "vinylhound"


#: The share of requests the mesh traces when ``samplingPercent`` is not set.
DEFAULT_SAMPLING_PERCENT: dict[str, float] = {"local": 100.0, "dev": 100.0, "staging": 10.0, "prod": 1.0}


class Tracing(Model):
    """Jaeger storage and the mesh's trace sampling. Default sampling: dev 100 %, staging 10 %, prod 1 %."""

    storage: TraceStorage = TraceStorage()
    sampling_percent: float | None = Field(default=None, ge=0, le=100)


class Metrics(Model):
    """Prometheus retention and storage. Default: 15 days on a 50Gi volume, no size cap."""

    retention: PromDuration = "15d"
    retention_size: ByteSize | None = None
    volume_size: MemoryQuantity = "50Gi"
    storage_class: DnsLabel | None = None


class AlertThresholds(Model):
    """When the platform's alerts fire. Each default is documented in docs/runbooks.md."""

    #: Share of a service's requests answered 5xx over 5 minutes (default 5 %).
    error_ratio: float = Field(default=0.05, gt=0, lt=1)
    #: 99th percentile request latency in milliseconds over 5 minutes (default 1000 ms).
    latency_p99_ms: int = Field(default=1000, ge=1)
    #: Container restarts of one pod within an hour (default more than 3).
    restarts_per_hour: int = Field(default=3, ge=1, le=50)
    #: Physical replication lag of a database replica in seconds (default 30 s).
    replication_lag_seconds: int = Field(default=30, ge=1)
    #: Age of the newest successful database backup in hours (default 26 h: a daily backup plus slack).
    backup_max_age_hours: int = Field(default=26, ge=1)
    #: Connections in use as a share of ``max_connections`` (default 80 %).
    connections_ratio: float = Field(default=0.8, gt=0, lt=1)


class ObservabilityConfig(Model):
    """Tracing (Jaeger), metrics (kube-prometheus-stack) and alerting settings."""

    tracing: Tracing = Tracing()
    metrics: Metrics = Metrics()
    alerts: AlertThresholds = AlertThresholds()
    #: Where each alert's runbook lives; an alert links to ``<url>#<alert name in lowercase>``.
    runbook_url: Url = "https://github.com/vinylhound/vinylhound-platform/blob/main/docs/runbooks.md"

    def trace_storage(self, environment: str) -> TraceStorage:
        """The trace storage with its backend resolved (memory in dev, badger elsewhere)."""
        storage = self.tracing.storage
        if storage.backend is not None:
            return storage
        return storage.model_copy(update={"backend": "memory" if environment == "dev" else "badger"})

    def sampling_percent(self, environment: str) -> float:
        """The configured sampling rate, or the environment's default."""
        configured = self.tracing.sampling_percent
        return configured if configured is not None else DEFAULT_SAMPLING_PERCENT[environment]


def observability_rules(cfg: PlatformConfig) -> Iterator[Problem]:
    storage = cfg.observability.tracing.storage
    path = "observability.tracing.storage"
    if storage.backend == "memory" and cfg.environment != "dev":
        yield Problem(
            f"{path}.backend",
            f"'memory' loses every trace on restart and is allowed only in dev; "
            f"{cfg.environment} needs badger, elasticsearch or opensearch",
        )
    if storage.backend in ("elasticsearch", "opensearch") and not storage.server_urls:
        yield Problem(f"{path}.serverUrls", f"required for the {storage.backend} backend")
