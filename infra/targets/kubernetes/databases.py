"""Databases on Kubernetes: the CloudNativePG operator, one ``ServiceDatabase`` per workload that
owns tables, and the per-service move of those tables out of the monolith.

Migration phases (``databases.migration.<service>`` in the stack):

- ``not-started``: the service's cluster and its schema only;
- ``replicating``: a ``Publication`` in the monolith for exactly the service's tables, a
  ``Subscription`` in the service's cluster (after its schema), and a consistency-check Job;
- ``cut-over``: a reverse pair (service -> monolith, no initial copy) is declared first; then a
  Job checks the live monolith for cross-service writes, waits until the reverse pair streams,
  stops writes in the monolith, waits until the service has everything, verifies, records the
  decision and moves sequences (it waits for the cutover Jobs of the workloads writing into its
  tables). The forward Publication/Subscription leave the program (CNPG drops them: reclaim
  policy ``delete``); the reverse pair keeps the monolith current from before the first write
  the service takes, so rolling back loses nothing;
- ``rolled-back``: a Job stops writes in the service, waits until the monolith has everything,
  verifies, moves the monolith's sequences and opens its tables again; the reverse pair leaves
  the program. The service's database keeps its (frozen) copy: recreate it before replicating
  again.

The cutover and rollback Jobs are awaited (no ``pulumi.com/skipAwait``): the routes that move the
service's writes (``mesh.Mesh``) depend on them, so ``pulumi up`` moves writes only after
the Job has completed, and fails with the routes unchanged when it fails.

Every SQL statement the Jobs run comes from ``infra.migration`` (the tests run the same).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.kubernetes.custom_resource import custom_resource
from components.kubernetes.service_database import (
    CNPG_API,
    REPLICATION_ROLE,
    BackupSpec,
    ExternalCluster,
    ServiceDatabase,
    ServiceDatabaseArgs,
)
from components.kubernetes.specs import KubeObject, ResourceSpec, env_entry
from components.labels import LabelContext
from components.options import child_opts, waits
from components.values import EnvVar, SecretKeyRef
from infra import catalog, cross_writes, env, migration
from infra.catalog import Workload
from infra.config import PlatformConfig
from infra.targets.kubernetes import helm, network
from infra.targets.kubernetes.extras import WorkloadExtras
from infra.targets.kubernetes.helm import Chart

TYPE = "vinylhound:databases:Databases"
MIGRATION_TYPE = "vinylhound:databases:ServiceMigration"
OPERATOR_NAMESPACE = "cnpg-system"
CNPG_REPOSITORY = "https://cloudnative-pg.github.io/charts"
CNPG_CHART = Chart("cloudnative-pg", CNPG_REPOSITORY)
#: uid of the postgres user in the CloudNativePG PostgreSQL images.
POSTGRES_UID = 26
#: The external cluster name under which service clusters see the monolith.
MONOLITH_SOURCE = "monolith"

#: Each migration Job's container: psql and a shell script; one 64Mi emptyDir and its logs on disk.
MIGRATION_JOB_RESOURCES = ResourceSpec("50m", "64Mi", "500m", "256Mi", "64Mi", "256Mi")


def instance_resources(cfg: PlatformConfig) -> ResourceSpec:
    """Each database instance's container: the stack's CPU and memory. Ephemeral storage: the
    data and WAL live on the volume, but CloudNativePG keeps scratch files (WAL being archived or
    restored) in an emptyDir and PostgreSQL logs to stdout, hence more than a service's."""
    r = cfg.databases.resources
    return ResourceSpec(r.requests.cpu, r.requests.memory, r.limits.cpu, r.limits.memory, "256Mi", "2Gi")


