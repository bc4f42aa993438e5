"""The route table and who may call whom, derived from the catalog and the stack's cutover settings.

Pure functions, tested without Pulumi by sending requests through the routes they return.

Routes are per ENDPOINT (method + path template), never per prefix: a service takes an endpoint's
traffic only if the catalog says it registers that endpoint, and serves it like the monolith (see
``infra/endpoints.py`` for the decisions). Route table (one list, first match wins, as Istio
evaluates a VirtualService):

1. one route per endpoint that a deployed service registers (or the stack retires), most specific
   first, matching its method and its template: ``exact`` for a literal path, an anchored regex
   with ``[^/]+`` per ``{param}`` segment otherwise (gorilla/mux's default, so a route matches
   exactly the requests the service's own router accepts). Reads are split by the weight and
   optionally mirrored; writes go to the owner of the data; a retired endpoint is answered 410;
2. ``/api/`` -> the monolith: every other endpoint, any HEAD and OPTIONS (only the monolith
   answers CORS preflights), the legacy ``/api/signup`` etc.;
3. everything else -> the front end (the single-page app serves its own client-side routes).

Writes retry only where the request cannot have reached the upstream (``istio.WRITE_RETRY_ON``).

With the api-gateway enabled (dev) the edge sends the gateway only the endpoints its real route
table (``catalog`` ``gateway_table``: plain prefixes, no fallback) forwards to an upstream that
registers them: its ``*_SERVICE_URL`` host, the service, or the monolith while that service is not
deployed. Everything else goes straight to the monolith instead of to the gateway's own 404. Inside
the mesh a VirtualService per such host applies the same per-endpoint routes, so weights, mirrors
and write ownership mean the same in both modes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from components.kubernetes import istio
from components.kubernetes.istio import Backend, KubeObject, Resilience
from infra import catalog, endpoints
from infra.catalog import Endpoint, Workload
from infra.config import PlatformConfig
from infra.config.views import view
from infra.targets.kubernetes import network

MONOLITH = endpoints.MONOLITH
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


def endpoint_regex(template: str) -> str:
    """An anchored RE2 pattern for a path template, one ``[^/]+`` per ``{param}`` segment."""
    if not re.fullmatch(r"(/[A-Za-z0-9_-]+|/\{[A-Za-z]+\})+", template):
        raise ValueError(f"not a plain path template: {template!r}")
    return "^" + re.sub(r"\{[A-Za-z]+\}", "[^/]+", template) + "$"


def endpoint_matches(endpoint: Endpoint) -> list[KubeObject]:
    """The Istio match for exactly this method and template (query strings are not part of it)."""
    uri = {"exact": endpoint.path} if not endpoint.params else {"regex": endpoint_regex(endpoint.path)}
    return [{"uri": uri, "method": {"exact": endpoint.method}}]


def retired_route(endpoint: Endpoint, reason: str) -> KubeObject:
    """A route the edge answers itself: 410 Gone, with the reason as the body."""
    return {
        "name": endpoints.route_name(endpoint),
        "match": endpoint_matches(endpoint),
        "directResponse": {"status": 410, "body": {"string": f"{endpoint.key} is retired: {reason}"}},
    }


def _policy(e: Endpoint, cfg: PlatformConfig) -> Resilience:
    """Full retries for a read; for a write only where the request cannot have reached the upstream."""
    return resilience(cfg) if e.is_read else resilience(cfg).for_writes()


def endpoint_route(decision: endpoints.EndpointRoute, cfg: PlatformConfig) -> KubeObject:
    """One endpoint's route (see the module docstring and ``infra/endpoints.py``)."""
    e = decision.endpoint
    if decision.retired is not None:
        return retired_route(e, decision.retired)
    dests = [backend(name, cfg, weight) for name, weight in sorted(decision.destinations.items())]
    mirror = backend(decision.service, cfg) if decision.mirror and decision.service else None
    return istio.http_route(
        endpoints.route_name(e), endpoint_matches(e), dests, _policy(e, cfg), mirror=mirror
    )


