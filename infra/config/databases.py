"""Database settings (CloudNativePG clusters, backups, restores, migration phases) and their rules."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from infra import catalog, cross_writes, migration, schema
from infra.config.types import (
    PG_PARAMETER_NAME,
    BackupRetention,
    CnpgCron,
    DnsLabel,
    Hostname,
    Model,
    ObjectStorePath,
    PinnedImage,
    Problem,
    StorageSize,
    Url,
)
from infra.config.workloads import ResourceAmounts, Resources

if TYPE_CHECKING:
    from infra.config import PlatformConfig

#: postgresql.conf settings the platform decides, refused in ``databases.parameters``. Logical
#: replication moves tables in and out, so every cluster must allow it. The ServiceDatabase
#: component sets the same (``components.kubernetes.service_database.PLATFORM_PARAMETERS``; config
#: imports no component, ``tests/test_imports.py`` checks the two agree).
PLATFORM_PARAMETERS: Mapping[str, str] = {"wal_level": "logical"}


#: PostgreSQL instances per database (primary + read replicas): the default and the minimum.
MIN_DB_INSTANCES: dict[str, int] = {"local": 1, "dev": 1, "staging": 2, "prod": 3}

#: Environments whose databases are guarded against deletion unless ``databases.protect`` says.
UNPROTECTED_BY_DEFAULT: frozenset[str] = frozenset({"local", "dev"})

#: Environments whose databases must have backups.
BACKUP_REQUIRED: frozenset[str] = frozenset({"staging", "prod"})


# --- databases -------------------------------------------------------------------------------

MigrationPhase = Literal["not-started", "replicating", "cut-over", "rolled-back"]


class DatabaseStorage(Model):
    """The volume of each PostgreSQL instance. Default: 1Gi of the cluster's default class."""

    size: StorageSize = "1Gi"
    #: Default: the cluster's default StorageClass.
    storage_class: Hostname | None = None


class BackupTarget(Model):
    """Where and when CloudNativePG backs up (Barman to an object store) and how long it keeps.

    ``credentials_secret`` is an existing Secret in the namespace with the keys
    ``ACCESS_KEY_ID`` and ``ACCESS_SECRET_KEY``. Each cluster writes below
    ``destination_path`` in a folder named after it.
    """

    destination_path: ObjectStorePath
    #: Default: the provider's own endpoint (set it for MinIO and other S3-compatible stores).
    endpoint_url: Url | None = None
    credentials_secret: DnsLabel
    #: Six-field cron (seconds first). Default: every day at 03:00.
    schedule: CnpgCron = "0 0 3 * * *"
    #: Default: keep 30 days of backups and WAL.
    retention: BackupRetention = "30d"


class RestoreFrom(Model):
    """Bootstrap a database from a backup instead of an empty ``initdb`` (disaster recovery)."""

    #: Name of a CloudNativePG ``Backup`` object in the namespace.
    backup: DnsLabel


class ExternalDatabase(Model):
    """A monolith database the platform does not run (a managed service, say).

    ``secret`` is an existing Secret in the namespace with the keys ``username``, ``password``
    and ``uri`` (a libpq URL). Replication out of it logs in as ``replication_user`` with that
    Secret's password; the role needs the REPLICATION attribute and read access to the tables.
    """

    host: Hostname
    secret: DnsLabel
    port: int = Field(default=5432, ge=1, le=65535)
    database: str = "vinylhound"
    replication_user: str = "vinylhound"


def _default_db_resources() -> Resources:
    return Resources(
        requests=ResourceAmounts(cpu="250m", memory="512Mi"),
        limits=ResourceAmounts(cpu="1", memory="1Gi"),
    )


class DatabasesConfig(Model):
    """One CloudNativePG cluster per workload that owns tables, and the split of the monolith."""

    #: Instances per cluster, primary included. Default: dev 1, staging 2, prod 3.
    instances: int | None = Field(default=None, ge=1)
    storage: DatabaseStorage = DatabaseStorage()
    #: Default: 250m/512Mi requested, 1 CPU/1Gi limit per instance.
    resources: Resources = Field(default_factory=_default_db_resources)
    #: Extra postgresql.conf settings for every cluster; ``wal_level`` (always ``logical``) is the
    #: platform's and is rejected here.
    parameters: dict[str, str] = Field(default_factory=dict)
    #: The PostgreSQL image of the clusters and of the migration Jobs (they run its psql).
    image: PinnedImage = (
        "ghcr.io/cloudnative-pg/postgresql:17.6"
        "@sha256:30b304a2e300ed80b6d1b740e4369e9b0f25599fb518de78c01fd9f25531791b"
    )
    #: Default: no backups. Required in staging and prod.
    backup: BackupTarget | None = None
    #: Per workload: bootstrap its database from a named backup. Default: none (initdb).
    restore: dict[str, RestoreFrom] = Field(default_factory=dict)
    #: Per service: where moving its tables out of the monolith stands. Default: not-started.
    migration: dict[str, MigrationPhase] = Field(default_factory=dict)
    #: Per service: the workloads whose writes into its tables (cascading deletes, the Favorites
    #: trigger) you accept will FAIL in the monolith while its tables are fenced there and theirs
    #: are not. Default: none; a cut-over then needs those workloads cut over too (first).
    accepted_cross_service_writes: dict[str, list[str]] = Field(default_factory=dict)
    #: Default: the platform runs the monolith's database too.
    external_monolith: ExternalDatabase | None = None
    #: Apply the generated monolith schema (idempotent) to the platform-run monolith database, for
    #: new environments. Turn off where the monolith's own migrations manage that schema.
    init_monolith_schema: bool = True
    #: Guard every CloudNativePG cluster and its credentials against deletion (Pulumi ``protect``
    #: and ``retainOnDelete``). Default: on, except in local and dev.
    protect: bool | None = None
    #: Workloads whose database guard is lifted, to delete or restore that one database; deploy
    #: the lift on its own first (``pulumi up``), then the deletion or restore.
    unprotected: list[str] = Field(default_factory=list)

    def protected(self, workload: str, environment: str) -> bool:
        """Whether ``workload``'s database is guarded against deletion and replacement."""
        guarded = self.protect if self.protect is not None else environment not in UNPROTECTED_BY_DEFAULT
        return guarded and workload not in self.unprotected

    def instances_for(self, environment: str) -> int:
        """The instance count of every cluster in ``environment``."""
        return self.instances if self.instances is not None else MIN_DB_INSTANCES[environment]

    def phase(self, workload: str) -> MigrationPhase:
        """The migration phase of ``workload`` (``not-started`` unless configured)."""
        return self.migration.get(workload, "not-started")