def endpoint_for(cfg: PlatformConfig, workload: Workload) -> env.DatabaseEndpoint | None:
    """The workload's own database endpoint: CNPG naming, or the configured external monolith."""
    external = cfg.databases.external_monolith
    if workload.name == "monolith" and external is not None:
        return env.DatabaseEndpoint(
            cluster=f"{workload.name}-db",
            rw_host=external.host,
            ro_host=external.host,
            name=external.database,
            user=external.replication_user,
            secret=external.secret,
            port=external.port,
            external=True,
        )
    return env.database_endpoint(workload, cfg.namespace)


def cnpg_operator(
    resource_name: str, version: str, replicas: int, opts: pulumi.ResourceOptions | None = None
) -> k8s.helm.v3.Release:
    """The CloudNativePG operator from its official chart, which also installs its CRDs."""
    return helm.release(
        resource_name,
        CNPG_CHART,
        version,
        OPERATOR_NAMESPACE,
        {"crds": {"create": True}, "replicaCount": replicas},
        opts,
        release_name="cnpg",
    )


def _image_tag(image: str) -> str:
    """The tag of ``registry/name:tag[@digest]`` (the version label of database objects)."""
    return image.split("@")[0].rpartition(":")[2]


def _backup(cfg: PlatformConfig) -> BackupSpec | None:
    target = cfg.databases.backup
    if target is None:
        return None
    return BackupSpec(
        destination_path=target.destination_path,
        credentials_secret=target.credentials_secret,
        schedule=target.schedule,
        retention=target.retention,
        endpoint_url=target.endpoint_url,
    )


def _monolith_source(cfg: PlatformConfig, monolith: env.DatabaseEndpoint) -> ExternalCluster:
    """How a service cluster reaches the monolith to subscribe."""
    if monolith.external:
        return ExternalCluster(
            name=MONOLITH_SOURCE,
            host=monolith.rw_host,
            port=monolith.port,
            dbname=monolith.name,
            user=monolith.user,
            password_secret=monolith.secret,
        )
    return ExternalCluster(
        name=MONOLITH_SOURCE,
        host=monolith.rw_host,
        dbname=monolith.name,
        user=REPLICATION_ROLE,
        password_secret=f"{monolith.cluster}-replication",
    )


def _service_source(endpoint: env.DatabaseEndpoint, workload: Workload) -> ExternalCluster:
    """How the monolith's cluster reaches a cut-over service to subscribe back."""
    return ExternalCluster(
        name=workload.name,
        host=endpoint.rw_host,
        dbname=endpoint.name,
        user=REPLICATION_ROLE,
        password_secret=f"{endpoint.cluster}-replication",
    )


@dataclass(frozen=True)
class DatabasesArgs:
    """What the databases register and wait for (``databases_args`` builds it).

    ``app_namespace``: the workloads' namespace, ``namespace`` the resource that creates it.
    ``operator_version``/``operator_replicas``: the CNPG chart and its controller's replicas.
    ``endpoints``: per enabled workload with a database, its endpoint (an external monolith's
    too). ``databases``: per workload whose cluster is declared here, its args (catalog order).
    ``migrations``: per workload whose schema is applied here, what its migration runs (the
    monolith first: a service's schema is read from the monolith's tables).
    ``network_policies``: per NetworkPolicy name, its spec; ``policies_before_components``: those
    of them whose workload was deployed before the area components (their Pulumi name then was
    ``<name>-netpol``). ``read_host_readers``: the workloads that read ``DB_HOST`` and get
    ``DB_READ_HOST``. ``monitoring_crds``: the release that installs
    the Prometheus Operator CRDs; every PodMonitor depends on it.
    """

    app_namespace: str
    context: LabelContext
    namespace: pulumi.Resource
    operator_version: str
    operator_replicas: int
    endpoints: Mapping[str, env.DatabaseEndpoint]
    databases: Mapping[str, ServiceDatabaseArgs]
    migrations: Mapping[str, MigrationPlan]
    network_policies: Mapping[str, KubeObject]
    policies_before_components: frozenset[str] = frozenset()
    read_host_readers: frozenset[str] = frozenset()
    monitoring_crds: Sequence[pulumi.Resource] = ()


