"""The ``ServiceDatabase`` component: one workload's own PostgreSQL, run by CloudNativePG.

A CNPG ``Cluster`` (primary + read replicas, anti-affinity, TLS), generated credentials kept
secret end to end, a ``ScheduledBackup`` when a backup target is given, and a ``PodMonitor`` for
the instances' metrics. The object specs are pure functions below, tested without Pulumi.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.kubernetes.custom_resource import custom_resource
from components.kubernetes.specs import KubeObject, ResourceSpec
from components.options import child_opts, waits

TYPE = "vinylhound:kubernetes:ServiceDatabase"
CNPG_API = "postgresql.cnpg.io/v1"
MONITORING_API = "monitoring.coreos.com/v1"
#: CloudNativePG labels every instance pod with its cluster's name.
CLUSTER_LABEL = "cnpg.io/cluster"
#: CloudNativePG reads ``spec.bootstrap`` only when it creates a cluster. A change of the
#: recovery source therefore replaces the Cluster (delete first: the new one has the same name).
#: Only ``recovery`` triggers it: a change of ``initdb`` (an extension added to the catalog) must
#: not re-create a database.
REPLACE_ON = ("spec.bootstrap.recovery",)
#: The instances' metrics port name (CloudNativePG's exporter on 9187).
METRICS_PORT = "metrics"
#: Role that may stream logical changes out of this database (replication + read everything).
REPLICATION_ROLE = "vinylhound_replication"
#: postgresql.conf settings the platform decides; they win over ``ServiceDatabaseArgs.parameters``.
#: Logical replication moves tables in and out, so every cluster must allow it.
PLATFORM_PARAMETERS: Mapping[str, str] = {"wal_level": "logical"}


@dataclass(frozen=True)
class BackupSpec:
    """Barman backups to an object store, on a schedule, with a retention policy."""

    destination_path: str
    credentials_secret: str
    schedule: str
    retention: str
    endpoint_url: str | None = None


@dataclass(frozen=True)
class ExternalCluster:
    """Another PostgreSQL this cluster may connect to (a publisher it subscribes to)."""

    name: str
    host: str
    dbname: str
    user: str
    password_secret: str
    password_key: str = "password"
    port: int = 5432
    sslmode: str = "require"


@dataclass(frozen=True)
class ServiceDatabaseArgs:
    """Everything one workload's database needs; no stack names, no config reading."""

    #: The CNPG cluster name; services ``<cluster>-rw``/``-ro`` follow from it.
    cluster: str
    namespace: str
    database: str
    owner: str
    #: The credentials Secret (``username``, ``password``, ``uri``) created here.
    credentials_secret: str
    image: str
    labels: Mapping[str, str] = field(default_factory=dict)
    #: Primary included; more than one means streaming read replicas behind ``-ro``.
    instances: int = 1
    storage_size: str = "1Gi"
    #: Default: the cluster's default StorageClass.
    storage_class: str | None = None
    resources: ResourceSpec = field(default_factory=lambda: ResourceSpec("250m", "512Mi", "1", "1Gi"))
    parameters: Mapping[str, str] = field(default_factory=dict)
    extensions: Sequence[str] = ()
    #: ``required`` keeps instances on different nodes (prod); ``preferred`` tries to.
    anti_affinity: str = "preferred"
    backup: BackupSpec | None = None
    #: Bootstrap from this CNPG ``Backup`` instead of an empty initdb.
    restore_backup: str | None = None
    #: Create a login role with REPLICATION for logical replication out of this database.
    replication_role: bool = False
    external_clusters: Sequence[ExternalCluster] = ()
    port: int = 5432
    pod_monitor: bool = True
    #: Namespace of the PodMonitor. Default: the database's own namespace.
    monitor_namespace: str | None = None
    #: Guard the data: Pulumi refuses to delete or replace the Cluster and its credentials
    #: Secrets (``protect``), and leaves them in Kubernetes if they leave the program or the state
    #: (``retain_on_delete``). Lift it in one update before deleting or restoring the database.
    protect: bool = False

    @property
    def rw_host(self) -> str:
        """The read-write Service's in-cluster DNS name (always the primary)."""
        return f"{self.cluster}-rw.{self.namespace}.svc.cluster.local"

    @property
    def ro_host(self) -> str:
        """The read-only Service's in-cluster DNS name (the replicas)."""
        return f"{self.cluster}-ro.{self.namespace}.svc.cluster.local"

    @property
    def replication_secret(self) -> str:
        """The Secret holding the replication role's credentials."""
        return f"{self.cluster}-replication"


def metadata(args: ServiceDatabaseArgs, name: str) -> KubeObject:
    """Name, namespace and labels of one of the database's objects."""
    return {"name": name, "namespace": args.namespace, "labels": dict(args.labels)}


