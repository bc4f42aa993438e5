"""The edge route table: requests sent through the rendered VirtualService rules land where the
reference gateway (corrected for its /me mismatch) and the cutover weights say."""

from __future__ import annotations

import re
from typing import Any

import pytest

from infra import catalog, cross_writes, traffic
from infra.config import PlatformConfig, parse_platform_config
from infra.observability import dashboards
from tests.conftest import manifests_of, rendered
from tests.istio_routing import route

SERVICES = ("user-service", "catalog-service", "rating-service", "playlist-service")
ACCEPT_ANY_ORDER = {name: sorted(cross_writes.writers_into(name, catalog.WORKLOADS)) for name in SERVICES}


def stack(
    weights: dict[str, int] | None = None,
    mirror: tuple[str, ...] = (),
    absent: tuple[str, ...] = (),
    gateway: bool = False,
    phases: dict[str, str] | None = None,
) -> PlatformConfig:
    """A dev config with every workload, the given cutover weights (default 0) and mirrors.

    Migration phases default to what the weights need: cut-over for a service with weight,
    replicating for a mirrored one, not-started otherwise."""
    weights = weights or {}
    migration = {n: "cut-over" for n, w in weights.items() if w and n not in absent}
    migration |= dict.fromkeys(mirror, "replicating")
    migration |= phases or {}
    services: dict[str, Any] = {
        "monolith": {"image": {"tag": "2.14.0"}},
        "web-frontend": {"image": {"tag": "3"}},
    }
    for name in SERVICES:
        if name not in absent:
            services[name] = {
                "image": {"tag": "1.0.0"},
                "cutover": {"weight": weights.get(name, 0), "mirror": name in mirror},
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
    }
    return parse_platform_config(raw, "stacks/Pulumi.test.yaml")


def edge(cfg: PlatformConfig) -> dict[str, Any]:
    return {"http": traffic.edge_routes(cfg)}


ALL_CUT_OVER = stack(dict.fromkeys(SERVICES, 100))

# Every prefix of the reference gateway, paths below them, the mismatch, unknown and legacy paths.
TABLE = [
    ("/api/v1/auth/signup", "user-service"),
    ("/api/v1/auth/login", "user-service"),
    ("/api/v1/auth/logout", "monolith"),
    ("/api/v1/users", "user-service"),
    ("/api/v1/users/42", "user-service"),
    ("/api/v1/users/profile", "user-service"),
    ("/api/v1/me", "user-service"),
    ("/api/v1/me/content", "user-service"),
    ("/api/v1/me/albums/42/preference", "rating-service"),
    ("/api/v1/albums", "catalog-service"),
    ("/api/v1/albums/7", "catalog-service"),
    ("/api/v1/artists/3", "catalog-service"),
    ("/api/v1/songs?q=blue", "catalog-service"),
    ("/api/v1/catalog/albums", "catalog-service"),
    ("/api/v1/ratings/1", "rating-service"),
    ("/api/v1/reviews", "rating-service"),
    ("/api/v1/preferences", "rating-service"),
    ("/api/v1/playlists/9/songs", "playlist-service"),
    ("/api/v1/venues", "monolith"),
    ("/api/v1/concerts/3", "monolith"),
    ("/api/v1/search?q=blue", "monolith"),
    ("/api/v1/favorites", "monolith"),
    ("/api/v1/meow", "monolith"),
    ("/api/v1/usersettings", "monolith"),
    ("/api/signup", "monolith"),
    ("/api/login", "monolith"),
    ("/api/me/albums", "monolith"),
    ("/api/albums", "monolith"),
    ("/", "web-frontend"),
    ("/albums/42", "web-frontend"),
    ("/index.html", "web-frontend"),
]


@pytest.mark.parametrize(("path", "owner"), TABLE)
def test_at_full_cutover_each_path_reaches_its_owner(path: str, owner: str) -> None:
    for method in ("GET", "POST"):
        assert route(edge(ALL_CUT_OVER), path, method).weights == {owner: 100}


