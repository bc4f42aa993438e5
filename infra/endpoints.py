"""Where each endpoint of the API goes in a stack: the strangler fig, one endpoint at a time.

Pure functions of the catalog and the validated config. ``targets/kubernetes/traffic.py`` turns
the result into Istio routes; the config rules (``infra/config/traffic.py``) use the same
decisions to refuse a cut-over that would leave writes on the monolith's fenced tables, so the
two can never disagree.

The rules, for each endpoint of the monolith (the full API) that a deployed service registers
with the same method and template:

- an endpoint the service serves differently (catalog ``gap``) never takes user traffic: its reads
  may only be mirrored, its writes stay on the monolith;
- reads (GET) are split by the service's cutover weight, or the endpoint's own ``move`` (100 %) or
  ``hold`` (0 %); ``mirror`` copies them to the service while the monolith answers;
- writes (POST, PUT, DELETE) go to the service only when the service owns the data (migration phase
  ``cut-over``) and the endpoint is not held: they follow the data, never a weight;
- a retired endpoint (``traffic.retiredEndpoints``) is answered at the edge and reaches nobody.

Every other request, any HEAD or OPTIONS included (no service answers a CORS preflight; the monolith
answers all of them), stays on the monolith.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from infra import catalog
from infra.catalog import Endpoint, Workload

if TYPE_CHECKING:
    from infra.config import PlatformConfig

MONOLITH = "monolith"


@dataclass(frozen=True)
class EndpointRoute:
    """What a stack does with one monolith endpoint a service also registers (or that is retired)."""

    #: The monolith's endpoint (method, template, the tables it writes there).
    endpoint: Endpoint
    #: The deployed service registering the same endpoint, if any.
    service: str | None
    #: Share of the reads (GET) the service answers, 0-100; always 0 for a write endpoint.
    read_weight: int = 0
    #: Whether the service receives a copy of the reads the monolith answers.
    mirror: bool = False
    #: Whether the writes go to the service (else the monolith).
    writes_to_service: bool = False
    #: Why the endpoint is retired, if it is (the edge answers it itself).
    retired: str | None = None

    @property
    def destinations(self) -> dict[str, int]:
        """Workload -> share of this endpoint's requests (empty when retired)."""
        if self.retired is not None:
            return {}
        if self.endpoint.is_read:
            assert self.service is not None or self.read_weight == 0
            split = {self.service or MONOLITH: self.read_weight, MONOLITH: 100 - self.read_weight}
            return {k: v for k, v in split.items() if v}
        return {self.service if self.writes_to_service and self.service else MONOLITH: 100}

    @property
    def moves_reads(self) -> bool:
        """Whether some of its live reads are answered by the service (the contract gate's concern)."""
        return self.endpoint.is_read and self.read_weight > 0


def route_name(endpoint: Endpoint) -> str:
    """The http route's name for an endpoint: method and path as a slug (``GET
    /api/v1/playlists/{id}`` -> ``get-playlists-id``; legacy ``/api/...`` paths keep ``api``).
    Istio reports it in request metrics, so dashboards split each endpoint's traffic between the
    monolith and the service."""
    path = endpoint.path.removeprefix(catalog.API_ROOT)
    return re.sub(r"[^a-z0-9]+", "-", f"{endpoint.method} {path}".lower()).strip("-")


def shared(service: Workload) -> tuple[Endpoint, ...]:
    """The endpoints ``service`` registers that the monolith serves too: the only ones it can take."""
    return tuple(e for e in service.endpoints if catalog.monolith_endpoint(e.key) is not None)


def specificity(endpoint: Endpoint) -> tuple[int, int, str, str]:
    """Sort key, most specific first: fewer ``{param}`` segments, then more segments, then by text.

    Two templates can only both match a path when they have as many segments; then the one with
    fewer parameters (``/collections/stats`` before ``/collections/{id}``) is the more specific.
    """
    return (endpoint.params, -endpoint.path.count("/"), endpoint.path, endpoint.method)


def server_of(endpoint: Endpoint, cfg: PlatformConfig) -> Workload | None:
    """The deployed extracted service that registers ``endpoint`` (same method and template)."""
    for w in catalog.services():
        if cfg.is_enabled(w.name) and w.endpoint(endpoint.key) is not None:
            return w
    return None


