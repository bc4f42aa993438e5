"""A platform with N extra services, for measuring how render, check and diff grow with it.

The extra services are copies of ``catalog-service`` (``svc-000``, ``svc-001``, ...) without
routes or a database, added to the catalog for the duration of a measurement and to a stack's
config with catalog-service's settings. ``make bench`` times them; tests/test_scale.py counts
the program's function calls over them to prove that per-workload work stays linear.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from infra import catalog
from infra.config import FULL_KEY
from infra.program import main as program
from ops.mockrun import Run, run_offline
from ops.project import Project

TEMPLATE = "catalog-service"


def synthetic_workloads(count: int, database: bool = False) -> tuple[catalog.Workload, ...]:
    """``count`` copies of the template service, named ``svc-000`` and on; with ``database``, each
    owns a new database (no monolith tables) and reads the template's environment."""
    template = catalog.workload(TEMPLATE)
    return tuple(
        dataclasses.replace(
            template,
            name=f"svc-{i:03d}",
            endpoints=(),
            database=catalog.Database(f"svc_{i:03d}", ()) if database else None,
            env=template.env if database else ("PORT",),
            description="A synthetic service for scale measurements.",
        )
        for i in range(count)
    )


@contextlib.contextmanager
def extended_catalog(extra: tuple[catalog.Workload, ...]) -> Iterator[None]:
    """The catalog with ``extra`` appended, restored afterwards."""
    saved = catalog.WORKLOADS, dict(catalog._BY_NAME)
    catalog.WORKLOADS = (*catalog.WORKLOADS, *extra)
    catalog._BY_NAME.update({w.name: w for w in extra})
    try:
        yield
    finally:
        catalog.WORKLOADS = saved[0]
        catalog._BY_NAME.clear()
        catalog._BY_NAME.update(saved[1])


@dataclass(frozen=True)
class Synthetic:
    """A stack's config extended by ``count`` synthetic services."""

    project: Project
    stack: str
    count: int
    #: Each synthetic service owns a new database (``synthetic_workloads``).
    database: bool = False

    def config(self, **overrides: object) -> dict[str, str]:
        """The stack's config values with every synthetic service enabled (``overrides`` go into
        each synthetic service's settings)."""
        values = dict(self.project.stack_config(self.stack).values)
        platform = json.loads(values[FULL_KEY])
        settings = {**platform["services"][TEMPLATE], **overrides}
        for w in synthetic_workloads(self.count, self.database):
            platform["services"][w.name] = settings
        values[FULL_KEY] = json.dumps(platform)
        return values

    def run(self, **overrides: object) -> Run:
        """The program run offline over the extended catalog and config."""
        with extended_catalog(synthetic_workloads(self.count, self.database)):
            return run_offline(
                program,
                project=self.project.name,
                stack=self.stack,
                config=self.config(**overrides),
                secret_keys=self.project.stack_config(self.stack).secret_keys,
            )


def changed_records(run: Run) -> list[dict[str, Any]]:
    """The run's ``resources.json`` records with one label changed on every Deployment: the head
    side of a diff in which every workload changed."""
    records = copy.deepcopy([r.record() for r in run.registrations])
    for record in records:
        if record["inputs"].get("kind") == "Deployment":
            record["inputs"]["metadata"]["labels"]["changed"] = "yes"
    return records
