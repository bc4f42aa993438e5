"""The catalog's endpoint facts agree with the endpoint inventory they were read from
(shared/reference/vinylhound-endpoints.yaml, beside the repository in CI and in every worktree):
a fact changed in one place and not the other fails here, not in production."""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra import catalog
from tests.conftest import ROOT

INVENTORY = "shared/reference/vinylhound-endpoints.yaml"


@cache
def inventory() -> dict[str, Any]:
    for parent in ROOT.parents:
        path = parent / INVENTORY
        if path.is_file():
            loaded: dict[str, Any] = yaml.safe_load(Path(path).read_text())
            return loaded
    # CI always has shared/ beside the clone: there a missing inventory is a failure, not a skip
    # that would let the catalog drift from the facts unnoticed.
    if os.environ.get("CI"):
        pytest.fail(f"{INVENTORY} is not beside the repository (CI must provide it)")
    pytest.skip(f"{INVENTORY} is not beside the repository")


def _tables(tables: list[str]) -> tuple[str, ...]:
    # "playlist_songs (FK cascade)", "artists (only when store_results)" -> the table name.
    return tuple(re.sub(r" \(.*", "", t) for t in tables)


def facts(component: str) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(method, path, auth, tables written) of each API endpoint the inventory lists."""
    return [
        (e["method"], e["path"], "bearer" if e["auth"] != "none" else "public", _tables(e["tables_written"]))
        for e in inventory()["endpoints"]
        if e["component"] == component and e["path"].startswith("/api/")
    ]


@pytest.mark.parametrize(
    "component", ["monolith", "user-service", "catalog-service", "rating-service", "playlist-service"]
)
def test_each_binarys_endpoints_are_the_inventorys(component: str) -> None:
    w = catalog.workload(component)
    assert [(e.method, e.path, e.auth, e.writes) for e in w.endpoints] == facts(component)


def test_the_gateway_table_is_the_inventorys_in_its_order() -> None:
    routes = inventory()["gateway_routes"]["routes"]
    theirs = []
    for r in routes:
        if r["match"].startswith("prefix "):
            methods = None if r["methods"] == "any" else tuple(r["methods"])
            theirs.append((r["match"].removeprefix("prefix "), methods, r["target"]))
    ours = [(g.prefix, g.methods, g.target) for g in catalog.workload("api-gateway").gateway_table]
    assert ours == theirs


def test_the_front_ends_calls_are_the_inventorys() -> None:
    theirs = {(c["method"], c["path"].split("?")[0], c["used_by_ui"]) for c in inventory()["frontend_calls"]}
    ours = set()
    for call in catalog.workload("web-frontend").api_calls:
        method, path = call.endpoint.split(" ", 1)
        ours.add((method, path, call.used_by_ui))
    assert ours == theirs
    assert len(catalog.workload("web-frontend").api_calls) == 35


def test_startup_writes_are_the_inventorys() -> None:
    theirs = {
        (w["step"], tuple(w["tables"]))
        for entry in inventory()["startup_writes"]
        if entry["component"] in catalog.names()
        for w in entry["writes"]
    }
    ours = {(s.step, s.tables) for w in catalog.WORKLOADS for s in w.startup_writes}
    assert ours == theirs
