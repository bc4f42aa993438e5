"""Render time of each stack against the floor: the same number of plain resources, same runtime.

Run with ``make bench``. Target: prod within 1.25x of its floor; a 100-service config grows
linearly. This is a measurement, not a test: it prints, it does not assert.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pulumi

from infra import catalog
from infra.program import main as program
from ops.mockrun import run_offline
from ops.project import Project
from ops.render import run_stack

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 5


def _best(fn: Callable[[], int]) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(REPEATS):
        started = time.perf_counter()
        count = fn()
        times.append(time.perf_counter() - started)
    return min(times), count


def _floor(count: int) -> float:
    def plain_resources() -> None:
        for i in range(count):
            pulumi.CustomResource("vinylhound:bench:Plain", f"r{i}", {"value": i})

    def run() -> int:
        return len(
            run_offline(
                plain_resources, project="vinylhound", stack="floor", config={}, secret_keys=[]
            ).registrations
        )

    return _best(run)[0]


def _synthetic(services: int) -> dict[str, str]:
    raw = json.loads(Project(ROOT).stack_config("dev").values["vinylhound:platform"])
    template = raw["services"]["user-service"]
    raw["services"] = {"monolith": raw["services"]["monolith"]}
    extra = [
        catalog.Workload(
            name=f"svc-{i:03d}",
            role="service",
            image="user-service",
            port=8001,
            health_path="/health",
            env=("PORT",),
        )
        for i in range(services)
    ]
    catalog.WORKLOADS = (*catalog.WORKLOADS, *extra)
    catalog._BY_NAME.update({w.name: w for w in extra})
    for w in extra:
        raw["services"][w.name] = template
    return {"vinylhound:platform": json.dumps(raw)}


def main() -> None:
    project = Project(ROOT)
    print(f"{'stack':<12}{'resources':>10}{'render s':>10}{'floor s':>10}{'ratio':>8}")
    for stack in project.stacks():
        seconds, count = _best(lambda s=stack: len(run_stack(project, s).registrations))  # type: ignore[misc]
        floor = _floor(count)
        print(f"{stack:<12}{count:>10}{seconds:>10.3f}{floor:>10.3f}{seconds / floor:>8.2f}")
    config = _synthetic(100)
    seconds, count = _best(
        lambda: len(
            run_offline(
                program, project="vinylhound", stack="dev", config=config, secret_keys=[]
            ).registrations
        )
    )
    print(
        f"{'100 services':<12}{count:>10}{seconds:>10.3f}{_floor(count):>10.3f}"
        f"{seconds / _floor(count):>8.2f}  ({statistics.mean([seconds / count * 1000]):.2f} ms/resource)"
    )


if __name__ == "__main__":
    main()
