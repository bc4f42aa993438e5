"""Typed stack configuration: the one place that knows what a stack file may say.

A stack file holds one structured key, ``vinylhound:platform``. It is parsed into
``PlatformConfig`` (strict: unknown keys are rejected, models are frozen), then the
per-environment rules run. Every problem is reported at once as
``stacks/Pulumi.<stack>.yaml: vinylhound:platform.<path>: <message>`` and nothing is registered.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from infra import catalog, migration, schema

CONFIG_NAMESPACE = "vinylhound"
CONFIG_KEY = "platform"
FULL_KEY = f"{CONFIG_NAMESPACE}:{CONFIG_KEY}"

Environment = Literal["local", "dev", "staging", "prod"]
Target = Literal["kubernetes", "docker"]

#: The fewest replicas a workload may run with, per environment (architecture.md, Environments).
MIN_REPLICAS: dict[str, int] = {"local": 1, "dev": 1, "staging": 2, "prod": 3}

#: PostgreSQL instances per database (primary + read replicas): the default and the minimum.
MIN_DB_INSTANCES: dict[str, int] = {"local": 1, "dev": 1, "staging": 2, "prod": 3}

#: Environments whose databases must have backups.
BACKUP_REQUIRED: frozenset[str] = frozenset({"staging", "prod"})


def stack_file(stack: str) -> str:
    """The stack file a stack's config comes from, relative to the repository root."""
    return f"stacks/Pulumi.{stack}.yaml"


# --- reusable constrained types ------------------------------------------------------------

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)*[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
)
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_REGISTRY = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*$")
_QUANTITY_CPU = re.compile(r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$")
_QUANTITY_MEM = re.compile(r"^[0-9]+(Ki|Mi|Gi|Ti)$")
_SEMVER = re.compile(r"^v?[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$")
# Go's time.Duration as JetStream and NACK read it, restricted to the units both sides share.
_GO_DURATION = re.compile(r"^([0-9]+(ms|s|m|h))+$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
_STORAGE = re.compile(r"^[0-9]+(Mi|Gi|Ti)$")
_OBJECT_STORE = re.compile(r"^(s3|gs|https)://[^\s]+$")
_RETENTION = re.compile(r"^[1-9][0-9]*[dwm]$")
# CloudNativePG schedules have six fields: seconds first.
_CNPG_CRON = re.compile(r"^\S+( \S+){5}$")
_PG_PARAMETER = re.compile(r"^[a-z_][a-z0-9_.]*$")


def _matching(pattern: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"{value!r} is not a valid {what}")
        return value

    return AfterValidator(check)


def _pinned_tag(value: str) -> str:
    if value.lower() == "latest":
        raise ValueError("image tag 'latest' is not pinned; use a release tag or a digest")
    if not _TAG.match(value):
        raise ValueError(f"{value!r} is not a valid image tag")
    return value


def _pinned_image(value: str) -> str:
    name, _, digest = value.partition("@")
    if digest and not _DIGEST.match(digest):
        raise ValueError(f"{value!r} has an invalid digest (sha256:<64 hex>)")
    repository, tag = name, None
    if ":" in name.rsplit("/", 1)[-1]:
        repository, tag = name.rsplit(":", 1)
    if not _REGISTRY.match(repository):
        raise ValueError(f"{value!r} is not a valid image reference")
    if tag is None and not digest:
        raise ValueError(f"{value!r} is not pinned; add a release tag or a digest")
    if tag is not None:
        _pinned_tag(tag)
    return value


DnsLabel = Annotated[str, _matching(_DNS_LABEL, "DNS label (lowercase, digits, '-', <= 63)")]
Hostname = Annotated[str, _matching(_HOSTNAME, "lowercase DNS hostname")]
ImageTag = Annotated[str, AfterValidator(_pinned_tag)]
#: A full image reference (``postgres:17.6-alpine``) with a tag that is not ``latest`` or a digest.
PinnedImage = Annotated[str, AfterValidator(_pinned_image)]
ImageDigest = Annotated[str, _matching(_DIGEST, "image digest (sha256:<64 hex>)")]
Registry = Annotated[str, _matching(_REGISTRY, "image registry (host[:port]/path, no tag)")]
CpuQuantity = Annotated[str, _matching(_QUANTITY_CPU, "CPU quantity (e.g. 250m or 1)")]
MemoryQuantity = Annotated[str, _matching(_QUANTITY_MEM, "memory quantity (e.g. 256Mi)")]
ChartVersion = Annotated[str, _matching(_SEMVER, "pinned chart version (x.y.z)")]
Percent = Annotated[int, Field(ge=0, le=100)]
#: A duration both Go (JetStream, NACK) and Prometheus parse, e.g. ``30s``, ``2m``, ``168h``.
Duration = Annotated[str, _matching(_GO_DURATION, "duration (digits with ms, s, m or h, e.g. 30s, 168h)")]


def duration_seconds(value: str) -> float:
    """Seconds in a ``Duration`` string (``1h30m`` -> 5400.0)."""
    return sum(
        int(amount) * _DURATION_UNITS[unit] for amount, unit in re.findall(r"([0-9]+)(ms|s|m|h)", value)
    )


_QUANTITY_FACTORS = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}


def quantity_bytes(value: str) -> int:
    """Bytes in a ``MemoryQuantity`` string (``1Gi`` -> 1073741824)."""
    return int(value[:-2]) * _QUANTITY_FACTORS[value[-2:]]


#: A Prometheus duration such as ``15d`` or ``168h`` (Go durations have no days).
PromDuration = Annotated[str, _matching(re.compile(r"^[0-9]+(ms|s|m|h|d|w|y)$"), "duration (e.g. 15d, 168h)")]
#: A Prometheus byte size such as ``45GB`` (``retentionSize``).
ByteSize = Annotated[str, _matching(re.compile(r"^[0-9]+(B|KB|MB|GB|TB|PB)$"), "byte size (e.g. 45GB)")]
_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[^\s]*)?$")
Url = Annotated[str, _matching(_URL, "http(s) URL")]
StorageSize = Annotated[str, _matching(_STORAGE, "storage size (e.g. 10Gi)")]


