"""A synthetic, fully compliant stack for the policy tests: one service with every part of the
platform around it (mesh, database, registry, tracing, monitoring), plus one local Docker container.

The shapes follow what the platform declares (Istio ``networking.istio.io/v1``, CloudNativePG
``postgresql.cnpg.io/v1``, ``monitoring.coreos.com/v1``, NACK ``jetstream.nats.io/v1beta2``, the
Consul chart's values, pulumi-docker's Container), so a rule is proven here before the stacks
declare the resources it reads.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from ops.analyzer import Resource

NS = "vinylhound"
NAME = "user-service"
SELECTOR = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "vinylhound"}
LABELS = {**SELECTOR, "app.kubernetes.io/component": "service"}
DIGEST = "sha256:" + "0a" * 32
IMAGE = f"ghcr.io/vinylhound/user-service:1.6.1@{DIGEST}"
#: Pod Security Admission labels enforcing, auditing and warning at restricted, versions pinned.
PSA_RESTRICTED = {
    f"pod-security.kubernetes.io/{mode}{suffix}": value
    for mode in ("enforce", "audit", "warn")
    for suffix, value in (("", "restricted"), ("-version", "v1.33"))
}
#: The event the baseline service consumes (pod annotation ``vinylhound.dev/consumes``).
CONSUMED = "vinylhound.playlist.created"


def urn(type_: str, name: str) -> str:
    """The URN the engine would give a top-level resource of the prod stack."""
    return f"urn:pulumi:prod::vinylhound::{type_}::{name}"


def _meta(name: str = NAME, namespace: str = NS, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": dict(labels if labels is not None else LABELS)}


def _probe() -> dict[str, Any]:
    return {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 5}


def deployment() -> dict[str, Any]:
    secure = {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    env = [
        {"name": "DB_HOST", "value": f"{NAME}-db-rw.{NS}.svc.cluster.local"},
        {"name": "DB_NAME", "value": "vinylhound_users"},
        {"name": "DB_USER", "value": "vinylhound_users"},
        {
            "name": "DB_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": f"{NAME}-db-credentials", "key": "password"}},
        },
        {"name": "JWT_SECRET", "valueFrom": {"secretKeyRef": {"name": "vinylhound-jwt", "key": "secret"}}},
        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://jaeger-collector.observability:4317"},
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(),
        "spec": {
            "selector": {"matchLabels": SELECTOR},
            "template": {
                "metadata": {"labels": LABELS, "annotations": {"vinylhound.dev/consumes": CONSUMED}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [
                        {
                            "name": NAME,
                            "image": IMAGE,
                            "env": env,
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi", "ephemeral-storage": "64Mi"},
                                "limits": {"cpu": "500m", "memory": "256Mi", "ephemeral-storage": "256Mi"},
                            },
                            "readinessProbe": _probe(),
                            "livenessProbe": _probe(),
                            "securityContext": secure,
                            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                        }
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
        },
    }


def _docker_container() -> dict[str, Any]:
    return {
        "name": "vinylhound-user-service",
        "image": IMAGE,
        "envs": ["PORT=8001", "DB_HOST=user-service-db"],
        "ports": [{"internal": 8001, "external": 8001, "ip": "127.0.0.1"}],
        "healthcheck": {"tests": ["CMD", "wget", "-qO-", "http://127.0.0.1:8001/health"], "interval": "5s"},
        "restart": "unless-stopped",
    }


def _release(name: str, chart: str, version: str, values: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": "platform",
        "chart": chart,
        "version": version,
        "repositoryOpts": {"repo": "https://charts.example.invalid"},
        "values": values or {},
    }


#: key -> (type token, Pulumi name, properties builder)
_BASELINE: dict[str, tuple[str, str, Callable[[], dict[str, Any]]]] = {
    "deployment": ("kubernetes:apps/v1:Deployment", f"{NAME}-deployment", deployment),
    "service": (
        "kubernetes:core/v1:Service",
        f"{NAME}-service",
        lambda: {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(),
            "spec": {"type": "ClusterIP", "selector": SELECTOR, "ports": [{"name": "http", "port": 8001}]},
        },
    ),
    "hpa": (
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
        f"{NAME}-hpa",
        lambda: {
            "metadata": _meta(),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME},
                "minReplicas": 3,
                "maxReplicas": 8,
            },
        },
    ),
    "pdb": (
        "kubernetes:policy/v1:PodDisruptionBudget",
        f"{NAME}-pdb",
        lambda: {"metadata": _meta(), "spec": {"maxUnavailable": 1, "selector": {"matchLabels": SELECTOR}}},
    ),
    "netpol": (
        "kubernetes:networking.k8s.io/v1:NetworkPolicy",
        f"{NAME}-netpol",
        lambda: {
            "metadata": _meta(),
            "spec": {"podSelector": {"matchLabels": SELECTOR}, "policyTypes": ["Ingress", "Egress"]},
        },
    ),
    "destinationrule": (
        "kubernetes:networking.istio.io/v1:DestinationRule",
        f"{NAME}-destinationrule",
        lambda: {
            "metadata": _meta(),
            "spec": {
                "host": f"{NAME}.{NS}.svc.cluster.local",
                "trafficPolicy": {
                    "outlierDetection": {
                        "consecutive5xxErrors": 5,
                        "interval": "10s",
                        "baseEjectionTime": "30s",
                    },
                    "connectionPool": {
                        "http": {"http1MaxPendingRequests": 100},
                        "tcp": {"maxConnections": 100},
                    },
                    "tls": {"mode": "ISTIO_MUTUAL"},
                },
            },
        },
    ),
    "virtualservice": (
        "kubernetes:networking.istio.io/v1:VirtualService",
        "edge-routes",
        lambda: {
            "metadata": _meta("edge", labels={}),
            "spec": {
                "hosts": ["vinylhound.app"],
                "http": [
                    {
                        "name": "users",
                        "match": [{"uri": {"prefix": "/api/v1/users"}}],
                        "route": [{"destination": {"host": f"{NAME}.{NS}.svc.cluster.local"}, "weight": 100}],
                        "timeout": "10s",
                        "retries": {"attempts": 2, "perTryTimeout": "3s", "retryOn": "5xx,reset"},
                    },
                    {"name": "root", "redirect": {"uri": "/app"}},
                ],
            },
        },
    ),
    "namespace": (
        "kubernetes:core/v1:Namespace",
        "namespace",
        lambda: {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": NS, "labels": {"istio-injection": "enabled", **PSA_RESTRICTED}},
        },
    ),
    "resourcequota": (
        "kubernetes:core/v1:ResourceQuota",
        "quota",
        lambda: {
            "metadata": _meta("quota", labels={}),
            "spec": {
                "hard": {
                    "requests.cpu": "4",
                    "requests.memory": "8Gi",
                    "limits.cpu": "16",
                    "limits.memory": "16Gi",
                    "requests.ephemeral-storage": "4Gi",
                    "limits.ephemeral-storage": "16Gi",
                    "pods": "40",
                }
            },
        },
    ),
    "limitrange": (
        "kubernetes:core/v1:LimitRange",
        "limits",
        lambda: {
            "metadata": _meta("limits", labels={}),
            "spec": {
                "limits": [
                    {
                        "type": "Container",
                        "default": {"cpu": "500m", "memory": "256Mi", "ephemeral-storage": "256Mi"},
                        "defaultRequest": {"cpu": "50m", "memory": "64Mi", "ephemeral-storage": "64Mi"},
                    }
                ]
            },
        },
    ),
    "defaultdeny": (
        "kubernetes:networking.k8s.io/v1:NetworkPolicy",
        "default-deny",
        lambda: {
            "metadata": _meta("default-deny", labels={}),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        },
    ),
    "authorizationpolicy": (
        "kubernetes:security.istio.io/v1:AuthorizationPolicy",
        f"{NAME}-authorizationpolicy",
        lambda: {
            "metadata": _meta(labels={}),
            "spec": {
                "action": "ALLOW",
                "selector": {"matchLabels": SELECTOR},
                "rules": [
                    {
                        "from": [{"source": {"principals": ["cluster.local/ns/istio-ingress/sa/gateway"]}}],
                        "to": [{"operation": {"ports": ["8001"]}}],
                    }
                ],
            },
        },
    ),
    "gateway": (
        "kubernetes:networking.istio.io/v1:Gateway",
        "edge-gateway",
        lambda: {
            "metadata": _meta("edge", "istio-ingress", labels={}),
            "spec": {
                "selector": {"istio": "ingressgateway"},
                "servers": [
                    {
                        "name": "https",
                        "hosts": [f"{NS}/vinylhound.app"],
                        "port": {"name": "https", "number": 443, "protocol": "HTTPS"},
                        "tls": {"mode": "SIMPLE", "credentialName": "tls", "minProtocolVersion": "TLSV1_2"},
                    },
                    {
                        "name": "http",
                        "hosts": [f"{NS}/vinylhound.app"],
                        "port": {"name": "http", "number": 80, "protocol": "HTTP"},
                        "tls": {"httpsRedirect": True},
                    },
                ],
            },
        },
    ),
    "peerauthentication": (
        "kubernetes:security.istio.io/v1:PeerAuthentication",
        "mesh-mtls",
        lambda: {"metadata": _meta("default", labels={}), "spec": {"mtls": {"mode": "STRICT"}}},
    ),
    "database": (
        "kubernetes:postgresql.cnpg.io/v1:Cluster",
        f"{NAME}-db",
        lambda: {
            "metadata": _meta(f"{NAME}-db"),
            "spec": {
                "instances": 3,
                "backup": {"barmanObjectStore": {"destinationPath": "s3://backups/user-service"}},
                "resources": {
                    "requests": {"cpu": "250m", "memory": "512Mi", "ephemeral-storage": "256Mi"},
                    "limits": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "2Gi"},
                },
            },
        },
    ),
    "scheduledbackup": (
        "kubernetes:postgresql.cnpg.io/v1:ScheduledBackup",
        f"{NAME}-db-backup",
        lambda: {
            "metadata": _meta(f"{NAME}-db-daily"),
            "spec": {"schedule": "0 0 3 * * *", "cluster": {"name": f"{NAME}-db"}},
        },
    ),
    "podmonitor": (
        "kubernetes:monitoring.coreos.com/v1:PodMonitor",
        f"{NAME}-podmonitor",
        lambda: {
            "metadata": _meta(),
            "spec": {
                "selector": {"matchLabels": SELECTOR},
                "podMetricsEndpoints": [{"port": "http-envoy-prom", "path": "/stats/prometheus"}],
            },
        },
    ),
    "prometheusrule": (
        "kubernetes:monitoring.coreos.com/v1:PrometheusRule",
        f"{NAME}-alerts",
        lambda: {
            "metadata": _meta(),
            "spec": {"groups": [{"name": NAME, "rules": [{"alert": "UserServiceDown", "expr": "up == 0"}]}]},
        },
    ),
    "istiod": ("kubernetes:helm.sh/v3:Release", "istiod", lambda: _release("istiod", "istiod", "1.27.3")),
    "consul": (
        "kubernetes:helm.sh/v3:Release",
        "consul",
        lambda: _release(
            "consul",
            "consul",
            "1.8.2",
            {
                "global": {
                    "acls": {"manageSystemACLs": True},
                    "tls": {"enabled": True},
                    "gossipEncryption": {"secretName": "consul-gossip", "secretKey": "key"},
                },
                "syncCatalog": {"enabled": True},
            },
        ),
    ),
    "jaeger": ("kubernetes:helm.sh/v3:Release", "jaeger", lambda: _release("jaeger", "jaeger", "3.4.1")),
    "prometheus": (
        "kubernetes:helm.sh/v3:Release",
        "kube-prometheus-stack",
        lambda: _release("kube-prometheus-stack", "kube-prometheus-stack", "79.5.0"),
    ),
    "cnpg": (
        "kubernetes:helm.sh/v3:Release",
        "cloudnative-pg",
        lambda: _release("cloudnative-pg", "cloudnative-pg", "0.26.1"),
    ),
    "stream": (
        "kubernetes:jetstream.nats.io/v1beta2:Stream",
        "stream-vinylhound-playlist",
        lambda: {
            "metadata": _meta("vinylhound-playlist", "nats", labels={}),
            "spec": {"name": "VINYLHOUND_PLAYLIST", "subjects": [CONSUMED], "replicas": 3, "storage": "file"},
        },
    ),
    "consumer": (
        "kubernetes:jetstream.nats.io/v1beta2:Consumer",
        f"consumer-{NAME}-vinylhound-playlist",
        lambda: {
            "metadata": _meta(f"{NAME}-vinylhound-playlist", "nats", labels={}),
            "spec": {
                "streamName": "VINYLHOUND_PLAYLIST",
                "durableName": NAME,
                "filterSubject": CONSUMED,
                "ackPolicy": "explicit",
                "deliverPolicy": "all",
            },
        },
    ),
    "container": ("docker:index/container:Container", "user-service-container", _docker_container),
}


def baseline() -> dict[str, Resource]:
    """A fresh compliant stack, keyed by role (``deployment``, ``destinationrule``, ...)."""
    return {
        key: Resource(urn=urn(type_, name), type=type_, name=name, properties=build())
        for key, (type_, name, build) in _BASELINE.items()
    }


def mutated(
    resources: dict[str, Resource], key: str, change: Callable[[dict[str, Any]], None]
) -> dict[str, Resource]:
    """A copy of ``resources`` with ``change`` applied to the properties of ``resources[key]``."""
    props = copy.deepcopy(dict(resources[key].properties))
    change(props)
    target = resources[key]
    return resources | {key: Resource(urn=target.urn, type=target.type, name=target.name, properties=props)}


def without(resources: dict[str, Resource], *keys: str) -> dict[str, Resource]:
    """A copy of ``resources`` without the resources at ``keys``."""
    return {k: v for k, v in resources.items() if k not in keys}


def container(props: dict[str, Any]) -> dict[str, Any]:
    """The Deployment's (first) container."""
    result: dict[str, Any] = props["spec"]["template"]["spec"]["containers"][0]
    return result


def env(props: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The Deployment container's env entries by name (mutating them mutates the Deployment)."""
    return {e["name"]: e for e in container(props)["env"]}
