"""Writes move only after the data has: every VirtualService that routes a service's writes waits
for the Job that moves the service's tables (cutover, or rollback), judged from the recorded
registrations of the rendered stacks."""

from __future__ import annotations

import functools

from infra import catalog, endpoints
from ops.mockrun import Registration, Run
from ops.render import is_manifest, manifest
from tests.catalogs import cut_over, run_config, stack_config
from tests.conftest import rendered
from tests.istio_routing import route

VIRTUAL_SERVICE = "kubernetes:networking.istio.io/v1:VirtualService"
JOB = "kubernetes:batch/v1:Job"


def virtual_services(run: Run) -> dict[str, Registration]:
    """By the object's name (``edge``, ``<host>-routes``)."""
    return {manifest(r)["metadata"]["name"]: r for r in run.registrations if r.type == VIRTUAL_SERVICE}


def jobs(run: Run) -> dict[str, Registration]:
    """By the Job's name."""
    return {manifest(r)["metadata"]["name"]: r for r in run.registrations if r.type == JOB}


def routes_writes_of(vs: Registration, service: str) -> bool:
    """Whether a write to one of the endpoints ``service`` shares with the monolith, sent through the
    rendered VirtualService, lands on that endpoint's own route (whose target follows the phase)."""
    spec = manifest(vs)["spec"]
    for e in endpoints.shared(catalog.workload(service)):
        if e.is_read:
            continue
        try:
            decision = route(spec, e.sample_path(), e.method)
        except LookupError:
            continue
        if decision.route == endpoints.route_name(e):
            return True
    return False


def run_with(stack: str, phases: dict[str, str], weights: dict[str, int] | None = None) -> Run:
    """``stack`` with some services' migration phases (and cutover weights) replaced; a service
    put at ``cut-over`` gets what the config demands for it (``tests.catalogs.cut_over``)."""
    raw = stack_config(stack)
    for service, phase in phases.items():
        if phase == "cut-over":
            cut_over(raw, service)
        else:
            raw["databases"]["migration"][service] = phase
    for service, weight in (weights or {}).items():
        raw["services"][service]["cutover"] = {"weight": weight}
    return run_config(stack, raw)


@functools.cache
def dev_cut_over() -> Run:
    """dev with user-service and catalog-service cut over (no stack can cut a service over today)."""
    return run_with("dev", {"user-service": "cut-over", "catalog-service": "cut-over"})


@functools.cache
def staging_gating() -> Run:
    """staging with user-service cut over and catalog-service rolled back: two gating Jobs."""
    return run_with("staging", {"user-service": "cut-over", "catalog-service": "rolled-back"})


def test_staging_edge_routes_wait_for_the_user_service_cutover_job() -> None:
    run = run_with("staging", {"user-service": "cut-over"})
    edge = virtual_services(run)["edge"]
    assert routes_writes_of(edge, "user-service")
    assert jobs(run)["user-service-db-cutover"].urn in edge.dependencies


def test_dev_mesh_routes_wait_for_every_cutover_job_whose_writes_they_route() -> None:
    run = dev_cut_over()
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
    run = dev_cut_over()
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
    run = run_with("staging", {"user-service": "rolled-back"})
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
    run = staging_gating()
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
    run = staging_gating()
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
    regs = by_name(dev_cut_over())
    for service in ("user-service", "catalog-service"):
        job, sub = regs[f"{service}-migration-cutover"], regs[f"{service}-migration-reverse-subscription"]
        assert sub.urn in job.dependencies, service
        assert job.urn not in sub.dependencies, service


def test_the_reverse_subscription_waits_until_its_publication_is_applied() -> None:
    # A slot made before its publication exists cannot decode the changes in between.
    regs = by_name(dev_cut_over())
    pub, sub = (
        regs["user-service-migration-reverse-publication"],
        regs["user-service-migration-reverse-subscription"],
    )
    assert manifest(pub)["metadata"]["annotations"]["pulumi.com/waitFor"] == "jsonpath={.status.applied}=true"
    assert pub.urn in sub.dependencies


def test_the_cutover_job_waits_until_the_reverse_replication_streams() -> None:
    job = manifest(by_name(dev_cut_over())["user-service-migration-cutover"])
    configmap = next(
        manifest(r)
        for r in dev_cut_over().registrations
        if is_manifest(r)
        and manifest(r)["kind"] == "ConfigMap"
        and manifest(r)["metadata"]["name"] == "user-service-db-migration"
    )
    script = configmap["data"]["cutover.sh"]
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["sh", "/scripts/cutover.sh"]
    assert script.index("== wait until the reverse replication streams") < script.index("== stop writes")


def test_a_cutover_job_waits_for_the_cutover_of_the_workloads_writing_into_its_tables() -> None:
    # Deleting a user cascades into albums: catalog-service's Job runs after user-service's.
    regs = by_name(dev_cut_over())
    user, catalog_job = regs["user-service-migration-cutover"], regs["catalog-service-migration-cutover"]
    assert user.urn in catalog_job.dependencies
    assert catalog_job.urn not in user.dependencies


def test_the_cutover_script_checks_the_live_monolith_except_for_accepted_writers() -> None:
    raw = stack_config("dev")
    raw["databases"]["migration"] = {"user-service": "replicating"}
    cut_over(raw, "playlist-service")
    raw["databases"]["acceptedCrossServiceWrites"] = {"playlist-service": ["user-service"]}
    for service in raw["services"].values():
        service.pop("cutover", None)
    run = run_config("dev", raw)
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