class Model(BaseModel):
    """Base for every config model: camelCase keys as in Pulumi config, strict, frozen."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=True,
    )


# --- workloads -------------------------------------------------------------------------------


class ImageRef(Model):
    """A pinned image: a release tag, a digest, or both (the digest wins when both are set)."""

    tag: ImageTag | None = None
    digest: ImageDigest | None = None

    def reference(self, registry: str, repository: str) -> str:
        """The full image reference, e.g. ``ghcr.io/vinylhound/backend:1.8.2``."""
        base = f"{registry}/{repository}"
        if self.digest:
            return f"{base}:{self.tag}@{self.digest}" if self.tag else f"{base}@{self.digest}"
        return f"{base}:{self.tag}"


class ResourceAmounts(Model):
    """CPU and memory for one side (requests or limits) of a container's resources."""

    cpu: CpuQuantity
    memory: MemoryQuantity


class Resources(Model):
    """Container requests and limits. Default: 100m/128Mi requested, 500m/256Mi limit."""

    requests: ResourceAmounts = ResourceAmounts(cpu="100m", memory="128Mi")
    limits: ResourceAmounts = ResourceAmounts(cpu="500m", memory="256Mi")


class Autoscaling(Model):
    """A HorizontalPodAutoscaler on CPU. While set, the Deployment leaves ``replicas`` to it."""

    min_replicas: int = Field(ge=1)
    max_replicas: int = Field(ge=1)
    target_cpu_percent: Percent = 70


