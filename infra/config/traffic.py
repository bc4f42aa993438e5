"""Traffic settings: the Istio edge, circuit breakers, retries, the Consul registry, cutover rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from infra import catalog, endpoints
from infra.config.types import (
    DnsLabel,
    Duration,
    Model,
    Percent,
    PinnedImage,
    Problem,
    duration_seconds,
)
from infra.config.workloads import WorkloadConfig

if TYPE_CHECKING:
    from infra.config import PlatformConfig


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
    #: The Consul image whose CLI creates Prometheus' ACL token after the chart installs (the
    #: release the consul 1.8.2 chart runs). Where policy requires digests (prod), pin
    #: ``<tag>@sha256:<digest>``.
    cli_image: PinnedImage = "hashicorp/consul:1.21.5"


class TrafficConfig(Model):
    """The Istio mesh, the edge, per-service traffic policy and the Consul registry."""

    edge: EdgeConfig = EdgeConfig()
    #: Mesh-wide mTLS for the workloads' namespace. PERMISSIVE is allowed in dev only.
    mtls: Literal["STRICT", "PERMISSIVE"] = "STRICT"
    circuit_breaker: CircuitBreaker = CircuitBreaker()
    #: Per-workload replacements of ``circuitBreaker`` (whole model, by workload name).
    circuit_breaker_overrides: dict[str, CircuitBreaker] = Field(default_factory=dict)
    routes: RoutePolicy = RoutePolicy()
    registry: RegistryConfig = RegistryConfig()
    #: The image the contract-check Jobs run ``infra/contract_check.py`` in (stdlib only, so the
    #: official Python image is all it needs). Default: ``python:3.13.9-alpine3.22``; where policy
    #: requires digests (prod), pin it as ``<tag>@sha256:<digest>`` before a read moves.
    contract_check_image: PinnedImage = "python:3.13.9-alpine3.22"
    #: Monolith endpoints taken out of service, by ``"METHOD /path"``, with the reason: the edge
    #: answers them 410 Gone. How a service reaches cut-over while a monolith endpoint nobody else
    #: serves still writes its tables. Default: none.
    retired_endpoints: dict[str, str] = Field(default_factory=dict)

    def breaker(self, workload: str) -> CircuitBreaker:
        """The circuit breaker for ``workload``."""
        return self.circuit_breaker_overrides.get(workload, self.circuit_breaker)


#: Consul server replicas when the stack does not say (quorum of three outside dev).
REGISTRY_REPLICAS: dict[str, int] = {"local": 1, "dev": 1, "staging": 3, "prod": 3}


def cutover_rules(name: str, svc: WorkloadConfig) -> Iterator[Problem]:
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


def _services_with_data(cfg: PlatformConfig) -> Iterator[tuple[str, WorkloadConfig, catalog.Workload]]:
    """The enabled extracted services that own tables: the ones a migration phase applies to."""
    for name, svc in cfg.services.items():
        w = catalog.workload(name) if name in catalog.names() else None
        if w is not None and w.role == "service" and w.database is not None and svc.enabled:
            yield name, svc, w


def data_ownership_rules(cfg: PlatformConfig) -> Iterator[Problem]:
    """Reads may only go where the data is: a service's cutover must fit its migration phase.

    Where writes go follows from the phase alone (see ``targets/kubernetes/traffic.py``); what the weight may
    be does too. A docker stack has no replication (each container database is seeded on its
    own), so its all-or-nothing cutover is left to the target rules.
    """
    if cfg.target == "docker":
        return
    for name, svc, w in _services_with_data(cfg):
        if w.database is not None and w.database.is_new:
            continue  # nothing of it is in the monolith: any weight reads the service's own data
        cut, phase = svc.cutover, cfg.databases.phase(name)
        field = f"databases.migration.{name}"
        if phase == "not-started":
            if cut.weight:
                yield Problem(
                    f"services.{name}.cutover.weight",
                    f"{cut.weight} while {field} is not-started: the service's database is empty "
                    "(its tables are still only in the monolith); set 0, or start replication "
                    "(replicating) first",
                )
            if cut.mirror:
                yield Problem(
                    f"services.{name}.cutover.mirror",
                    f"mirroring while {field} is not-started: the service has no data to answer "
                    "the copied reads from; start replication (replicating) first",
                )
        elif phase == "rolled-back" and cut.weight:
            yield Problem(
                f"services.{name}.cutover.weight",
                f"{cut.weight} while {field} is rolled-back: the monolith owns the tables again "
                "and the service's copy is no longer fed; set 0",
            )


def _endpoint_problem(cfg: PlatformConfig, name: str, key: str, move: str) -> str | None:
    """Why ``services.<name>.cutover.endpoints.<key>: <move>`` cannot be done, if it cannot."""
    w = catalog.workload(name)
    mono = catalog.monolith_endpoint(key)
    if w.role != "service":
        return f"only extracted services have a cutover; {name} is not one"
    if mono is None:
        return f'no such endpoint: the monolith serves no {key} (write it as "METHOD /api/v1/...")'
    own = w.endpoint(key)
    if own is None:
        also = "" if move == "hold" else "; it stays on the monolith"
        return f"not served by {name}: it registers no {key}{also}"
    if key in cfg.traffic.retired_endpoints:
        return f"{key} is retired (traffic.retiredEndpoints); it reaches neither workload"
    if move == "hold":
        return None
    phase = cfg.databases.phase(name)
    if move == "mirror":
        if not own.is_read:
            return "only reads (GET) are mirrored; a copied write would apply twice"
        if w.database is not None and phase in ("not-started", "rolled-back"):
            return f"mirroring while databases.migration.{name} is {phase}: the service has no current data"
        return None
    if own.gap is not None:
        return f"not served by {name} the way the monolith serves it ({own.gap}); mirror or hold it"
    if not own.is_read and w.database is not None and phase != "cut-over":
        return (
            f"phase forbids writes: databases.migration.{name} is {phase}, and writes go to the service "
            "only once it owns the tables (cut-over)"
        )
    if own.is_read and w.database is not None and phase in ("not-started", "rolled-back"):
        return (
            f"phase forbids reads: databases.migration.{name} is {phase}; the service's data is not current"
        )
    return None


def _docker_weight_rule(name: str, weight: int) -> Iterator[Problem]:
    """In a docker stack the api-gateway is the edge: at weight 100 its ``*_SERVICE_URL`` points at
    the service, which then gets every request under the gateway's prefixes for it."""
    w = catalog.workload(name)
    unserved = [
        e.key
        for e in catalog.monolith().endpoints
        if (gw := catalog.gateway_route(e.method, e.sample_path())) is not None
        and gw.target == name
        and ((own := w.endpoint(e.key)) is None or own.gap is not None)
    ]
    for key in unserved:
        yield Problem(
            f"services.{name}.cutover.weight",
            f"{weight}: the api-gateway would send {name} {key}, which it does not serve the way the "
            "monolith does; set 0",
        )