def connection_uri(args: ServiceDatabaseArgs, password: str) -> str:
    """The libpq URL of the read-write endpoint (TLS required)."""
    return (
        f"postgresql://{quote(args.owner, safe='')}:{quote(password, safe='')}@{args.rw_host}:{args.port}/"
        f"{quote(args.database, safe='')}?sslmode=require"
    )


def _bootstrap(args: ServiceDatabaseArgs) -> KubeObject:
    if args.restore_backup is not None:
        return {
            "recovery": {
                "backup": {"name": args.restore_backup},
                "database": args.database,
                "owner": args.owner,
                "secret": {"name": args.credentials_secret},
            }
        }
    initdb: KubeObject = {
        "database": args.database,
        "owner": args.owner,
        "secret": {"name": args.credentials_secret},
        "encoding": "UTF8",
    }
    if args.extensions:
        # pg_trgm is a trusted extension, but creating it at bootstrap keeps the owner unprivileged.
        initdb["postInitApplicationSQL"] = [f'CREATE EXTENSION IF NOT EXISTS "{e}"' for e in args.extensions]
    return {"initdb": initdb}


def _backup(args: ServiceDatabaseArgs) -> KubeObject | None:
    if args.backup is None:
        return None
    store: KubeObject = {
        "destinationPath": args.backup.destination_path,
        # A restored cluster must not write into the archive it was restored from.
        "serverName": f"{args.cluster}-from-{args.restore_backup}" if args.restore_backup else args.cluster,
        "s3Credentials": {
            "accessKeyId": {"name": args.backup.credentials_secret, "key": "ACCESS_KEY_ID"},
            "secretAccessKey": {"name": args.backup.credentials_secret, "key": "ACCESS_SECRET_KEY"},
        },
        "wal": {"compression": "gzip"},
        "data": {"compression": "gzip"},
    }
    if args.backup.endpoint_url:
        store["endpointURL"] = args.backup.endpoint_url
    return {"barmanObjectStore": store, "retentionPolicy": args.backup.retention}


def cluster_spec(args: ServiceDatabaseArgs) -> KubeObject:
    """The CNPG ``Cluster`` spec."""
    storage: KubeObject = {"size": args.storage_size}
    if args.storage_class:
        storage["storageClass"] = args.storage_class
    spec: KubeObject = {
        "instances": args.instances,
        "imageName": args.image,
        "primaryUpdateStrategy": "unsupervised",
        "storage": storage,
        "resources": args.resources.to_kube(),
        # The platform's settings last: a user parameter cannot override them.
        "postgresql": {"parameters": {**dict(args.parameters), **PLATFORM_PARAMETERS}},
        "bootstrap": _bootstrap(args),
        "enableSuperuserAccess": False,
        "affinity": {
            "enablePodAntiAffinity": True,
            "topologyKey": "kubernetes.io/hostname",
            "podAntiAffinityType": args.anti_affinity,
        },
        # The instances speak TLS themselves; an Istio sidecar in front of them only gets in the way.
        "inheritedMetadata": {
            "labels": dict(args.labels),
            "annotations": {"sidecar.istio.io/inject": "false"},
        },
    }
    backup = _backup(args)
    if backup is not None:
        spec["backup"] = backup
    if args.replication_role:
        spec["managed"] = {
            "roles": [
                {
                    "name": REPLICATION_ROLE,
                    "ensure": "present",
                    "login": True,
                    "replication": True,
                    "inRoles": ["pg_read_all_data"],
                    "passwordSecret": {"name": args.replication_secret},
                }
            ]
        }
    if args.external_clusters:
        spec["externalClusters"] = [
            {
                "name": ext.name,
                "connectionParameters": {
                    "host": ext.host,
                    "port": str(ext.port),
                    "dbname": ext.dbname,
                    "user": ext.user,
                    "sslmode": ext.sslmode,
                },
                "password": {"name": ext.password_secret, "key": ext.password_key},
            }
            for ext in args.external_clusters
        ]
    return spec


def scheduled_backup_spec(args: ServiceDatabaseArgs) -> KubeObject | None:
    """The ``ScheduledBackup`` spec, or ``None`` without a backup target."""
    if args.backup is None:
        return None
    return {
        "schedule": args.backup.schedule,
        "cluster": {"name": args.cluster},
        "method": "barmanObjectStore",
        # Backups belong to the schedule: they outlive a deleted cluster, so it can be restored.
        "backupOwnerReference": "self",
        "immediate": True,
    }


