"""Variants of the catalog and of the stacks' config, for tests that need a service which serves a
read the monolith's way, or a stack at a phase no stack file can be at today.

No real service does today (every shared GET differs; see ``infra/catalog.py``), so weights,
splits and the contract gate can only be exercised against a catalog where one has been fixed:
``serving_alike`` clears the ``gap`` of some endpoints, as the catalog entry would read once the
service is fixed, for the length of one test.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any

import pytest
import yaml

from infra import catalog
from infra.program import main as program
from ops.mockrun import Run, run_offline
from tests.conftest import PROJECT


def serving_alike(monkeypatch: pytest.MonkeyPatch, service: str, *keys: str) -> None:
    """Patch the catalog so that ``service`` serves ``keys`` (``"GET /api/v1/albums"``) alike."""
    current = catalog.workload(service)
    missing = set(keys) - {e.key for e in current.endpoints}
    assert not missing, f"{service} registers none of {sorted(missing)}"
    fixed = replace(
        current, endpoints=tuple(replace(e, gap=None) if e.key in keys else e for e in current.endpoints)
    )
    workloads = tuple(fixed if w.name == service else w for w in catalog.WORKLOADS)
    monkeypatch.setattr(catalog, "WORKLOADS", workloads)
    monkeypatch.setattr(catalog, "_BY_NAME", {w.name: w for w in workloads})


def cut_over(raw: dict[str, Any], service: str, phase: str = "cut-over") -> dict[str, Any]:
    """``raw`` (a stack's platform config) with ``service`` at ``phase`` and what a cut-over needs
    today: every monolith endpoint that writes the service's tables and that it does not serve alike
    retired, and the monolith's startup writes declared off. Returns ``raw``, changed in place."""
    w = catalog.workload(service)
    assert w.database is not None
    tables = set(w.database.tables)
    retired = raw.setdefault("traffic", {}).setdefault("retiredEndpoints", {})
    for e in catalog.monolith().endpoints:
        own = w.endpoint(e.key)
        if set(e.writes) & tables and (own is None or own.gap is not None):
            retired[e.key] = f"{service} has no twin of it (test)"
    raw["services"]["monolith"]["startupWritesDisabled"] = "the image is built without bootstrap.go (test)"
    raw.setdefault("databases", {}).setdefault("migration", {})[service] = phase
    return raw


def stack_config(stack: str) -> dict[str, Any]:
    """A stack file's platform config, as a fresh dict to change."""
    text = (PROJECT.root / "stacks" / f"Pulumi.{stack}.yaml").read_text()
    raw: dict[str, Any] = copy.deepcopy(yaml.safe_load(text)["config"]["vinylhound:platform"])
    return raw


def run_config(stack: str, raw: dict[str, Any]) -> Run:
    """The program run offline as ``stack`` with ``raw`` as its platform config."""
    return run_offline(
        program,
        project="vinylhound",
        stack=stack,
        config={"vinylhound:platform": json.dumps(raw)},
        secret_keys=[],
    )
