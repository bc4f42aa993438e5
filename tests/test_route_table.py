"""The route table per endpoint: requests sent through the generated (and the rendered)
VirtualServices, and through the real api-gateway's table where the edge hands requests to it, land
only on a workload that serves that endpoint, at the weights and phases the stack says."""

from __future__ import annotations

from typing import Any

import pytest

from infra import catalog, cross_writes, endpoints
from infra.config import PlatformConfig, parse_platform_config
from infra.targets.kubernetes import traffic
from infra.targets.kubernetes.observability import dashboards
from tests.catalogs import serving_alike
from tests.conftest import manifests_of, rendered
from tests.istio_routing import Decision, route

SERVICES = ("user-service", "catalog-service", "rating-service", "playlist-service")
FRONTEND = catalog.workload("web-frontend")
ALBUM_READS = ("GET /api/v1/albums", "GET /api/v1/albums/{id}")
#: What user-service's cut-over needs besides the phase: the monolith writes of its tables that it
#: has no twin for retired, and the monolith's demo-user bootstrap declared off.
USER_CUT_OVER: dict[str, Any] = {
    "retired": dict.fromkeys(
        ("PUT /api/v1/users/profile", "POST /api/signup", "POST /api/login", "PUT /api/me/content"),
        "retired for the test",
    ),
    "startup_off": True,
}
ACCEPT_ANY_ORDER = {name: sorted(cross_writes.writers_into(name, catalog.WORKLOADS)) for name in SERVICES}


def stack(
    weights: dict[str, int] | None = None,
    mirror: tuple[str, ...] = (),
    absent: tuple[str, ...] = (),
    gateway: bool = False,
    phases: dict[str, str] | None = None,
    moves: dict[str, dict[str, str]] | None = None,
    retired: dict[str, str] | None = None,
    startup_off: bool = False,
) -> PlatformConfig:
    """A dev config with every workload, the given cutover weights (default 0), mirrors and
    per-endpoint moves. Every deployed service replicates unless ``phases`` says otherwise."""
    weights = weights or {}
    migration = {n: "replicating" for n in SERVICES if n not in absent} | (phases or {})
    services: dict[str, Any] = {
        "monolith": {"image": {"tag": "2.14.0"}},
        "web-frontend": {"image": {"tag": "3"}},
    }
    if startup_off:
        services["monolith"]["startupWritesDisabled"] = "the image is built without bootstrap.go"
    for name in SERVICES:
        if name not in absent:
            services[name] = {
                "image": {"tag": "1.0.0"},
                "cutover": {
                    "weight": weights.get(name, 0),
                    "mirror": name in mirror,
                    "endpoints": (moves or {}).get(name, {}),
                },
            }
    if gateway:
        services["api-gateway"] = {"image": {"tag": "1.5.0"}}
    raw = {
        "environment": "dev",
        "domain": "dev.vinylhound.app",
        "imageRegistry": "ghcr.io/vinylhound",
        "services": services,
        # Routing only: any cut-over order is accepted (tests/test_cross_writes.py checks it).
        "databases": {"migration": migration, "acceptedCrossServiceWrites": ACCEPT_ANY_ORDER},
        "traffic": {"retiredEndpoints": retired or {}},
    }
    return parse_platform_config(raw, "stacks/Pulumi.test.yaml")


def edge(cfg: PlatformConfig) -> dict[str, Any]:
    return {"http": traffic.edge_routes(cfg)}


def mesh(cfg: PlatformConfig, host: str) -> dict[str, Any]:
    return {"http": traffic.mesh_routes(cfg, host)}


def through(cfg: PlatformConfig, method: str, path: str) -> Decision:
    """Where ``method path`` ends: the edge, and in gateway mode the real gateway's table, the
    upstream it forwards to and the mesh VirtualService of that upstream's host."""
    first = route(edge(cfg), path, method)
    if first.weights != {"api-gateway": 100}:
        return first
    gw = catalog.gateway_route(method, path)
    assert gw is not None, f"the api-gateway answers {method} {path} with its own 404"
    return route(mesh(cfg, traffic.gateway_upstream(gw.target, cfg)), path, method)


