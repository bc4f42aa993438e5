"""Per-workload settings, image pins, chart versions and the Docker target's settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from infra.config.types import (
    ChartVersion,
    CpuQuantity,
    DnsLabel,
    ImageDigest,
    ImageTag,
    MemoryQuantity,
    Model,
    Percent,
    PinnedImage,
    Problem,
    cpu_millicores,
    quantity_bytes,
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


def resource_rules(path: str, resources: Resources) -> Iterator[Problem]:
    """Requests may not exceed limits (the API server would reject the Deployment at apply time)."""
    requests, limits = resources.requests, resources.limits
    if cpu_millicores(requests.cpu) > cpu_millicores(limits.cpu):
        yield Problem(f"{path}.requests.cpu", f"{requests.cpu} is above the limit {limits.cpu}")
    if quantity_bytes(requests.memory) > quantity_bytes(limits.memory):
        yield Problem(f"{path}.requests.memory", f"{requests.memory} is above the limit {limits.memory}")


class Autoscaling(Model):
    """A HorizontalPodAutoscaler on CPU. While set, the Deployment leaves ``replicas`` to it."""

    min_replicas: int = Field(ge=1)
    max_replicas: int = Field(ge=1)
    target_cpu_percent: Percent = 70


#: Per-endpoint override of a service's cutover: ``hold`` keeps the endpoint on the monolith
#: whatever the weight, ``move`` sends all of it to the service (reads at 100 %, writes once the
#: phase allows), ``mirror`` copies its reads to the service while the monolith answers.
EndpointMove = Literal["hold", "move", "mirror"]


class Cutover(Model):
    """How much of a service's endpoints the edge sends to it instead of the monolith.

    Only endpoints the service registers the way the monolith serves them (catalog ``Endpoint``
    without a ``gap``) ever move; everything else stays on the monolith. ``weight`` splits those
    endpoints' reads (GET): 0 keeps every request on the monolith, 100 moves all of them; moving
    back is setting it to 0 again. ``mirror`` copies the reads of every endpoint the service
    registers to it while the weight is still 0 (shadow testing); writes are never mirrored and
    follow the migration phase (see ``targets/kubernetes/traffic.py``). ``endpoints`` overrides
    single endpoints by ``"METHOD /path"``, e.g. ``{"GET /api/v1/users/profile": hold}``. Default: none.
    """

    weight: Percent = 0
    mirror: bool = False
    endpoints: dict[str, EndpointMove] = Field(default_factory=dict)


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
    #: Why this workload's startup writes (catalog ``startup_writes``) do not run in this stack,
    #: e.g. the image is built without them. Default: ``None``, they run at every start, and a
    #: service whose tables they write cannot be cut over.
    startup_writes_disabled: str | None = Field(default=None, min_length=10)


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
