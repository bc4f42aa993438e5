"""Databases on Kubernetes: the CloudNativePG operator, one ``ServiceDatabase`` per workload that
owns tables, and the per-service move of those tables out of the monolith.

Migration phases (``databases.migration.<service>`` in the stack):

- ``not-started``: the service's cluster and its schema only;
- ``replicating``: a ``Publication`` in the monolith for exactly the service's tables, a
  ``Subscription`` in the service's cluster (after its schema), and a consistency-check Job;
- ``cut-over``: a Job stops writes in the monolith, waits until the service has everything,
  verifies and moves sequences; the forward Publication/Subscription leave the program (CNPG
  drops them: reclaim policy ``delete``) and a reverse pair (service -> monolith, no initial copy)
  keeps the monolith current, so rolling back loses nothing;
- ``rolled-back``: a Job stops writes in the service, waits until the monolith has everything,
  verifies, moves the monolith's sequences and opens its tables again; the reverse pair leaves
  the program. The service's database keeps its (frozen) copy: recreate it before replicating
  again.

The cutover and rollback Jobs are awaited (no ``pulumi.com/skipAwait``): the routes that move the
service's writes (``mesh.deploy_routes``) depend on them, so ``pulumi up`` moves writes only after
the Job has completed, and fails with the routes unchanged when it fails.

Every SQL statement the Jobs run comes from ``infra.migration`` (the tests run the same).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

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
from components.kubernetes.specs import EnvVar, KubeObject, ResourceSpec, SecretKeyRef
from components.labels import LabelContext
from infra import env, migration
from infra.catalog import Workload
from infra.config import PlatformConfig
from infra.targets.kubernetes import helm
from infra.targets.kubernetes.extras import WorkloadExtras
from infra.targets.kubernetes.helm import Chart

OPERATOR_NAMESPACE = "cnpg-system"
CNPG_REPOSITORY = "https://cloudnative-pg.github.io/charts"
CNPG_CHART = Chart("cloudnative-pg", CNPG_REPOSITORY)
#: uid of the postgres user in the CloudNativePG PostgreSQL images.
POSTGRES_UID = 26
#: The external cluster name under which service clusters see the monolith.
MONOLITH_SOURCE = "monolith"


@dataclass
class Databases:
    """What ``deploy_databases`` declared."""

    operator: k8s.helm.v3.Release
    clusters: dict[str, ServiceDatabase] = field(default_factory=dict)
    endpoints: dict[str, env.DatabaseEndpoint] = field(default_factory=dict)
    #: Per service at ``cut-over`` or ``rolled-back``: the Job that moves its tables (the cutover
    #: or the rollback Job). Routes that send the service's writes by its phase wait for it.
    write_route_gates: dict[str, k8s.batch.v1.Job] = field(default_factory=dict)

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


def cnpg_operator(cfg: PlatformConfig) -> k8s.helm.v3.Release:
    """The CloudNativePG operator from its official chart, which also installs its CRDs."""
    return helm.release(
        "cloudnative-pg",
        CNPG_CHART,
        cfg.charts.cloudnative_pg,
        OPERATOR_NAMESPACE,
        {"crds": {"create": True}, "replicaCount": 2 if cfg.environment == "prod" else 1},
        release_name="cnpg",
        create_namespace=True,
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


def deploy_databases(
    cfg: PlatformConfig,
    context: LabelContext,
    extras: WorkloadExtras,
    opts: pulumi.ResourceOptions,
    monitoring_crds: Sequence[pulumi.Resource] = (),
    monitoring_namespace: str | None = None,
) -> Databases:
    """The operator, every enabled workload's database, the migration resources, and what the
    workloads get from them (``DB_READ_HOST``, egress to an external monolith, Secrets to wait for).

    ``monitoring_crds``: the release that installs the Prometheus Operator CRDs; every PodMonitor
    depends on it. ``monitoring_namespace``: where the PodMonitors live (default: the app's).
    """
    operator = cnpg_operator(cfg)
    result = Databases(operator=operator)
    dbs = cfg.databases
    enabled = [w for w, _ in cfg.enabled() if w.database is not None]
    for w in enabled:
        endpoint = endpoint_for(cfg, w)
        if endpoint is not None:
            result.endpoints[w.name] = endpoint
    monolith = result.endpoints["monolith"]
    cut_over = [w for w in enabled if dbs.phase(w.name) == "cut-over"]

    for w in enabled:
        endpoint = result.endpoints[w.name]
        if endpoint.external:
            continue
        assert w.database is not None
        if w.name == "monolith":
            sources = [_service_source(result.endpoints[s.name], s) for s in cut_over]
        elif dbs.phase(w.name) != "not-started":
            sources = [_monolith_source(cfg, monolith)]
        else:
            sources = []
        args = ServiceDatabaseArgs(
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
            resources=ResourceSpec(
                cpu_request=dbs.resources.requests.cpu,
                memory_request=dbs.resources.requests.memory,
                cpu_limit=dbs.resources.limits.cpu,
                memory_limit=dbs.resources.limits.memory,
            ),
            parameters=dbs.parameters,
            extensions=w.database.extensions,
            anti_affinity="required" if cfg.environment == "prod" else "preferred",
            backup=_backup(cfg),
            restore_backup=dbs.restore[w.name].backup if w.name in dbs.restore else None,
            # The monolith publishes to every service; a cut-over service publishes back.
            replication_role=w.name == "monolith" or dbs.phase(w.name) == "cut-over",
            external_clusters=sources,
            crds=[operator],
            monitoring_crds=monitoring_crds,
            monitor_namespace=monitoring_namespace,
            protect=dbs.protected(w.name, cfg.environment),
        )
        db = ServiceDatabase(f"{w.name}-db", args, opts=opts)
        result.clusters[w.name] = db
        extras.depends_on.append(db.credentials)

    extras.env.append(lambda w: _read_host(w, result.endpoints))
    extras.egress.append(lambda w: _external_egress(w, result.endpoints))
    for w in enabled:
        _declare_schema_and_migration(cfg, w, result, context, opts)
    return result


def _read_host(workload: Workload, endpoints: dict[str, env.DatabaseEndpoint]) -> list[EnvVar]:
    """``DB_READ_HOST``: the read replicas of the workload's OWN database, for DB_* readers."""
    own = endpoints.get(workload.name)
    if own is None or "DB_HOST" not in workload.env:
        return []
    return [EnvVar("DB_READ_HOST", own.ro_host)]


def _external_egress(workload: Workload, endpoints: dict[str, env.DatabaseEndpoint]) -> list[KubeObject]:
    """An external database has no pods to select: allow its port to any address."""
    own = endpoints.get(workload.name)
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
                        "env": [e.to_kube() for e in env_vars],
                        "resources": ResourceSpec("50m", "64Mi", "500m", "256Mi").to_kube(),
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
    cluster: str, dbname: str, names: migration.ReplicationNames, workload: Workload
) -> KubeObject:
    """A CNPG ``Publication`` for exactly the workload's tables (the same list the SQL uses)."""
    return {
        "cluster": {"name": cluster},
        "dbname": dbname,
        "name": names.publication,
        "target": {
            "objects": [
                {"table": {"schema": "public", "name": t.name}} for t in migration.owned_tables(workload)
            ]
        },
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


def _declare_schema_and_migration(
    cfg: PlatformConfig, w: Workload, dbs: Databases, context: LabelContext, opts: pulumi.ResourceOptions
) -> None:
    """The workload's schema Job, then whatever its migration phase declares."""
    own, monolith = dbs.endpoints[w.name], dbs.endpoints["monolith"]
    phase = cfg.databases.phase(w.name)
    image = cfg.databases.image
    labels = context.workload(f"{own.cluster}-migration", _image_tag(image), "migration")
    if own.external or (w.name == "monolith" and not cfg.databases.init_monolith_schema):
        return  # the monolith's schema is then its owner's business
    db = dbs.clusters[w.name]
    schema_sql = migration.monolith_schema_sql() if w.name == "monolith" else migration.service_schema_sql(w)
    side: migration.Side = "monolith" if w.name == "monolith" else "service"
    scripts = {
        "schema.sh": migration.job_script([migration.Step("apply the schema", side, "execute", schema_sql)])
    }
    names, back = migration.forward_names(w), migration.reverse_names(w)
    if phase == "replicating":
        scripts["consistency.sh"] = migration.job_script(migration.consistency_steps(w))
        if monolith.external:
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
    elif phase == "cut-over":
        scripts["cutover.sh"] = migration.job_script(migration.cutover_job_steps(w))
    elif phase == "rolled-back":
        scripts["rollback.sh"] = migration.job_script(migration.rollback_job_steps(w))
    configmap = k8s.core.v1.ConfigMap(
        f"{w.name}-db-migration",
        metadata={"name": f"{own.cluster}-migration", "namespace": cfg.namespace, "labels": labels},
        data=scripts,
        opts=opts,
    )

    def job(
        role: str,
        script: str,
        env_vars: list[EnvVar],
        after: list[pulumi.Resource],
        skip_await: bool = False,
        timeout: str | None = None,
    ) -> k8s.batch.v1.Job:
        annotations = {"pulumi.com/skipAwait": "true"} if skip_await else None
        timeouts = pulumi.CustomTimeouts(create=timeout, update=timeout) if timeout else None
        return k8s.batch.v1.Job(
            f"{w.name}-db-{role}",
            metadata={
                "name": f"{own.cluster}-{role}",
                "namespace": cfg.namespace,
                "labels": labels,
                **({"annotations": annotations} if annotations else {}),
            },
            spec=job_spec(
                f"{own.cluster}-{role}",
                image,
                f"{own.cluster}-migration",
                script,
                scripts[script],
                env_vars,
                labels,
            ),
            opts=pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(depends_on=[configmap, *after], custom_timeouts=timeouts)
            ),
        )

    uri_var = "MONOLITH_URI" if side == "monolith" else "SERVICE_URI"
    schema_job = job("schema", "schema.sh", [_uri(uri_var, own)], [db.cluster, db.credentials])
    if w.name == "monolith" or phase == "not-started":
        return
    both = [_uri("MONOLITH_URI", monolith), _uri("SERVICE_URI", own)]
    crds: list[pulumi.Resource] = [dbs.operator]
    monolith_db = dbs.clusters.get("monolith")
    if phase == "replicating":
        publication: pulumi.Resource
        if monolith_db is None:
            publication = job("publication", "publication.sh", both, [])
        else:
            publication = custom_resource(
                f"{w.name}-db-publication",
                {
                    "apiVersion": CNPG_API,
                    "kind": "Publication",
                    "metadata": {
                        "name": f"{own.cluster}-publication",
                        "namespace": cfg.namespace,
                        "labels": labels,
                    },
                    "spec": publication_spec(monolith.cluster, monolith.name, names, w),
                },
                pulumi.ResourceOptions.merge(
                    opts, pulumi.ResourceOptions(depends_on=[*crds, monolith_db.cluster])
                ),
            )
        subscription = custom_resource(
            f"{w.name}-db-subscription",
            {
                "apiVersion": CNPG_API,
                "kind": "Subscription",
                "metadata": {
                    "name": f"{own.cluster}-subscription",
                    "namespace": cfg.namespace,
                    "labels": labels,
                },
                "spec": subscription_spec(own.cluster, own.name, MONOLITH_SOURCE, names, copy_data=True),
            },
            # The schema first: a subscription needs its tables to exist.
            pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(depends_on=[*crds, schema_job, publication])
            ),
        )
        # While writes continue the two sides differ for moments; the check reports, it does not
        # block `pulumi up`. Its log holds the per-table counts and checksums.
        job("consistency", "consistency.sh", both, [subscription], skip_await=True)
        return
    if phase == "rolled-back":
        rollback = job("rollback", "rollback.sh", both, [schema_job], timeout=GATE_JOB_TIMEOUT)
        dbs.write_route_gates[w.name] = rollback
        return
    cutover = job("cutover", "cutover.sh", both, [schema_job], timeout=GATE_JOB_TIMEOUT)
    dbs.write_route_gates[w.name] = cutover
    if monolith_db is None:
        return  # reverse replication into an external monolith is not declared here
    reverse_pub = custom_resource(
        f"{w.name}-db-reverse-publication",
        {
            "apiVersion": CNPG_API,
            "kind": "Publication",
            "metadata": {
                "name": f"{own.cluster}-reverse-publication",
                "namespace": cfg.namespace,
                "labels": labels,
            },
            "spec": publication_spec(own.cluster, own.name, back, w),
        },
        pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[*crds, cutover])),
    )
    custom_resource(
        f"{w.name}-db-reverse-subscription",
        {
            "apiVersion": CNPG_API,
            "kind": "Subscription",
            "metadata": {
                "name": f"{own.cluster}-reverse-subscription",
                "namespace": cfg.namespace,
                "labels": labels,
            },
            "spec": subscription_spec(monolith.cluster, monolith.name, w.name, back, copy_data=False),
        },
        pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(depends_on=[*crds, cutover, reverse_pub, monolith_db.cluster])
        ),
    )
