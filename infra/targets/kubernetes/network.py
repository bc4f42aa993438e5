"""NetworkPolicy rules derived from the catalog: who may reach a workload, and where it may go.

Every workload's policy is default-deny (see ``components.kubernetes.specs``); these functions
return the only exceptions. Pure functions, tested without Pulumi.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from components import labels
from infra import catalog
from infra.catalog import Workload
from infra.env import DatabaseEndpoint, Wiring

Rule = dict[str, Any]

#: The namespace of the edge (the Istio ingress gateway).
EDGE_NAMESPACE = "istio-ingress"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
#: RFC 1918 ranges, where pod, service and node addresses live: "the internet" excludes them, so
#: an internet rule never opens a path to something inside the cluster.
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
#: The contract variables that mean the binary calls the Spotify Web API (HTTPS, public addresses).
SPOTIFY_ENV = frozenset({"SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET"})


#: Label CloudNativePG puts on every instance pod of a cluster (value: the Cluster's name).
CNPG_CLUSTER_LABEL = "cnpg.io/cluster"
#: PostgreSQL, CNPG's instance manager (status, backups; the operator calls it) and its exporter.
POSTGRES_PORT = 5432
INSTANCE_MANAGER_PORT = 8000
POSTGRES_METRICS_PORT = 9187
#: Where the CloudNativePG operator runs, and the label of its pods (the chart's selector labels).
CNPG_OPERATOR_NAMESPACE = "cnpg-system"
CNPG_OPERATOR_LABELS = {labels.NAME: "cloudnative-pg"}
#: The Kubernetes API (443 behind the ``kubernetes`` Service, 6443 on the control plane after the
#: Service's DNAT) and object stores (HTTPS). NetworkPolicy cannot name the API server, whose
#: addresses differ per cluster, so the instances may reach these ports on any address.
API_AND_OBJECT_STORE_PORTS = (443, 6443)


def default_deny() -> Rule:
    """The namespace-wide NetworkPolicy spec that denies every connection in and out of every pod:
    only what another policy in the namespace allows gets through."""
    return {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def isolated(pods: Mapping[str, str], ingress: list[Rule], egress: list[Rule]) -> Rule:
    """A policy selecting ``pods`` (by labels) that allows exactly ``ingress`` in and ``egress`` out."""
    return {
        "podSelector": {"matchLabels": dict(pods)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": ingress,
        "egress": egress,
    }


def tcp(*ports: int) -> list[Rule]:
    """NetworkPolicy ``ports`` entries for TCP ``ports``."""
    return [{"protocol": "TCP", "port": p} for p in ports]


def api_server_egress() -> Rule:
    """Egress to the Kubernetes API: its ports on any address (see ``API_AND_OBJECT_STORE_PORTS``)."""
    return {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": tcp(*API_AND_OBJECT_STORE_PORTS)}


def migration_selector(cluster: str) -> dict[str, str]:
    """The pod labels shared by the migration Jobs of the service whose database is ``cluster``."""
    return {labels.NAME: f"{cluster}-migration"}


def migration_job_policy(own: DatabaseEndpoint, monolith: DatabaseEndpoint) -> Rule:
    """A service's migration Jobs (schema, consistency, cutover, rollback) reach exactly its two
    databases (one for the monolith's own schema Job) and DNS; nothing connects to them."""
    databases = [own] if own.cluster == monolith.cluster else [own, monolith]
    return {
        "podSelector": {"matchLabels": migration_selector(own.cluster)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [],
        "egress": [dns_rule(), *(database_egress(d) for d in databases)],
    }


def database_policy(
    own: DatabaseEndpoint,
    client: str,
    monolith: DatabaseEndpoint,
    services: Sequence[DatabaseEndpoint],
    monitoring_namespace: str,
) -> Rule:
    """Who reaches one CloudNativePG cluster's instances, and where they go.

    In: the other instances of the cluster (streaming replication, the instance manager), its
    ``client`` workload, its migration Jobs (the monolith's: every service's), the other side of
    the table moves (service instances subscribe to the monolith, the monolith's instances to the
    services after a cut-over), the CNPG operator (5432 and 8000, as CloudNativePG's networking
    page asks) and the monitoring namespace on the exporter's port. Out: DNS, the same peers
    (replication is a client connection from the subscriber), the Kubernetes API and the object
    store (``API_AND_OBJECT_STORE_PORTS``).
    """
    is_monolith = own.cluster == monolith.cluster
    partners = [s.cluster for s in services if not s.external] if is_monolith else [monolith.cluster]
    partners = [p for p in partners if p != own.cluster and not (p == monolith.cluster and monolith.external)]
    jobs = [migration_selector(s.cluster)[labels.NAME] for s in services] if is_monolith else []
    jobs = sorted({*jobs, migration_selector(own.cluster)[labels.NAME]})
    peers: list[Rule] = [_cluster(own.cluster)]
    if partners:
        peers.append({"podSelector": {"matchExpressions": [_in(CNPG_CLUSTER_LABEL, partners)]}})
    operator = {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: CNPG_OPERATOR_NAMESPACE}},
        "podSelector": {"matchLabels": dict(CNPG_OPERATOR_LABELS)},
    }
    egress = [dns_rule(), {"to": list(peers), "ports": _tcp(POSTGRES_PORT, INSTANCE_MANAGER_PORT)}]
    if monolith.external and not is_monolith:
        egress.append(database_egress(monolith))
    egress.append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": _tcp(*API_AND_OBJECT_STORE_PORTS)})
    return {
        "podSelector": {"matchLabels": {CNPG_CLUSTER_LABEL: own.cluster}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [
            {"from": [_cluster(own.cluster), operator], "ports": _tcp(POSTGRES_PORT, INSTANCE_MANAGER_PORT)},
            {
                "from": [
                    *peers[1:],
                    {"podSelector": {"matchExpressions": [_in(labels.NAME, sorted({client, *jobs}))]}},
                ],
                "ports": _tcp(POSTGRES_PORT),
            },
            {"from": [_namespace(monitoring_namespace)], "ports": _tcp(POSTGRES_METRICS_PORT)},
        ],
        "egress": egress,
    }


def _in(key: str, values: Sequence[str]) -> Rule:
    return {"key": key, "operator": "In", "values": list(values)}


def _namespace(name: str) -> Rule:
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: name}}}


