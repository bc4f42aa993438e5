"""A sixth service is one catalog entry plus stack config: nothing else in the project changes.

The test copies the project, adds a ``wishlist-service`` with a NEW database (no monolith tables)
to ``infra/catalog.py`` and to every stack file, and renders every stack of the copy with the
copy's own code (``ops.diff.render_tree``, as ``vinylhound diff`` does).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from infra import catalog
from infra.catalog import Database, Endpoint
from infra.config import ConfigError, parse_platform_config
from ops.diff import check_verdict, render_tree
from tests.conftest import PROJECT, rendered
from tests.gitrepos import edit, git, project_copy

# Slow lane: copies the project and renders every stack with its own code.
pytestmark = pytest.mark.slow

NAME = "wishlist-service"
ENTRY = """    Workload(
        name="wishlist-service",
        role="service",
        image="wishlist-service",
        port=8005,
        health_path="/health",
        env=(*_DB_ENV, "PORT"),
        endpoints=(_ep("GET /api/v1/wishlists", "bearer"), _ep("POST /api/v1/wishlists", "bearer")),
        database=Database(name="vinylhound_wishlists", tables=()),
        description="Wishlists: a new service with a new database.",
    ),
    Workload(
        name="api-gateway","""
#: Per stack, what its config says of the new service (prod pins digests and autoscales).
CONFIG = {
    "prod": """      wishlist-service:
        image:
          tag: "0.1.0"
          digest: sha256:0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9
        autoscaling: {minReplicas: 3, maxReplicas: 6}
        cutover: {weight: 100}
""",
}
DEFAULT_CONFIG = """      wishlist-service:
        image: {tag: "0.1.0"}
        cutover: {weight: 100}
"""
STACKS = PROJECT.stacks()


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project with the new service added the documented way, uncommitted."""
    root = project_copy(tmp_path_factory.mktemp("new-service"))
    edit(root / "infra" / "catalog.py", '    Workload(\n        name="api-gateway",', ENTRY)
    for stack in STACKS:
        block = CONFIG.get(stack, DEFAULT_CONFIG)
        edit(
            root / "stacks" / f"Pulumi.{stack}.yaml", "      web-frontend:\n", block + "      web-frontend:\n"
        )
    return root


@pytest.fixture(scope="module")
def records(copy: Path) -> dict[str, list[dict[str, Any]]]:
    """Every stack of the copy, rendered by the copy's code; a stack that fails fails the test."""
    stacks = render_tree(copy, STACKS)
    errors = {s: r["error"] for s, r in stacks.items() if r["error"]}
    assert not errors
    return {s: r["records"] for s, r in stacks.items()}


def _named(records: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found: dict[str, Any]
    (found,) = [
        r["inputs"]
        for r in records
        if r["inputs"].get("kind") == kind and r["inputs"].get("metadata", {}).get("name") == name
    ]
    return found


def _env(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e for e in container["env"]}


def test_adding_a_service_touches_only_the_catalog_and_the_stack_files(copy: Path) -> None:
    changed = {line[3:] for line in git(copy, "status", "--porcelain").splitlines()}
    assert changed == {"infra/catalog.py", *(f"stacks/Pulumi.{s}.yaml" for s in STACKS)}


@pytest.mark.parametrize("stack", [s for s in STACKS if s != "local"])
def test_every_kubernetes_stack_deploys_the_new_service(
    records: dict[str, list[dict[str, Any]]], stack: str
) -> None:
    deployment = _named(records[stack], "Deployment", NAME)
    assert _env(deployment)["DB_HOST"]["value"].startswith(f"{NAME}-db-rw.")


def test_the_gateway_gets_the_new_services_url_without_an_edit(
    records: dict[str, list[dict[str, Any]]],
) -> None:
    gateway = _named(records["dev"], "Deployment", "api-gateway")
    assert (
        _env(gateway)["WISHLIST_SERVICE_URL"]["value"]
        == "http://wishlist-service.vinylhound.svc.cluster.local:8005"
    )


def test_the_gateway_may_call_the_new_service(records: dict[str, list[dict[str, Any]]]) -> None:
    policy = _named(records["dev"], "NetworkPolicy", NAME)
    peers = [p for rule in policy["spec"]["ingress"] for p in rule["from"]]
    assert {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "api-gateway"}}} in peers


