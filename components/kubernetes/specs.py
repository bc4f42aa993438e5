"""Pure builders for the Kubernetes objects of one workload.

Everything here returns plain dicts in Kubernetes' own camelCase form, so it reads like the
manifests it becomes and is unit-tested without Pulumi. The component only registers them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from components.values import EnvVar

KubeObject = dict[str, Any]

#: Named container port used by the Service, the probes and Istio's protocol detection.
HTTP_PORT_NAME = "http"
#: Extra pods a Deployment runs while a rollout replaces its pods (``maxSurge``).
ROLLOUT_SURGE = 1


def env_entry(var: EnvVar) -> KubeObject:
    """The container ``env`` entry of ``var``: a value, or a ``secretKeyRef``."""
    if var.secret is not None:
        ref = {"name": var.secret.secret, "key": var.secret.key}
        return {"name": var.name, "valueFrom": {"secretKeyRef": ref}}
    return {"name": var.name, "value": var.value}


@dataclass(frozen=True)
class ResourceSpec:
    """Container requests and limits (Kubernetes quantities).

    Ephemeral storage (logs, the writable layer, disk-backed emptyDirs) defaults to a 64Mi request
    and a 512Mi limit: above the pod's emptyDir size limits (64Mi per writable path) plus the
    kubelet's rotated logs, so a container that fills its scratch space is evicted on its own
    instead of filling the node's disk.
    """

    cpu_request: str = "100m"
    memory_request: str = "128Mi"
    cpu_limit: str = "500m"
    memory_limit: str = "256Mi"
    ephemeral_request: str = "64Mi"
    ephemeral_limit: str = "512Mi"

    def to_kube(self) -> KubeObject:
        """The container ``resources`` block."""
        return {
            "requests": {
                "cpu": self.cpu_request,
                "memory": self.memory_request,
                "ephemeral-storage": self.ephemeral_request,
            },
            "limits": {
                "cpu": self.cpu_limit,
                "memory": self.memory_limit,
                "ephemeral-storage": self.ephemeral_limit,
            },
        }


@dataclass(frozen=True)
class AutoscalingSpec:
    """Bounds and CPU target of a HorizontalPodAutoscaler."""

    min_replicas: int
    max_replicas: int
    target_cpu_percent: int = 70


@dataclass(frozen=True)
class WorkloadSpec:
    """What the pod of one workload needs, independent of Pulumi."""

    name: str
    namespace: str
    image: str
    port: int
    health_path: str | None
    labels: Mapping[str, str]
    selector: Mapping[str, str]
    env: Sequence[EnvVar] = ()
    replicas: int = 1
    autoscaling: AutoscalingSpec | None = None
    resources: ResourceSpec = ResourceSpec()
    writable_paths: Sequence[str] = ("/tmp",)
    #: Above 10000, outside the range hosts give their own users (see docs/security.md, "UIDs").
    run_as_user: int = 10001
    pod_annotations: Mapping[str, str] = field(default_factory=dict)
    #: NetworkPolicy ``ingress`` rules; empty means nothing may connect.
    ingress: Sequence[KubeObject] = ()
    #: NetworkPolicy ``egress`` rules; empty means the pod may connect nowhere.
    egress: Sequence[KubeObject] = ()

    @property
    def min_replicas(self) -> int:
        """The fewest pods the workload runs with."""
        return self.autoscaling.min_replicas if self.autoscaling else self.replicas


def metadata(spec: WorkloadSpec, **extra: Any) -> KubeObject:
    """Name, namespace and labels shared by every object of the workload."""
    return {"name": spec.name, "namespace": spec.namespace, "labels": dict(spec.labels), **extra}


def volume_name(path: str) -> str:
    """A DNS-label volume name for a writable path (``/var/cache/nginx`` -> ``var-cache-nginx``)."""
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "root"


def _probe(spec: WorkloadSpec, **timing: int) -> KubeObject:
    if spec.health_path is None:
        # No health endpoint (the nginx front end): an open port is the best signal there is.
        return {"tcpSocket": {"port": HTTP_PORT_NAME}, **timing}
    return {"httpGet": {"path": spec.health_path, "port": HTTP_PORT_NAME}, **timing}


def container(spec: WorkloadSpec) -> KubeObject:
    """The workload's single container: probes, resources and a restricted security context."""
    return {
        "name": spec.name,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": HTTP_PORT_NAME, "containerPort": spec.port, "protocol": "TCP"}],
        "env": [env_entry(e) for e in spec.env],
        "resources": spec.resources.to_kube(),
        # Startup gives a cold start up to 60 s before liveness may restart the container.
        "startupProbe": _probe(spec, periodSeconds=2, failureThreshold=30, timeoutSeconds=2),
        "readinessProbe": _probe(spec, periodSeconds=5, failureThreshold=3, timeoutSeconds=2),
        "livenessProbe": _probe(spec, periodSeconds=10, failureThreshold=3, timeoutSeconds=2),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": spec.run_as_user,
            "runAsGroup": spec.run_as_user,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": volume_name(p), "mountPath": p} for p in spec.writable_paths],
    }


