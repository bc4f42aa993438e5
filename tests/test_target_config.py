"""Target-specific settings: Kubernetes-only keys fail in a docker stack, Docker-only keys in a
Kubernetes stack, each with the one-line ``file: key.path: message`` format."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic.alias_generators import to_camel
from pydantic_core import to_jsonable_python

from infra.config import (
    DOCKER_KEYS,
    DOCKER_WORKLOAD_KEYS,
    FULL_KEY,
    ConfigError,
    PlatformConfig,
    WorkloadConfig,
    parse_platform_config,
)
from tests.catalogs import serving_alike
from tests.conftest import PROJECT

LOCAL = "stacks/Pulumi.local.yaml"
PROD = "stacks/Pulumi.prod.yaml"


def stack(name: str) -> dict[str, Any]:
    """The stack file's real platform config; each test changes one thing."""
    return copy.deepcopy(json.loads(PROJECT.stack_config(name).values[FULL_KEY]))


def problems(raw: dict[str, Any], source: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_platform_config(raw, source)
    return caught.value.lines()


def test_the_local_stack_is_a_valid_docker_stack() -> None:
    cfg = parse_platform_config(stack("local"), LOCAL)
    assert (cfg.environment, cfg.target) == ("local", "docker")


def _default(model: type[BaseModel], field: str) -> Any:
    """A field's default in stack-file form: setting it explicitly changes nothing but presence."""
    value = model.model_fields[field].get_default(call_default_factory=True)
    return to_jsonable_python(value, by_alias=True)


# Every field a docker stack does not read, including the ones later features add.
KUBERNETES_ONLY = sorted(set(PlatformConfig.model_fields) - DOCKER_KEYS)
KUBERNETES_ONLY_PER_WORKLOAD = sorted(set(WorkloadConfig.model_fields) - DOCKER_WORKLOAD_KEYS)


@pytest.mark.parametrize("field", KUBERNETES_ONLY)
def test_every_kubernetes_only_top_level_key_is_rejected_in_a_docker_stack(field: str) -> None:
    raw = stack("local")
    raw[to_camel(field)] = _default(PlatformConfig, field)
    lines = problems(raw, LOCAL)
    assert f"{LOCAL}: vinylhound:platform.{to_camel(field)}: Kubernetes-only setting" in "\n".join(lines)


@pytest.mark.parametrize("field", KUBERNETES_ONLY_PER_WORKLOAD)
def test_every_kubernetes_only_workload_key_is_rejected_in_a_docker_stack(field: str) -> None:
    raw = stack("local")
    raw["services"]["catalog-service"][to_camel(field)] = _default(WorkloadConfig, field)
    lines = problems(raw, LOCAL)
    path = f"services.catalog-service.{to_camel(field)}"
    assert f"{LOCAL}: vinylhound:platform.{path}: Kubernetes-only setting" in "\n".join(lines)


def test_the_rejection_says_why_in_one_line() -> None:
    raw = stack("local")
    raw["namespace"] = "vinylhound"
    assert problems(raw, LOCAL) == [
        f"{LOCAL}: vinylhound:platform.namespace: Kubernetes-only setting; "
        "a docker stack (target: docker) does not read it"
    ]


@pytest.mark.parametrize("weight", [1, 50, 99])
def test_a_partial_cutover_weight_is_rejected_in_a_docker_stack(weight: int) -> None:
    raw = stack("local")
    raw["services"]["rating-service"]["cutover"] = {"weight": weight}
    assert problems(raw, LOCAL) == [
        f"{LOCAL}: vinylhound:platform.services.rating-service.cutover.weight: {weight} is a partial "
        "weight; a docker stack has no traffic split, use 0 (monolith) or 100 (service)"
    ]


def test_mirroring_is_rejected_in_a_docker_stack() -> None:
    raw = stack("local")
    raw["services"]["playlist-service"]["cutover"] = {"weight": 0, "mirror": True}
    (line,) = problems(raw, LOCAL)
    assert line.startswith(f"{LOCAL}: vinylhound:platform.services.playlist-service.cutover.mirror: ")


def test_a_docker_stack_needs_the_gateway_as_its_edge() -> None:
    raw = stack("local")
    del raw["services"]["api-gateway"]
    (line,) = problems(raw, LOCAL)
    assert line.startswith(f"{LOCAL}: vinylhound:platform.services.api-gateway: ")


def test_a_build_context_for_an_unknown_workload_is_rejected() -> None:
    raw = stack("local")
    raw["docker"]["buildContexts"] = {"billing-service": "../billing"}
    (line,) = problems(raw, LOCAL)
    assert line.startswith(f"{LOCAL}: vinylhound:platform.docker.buildContexts.billing-service: unknown")


def test_an_unpinned_platform_image_is_rejected() -> None:
    raw = stack("local")
    raw["docker"]["images"]["postgres"] = "postgres"
    (line,) = problems(raw, LOCAL)
    assert line == (
        f"{LOCAL}: vinylhound:platform.docker.images.postgres: "
        "'postgres' is not pinned; add a release tag or a digest"
    )


def test_a_latest_platform_image_is_rejected() -> None:
    raw = stack("local")
    raw["docker"]["images"]["consul"] = "hashicorp/consul:latest"
    (line,) = problems(raw, LOCAL)
    assert "'latest' is not pinned" in line


def test_the_docker_section_is_rejected_in_a_kubernetes_stack() -> None:
    raw = stack("prod")
    raw["docker"] = {"publishedPortBase": 20000}
    assert problems(raw, PROD) == [
        f"{PROD}: vinylhound:platform.docker: Docker-only setting; this stack's target is kubernetes"
    ]


def test_partial_weights_stay_valid_on_kubernetes(monkeypatch: pytest.MonkeyPatch) -> None:
    serving_alike(monkeypatch, "catalog-service", "GET /api/v1/albums")
    raw = stack("prod")
    raw["services"]["catalog-service"]["cutover"] = {"weight": 50}
    assert parse_platform_config(raw, PROD).services["catalog-service"].cutover.weight == 50


def test_a_docker_stack_reads_the_event_bus_settings() -> None:
    raw = stack("local")
    raw["events"] = {"maxAge": "24h", "ackWait": "10s"}
    assert parse_platform_config(raw, LOCAL).events.max_age == "24h"


def test_a_kubernetes_namespace_for_the_bus_is_rejected_in_a_docker_stack() -> None:
    raw = stack("local")
    raw["events"] = {"namespace": "nats"}
    (line,) = problems(raw, LOCAL)
    assert line.startswith(f"{LOCAL}: vinylhound:platform.events.namespace: Kubernetes-only setting")


def test_a_nats_cluster_is_rejected_in_a_docker_stack_which_runs_one_server() -> None:
    raw = stack("local")
    raw["events"] = {"clusterSize": 3}
    (line,) = problems(raw, LOCAL)
    assert line.startswith(f"{LOCAL}: vinylhound:platform.events.clusterSize: 3: a docker stack runs one")