def _shadowed(chosen: list[Endpoint]) -> list[Endpoint]:
    """Monolith endpoints a chosen endpoint's regex would also catch (``/collections/stats`` under
    ``/collections/{id}``): they get an explicit monolith route ahead of it."""
    keys = {e.key for e in chosen}
    pats = [(e.method, re.compile(endpoint_regex(e.path))) for e in chosen if e.params]
    return [
        e
        for e in catalog.monolith().endpoints
        if e.key not in keys and any(m == e.method and p.fullmatch(e.sample_path("x")) for m, p in pats)
    ]


def _ordered(routes: list[tuple[Endpoint, KubeObject]], cfg: PlatformConfig) -> list[KubeObject]:
    """``routes`` plus the monolith routes of the endpoints they would shadow, most specific first."""
    chosen = [e for e, _ in routes]
    to_monolith = [backend(MONOLITH, cfg)]
    extra = [
        (e, istio.http_route(endpoints.route_name(e), endpoint_matches(e), to_monolith, _policy(e, cfg)))
        for e in _shadowed(chosen)
    ]
    every = sorted([*routes, *extra], key=lambda pair: endpoints.specificity(pair[0]))
    return [r for _, r in every]


def service_routes(cfg: PlatformConfig) -> list[KubeObject]:
    """One route per endpoint a deployed service registers or the stack retires (most specific
    first); every other request falls through to the routes after these."""
    return _ordered([(d.endpoint, endpoint_route(d, cfg)) for d in endpoints.plan(cfg)], cfg)


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


def gateway_upstream(target: str, cfg: PlatformConfig) -> str:
    """Where the api-gateway's ``*_SERVICE_URL`` for ``target`` points: the service when it is
    deployed, else the monolith."""
    return target if cfg.is_enabled(target) else MONOLITH


def via_gateway(endpoint: Endpoint, cfg: PlatformConfig) -> bool:
    """Whether the api-gateway's real table forwards ``endpoint`` to an upstream that registers it."""
    gw = catalog.gateway_route(endpoint.method, endpoint.sample_path())
    if gw is None:
        return False
    upstream = catalog.workload(gateway_upstream(gw.target, cfg))
    return upstream.endpoint(endpoint.key) is not None


def gateway_edge_routes(cfg: PlatformConfig) -> list[KubeObject]:
    """The endpoints the edge hands to the api-gateway (``via_gateway``), most specific first;
    retired endpoints are answered at the edge."""
    dest = [backend(API_GATEWAY, cfg)]
    routes: list[tuple[Endpoint, KubeObject]] = []
    for e in catalog.monolith().endpoints:
        retired = cfg.traffic.retired_endpoints.get(e.key)
        if retired is not None:
            routes.append((e, retired_route(e, retired)))
        elif via_gateway(e, cfg):
            # Named apart from the endpoint's own route: it carries no split, only the hand-off.
            name = f"gateway-{endpoints.route_name(e)}"
            routes.append((e, istio.http_route(name, endpoint_matches(e), dest, _policy(e, cfg))))
    return _ordered(routes, cfg)


def edge_routes(cfg: PlatformConfig) -> list[KubeObject]:
    """The edge VirtualService's route table (see the module docstring)."""
    first = gateway_edge_routes(cfg) if gateway_mode(cfg) else service_routes(cfg)
    return [*first, *api_default_route(cfg), *frontend_route(cfg)]


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


#: The service account of the contract-check Jobs (one per gated service, same identity).
CONTRACT_CHECK = "contract-check"


def contract_checked(workload: Workload, cfg: PlatformConfig) -> bool:
    """Whether a contract-check Job calls ``workload``: the monolith and each service whose
    endpoints take live reads in this stack (``endpoints.contract_gates``)."""
    gates = endpoints.contract_gates(cfg)
    return bool(gates) and (workload.name == MONOLITH or workload.name in gates)


def allowed_principals(workload: Workload, cfg: PlatformConfig) -> list[str]:
    """Identities an AuthorizationPolicy admits to ``workload``: the edge, its callers and, where
    it applies, the contract check."""
    principals = [
        ingress_principal(),
        *(istio.principal(cfg.namespace, c) for c in callers(workload, cfg).all),
    ]
    if contract_checked(workload, cfg):
        principals.append(istio.principal(cfg.namespace, CONTRACT_CHECK))
    return principals