def served_alike(workload: str, key: str) -> bool:
    """Whether ``workload`` serves endpoint ``key`` the way the front end expects (the monolith
    serves its whole API)."""
    own = catalog.workload(workload).endpoint(key)
    return own is not None and (workload == "monolith" or own.gap is None)


def assert_lands_where_served(decision: Decision, key: str) -> None:
    assert decision.status is None, f"{key} is answered {decision.status} at the edge"
    for workload, weight in decision.weights.items():
        assert weight > 0 and served_alike(workload, key), (key, decision.weights)
    if decision.mirror is not None:
        assert catalog.workload(decision.mirror).endpoint(key) is not None, (key, decision.mirror)


def call_sample(call: catalog.ApiCall) -> tuple[str, str]:
    endpoint = catalog.monolith_endpoint(call.endpoint)
    assert endpoint is not None, f"the front end calls {call.endpoint}, which the monolith lacks"
    return endpoint.method, call.sample or endpoint.sample_path("42")


# --- every front-end call lands only where it is served ------------------------------------------


def everything_moved(gateway: bool) -> PlatformConfig:
    """Every service at weight 100 and mirrored where allowed; user-service cut over."""
    return stack(
        dict.fromkeys(["catalog-service"], 100),
        mirror=("user-service", "playlist-service"),
        gateway=gateway,
        phases={"user-service": "cut-over"},
        **USER_CUT_OVER,
    )


