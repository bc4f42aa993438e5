"""The Docker components and the scrape-config generator, without a stack."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
import yaml

from components.docker.postgres import PostgresArgs, PostgresDatabase
from components.docker.specs import ContainerSpec, container_inputs, cpus, memory_mb
from infra import catalog
from infra.config import FULL_KEY
from infra.program import main as program
from infra.targets.docker import prometheus_scrape
from ops.mockrun import MASK, ProgramError, run_offline
from tests.conftest import PROJECT, run_program


@pytest.mark.parametrize(("quantity", "mb"), [("256Mi", 256), ("1Gi", 1024), ("2048Ki", 2)])
def test_memory_quantities_become_docker_megabytes(quantity: str, mb: int) -> None:
    assert memory_mb(quantity) == mb


@pytest.mark.parametrize(("quantity", "value"), [("500m", "0.5"), ("1", "1"), ("1500m", "1.5")])
def test_cpu_quantities_become_docker_cpus(quantity: str, value: str) -> None:
    assert cpus(quantity) == value


def test_waiting_for_health_without_a_healthcheck_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a healthcheck"):
        container_inputs(ContainerSpec(name="x", image="busybox:1.37", network="n"), "busybox:1.37")


def test_a_one_shot_container_runs_once_and_the_update_waits_for_it_to_exit() -> None:
    spec = ContainerSpec(name="task", image="busybox:1.37", network="n", one_shot=True, wait_healthy=False)
    inputs = container_inputs(spec, "busybox:1.37")
    assert (inputs["restart"], inputs["attach"], inputs["must_run"]) == (
        "no",
        True,
        False,
    )
    assert inputs["wait"] is False


def test_a_one_shot_container_that_should_become_healthy_is_refused() -> None:
    spec = ContainerSpec(name="task", image="busybox:1.37", network="n", one_shot=True, wait_healthy=True)
    with pytest.raises(ValueError, match="cannot become healthy"):
        container_inputs(spec, "busybox:1.37")


def test_a_database_password_is_generated_and_never_recorded() -> None:
    def program_under_test() -> None:
        PostgresDatabase(
            "users-db",
            PostgresArgs(
                name="users-db", image="postgres:17.6-alpine", network="net", database="u", user="u"
            ),
        )

    regs = run_program(program_under_test)
    (container,) = [r for r in regs if r.type == "docker:index/container:Container"]
    assert any(r.type == "random:index/randomPassword:RandomPassword" for r in regs)
    assert MASK in container.inputs["envs"]
    assert not [e for e in container.inputs["envs"] if e.startswith("POSTGRES_PASSWORD=")]


def test_the_init_sql_is_copied_where_the_postgres_image_runs_it_once() -> None:
    def program_under_test() -> None:
        PostgresDatabase(
            "db",
            PostgresArgs(name="db", image="postgres:17.6-alpine", network="net", init_sql="SELECT 1;\n"),
        )

    (container,) = [
        r for r in run_program(program_under_test) if r.type == "docker:index/container:Container"
    ]
    assert container.inputs["uploads"] == [
        {"file": "/docker-entrypoint-initdb.d/10-init.sql", "content": "SELECT 1;\n"}
    ]


def test_a_build_context_builds_the_image_locally_instead_of_pulling_it() -> None:
    config = dict(PROJECT.stack_config("local").values)
    raw = json.loads(config[FULL_KEY])
    raw["docker"]["buildContexts"] = {"user-service": "/src/vinylhound-backend/services/user"}
    config[FULL_KEY] = json.dumps(raw)
    run = run_offline(program, project=PROJECT.name, stack="local", config=config, secret_keys=[])
    (built,) = [r for r in run.registrations if r.type == "docker:index/image:Image"]
    assert built.inputs["build"]["context"] == "/src/vinylhound-backend/services/user"
    assert built.inputs["skipPush"] is True
    (container,) = [
        r
        for r in run.registrations
        if r.type == "docker:index/container:Container" and r.name == "user-service-container"
    ]
    assert container.inputs["image"] == built.inputs["imageName"] and built.urn in container.dependencies


def test_an_invalid_docker_stack_registers_nothing() -> None:
    config = dict(PROJECT.stack_config("local").values)
    raw = copy.deepcopy(json.loads(config[FULL_KEY]))
    raw["services"]["user-service"]["cutover"] = {"weight": 50}
    config[FULL_KEY] = json.dumps(raw)
    with pytest.raises(ProgramError) as caught:
        run_offline(program, project=PROJECT.name, stack="local", config=config, secret_keys=[])
    assert caught.value.registrations == []
    assert "cutover.weight: 50 is a partial weight" in str(caught.value)


def test_a_workload_with_a_metrics_endpoint_is_also_scraped_there() -> None:
    instrumented = dataclasses.replace(catalog.workload("catalog-service"), metrics_path="/metrics")
    plain = catalog.workload("user-service")
    config = prometheus_scrape.scrape_config(
        [
            prometheus_scrape.Endpoint(instrumented, "catalog", 8002),
            prometheus_scrape.Endpoint(plain, "user", 8001),
        ],
        blackbox="bb:9115",
        environment="test",
    )
    (job,) = [
        j
        for j in yaml.safe_load(yaml.safe_dump(config))["scrape_configs"]
        if j["job_name"] == "vinylhound-metrics"
    ]
    (group,) = job["static_configs"]
    assert group["targets"] == ["catalog:8002"] and group["labels"]["__metrics_path__"] == "/metrics"


def test_without_metrics_endpoints_there_is_no_metrics_job() -> None:
    config = prometheus_scrape.scrape_config(
        [prometheus_scrape.Endpoint(w, w.name, w.port) for w in catalog.WORKLOADS],
        blackbox="bb:9115",
        environment="t",
    )
    assert [j["job_name"] for j in config["scrape_configs"]] == ["vinylhound-health"]
