"""The order of cut-overs: the schema model's cross-service write paths and the config rule that
refuses to fence a table the monolith still writes through them (the live check in the Job is
tested on real servers in test_cutover_faults.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from infra import catalog, cross_writes
from infra.config import ConfigError, parse_platform_config
from tests.conftest import PROJECT

SOURCE = "stacks/Pulumi.dev.yaml"


def dev(**phases: str) -> dict[str, Any]:
    """The dev stack's platform config with these migration phases (``user_service=...``)."""
    text = (PROJECT.root / "stacks" / "Pulumi.dev.yaml").read_text()
    raw: dict[str, Any] = copy.deepcopy(yaml.safe_load(text)["config"]["vinylhound:platform"])
    raw["databases"]["migration"] = {k.replace("_", "-"): v for k, v in phases.items()}
    return raw


def order_lines(raw: dict[str, Any]) -> list[str]:
    """The config's problems about cut-over order (other rules may have their own)."""
    try:
        parse_platform_config(raw, SOURCE)
    except ConfigError as err:
        return [line for line in err.lines() if "cross" in line.lower() or "still writes" in line]
    return []


def test_the_model_knows_the_favorites_trigger_and_the_cascade_from_users_into_playlists() -> None:
    into_playlists = {
        p.via for p in cross_writes.model_cross_writes(catalog.WORKLOADS) if p.target == "playlists"
    }
    assert into_playlists == {
        "trigger trg_create_favorites_playlist on users",
        "ON DELETE CASCADE of playlists.user_id",
    }


def test_playlists_cut_over_while_users_replicate_is_refused_naming_both_paths_and_the_way_out() -> None:
    (line,) = order_lines(dev(user_service="replicating", playlist_service="cut-over"))
    assert line.startswith(f"{SOURCE}: vinylhound:platform.databases.migration.playlist-service: ")
    assert "trigger trg_create_favorites_playlist on users" in line
    assert "ON DELETE CASCADE of playlists.user_id" in line
    assert "databases.acceptedCrossServiceWrites.playlist-service: [user-service]" in line


def test_playlists_and_users_cut_over_together_are_accepted() -> None:
    assert order_lines(dev(user_service="cut-over", playlist_service="cut-over")) == []


def test_rolling_users_back_while_playlists_stay_cut_over_is_refused() -> None:
    (line,) = order_lines(dev(user_service="rolled-back", playlist_service="cut-over"))
    assert "user-service is rolled-back" in line


def test_ratings_need_both_users_and_albums_out_of_the_monolith() -> None:
    lines = order_lines(dev(user_service="cut-over", rating_service="cut-over"))
    (line,) = lines
    assert "from catalog-service's tables" in line
    assert "ON DELETE CASCADE of reviews.album_id" in line


def test_an_accepted_writer_is_no_longer_refused() -> None:
    raw = dev(user_service="replicating", playlist_service="cut-over")
    raw["databases"]["acceptedCrossServiceWrites"] = {"playlist-service": ["user-service"]}
    assert order_lines(raw) == []


@pytest.mark.parametrize("writer", ["api-gateway", "playlist-service"])
def test_accepting_a_writer_that_is_not_another_workload_with_tables_is_refused(writer: str) -> None:
    raw = dev(user_service="cut-over")
    raw["databases"]["acceptedCrossServiceWrites"] = {"playlist-service": [writer]}
    (line,) = order_lines(raw)
    assert f"databases.acceptedCrossServiceWrites.playlist-service: {writer!r} is not another" in line


def _runbook(*args: str) -> Any:
    from typer.testing import CliRunner

    from ops.cli import app

    return CliRunner().invoke(app, ["migration-sql", "playlist-service", "cutover", *args])


def test_the_printed_cutover_checks_the_live_monolith_before_the_fence() -> None:
    out = _runbook().stdout
    assert out.index("== refuse while the monolith writes these tables") < out.index("== stop writes in")


def test_the_printed_cutover_skips_the_writers_it_was_told_to_accept() -> None:
    users = "ARRAY['users', 'sessions', 'user_content']"
    assert users not in _runbook().stdout
    assert users in _runbook("--accept", "user-service").stdout


def test_accepting_an_unknown_workload_in_the_runbook_is_refused() -> None:
    result = _runbook("--accept", "users")
    assert result.exit_code == 1
    assert "--accept users: not a workload with tables" in result.stderr


def test_the_catalog_lists_every_writer_before_the_workloads_it_writes_into() -> None:
    # The Kubernetes program declares the cutover Jobs in catalog order and makes each wait for
    # its writers' Jobs, which must therefore exist already.
    order = [w.name for w in catalog.WORKLOADS]
    pairs = [
        (writer, w.name)
        for w in catalog.WORKLOADS
        if w.role == "service"  # only services cut over; the monolith's own tables never move
        for writer in cross_writes.writers_into(w.name, catalog.WORKLOADS)
    ]
    assert ("user-service", "playlist-service") in pairs
    for writer, written in pairs:
        assert order.index(writer) < order.index(written), (writer, written)
