"""Per-endpoint cutover in stack config: errors name the endpoint and the reason, and a cut-over
is refused while anything but the service writes its tables."""

from __future__ import annotations

from typing import Any

import pytest

from infra.config import ConfigError, parse_platform_config
from tests.catalogs import cut_over, serving_alike

SOURCE = "stacks/Pulumi.dev.yaml"
KEY = "vinylhound:platform"


def baseline(phases: dict[str, str] | None = None) -> dict[str, Any]:
    """A valid dev config: monolith, user-, catalog- and playlist-service, all replicating."""
    return {
        "environment": "dev",
        "domain": "dev.vinylhound.app",
        "imageRegistry": "ghcr.io/vinylhound",
        "services": {
            "monolith": {"image": {"tag": "2.14.0"}},
            "user-service": {"image": {"tag": "1.6.1"}},
            "catalog-service": {"image": {"tag": "1.4.3"}},
            "playlist-service": {"image": {"tag": "1.2.2"}},
        },
        "databases": {
            "migration": {
                "user-service": "replicating",
                "catalog-service": "replicating",
                "playlist-service": "replicating",
            }
            | (phases or {})
        },
    }


def move(raw: dict[str, Any], service: str, key: str, what: str) -> dict[str, Any]:
    raw["services"][service]["cutover"] = {"endpoints": {key: what}}
    return raw


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_platform_config(raw, SOURCE)
    return caught.value.lines()


def endpoint_field(service: str, key: str) -> str:
    return f"{SOURCE}: {KEY}.services.{service}.cutover.endpoints.{key}"


# --- moving single endpoints ------------------------------------------------------------------


def test_moving_an_endpoint_the_service_lacks_is_an_error_naming_it() -> None:
    raw = move(baseline(), "user-service", "PUT /api/v1/users/profile", "move")
    assert problems(raw) == [
        f"{endpoint_field('user-service', 'PUT /api/v1/users/profile')}: not served by user-service: "
        "it registers no PUT /api/v1/users/profile; it stays on the monolith"
    ]


def test_a_weight_on_a_service_that_serves_no_read_alike_is_an_error_listing_them() -> None:
    raw = baseline()
    raw["services"]["catalog-service"]["cutover"] = {"weight": 10}
    assert problems(raw) == [
        f"{SOURCE}: {KEY}.services.catalog-service.cutover.weight: 10 moves no reads: catalog-service "
        "serves none of the 5 reads it shares with the monolith alike (each gap is in infra/catalog.py); "
        "set 0, mirror to compare"
    ]


def test_moving_an_endpoint_the_service_serves_differently_is_an_error_with_the_difference() -> None:
    raw = move(baseline(), "user-service", "GET /api/v1/users/profile", "move")
    assert problems(raw) == [
        f"{endpoint_field('user-service', 'GET /api/v1/users/profile')}: not served by user-service the "
        "way the monolith serves it (a different resource: the user record "
        "{id,username,created_at,updated_at}, not {content}); mirror or hold it"
    ]


def test_moving_a_write_before_cut_over_is_an_error_the_phase_forbids() -> None:
    raw = move(baseline(), "user-service", "POST /api/v1/auth/login", "move")
    assert problems(raw) == [
        f"{endpoint_field('user-service', 'POST /api/v1/auth/login')}: phase forbids writes: "
        "databases.migration.user-service is replicating, and writes go to the service only once it "
        "owns the tables (cut-over)"
    ]


def test_moving_a_read_before_replication_is_an_error_the_phase_forbids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    serving_alike(monkeypatch, "catalog-service", "GET /api/v1/albums")
    raw = move(baseline({"catalog-service": "not-started"}), "catalog-service", "GET /api/v1/albums", "move")
    assert problems(raw) == [
        f"{endpoint_field('catalog-service', 'GET /api/v1/albums')}: phase forbids reads: "
        "databases.migration.catalog-service is not-started; the service's data is not current"
    ]


def test_holding_an_endpoint_that_does_not_exist_is_an_error() -> None:
    raw = move(baseline(), "user-service", "GET /api/v1/users/settings", "hold")
    assert problems(raw) == [
        f"{endpoint_field('user-service', 'GET /api/v1/users/settings')}: no such endpoint: the monolith "
        'serves no GET /api/v1/users/settings (write it as "METHOD /api/v1/...")'
    ]


def test_holding_an_endpoint_the_service_does_not_register_is_an_error() -> None:
    raw = move(baseline(), "catalog-service", "POST /api/v1/search", "hold")
    assert problems(raw) == [
        f"{endpoint_field('catalog-service', 'POST /api/v1/search')}: not served by catalog-service: "
        "it registers no POST /api/v1/search"
    ]


def test_mirroring_a_write_is_an_error() -> None:
    raw = move(baseline(), "playlist-service", "DELETE /api/v1/playlists/{id}", "mirror")
    assert problems(raw) == [
        f"{endpoint_field('playlist-service', 'DELETE /api/v1/playlists/{id}')}: only reads (GET) are "
        "mirrored; a copied write would apply twice"
    ]


def test_an_unknown_per_endpoint_setting_is_an_error() -> None:
    raw = move(baseline(), "playlist-service", "GET /api/v1/playlists", "shadow")
    (line,) = problems(raw)
    assert line.startswith(f"{endpoint_field('playlist-service', 'GET /api/v1/playlists')}: Input should be")


