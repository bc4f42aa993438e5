"""Render, check and diff stay linear in the number of workloads: counted, not timed.

The program, the stack rules and the diff run over the dev stack plus 3, 6 and 9 synthetic
services (``ops.scale``) under ``cProfile``, which counts every call of every function. The counts
are equally spaced in the number of services, so a function called a fixed number of times per
service has a second difference of exactly zero; one called for every pair of services (a
per-workload loop over all workloads) does not. Timing would be noisy on a shared machine;
counts are exact.
"""

from __future__ import annotations

import cProfile
import functools
import pstats
from collections.abc import Callable
from typing import Any

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra.config.views import VIEWS
from infra.targets.kubernetes import traffic  # noqa: F401 (registers its views)
from ops.diff import compare
from ops.mockrun import Run
from ops.scale import Synthetic, changed_records
from policies.rules import POLICIES
from tests.conftest import PROJECT, ROOT

# Slow lane: renders, checks and diffs the platform at several sizes under a call counter.
pytestmark = pytest.mark.slow

COUNTS = (3, 6, 9)
STACK = "dev"  # the api-gateway mode: the mesh routes inside the platform too
OWN_CODE = tuple(str(ROOT / folder) for folder in ("infra", "components", "ops", "policies"))

Function = tuple[str, int, str]


def _calls(work: Callable[[], Any]) -> dict[Function, int]:
    """How often each function of this repository ran during ``work()``."""
    profile = cProfile.Profile()
    profile.runcall(work)
    stats: dict[Function, tuple[Any, ...]] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    return {fn: row[1] for fn, row in stats.items() if fn[0].startswith(OWN_CODE)}


def _policy_resources(run: Run) -> list[PolicyResource]:
    """The run's resources as the pack's stack rules receive them."""
    opts = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
    return [
        PolicyResource(r.type, r.inputs, r.urn, r.name, opts, None, None, [], {}) for r in run.registrations
    ]


def _defaults(policy: StackValidationPolicy) -> dict[str, Any]:
    schema = policy.config_schema.properties if policy.config_schema else {}
    return {k: v.get("default") for k, v in schema.items()}


def _stack_rules(resources: list[PolicyResource]) -> None:
    """Every stack rule of the pack, as the analyzer calls it (its knobs' defaults)."""
    for policy in POLICIES:
        if isinstance(policy, StackValidationPolicy):
            policy.validate(StackValidationArgs(resources, _defaults(policy)), lambda *_: None)


@functools.cache
def _measured(count: int) -> dict[str, dict[Function, int]]:
    synthetic = Synthetic(PROJECT, STACK, count)
    runs: list[Run] = []
    render = _calls(lambda: runs.append(synthetic.run()))
    resources = _policy_resources(runs[0])
    records, changed = [r.record() for r in runs[0].registrations], changed_records(runs[0])
    return {
        "render": render,
        "check": _calls(lambda: _stack_rules(resources)),
        "diff": _calls(lambda: compare(STACK, records, changed)),
    }


def _superlinear(step: str) -> dict[str, tuple[int, ...]]:
    """Functions whose calls are not a linear function of the number of services."""
    few, some, many = (_measured(n)[step] for n in COUNTS)
    return {
        f"{fn[0].removeprefix(str(ROOT) + '/')}:{fn[1]}({fn[2]})": (few.get(fn, 0), some.get(fn, 0), calls)
        for fn, calls in many.items()
        if calls - 2 * some.get(fn, 0) + few.get(fn, 0) != 0
    }


@pytest.mark.parametrize("step", ["render", "check", "diff"])
def test_no_function_is_called_more_than_linearly_in_the_number_of_services(step: str) -> None:
    assert _superlinear(step) == {}


def test_each_derived_config_view_is_computed_a_fixed_number_of_times_whatever_the_services() -> None:
    few, many = _measured(COUNTS[0])["render"], _measured(COUNTS[-1])["render"]
    views = [(v.__code__.co_filename, v.__code__.co_firstlineno, v.__name__) for v in VIEWS]
    assert views and {v: few.get(v, 0) for v in views} == {v: many.get(v, 0) for v in views}