def endpoint_rules(cfg: PlatformConfig) -> Iterator[Problem]:
    """Per-endpoint cutover settings and retirements name endpoints that exist and can move."""
    known = set(catalog.names())
    for name, svc in cfg.services.items():
        if name not in known:
            continue
        cut = svc.cutover
        for key, move in cut.endpoints.items():
            problem = _endpoint_problem(cfg, name, key, move)
            if problem is not None:
                yield Problem(f"services.{name}.cutover.endpoints.{key}", problem)
        w = catalog.workload(name)
        if cut.weight and w.role == "service" and svc.enabled and cfg.target == "docker":
            yield from _docker_weight_rule(name, cut.weight)
        elif cut.weight and w.role == "service" and svc.enabled and not (w.database and w.database.is_new):
            shared_reads = [e for e in endpoints.shared(w) if e.is_read]
            if all(e.gap is not None for e in shared_reads):
                yield Problem(
                    f"services.{name}.cutover.weight",
                    f"{cut.weight} moves no reads: {name} serves none of the {len(shared_reads)} reads "
                    "it shares with the monolith alike (each gap is in infra/catalog.py); set 0, "
                    "mirror to compare",
                )
    for key in cfg.traffic.retired_endpoints:
        if catalog.monolith_endpoint(key) is None:
            yield Problem(
                f"traffic.retiredEndpoints.{key}", f"no such endpoint: the monolith serves no {key}"
            )


def write_ownership_rules(cfg: PlatformConfig) -> Iterator[Problem]:
    """Writes follow ownership: a service may be ``cut-over`` only when nothing else writes its
    tables: every endpoint whose handler writes one of them reaches the service (or is retired),
    and no other workload writes one at startup (unless the stack says those writes are off).

    The endpoint and startup-write rule of the cut-over; trigger and cascade writes inside the
    database are checked separately."""
    if cfg.target == "docker":
        return
    for name, _, w in _services_with_data(cfg):
        if cfg.databases.phase(name) != "cut-over":
            continue
        tables = set(w.database.tables if w.database else ())
        field = f"databases.migration.{name}"
        for e in catalog.monolith().endpoints:
            route = endpoints.decide(e, cfg)
            if route.retired is not None or (route.writes_to_service and route.service == name):
                continue
            # The handler that runs: the monolith's, or another service's own (other tables).
            handler = (
                catalog.workload(route.service).endpoint(e.key)
                if route.service and route.writes_to_service
                else e
            )
            touched = set(handler.writes if handler else ()) & tables
            if touched:
                # One line per endpoint: the list is long, and each line must stay whole.
                yield Problem(
                    field,
                    f"cut-over while {e.key} writes {', '.join(sorted(touched))} at the monolith, "
                    f"which the cut-over fences; move it to {name} (it must register it alike) or "
                    "retire it (traffic.retiredEndpoints)",
                )
        for other, settings in cfg.enabled():
            if other.name == name or settings.startup_writes_disabled:
                continue
            steps = [
                f"{s.step} ({', '.join(sorted(set(s.tables) & tables))})"
                for s in other.startup_writes
                if set(s.tables) & tables
            ]
            if steps:
                yield Problem(
                    field,
                    f"cut-over while {other.name} writes {name}'s tables at every start: "
                    f"{'; '.join(steps)}; against the fenced tables it would fail (the monolith exits). "
                    f"Set services.{other.name}.startupWritesDisabled with the reason once they are off",
                )


def traffic_rules(cfg: PlatformConfig) -> Iterator[Problem]:
    yield from data_ownership_rules(cfg)
    yield from endpoint_rules(cfg)
    yield from write_ownership_rules(cfg)
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
