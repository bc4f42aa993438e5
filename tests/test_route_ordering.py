"""Writes move only after the data has: every VirtualService that routes a service's writes waits
for the Job that moves the service's tables (cutover, or rollback), judged from the recorded
registrations of the rendered stacks."""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml

from infra import catalog, traffic
from infra.program import main as program
from ops.mockrun import Registration, Run, run_offline
from ops.render import is_manifest, manifest
from tests.conftest import PROJECT, rendered
from tests.istio_routing import route

VIRTUAL_SERVICE = "kubernetes:networking.istio.io/v1:VirtualService"
JOB = "kubernetes:batch/v1:Job"


def virtual_services(run: Run) -> dict[str, Registration]:
    """By the object's name (``edge``, ``<host>-routes``)."""
    return {manifest(r)["metadata"]["name"]: r for r in run.registrations if r.type == VIRTUAL_SERVICE}


def jobs(run: Run) -> dict[str, Registration]:
    return {r.name: r for r in run.registrations if r.type == JOB}


def routes_writes_of(vs: Registration, service: str) -> bool:
    """Whether a write to one of ``service``'s paths, sent through the rendered VirtualService,
    lands on that path's own write route (the one whose target follows the migration phase)."""
    spec = manifest(vs)["spec"]
    for r in catalog.workload(service).routes:
        try:
            decision = route(spec, r.path, "POST")
        except LookupError:
            continue
        if decision.route == f"{traffic.route_name(r)}-writes":
            return True
    return False


def run_with(stack: str, phases: dict[str, str], weights: dict[str, int]) -> Run:
    """``stack`` with some services' migration phases (and cutover weights) replaced."""
    text = (PROJECT.root / "stacks" / f"Pulumi.{stack}.yaml").read_text()
    raw: dict[str, Any] = copy.deepcopy(yaml.safe_load(text)["config"]["vinylhound:platform"])
    raw["databases"]["migration"].update(phases)
    for service, weight in weights.items():
        raw["services"][service]["cutover"] = {"weight": weight}
    return run_offline(
        program,
        project="vinylhound",
        stack=stack,
        config={"vinylhound:platform": json.dumps(raw)},
        secret_keys=[],
    )


def test_staging_edge_routes_wait_for_the_user_service_cutover_job() -> None:
    run = rendered("staging")
    edge = virtual_services(run)["edge"]
    assert routes_writes_of(edge, "user-service")
    assert jobs(run)["user-service-db-cutover"].urn in edge.dependencies


def test_dev_mesh_routes_wait_for_every_cutover_job_whose_writes_they_route() -> None:
    run = rendered("dev")
    suffix = "-db-cutover"
    cutovers = {n.removesuffix(suffix): r for n, r in jobs(run).items() if n.endswith(suffix)}
    assert set(cutovers) == {"user-service", "catalog-service"}
    checked = 0
    for vs in virtual_services(run).values():
        for service, job in cutovers.items():
            if routes_writes_of(vs, service):
                assert job.urn in vs.dependencies, (vs.name, service)
                checked += 1
    assert checked >= 2 * len(cutovers)  # the monolith's and the services' own mesh routes


def test_dev_edge_sends_the_api_to_the_gateway_and_waits_for_no_migration_job() -> None:
    run = rendered("dev")
    edge = virtual_services(run)["edge"]
    assert not routes_writes_of(edge, "user-service")
    assert not set(edge.dependencies) & {j.urn for j in jobs(run).values()}


def test_a_stack_without_cutover_or_rollback_has_routes_that_wait_for_no_job() -> None:
    run = rendered("prod")
    job_urns = {j.urn for j in jobs(run).values()}
    assert job_urns and virtual_services(run)
    for vs in virtual_services(run).values():
        assert not set(vs.dependencies) & job_urns, vs.name


def test_routes_wait_for_the_rollback_job_of_a_rolled_back_service() -> None:
    run = run_with("staging", {"user-service": "rolled-back"}, {"user-service": 0})
    edge = virtual_services(run)["edge"]
    assert routes_writes_of(edge, "user-service")
    assert "user-service-db-cutover" not in jobs(run)
    assert jobs(run)["user-service-db-rollback"].urn in edge.dependencies


def test_a_replicating_service_adds_no_job_to_the_routes() -> None:
    run = run_with("staging", {"user-service": "replicating"}, {})
    job_urns = {j.urn for j in jobs(run).values()}
    for vs in virtual_services(run).values():
        assert not set(vs.dependencies) & job_urns, vs.name