def _database_args(
    cfg: PlatformConfig,
    context: LabelContext,
    w: Workload,
    endpoints: Mapping[str, env.DatabaseEndpoint],
    sources: Sequence[ExternalCluster],
    monitoring_namespace: str | None,
) -> ServiceDatabaseArgs:
    dbs, endpoint = cfg.databases, endpoints[w.name]
    assert w.database is not None
    return ServiceDatabaseArgs(
        cluster=endpoint.cluster,
        namespace=cfg.namespace,
        database=endpoint.name,
        owner=endpoint.user,
        credentials_secret=endpoint.secret,
        image=dbs.image,
        labels=context.workload(endpoint.cluster, _image_tag(dbs.image), "database"),
        instances=dbs.instances_for(cfg.environment),
        storage_size=dbs.storage.size,
        storage_class=dbs.storage.storage_class,
        resources=instance_resources(cfg),
        parameters=dbs.parameters,
        extensions=w.database.extensions,
        anti_affinity="required" if cfg.environment == "prod" else "preferred",
        backup=_backup(cfg),
        restore_backup=dbs.restore[w.name].backup if w.name in dbs.restore else None,
        # The monolith publishes to every service; a cut-over service publishes back.
        replication_role=w.name == "monolith" or dbs.phase(w.name) == "cut-over",
        external_clusters=sources,
        monitor_namespace=monitoring_namespace,
        protect=dbs.protected(w.name, cfg.environment),
    )


def _migration_plan(
    cfg: PlatformConfig,
    context: LabelContext,
    w: Workload,
    endpoints: Mapping[str, env.DatabaseEndpoint],
    declared: Mapping[str, MigrationPlan],
) -> MigrationPlan:
    """What ``w``'s migration runs in its phase; ``declared``: the plans before it."""
    dbs, own, monolith = cfg.databases, endpoints[w.name], endpoints["monolith"]
    phase = dbs.phase(w.name)
    # The monolith's own schema comes from the model (dev's fresh monolith); a service's is
    # read from the running monolith, whatever it has drifted to.
    schema_step = (
        migration.Step("apply the schema", "monolith", "execute", migration.monolith_schema_sql())
        if w.name == "monolith"
        else migration.service_schema_step(w)
    )
    accepted = tuple(
        cross_writes.accepted_tables(catalog.WORKLOADS, dbs.accepted_cross_service_writes.get(w.name, []))
    )
    # The cutover Jobs of the workloads whose tables write into ``w``'s (cascades, triggers),
    # when both cut over: the live check in ``w``'s Job needs their fences. The catalog lists a
    # writer before the tables it writes into (tested), so its plan is declared by now.
    writers = (
        tuple(
            writer
            for writer in sorted(cross_writes.writers_into(w.name, catalog.WORKLOADS))
            if dbs.phase(writer) == "cut-over" and writer in declared
        )
        if phase == "cut-over"
        else ()
    )
    return MigrationPlan(
        workload=w.name,
        phase=phase,
        namespace=cfg.namespace,
        image=dbs.image,
        labels=context.workload(f"{own.cluster}-migration", _image_tag(dbs.image), "migration"),
        own=own,
        monolith=monolith,
        scripts={
            "schema.sh": migration.job_script([schema_step]),
            **_phase_scripts(w, phase, monolith.external, accepted),
        },
        forward=migration.forward_names(w),
        reverse=migration.reverse_names(w),
        tables=tuple(t.name for t in migration.owned_tables(w)),
        after_writers=writers,
    )


