"""The route table and who may call whom, derived from the catalog and the stack's cutover settings.

Pure functions, tested without Pulumi by evaluating the routes they return.

Route table (one list, first match wins, as Istio evaluates a VirtualService):

1. every route prefix of every extracted service, most specific first, so
   ``/api/v1/me/albums`` (rating-service) wins over ``/api/v1/me`` (user-service). A route is
   always present, whether or not its service is deployed: while the service is absent or at
   weight 0 it points at the monolith, so a less specific prefix of another service can never
   catch it;
2. ``/api/`` -> the monolith (every route not cut over, and the legacy ``/api/signup`` etc.);
3. everything else -> the front end (the single-page app serves its own client-side routes).

Cutover, "writes follow the data": each service route becomes a write route (POST, PUT, PATCH,
DELETE; named ``<route>-writes``), a read route (GET, HEAD; named ``<route>``) and a route for any
other method (``<route>-other``, treated as a write). The service's migration phase
(``databases.migration``) decides where writes go; the cutover weight splits only the reads
``weight`` : ``100 - weight`` between the service and the monolith:

- ``not-started`` / ``rolled-back``: the monolith owns the tables; the config rules hold the
  weight at 0 (and forbid mirroring before replication), so everything goes to the monolith;
- ``replicating``: the service's database is a logical-replication subscriber of the monolith's,
  read-consistent but eventually; reads are split (or mirrored at weight 0) and every write stays
  on the monolith, since a write to the subscriber would collide with a replicated row and stop
  replication;
- ``cut-over``: the service owns the tables; every write goes to it, reads are still split (the
  monolith's fenced copy is fed back by reverse replication).

A service without a database keeps one split for both. With ``mirror`` (weight 0 only) the
monolith answers and the service receives a copy of every read; writes are never mirrored.
Writes retry only where the request cannot have reached the upstream (``istio.WRITE_RETRY_ON``).

With the api-gateway enabled the edge sends ``/api/`` to it instead, and the same table is
applied inside the mesh: a VirtualService per host that ``*_SERVICE_URL`` can point at (each
deployed service, and the monolith for services not deployed) routes what the gateway sends there
by path, with the same weights and mirroring, and anything else to the host itself. Cutover
weights therefore mean the same in both modes, and the reference gateway's ``/me`` mismatch is
corrected in the mesh.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from components.kubernetes import istio
from components.kubernetes.istio import Backend, KubeObject, Resilience
from infra import catalog
from infra.catalog import Route, Workload
from infra.config import PlatformConfig
from infra.config.views import view
from infra.targets.kubernetes import network

MONOLITH = "monolith"
FRONTEND = "web-frontend"
API_GATEWAY = "api-gateway"

#: The Istio ingress gateway: Helm release (and so service account) and namespace.
INGRESS_NAMESPACE = network.EDGE_NAMESPACE
INGRESS_RELEASE = "istio-ingressgateway"
#: Pod labels the gateway chart derives from the release name (``istio-`` prefix dropped).
INGRESS_SELECTOR = {"istio": "ingressgateway"}
#: The edge Gateway object, in the ingress namespace beside its TLS secret.
EDGE_GATEWAY = "vinylhound-edge"


def host(workload: Workload, namespace: str) -> str:
    """The in-cluster DNS name of a workload's Service."""
    return f"{workload.name}.{namespace}.svc.cluster.local"


def backend(name: str, cfg: PlatformConfig, weight: int = 100) -> Backend:
    """Workload ``name`` as a route destination."""
    w = catalog.workload(name)
    return Backend(host(w, cfg.namespace), w.port, weight)


def resilience(cfg: PlatformConfig) -> Resilience:
    """The timeout and retries every route gets."""
    routes = cfg.traffic.routes
    return Resilience(routes.timeout, routes.retry_attempts, routes.per_try_timeout)


def gateway_mode(cfg: PlatformConfig) -> bool:
    """Whether the api-gateway workload fronts the API in this stack."""
    return cfg.is_enabled(API_GATEWAY)


