"""The program's shape: one component per area, and no resource's identity lost by moving it.

Moving a resource under a component changes its URN; without an alias ``pulumi up`` on an
existing stack would delete and re-create it (a CNPG Publication with reclaim ``delete`` drops its
replication mid-flight). The identity test renders the program as it was before the areas
existed (``BEFORE_AREAS``) and the program of this tree, and asks of each old URN what the engine
asks: is it a new URN, or an alias of one (its own, or one inherited from a parent's alias, as
the engine multiplies them out: pulumi/pulumi ``step_generator.generateAliases``)?
"""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from components.options import child_opts
from ops.diff import render_tree
from ops.gitrepo import has_commit, temporary_worktree
from tests.conftest import KUBE_STACKS, PROJECT, ROOT, rendered, run_program

#: The last commit before the program was split into one component per area (everything was
#: registered at the stack root then).
BEFORE_AREAS = "c0ba3bd5db494caa43674dcf332cc2b5789a2fb2"
STACKS = PROJECT.stacks()


@pytest.fixture(scope="module")
def renders() -> dict[str, dict[str, Any]]:
    """Each stack's records, rendered by the program before the areas and by this tree's."""
    if not has_commit(ROOT, BEFORE_AREAS):
        pytest.skip(f"{BEFORE_AREAS[:12]} is not in this clone (fetch the full history)")
    with temporary_worktree(ROOT, BEFORE_AREAS) as tree:
        before = render_tree(tree, STACKS, name="before the areas")
    after = render_tree(ROOT, STACKS, name="this tree")
    return {"before": before, "after": after}


#: The root stack's type: the engine leaves it out of its children's URNs.
STACK_TYPE = "pulumi:pulumi:Stack"


def urn(stack: str, project: str, parent: str, type_: str, name: str) -> str:
    """The URN the engine gives a resource: its parent's whole type chain (nothing under the
    stack), then its own type and name (pulumi/pulumi ``resource.NewURN`` as the resource monitor
    calls it). The mock monitor's URNs differ: they keep only the parent's last type and include
    the stack's, so they are recomputed here."""
    chain = f"{parent.split('::')[2]}$" if parent else ""
    return f"urn:pulumi:{stack}::{project}::{chain}{type_}::{name}"


class Engine:
    """The engine's view of one render record: real URNs and every URN each resource answers to."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.by_mock_urn = {r["urn"]: r for r in records}
        self.records = records
        self._urns: dict[str, str] = {}
        self._identities: dict[str, set[str]] = {}

    def _place(self, record: dict[str, Any]) -> tuple[str, str]:
        stack, project = record["urn"].split("::")[:2]
        return stack.removeprefix("urn:pulumi:"), project

    def _parent(self, mock_urn: str) -> dict[str, Any] | None:
        parent = self.by_mock_urn.get(mock_urn)
        return None if parent is None or parent["type"] == STACK_TYPE else parent

    def urn_of(self, record: dict[str, Any]) -> str:
        """The resource's URN as the engine computes it."""
        if record["urn"] not in self._urns:
            parent = self._parent(record["parent"])
            self._urns[record["urn"]] = urn(
                *self._place(record), self.urn_of(parent) if parent else "", record["type"], record["name"]
            )
        return self._urns[record["urn"]]

    def identities_of(self, record: dict[str, Any]) -> set[str]:
        """Its URN, the URNs its aliases resolve to, and those its parent's identities give it."""
        if record["urn"] in self._identities:
            return self._identities[record["urn"]]
        place = self._place(record)
        found = {self.urn_of(record)}
        parent = self._parent(record["parent"])
        for alias in record.get("aliases", []):
            if "urn" in alias:
                found.add(alias["urn"])
                continue
            old_parent = (
                None if alias.get("noParent") else self._parent(alias.get("parentUrn") or record["parent"])
            )
            found.add(
                urn(
                    alias.get("stack") or place[0],
                    alias.get("project") or place[1],
                    self.urn_of(old_parent) if old_parent else "",
                    alias.get("type") or record["type"],
                    alias.get("name") or record["name"],
                )
            )
        if parent is not None:
            for old_parent_urn in self.identities_of(parent) - {self.urn_of(parent)}:
                found.add(urn(*place, old_parent_urn, record["type"], record["name"]))
        self._identities[record["urn"]] = found
        return found

    def all_identities(self) -> set[str]:
        """Every URN some resource of the record answers to."""
        return {i for r in self.records if r["type"] != STACK_TYPE for i in self.identities_of(r)}


@pytest.mark.parametrize("stack", STACKS)
def test_every_resource_of_the_program_before_the_areas_keeps_its_identity(
    renders: dict[str, dict[str, Any]], stack: str
) -> None:
    before, after = renders["before"][stack], renders["after"][stack]
    assert before["error"] is None and after["error"] is None
    old_engine = Engine(before["records"])
    old = {old_engine.urn_of(r) for r in before["records"]}
    assert old, "the old program rendered nothing"
    assert sorted(old - Engine(after["records"]).all_identities()) == []


@pytest.mark.parametrize("stack", KUBE_STACKS)
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