def pod_template(spec: WorkloadSpec) -> KubeObject:
    """The pod template: no service-account token, spread across nodes and zones."""
    return {
        "metadata": {"labels": dict(spec.labels), "annotations": dict(spec.pod_annotations)},
        "spec": {
            "serviceAccountName": spec.name,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": spec.run_as_user,
                "runAsGroup": spec.run_as_user,
                "fsGroup": spec.run_as_user,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container(spec)],
            "volumes": [
                {"name": volume_name(p), "emptyDir": {"sizeLimit": "64Mi"}} for p in spec.writable_paths
            ],
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": key,
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": dict(spec.selector)},
                }
                for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
            ],
        },
    }


def deployment_spec(spec: WorkloadSpec) -> KubeObject:
    """The Deployment spec. With an autoscaler, ``replicas`` is left out so the two never fight."""
    body: KubeObject = {
        "selector": {"matchLabels": dict(spec.selector)},
        "revisionHistoryLimit": 5,
        # Never drop below the wanted count during a rollout; surge one pod at a time.
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": ROLLOUT_SURGE, "maxUnavailable": 0},
        },
        "template": pod_template(spec),
    }
    if spec.autoscaling is None:
        body["replicas"] = spec.replicas
    return body


def service_spec(spec: WorkloadSpec) -> KubeObject:
    """A ClusterIP Service on the workload's own port, named for Istio's protocol detection."""
    return {
        "type": "ClusterIP",
        "selector": dict(spec.selector),
        "ports": [
            {
                "name": HTTP_PORT_NAME,
                "port": spec.port,
                "targetPort": HTTP_PORT_NAME,
                "protocol": "TCP",
                "appProtocol": "http",
            }
        ],
    }


def hpa_spec(spec: WorkloadSpec) -> KubeObject | None:
    """An autoscaling/v2 HPA spec on CPU, or ``None`` without autoscaling."""
    if spec.autoscaling is None:
        return None
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name},
        "minReplicas": spec.autoscaling.min_replicas,
        "maxReplicas": spec.autoscaling.max_replicas,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {
                        "type": "Utilization",
                        "averageUtilization": spec.autoscaling.target_cpu_percent,
                    },
                },
            }
        ],
    }


def pdb_spec(spec: WorkloadSpec) -> KubeObject | None:
    """A PodDisruptionBudget keeping all but one pod up, or ``None`` for a single replica."""
    if spec.min_replicas <= 1:
        return None
    return {"maxUnavailable": 1, "selector": {"matchLabels": dict(spec.selector)}}


def network_policy_spec(spec: WorkloadSpec) -> KubeObject:
    """Default deny both ways; only the given ingress and egress rules are allowed."""
    return {
        "podSelector": {"matchLabels": dict(spec.selector)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [dict(rule) for rule in spec.ingress],
        "egress": [dict(rule) for rule in spec.egress],
    }