def route_entries() -> list[tuple[Workload, Route]]:
    """Every extracted service's routes, most specific (longest) path first.

    Matches are on segment boundaries, so two paths overlap only when one is a segment prefix of
    the other; the longer one is then the more specific and must come first.
    """
    entries = [(w, r) for w in catalog.WORKLOADS if w.role == "service" for r in w.routes]
    return sorted(entries, key=lambda e: (-len(e[1].path), e[1].path))


def route_name(route: Route) -> str:
    """The http route's name for a catalog route: its prefix as a slug (``/me/albums`` ->
    ``me-albums``). Istio reports it in request metrics, so dashboards can split each route's
    traffic between the monolith and the service. The reads route carries this name; the writes
    get ``-writes`` (and other methods ``-other``) appended."""
    return re.sub(r"[^a-z0-9]+", "-", route.prefix.lower()).strip("-")


def write_owner(owner: Workload, cfg: PlatformConfig) -> str | None:
    """Where writes to ``owner``'s routes go: the workload that owns its tables in this phase
    (the service once cut over, the monolith before and after a rollback), or ``None`` for a
    service without a database, whose writes follow the read split. A new database (no monolith
    tables) is the service's from day one, and so are its writes."""
    if owner.database is None:
        return None
    if owner.database.is_new:
        return owner.name
    return owner.name if cfg.databases.phase(owner.name) == "cut-over" else MONOLITH


def service_routes(cfg: PlatformConfig) -> list[KubeObject]:
    """The routes of every extracted service: writes to the owner of its data, reads split
    between it and the monolith by the cutover weight (see the module docstring)."""
    policy = resilience(cfg)
    routes: list[KubeObject] = []
    for owner, route in route_entries():
        name = route_name(route)
        matches = istio.uri_matches(route.path)
        if not cfg.is_enabled(owner.name):
            to_monolith = [backend(MONOLITH, cfg)]
            routes += istio.read_write_routes(name, matches, to_monolith, to_monolith, policy)
            continue
        cut = cfg.services[owner.name].cutover
        reads = [backend(owner.name, cfg, cut.weight), backend(MONOLITH, cfg, 100 - cut.weight)]
        writer = write_owner(owner, cfg)
        writes = reads if writer is None else [backend(writer, cfg)]
        # Mirroring (weight 0 only) copies the reads to the service; writes are never mirrored.
        mirror = backend(owner.name, cfg) if cut.mirror else None
        routes += istio.read_write_routes(name, matches, reads, writes, policy, mirror=mirror)
    return routes


def _to(name: str, matches: list[KubeObject] | None, target: str, cfg: PlatformConfig) -> list[KubeObject]:
    """Every method of ``matches`` to ``target``, with write-safe retries on the writes."""
    dest = [backend(target, cfg)]
    return istio.read_write_routes(name, matches, dest, dest, resilience(cfg))


def api_default_route(cfg: PlatformConfig) -> list[KubeObject]:
    """Every other API path (including the legacy ``/api/...`` routes) -> the monolith."""
    return _to("monolith-api", istio.uri_matches("/api"), MONOLITH, cfg)


def frontend_route(cfg: PlatformConfig) -> list[KubeObject]:
    """The catch-all: the front end, or the monolith in a stack without one."""
    target = FRONTEND if cfg.is_enabled(FRONTEND) else MONOLITH
    return _to(f"{target}-default", None, target, cfg)


def edge_routes(cfg: PlatformConfig) -> list[KubeObject]:
    """The edge VirtualService's route table (see the module docstring)."""
    if gateway_mode(cfg):
        # The reference topology: all of /api/ to the gateway (as the front end's nginx does),
        # which routes by prefix and sends everything else, legacy routes included, to the monolith.
        return [*_to("api-gateway", istio.uri_matches("/api"), API_GATEWAY, cfg), *frontend_route(cfg)]
    return [*service_routes(cfg), *api_default_route(cfg), *frontend_route(cfg)]


