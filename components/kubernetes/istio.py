"""Pure builders for Istio custom-resource specs (networking.istio.io/v1, security.istio.io/v1).

Like ``specs``, everything returns Istio's own camelCase dicts and knows nothing about Vinylhound's
workloads or stacks; ``infra`` decides what to route where. Field names follow the Istio CRDs
(checked against the ``cloudcoil-models-istio`` schemas in the tests).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

KubeObject = dict[str, Any]

NETWORKING = "networking.istio.io/v1"
SECURITY = "security.istio.io/v1"

#: The conditions a read route retries on: server errors, resets and refused connections.
RETRY_ON = "5xx,reset,connect-failure"
#: The conditions a write route retries on: only failures where the request cannot have reached
#: the upstream (the connection was never made, or HTTP/2 refused the stream before processing).
#: A 5xx or a reset may come after the upstream applied the write, so retrying it could repeat a
#: side effect (a second signup, a duplicate rating).
WRITE_RETRY_ON = "connect-failure,refused-stream"

#: Methods that only read: safe to retry on 5xx, to mirror and to split between two copies.
READ_METHODS = ("GET", "HEAD")
#: Methods that change data; they go where the data is owned and are never mirrored.
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")

#: Sidecar ports Prometheus scrapes: pilot-agent's merged metrics and Envoy's own stats.
METRICS_PORTS = (15020, 15090)


@dataclass(frozen=True)
class Backend:
    """One destination of a route: a Kubernetes service host and port, with its share of traffic."""

    host: str
    port: int
    weight: int = 100

    def destination(self) -> KubeObject:
        """The ``destination`` block."""
        return {"host": self.host, "port": {"number": self.port}}


@dataclass(frozen=True)
class Resilience:
    """Timeout and retry policy of one HTTP route (Istio durations such as ``15s``)."""

    timeout: str
    attempts: int
    per_try_timeout: str
    retry_on: str = RETRY_ON

    def for_writes(self) -> Resilience:
        """The same timeout and bound, retrying only where the request never reached the upstream."""
        return replace(self, retry_on=WRITE_RETRY_ON)

    def to_route(self) -> KubeObject:
        """The ``timeout`` and ``retries`` fields of an HTTP route."""
        return {
            "timeout": self.timeout,
            "retries": {
                "attempts": self.attempts,
                "perTryTimeout": self.per_try_timeout,
                "retryOn": self.retry_on,
            },
        }


@dataclass(frozen=True)
class BreakerSpec:
    """Circuit breaker of a DestinationRule: outlier detection plus connection-pool limits."""

    consecutive_5xx_errors: int = 5
    interval: str = "10s"
    base_ejection_time: str = "30s"
    max_ejection_percent: int = 50
    max_connections: int = 100
    max_pending_requests: int = 100
    max_requests: int = 1000
    connect_timeout: str = "2s"


def uri_matches(path: str) -> list[KubeObject]:
    """Match ``path`` itself and everything below it, on segment boundaries.

    ``/api/v1/me`` matches ``/api/v1/me`` and ``/api/v1/me/...`` but not ``/api/v1/meow``: a plain
    prefix would hand a sibling path of the monolith to the wrong service.
    """
    base = path.rstrip("/")
    return [{"uri": {"exact": base}}, {"uri": {"prefix": base + "/"}}]


def with_methods(matches: Sequence[KubeObject] | None, methods: Sequence[str]) -> list[KubeObject]:
    """Restrict each match to the given HTTP methods (one match per method, since matches OR);
    ``None`` (match everything) becomes a match on the methods alone."""
    return [{**m, "method": {"exact": method}} for m in (matches or [{}]) for method in methods]


def http_route(
    name: str,
    matches: Sequence[KubeObject] | None,
    backends: Sequence[Backend],
    resilience: Resilience,
    mirror: Backend | None = None,
) -> KubeObject:
    """One HTTP route: matches (``None`` matches everything), weighted destinations, timeout,
    bounded retries and an optional full mirror. Zero-weight destinations are left out."""
    active = [b for b in backends if b.weight > 0]
    if sum(b.weight for b in active) != 100:
        raise ValueError(f"route {name}: weights must add up to 100, got {[b.weight for b in backends]}")
    route: KubeObject = {"name": name}
    if matches is not None:
        route["match"] = [dict(m) for m in matches]
    route["route"] = [{"destination": b.destination(), "weight": b.weight} for b in active]
    if mirror is not None:
        route["mirror"] = mirror.destination()
        route["mirrorPercentage"] = {"value": 100.0}
    route.update(resilience.to_route())
    return route


def read_write_routes(
    name: str,
    matches: Sequence[KubeObject] | None,
    reads: Sequence[Backend],
    writes: Sequence[Backend],
    resilience: Resilience,
    mirror: Backend | None = None,
) -> list[KubeObject]:
    """Three routes for the same ``matches``, in this order: ``name-writes`` (POST, PUT, PATCH,
    DELETE) to ``writes`` with write-safe retries; ``name`` (GET, HEAD) to ``reads``, optionally
    mirrored, with the full retry policy; ``name-other`` (any other method: OPTIONS, a custom
    verb) to ``writes`` with write-safe retries. Only GET and HEAD are ever split, mirrored or
    retried on 5xx; a method the lists do not know is treated as a write.
    """
    write_policy = resilience.for_writes()
    return [
        http_route(f"{name}-writes", with_methods(matches, WRITE_METHODS), writes, write_policy),
        http_route(name, with_methods(matches, READ_METHODS), reads, resilience, mirror=mirror),
        http_route(f"{name}-other", matches, writes, write_policy),
    ]


def virtual_service_spec(
    hosts: Sequence[str], gateways: Sequence[str], routes: Sequence[KubeObject]
) -> KubeObject:
    """A VirtualService spec; Istio evaluates ``http`` in order and the first match wins."""
    return {"hosts": list(hosts), "gateways": list(gateways), "http": [dict(r) for r in routes]}


def gateway_spec(
    selector: Mapping[str, str], hosts: Sequence[str], tls_secret: str, plain_http: bool
) -> KubeObject:
    """An ingress Gateway: HTTPS with the certificate in ``tls_secret``; port 80 only redirects
    to HTTPS unless ``plain_http``."""
    https = {
        "name": "https",
        "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
        "hosts": list(hosts),
        "tls": {"mode": "SIMPLE", "credentialName": tls_secret, "minProtocolVersion": "TLSV1_2"},
    }
    http: KubeObject = {
        "name": "http",
        "port": {"number": 80, "name": "http", "protocol": "HTTP"},
        "hosts": list(hosts),
    }
    if not plain_http:
        http["tls"] = {"httpsRedirect": True}
    return {"selector": dict(selector), "servers": [https, http]}


def destination_rule_spec(host: str, breaker: BreakerSpec) -> KubeObject:
    """A DestinationRule for ``host``: Istio mutual TLS plus the circuit breaker."""
    return {
        "host": host,
        "trafficPolicy": {
            "tls": {"mode": "ISTIO_MUTUAL"},
            "connectionPool": {
                "tcp": {"maxConnections": breaker.max_connections, "connectTimeout": breaker.connect_timeout},
                "http": {
                    "http1MaxPendingRequests": breaker.max_pending_requests,
                    "http2MaxRequests": breaker.max_requests,
                },
            },
            "outlierDetection": {
                "consecutive5xxErrors": breaker.consecutive_5xx_errors,
                "interval": breaker.interval,
                "baseEjectionTime": breaker.base_ejection_time,
                "maxEjectionPercent": breaker.max_ejection_percent,
            },
        },
    }


def peer_authentication_spec(mode: str) -> KubeObject:
    """Namespace-wide mTLS mode (a PeerAuthentication without selector)."""
    return {"mtls": {"mode": mode}}


def principal(namespace: str, service_account: str, trust_domain: str = "cluster.local") -> str:
    """The SPIFFE principal Istio gives a workload's service account."""
    return f"{trust_domain}/ns/{namespace}/sa/{service_account}"


def authorization_policy_spec(
    selector: Mapping[str, str], principals: Sequence[str], port: int
) -> KubeObject:
    """ALLOW only ``principals`` on the workload's port, and anyone on the sidecar metrics ports.

    An ALLOW policy denies every request it does not match, so callers not listed are refused.
    The metrics rule keeps Prometheus scraping working whatever the interception settings.
    """
    return {
        "selector": {"matchLabels": dict(selector)},
        "action": "ALLOW",
        "rules": [
            {
                "from": [{"source": {"principals": sorted(set(principals))}}],
                "to": [{"operation": {"ports": [str(port)]}}],
            },
            {"to": [{"operation": {"ports": [str(p) for p in METRICS_PORTS]}}]},
        ],
    }