@pytest.mark.parametrize(("path", "owner"), TABLE)
def test_at_weight_zero_every_api_path_stays_on_the_monolith(path: str, owner: str) -> None:
    expected = "web-frontend" if owner == "web-frontend" else "monolith"
    assert route(edge(stack()), path).weights == {expected: 100}


def test_weight_ten_sends_a_tenth_of_a_services_reads_to_it() -> None:
    cfg = stack({"catalog-service": 10})
    for path in ("/api/v1/albums", "/api/v1/artists/1", "/api/v1/songs", "/api/v1/catalog/albums"):
        for method in READS:
            assert route(edge(cfg), path, method).weights == {"catalog-service": 10, "monolith": 90}
    assert route(edge(cfg), "/api/v1/users").weights == {"monolith": 100}


# --- writes follow the data --------------------------------------------------------------------

READS = ("GET", "HEAD")
WRITES = ("POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND")
CATALOG_PATHS = ("/api/v1/albums", "/api/v1/artists/1", "/api/v1/songs?q=x", "/api/v1/catalog/albums")


@pytest.mark.parametrize("gateway", [False, True])
@pytest.mark.parametrize("method", WRITES)
def test_while_replicating_every_write_stays_on_the_monolith(method: str, gateway: bool) -> None:
    cfg = stack({"catalog-service": 50}, phases={"catalog-service": "replicating"}, gateway=gateway)
    table = {"http": traffic.mesh_routes(cfg, "catalog-service")} if gateway else edge(cfg)
    for path in CATALOG_PATHS:
        decision = route(table, path, method)
        assert decision.weights == {"monolith": 100} and decision.mirror is None


@pytest.mark.parametrize("gateway", [False, True])
def test_while_replicating_reads_are_split_by_the_weight(gateway: bool) -> None:
    cfg = stack({"catalog-service": 50}, phases={"catalog-service": "replicating"}, gateway=gateway)
    table = {"http": traffic.mesh_routes(cfg, "catalog-service")} if gateway else edge(cfg)
    for path in CATALOG_PATHS:
        for method in READS:
            assert route(table, path, method).weights == {"catalog-service": 50, "monolith": 50}


@pytest.mark.parametrize("gateway", [False, True])
@pytest.mark.parametrize("method", WRITES)
def test_after_cut_over_every_write_goes_to_the_service_whatever_the_weight(
    method: str, gateway: bool
) -> None:
    cfg = stack({"catalog-service": 10}, phases={"catalog-service": "cut-over"}, gateway=gateway)
    table = {"http": traffic.mesh_routes(cfg, "monolith")} if gateway else edge(cfg)
    for path in CATALOG_PATHS:
        assert route(table, path, method).weights == {"catalog-service": 100}
        assert route(table, path, "GET").weights == {"catalog-service": 10, "monolith": 90}


def test_writes_retry_only_where_the_request_cannot_have_reached_the_upstream() -> None:
    cfg = stack({"user-service": 100}, gateway=False)
    for path in ("/api/v1/auth/signup", "/api/signup", "/api/v1/venues", "/albums"):
        for method in WRITES:
            retries = route(edge(cfg), path, method).retries
            assert retries is not None and 0 < retries["attempts"] <= 5
            assert set(retries["retryOn"].split(",")) == {"connect-failure", "refused-stream"}
        reads = route(edge(cfg), path, "GET").retries
        assert reads is not None and set(reads["retryOn"].split(",")) == {"5xx", "reset", "connect-failure"}


def test_writes_through_the_api_gateway_are_not_retried_on_5xx() -> None:
    cfg = stack(gateway=True)
    for table in (edge(cfg), {"http": traffic.mesh_routes(cfg, "monolith")}):
        retries = route(table, "/api/signup", "POST").retries
        assert retries is not None and "5xx" not in retries["retryOn"]


