"""Databases per workload: config rules, the ServiceDatabase specs, and what each stack renders."""

from __future__ import annotations

import copy
import dataclasses
import functools
from typing import Any

import pytest
import yaml

from components.kubernetes import service_database as sdb
from infra import catalog, migration
from infra.catalog import Database
from infra.config import ConfigError, parse_platform_config
from ops.mockrun import ProgramError, Registration, Run
from ops.render import is_manifest, manifest
from tests.catalogs import cut_over, run_config
from tests.conftest import KUBE_STACKS, PROJECT, manifests_of, rendered

SOURCE = "stacks/Pulumi.prod.yaml"
DB_OWNERS = [w.name for w in catalog.WORKLOADS if w.database is not None]


def stack_raw(stack: str) -> dict[str, Any]:
    """The stack file's platform config, as a fresh dict to modify."""
    text = (PROJECT.root / "stacks" / f"Pulumi.{stack}.yaml").read_text()
    return copy.deepcopy(yaml.safe_load(text)["config"]["vinylhound:platform"])


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_platform_config(raw, SOURCE)
    return caught.value.lines()


def run_with(raw: dict[str, Any], stack: str = "prod") -> Run:
    return run_config(stack, raw)


def of_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in objects if m["kind"] == kind}


def migration_jobs(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The migration Jobs (other areas run Jobs of their own, e.g. the registry's token Job)."""
    return [
        job
        for job in of_kind(objects, "Job").values()
        if job["metadata"]["labels"].get("app.kubernetes.io/component") == "migration"
    ]


def registration(run: Run, name: str) -> Registration:
    (reg,) = [r for r in run.registrations if r.name == name]
    return reg


# --- config -----------------------------------------------------------------------------------


def _with_tables(workload: str, tables: tuple[str, ...]) -> tuple[catalog.Workload, ...]:
    """The catalog with one workload's table list replaced."""
    return tuple(
        dataclasses.replace(w, database=Database(w.database.name, tables, w.database.extensions))
        if w.name == workload and w.database
        else w
        for w in catalog.WORKLOADS
    )


def test_a_table_owned_by_two_workloads_is_a_config_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        catalog,
        "WORKLOADS",
        _with_tables(
            "rating-service", ("ratings", "reviews", "user_preferences", "user_album_preferences", "albums")
        ),
    )
    (line,) = problems(stack_raw("prod"))
    assert line == (
        f"{SOURCE}: vinylhound:platform.databases.tables.albums: table 'albums' is owned by more than one "
        "workload: catalog-service, rating-service"
    )


def test_an_unknown_table_is_a_config_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        catalog,
        "WORKLOADS",
        _with_tables("playlist-service", ("playlists", "playlist_songs", "playlist_likes")),
    )
    (line,) = problems(stack_raw("prod"))
    assert "databases.tables.playlist_likes: playlist-service owns table 'playlist_likes'" in line


def test_a_schema_table_that_no_workload_owns_is_a_config_error_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(catalog, "WORKLOADS", _with_tables("user-service", ("users", "sessions")))
    (line,) = problems(stack_raw("prod"))
    assert (
        "databases.tables.user_content: table 'user_content' of the monolith schema is owned by no workload"
        in line
    )


def test_bad_table_ownership_registers_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog, "WORKLOADS", _with_tables("user-service", ("users", "sessions", "albums")))
    with pytest.raises(ProgramError) as caught:
        run_with(stack_raw("prod"))
    assert "databases.tables.albums" in str(caught.value)
    assert caught.value.registrations == []


def test_prod_with_fewer_than_three_database_instances_is_rejected() -> None:
    raw = stack_raw("prod")
    raw["databases"]["instances"] = 2
    assert problems(raw) == [
        f"{SOURCE}: vinylhound:platform.databases.instances: 2 is below the prod minimum of 3 "
        "(a primary and 2 replicas)"
    ]