def decide(
    endpoint: Endpoint, cfg: PlatformConfig, servers: dict[str, Workload] | None = None
) -> EndpointRoute:
    """Where ``endpoint`` (one of the monolith's) goes in this stack (see the module docstring).
    ``servers``: the deployed service registering each endpoint key, when the caller has it."""
    retired = cfg.traffic.retired_endpoints.get(endpoint.key)
    service = servers.get(endpoint.key) if servers is not None else server_of(endpoint, cfg)
    if retired is not None or service is None:
        return EndpointRoute(endpoint, service.name if service else None, retired=retired)
    own = service.endpoint(endpoint.key)
    assert own is not None
    cut = cfg.services[service.name].cutover
    setting = cut.endpoints.get(endpoint.key)
    serves_alike = own.gap is None
    if endpoint.is_read:
        weight = {"hold": 0, "move": 100, "mirror": 0}.get(setting or "", cut.weight)
        weight = weight if serves_alike else 0
        mirror = setting == "mirror" or (setting is None and cut.mirror and weight == 0)
        return EndpointRoute(endpoint, service.name, read_weight=weight, mirror=mirror)
    if service.database is None:
        owns_data = cut.weight == 100
    elif service.database.is_new:
        owns_data = True  # none of its tables is in the monolith: its writes are its own from day one
    else:
        owns_data = cfg.databases.phase(service.name) == "cut-over"
    writes = serves_alike and owns_data and setting != "hold"
    return EndpointRoute(endpoint, service.name, writes_to_service=writes)


#: The last plans computed, by the identity of their (frozen) config: the routes of every
#: VirtualService and every workload's policy ask for the same stack's plan.
_PLANS: dict[int, tuple[PlatformConfig, tuple[EndpointRoute, ...]]] = {}


def plan(cfg: PlatformConfig) -> tuple[EndpointRoute, ...]:
    """``_plan``, computed once per config (the config is frozen)."""
    hit = _PLANS.get(id(cfg))
    if hit is not None and hit[0] is cfg:
        return hit[1]
    if len(_PLANS) > 32:
        _PLANS.clear()
    result = _plan(cfg)
    _PLANS[id(cfg)] = (cfg, result)
    return result


def _plan(cfg: PlatformConfig) -> tuple[EndpointRoute, ...]:
    """Every monolith endpoint that a deployed service registers or the stack retires, and every
    endpoint only a deployed service has (a new service's API), most specific first. An endpoint
    not listed goes to the monolith, whatever any weight says."""
    monolith = catalog.monolith().endpoints
    known = {e.key for e in monolith}
    own = [e for w in catalog.services() if cfg.is_enabled(w.name) for e in w.endpoints if e.key not in known]
    servers: dict[str, Workload] = {}
    for w in catalog.services():
        if cfg.is_enabled(w.name):
            for e in w.endpoints:
                servers.setdefault(e.key, w)
    routes = (decide(e, cfg, servers) for e in (*monolith, *own))
    chosen = [r for r in routes if r.service is not None or r.retired is not None]
    return tuple(sorted(chosen, key=lambda r: specificity(r.endpoint)))


def contract_request(endpoint: Endpoint) -> str:
    """The request a contract check sends for ``endpoint``: ``"GET /api/v1/albums/1"``."""
    return f"{endpoint.method} {endpoint.sample_path()}"


def contract_samples(service: Workload, cfg: PlatformConfig | None = None) -> tuple[Endpoint, ...]:
    """What a contract check of ``service`` compares: its public reads shared with the monolith
    (safe to send twice, no credentials needed), or, given a stack, only those that take live reads
    at the service there (``moves_reads``)."""
    reads = [e for e in shared(service) if e.is_read and e.auth == "public"]
    if cfg is None:
        return tuple(reads)
    keys = {e.key for e in reads}
    return tuple(
        d.endpoint
        for d in plan(cfg)
        if d.endpoint.key in keys and d.moves_reads and d.service == service.name
    )


def contract_gates(cfg: PlatformConfig) -> dict[str, tuple[Endpoint, ...]]:
    """Per deployed service whose endpoints take live reads in this stack, the endpoints a contract
    check must find answered like the monolith's before the routes move (see ``contract_samples``)."""
    gates: dict[str, list[Endpoint]] = {}
    for d in plan(cfg):
        # Only an endpoint the monolith serves too has an answer to compare with.
        shared_public = d.endpoint.auth == "public" and catalog.monolith_endpoint(d.endpoint.key) is not None
        if d.moves_reads and d.service is not None and shared_public:
            gates.setdefault(d.service, []).append(d.endpoint)
    return {name: tuple(samples) for name, samples in sorted(gates.items())}