def pod_monitor_spec(args: ServiceDatabaseArgs) -> KubeObject:
    """A PodMonitor scraping every instance of the cluster on CNPG's metrics port."""
    return {
        "namespaceSelector": {"matchNames": [args.namespace]},
        "selector": {"matchLabels": {CLUSTER_LABEL: args.cluster}},
        "podMetricsEndpoints": [{"port": METRICS_PORT}],
    }


class ServiceDatabase(pulumi.ComponentResource):
    """A workload's own PostgreSQL: CNPG Cluster, credentials, backups and metrics.

    Outputs: ``rw_host``, ``ro_host``, ``port``, ``database``, ``secret_name``. Pulumi names are
    ``f"{name}-<role>"``; Kubernetes names come from ``args`` (``cluster``, ``credentials_secret``).
    Every child waits for what ``opts.depends_on`` names: the namespace, the release that installs
    CNPG's CRDs and, with the PodMonitor, the one that installs the Prometheus Operator's.
    """

    rw_host: pulumi.Output[str]
    ro_host: pulumi.Output[str]
    port: pulumi.Output[int]
    database: pulumi.Output[str]
    secret_name: pulumi.Output[str]
    #: The credentials Secret (workloads that read it depend on it).
    credentials: k8s.core.v1.Secret
    cluster: k8s.apiextensions.CustomResource

    def __init__(
        self, name: str, args: ServiceDatabaseArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE, name, None, opts)
        self._after = waits(opts)
        self.credentials = self._secret(
            f"{name}-credentials", args, args.credentials_secret, args.owner, with_uri=True
        )
        secrets: list[pulumi.Resource] = [self.credentials]
        if args.replication_role:
            secrets.append(
                self._secret(f"{name}-replication", args, args.replication_secret, REPLICATION_ROLE)
            )
        on_crds = child_opts(
            self,
            [*self._after, *secrets],
            protect=args.protect,
            retain_on_delete=args.protect,
            replace_on_changes=list(REPLACE_ON),
            delete_before_replace=True,
        )
        self.cluster = custom_resource(
            f"{name}-cluster",
            {
                "apiVersion": CNPG_API,
                "kind": "Cluster",
                "metadata": metadata(args, args.cluster),
                "spec": cluster_spec(args),
            },
            on_crds,
        )
        schedule = scheduled_backup_spec(args)
        if schedule is not None:
            custom_resource(
                f"{name}-backup",
                {
                    "apiVersion": CNPG_API,
                    "kind": "ScheduledBackup",
                    "metadata": metadata(args, f"{args.cluster}-backup"),
                    "spec": schedule,
                },
                child_opts(self, [*self._after, self.cluster]),
            )
        if args.pod_monitor:
            self._pod_monitor(name, args)

        self.rw_host = pulumi.Output.from_input(args.rw_host)
        self.ro_host = pulumi.Output.from_input(args.ro_host)
        self.port = pulumi.Output.from_input(args.port)
        self.database = pulumi.Output.from_input(args.database)
        self.secret_name = self.credentials.metadata.apply(lambda m: str(m["name"]) if m else "")
        self.register_outputs(
            {
                "rw_host": self.rw_host,
                "ro_host": self.ro_host,
                "port": self.port,
                "database": self.database,
                "secret_name": self.secret_name,
            }
        )

    def _secret(
        self, name: str, args: ServiceDatabaseArgs, k8s_name: str, username: str, with_uri: bool = False
    ) -> k8s.core.v1.Secret:
        """A basic-auth Secret (CNPG reads ``username``/``password``) with a generated password."""
        password = random.RandomPassword(
            f"{name}-password", length=40, special=False, opts=child_opts(self, self._after)
        )
        data: dict[str, Any] = {
            "username": username,
            "password": pulumi.Output.secret(password.result),
        }
        if with_uri:
            data["uri"] = pulumi.Output.secret(password.result.apply(lambda p: connection_uri(args, p)))
        return k8s.core.v1.Secret(
            name,
            metadata=metadata(args, k8s_name),
            type="kubernetes.io/basic-auth",
            string_data=data,
            opts=child_opts(self, self._after, protect=args.protect, retain_on_delete=args.protect),
        )

    def _pod_monitor(self, name: str, args: ServiceDatabaseArgs) -> None:
        """The PodMonitor; it needs the Prometheus Operator's CRDs (in ``opts.depends_on``)."""
        custom_resource(
            f"{name}-monitor",
            {
                "apiVersion": MONITORING_API,
                "kind": "PodMonitor",
                "metadata": {
                    **metadata(args, args.cluster),
                    "namespace": args.monitor_namespace or args.namespace,
                },
                "spec": pod_monitor_spec(args),
            },
            child_opts(self, [*self._after, self.cluster]),
        )
