"""Schema validation in a process of its own judges as validation in this one, batch by batch."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ops import check
from ops.analyzer import PolicyPackProcess
from ops.check import check_stacks
from ops.cli import app
from ops.validation import ValidationError, ValidationProcess, validate
from tests.conftest import PROJECT
from tests.test_check import _project_with
from tests.test_verdicts import CONFIG, RULE

CLUSTER: dict[str, Any] = {
    "apiVersion": "postgresql.cnpg.io/v1",
    "kind": "Cluster",
    "metadata": {"name": "db"},
}


def _typo() -> dict[str, Any]:
    typo = copy.deepcopy(RULE)
    typo["spec"]["trafficPolicy"]["outlierDetecton"] = {}
    return typo


def _bad_config() -> dict[str, Any]:
    bad = copy.deepcopy(CONFIG)
    bad["data"]["LOG_LEVEL"] = 3
    return bad


def test_each_batch_gets_the_verdicts_validation_here_gives_in_its_order() -> None:
    batches = [[RULE, _typo(), CLUSTER], [], [_bad_config(), CONFIG]]
    with ValidationProcess() as process:
        pending = [process.submit(batch) for batch in batches]
        apart = [results() for results in pending]
    assert apart == [validate(batch) for batch in batches]
    assert [r.status for r in apart[0] + apart[2]] == ["ok", "invalid", "unchecked", "invalid", "ok"]


def test_a_failing_process_is_reported_with_its_last_words() -> None:
    with ValidationProcess() as process:
        pending = process.submit(["not an object"])  # type: ignore[list-item]
        with pytest.raises(ValidationError, match=r"failed \(exit 1\): AttributeError: 'str' object"):
            pending()


def test_stacks_validated_by_the_process_report_what_validation_here_reports(
    policy_pack: PolicyPackProcess,
) -> None:
    with ValidationProcess() as process:
        apart = check_stacks(PROJECT, ["prod"], policy_pack, validator=process)
    (here,) = check_stacks(PROJECT, ["prod"], policy_pack)
    assert [(r.schemas, r.diagnostics, r.errors) for r in apart] == [
        (here.schemas, here.diagnostics, here.errors)
    ]


def test_a_first_check_whose_validation_process_fails_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project_with(tmp_path, "local", lambda config: None)
    monkeypatch.chdir(project.root)
    broken = functools.partial(ValidationProcess, python=str(tmp_path / "no-python"))
    monkeypatch.setattr(check, "ValidationProcess", broken)
    result = CliRunner().invoke(app, ["check", "local"])
    assert result.exit_code == 1
    missing = f"[Errno 2] No such file or directory: '{tmp_path}/no-python'"
    assert result.output.splitlines() == [f"schema validation process did not start: {missing}"]
