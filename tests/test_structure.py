"""The program's shape: one component per area, and no resource's identity lost by moving it.

Moving a resource under a component changes its URN; without an alias ``pulumi up`` on an
existing stack would delete and re-create it (a CNPG Publication with reclaim ``delete`` drops its
replication mid-flight). The identity test renders the program as it was before the areas
existed (``BEFORE_AREAS``) and the program of this tree, and asks of each old URN what the engine
asks (``ops.urns``): is it a new URN, or an alias of one?
"""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from components.options import child_opts
from infra import catalog
from ops.diff import render_tree
from ops.gitrepo import git, has_commit, temporary_worktree
from ops.scale import Synthetic, synthetic_workloads
from ops.urns import STACK_TYPE, Engine
from tests.conftest import PROJECT, ROOT, rendered, run_program

# Slow lane: renders the program before the areas and this one, for every stack.
pytestmark = pytest.mark.slow

#: The last commit before the program was split into one component per area (everything was
#: registered at the stack root then).
BEFORE_AREAS = "c0ba3bd5db494caa43674dcf332cc2b5789a2fb2"
STACKS = PROJECT.stacks()


#: Stack settings added after ``BEFORE_AREAS``, which that program refuses as unknown keys: where a
#: setting sits (``*`` for every service) and its key. They change what the routes say, not which
#: resources exist.
ADDED_SINCE: tuple[tuple[str, ...], ...] = (
    ("traffic", "retiredEndpoints"),
    ("traffic", "contractCheckImage"),
    ("traffic", "registry", "cliImage"),
    ("services", "*", "cutover", "endpoints"),
    ("services", "*", "startupWritesDisabled"),
)


def _strip(node: Any, path: tuple[str, ...]) -> None:
    if not isinstance(node, dict) or not path:
        return
    head, *rest = path
    if not rest:
        node.pop(head, None)
        return
    for key in node if head == "*" else [head]:
        _strip(node.get(key), tuple(rest))


def as_before_the_areas(tree: Path, added_since: tuple[tuple[str, ...], ...] = ADDED_SINCE) -> None:
    """This tree's stack files, without ``added_since``, into the old tree: both programs render
    the same stacks, so what the comparison finds is what the restructure changed."""
    for stack in STACKS:
        document = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())
        raw = document["config"]["vinylhound:platform"]
        for path in added_since:
            _strip(raw, path)
        (tree / "stacks" / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document))


@pytest.fixture(scope="module")
def renders() -> dict[str, dict[str, Any]]:
    """Each stack's records, rendered by the program before the areas and by this tree's, from
    this tree's stack files."""
    if not has_commit(ROOT, BEFORE_AREAS):
        pytest.skip(f"{BEFORE_AREAS[:12]} is not in this clone (fetch the full history)")
    with temporary_worktree(ROOT, BEFORE_AREAS) as tree:
        as_before_the_areas(tree)
        before = render_tree(tree, STACKS, name="before the areas")
    after = render_tree(ROOT, STACKS, name="this tree")
    return {"before": before, "after": after}