def test_staging_without_a_backup_target_is_rejected() -> None:
    raw = stack_raw("staging")
    del raw["databases"]["backup"]
    assert problems(raw) == [
        f"{SOURCE}: vinylhound:platform.databases.backup: staging requires backups: set a backup target"
    ]


def test_dev_runs_without_backups() -> None:
    assert parse_platform_config(stack_raw("dev"), SOURCE).databases.backup is None


def test_a_migration_phase_for_a_workload_without_tables_is_rejected() -> None:
    raw = stack_raw("prod")
    raw["databases"]["migration"]["api-gateway"] = "replicating"
    (line,) = problems(raw)
    assert line.startswith(f"{SOURCE}: vinylhound:platform.databases.migration.api-gateway: not a service")


def test_an_unknown_migration_phase_is_rejected() -> None:
    raw = stack_raw("prod")
    raw["databases"]["migration"]["user-service"] = "done"
    (line,) = problems(raw)
    assert (
        "databases.migration.user-service: Input should be "
        "'not-started', 'replicating', 'cut-over' or 'rolled-back'" in line
    )


def test_a_latest_postgres_image_is_rejected() -> None:
    raw = stack_raw("prod")
    raw["databases"]["image"] = "ghcr.io/cloudnative-pg/postgresql:latest"
    (line,) = problems(raw)
    assert "databases.image: " in line and "not pinned" in line


def test_a_five_field_backup_schedule_is_rejected() -> None:
    raw = stack_raw("prod")
    raw["databases"]["backup"]["schedule"] = "0 3 * * *"
    (line,) = problems(raw)
    assert "databases.backup.schedule" in line and "six-field" in line


def test_wal_level_in_the_parameters_is_rejected_in_one_line() -> None:
    raw = stack_raw("prod")
    raw["databases"]["parameters"] = {"wal_level": "replica", "work_mem": "16MB"}
    (line,) = problems(raw)
    path = "vinylhound:platform.databases.parameters.wal_level"
    assert line.startswith(f"{SOURCE}: {path}: set by the platform")
    assert "\n" not in line


@pytest.mark.parametrize(
    ("schedule", "reason"),
    [
        ("a b c d e f", "seconds field 'a'"),
        ("60 0 3 * * *", "seconds field '60' is out of range (0-59)"),
        ("0 60 3 * * *", "minutes field '60'"),
        ("0 0 24 * * *", "hours field '24'"),
        ("0 0 3 0 * *", "day-of-month field '0'"),
        ("0 0 3 * 13 *", "month field '13'"),
        ("0 0 3 * foo *", "month field 'foo'"),
        ("0 0 3 * * 8", "day-of-week field '8'"),
        ("0 0 3 * * mon-xyz", "day-of-week field 'mon-xyz'"),
        ("0 0 5-3 * * *", "hours field '5-3' is a backwards range"),
        ("0 */0 3 * * *", "minutes field '*/0' has a zero step"),
        ("0 0 3,,4 * * *", "hours field ''"),
        ("0 0 3 * * * *", "not a six-field cron schedule"),
    ],
)
def test_a_backup_schedule_with_an_invalid_field_is_rejected_naming_the_field(
    schedule: str, reason: str
) -> None:
    raw = stack_raw("prod")
    raw["databases"]["backup"]["schedule"] = schedule
    (line,) = problems(raw)
    assert "databases.backup.schedule" in line and reason in line


@pytest.mark.parametrize(
    "schedule",
    ["0 0 3 * * *", "0 */15 9-17 * * mon-fri", "30 5 2 1,15 jan-jun,dec ?", "0 0 0 1-31/2 * 0"],
)
def test_valid_six_field_schedules_are_accepted(schedule: str) -> None:
    raw = stack_raw("prod")
    raw["databases"]["backup"]["schedule"] = schedule
    assert parse_platform_config(raw, SOURCE).databases.backup is not None