def test_me_albums_goes_to_the_monolith_while_rating_service_is_absent() -> None:
    cfg = stack({"user-service": 100}, absent=("rating-service",))
    assert route(edge(cfg), "/api/v1/me/albums/42/preference", "PUT").weights == {"monolith": 100}
    assert route(edge(cfg), "/api/v1/me").weights == {"user-service": 100}


def test_me_albums_follows_rating_service_weight_not_user_service_weight() -> None:
    cfg = stack({"user-service": 100, "rating-service": 10})
    assert route(edge(cfg), "/api/v1/me/albums/42/preference", "GET").weights == {
        "rating-service": 10,
        "monolith": 90,
    }


def test_mirroring_copies_reads_to_the_service_while_the_monolith_answers() -> None:
    decision = route(edge(stack(mirror=("playlist-service",))), "/api/v1/playlists/9")
    assert decision.weights == {"monolith": 100} and decision.mirror == "playlist-service"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_mirroring_never_copies_writes(method: str) -> None:
    decision = route(edge(stack(mirror=("playlist-service",))), "/api/v1/playlists/9", method)
    assert decision.weights == {"monolith": 100} and decision.mirror is None


def test_without_a_front_end_the_root_goes_to_the_monolith() -> None:
    raw_cfg = stack()
    cfg = raw_cfg.model_copy(
        update={"services": {k: v for k, v in raw_cfg.services.items() if k != "web-frontend"}}
    )
    assert route(edge(cfg), "/").weights == {"monolith": 100}


# --- api-gateway mode -------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "owner"), TABLE)
def test_with_the_api_gateway_the_edge_sends_all_of_the_api_to_it(path: str, owner: str) -> None:
    cfg = stack(dict.fromkeys(SERVICES, 100), gateway=True)
    expected = "web-frontend" if owner == "web-frontend" else "api-gateway"
    assert route(edge(cfg), path, "POST").weights == {expected: 100}


def test_in_the_mesh_a_call_to_a_service_host_is_split_by_its_cutover_weight() -> None:
    cfg = stack({"catalog-service": 10}, gateway=True)
    mesh = {"http": traffic.mesh_routes(cfg, "catalog-service")}
    assert route(mesh, "/api/v1/albums").weights == {"catalog-service": 10, "monolith": 90}


def test_in_the_mesh_the_gateways_me_mismatch_is_corrected() -> None:
    # The reference gateway sends all of /me to USER_SERVICE_URL; the mesh hands the rating
    # path to its owner.
    cfg = stack({"user-service": 100, "rating-service": 100}, gateway=True)
    mesh = {"http": traffic.mesh_routes(cfg, "user-service")}
    assert route(mesh, "/api/v1/me/albums/1/preference", "PUT").weights == {"rating-service": 100}
    assert route(mesh, "/api/v1/me").weights == {"user-service": 100}


def test_in_the_mesh_a_call_that_falls_back_to_the_monolith_still_follows_the_table() -> None:
    # user-service is not deployed, so USER_SERVICE_URL is the monolith's address; the rating
    # path the gateway sends there still reaches rating-service at its weight.
    cfg = stack({"rating-service": 100}, absent=("user-service",), gateway=True)
    mesh = {"http": traffic.mesh_routes(cfg, "monolith")}
    assert route(mesh, "/api/v1/me/albums/1/preference", "PUT").weights == {"rating-service": 100}
    assert route(mesh, "/api/v1/me").weights == {"monolith": 100}
    assert "monolith" in traffic.mesh_routed_hosts(cfg)


def test_in_the_mesh_paths_outside_the_table_stay_on_the_addressed_host() -> None:
    cfg = stack(gateway=True)
    mesh = {"http": traffic.mesh_routes(cfg, "user-service")}
    assert route(mesh, "/health").weights == {"user-service": 100}


def test_in_the_mesh_mirroring_copies_reads_only() -> None:
    cfg = stack(mirror=("playlist-service",), gateway=True)
    mesh = {"http": traffic.mesh_routes(cfg, "playlist-service")}
    assert route(mesh, "/api/v1/playlists").mirror == "playlist-service"
    assert route(mesh, "/api/v1/playlists", "POST").mirror is None


