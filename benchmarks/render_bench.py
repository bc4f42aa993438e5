"""Render time of each stack against its floor, and a 100-service config.

The floor of a stack is the same resources (type, name, inputs) registered as plain, flat
``CustomResource``s under the same mock runtime: what the Pulumi SDK itself costs. The ratio is
what the program adds on top (config validation, spec building, components). Target: prod within
1.25x of its floor; a 100-service config grows linearly.

Run with ``make bench``. A measurement, not a test: it prints, it asserts nothing.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi

from infra import catalog
from infra.program import main as program
from ops.mockrun import Registration, run_offline
from ops.project import Project
from ops.render import run_stack

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 7


def _best(fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def _floor(registrations: list[Registration]) -> float:
    def plain_resources() -> None:
        for r in registrations:
            pulumi.CustomResource(r.type, r.name, dict(r.inputs))

    return _best(
        lambda: run_offline(plain_resources, project="vinylhound", stack="floor", config={}, secret_keys=[])
    )


def _synthetic_config(project: Project, services: int) -> tuple[dict[str, str], tuple[catalog.Workload, ...]]:
    """The dev stack plus ``services`` copies of user-service, as catalog entries and config."""
    raw = json.loads(project.stack_config("dev").values["vinylhound:platform"])
    template = catalog.workload("catalog-service")
    extra = tuple(
        dataclasses.replace(template, name=f"svc-{i:03d}", routes=(), database=None, env=("PORT",))
        for i in range(services)
    )
    for w in extra:
        raw["services"][w.name] = raw["services"]["catalog-service"]
    return {"vinylhound:platform": json.dumps(raw)}, extra


def _row(label: str, count: int, seconds: float, floor: float) -> str:
    return f"{label:<14}{count:>10}{seconds * 1e3:>11.1f}{floor * 1e3:>10.1f}{seconds / floor:>8.2f}"


def main() -> None:
    project = Project(ROOT)
    print(f"{'stack':<14}{'resources':>10}{'render ms':>11}{'floor ms':>10}{'ratio':>8}")
    for stack in project.stacks():
        run = run_stack(project, stack)
        seconds = _best(lambda s=stack: run_stack(project, s))  # type: ignore[misc]
        floor = _floor(run.registrations)
        print(_row(stack, len(run.registrations), seconds, floor))

    config, extra = _synthetic_config(project, 100)
    # The synthetic services exist only for this measurement: extend the catalog, then restore it.
    saved = catalog.WORKLOADS, dict(catalog._BY_NAME)
    catalog.WORKLOADS = (*catalog.WORKLOADS, *extra)
    catalog._BY_NAME.update({w.name: w for w in extra})
    try:
        run = run_offline(program, project="vinylhound", stack="dev", config=config, secret_keys=[])
        seconds = _best(
            lambda: run_offline(program, project="vinylhound", stack="dev", config=config, secret_keys=[])
        )
    finally:
        catalog.WORKLOADS, catalog._BY_NAME = saved[0], saved[1]
    floor = _floor(run.registrations)
    count = len(run.registrations)
    print(_row("+100 services", count, seconds, floor) + f"  ({seconds / count * 1e3:.2f} ms per resource)")


if __name__ == "__main__":
    main()