def test_restoring_a_protected_database_is_rejected_with_what_to_do() -> None:
    raw = stack_raw("prod")
    raw["databases"]["restore"] = {"catalog-service": {"backup": "catalog-service-db-20261124"}}
    (line,) = problems(raw)
    assert line == (
        f"{SOURCE}: vinylhound:platform.databases.restore.catalog-service: restoring replaces the cluster, "
        "which protection refuses: first deploy catalog-service in databases.unprotected on its own, "
        "then the restore"
    )


def test_restoring_is_allowed_where_databases_are_unprotected_by_default() -> None:
    raw = stack_raw("dev")
    raw["databases"]["backup"] = stack_raw("prod")["databases"]["backup"]
    raw["databases"]["restore"] = {"catalog-service": {"backup": "catalog-service-db-20261124"}}
    assert "catalog-service" in parse_platform_config(raw, SOURCE).databases.restore


def test_unprotecting_a_workload_without_a_database_is_rejected() -> None:
    raw = stack_raw("prod")
    raw["databases"]["unprotected"] = ["web"]
    (line,) = problems(raw)
    assert "databases.unprotected.web: no database to unprotect" in line


# --- the component's specs --------------------------------------------------------------------


def _args(**changes: Any) -> sdb.ServiceDatabaseArgs:
    base = sdb.ServiceDatabaseArgs(
        cluster="catalog-service-db",
        namespace="vinylhound",
        database="vinylhound_catalog",
        owner="vinylhound_catalog",
        credentials_secret="catalog-service-db-credentials",
        image="ghcr.io/cloudnative-pg/postgresql:17.6",
        extensions=("pg_trgm",),
    )
    return dataclasses.replace(base, **changes)


def test_the_catalog_database_creates_pg_trgm_at_bootstrap() -> None:
    initdb = sdb.cluster_spec(_args())["bootstrap"]["initdb"]
    assert initdb["postInitApplicationSQL"] == ['CREATE EXTENSION IF NOT EXISTS "pg_trgm"']
    assert (initdb["database"], initdb["owner"], initdb["secret"]) == (
        "vinylhound_catalog",
        "vinylhound_catalog",
        {"name": "catalog-service-db-credentials"},
    )


def test_restore_mode_bootstraps_from_the_named_backup_and_archives_elsewhere() -> None:
    backup = sdb.BackupSpec("s3://b/prod", "creds", "0 0 3 * * *", "30d")
    spec = sdb.cluster_spec(_args(restore_backup="catalog-2026-11-24", backup=backup))
    assert "initdb" not in spec["bootstrap"]
    assert spec["bootstrap"]["recovery"]["backup"] == {"name": "catalog-2026-11-24"}
    assert spec["backup"]["barmanObjectStore"]["serverName"] != "catalog-service-db"


def test_a_user_parameter_cannot_override_the_platforms_wal_level() -> None:
    params = sdb.cluster_spec(_args(parameters={"wal_level": "replica", "work_mem": "16MB"}))["postgresql"]
    assert params["parameters"] == {"wal_level": "logical", "work_mem": "16MB"}


def test_the_connection_uri_requires_tls_and_escapes_the_password() -> None:
    uri = sdb.connection_uri(_args(), "p@ss/word")
    assert uri == (
        "postgresql://vinylhound_catalog:p%40ss%2Fword@catalog-service-db-rw.vinylhound.svc.cluster.local:5432/"
        "vinylhound_catalog?sslmode=require"
    )


# --- rendered stacks --------------------------------------------------------------------------


@pytest.mark.parametrize(("stack", "instances"), [("dev", 1), ("staging", 2), ("prod", 3)])
def test_every_workload_that_owns_tables_gets_a_cluster_with_the_promised_instances(
    stack: str, instances: int
) -> None:
    clusters = of_kind(manifests_of(rendered(stack)), "Cluster")
    assert {name: c["spec"]["instances"] for name, c in clusters.items()} == {
        f"{w}-db": instances for w in DB_OWNERS
    }


