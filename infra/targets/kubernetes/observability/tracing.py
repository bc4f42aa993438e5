"""Jaeger v2 and the wiring that sends every workload's spans to it.

Jaeger runs as the chart's single deployment (collector + query + storage in one process). Spans
arrive over OTLP from two places: the Istio sidecar of every pod (the services themselves are not
instrumented, so the mesh is what produces traces) and any service that later adds an SDK, which
finds the collector through the standard ``OTEL_*`` variables set here.
"""

from __future__ import annotations

from typing import Any

from components.kubernetes.specs import KubeObject, ResourceSpec
from components.values import EnvVar
from infra.catalog import Workload
from infra.config import TraceStorage
from infra.targets.kubernetes.network import NAMESPACE_NAME_LABEL

NAMESPACE = "observability"
RELEASE = "jaeger"
CHART = "jaeger"
REPOSITORY = "https://jaegertracing.github.io/helm-charts"
#: The chart names its Service after the release (``jaeger.fullname``).
SERVICE = RELEASE
COLLECTOR_HOST = f"{SERVICE}.{NAMESPACE}.svc.cluster.local"
OTLP_GRPC_PORT = 4317
OTLP_HTTP_PORT = 4318
#: Jaeger v2's own Prometheus metrics (the chart's ``internal-metrics`` Service port).
METRICS_PORT = 8888
METRICS_PORT_NAME = "internal-metrics"
HEALTH_PORT = 13133
#: Labels the chart puts on the Jaeger pods and Service (``jaeger.selectorLabels`` + component).
POD_LABELS = {
    "app.kubernetes.io/name": CHART,
    "app.kubernetes.io/instance": RELEASE,
    "app.kubernetes.io/component": "all-in-one",
}
#: Name of the mesh's tracing provider in istiod's ``meshConfig.extensionProviders``.
MESH_PROVIDER = "vinylhound-jaeger"
#: Where the badger backend keeps its files (on the PersistentVolumeClaim).
BADGER_PATH = "/badger"
BADGER_CLAIM = "jaeger-badger"
#: The uid the jaegertracing/jaeger image runs as.
JAEGER_UID = 10001

_STORE = "primary_store"


def otel_env(workload: Workload, environment: str, version: str) -> list[EnvVar]:
    """The standard OpenTelemetry SDK variables: where to export, and who is exporting."""
    attributes = {
        "deployment.environment": environment,
        "service.namespace": "vinylhound",
        "service.version": version,
    }
    return [
        EnvVar("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://{COLLECTOR_HOST}:{OTLP_GRPC_PORT}"),
        EnvVar("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        EnvVar("OTEL_SERVICE_NAME", workload.name),
        EnvVar("OTEL_RESOURCE_ATTRIBUTES", ",".join(f"{k}={v}" for k, v in sorted(attributes.items()))),
    ]


def collector_egress() -> KubeObject:
    """NetworkPolicy egress to the collector's OTLP ports (the app and its sidecar both send)."""
    return {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: NAMESPACE}},
                "podSelector": {"matchLabels": dict(POD_LABELS)},
            }
        ],
        "ports": [{"protocol": "TCP", "port": p} for p in (OTLP_GRPC_PORT, OTLP_HTTP_PORT)],
    }


def _backend(storage: TraceStorage) -> dict[str, Any]:
    if storage.backend == "memory":
        return {"memory": {"max_traces": storage.max_traces}}
    if storage.backend == "badger":
        return {
            "badger": {
                "directories": {"keys": f"{BADGER_PATH}/keys", "values": f"{BADGER_PATH}/values"},
                "ephemeral": False,
                "ttl": {"spans": storage.retention},
            }
        }
    if storage.backend is None:
        raise ValueError("resolve the trace storage backend first (ObservabilityConfig.trace_storage)")
    return {
        storage.backend: {
            "server_urls": list(storage.server_urls),
            "indices": {"index_prefix": storage.index_prefix},
        }
    }