@pytest.mark.parametrize("gateway", [False, True])
def test_every_front_end_call_lands_only_where_it_is_served_with_everything_moved(
    gateway: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    serving_alike(monkeypatch, "catalog-service", *ALBUM_READS)
    cfg = everything_moved(gateway)
    for call in FRONTEND.api_calls:
        if call.endpoint in cfg.traffic.retired_endpoints:
            continue
        method, path = call_sample(call)
        assert_lands_where_served(through(cfg, method, path), call.endpoint)


def test_front_end_calls_a_service_serves_alike_do_move_when_everything_is_moved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    serving_alike(monkeypatch, "catalog-service", *ALBUM_READS)
    cfg = everything_moved(gateway=True)
    assert through(cfg, "POST", "/api/v1/auth/login").weights == {"user-service": 100}
    assert through(cfg, "POST", "/api/v1/auth/signup").weights == {"user-service": 100}
    assert through(cfg, "GET", "/api/v1/albums/7").weights == {"catalog-service": 100}
    assert through(cfg, "GET", "/api/v1/songs?album_id=7").weights == {"monolith": 100}


def rendered_through(stack_name: str, method: str, path: str) -> Decision:
    """``through`` on a rendered stack: its VirtualServices, and the gateway's ``*_SERVICE_URL``
    as the rendered Deployment sets it."""
    objects = manifests_of(rendered(stack_name))
    vs = {m["metadata"]["name"]: m["spec"] for m in objects if m["kind"] == "VirtualService"}
    first = route(vs["edge"], path, method)
    if first.weights != {"api-gateway": 100}:
        return first
    gw = catalog.gateway_route(method, path)
    assert gw is not None, f"the api-gateway answers {method} {path} with its own 404"
    (deployment,) = [
        m for m in objects if m["kind"] == "Deployment" and m["metadata"]["name"] == "api-gateway"
    ]
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    upstream_host = env[catalog.workload(gw.target).url_env].split("//")[1].split(".")[0].split(":")[0]
    return route(vs[f"{upstream_host}-routes"], path, method)


@pytest.mark.parametrize("stack_name", ["dev", "staging", "prod"])
def test_every_front_end_call_lands_only_where_it_is_served_in_the_rendered_stack(stack_name: str) -> None:
    for call in FRONTEND.api_calls:
        method, path = call_sample(call)
        assert_lands_where_served(rendered_through(stack_name, method, path), call.endpoint)


# --- per-endpoint matches -------------------------------------------------------------------------


def test_a_template_matches_exactly_the_requests_the_services_router_accepts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    serving_alike(monkeypatch, "catalog-service", *ALBUM_READS)
    cfg = stack({"catalog-service": 100})
    assert route(edge(cfg), "/api/v1/albums/7").weights == {"catalog-service": 100}
    assert route(edge(cfg), "/api/v1/albums?genre=jazz").weights == {"catalog-service": 100}
    for other in ("/api/v1/albums/7/tracks", "/api/v1/albumsX", "/api/v1/albums/", "/api/v1/albums//"):
        assert route(edge(cfg), other).weights == {"monolith": 100}, other


@pytest.mark.parametrize("gateway", [False, True])
def test_no_route_catches_a_monolith_endpoint_it_was_not_made_for(
    gateway: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    serving_alike(monkeypatch, "catalog-service", *ALBUM_READS)
    cfg = everything_moved(gateway)
    for e in catalog.monolith().endpoints:
        own = endpoints.route_name(e)
        decision = route(edge(cfg), e.sample_path("x"), e.method)
        assert decision.route in (own, f"gateway-{own}", "monolith-api", "monolith-api-writes"), e.key


def test_head_and_options_always_reach_the_monolith_which_alone_answers_preflights(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    serving_alike(monkeypatch, "catalog-service", *ALBUM_READS)
    cfg = everything_moved(gateway=False)
    for path in ("/api/v1/albums", "/api/v1/auth/login", "/api/v1/playlists/3"):
        for method in ("HEAD", "OPTIONS"):
            assert route(edge(cfg), path, method).weights == {"monolith": 100}, (method, path)


def test_at_weight_zero_every_front_end_call_stays_on_the_monolith() -> None:
    cfg = stack()
    for call in FRONTEND.api_calls:
        method, path = call_sample(call)
        assert route(edge(cfg), path, method).weights == {"monolith": 100}, call.endpoint


def test_the_spa_and_unknown_paths_go_to_the_front_end_and_unknown_api_paths_to_the_monolith() -> None:
    cfg = stack()
    assert route(edge(cfg), "/albums/42").weights == {"web-frontend": 100}
    assert route(edge(cfg), "/api/v1/meow", "POST").weights == {"monolith": 100}


def test_without_a_front_end_the_root_goes_to_the_monolith() -> None:
    raw_cfg = stack()
    cfg = raw_cfg.model_copy(
        update={"services": {k: v for k, v in raw_cfg.services.items() if k != "web-frontend"}}
    )
    assert route(edge(cfg), "/").weights == {"monolith": 100}


# --- weights, holds, moves, mirrors -------------------------------------------------------------


def test_a_weight_splits_the_reads_a_service_serves_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    serving_alike(monkeypatch, "catalog-service", *ALBUM_READS)
    cfg = stack({"catalog-service": 10})
    assert route(edge(cfg), "/api/v1/albums").weights == {"catalog-service": 10, "monolith": 90}


def test_an_endpoint_a_service_serves_differently_stays_on_the_monolith_whatever_the_weight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    serving_alike(monkeypatch, "catalog-service", *ALBUM_READS)
    cfg = stack({"catalog-service": 100})
    assert route(edge(cfg), "/api/v1/songs").weights == {"monolith": 100}
    assert route(edge(cfg), "/api/v1/artists").weights == {"monolith": 100}


def test_a_held_endpoint_stays_on_the_monolith_at_the_services_weight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    serving_alike(monkeypatch, "catalog-service", *ALBUM_READS)
    cfg = stack({"catalog-service": 100}, moves={"catalog-service": {"GET /api/v1/albums/{id}": "hold"}})
    assert route(edge(cfg), "/api/v1/albums/7").weights == {"monolith": 100}
    assert route(edge(cfg), "/api/v1/albums").weights == {"catalog-service": 100}


def test_a_moved_endpoint_takes_all_its_reads_at_weight_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    serving_alike(monkeypatch, "catalog-service", *ALBUM_READS)
    cfg = stack(moves={"catalog-service": {"GET /api/v1/albums": "move"}})
    assert route(edge(cfg), "/api/v1/albums").weights == {"catalog-service": 100}
    assert route(edge(cfg), "/api/v1/albums/7").weights == {"monolith": 100}


def test_mirroring_copies_every_read_the_service_registers_while_the_monolith_answers() -> None:
    cfg = stack(mirror=("catalog-service",))
    for path in ("/api/v1/albums", "/api/v1/albums/7", "/api/v1/songs", "/api/v1/artists"):
        decision = route(edge(cfg), path)
        assert decision.weights == {"monolith": 100} and decision.mirror == "catalog-service", path
    assert route(edge(cfg), "/api/v1/search", "POST").mirror is None


def test_one_endpoint_can_be_mirrored_alone() -> None:
    cfg = stack(moves={"playlist-service": {"GET /api/v1/playlists": "mirror"}})
    assert route(edge(cfg), "/api/v1/playlists").mirror == "playlist-service"
    assert route(edge(cfg), "/api/v1/playlists/9").mirror is None


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_mirroring_never_copies_writes(method: str) -> None:
    decision = route(edge(stack(mirror=("playlist-service",))), "/api/v1/playlists/9", method)
    assert decision.weights == {"monolith": 100} and decision.mirror is None


# --- writes follow the data --------------------------------------------------------------------


@pytest.mark.parametrize("gateway", [False, True])
def test_while_replicating_writes_a_service_serves_alike_stay_on_the_monolith(gateway: bool) -> None:
    cfg = stack(gateway=gateway)
    for path in ("/api/v1/auth/login", "/api/v1/auth/signup"):
        assert through(cfg, "POST", path).weights == {"monolith": 100}


@pytest.mark.parametrize("gateway", [False, True])
def test_after_cut_over_writes_a_service_serves_alike_go_to_it(gateway: bool) -> None:
    cfg = stack(gateway=gateway, phases={"user-service": "cut-over"}, **USER_CUT_OVER)
    for path in ("/api/v1/auth/login", "/api/v1/auth/signup"):
        assert through(cfg, "POST", path).weights == {"user-service": 100}


def test_a_retired_endpoint_is_answered_gone_at_the_edge() -> None:
    cfg = stack(retired={"POST /api/signup": "the UI signs up at /api/v1/auth/signup"})
    decision = route(edge(cfg), "/api/signup", "POST")
    assert decision.status == 410 and decision.weights == {}
    assert route(edge(cfg), "/api/signup", "GET").weights == {"monolith": 100}


def test_writes_retry_only_where_the_request_cannot_have_reached_the_upstream() -> None:
    cfg = stack(gateway=False)
    for method, path in (
        ("POST", "/api/v1/auth/signup"),
        ("POST", "/api/signup"),
        ("DELETE", "/api/v1/playlists/1"),
    ):
        retries = route(edge(cfg), path, method).retries
        assert retries is not None and 0 < retries["attempts"] <= 5
        assert set(retries["retryOn"].split(",")) == {"connect-failure", "refused-stream"}
    reads = route(edge(cfg), "/api/v1/albums", "GET").retries
    assert reads is not None and set(reads["retryOn"].split(",")) == {"5xx", "reset", "connect-failure"}


# --- api-gateway mode -------------------------------------------------------------------------


def test_with_the_api_gateway_the_edge_sends_it_only_what_its_table_forwards_to_a_server() -> None:
    cfg = stack(gateway=True)
    assert route(edge(cfg), "/api/v1/auth/login", "POST").weights == {"api-gateway": 100}
    assert route(edge(cfg), "/api/v1/users/profile").weights == {"api-gateway": 100}
    # Outside its table (its own 404), or forwarded to a service that lacks it: the monolith.
    for method, path in (
        ("POST", "/api/v1/search"),
        ("GET", "/api/v1/collections"),
        ("PUT", "/api/v1/users/profile"),
        ("PUT", "/api/v1/me/albums/3/preference"),
        ("POST", "/api/v1/playlists/3/songs"),
        ("POST", "/api/v1/artists"),
    ):
        assert route(edge(cfg), path, method).weights == {"monolith": 100}, (method, path)


def test_with_a_service_absent_its_gateway_prefixes_reach_the_monolith_through_the_gateway() -> None:
    cfg = stack(gateway=True, absent=("user-service",))
    assert route(edge(cfg), "/api/v1/users/profile", "PUT").weights == {"api-gateway": 100}
    assert through(cfg, "PUT", "/api/v1/users/profile").weights == {"monolith": 100}
    assert "monolith" in traffic.mesh_routed_hosts(cfg)


def test_in_the_mesh_a_call_to_a_service_host_is_split_by_its_cutover_weight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    serving_alike(monkeypatch, "catalog-service", *ALBUM_READS)
    cfg = stack({"catalog-service": 10}, gateway=True)
    assert route(mesh(cfg, "catalog-service"), "/api/v1/albums").weights == {
        "catalog-service": 10,
        "monolith": 90,
    }


def test_in_the_mesh_paths_outside_the_table_stay_on_the_addressed_host() -> None:
    cfg = stack(gateway=True)
    assert route(mesh(cfg, "user-service"), "/health").weights == {"user-service": 100}


def test_in_the_mesh_mirroring_copies_reads_only() -> None:
    cfg = stack(mirror=("playlist-service",), gateway=True)
    assert through(cfg, "GET", "/api/v1/playlists").mirror == "playlist-service"
    assert through(cfg, "DELETE", "/api/v1/playlists/3").mirror is None


# --- the rendered stacks ----------------------------------------------------------------------


def virtual_services(stack_name: str) -> dict[str, dict[str, Any]]:
    return {
        m["metadata"]["name"]: m["spec"]
        for m in manifests_of(rendered(stack_name))
        if m["kind"] == "VirtualService"
    }


def test_rendered_prod_mirrors_the_reads_it_says_and_moves_nothing() -> None:
    vs = virtual_services("prod")["edge"]
    assert route(vs, "/api/v1/albums").mirror == "catalog-service"
    assert route(vs, "/api/v1/users/profile").mirror == "user-service"
    assert route(vs, "/api/v1/playlists/3").mirror == "playlist-service"
    assert route(vs, "/api/v1/auth/login", "POST").weights == {"monolith": 100}
    assert route(vs, "/").weights == {"web-frontend": 100}


def test_rendered_prod_has_one_edge_virtual_service_and_no_mesh_routing() -> None:
    assert set(virtual_services("prod")) == {"edge"}


def test_rendered_dev_retires_the_legacy_writes_at_the_edge() -> None:
    vs = virtual_services("dev")["edge"]
    assert route(vs, "/api/signup", "POST").status == 410
    assert route(vs, "/api/me/albums", "GET").weights == {"monolith": 100}


@pytest.mark.parametrize("stack_name", ["dev", "staging", "prod"])
def test_every_rendered_route_has_a_timeout_and_bounded_retries(stack_name: str) -> None:
    for spec in virtual_services(stack_name).values():
        for r in spec["http"]:
            if "directResponse" in r:
                continue
            retries = r["retries"]
            assert r["timeout"] == "15s"
            assert 0 < retries["attempts"] <= 5 and retries["perTryTimeout"]
            expected = (
                {"5xx", "reset", "connect-failure"}
                if all(m.get("method", {}).get("exact") in ("GET", "HEAD") for m in r.get("match", [{}]))
                else {"connect-failure", "refused-stream"}
            )
            assert set(retries["retryOn"].split(",")) == expected


@pytest.mark.parametrize("stack_name", ["staging", "prod"])
def test_the_migration_dashboard_counts_every_endpoint_a_service_shares_with_the_monolith(
    stack_name: str,
) -> None:
    vs = virtual_services(stack_name)["edge"]
    board = dashboards.migration_dashboard([w for w in catalog.WORKLOADS if w.role == "service"])
    queries = "\n".join(dashboards.expressions(board))
    for service in catalog.services():
        for e in endpoints.shared(service):
            name = route(vs, e.sample_path(), e.method).route
            assert f'route="{name}"' in queries, e.key