def test_holding_and_mirroring_endpoints_the_service_registers_is_valid() -> None:
    raw = move(baseline(), "playlist-service", "GET /api/v1/playlists/{id}", "mirror")
    raw["services"]["user-service"]["cutover"] = {"endpoints": {"POST /api/v1/auth/signup": "hold"}}
    cfg = parse_platform_config(raw, SOURCE)
    assert cfg.services["playlist-service"].cutover.endpoints == {"GET /api/v1/playlists/{id}": "mirror"}


# --- retired endpoints ------------------------------------------------------------------------


def test_retiring_an_endpoint_that_does_not_exist_is_an_error() -> None:
    raw = baseline()
    raw["traffic"] = {"retiredEndpoints": {"POST /api/v2/signup": "never existed"}}
    assert problems(raw) == [
        f"{SOURCE}: {KEY}.traffic.retiredEndpoints.POST /api/v2/signup: no such endpoint: the monolith "
        "serves no POST /api/v2/signup"
    ]


def test_moving_a_retired_endpoint_is_an_error() -> None:
    raw = move(baseline(), "user-service", "POST /api/v1/auth/login", "hold")
    raw["traffic"] = {"retiredEndpoints": {"POST /api/v1/auth/login": "retired"}}
    assert problems(raw) == [
        f"{endpoint_field('user-service', 'POST /api/v1/auth/login')}: POST /api/v1/auth/login is retired "
        "(traffic.retiredEndpoints); it reaches neither workload"
    ]


# --- writes follow ownership ------------------------------------------------------------------


def test_cut_over_while_monolith_endpoints_write_the_tables_is_an_error_listing_them() -> None:
    raw = baseline({"user-service": "cut-over"})
    raw["services"]["monolith"]["startupWritesDisabled"] = "the image is built without bootstrap.go"
    field = f"{SOURCE}: {KEY}.databases.migration.user-service"
    advice = "which the cut-over fences; move it to user-service (it must register it alike) or retire it"
    assert problems(raw) == [
        f"{field}: cut-over while PUT /api/v1/users/profile writes user_content at the monolith, "
        f"{advice} (traffic.retiredEndpoints)",
        f"{field}: cut-over while POST /api/signup writes user_content, users at the monolith, "
        f"{advice} (traffic.retiredEndpoints)",
        f"{field}: cut-over while POST /api/login writes sessions at the monolith, "
        f"{advice} (traffic.retiredEndpoints)",
        f"{field}: cut-over while PUT /api/me/content writes user_content at the monolith, "
        f"{advice} (traffic.retiredEndpoints)",
    ]


def test_cut_over_while_the_monolith_writes_the_tables_at_startup_is_an_error_naming_the_step() -> None:
    raw = cut_over(baseline(), "user-service")
    del raw["services"]["monolith"]["startupWritesDisabled"]
    assert problems(raw) == [
        f"{SOURCE}: {KEY}.databases.migration.user-service: cut-over while monolith writes "
        "user-service's tables at every start: ensureDemoUser (user_content, users); against the fenced "
        "tables it would fail (the monolith exits). Set services.monolith.startupWritesDisabled with "
        "the reason once they are off"
    ]


def test_holding_a_write_the_service_serves_keeps_it_on_the_fenced_monolith_and_refuses_cut_over() -> None:
    raw = cut_over(baseline(), "user-service")
    raw["services"]["user-service"]["cutover"] = {"endpoints": {"POST /api/v1/auth/login": "hold"}}
    (line,) = problems(raw)
    assert "cut-over while POST /api/v1/auth/login writes sessions at the monolith" in line


def test_cut_over_with_every_writer_moved_or_retired_and_startup_writes_off_is_valid() -> None:
    cfg = parse_platform_config(cut_over(baseline(), "user-service"), SOURCE)
    assert cfg.databases.phase("user-service") == "cut-over"


def test_a_write_moved_to_another_service_counts_by_what_that_service_writes() -> None:
    # Signup writes playlists in the monolith, not in user-service: once user-service serves it,
    # it no longer stands in playlist-service's way.
    raw = cut_over(baseline(), "user-service")
    raw["databases"]["migration"]["playlist-service"] = "cut-over"
    lines = problems(raw)
    assert all(".databases.migration.playlist-service:" in line for line in lines)
    assert not [line for line in lines if "POST /api/v1/auth/signup" in line]
    assert any("DELETE /api/v1/playlists/{id} writes playlist_songs, playlists" in line for line in lines)


def test_startup_writes_disabled_needs_a_reason() -> None:
    raw = baseline()
    raw["services"]["monolith"]["startupWritesDisabled"] = "off"
    (line,) = problems(raw)
    assert line.startswith(f"{SOURCE}: {KEY}.services.monolith.startupWritesDisabled: String should have")


# --- docker ---------------------------------------------------------------------------------


def test_a_docker_weight_is_refused_while_the_gateway_would_send_the_service_what_it_lacks() -> None:
    raw = baseline()
    raw.update(environment="local", target="docker", domain="localhost")
    del raw["databases"]
    raw["services"]["api-gateway"] = {"image": {"tag": "1.5.0"}}
    raw["services"]["user-service"]["cutover"] = {"weight": 100}
    lines = problems(raw)
    assert lines[:2] == [
        f"{SOURCE}: {KEY}.services.user-service.cutover.weight: 100: the api-gateway would send "
        f"user-service {key}, which it does not serve the way the monolith does; set 0"
        for key in ("GET /api/v1/users/profile", "PUT /api/v1/users/profile")
    ]
    assert len(lines) == 10  # every /users and /me endpoint of the monolith: none served alike
