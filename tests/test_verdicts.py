"""Objects found valid are remembered between ``check`` runs, and only while that is true."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pydantic
import pytest
from typer.testing import CliRunner

from ops import validation, verdicts
from ops.check import CACHE_FILE
from ops.cli import app
from ops.schemas import SchemaResult
from ops.verdicts import ResultCache
from tests.conftest import ROOT
from tests.test_check import _project_with

RULE: dict[str, Any] = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "DestinationRule",
    "metadata": {"name": "user-service", "namespace": "vinylhound"},
    "spec": {"host": "user-service", "trafficPolicy": {"outlierDetection": {"consecutive5xxErrors": 5}}},
}
CONFIG: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "settings", "namespace": "vinylhound"},
    "data": {"LOG_LEVEL": "info"},
}
SECRET: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "db", "namespace": "vinylhound"},
    "stringData": {"password": "[secret]"},
}


#: The validation ``check`` runs on the objects without a verdict (taken before any test patches it).
VALIDATE = validation.validate


class Recording:
    """The real validation, recording what it was given."""

    def __init__(self) -> None:
        self.given: list[str] = []

    def __call__(self, objects: list[dict[str, Any]]) -> list[SchemaResult]:
        self.given += [obj["kind"] for obj in objects]
        return VALIDATE(objects)


def _run(path: Path, objects: list[dict[str, Any]]) -> tuple[list[SchemaResult], list[str]]:
    """One ``check`` run's validation with the verdicts kept in ``path``: results, kinds validated."""
    cache, recording = ResultCache(path), Recording()
    results = cache.validate(copy.deepcopy(objects), recording)
    cache.save()
    return results, recording.given


def test_objects_found_valid_are_not_validated_again_by_the_next_run(tmp_path: Path) -> None:
    first, validated = _run(tmp_path / "valid.json", [RULE, CONFIG])
    second, again = _run(tmp_path / "valid.json", [RULE, CONFIG])
    assert validated == ["DestinationRule", "ConfigMap"] and again == []
    assert (
        second
        == first
        == [
            SchemaResult("DestinationRule", "vinylhound/user-service", "ok"),
            SchemaResult("ConfigMap", "vinylhound/settings", "ok"),
        ]
    )


def test_an_edited_object_is_validated_again_and_its_unknown_field_refused(tmp_path: Path) -> None:
    _run(tmp_path / "valid.json", [RULE])
    typo = copy.deepcopy(RULE)
    typo["spec"]["trafficPolicy"]["outlierDetecton"] = {}
    (result,), validated = _run(tmp_path / "valid.json", [typo])
    assert validated == ["DestinationRule"]
    assert result.status == "invalid" and "outlierDetecton" in result.message


def test_an_invalid_object_is_never_remembered(tmp_path: Path) -> None:
    bad = copy.deepcopy(CONFIG)
    bad["data"]["LOG_LEVEL"] = 3
    _run(tmp_path / "valid.json", [bad])
    (result,), validated = _run(tmp_path / "valid.json", [bad])
    assert validated == ["ConfigMap"] and result.status == "invalid"


def test_a_secret_is_validated_every_run_and_no_digest_of_it_is_written(tmp_path: Path) -> None:
    _run(tmp_path / "valid.json", [SECRET, CONFIG])
    (result, _), validated = _run(tmp_path / "valid.json", [SECRET, CONFIG])
    assert validated == ["Secret"] and result.status == "ok"
    assert len(json.loads((tmp_path / "valid.json").read_text())["valid"]) == 1


def test_verdicts_written_with_other_schema_sources_or_libraries_are_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run(tmp_path / "valid.json", [RULE])
    monkeypatch.setattr(verdicts, "fingerprint", lambda: "kubernetes-validate==1.38.0")
    assert ResultCache(tmp_path / "valid.json").valid == set()


def test_the_fingerprint_holds_the_installed_schema_sources_and_libraries() -> None:
    lines = verdicts.fingerprint().splitlines()
    assert f"pydantic=={pydantic.VERSION}" in lines
    for name in ("cloudcoil-models-prometheus-operator", "kubernetes-validate", "jsonschema"):
        assert f"{name}=={metadata.version(name)}" in lines


def test_a_damaged_verdicts_file_is_ignored_and_replaced(tmp_path: Path) -> None:
    path = tmp_path / "valid.json"
    path.write_text('{"fingerprint": ')
    (result,), validated = _run(path, [CONFIG])
    assert validated == ["ConfigMap"] and result.status == "ok"
    assert json.loads(path.read_text())["fingerprint"] == verdicts.fingerprint()


#: Run in a fresh interpreter: other tests import the generated modules directly, building them all.
UNBUILT = """
from ops import crds
monitor = {
    "apiVersion": "monitoring.coreos.com/v1",
    "kind": "PodMonitor",
    "metadata": {"name": "orders", "namespace": "vinylhound"},
    "spec": {"selector": {"matchLabels": {"app": "orders"}}, "podMetricsEndpoints": [{"port": "http"}]},
}
assert crds.validate_custom(monitor).status == "ok"
for kind in ("PodMonitor", "Prometheus", "Alertmanager"):
    print(kind, crds.model_for("monitoring.coreos.com/v1", kind).__pydantic_complete__)
"""


def test_crd_models_of_kinds_never_validated_are_not_built() -> None:
    done = subprocess.run(
        [sys.executable, "-c", UNBUILT], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["PodMonitor", "True", "Prometheus", "False", "Alertmanager", "False"]


@pytest.mark.slow
def test_a_second_check_reports_the_same_validating_only_secrets_and_kinds_without_a_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project_with(tmp_path, "dev", lambda config: None)
    shutil.copytree(ROOT / "policies", tmp_path / "policies", dirs_exist_ok=True)
    monkeypatch.chdir(project.root)
    here = Recording()
    monkeypatch.setattr(validation, "validate", here)
    first = CliRunner().invoke(app, ["check", "dev", "-o", "json"])
    assert first.exit_code == 0, first.output
    assert (project.root / CACHE_FILE).is_file()
    assert here.given == []  # without verdicts, a process of its own validated every object
    second = CliRunner().invoke(app, ["check", "dev", "-o", "json"])
    assert second.exit_code == 0, second.output
    assert json.loads(second.output) == json.loads(first.output)
    (stack,) = json.loads(second.output)["stacks"]
    unchecked = {s["kind"] for s in stack["schemas"] if s["status"] == "unchecked"}
    assert "Secret" in here.given and set(here.given) == {"Secret", *unchecked}