def test_prod_keeps_database_instances_on_different_nodes() -> None:
    clusters = of_kind(manifests_of(rendered("prod")), "Cluster")
    assert {c["spec"]["affinity"]["podAntiAffinityType"] for c in clusters.values()} == {"required"}


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_backups_exist_exactly_where_configured(stack: str) -> None:
    objects = manifests_of(rendered(stack))
    clusters, schedules = of_kind(objects, "Cluster"), of_kind(objects, "ScheduledBackup")
    configured = stack_raw(stack).get("databases", {}).get("backup") is not None
    assert {s["spec"]["cluster"]["name"] for s in schedules.values()} == (
        set(clusters) if configured else set()
    )
    assert all(("backup" in c["spec"]) == configured for c in clusters.values())


def test_prod_backups_follow_the_configured_schedule_and_retention() -> None:
    objects = manifests_of(rendered("prod"))
    assert {s["spec"]["schedule"] for s in of_kind(objects, "ScheduledBackup").values()} == {"0 30 2 * * *"}
    assert {c["spec"]["backup"]["retentionPolicy"] for c in of_kind(objects, "Cluster").values()} == {"30d"}


def _secret_refs(deployment: dict[str, Any]) -> set[str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_each_deployment_references_only_its_own_database_secret(stack: str) -> None:
    objects = manifests_of(rendered(stack))
    db_secrets = {name for name in of_kind(objects, "Secret") if name.endswith("-db-credentials")}
    for name, deployment in of_kind(objects, "Deployment").items():
        used = _secret_refs(deployment) & db_secrets
        assert used == ({f"{name}-db-credentials"} if name in DB_OWNERS else set()), name


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_each_service_reads_from_its_own_replicas(stack: str) -> None:
    objects = manifests_of(rendered(stack))
    for name, deployment in of_kind(objects, "Deployment").items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        if "DB_HOST" in env:
            assert env["DB_READ_HOST"] == f"{name}-db-ro.vinylhound.svc.cluster.local"
            assert env["DB_HOST"] == f"{name}-db-rw.vinylhound.svc.cluster.local"
        else:
            assert "DB_READ_HOST" not in env


def test_the_monolith_reads_database_url_from_its_credentials_uri() -> None:
    deployment = of_kind(manifests_of(rendered("prod")), "Deployment")["monolith"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (url,) = [e for e in container["env"] if e["name"] == "DATABASE_URL"]
    assert url["valueFrom"]["secretKeyRef"] == {"name": "monolith-db-credentials", "key": "uri"}


def test_credentials_secrets_are_basic_auth_with_username_password_and_uri() -> None:
    secrets = of_kind(manifests_of(rendered("prod")), "Secret")
    for w in DB_OWNERS:
        secret = secrets[f"{w}-db-credentials"]
        assert secret["type"] == "kubernetes.io/basic-auth"
        assert set(secret["stringData"]) == {"username", "password", "uri"}


def test_every_cluster_is_scraped_by_a_pod_monitor_selecting_its_pods() -> None:
    objects = manifests_of(rendered("prod"))
    selected = {
        (
            m["spec"]["namespaceSelector"]["matchNames"][0],
            m["spec"]["selector"]["matchLabels"][sdb.CLUSTER_LABEL],
        )
        for m in of_kind(objects, "PodMonitor").values()
        if sdb.CLUSTER_LABEL in m["spec"]["selector"].get("matchLabels", {})
    }
    assert selected == {(c["metadata"]["namespace"], name) for name, c in of_kind(objects, "Cluster").items()}


def test_every_cnpg_resource_depends_on_the_operator_release() -> None:
    run = rendered("prod")
    operator = registration(run, "databases-cloudnative-pg")
    cnpg = [r for r in run.registrations if r.type.startswith("kubernetes:postgresql.cnpg.io/")]
    assert cnpg and all(operator.urn in r.dependencies for r in cnpg)


def test_a_replicating_service_publishes_exactly_its_tables_and_subscribes_after_its_schema() -> None:
    run = rendered("prod")  # user-service: replicating
    objects = manifests_of(run)
    publication = of_kind(objects, "Publication")["user-service-db-publication"]
    tables = {o["table"]["name"] for o in publication["spec"]["target"]["objects"]}
    assert tables == set(catalog.workload("user-service").database.tables)  # type: ignore[union-attr]
    subscription = registration(run, "user-service-migration-subscription")
    assert registration(run, "user-service-migration-schema").urn in subscription.dependencies
    assert registration(run, "user-service-migration-publication").urn in subscription.dependencies


def test_a_service_not_started_has_no_replication_resources() -> None:
    objects = manifests_of(rendered("prod"))  # rating-service: not-started
    names = (
        set(of_kind(objects, "Publication"))
        | set(of_kind(objects, "Subscription"))
        | set(of_kind(objects, "Job"))
    )
    assert {n for n in names if n.startswith("rating-service")} == {"rating-service-db-schema"}


def test_a_cut_over_service_has_a_cutover_job_and_reverse_replication_instead_of_forward() -> None:
    run = run_with(cut_over(stack_raw("dev"), "user-service"), stack="dev")
    objects = [manifest(r) for r in run.registrations if is_manifest(r)]
    subs = of_kind(objects, "Subscription")
    assert "user-service-db-subscription" not in subs
    reverse = subs["user-service-db-reverse-subscription"]["spec"]
    assert (reverse["cluster"]["name"], reverse["externalClusterName"]) == ("monolith-db", "user-service")
    assert reverse["parameters"]["copy_data"] == "false"
    assert "user-service-db-cutover" in of_kind(objects, "Job")


def test_the_jobs_run_exactly_the_generated_sql() -> None:
    configmap = of_kind(manifests_of(rendered("prod")), "ConfigMap")["user-service-db-migration"]
    w = catalog.workload("user-service")
    assert migration.service_schema_step(w).sql in configmap["data"]["schema.sh"]
    assert migration.consistency_check_sql(migration.owned_tables(w)) in configmap["data"]["consistency.sh"]


def _env_secrets(job: dict[str, Any]) -> dict[str, str]:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "valueFrom" in e}


def test_a_services_schema_job_reads_the_monolith_after_the_monolith_schema_job() -> None:
    run = rendered("prod")
    job = of_kind(manifests_of(run), "Job")["user-service-db-schema"]
    assert _env_secrets(job) == {
        "MONOLITH_URI": "monolith-db-credentials",
        "SERVICE_URI": "user-service-db-credentials",
    }
    schema = registration(run, "user-service-migration-schema")
    assert registration(run, "monolith-migration-schema").urn in schema.dependencies


@functools.cache
def prod_with_external_monolith() -> Run:
    """prod with its monolith database outside the cluster (rendered once: runs are pure data)."""
    raw = stack_raw("prod")
    raw["databases"]["externalMonolith"] = {"host": "monolith.db.example.net", "secret": "monolith-external"}
    return run_with(raw)


def test_with_an_external_monolith_a_services_schema_job_reads_the_external_database() -> None:
    objects = manifests_of(prod_with_external_monolith())
    job = of_kind(objects, "Job")["rating-service-db-schema"]
    assert _env_secrets(job)["MONOLITH_URI"] == "monolith-external"


def test_migration_jobs_run_without_a_mesh_sidecar_and_as_non_root() -> None:
    jobs = migration_jobs(manifests_of(rendered("prod")))
    assert jobs
    for job in jobs:
        template = job["spec"]["template"]
        assert template["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
        assert template["spec"]["securityContext"]["runAsNonRoot"] is True


def test_an_external_monolith_database_replaces_the_monolith_cluster() -> None:
    objects = manifests_of(prod_with_external_monolith())
    assert "monolith-db" not in of_kind(objects, "Cluster")
    deployment = of_kind(objects, "Deployment")["monolith"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (url,) = [e for e in container["env"] if e["name"] == "DATABASE_URL"]
    assert url["valueFrom"]["secretKeyRef"] == {"name": "monolith-external", "key": "uri"}
    source = of_kind(objects, "Cluster")["user-service-db"]["spec"]["externalClusters"][0]
    assert source["connectionParameters"]["host"] == "monolith.db.example.net"
    assert "user-service-db-publication" in of_kind(objects, "Job")  # no CNPG cluster to hold a Publication


def test_with_an_external_monolith_the_cutover_job_does_not_wait_for_a_reverse_pair() -> None:
    # Nothing replicates back into a monolith the platform does not run: waiting would time out.
    raw = cut_over(stack_raw("staging"), "user-service")
    raw["databases"]["externalMonolith"] = {"host": "monolith.db.example.net", "secret": "monolith-external"}
    objects = [manifest(r) for r in run_with(raw, stack="staging").registrations if is_manifest(r)]
    script = of_kind(objects, "ConfigMap")["user-service-db-migration"]["data"]["cutover.sh"]
    assert "== stop writes in the monolith" in script
    assert "== wait until the reverse replication streams" not in script
    assert not {n for n in of_kind(objects, "Subscription") if n.startswith("user-service")}


def test_a_rolled_back_service_runs_the_rollback_job_and_drops_the_reverse_replication() -> None:
    raw = stack_raw("dev")
    raw["databases"]["migration"]["user-service"] = "rolled-back"
    raw["services"]["user-service"]["cutover"] = {"weight": 0}  # reads back on the monolith too
    # catalog-service stays cut over: account deletions in the monolith then fail on albums.
    raw["databases"]["acceptedCrossServiceWrites"] = {"catalog-service": ["user-service"]}
    objects = [manifest(r) for r in run_with(raw, stack="dev").registrations if is_manifest(r)]
    jobs, subs = of_kind(objects, "Job"), of_kind(objects, "Subscription")
    assert "user-service-db-rollback" in jobs and "user-service-db-cutover" not in jobs
    assert not {n for n in subs if n.startswith("user-service")}
    configmap = of_kind(objects, "ConfigMap")["user-service-db-migration"]
    assert (
        migration.unfreeze_writes_sql(migration.owned_tables(catalog.workload("user-service")))
        in (configmap["data"]["rollback.sh"])
    )


def test_migration_sql_prints_the_generated_rollback_script() -> None:
    from typer.testing import CliRunner

    from ops.cli import app

    result = CliRunner().invoke(app, ["migration-sql", "playlist-service", "rollback"])
    assert result.exit_code == 0
    assert (
        migration.sequence_transfer_sql(migration.owned_tables(catalog.workload("playlist-service")))
        in result.stdout
    )


def test_a_jobs_pod_template_carries_the_hash_of_the_script_it_runs() -> None:
    import hashlib

    objects = manifests_of(rendered("prod"))
    configmaps = of_kind(objects, "ConfigMap")
    for job in migration_jobs(objects):
        pod = job["spec"]["template"]
        script = pod["spec"]["containers"][0]["command"][1].removeprefix("/scripts/")
        configmap = configmaps[pod["spec"]["volumes"][0]["configMap"]["name"]]
        digest = hashlib.sha256(configmap["data"][script].encode()).hexdigest()
        assert pod["metadata"]["annotations"]["vinylhound.dev/script-sha256"] == digest


def test_each_workload_depends_on_its_database_credentials() -> None:
    run = rendered("prod")
    for w in DB_OWNERS:
        secret = registration(run, f"{w}-db-credentials")
        # WorkloadExtras.depends_on lands on the Microservice component (see the report/docs).
        assert secret.urn in registration(run, w).dependencies


@functools.cache
def prod_restoring_catalog() -> Run:
    """prod with catalog-service's database restored from a named backup (rendered once)."""
    raw = stack_raw("prod")
    raw["databases"]["restore"] = {"catalog-service": {"backup": "catalog-service-db-20261124"}}
    raw["databases"]["unprotected"] = ["catalog-service"]
    return run_with(raw)


def test_restore_mode_renders_a_cluster_bootstrapped_from_the_named_backup() -> None:
    clusters = of_kind(manifests_of(prod_restoring_catalog()), "Cluster")
    assert clusters["catalog-service-db"]["spec"]["bootstrap"] == {
        "recovery": {
            "backup": {"name": "catalog-service-db-20261124"},
            "database": "vinylhound_catalog",
            "owner": "vinylhound_catalog",
            "secret": {"name": "catalog-service-db-credentials"},
        }
    }
    assert "initdb" in clusters["rating-service-db"]["spec"]["bootstrap"]


def test_the_monolith_schema_job_can_be_left_to_the_monoliths_own_migrations() -> None:
    raw = stack_raw("prod")
    raw["databases"]["initMonolithSchema"] = False
    jobs = of_kind([manifest(r) for r in run_with(raw).registrations if is_manifest(r)], "Job")
    assert "monolith-db-schema" not in jobs and "user-service-db-schema" in jobs


# --- deletion guard and restore ---------------------------------------------------------------

GUARDED = ("cluster", "credentials", "replication")


def _guarded(run: Run) -> dict[str, tuple[bool, bool]]:
    """Per database resource (cluster and Secrets): its (protect, retain_on_delete) options."""
    return {
        r.name: (r.protect, r.retain_on_delete)
        for r in run.registrations
        if r.type in ("kubernetes:postgresql.cnpg.io/v1:Cluster", "kubernetes:core/v1:Secret")
        and "-db-" in r.name
        and r.name.rsplit("-", 1)[-1] in GUARDED
    }


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_outside_dev_every_cluster_and_its_secrets_are_protected_and_retained(stack: str) -> None:
    guarded = _guarded(rendered(stack))
    assert {f"{w}-db-cluster" for w in DB_OWNERS} <= guarded.keys()
    assert {f"{w}-db-credentials" for w in DB_OWNERS} <= guarded.keys()
    assert set(guarded.values()) == {(True, True)}


def test_dev_databases_can_be_deleted() -> None:
    guarded = _guarded(rendered("dev"))
    assert guarded and set(guarded.values()) == {(False, False)}


def test_the_protect_setting_turns_the_guard_off_everywhere() -> None:
    raw = stack_raw("prod")
    raw["databases"]["protect"] = False
    assert set(_guarded(run_with(raw)).values()) == {(False, False)}


def test_unprotecting_one_database_lifts_only_its_guard() -> None:
    raw = stack_raw("prod")
    raw["databases"]["unprotected"] = ["catalog-service"]
    guarded = _guarded(run_with(raw))
    lifted = {name for name, options in guarded.items() if options == (False, False)}
    assert lifted == {"catalog-service-db-cluster", "catalog-service-db-credentials"}
    assert guarded["rating-service-db-cluster"] == (True, True)


def test_the_schedule_and_monitor_are_not_guarded() -> None:
    run = rendered("prod")
    assert not registration(run, "catalog-service-db-backup").protect
    assert not registration(run, "catalog-service-db-monitor").protect


def test_a_new_recovery_source_replaces_the_cluster_deleting_the_old_one_first() -> None:
    for w in DB_OWNERS:
        cluster = registration(rendered("prod"), f"{w}-db-cluster")
        assert cluster.replace_on_changes == ("spec.bootstrap.recovery",)
        assert cluster.delete_before_replace
    # The path the engine compares exists in what is registered, where the restore puts it.
    inputs = registration(prod_restoring_catalog(), "catalog-service-db-cluster").inputs
    assert inputs["spec"]["bootstrap"]["recovery"]["backup"]["name"] == "catalog-service-db-20261124"


def test_resources_json_keeps_its_shape() -> None:
    record = registration(rendered("prod"), "catalog-service-db-cluster").record()
    assert set(record) == {"urn", "type", "name", "parent", "dependencies", "aliases", "inputs"}
