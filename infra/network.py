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
from infra.env import DatabaseEndpoint

Rule = dict[str, Any]

#: The namespace of the edge (the Istio ingress gateway).
EDGE_NAMESPACE = "istio-ingress"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


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
