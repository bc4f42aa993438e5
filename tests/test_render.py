"""Offline render: schema-valid manifests, the promised record shape, deterministic output."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pytest

from ops.project import Project
from ops.render import render
from ops.schemas import validate_objects
from tests.conftest import KUBE_STACKS, manifests_of, rendered


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_every_core_manifest_is_valid_against_the_kubernetes_schemas(stack: str) -> None:
    results = validate_objects(manifests_of(rendered(stack)))
    assert [r for r in results if r.status == "invalid"] == []


def test_prod_deploys_all_seven_workloads() -> None:
    deployments = {m["metadata"]["name"] for m in manifests_of(rendered("prod")) if m["kind"] == "Deployment"}
    assert {
        "monolith",
        "user-service",
        "catalog-service",
        "rating-service",
        "playlist-service",
        "web-frontend",
    } <= deployments


def test_resources_json_has_the_promised_shape(project: Project, tmp_path: Path) -> None:
    render(project, "dev", tmp_path / "dev")
    records = json.loads((tmp_path / "dev" / "resources.json").read_text())
    assert records and all(
        set(r) == {"urn", "type", "name", "parent", "dependencies", "inputs"} for r in records
    )
    assert [r["urn"] for r in records] == sorted(r["urn"] for r in records)
    assert any(r["type"] == "vinylhound:kubernetes:Microservice" for r in records)


def test_two_renders_of_a_stack_are_byte_identical(project: Project, tmp_path: Path) -> None:
    render(project, "prod", tmp_path / "a")
    render(project, "staging", tmp_path / "other")  # a different stack in between must not leak
    render(project, "prod", tmp_path / "b")
    comparison = filecmp.dircmp(tmp_path / "a", tmp_path / "b")
    assert not comparison.diff_files and not comparison.left_only and not comparison.right_only
    for sub in comparison.subdirs.values():
        assert not sub.diff_files and not sub.left_only and not sub.right_only


def test_manifests_use_integers_not_floats() -> None:
    (deployment,) = [
        m
        for m in manifests_of(rendered("dev"))
        if m["kind"] == "Deployment" and m["metadata"]["name"] == "user-service"
    ]
    assert deployment["spec"]["replicas"] == 1 and isinstance(deployment["spec"]["replicas"], int)


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_no_secret_value_is_rendered(stack: str) -> None:
    for m in manifests_of(rendered(stack)):
        if m["kind"] == "Secret":
            data = m.get("stringData") or m.get("data") or {}
            assert set(data.values()) == {"[secret]"}