def _cluster(name: str) -> Rule:
    return {"podSelector": {"matchLabels": {CNPG_CLUSTER_LABEL: name}}}


def _pods(name: str) -> Rule:
    return {"podSelector": {"matchLabels": {labels.NAME: name}}}


def _tcp(*ports: int) -> list[Rule]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def callers(workload: Workload, enabled: AbstractSet[str]) -> list[str]:
    """The enabled workloads whose catalog entry says they call ``workload``."""
    return [name for name in catalog.callers_of(workload.name) if name in enabled]


def ingress_rules(workload: Workload, enabled: AbstractSet[str]) -> list[Rule]:
    """The edge may reach every workload on its port; other workloads only when the catalog says."""
    peers = [_namespace(EDGE_NAMESPACE)] + [_pods(c) for c in callers(workload, enabled)]
    return [{"from": peers, "ports": _tcp(workload.port)}]


def dns_rule() -> Rule:
    """Egress to the cluster DNS (kube-system), UDP and TCP 53."""
    return {
        "to": [_namespace("kube-system")],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }


def database_egress(endpoint: DatabaseEndpoint) -> Rule:
    """Egress to one database: its CloudNativePG instances, or (external) its port anywhere."""
    if endpoint.external:
        return {"ports": _tcp(endpoint.port)}
    return {"to": [_cluster(endpoint.cluster)], "ports": _tcp(endpoint.port)}


def egress_rules(
    workload: Workload, enabled: AbstractSet[str], databases: Mapping[str, DatabaseEndpoint]
) -> list[Rule]:
    """DNS, the workload's own database, and the workloads it calls (the monolith stands in for
    a callee that is not deployed)."""
    rules: list[Rule] = [dns_rule()]
    own = databases.get(workload.name)
    if own is not None and not own.external:
        rules.append(database_egress(own))
    for callee_name in workload.calls:
        callee = catalog.workload(callee_name if callee_name in enabled else "monolith")
        rules.append({"to": [_pods(callee.name)], "ports": _tcp(callee.port)})
    return rules


def internet_egress_rules(workload: Workload, wiring: Wiring) -> list[Rule]:
    """HTTPS to public addresses for a workload that reads the Spotify credentials (the monolith),
    when the stack configures them (client id or secret); nothing otherwise."""
    configured = bool(wiring.spotify_client_id) or wiring.spotify_client_secret is not None
    if not configured or not SPOTIFY_ENV & set(workload.env):
        return []
    internet = {"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_RANGES)}}
    return [{"to": [internet], "ports": _tcp(443)}]