def jaeger_config(storage: TraceStorage) -> dict[str, Any]:
    """Jaeger v2's own configuration (an OpenTelemetry Collector config): OTLP in, storage out."""
    return {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query", "healthcheckv2"],
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["batch"],
                    "exporters": ["jaeger_storage_exporter"],
                }
            },
            "telemetry": {
                "resource": {"service.name": "jaeger"},
                "metrics": {
                    "level": "detailed",
                    "readers": [
                        {"pull": {"exporter": {"prometheus": {"host": "0.0.0.0", "port": METRICS_PORT}}}}
                    ],
                },
            },
        },
        "extensions": {
            "healthcheckv2": {"use_v2": True, "http": {"endpoint": f"0.0.0.0:{HEALTH_PORT}"}},
            "jaeger_query": {"storage": {"traces": _STORE}},
            "jaeger_storage": {"backends": {_STORE: _backend(storage)}},
        },
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": f"0.0.0.0:{OTLP_GRPC_PORT}"},
                    "http": {"endpoint": f"0.0.0.0:{OTLP_HTTP_PORT}"},
                }
            }
        },
        "processors": {"batch": {}},
        "exporters": {"jaeger_storage_exporter": {"trace_storage": _STORE}},
    }


def jaeger_values(storage: TraceStorage) -> dict[str, Any]:
    """Values for the jaeger chart (4.x, Jaeger v2): one pod, our config, no ingress.

    The UI stays on a ClusterIP Service (reach it with ``kubectl port-forward``); nothing exposes
    it outside the cluster. Badger gets its PersistentVolumeClaim through ``extraVolumes``
    (chart >= 4.11.1).
    """
    jaeger: dict[str, Any] = {
        "enabled": True,
        "service": {"type": "ClusterIP"},
        "ingress": {"enabled": False},
        "httproute": {"enabled": False},
        "podSecurityContext": {
            "runAsNonRoot": True,
            "runAsUser": JAEGER_UID,
            "runAsGroup": JAEGER_UID,
            "fsGroup": JAEGER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        # Traces live in memory or on the badger volume; only logs reach the node's disk.
        "resources": ResourceSpec("100m", "256Mi", "1", "1Gi").to_kube(),
    }
    if storage.backend == "badger":
        jaeger["extraVolumes"] = [{"name": "badger", "persistentVolumeClaim": {"claimName": BADGER_CLAIM}}]
        jaeger["extraVolumeMounts"] = [{"name": "badger", "mountPath": BADGER_PATH}]
    return {
        "jaeger": jaeger,
        "userconfig": jaeger_config(storage),
        # Never let the chart provision a datastore of its own; storage is ours to choose.
        "provisionDataStore": {"cassandra": False, "elasticsearch": False, "kafka": False},
    }


def badger_claim_spec(storage: TraceStorage) -> KubeObject:
    """The PersistentVolumeClaim spec behind the badger backend (one pod, so ReadWriteOnce)."""
    spec: KubeObject = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": storage.volume_size}},
    }
    if storage.storage_class:
        spec["storageClassName"] = storage.storage_class
    return spec


def mesh_extension_provider() -> dict[str, Any]:
    """The entry for istiod's ``meshConfig.extensionProviders``: spans over OTLP/gRPC to Jaeger.

    The mesh release (Istio's istiod chart) adds this to its values; the ``Telemetry`` resource
    below then turns it on for the whole mesh.
    """
    return {
        "name": MESH_PROVIDER,
        "opentelemetry": {"service": COLLECTOR_HOST, "port": OTLP_GRPC_PORT},
    }


#: The extra metric label the mesh Telemetry adds (see ``mesh_telemetry_spec``).
ROUTE_TAG = "route"


def mesh_config() -> dict[str, Any]:
    """The fragment of istiod's ``meshConfig`` this feature needs, for the mesh release to merge.

    The provider makes the collector known to the mesh; ``extraStatTags`` declares the ``route``
    label (older proxies otherwise turn an unknown tag into a metric-name prefix).
    """
    return {
        "extensionProviders": [mesh_extension_provider()],
        "defaultConfig": {"extraStatTags": [ROUTE_TAG]},
    }


def mesh_telemetry_spec(sampling_percent: float) -> dict[str, Any]:
    """The mesh-wide ``telemetry.istio.io/v1`` Telemetry spec (lives in istio-system).

    Tracing goes to the Jaeger provider at the configured sampling rate. The request metrics get a
    ``route`` label (the VirtualService http route name) so the migration dashboard can split each
    route's traffic between the monolith and the extracted service.
    """
    route_tag = {ROUTE_TAG: {"value": "xds.route_name"}}
    return {
        "tracing": [{"providers": [{"name": MESH_PROVIDER}], "randomSamplingPercentage": sampling_percent}],
        "metrics": [
            {
                "providers": [{"name": "prometheus"}],
                "overrides": [
                    {"match": {"metric": metric, "mode": "CLIENT"}, "tagOverrides": route_tag}
                    for metric in ("REQUEST_COUNT", "REQUEST_DURATION")
                ],
            }
        ],
    }
