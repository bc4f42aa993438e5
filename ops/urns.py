"""URNs as the Pulumi engine computes them, and every URN a resource answers to through aliases.

The mock runtime's URNs are not the engine's: its monitor keeps only the parent's last type and
includes the root stack's type (``pulumi.runtime.mocks.MockMonitor.make_urn``). The engine uses
the parent's whole type chain and leaves the stack out. A rename or a move is harmless exactly
when the old URN is among the new resource's identities: its URN, the URNs its aliases resolve
to, and those its parent's identities give it (the engine multiplies a parent's aliases out to
its children: pulumi/pulumi ``step_generator.generateAliases``).
"""

from __future__ import annotations

from typing import Any

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