class Cutover(Model):
    """How much of a service's routes the edge sends to it instead of the monolith.

    ``weight`` 0 keeps every request on the monolith, 100 moves all of them; moving back is
    setting it to 0 again. ``mirror`` copies the monolith's reads (GET/HEAD) to the service while
    the weight is still 0 (shadow testing); writes are never mirrored (see ``infra/traffic.py``).
    """

    weight: Percent = 0
    mirror: bool = False


class WorkloadConfig(Model):
    """Per-workload settings. A workload absent from ``services`` is not deployed."""

    enabled: bool = True
    image: ImageRef
    #: Default: the environment's minimum (dev 1, staging 2, prod 3).
    replicas: int | None = Field(default=None, ge=1)
    resources: Resources = Resources()
    #: Default: off (fixed ``replicas``). Required in prod.
    autoscaling: Autoscaling | None = None
    cutover: Cutover = Cutover()


class ChartVersions(Model):
    """Pinned versions of the platform's Helm charts (one Istio version for base/istiod/gateway)."""

    #: base, istiod and gateway from https://istio-release.storage.googleapis.com/charts.
    istio: ChartVersion = "1.30.4"
    cloudnative_pg: ChartVersion = "0.26.1"
    #: consul from https://helm.releases.hashicorp.com (the consul-k8s release of the same number).
    consul: ChartVersion = "1.8.2"
    #: 4.x deploys Jaeger v2 (4.13.1 ships Jaeger 2.20.0); 3.x and older are Jaeger v1.
    jaeger: ChartVersion = "4.13.1"
    kube_prometheus_stack: ChartVersion = "79.5.0"
    nats: ChartVersion = "1.3.16"
    nack: ChartVersion = "0.31.1"


class PlatformImages(Model):
    """Pinned images of the platform services a docker stack runs beside the workloads."""

    postgres: PinnedImage = "postgres:17.6-alpine"
    consul: PinnedImage = "hashicorp/consul:1.21.5"
    jaeger: PinnedImage = "jaegertracing/jaeger:2.11.0"
    prometheus: PinnedImage = "prom/prometheus:v3.7.3"
    blackbox_exporter: PinnedImage = "prom/blackbox-exporter:v0.28.0"
    #: The event bus (official image; the alpine variant has busybox wget for the healthcheck).
    nats: PinnedImage = "nats:2.12.1-alpine"
    #: The nats CLI, run once per ``pulumi up`` to create the streams and consumers.
    nats_box: PinnedImage = "natsio/nats-box:0.18.0"


class DockerSettings(Model):
    """Settings only a docker stack (``target: docker``) reads; rejected in Kubernetes stacks."""

    #: The user-defined bridge network every container joins.
    network: DnsLabel = "vinylhound"
    #: Every published port is this base plus a fixed offset, bound to 127.0.0.1 only
    #: (see ``infra/targets/docker/plan.py``). Default 18000: clear of the usual dev ports.
    published_port_base: int = Field(default=18000, ge=1024, le=64000)
    #: Workload name -> directory of a local checkout to build its image from instead of pulling
    #: the pinned release. Default: none, every workload runs its pinned image.
    build_contexts: dict[str, str] = Field(default_factory=dict)
    images: PlatformImages = PlatformImages()


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


# --- traffic: Istio mesh, edge, circuit breakers, Consul registry ----------------------------


class EdgeConfig(Model):
    """The Istio ingress Gateway for the stack's domain.

    TLS terminates at the gateway with the certificate in ``tlsSecret`` (a ``kubernetes.io/tls``
    Secret in the ``istio-ingress`` namespace, provisioned outside this program). Port 80 only
    redirects to HTTPS unless ``allowPlainHttp`` is set, which prod refuses.
    """

    tls_secret: DnsLabel = "vinylhound-tls"
    allow_plain_http: bool = False