def databases_args(
    cfg: PlatformConfig,
    context: LabelContext,
    namespace: pulumi.Resource,
    monitoring_crds: Sequence[pulumi.Resource] = (),
    monitoring_namespace: str | None = None,
) -> DatabasesArgs:
    """The databases' args from the stack's config: which clusters exist, which replicate from
    where, what each migration runs, and who may reach each database. ``monitoring_namespace``:
    where the PodMonitors live (default: the app's)."""
    dbs = cfg.databases
    enabled = [w for w, _ in cfg.enabled() if w.database is not None]
    endpoints = {w.name: e for w in enabled if (e := endpoint_for(cfg, w)) is not None}
    monolith = endpoints["monolith"]
    cut_over = [w for w in enabled if dbs.phase(w.name) == "cut-over"]
    databases: dict[str, ServiceDatabaseArgs] = {}
    for w in enabled:
        if endpoints[w.name].external:
            continue
        if w.name == "monolith":
            sources = [_service_source(endpoints[s.name], s) for s in cut_over]
        elif dbs.phase(w.name) != "not-started":
            sources = [_monolith_source(cfg, monolith)]
        else:
            sources = []
        databases[w.name] = _database_args(cfg, context, w, endpoints, sources, monitoring_namespace)

    migrations: dict[str, MigrationPlan] = {}
    # The monolith first: a service's schema is read from the monolith's tables.
    for w in sorted(enabled, key=lambda w: w.name != "monolith"):
        if endpoints[w.name].external or (w.name == "monolith" and not dbs.init_monolith_schema):
            continue  # the monolith's schema is then its owner's business
        if w.database is not None and w.database.is_new:
            continue  # nothing to move; the service's own migrations create its schema
        migrations[w.name] = _migration_plan(cfg, context, w, endpoints, migrations)

    # Under the namespace's default deny: who reaches each database's instances (and where they
    # go), and each service's migration Jobs to exactly its two databases.
    services = [e for name, e in endpoints.items() if name != "monolith"]
    monitoring = monitoring_namespace or cfg.namespace
    policies = {
        endpoints[name].cluster: network.database_policy(
            endpoints[name], name, monolith, services, monitoring
        )
        for name in databases
    }
    policies |= {
        f"{endpoints[name].cluster}-migration": network.migration_job_policy(endpoints[name], monolith)
        for name in migrations
    }
    before_components = frozenset(
        policy
        for name in (*databases, *migrations)
        if catalog.predates_components(name)
        for policy in (endpoints[name].cluster, f"{endpoints[name].cluster}-migration")
    )
    return DatabasesArgs(
        app_namespace=cfg.namespace,
        context=context,
        namespace=namespace,
        operator_version=cfg.charts.cloudnative_pg,
        operator_replicas=2 if cfg.environment == "prod" else 1,
        endpoints=endpoints,
        databases=databases,
        migrations=migrations,
        network_policies=policies,
        policies_before_components=before_components & policies.keys(),
        read_host_readers=frozenset(w.name for w in enabled if "DB_HOST" in w.env),
        monitoring_crds=monitoring_crds,
    )


