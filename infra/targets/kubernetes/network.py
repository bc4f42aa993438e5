"""NetworkPolicy rules derived from the catalog: who may reach a workload, and where it may go.

Every workload's policy is default-deny (see ``components.kubernetes.specs``); these functions
return the only exceptions. Pure functions, tested without Pulumi.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def _namespace(name: str) -> Rule:
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: name}}}


def _pods(name: str) -> Rule:
    return {"podSelector": {"matchLabels": {labels.NAME: name}}}


def _tcp(*ports: int) -> list[Rule]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def callers(workload: Workload, enabled: set[str]) -> list[str]:
    """The enabled workloads whose catalog entry says they call ``workload``."""
    return [w.name for w in catalog.WORKLOADS if w.name in enabled and workload.name in w.calls]


def ingress_rules(workload: Workload, enabled: set[str]) -> list[Rule]:
    """The edge may reach every workload on its port; other workloads only when the catalog says."""
    peers = [_namespace(EDGE_NAMESPACE)] + [_pods(c) for c in callers(workload, enabled)]
    return [{"from": peers, "ports": _tcp(workload.port)}]


def egress_rules(
    workload: Workload, enabled: set[str], databases: Mapping[str, DatabaseEndpoint]
) -> list[Rule]:
    """DNS, the workload's own database, and the workloads it calls (the monolith stands in for
    a callee that is not deployed)."""
    rules: list[Rule] = [
        {
            "to": [_namespace("kube-system")],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        }
    ]
    own = databases.get(workload.name)
    if own is not None and not own.external:
        rules.append(
            {
                "to": [{"podSelector": {"matchLabels": {"cnpg.io/cluster": own.cluster}}}],
                "ports": _tcp(own.port),
            }
        )
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