class CircuitBreaker(Model):
    """Outlier detection and connection-pool limits of a workload's DestinationRule.

    Defaults: eject a pod after 5 consecutive 5xx (checked every 10 s) for 30 s, at most half
    of the pods at once; 100 TCP connections, 100 pending HTTP/1 requests, 1000 concurrent
    requests and a 2 s connect timeout per destination pod set.
    """

    consecutive_5xx_errors: int = Field(default=5, ge=1, alias="consecutive5xxErrors")
    interval: Duration = "10s"
    base_ejection_time: Duration = "30s"
    max_ejection_percent: Percent = 50
    max_connections: int = Field(default=100, ge=1)
    max_pending_requests: int = Field(default=100, ge=1)
    max_requests: int = Field(default=1000, ge=1)
    connect_timeout: Duration = "2s"


class RoutePolicy(Model):
    """Timeout and retries of every HTTP route (edge and mesh).

    Default: 15 s per request, the reference gateway's read/write timeout; up to 2 retries of
    5 s each on 5xx, reset and connect-failure.
    """

    timeout: Duration = "15s"
    retry_attempts: int = Field(default=2, ge=0, le=5)
    per_try_timeout: Duration = "5s"


class RegistryConfig(Model):
    """The Consul service registry. ``serverReplicas`` default: 1 in dev, 3 in staging and prod."""

    server_replicas: int | None = Field(default=None, ge=1)


class TrafficConfig(Model):
    """The Istio mesh, the edge, per-service traffic policy and the Consul registry."""

    edge: EdgeConfig = EdgeConfig()
    #: Mesh-wide mTLS for the workloads' namespace. PERMISSIVE is allowed in dev only.
    mtls: Literal["STRICT", "PERMISSIVE"] = "STRICT"
    circuit_breaker: CircuitBreaker = CircuitBreaker()
    #: Per-workload replacements of ``circuitBreaker`` (whole model, by workload name).
    circuit_breaker_overrides: dict[str, CircuitBreaker] = {}
    routes: RoutePolicy = RoutePolicy()
    registry: RegistryConfig = RegistryConfig()

    def breaker(self, workload: str) -> CircuitBreaker:
        """The circuit breaker for ``workload``."""
        return self.circuit_breaker_overrides.get(workload, self.circuit_breaker)


#: Consul server replicas when the stack does not say (quorum of three outside dev).
REGISTRY_REPLICAS: dict[str, int] = {"local": 1, "dev": 1, "staging": 3, "prod": 3}


# --- databases -------------------------------------------------------------------------------

MigrationPhase = Literal["not-started", "replicating", "cut-over", "rolled-back"]


class DatabaseStorage(Model):
    """The volume of each PostgreSQL instance. Default: 1Gi of the cluster's default class."""

    size: StorageSize = "1Gi"
    #: Default: the cluster's default StorageClass.
    storage_class: Hostname | None = None


class BackupTarget(Model):
    """Where and when CloudNativePG backs up (Barman to an object store) and how long it keeps.

    ``credentials_secret`` is an existing Secret in the namespace with the keys
    ``ACCESS_KEY_ID`` and ``ACCESS_SECRET_KEY``. Each cluster writes below
    ``destination_path`` in a folder named after it.
    """

    destination_path: Annotated[str, _matching(_OBJECT_STORE, "object store path (s3://, gs://, https://)")]
    #: Default: the provider's own endpoint (set it for MinIO and other S3-compatible stores).
    endpoint_url: Url | None = None
    credentials_secret: DnsLabel
    #: Six-field cron (seconds first). Default: every day at 03:00.
    schedule: Annotated[str, _matching(_CNPG_CRON, "six-field cron schedule (seconds first)")] = "0 0 3 * * *"
    #: Default: keep 30 days of backups and WAL.
    retention: Annotated[str, _matching(_RETENTION, "retention (e.g. 30d, 4w, 6m)")] = "30d"


class RestoreFrom(Model):
    """Bootstrap a database from a backup instead of an empty ``initdb`` (disaster recovery)."""

    #: Name of a CloudNativePG ``Backup`` object in the namespace.
    backup: DnsLabel


