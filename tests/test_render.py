"""Offline render: schema-valid manifests, the promised record shape, deterministic output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra import catalog
from infra.program import main as program
from infra.targets.kubernetes.registry import secret_id
from ops import docker_summary
from ops.mockrun import SENTINEL_PREFIX, run_offline, sentinel
from ops.project import Project
from ops.render import C_DUMPER, HELM_RELEASE, PYTHON_DUMPER, dump_yaml, render, write
from ops.schemas import validate_objects
from tests.conftest import KUBE_STACKS, PROJECT, manifests_of, rendered


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_every_core_manifest_is_valid_against_the_kubernetes_schemas(stack: str) -> None:
    results = validate_objects(manifests_of(rendered(stack)))
    assert [r for r in results if r.status == "invalid"] == []


def _deployments(stack: str) -> set[str]:
    return {m["metadata"]["name"] for m in manifests_of(rendered(stack)) if m["kind"] == "Deployment"}


def test_dev_deploys_all_seven_catalog_workloads() -> None:
    assert set(catalog.names()) <= _deployments("dev")


def test_prod_deploys_every_workload_but_the_api_gateway_whose_routing_the_edge_does() -> None:
    # architecture.md: in prod the edge VirtualService is the route table; the Go gateway is an
    # optional hop (enabled in dev) and prod leaves it out.
    assert set(catalog.names()) - _deployments("prod") == {"api-gateway"}


def test_resources_json_has_the_promised_shape(project: Project, tmp_path: Path) -> None:
    render(project, "dev", tmp_path / "dev")
    records = json.loads((tmp_path / "dev" / "resources.json").read_text())
    assert records and all(
        set(r) == {"urn", "type", "name", "parent", "dependencies", "aliases", "inputs"} for r in records
    )
    assert [r["urn"] for r in records] == sorted(r["urn"] for r in records)
    assert any(r["type"] == "vinylhound:kubernetes:Microservice" for r in records)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_renders_of_a_stack_are_byte_identical(project: Project, tmp_path: Path) -> None:
    render(project, "prod", tmp_path / "a")
    render(project, "staging", tmp_path / "other")  # a different stack in between must not leak
    render(project, "prod", tmp_path / "b")
    first, second = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert any(name.startswith("manifests/") for name in first)
    assert first == second


def test_manifests_use_integers_not_floats() -> None:
    (deployment,) = [
        m
        for m in manifests_of(rendered("dev"))
        if m["kind"] == "Deployment" and m["metadata"]["name"] == "user-service"
    ]
    assert deployment["spec"]["replicas"] == 1 and isinstance(deployment["spec"]["replicas"], int)


CONFIG_SECRET = "vinylhound-offline-secret-config-spotify"
RANDOM_BYTES = "random:index/randomBytes:RandomBytes"


@pytest.mark.parametrize("stack", PROJECT.stacks())
def test_no_secret_value_reaches_any_rendered_file(stack: str, tmp_path: Path) -> None:
    # Every generated password has a unique stand-in value (ops/mockrun.py) and the config secret
    # gets one here; a value that lost its secret flag anywhere would be written in clear.
    config = PROJECT.stack_config(stack)
    values = {**config.values, "vinylhound:spotifyClientSecret": CONFIG_SECRET}
    secret_keys = [*config.secret_keys, "vinylhound:spotifyClientSecret"]
    run = run_offline(program, project=PROJECT.name, stack=stack, config=values, secret_keys=secret_keys)
    write(run, tmp_path)
    # Consul's token ids are random bytes reshaped into a UUID, which cuts the stand-in apart.
    marks = [SENTINEL_PREFIX] + [
        secret_id(sentinel(r.name, "hex")) for r in run.registrations if r.type == RANDOM_BYTES
    ]
    leaks = [
        str(path.relative_to(tmp_path))
        for path in sorted(tmp_path.rglob("*"))
        if path.is_file() and any(mark in path.read_text() for mark in marks)
    ]
    assert leaks == []
    assert any(r.type == "random:index/randomPassword:RandomPassword" for r in run.registrations)


def _written_documents(stack: str) -> list[Any]:
    run = rendered(stack)
    documents: list[Any] = manifests_of(run)
    documents += [r.inputs for r in run.registrations if r.type == HELM_RELEASE]
    if docker_summary.containers(run):
        documents.append(docker_summary.summary(run))
    return documents


@pytest.mark.skipif(C_DUMPER is None, reason="PyYAML built without libyaml")
@pytest.mark.parametrize("stack", PROJECT.stacks())
def test_libyaml_writes_every_rendered_document_byte_for_byte_as_the_python_emitter(stack: str) -> None:
    documents = _written_documents(stack)
    differing = [d for d in documents if dump_yaml(d, C_DUMPER) != dump_yaml(d, PYTHON_DUMPER)]
    assert documents and differing == []


def test_a_document_libyaml_would_escape_differently_is_written_by_the_python_emitter() -> None:
    document = {"description": "vinyl \U0001f3b5 and a line\u2028separator"}
    assert dump_yaml(document) == dump_yaml(document, PYTHON_DUMPER)


def test_long_strings_stay_on_one_line() -> None:
    command = "psql " + " ".join(f"--table=t{i}" for i in range(40))
    assert dump_yaml({"data": {"run.sh": command}}).splitlines() == ["data:", f"  run.sh: {command}"]
