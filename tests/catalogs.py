"""Variants of the catalog for tests that need a service which serves a read the monolith's way.

No real service does today (every shared GET differs; see ``infra/catalog.py``), so weights,
splits and the contract gate can only be exercised against a catalog where one has been fixed:
``serving_alike`` clears the ``gap`` of some endpoints, as the catalog entry would read once the
service is fixed, for the length of one test.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from infra import catalog


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
