"""The service catalog is the single source of workload facts."""

import pytest

from infra import catalog


def test_catalog_holds_the_seven_reference_workloads() -> None:
    assert set(catalog.names()) >= {
        "monolith",
        "user-service",
        "catalog-service",
        "rating-service",
        "playlist-service",
        "api-gateway",
        "web-frontend",
    }


def test_no_table_is_owned_by_two_workloads() -> None:
    tables = [t for w in catalog.WORKLOADS if w.database for t in w.database.tables]
    assert len(tables) == len(set(tables))


def test_the_split_covers_all_seventeen_tables() -> None:
    tables = {t for w in catalog.WORKLOADS if w.database for t in w.database.tables}
    assert len(tables) == 17


def test_the_gateway_reads_the_url_of_every_service() -> None:
    services = [w for w in catalog.WORKLOADS if w.role == "service"]
    assert [e for e in catalog.workload("api-gateway").env if e.endswith("_SERVICE_URL")] == [
        s.url_env for s in services
    ]


def test_the_gateway_calls_every_service() -> None:
    services = [w.name for w in catalog.WORKLOADS if w.role == "service"]
    assert catalog.workload("api-gateway").calls == tuple(services)


def test_unknown_workload_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="user-service"):
        catalog.workload("billing-service")


def test_playlist_service_consumes_what_user_service_publishes() -> None:
    (route,) = [e for e in catalog.events() if e.event == "user.created"]
    assert route.publishers == ("user-service",)
    assert route.consumers == ("playlist-service",)