# --- the rendered stacks ----------------------------------------------------------------------


def virtual_services(stack_name: str) -> dict[str, dict[str, Any]]:
    return {
        m["metadata"]["name"]: m["spec"]
        for m in manifests_of(rendered(stack_name))
        if m["kind"] == "VirtualService"
    }


def test_rendered_prod_edge_applies_prods_cutover_weights() -> None:
    vs = virtual_services("prod")["edge"]
    assert route(vs, "/api/v1/users/1").weights == {"user-service": 25, "monolith": 75}
    assert route(vs, "/api/v1/albums").weights == {"catalog-service": 10, "monolith": 90}
    assert route(vs, "/api/v1/me/albums/3/preference", "PUT").weights == {"monolith": 100}
    assert route(vs, "/api/v1/playlists").mirror == "playlist-service"
    assert route(vs, "/").weights == {"web-frontend": 100}


def test_rendered_stacks_send_writes_to_whoever_owns_the_data() -> None:
    staging = virtual_services("staging")["edge"]
    # staging: user-service cut over, catalog-service replicating at 50.
    assert route(staging, "/api/v1/users/1", "PUT").weights == {"user-service": 100}
    assert route(staging, "/api/v1/albums", "POST").weights == {"monolith": 100}
    assert route(staging, "/api/v1/albums").weights == {"catalog-service": 50, "monolith": 50}
    # prod: nothing cut over, so no write reaches a service.
    prod = virtual_services("prod")["edge"]
    for path in ("/api/v1/users/1", "/api/v1/albums", "/api/v1/playlists", "/api/v1/ratings"):
        assert route(prod, path, "POST").weights == {"monolith": 100}
    # dev (api-gateway mode): user-service cut over, rating-service replicating, in the mesh.
    dev = virtual_services("dev")["monolith-routes"]
    assert route(dev, "/api/v1/auth/signup", "POST").weights == {"user-service": 100}
    assert route(dev, "/api/v1/ratings", "POST").weights == {"monolith": 100}


def test_rendered_prod_has_one_edge_virtual_service_and_no_mesh_routing() -> None:
    assert set(virtual_services("prod")) == {"edge"}


def test_rendered_dev_routes_the_api_through_the_gateway_and_splits_in_the_mesh() -> None:
    vs = virtual_services("dev")
    assert route(vs["edge"], "/api/v1/ratings").weights == {"api-gateway": 100}
    # dev: rating-service at 50, reached through USER_SERVICE_URL for the /me path.
    assert route(vs["user-service-routes"], "/api/v1/me/albums/1/preference", "GET").weights == {
        "rating-service": 50,
        "monolith": 50,
    }
    # ...while rating-service is still replicating, so its writes stay on the monolith.
    assert route(vs["user-service-routes"], "/api/v1/me/albums/1/preference", "PUT").weights == {
        "monolith": 100
    }
    assert vs["user-service-routes"]["gateways"] == ["mesh"]


@pytest.mark.parametrize("stack_name", ["dev", "staging", "prod"])
def test_every_rendered_route_has_a_timeout_and_bounded_retries(stack_name: str) -> None:
    for spec in virtual_services(stack_name).values():
        for r in spec["http"]:
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
def test_the_migration_dashboard_counts_the_reads_and_the_writes_of_every_route(stack_name: str) -> None:
    vs = virtual_services(stack_name)["edge"]
    board = dashboards.migration_dashboard([w for w in catalog.WORKLOADS if w.role == "service"])
    selectors = {m for e in dashboards.expressions(board) for m in re.findall(r'route=~"([^"]+)"', e)}
    for _, r in traffic.route_entries():
        (pattern,) = [s for s in selectors if s.startswith(dashboards.route_name(r) + "(")]
        for method in ("GET", "POST", "OPTIONS"):
            assert re.fullmatch(pattern, route(vs, r.path, method).route), (r.path, method)