class Databases(pulumi.ComponentResource):
    """The CNPG operator, every enabled workload's database and the move of its tables.

    ``extras`` gives the workloads ``DB_READ_HOST``, egress to an external monolith and the
    credentials Secrets to wait for. ``write_route_gates``: per service at ``cut-over`` or
    ``rolled-back``, the Job that moves its tables; routes that send its writes wait for it.
    """

    operator: k8s.helm.v3.Release
    clusters: dict[str, ServiceDatabase]
    endpoints: dict[str, env.DatabaseEndpoint]
    migrations: dict[str, ServiceMigration]
    write_route_gates: dict[str, k8s.batch.v1.Job]
    extras: WorkloadExtras

    def __init__(self, name: str, args: DatabasesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        # cnpg-system is declared by the program (``ChartNamespaces``), which this waits for.
        self.operator = cnpg_operator(
            f"{name}-cloudnative-pg",
            args.operator_version,
            args.operator_replicas,
            child_opts(self, waits(opts), moved_from_root=True, renamed_from="cloudnative-pg"),
        )
        self.endpoints = dict(args.endpoints)
        self.clusters = {
            w: ServiceDatabase(
                f"{w}-db",
                db_args,
                child_opts(
                    self,
                    [args.namespace, self.operator, *args.monitoring_crds],
                    moved_from_root=catalog.predates_components(w),
                ),
            )
            for w, db_args in args.databases.items()
        }
        self.migrations = {}
        for w, plan in args.migrations.items():
            monolith_ready: list[pulumi.Resource] = []
            if w != "monolith" and "monolith" in self.migrations:
                monolith_ready = [self.migrations["monolith"].schema_job]
            elif w != "monolith" and "monolith" in self.clusters:
                monolith_ready = [self.clusters["monolith"].cluster]
            gates = (self.migrations[writer].write_gate for writer in plan.after_writers)
            self.migrations[w] = ServiceMigration(
                f"{w}-migration",
                ServiceMigrationArgs(
                    plan=plan,
                    database=self.clusters[w],
                    monolith_database=self.clusters.get("monolith"),
                    operator=self.operator,
                    after_cutovers=tuple(g for g in gates if g is not None),
                ),
                child_opts(self, [args.namespace, *monolith_ready]),
            )
        self.write_route_gates = {
            name: m.write_gate for name, m in self.migrations.items() if m.write_gate is not None
        }
        for k8s_name, spec in args.network_policies.items():
            old_name = f"{k8s_name}-netpol" if k8s_name in args.policies_before_components else None
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{k8s_name}-netpol",
                metadata={"name": k8s_name, "namespace": args.app_namespace, "labels": args.context.common()},
                spec=spec,
                opts=child_opts(self, [args.namespace], renamed_from=old_name),
            )
        endpoints, readers = self.endpoints, args.read_host_readers
        self.extras = WorkloadExtras(
            env=(lambda w: _read_host(w.name, endpoints, readers),),
            egress=(lambda w: _external_egress(w.name, endpoints),),
            depends_on=tuple(db.credentials for db in self.clusters.values()),
        )
        self.register_outputs({"exports": self.exports()})

    def exports(self) -> dict[str, dict[str, object]]:
        """Per workload: read-write and read-only hosts, port, database and credentials Secret."""
        return {
            name: {
                "rwHost": e.rw_host,
                "roHost": e.ro_host,
                "port": e.port,
                "database": e.name,
                "secret": e.secret,
            }
            for name, e in self.endpoints.items()
        }


def _read_host(
    workload: str, endpoints: Mapping[str, env.DatabaseEndpoint], readers: frozenset[str]
) -> list[EnvVar]:
    """``DB_READ_HOST``: the read replicas of the workload's OWN database, for DB_* readers."""
    own = endpoints.get(workload)
    if own is None or workload not in readers:
        return []
    return [EnvVar("DB_READ_HOST", own.ro_host)]


def _external_egress(workload: str, endpoints: Mapping[str, env.DatabaseEndpoint]) -> list[KubeObject]:
    """An external database has no pods to select: allow its port to any address."""
    own = endpoints.get(workload)
    if own is None or not own.external:
        return []
    return [{"ports": [{"protocol": "TCP", "port": own.port}]}]


# --- migration ------------------------------------------------------------------------------


#: How long a migration Job may run (``activeDeadlineSeconds``); Kubernetes then fails it.
JOB_DEADLINE_SECONDS = 3600
#: How long ``pulumi up`` waits for a cutover or rollback Job (the provider's default is 10
#: minutes, shorter than the catch-up wait plus retries): a little beyond the Job's own deadline,
#: so the up never gives up on a Job that may still close the tables.
GATE_JOB_TIMEOUT = f"{JOB_DEADLINE_SECONDS // 60 + 5}m"

#: Pod annotation carrying the hash of the Job's script: new SQL changes the (immutable) pod
#: template, so Pulumi replaces the Job and the new SQL runs.
SCRIPT_HASH = "vinylhound.dev/script-sha256"