def mesh_routes(cfg: PlatformConfig, host_workload: str) -> list[KubeObject]:
    """The route table for requests addressed to ``host_workload`` inside the mesh (gateway
    mode); a path outside the table stays on the addressed workload."""
    return [*service_routes(cfg), *_to(f"{host_workload}-direct", None, host_workload, cfg)]


@view
def mesh_routed_hosts(cfg: PlatformConfig) -> tuple[str, ...]:
    """The workloads whose Service host gets a mesh VirtualService, in gateway mode only
    (otherwise nothing inside the mesh calls them): every deployed extracted service, and the
    monolith, which ``*_SERVICE_URL`` points at while a service is not deployed."""
    if not gateway_mode(cfg):
        return ()
    return tuple(w.name for w, _ in cfg.enabled() if w.role in ("service", "monolith"))


@view
def _service_callers(cfg: PlatformConfig) -> tuple[str, ...]:
    """The enabled workloads that call some extracted service, in catalog order: in gateway mode
    the mesh may route their requests to any routed host."""
    return tuple(
        w.name for w, _ in cfg.enabled() if any(catalog.workload(c).role == "service" for c in w.calls)
    )


def frontend_backend(cfg: PlatformConfig) -> str | None:
    """The workload behind the front end's hard-coded API upstream (``Workload.api_upstream_host``):
    the api-gateway when it is enabled (as in the docker target), else the monolith; ``None``
    without a front end."""
    if not cfg.is_enabled(FRONTEND):
        return None
    return API_GATEWAY if gateway_mode(cfg) else MONOLITH


@dataclass(frozen=True)
class Callers:
    """Who may open requests to a workload inside the mesh, besides the ingress gateway."""

    #: Callers the catalog lists (``Workload.calls``).
    direct: tuple[str, ...]
    #: Callers whose requests to some service the mesh may route to this workload instead
    #: (the monolith while a service is not cut over, or another service by path), and the front
    #: end when this workload is behind its API upstream Service (``frontend_backend``).
    routed: tuple[str, ...]

    @property
    def all(self) -> tuple[str, ...]:
        """Every caller, sorted."""
        return tuple(sorted({*self.direct, *self.routed}))


def callers(workload: Workload, cfg: PlatformConfig) -> Callers:
    """The workloads allowed to call ``workload`` (see ``Callers``)."""
    direct = tuple(network.callers(workload, cfg.enabled_names()))
    routed: tuple[str, ...] = ()
    if workload.role in ("service", "monolith") and mesh_routed_hosts(cfg):
        routed = tuple(name for name in _service_callers(cfg) if name not in direct)
    if workload.name == frontend_backend(cfg) and FRONTEND not in direct + routed:
        routed = (*routed, FRONTEND)
    return Callers(direct=direct, routed=routed)


@view
def _routed_targets(cfg: PlatformConfig) -> dict[str, tuple[Workload, ...]]:
    """Caller -> the workloads whose ``Callers.routed`` lists it, in catalog order."""
    found: dict[str, list[Workload]] = {}
    for w, _ in cfg.enabled():
        for caller in callers(w, cfg).routed:
            found.setdefault(caller, []).append(w)
    return {caller: tuple(targets) for caller, targets in found.items()}


def routed_targets(workload: Workload, cfg: PlatformConfig) -> tuple[Workload, ...]:
    """The workloads the mesh may route ``workload``'s requests to (it is among their routed
    callers), in catalog order: the egress side of ``Callers.routed``."""
    return _routed_targets(cfg).get(workload.name, ())


def ingress_principal() -> str:
    """The ingress gateway's identity (its chart names the service account after the release)."""
    return istio.principal(INGRESS_NAMESPACE, INGRESS_RELEASE)


def allowed_principals(workload: Workload, cfg: PlatformConfig) -> list[str]:
    """Identities an AuthorizationPolicy admits to ``workload``: the edge and its callers."""
    return [ingress_principal(), *(istio.principal(cfg.namespace, c) for c in callers(workload, cfg).all)]