class ExternalDatabase(Model):
    """A monolith database the platform does not run (a managed service, say).

    ``secret`` is an existing Secret in the namespace with the keys ``username``, ``password``
    and ``uri`` (a libpq URL). Replication out of it logs in as ``replication_user`` with that
    Secret's password; the role needs the REPLICATION attribute and read access to the tables.
    """

    host: Hostname
    secret: DnsLabel
    port: int = Field(default=5432, ge=1, le=65535)
    database: str = "vinylhound"
    replication_user: str = "vinylhound"


def _default_db_resources() -> Resources:
    return Resources(
        requests=ResourceAmounts(cpu="250m", memory="512Mi"),
        limits=ResourceAmounts(cpu="1", memory="1Gi"),
    )


class DatabasesConfig(Model):
    """One CloudNativePG cluster per workload that owns tables, and the split of the monolith."""

    #: Instances per cluster, primary included. Default: dev 1, staging 2, prod 3.
    instances: int | None = Field(default=None, ge=1)
    storage: DatabaseStorage = DatabaseStorage()
    #: Default: 250m/512Mi requested, 1 CPU/1Gi limit per instance.
    resources: Resources = Field(default_factory=_default_db_resources)
    #: Extra postgresql.conf settings for every cluster (``wal_level`` is always ``logical``).
    parameters: dict[str, str] = Field(default_factory=dict)
    #: The PostgreSQL image of the clusters and of the migration Jobs (they run its psql).
    image: PinnedImage = (
        "ghcr.io/cloudnative-pg/postgresql:17.6"
        "@sha256:30b304a2e300ed80b6d1b740e4369e9b0f25599fb518de78c01fd9f25531791b"
    )
    #: Default: no backups. Required in staging and prod.
    backup: BackupTarget | None = None
    #: Per workload: bootstrap its database from a named backup. Default: none (initdb).
    restore: dict[str, RestoreFrom] = Field(default_factory=dict)
    #: Per service: where moving its tables out of the monolith stands. Default: not-started.
    migration: dict[str, MigrationPhase] = Field(default_factory=dict)
    #: Default: the platform runs the monolith's database too.
    external_monolith: ExternalDatabase | None = None
    #: Apply the generated monolith schema (idempotent) to the platform-run monolith database, for
    #: new environments. Turn off where the monolith's own migrations manage that schema.
    init_monolith_schema: bool = True

    def instances_for(self, environment: str) -> int:
        """The instance count of every cluster in ``environment``."""
        return self.instances if self.instances is not None else MIN_DB_INSTANCES[environment]

    def phase(self, workload: str) -> MigrationPhase:
        """The migration phase of ``workload`` (``not-started`` unless configured)."""
        return self.migration.get(workload, "not-started")


class PlatformConfig(Model):
    """Everything a stack says about the platform (the ``vinylhound:platform`` key)."""

    environment: Environment
    target: Target = "kubernetes"
    namespace: DnsLabel = "vinylhound"
    domain: Hostname
    image_registry: Registry
    #: Default: ``https://<domain>`` only.
    cors_allowed_origins: tuple[str, ...] | None = None
    services: dict[str, WorkloadConfig]
    #: The monolith's Spotify client id (not secret); its secret is ``vinylhound:spotifyClientSecret``.
    spotify_client_id: str | None = None
    charts: ChartVersions = ChartVersions()
    traffic: TrafficConfig = TrafficConfig()
    #: Only for ``target: docker``; default there: ``DockerSettings()``.
    docker: DockerSettings | None = None
    #: Kubernetes only: tracing, metrics and alerting (see ``ObservabilityConfig``).
    observability: ObservabilityConfig = ObservabilityConfig()
    events: EventsConfig = EventsConfig()
    databases: DatabasesConfig = DatabasesConfig()

    def docker_settings(self) -> DockerSettings:
        """The docker settings in force (the defaults when the stack sets none)."""
        return self.docker or DockerSettings()

    def enabled(self) -> list[tuple[catalog.Workload, WorkloadConfig]]:
        """The enabled workloads with their settings, in catalog order."""
        return [
            (w, self.services[w.name])
            for w in catalog.WORKLOADS
            if w.name in self.services and self.services[w.name].enabled
        ]

    def replicas(self, name: str) -> int:
        """The replica count a workload runs with (its setting or the environment minimum)."""
        configured = self.services[name].replicas
        return configured if configured is not None else MIN_REPLICAS[self.environment]

    def event_cluster_size(self) -> int:
        """NATS servers (and stream replicas): the setting, else 1 in local/dev and 3 elsewhere."""
        configured = self.events.cluster_size
        if configured is not None:
            return configured
        return 1 if self.environment in ("local", "dev") else 3

    def is_enabled(self, name: str) -> bool:
        """Whether workload ``name`` is deployed in this stack."""
        svc = self.services.get(name)
        return svc is not None and svc.enabled

    def registry_replicas(self) -> int:
        """Consul server replicas (the setting or the environment default)."""
        configured = self.traffic.registry.server_replicas
        return configured if configured is not None else REGISTRY_REPLICAS[self.environment]

    def origins(self) -> tuple[str, ...]:
        """The CORS origins the services allow."""
        return self.cors_allowed_origins or (f"https://{self.domain}",)