def job_spec(
    name: str,
    image: str,
    configmap: str,
    script: str,
    script_text: str,
    env_vars: Sequence[EnvVar],
    labels: dict[str, str],
    backoff_limit: int = 4,
) -> KubeObject:
    """A Job running one generated script with ``psql`` from the PostgreSQL image, non-root and
    without an Istio sidecar (a sidecar would keep the Job's pod from ever completing)."""
    annotations = {
        "sidecar.istio.io/inject": "false",
        SCRIPT_HASH: hashlib.sha256(script_text.encode()).hexdigest(),
    }
    return {
        "backoffLimit": backoff_limit,
        "activeDeadlineSeconds": JOB_DEADLINE_SECONDS,
        "template": {
            "metadata": {"labels": labels, "annotations": annotations},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": POSTGRES_UID,
                    "runAsGroup": POSTGRES_UID,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": name,
                        "image": image,
                        "command": ["sh", f"/scripts/{script}"],
                        "env": [env_entry(e) for e in env_vars],
                        "resources": MIGRATION_JOB_RESOURCES.to_kube(),
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "volumeMounts": [
                            {"name": "scripts", "mountPath": "/scripts", "readOnly": True},
                            {"name": "tmp", "mountPath": "/tmp"},
                        ],
                    }
                ],
                "volumes": [
                    {"name": "scripts", "configMap": {"name": configmap}},
                    {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                ],
            },
        },
    }


def publication_spec(
    cluster: str, dbname: str, names: migration.ReplicationNames, tables: Sequence[str]
) -> KubeObject:
    """A CNPG ``Publication`` for exactly the workload's tables (the same list the SQL uses)."""
    return {
        "cluster": {"name": cluster},
        "dbname": dbname,
        "name": names.publication,
        "target": {"objects": [{"table": {"schema": "public", "name": t}} for t in tables]},
        "publicationReclaimPolicy": "delete",
    }


def subscription_spec(
    cluster: str, dbname: str, source: str, names: migration.ReplicationNames, copy_data: bool
) -> KubeObject:
    """A CNPG ``Subscription`` on the slot name the generated SQL waits on."""
    return {
        "cluster": {"name": cluster},
        "dbname": dbname,
        "name": names.subscription,
        "externalClusterName": source,
        "publicationName": names.publication,
        "parameters": {
            "slot_name": names.slot,
            "copy_data": "true" if copy_data else "false",
            "origin": "none",
        },
        "subscriptionReclaimPolicy": "delete",
    }


def _uri(name: str, endpoint: env.DatabaseEndpoint) -> EnvVar:
    return EnvVar(name, secret=SecretKeyRef(endpoint.secret, "uri"))


@dataclass(frozen=True)
class MigrationPlan:
    """What one workload's migration runs in its ``phase``, decided from the stack's config.

    ``own``/``monolith``: the two databases' endpoints. ``scripts``: the Jobs' scripts by file
    name (``schema.sh`` and the phase's). ``forward``/``reverse``: the replication names in each
    direction; ``tables``: the workload's tables (what a Publication publishes).
    ``after_writers``: the workloads writing into its tables whose cutover this cutover waits for.
    """

    workload: str
    phase: str
    namespace: str
    image: str
    labels: Mapping[str, str]
    own: env.DatabaseEndpoint
    monolith: env.DatabaseEndpoint
    scripts: Mapping[str, str]
    forward: migration.ReplicationNames
    reverse: migration.ReplicationNames
    tables: tuple[str, ...]
    after_writers: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceMigrationArgs:
    """One workload's ``plan`` and the resources it acts on: ``database``/``monolith_database``
    the clusters declared here (``monolith_database`` is ``None`` for an external monolith);
    ``operator``: the release that installs CNPG's CRDs; ``after_cutovers``: the cutover Jobs of
    the plan's ``after_writers``.
    """

    plan: MigrationPlan
    database: ServiceDatabase
    monolith_database: ServiceDatabase | None
    operator: pulumi.Resource
    after_cutovers: tuple[pulumi.Resource, ...] = ()


