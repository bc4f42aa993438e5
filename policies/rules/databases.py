"""Databases (CloudNativePG): one database per service, backups, read replicas.

Expected shapes: a workload reads its database from env ``DB_HOST`` (``<workload>-db-rw...``),
``DB_NAME``, ``DB_PASSWORD``/``DATABASE_URL`` from a secretKeyRef named ``<workload>-db-...``
(``<workload>-db-credentials``); each database is a ``postgresql.cnpg.io`` ``Cluster`` with
``spec.instances`` and ``spec.backup`` (or a WAL-archiving plugin), scheduled by a ``ScheduledBackup``
whose ``spec.cluster.name`` names it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource, Severity

from ._support import (
    EXEMPT_WORKLOADS,
    Rule,
    dig,
    grouped,
    integer,
    items,
    kube,
    mapping,
    name_of,
    namespace_of,
    number,
    of_kind,
    text,
    truthy,
    workloads,
)

CNPG = "postgresql.cnpg.io"
_HOST_SUFFIXES = ("-rw", "-ro", "-r")

_per_service = Rule(
    name="database-per-service",
    description="Database per service: each workload's DB_* settings and credentials refer only to "
    "its own database (<workload>-db), and no database serves two workloads.",
    remediation="give the workload its own CloudNativePG cluster and wire DB_HOST, DB_NAME and the "
    "credentials secret to it (infra/env.py does this from the catalog)",
    severity=Severity.HIGH,
    knobs={
        "exempt": EXEMPT_WORKLOADS,
    },
)


def _cluster_of_host(host: str) -> str:
    first = host.split(".", 1)[0]
    for suffix in _HOST_SUFFIXES:
        if first.endswith(suffix):
            return first.removesuffix(suffix)
    return first


def _db_problems(resources: Sequence[PolicyResource], config: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    users: dict[tuple[str, str], list[str]] = defaultdict(list)
    first_urn: dict[tuple[str, str], str] = {}

    def use(key: tuple[str, str], workload: str, urn: str) -> None:
        users[key].append(workload)
        first_urn.setdefault(key, urn)

    for w in workloads(resources, config["exempt"]):
        own = f"{w.name}-db"
        for name, env in w.env().items():
            if not (name.startswith("DB_") or name == "DATABASE_URL"):
                continue
            secret = text(dig(env, "valueFrom", "secretKeyRef", "name"))
            if secret:
                if not secret.startswith(own):
                    yield (
                        w.urn,
                        f"{w.name} reads {name} from secret {secret}, not its own ({own}-credentials)",
                    )
                use(("secret", f"{w.namespace}/{secret}"), w.name, w.urn)
            value = text(env.get("value"))
            if name == "DB_HOST" and value:
                cluster = _cluster_of_host(value)
                if cluster != own:
                    yield w.urn, f"{w.name} connects to database host {value}, not its own ({own}-rw)"
                use(("cluster", cluster), w.name, w.urn)
            if name == "DB_NAME" and value:
                use(("database", value), w.name, w.urn)
    for (what, value), names in sorted(users.items()):
        distinct = sorted(set(names))
        if len(distinct) > 1:
            yield first_urn.get((what, value), ""), f"{what} {value} is shared by {', '.join(distinct)}"


_backups = Rule(
    name="database-backups",
    description="Every database is backed up: its CloudNativePG Cluster archives WAL and base backups "
    "(spec.backup or a WAL-archiving plugin) and a ScheduledBackup runs for it.",
    remediation="configure spec.backup (barmanObjectStore or volumeSnapshot) on the Cluster and a "
    "ScheduledBackup with spec.cluster.name set to it",
    severity=Severity.CRITICAL,
)


def _archives(cluster: PolicyResource) -> bool:
    backup = mapping(dig(cluster.props, "spec", "backup"))
    if mapping(backup.get("barmanObjectStore")) or mapping(backup.get("volumeSnapshot")):
        return True
    return any(truthy(dig(p, "isWALArchiver")) for p in items(dig(cluster.props, "spec", "plugins")))


def _scheduled_cluster(schedule: PolicyResource) -> tuple[str, str]:
    return namespace_of(schedule.props), text(dig(schedule.props, "spec", "cluster", "name"))


def _backup_problems(
    resources: Sequence[PolicyResource], _config: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    schedules_of = grouped(resources, CNPG, "ScheduledBackup", _scheduled_cluster)
    for cluster in of_kind(resources, CNPG, "Cluster"):
        name, namespace = name_of(cluster.props), namespace_of(cluster.props)
        if not _archives(cluster):
            yield cluster.urn, f"Cluster {name} has no spec.backup"
        scheduled = [
            s for s in schedules_of((namespace, name)) if dig(s.props, "spec", "suspend") is not True
        ]
        if not scheduled:
            yield cluster.urn, f"no ScheduledBackup runs for Cluster {name}"


_replicas = Rule(
    name="database-read-replicas",
    description="Every database runs a primary plus read replicas (spec.instances at least the "
    "environment's minimum), so a node loss fails over instead of failing.",
    remediation="raise the database instances for the environment (1 primary + N replicas)",
    severity=Severity.HIGH,
    knobs={"minInstances": integer(2, "The fewest instances (primary included) per database.", 1)},
)


def _replica_problems(token: str, props: Mapping[str, Any], config: Mapping[str, Any]) -> Iterator[str]:
    if not kube(token, CNPG, "Cluster"):
        return
    instances = number(dig(props, "spec", "instances")) or 1.0
    if instances < config["minInstances"]:
        minimum = config["minInstances"]
        yield f"Cluster {name_of(props)} has {instances:g} instance(s); at least {minimum:g} required"


POLICIES = [
    _per_service.stack(_db_problems),
    _backups.stack(_backup_problems),
    _replicas.resource(_replica_problems),
]