def database_rules(cfg: PlatformConfig) -> Iterator[Problem]:
    """Instances, backups, restores, migration phases, and the catalog's table ownership."""
    for table, message in migration.ownership_problems(catalog.WORKLOADS, schema.TABLES):
        yield Problem(f"databases.tables.{table}", message)
    dbs, env = cfg.databases, cfg.environment
    minimum = MIN_DB_INSTANCES[env]
    if dbs.instances is not None and dbs.instances < minimum:
        yield Problem(
            "databases.instances",
            f"{dbs.instances} is below the {env} minimum of {minimum} (a primary and {minimum - 1} replicas)",
        )
    if dbs.backup is None and env in BACKUP_REQUIRED:
        yield Problem("databases.backup", f"{env} requires backups: set a backup target")
    for key in dbs.parameters:
        if not PG_PARAMETER_NAME.match(key):
            yield Problem(f"databases.parameters.{key}", "not a PostgreSQL parameter name")
        elif key in PLATFORM_PARAMETERS:
            yield Problem(
                f"databases.parameters.{key}",
                f"set by the platform ({key} = {PLATFORM_PARAMETERS[key]}, logical replication needs it); "
                "remove it",
            )
    owners = {w.name for w in catalog.WORKLOADS if w.database is not None}
    for name in dbs.restore:
        if name not in owners:
            yield Problem(
                f"databases.restore.{name}",
                f"no database to restore; workloads with one: {', '.join(sorted(owners))}",
            )
        elif name == "monolith" and dbs.external_monolith is not None:
            yield Problem(
                "databases.restore.monolith", "the monolith's database is external; restore it there"
            )
        if dbs.backup is None:
            yield Problem(
                f"databases.restore.{name}", "restoring needs databases.backup (where the backup is)"
            )
        if name in owners and dbs.protected(name, env):
            yield Problem(
                f"databases.restore.{name}",
                f"restoring replaces the cluster, which protection refuses: first deploy {name} "
                "in databases.unprotected on its own, then the restore",
            )
    for name in dbs.unprotected:
        if name not in owners:
            yield Problem(
                f"databases.unprotected.{name}",
                f"no database to unprotect; workloads with one: {', '.join(sorted(owners))}",
            )
    enabled = {w.name for w, _ in cfg.enabled()}
    services = {w.name for w in catalog.WORKLOADS if w.database is not None and w.role == "service"}
    new = {w.name for w in catalog.WORKLOADS if w.name in services and w.database and w.database.is_new}
    for name, phase in dbs.migration.items():
        if name in new:
            yield Problem(
                f"databases.migration.{name}",
                f"{name} owns a new database (no monolith tables): nothing moves, so it has no "
                "migration phase; remove it",
            )
        elif name not in services:
            yield Problem(
                f"databases.migration.{name}",
                f"not a service that owns tables; those are {', '.join(sorted(services))}",
            )
        elif phase != "not-started" and name not in enabled:
            yield Problem(f"databases.migration.{name}", f"{phase} needs {name} enabled in services")
    yield from cross_service_write_rules(dbs)


def cross_service_write_rules(dbs: DatabasesConfig) -> Iterator[Problem]:
    """No phase fences a table in the monolith that the monolith still writes through a
    cascading foreign key or a trigger from another workload's tables (the schema model's
    paths; the cut-over Job checks the live database's own before it fences)."""
    with_tables = {w.name for w in catalog.WORKLOADS if w.database is not None}
    for service, writers in dbs.accepted_cross_service_writes.items():
        if service not in with_tables:
            yield Problem(
                f"databases.acceptedCrossServiceWrites.{service}",
                f"no tables of its own; workloads with tables: {', '.join(sorted(with_tables))}",
            )
        for writer in writers:
            if writer not in with_tables or writer == service:
                yield Problem(
                    f"databases.acceptedCrossServiceWrites.{service}",
                    f"{writer!r} is not another workload with tables",
                )
    blocked = cross_writes.order_problems(catalog.WORKLOADS, dbs.migration, dbs.accepted_cross_service_writes)
    for service, blockers in blocked.items():
        for writer, paths in blockers:
            state = "always writes its own tables" if writer == "monolith" else f"is {dbs.phase(writer)}"
            via = "; ".join(f"{p.via} (writes {p.target} when {p.source} changes)" for p in paths)
            yield Problem(
                f"databases.migration.{service}",
                f"cut-over fences tables the monolith still writes from {writer}'s tables ({writer} "
                f"{state}): {via}. Cut {writer} over first (or in the same update), or accept the "
                f"failing writes: databases.acceptedCrossServiceWrites.{service}: [{writer}]",
            )