class ServiceMigration(pulumi.ComponentResource):
    """The schema Job, then whatever the phase declares: Publication, Subscription and the
    consistency Job (``replicating``), the cutover Job and the reverse pair (``cut-over``), the
    rollback Job (``rolled-back``). Every child waits for what ``opts.depends_on`` names.

    ``write_gate``: the cutover or rollback Job, or ``None`` in the other phases.
    ``schema_job``: the Job that creates the workload's tables (a service's from the running
    monolith's catalogs, so a service's migration waits for the monolith's schema).
    """

    write_gate: k8s.batch.v1.Job | None
    schema_job: k8s.batch.v1.Job

    def __init__(
        self, name: str, args: ServiceMigrationArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(MIGRATION_TYPE, name, None, opts)
        self._after = waits(opts)
        self._args = args
        self._plan = plan = args.plan
        self.write_gate = None
        self._prefix = name
        self._configmap = k8s.core.v1.ConfigMap(
            f"{name}-scripts",
            metadata={
                "name": f"{plan.own.cluster}-migration",
                "namespace": plan.namespace,
                "labels": dict(plan.labels),
            },
            data=dict(plan.scripts),
            opts=self._opts(f"{plan.workload}-db-migration"),
        )
        self._declare()
        self.register_outputs({})

    def _opts(self, renamed_from: str, *after: pulumi.Resource, **options: Any) -> pulumi.ResourceOptions:
        """Options of a child called ``renamed_from`` at the stack root before, if its workload
        was deployed then (``catalog.predates_components``)."""
        waits_for = [*self._after, *after]
        if not catalog.predates_components(self._plan.workload):
            return child_opts(self, waits_for, **options)
        return child_opts(self, waits_for, moved_from_root=True, renamed_from=renamed_from, **options)

    def _job(
        self,
        role: str,
        script: str,
        env_vars: list[EnvVar],
        after: list[pulumi.Resource],
        skip_await: bool = False,
        timeout: str | None = None,
    ) -> k8s.batch.v1.Job:
        plan, own = self._plan, self._plan.own
        annotations = {"pulumi.com/skipAwait": "true"} if skip_await else None
        timeouts = pulumi.CustomTimeouts(create=timeout, update=timeout) if timeout else None
        return k8s.batch.v1.Job(
            f"{self._prefix}-{role}",
            metadata={
                "name": f"{own.cluster}-{role}",
                "namespace": plan.namespace,
                "labels": dict(plan.labels),
                **({"annotations": annotations} if annotations else {}),
            },
            spec=job_spec(
                f"{own.cluster}-{role}",
                plan.image,
                f"{own.cluster}-migration",
                script,
                plan.scripts[script],
                env_vars,
                dict(plan.labels),
            ),
            opts=self._opts(f"{plan.workload}-db-{role}", self._configmap, *after, custom_timeouts=timeouts),
        )

    def _cnpg(
        self,
        role: str,
        kind: str,
        spec: KubeObject,
        after: list[pulumi.Resource],
        annotations: Mapping[str, str] | None = None,
    ) -> k8s.apiextensions.CustomResource:
        """A CNPG ``Publication`` or ``Subscription``; it waits for the operator's CRDs."""
        plan = self._plan
        return custom_resource(
            f"{self._prefix}-{role}",
            {
                "apiVersion": CNPG_API,
                "kind": kind,
                "metadata": {
                    "name": f"{plan.own.cluster}-{role}",
                    "namespace": plan.namespace,
                    "labels": dict(plan.labels),
                    **({"annotations": dict(annotations)} if annotations else {}),
                },
                "spec": spec,
            },
            self._opts(f"{plan.workload}-db-{role}", self._args.operator, *after),
        )

    def _declare(self) -> None:
        args, plan = self._args, self._plan
        w, own, monolith, phase = plan.workload, plan.own, plan.monolith, plan.phase
        names, back = plan.forward, plan.reverse
        both = [_uri("MONOLITH_URI", monolith), _uri("SERVICE_URI", own)]
        db = args.database
        schema_env = [_uri("MONOLITH_URI", own)] if w == "monolith" else both
        schema_job = self._job("schema", "schema.sh", schema_env, [db.cluster, db.credentials])
        self.schema_job = schema_job
        if w == "monolith" or phase == "not-started":
            return
        monolith_db = args.monolith_database
        if phase == "replicating":
            publication: pulumi.Resource
            if monolith_db is None:
                publication = self._job("publication", "publication.sh", both, [])
            else:
                publication = self._cnpg(
                    "publication",
                    "Publication",
                    publication_spec(monolith.cluster, monolith.name, names, plan.tables),
                    [monolith_db.cluster],
                )
            # The schema first: a subscription needs its tables to exist.
            subscription = self._cnpg(
                "subscription",
                "Subscription",
                subscription_spec(own.cluster, own.name, MONOLITH_SOURCE, names, copy_data=True),
                [schema_job, publication],
            )
            # While writes continue the two sides differ for moments; the check reports, it does
            # not block `pulumi up`. Its log holds the per-table counts and checksums.
            self._job("consistency", "consistency.sh", both, [subscription], skip_await=True)
            return
        if phase == "rolled-back":
            self.write_gate = self._job(
                "rollback", "rollback.sh", both, [schema_job], timeout=GATE_JOB_TIMEOUT
            )
            return
        # The reverse pair comes first: its slot must exist before the Job decides and the routes
        # send writes to the service, or the writes in between never reach the monolith. The
        # Job waits until the monolith streams from it; the slot waits for its publication.
        reverse: list[pulumi.Resource] = []
        if monolith_db is not None:  # reverse replication into an external monolith is not declared
            reverse_pub = self._cnpg(
                "reverse-publication",
                "Publication",
                publication_spec(own.cluster, own.name, back, plan.tables),
                [schema_job],
                annotations={"pulumi.com/waitFor": "jsonpath={.status.applied}=true"},
            )
            reverse.append(
                self._cnpg(
                    "reverse-subscription",
                    "Subscription",
                    subscription_spec(monolith.cluster, monolith.name, w, back, copy_data=False),
                    [reverse_pub, monolith_db.cluster],
                )
            )
        self.write_gate = self._job(
            "cutover",
            "cutover.sh",
            both,
            [schema_job, *reverse, *args.after_cutovers],
            timeout=GATE_JOB_TIMEOUT,
        )


def _phase_scripts(
    w: Workload, phase: str, external_monolith: bool, accepted_writers: Sequence[str]
) -> dict[str, str]:
    """The scripts the phase runs besides the schema."""
    if phase == "replicating":
        scripts = {"consistency.sh": migration.job_script(migration.consistency_steps(w))}
        if external_monolith:
            names = migration.forward_names(w)
            scripts["publication.sh"] = migration.job_script(
                [
                    migration.Step(
                        "publish the owned tables",
                        "monolith",
                        "execute",
                        migration.create_publication_sql(names.publication, migration.owned_tables(w)),
                    )
                ]
            )
        return scripts
    # Reverse replication into an external monolith is not declared.
    reverse = not external_monolith
    if phase == "cut-over":
        guard = cross_writes.live_check_step(w, accepted_writers)
        return {
            "cutover.sh": migration.job_script(
                migration.cutover_job_steps(w, reverse=reverse, guards=[guard])
            )
        }
    if phase == "rolled-back":
        return {"rollback.sh": migration.job_script(migration.rollback_job_steps(w, reverse=reverse))}
    return {}