def lost(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The URNs of ``before``'s resources that no resource of ``after`` answers to."""
    assert before["error"] is None and after["error"] is None
    old_engine = Engine(before["records"])
    old = {old_engine.urn_of(r) for r in before["records"]}
    assert old, "the old program rendered nothing"
    return sorted(old - Engine(after["records"]).all_identities())


@pytest.mark.parametrize("stack", STACKS)
def test_every_resource_of_the_program_before_the_areas_keeps_its_identity(
    renders: dict[str, dict[str, Any]], stack: str
) -> None:
    assert lost(renders["before"][stack], renders["after"][stack]) == []


#: The last commit before the children were named after their components (``f"{name}-{role}"``).
BEFORE_RENAMES = "65cfaf308130dc44847fe904afe37c2027832034"
#: Stack settings added after ``BEFORE_RENAMES`` (as ``ADDED_SINCE``).
ADDED_SINCE_RENAMES: tuple[tuple[str, ...], ...] = (("traffic", "registry", "cliImage"),)


@pytest.fixture(scope="module")
def before_renames() -> dict[str, Any]:
    """Each stack's records, rendered by the program before the renames from this tree's stack files."""
    if not has_commit(ROOT, BEFORE_RENAMES):
        pytest.skip(f"{BEFORE_RENAMES[:12]} is not in this clone (fetch the full history)")
    with temporary_worktree(ROOT, BEFORE_RENAMES) as tree:
        as_before_the_areas(tree, ADDED_SINCE_RENAMES)
        return render_tree(tree, STACKS, name="before the renames")


@pytest.mark.parametrize("stack", STACKS)
def test_every_resource_before_the_renames_keeps_its_identity(
    before_renames: dict[str, Any], renders: dict[str, dict[str, Any]], stack: str
) -> None:
    assert lost(before_renames[stack], renders["after"][stack]) == []


@pytest.mark.parametrize("commit", [BEFORE_AREAS, BEFORE_RENAMES])
def test_the_workloads_that_keep_their_old_urns_are_the_catalog_of_then(commit: str, tmp_path: Path) -> None:
    if not has_commit(ROOT, commit):
        pytest.skip(f"{commit[:12]} is not in this clone (fetch the full history)")
    (tmp_path / "catalog.py").write_text(git(ROOT, "show", f"{commit}:infra/catalog.py"))
    then = {w.name for w in runpy.run_path(str(tmp_path / "catalog.py"))["WORKLOADS"]}
    assert {n for n in {*then, *catalog.names()} if catalog.predates_components(n)} == then


def _own_aliases(registrations: list[Any], workload: str) -> list[dict[str, Any]]:
    """The aliases this program gave the resources named after ``workload`` (not pulumi-kubernetes'
    aliases of older API versions of a type, which name a type only; empty fields mean "as now")."""
    return [
        alias
        for r in registrations
        if workload in r.name
        for alias in r.aliases
        if {field for field, value in alias.items() if value} != {"type"}
    ]


def test_a_workload_added_since_the_components_carries_no_alias_of_an_older_urn() -> None:
    (added,) = synthetic_workloads(1)
    run = Synthetic(PROJECT, "dev", 1).run()
    assert [r for r in run.registrations if added.name in r.name]
    assert _own_aliases(run.registrations, added.name) == []
    assert _own_aliases(run.registrations, "catalog-service")


def test_a_database_added_since_the_components_carries_no_alias_of_an_older_urn() -> None:
    (added,) = synthetic_workloads(1, database=True)
    run = Synthetic(PROJECT, "dev", 1, database=True).run()
    assert [r for r in run.registrations if r.name == f"{added.name}-db"]
    assert _own_aliases(run.registrations, added.name) == []


#: Components a workload (or a platform container) gets in an area keep its name: their own
#: children are named after them, so renaming them would rename every child too.
PER_WORKLOAD = {
    "vinylhound:kubernetes:Microservice",
    "vinylhound:kubernetes:ServiceDatabase",
    "vinylhound:databases:ServiceMigration",
    "vinylhound:mesh:ServiceTraffic",
    "vinylhound:docker:ContainerService",
    "vinylhound:docker:PostgresDatabase",
}


@pytest.mark.parametrize("stack", STACKS)
def test_every_resource_an_area_registers_is_named_after_the_area(stack: str) -> None:
    run = rendered(stack)
    by_urn = {r.urn: r for r in run.registrations}
    misnamed = [
        f"{parent.name}/{r.name}"
        for r in run.registrations
        if (parent := by_urn.get(r.parent)) is not None
        and parent.type.startswith("vinylhound:")
        and r.type not in PER_WORKLOAD
        and not r.name.startswith(f"{parent.name}-")
    ]
    assert misnamed == []


@pytest.mark.parametrize("stack", STACKS)
def test_every_component_type_is_vinylhound_area_class(stack: str) -> None:
    types = {r.type for r in rendered(stack).registrations if not r.custom and r.type != STACK_TYPE}
    assert types and [t for t in types if not re.fullmatch(r"vinylhound:[a-z]+:[A-Z][A-Za-z]+", t)] == []


@pytest.mark.parametrize("stack", STACKS)
def test_the_stack_root_holds_components_only(stack: str) -> None:
    at_root = [r for r in rendered(stack).registrations if r.parent.split("::")[2] == STACK_TYPE]
    assert at_root and [r.name for r in at_root if r.custom] == []
    assert all(r.type.startswith("vinylhound:") for r in at_root)


def test_a_child_moved_from_the_stack_root_records_its_old_urn_as_an_alias() -> None:
    def program() -> None:
        area = pulumi.ComponentResource("vinylhound:test:Area", "area")
        pulumi.CustomResource("test:index:Thing", "thing", {}, opts=child_opts(area, moved_from_root=True))

    (thing,) = [r for r in run_program(program) if r.name == "thing"]
    assert thing.aliases == ({"noParent": True},)


def test_a_child_waits_for_what_child_opts_names() -> None:
    def program() -> None:
        area = pulumi.ComponentResource("vinylhound:test:Area", "area")
        first = pulumi.CustomResource("test:index:Thing", "first", {}, opts=child_opts(area))
        pulumi.CustomResource("test:index:Thing", "second", {}, opts=child_opts(area, [first]))

    regs = {r.name: r for r in run_program(program)}
    assert regs["second"].dependencies == (regs["first"].urn,)
    assert regs["second"].parent == regs["area"].urn