def test_the_jobs_routes_wait_for_are_awaited_by_pulumi() -> None:
    run = run_with("staging", {"catalog-service": "rolled-back"}, {"catalog-service": 0})
    gating = {n: j for n, j in jobs(run).items() if n.endswith(("-db-cutover", "-db-rollback"))}
    assert set(gating) == {"user-service-db-cutover", "catalog-service-db-rollback"}
    for name, job in gating.items():
        assert is_manifest(job)
        annotations = manifest(job)["metadata"].get("annotations") or {}
        assert "pulumi.com/skipAwait" not in annotations, name


def minutes(duration: str) -> int:
    """A Pulumi custom timeout such as ``65m`` in minutes (the only unit used here)."""
    assert duration.endswith("m"), duration
    return int(duration.removesuffix("m"))


def test_pulumi_waits_for_a_gating_job_longer_than_the_job_may_run() -> None:
    run = run_with("staging", {"catalog-service": "rolled-back"}, {"catalog-service": 0})
    gating = [j for n, j in jobs(run).items() if n.endswith(("-db-cutover", "-db-rollback"))]
    assert len(gating) == 2
    for job in gating:
        create, update, _ = job.custom_timeouts
        deadline = manifest(job)["spec"]["activeDeadlineSeconds"]
        assert min(minutes(create), minutes(update)) * 60 > deadline, job.name


# --- the reverse replication and the order of cut-overs ---------------------------------------


def by_name(run: Run) -> dict[str, Registration]:
    return {r.name: r for r in run.registrations}


def test_a_cutover_job_waits_for_its_reverse_subscription_which_does_not_wait_for_it() -> None:
    # The reverse slot exists before the Job decides and the routes move: no write is missed.
    regs = by_name(rendered("dev"))
    for service in ("user-service", "catalog-service"):
        job, sub = regs[f"{service}-db-cutover"], regs[f"{service}-db-reverse-subscription"]
        assert sub.urn in job.dependencies, service
        assert job.urn not in sub.dependencies, service


def test_the_reverse_subscription_waits_until_its_publication_is_applied() -> None:
    # A slot made before its publication exists cannot decode the changes in between.
    regs = by_name(rendered("dev"))
    pub, sub = regs["user-service-db-reverse-publication"], regs["user-service-db-reverse-subscription"]
    assert manifest(pub)["metadata"]["annotations"]["pulumi.com/waitFor"] == "jsonpath={.status.applied}=true"
    assert pub.urn in sub.dependencies


def test_the_cutover_job_waits_until_the_reverse_replication_streams() -> None:
    job = manifest(by_name(rendered("dev"))["user-service-db-cutover"])
    configmap = next(
        manifest(r)
        for r in rendered("dev").registrations
        if is_manifest(r)
        and manifest(r)["kind"] == "ConfigMap"
        and manifest(r)["metadata"]["name"] == "user-service-db-migration"
    )
    script = configmap["data"]["cutover.sh"]
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["sh", "/scripts/cutover.sh"]
    assert script.index("== wait until the reverse replication streams") < script.index("== stop writes")


def test_a_cutover_job_waits_for_the_cutover_of_the_workloads_writing_into_its_tables() -> None:
    # Deleting a user cascades into albums: catalog-service's Job runs after user-service's.
    regs = by_name(rendered("dev"))
    user, catalog_job = regs["user-service-db-cutover"], regs["catalog-service-db-cutover"]
    assert user.urn in catalog_job.dependencies
    assert catalog_job.urn not in user.dependencies


def test_the_cutover_script_checks_the_live_monolith_except_for_accepted_writers() -> None:
    text = (PROJECT.root / "stacks" / "Pulumi.dev.yaml").read_text()
    raw: dict[str, Any] = copy.deepcopy(yaml.safe_load(text)["config"]["vinylhound:platform"])
    raw["databases"]["migration"] = {"user-service": "replicating", "playlist-service": "cut-over"}
    raw["databases"]["acceptedCrossServiceWrites"] = {"playlist-service": ["user-service"]}
    for service in raw["services"].values():
        service.pop("cutover", None)
    run = run_offline(
        program,
        project="vinylhound",
        stack="dev",
        config={"vinylhound:platform": json.dumps(raw)},
        secret_keys=[],
    )
    configmap = next(
        manifest(r)
        for r in run.registrations
        if is_manifest(r)
        and manifest(r)["kind"] == "ConfigMap"
        and manifest(r)["metadata"]["name"] == "playlist-service-db-migration"
    )
    script = configmap["data"]["cutover.sh"]
    assert script.index("== refuse while the monolith writes these tables") < script.index("== stop writes")
    assert "ARRAY['users', 'sessions', 'user_content']" in script  # accepted: not refused