# --- loading and the per-environment rules --------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a stack's config: where (dotted path below the key) and what."""

    path: str
    message: str


class ConfigError(Exception):
    """A stack's config is invalid. ``str()`` is one ``file: key.path: message`` line per problem."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(self.render())

    def lines(self) -> list[str]:
        """The problems, one printable line each."""
        return [
            f"{self.source}: {FULL_KEY}{'.' + p.path if p.path else ''}: {p.message}" for p in self.problems
        ]

    def render(self) -> str:
        """All problem lines joined by newlines."""
        return "\n".join(self.lines())


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _pydantic_problems(err: ValidationError) -> list[Problem]:
    problems = []
    for e in err.errors():
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            message = "unknown key"
        problems.append(Problem(_loc(e["loc"]), message))
    return problems


def _rules(cfg: PlatformConfig) -> Iterator[Problem]:
    """Cross-field and per-environment rules, checked after the shape is valid."""
    known = set(catalog.names())
    for name in cfg.services:
        if name not in known:
            yield Problem(
                f"services.{name}", f"unknown workload; the catalog has {', '.join(catalog.names())}"
            )
    monolith = cfg.services.get("monolith")
    if monolith is None or not monolith.enabled:
        yield Problem("services.monolith", "the monolith must be enabled: it serves every route not cut over")

    minimum = MIN_REPLICAS[cfg.environment]
    for name, svc in cfg.services.items():
        if name not in known:
            continue
        path = f"services.{name}"
        if svc.replicas is not None and svc.replicas < minimum:
            yield Problem(
                f"{path}.replicas",
                f"{svc.replicas} is below the {cfg.environment} minimum of {minimum}",
            )
        scaling = svc.autoscaling
        if scaling is not None:
            if scaling.min_replicas < minimum:
                yield Problem(
                    f"{path}.autoscaling.minReplicas",
                    f"{scaling.min_replicas} is below the {cfg.environment} minimum of {minimum}",
                )
            if scaling.max_replicas < scaling.min_replicas:
                yield Problem(
                    f"{path}.autoscaling.maxReplicas",
                    f"{scaling.max_replicas} is below minReplicas ({scaling.min_replicas})",
                )
            if svc.replicas is not None:
                yield Problem(
                    f"{path}.replicas",
                    "set either replicas or autoscaling, not both (the autoscaler owns the count)",
                )
        elif cfg.environment == "prod" and svc.enabled:
            yield Problem(f"{path}.autoscaling", "prod requires autoscaling for every enabled workload")
        if svc.image.tag is None and svc.image.digest is None:
            yield Problem(f"{path}.image", "pin the image with a tag or a digest")
        yield from _cutover_rules(name, svc)
    yield from _traffic_rules(cfg)
    yield from _observability_rules(cfg)
    yield from _event_rules(cfg)
    yield from _database_rules(cfg)


def _observability_rules(cfg: PlatformConfig) -> Iterator[Problem]:
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


def _event_rules(cfg: PlatformConfig) -> Iterator[Problem]:
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


def _cutover_rules(name: str, svc: WorkloadConfig) -> Iterator[Problem]:
    cut = svc.cutover
    path = f"services.{name}.cutover"
    if cut.weight == 0 and not cut.mirror:
        return
    if catalog.workload(name).role != "service":
        yield Problem(path, f"only extracted services have a cutover; {name} is not one")
    elif not svc.enabled:
        what = f"weight {cut.weight}" if cut.weight else "mirroring"
        yield Problem(path, f"{what} on a disabled service would send traffic nowhere; enable it or set 0")
    if cut.mirror and cut.weight:
        yield Problem(
            f"{path}.mirror",
            f"mirroring is shadow testing at weight 0, but the weight is {cut.weight}; "
            "turn mirror off or set the weight to 0",
        )


def _traffic_rules(cfg: PlatformConfig) -> Iterator[Problem]:
    traffic = cfg.traffic
    if traffic.edge.allow_plain_http and cfg.environment == "prod":
        yield Problem("traffic.edge.allowPlainHttp", "prod serves HTTPS only")
    if traffic.mtls != "STRICT" and cfg.environment != "dev":
        yield Problem(
            "traffic.mtls", f"{traffic.mtls} mTLS is allowed in dev only; {cfg.environment} is STRICT"
        )
    known = set(catalog.names())
    for name in traffic.circuit_breaker_overrides:
        if name not in known:
            yield Problem(f"traffic.circuitBreakerOverrides.{name}", "unknown workload")
    routes = traffic.routes
    if duration_seconds(routes.per_try_timeout) > duration_seconds(routes.timeout):
        yield Problem(
            "traffic.routes.perTryTimeout",
            f"{routes.per_try_timeout} is longer than the route timeout {routes.timeout}",
        )
    replicas = cfg.registry_replicas()
    if replicas % 2 == 0:
        yield Problem(
            "traffic.registry.serverReplicas",
            f"{replicas} Consul servers cannot hold a majority; use an odd number",
        )
    if cfg.environment in ("staging", "prod") and replicas < 3:
        yield Problem(
            "traffic.registry.serverReplicas", f"{replicas} is below the {cfg.environment} minimum of 3"
        )


#: What a docker stack reads; any other key set in one is a Kubernetes-only setting (Istio,
#: autoscaling, database instances, charts, ...), so features added later are rejected by default.
DOCKER_KEYS = frozenset(
    {
        "environment",
        "target",
        "domain",
        "image_registry",
        "cors_allowed_origins",
        "services",
        "spotify_client_id",
        "docker",
        # The event bus runs as one NATS container (see infra/targets/docker/events.py).
        "events",
    }
)
DOCKER_WORKLOAD_KEYS = frozenset({"enabled", "image", "resources", "cutover"})
_KUBERNETES_ONLY = "Kubernetes-only setting; a docker stack (target: docker) does not read it"


def _target_rules(cfg: PlatformConfig) -> Iterator[Problem]:
    """Settings of one target are errors in a stack of the other target."""
    if cfg.target != "docker":
        if "docker" in cfg.model_fields_set:
            yield Problem("docker", f"Docker-only setting; this stack's target is {cfg.target}")
        return
    for key in sorted(cfg.model_fields_set - DOCKER_KEYS):
        yield Problem(to_camel(key), _KUBERNETES_ONLY)
    for name, svc in cfg.services.items():
        for key in sorted(svc.model_fields_set - DOCKER_WORKLOAD_KEYS):
            yield Problem(f"services.{name}.{to_camel(key)}", _KUBERNETES_ONLY)
        if svc.cutover.weight not in (0, 100):
            yield Problem(
                f"services.{name}.cutover.weight",
                f"{svc.cutover.weight} is a partial weight; a docker stack has no traffic split, "
                "use 0 (monolith) or 100 (service)",
            )
        if svc.cutover.mirror:
            yield Problem(f"services.{name}.cutover.mirror", f"{_KUBERNETES_ONLY} (mirroring needs the mesh)")
    events = cfg.events
    if "namespace" in events.model_fields_set:
        yield Problem("events.namespace", _KUBERNETES_ONLY)
    if events.cluster_size not in (None, 1):
        yield Problem(
            "events.clusterSize", f"{events.cluster_size}: a docker stack runs one NATS server; use 1"
        )
    gateway = cfg.services.get("api-gateway")
    if gateway is None or not gateway.enabled:
        yield Problem("services.api-gateway", "a docker stack needs the api-gateway: it is the edge there")
    known = set(catalog.names())
    for name in cfg.docker_settings().build_contexts:
        if name not in known:
            yield Problem(
                f"docker.buildContexts.{name}",
                f"unknown workload; the catalog has {', '.join(catalog.names())}",
            )


def _database_rules(cfg: PlatformConfig) -> Iterator[Problem]:
    """Instances, backups, restores, migration phases, and the catalog's table ownership."""
    for table, message in migration.ownership_problems(catalog.WORKLOADS, schema.TABLES):
        yield Problem(f"databases.tables.{table}", message)
    dbs, env = cfg.databases, cfg.environment
    minimum = MIN_DB_INSTANCES[env]
    if dbs.instances is not None and dbs.instances < minimum:
        yield Problem(
            "databases.instances",
            f"{dbs.instances} is below the {env} minimum of {minimum} (a primary and {minimum - 1} replicas)",
        )
    if dbs.backup is None and env in BACKUP_REQUIRED:
        yield Problem("databases.backup", f"{env} requires backups: set a backup target")
    for key in dbs.parameters:
        if not _PG_PARAMETER.match(key):
            yield Problem(f"databases.parameters.{key}", "not a PostgreSQL parameter name")
    owners = {w.name for w in catalog.WORKLOADS if w.database is not None}
    for name in dbs.restore:
        if name not in owners:
            yield Problem(
                f"databases.restore.{name}",
                f"no database to restore; workloads with one: {', '.join(sorted(owners))}",
            )
        elif name == "monolith" and dbs.external_monolith is not None:
            yield Problem(
                "databases.restore.monolith", "the monolith's database is external; restore it there"
            )
        if dbs.backup is None:
            yield Problem(
                f"databases.restore.{name}", "restoring needs databases.backup (where the backup is)"
            )
    enabled = {w.name for w, _ in cfg.enabled()}
    services = {w.name for w in catalog.WORKLOADS if w.database is not None and w.role == "service"}
    for name, phase in dbs.migration.items():
        if name not in services:
            yield Problem(
                f"databases.migration.{name}",
                f"not a service that owns tables; those are {', '.join(sorted(services))}",
            )
        elif phase != "not-started" and name not in enabled:
            yield Problem(f"databases.migration.{name}", f"{phase} needs {name} enabled in services")


def parse_platform_config(raw: Any, source: str) -> PlatformConfig:
    """Validate the raw ``vinylhound:platform`` value; raise ``ConfigError`` listing every problem."""
    if raw is None:
        raise ConfigError(source, [Problem("", "missing; every stack must set this key")])
    if not isinstance(raw, Mapping):
        raise ConfigError(source, [Problem("", "must be a mapping")])
    try:
        cfg = PlatformConfig.model_validate(raw, by_alias=True, by_name=False)
    except ValidationError as err:
        raise ConfigError(source, _pydantic_problems(err)) from None
    problems = [*_rules(cfg), *_target_rules(cfg)]
    if problems:
        raise ConfigError(source, problems)
    return cfg