def test_a_new_database_gets_a_cluster_and_no_migration(records: dict[str, list[dict[str, Any]]]) -> None:
    dev = records["dev"]
    assert (
        _named(dev, "Cluster", f"{NAME}-db")["spec"]["bootstrap"]["initdb"]["database"]
        == "vinylhound_wishlists"
    )
    migration_kinds = {"Job", "Publication", "Subscription", "ConfigMap"}
    moved = [
        r["inputs"]["metadata"]["name"]
        for r in dev
        if r["inputs"].get("kind") in migration_kinds
        and r["inputs"]["metadata"]["name"].startswith(f"{NAME}-db")
    ]
    assert moved == []


def test_writes_to_a_new_database_go_to_the_service_from_day_one(
    records: dict[str, list[dict[str, Any]]],
) -> None:
    hosts = {
        d["destination"]["host"]
        for r in records["dev"]
        if r["inputs"].get("kind") == "VirtualService"
        for route in r["inputs"]["spec"]["http"]
        if route.get("name") == "post-wishlists"
        for d in route["route"]
    }
    assert hosts == {"wishlist-service.vinylhound.svc.cluster.local"}


def test_the_new_service_leaves_every_local_port_where_it_was(
    records: dict[str, list[dict[str, Any]]],
) -> None:
    def ports(recs: list[dict[str, Any]]) -> dict[str, list[int]]:
        return {
            r["inputs"]["name"]: sorted(int(p["external"]) for p in r["inputs"].get("ports") or [])
            for r in recs
            if r["type"] == "docker:index/container:Container"
        }

    before = ports([r.record() for r in rendered("local").registrations])
    after = ports(records["local"])
    assert {name: after[name] for name in before} == before
    assert after[f"vinylhound-{NAME}"] and after[f"vinylhound-{NAME}-db"]


def test_the_policy_pack_passes_the_new_service(copy: Path, records: dict[str, list[dict[str, Any]]]) -> None:
    assert check_verdict(copy, "dev") == "passed"


@pytest.fixture
def with_new_service(monkeypatch: pytest.MonkeyPatch) -> catalog.Workload:
    """The catalog with the new service added in process (for config rules, which need no render)."""
    new = dataclasses.replace(
        catalog.workload("playlist-service"),
        name=NAME,
        image=NAME,
        endpoints=(
            Endpoint("GET", "/api/v1/wishlists", "bearer"),
            Endpoint("POST", "/api/v1/wishlists", "bearer"),
        ),
        database=Database(name="vinylhound_wishlists", tables=()),
        consumes=(),
    )
    monkeypatch.setattr(catalog, "WORKLOADS", (*catalog.WORKLOADS, new))
    monkeypatch.setitem(catalog._BY_NAME, NAME, new)
    return new


def _dev(**wishlist: Any) -> dict[str, Any]:
    return {
        "environment": "dev",
        "domain": "dev.vinylhound.app",
        "imageRegistry": "ghcr.io/vinylhound",
        "services": {"monolith": {"image": {"tag": "1.0.0"}}, NAME: {"image": {"tag": "0.1.0"}, **wishlist}},
    }


@pytest.mark.usefixtures("with_new_service")
def test_a_new_database_takes_full_weight_without_a_migration_phase() -> None:
    cfg = parse_platform_config(_dev(cutover={"weight": 100}), "stacks/Pulumi.dev.yaml")
    assert cfg.services[NAME].cutover.weight == 100


@pytest.mark.usefixtures("with_new_service")
def test_a_migration_phase_for_a_new_database_is_refused_in_one_line() -> None:
    raw = _dev()
    raw["databases"] = {"migration": {NAME: "replicating"}}
    with pytest.raises(ConfigError) as caught:
        parse_platform_config(raw, "stacks/Pulumi.dev.yaml")
    assert caught.value.lines() == [
        "stacks/Pulumi.dev.yaml: vinylhound:platform.databases.migration.wishlist-service: wishlist-service "
        "owns a new database (no monolith tables): nothing moves, so it has no migration phase; remove it"
    ]
