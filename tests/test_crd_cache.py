"""Custom resources found valid are remembered between ``check`` runs, and only while that is true."""

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

from ops import crds
from ops.check import CACHE_FILE
from ops.cli import app
from ops.crds import ResultCache
from tests.conftest import ROOT
from tests.test_check import _project_with

RULE: dict[str, Any] = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "DestinationRule",
    "metadata": {"name": "user-service", "namespace": "vinylhound"},
    "spec": {"host": "user-service", "trafficPolicy": {"outlierDetection": {"consecutive5xxErrors": 5}}},
}


def _no_models(api_version: str, kind: str) -> type[pydantic.BaseModel] | None:
    """``crds.model_for`` where asking for a model is a failure (groups without one stay None)."""
    if api_version.partition("/")[0] in crds.SOURCES:
        raise AssertionError(f"{kind} validated again although remembered as valid")
    return None


def _remembered(path: Path) -> None:
    cache = ResultCache(path)
    assert cache.validate(RULE).status == "ok"
    cache.save()


def test_an_object_found_valid_is_not_validated_again_by_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _remembered(tmp_path / "crd-valid.json")
    monkeypatch.setattr(crds, "model_for", _no_models)
    result = ResultCache(tmp_path / "crd-valid.json").validate(copy.deepcopy(RULE))
    assert (result.kind, result.name, result.status) == ("DestinationRule", "vinylhound/user-service", "ok")


def test_an_edited_object_is_validated_again_and_its_unknown_field_refused(tmp_path: Path) -> None:
    _remembered(tmp_path / "crd-valid.json")
    typo = copy.deepcopy(RULE)
    typo["spec"]["trafficPolicy"]["outlierDetecton"] = {}
    result = ResultCache(tmp_path / "crd-valid.json").validate(typo)
    assert result.status == "invalid" and "outlierDetecton" in result.message


def test_an_invalid_object_is_never_remembered(tmp_path: Path) -> None:
    bad = copy.deepcopy(RULE)
    bad["spec"]["trafficPolicy"]["tls"] = {"mode": "MUTUAL_PLEASE"}
    cache = ResultCache(tmp_path / "crd-valid.json")
    assert cache.validate(bad).status == "invalid"
    cache.save()
    assert ResultCache(tmp_path / "crd-valid.json").validate(bad).status == "invalid"


def test_verdicts_written_with_other_models_or_pydantic_versions_are_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _remembered(tmp_path / "crd-valid.json")
    monkeypatch.setattr(crds, "fingerprint", lambda: "cloudcoil-models-istio==1.25.0.0")
    assert ResultCache(tmp_path / "crd-valid.json").valid == set()


def test_the_fingerprint_holds_the_installed_model_packages_and_pydantic() -> None:
    lines = crds.fingerprint().splitlines()
    assert f"pydantic=={pydantic.VERSION}" in lines
    assert (
        f"cloudcoil-models-prometheus-operator=={metadata.version('cloudcoil-models-prometheus-operator')}"
        in lines
    )


def test_a_damaged_cache_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "crd-valid.json"
    path.write_text('{"fingerprint": ')
    cache = ResultCache(path)
    assert cache.validate(RULE).status == "ok"
    cache.save()
    assert json.loads(path.read_text())["fingerprint"] == crds.fingerprint()


#: Run in a fresh interpreter: other tests import the generated modules directly, building them all.
UNBUILT = """
from ops import crds
from ops.check import CACHE_FILE
from ops.cli import app
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


def test_models_of_kinds_never_validated_are_not_built() -> None:
    done = subprocess.run(
        [sys.executable, "-c", UNBUILT], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["PodMonitor", "True", "Prometheus", "False", "Alertmanager", "False"]


@pytest.mark.slow
def test_a_second_check_reports_the_same_without_validating_unchanged_custom_resources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project_with(tmp_path, "dev", lambda config: None)
    shutil.copytree(ROOT / "policies", tmp_path / "policies", dirs_exist_ok=True)
    monkeypatch.chdir(project.root)
    first = CliRunner().invoke(app, ["check", "dev", "-o", "json"])
    assert first.exit_code == 0, first.output
    assert (project.root / CACHE_FILE).is_file()
    monkeypatch.setattr(crds, "model_for", _no_models)
    second = CliRunner().invoke(app, ["check", "dev", "-o", "json"])
    assert second.exit_code == 0, second.output
    assert json.loads(second.output) == json.loads(first.output)
