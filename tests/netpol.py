"""A NetworkPolicy evaluator for the tests: may this pod open a connection to that one?

It follows the Kubernetes API's semantics (https://kubernetes.io/docs/concepts/services-networking/
network-policies/ and the NetworkPolicySpec reference, networking.k8s.io/v1), strictly:

- A pod is isolated for ingress (egress) when at least one NetworkPolicy in ITS namespace selects
  it and lists ``Ingress`` (``Egress``) in ``policyTypes``. Without ``policyTypes``, a policy has
  ``Ingress``, plus ``Egress`` when it has an ``egress`` section.
- Policies are additive: a connection is allowed when the source's egress allows it (or the source
  is not isolated for egress) AND the destination's ingress allows it (or it is not isolated).
- A rule with no (or empty) ``from``/``to`` matches every peer; with no (or empty) ``ports`` every
  port. A peer is a ``podSelector`` (pods of the policy's namespace), a ``namespaceSelector`` (every
  pod of the matching namespaces), both in one element (pods matching both), or an ``ipBlock``
  (addresses outside the cluster: cidr minus except; pod addresses are not modelled).
- A port is a number or the NAME of a container port of the destination pod, with ``endPort`` for
  a range, and protocol TCP unless stated. An empty selector selects everything; a missing
  ``namespaceSelector`` next to a ``podSelector`` means the policy's own namespace.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class Pod:
    """A pod as policies see it: namespace, labels, named container ports."""

    name: str
    namespace: str
    labels: Mapping[str, str]
    ports: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class External:
    """An address outside the cluster (the API server, an object store, the internet)."""

    ip: str


Endpoint = Pod | External


def selects(selector: Obj | None, labels: Mapping[str, str]) -> bool:
    """LabelSelector semantics: matchLabels AND every matchExpression; ``{}`` selects everything."""
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], set(expr.get("values") or [])
        present = key in labels
        ok = {
            "In": present and labels.get(key) in values,
            "NotIn": not (present and labels.get(key) in values),
            "Exists": present,
            "DoesNotExist": not present,
        }[op]
        if not ok:
            return False
    return True


@dataclass
class Cluster:
    """Namespaces (name -> labels) and NetworkPolicy objects; answers ``allowed(src, dst, port)``."""

    namespaces: dict[str, dict[str, str]]
    policies: Sequence[Obj]

    def namespace_labels(self, name: str) -> dict[str, str]:
        """A namespace's labels, with the ``kubernetes.io/metadata.name`` label the API server sets."""
        return {**self.namespaces.get(name, {}), "kubernetes.io/metadata.name": name}

    def _types(self, policy: Obj) -> set[str]:
        spec = policy.get("spec") or {}
        if spec.get("policyTypes"):
            return set(spec["policyTypes"])
        return {"Ingress", "Egress"} if "egress" in spec else {"Ingress"}

    def _selecting(self, pod: Pod, direction: str) -> list[Obj]:
        return [
            p
            for p in self.policies
            if p["metadata"].get("namespace", "default") == pod.namespace
            and selects((p.get("spec") or {}).get("podSelector"), pod.labels)
            and direction in self._types(p)
        ]

    def _peer_matches(self, peer: Obj, policy_ns: str, other: Endpoint) -> bool:
        if "ipBlock" in peer:
            if not isinstance(other, External):
                return False
            address = ipaddress.ip_address(other.ip)
            block = peer["ipBlock"]
            return address in ipaddress.ip_network(block["cidr"]) and not any(
                address in ipaddress.ip_network(e) for e in block.get("except") or []
            )
        if not isinstance(other, Pod):
            return False
        if "namespaceSelector" in peer:
            if not selects(peer["namespaceSelector"], self.namespace_labels(other.namespace)):
                return False
        elif other.namespace != policy_ns:
            return False
        return "podSelector" not in peer or selects(peer["podSelector"], other.labels)

    @staticmethod
    def _port_matches(ports: Sequence[Obj], dst: Endpoint, port: int, protocol: str) -> bool:
        if not ports:
            return True
        for entry in ports:
            if entry.get("protocol", "TCP") != protocol:
                continue
            wanted = entry.get("port")
            if wanted is None:
                return True
            if isinstance(wanted, str):
                wanted = dst.ports.get(wanted) if isinstance(dst, Pod) else None
                if wanted is None:
                    continue
            if wanted <= port <= int(entry.get("endPort", wanted)):
                return True
        return False

    def _allows(
        self,
        policies: Iterable[Obj],
        key: str,
        peer_key: str,
        other: Endpoint,
        dst: Endpoint,
        port: int,
        protocol: str,
    ) -> bool:
        for policy in policies:
            ns = policy["metadata"].get("namespace", "default")
            for rule in (policy.get("spec") or {}).get(key) or []:
                peers = rule.get(peer_key) or []
                if peers and not any(self._peer_matches(p, ns, other) for p in peers):
                    continue
                if self._port_matches(rule.get("ports") or [], dst, port, protocol):
                    return True
        return False

    def allowed(self, src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP") -> bool:
        """Whether ``src`` may open a connection to ``dst`` on ``port``."""
        if isinstance(src, Pod):
            out = self._selecting(src, "Egress")
            if out and not self._allows(out, "egress", "to", dst, dst, port, protocol):
                return False
        if isinstance(dst, Pod):
            into = self._selecting(dst, "Ingress")
            if into and not self._allows(into, "ingress", "from", src, dst, port, protocol):
                return False
        return True


def pods_of(objects: Iterable[Obj]) -> dict[str, Pod]:
    """The pods the rendered objects make, by name: one per Deployment and Job pod template, and the
    instance pods of every CloudNativePG Cluster (labels: ``inheritedMetadata`` plus the
    ``cnpg.io/cluster`` and ``cnpg.io/podRole`` labels the operator adds; ports 5432, 8000, 9187)."""
    found: dict[str, Pod] = {}
    for obj in objects:
        kind, meta = obj.get("kind"), obj.get("metadata") or {}
        ns = meta.get("namespace", "default")
        if kind in ("Deployment", "StatefulSet", "Job"):
            template = obj["spec"]["template"]
            ports = {
                p["name"]: int(p["containerPort"])
                for c in template["spec"].get("containers", [])
                for p in c.get("ports") or []
                if p.get("name")
            }
            found[meta["name"]] = Pod(meta["name"], ns, dict(template["metadata"].get("labels") or {}), ports)
        elif kind == "Cluster" and str(obj.get("apiVersion", "")).startswith("postgresql.cnpg.io/"):
            inherited = (obj["spec"].get("inheritedMetadata") or {}).get("labels") or {}
            pod_labels = {**inherited, "cnpg.io/cluster": meta["name"], "cnpg.io/podRole": "instance"}
            ports = {"postgresql": 5432, "status": 8000, "metrics": 9187}
            found[meta["name"]] = Pod(meta["name"], ns, pod_labels, ports)
    return found
