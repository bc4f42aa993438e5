"""The platform every area builds on: the workloads' namespace and the Istio charts.

The namespace labels every pod for sidecar injection; the three Istio charts install the CRDs
(``base``), the control plane with its sidecar injector (``istiod``) and the ingress gateway, in
that order. ``extras`` lets every sidecar reach istiod and makes every workload wait for the
injector, so its pods get a sidecar.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.labels import LabelContext
from components.options import child_opts, waits
from infra import pod_security
from infra.config import PlatformConfig
from infra.targets.kubernetes import helm, traffic
from infra.targets.kubernetes.extras import WorkloadExtras
from infra.targets.kubernetes.mesh import (
    ISTIO_BASE,
    ISTIO_CNI,
    ISTIO_GATEWAY,
    ISTIO_NAMESPACE,
    ISTIOD,
    gateway_values,
    istiod_values,
    sidecar_egress,
)
from infra.targets.kubernetes.netpol import default_deny
from infra.targets.kubernetes.quota import Footprint, budget

TYPE = "vinylhound:platform:Platform"


@dataclass(frozen=True)
class PlatformArgs:
    """``extra_mesh_config`` is merged into istiod's ``meshConfig`` (how tracing adds its
    providers without editing the mesh). Default: nothing added. ``quota``: what the workloads'
    namespace may run at once (its ResourceQuota, with a LimitRange); default: no quota."""

    cfg: PlatformConfig
    context: LabelContext
    extra_mesh_config: Mapping[str, Any] = field(default_factory=dict)
    quota: Footprint | None = None


class Platform(pulumi.ComponentResource):
    """The workloads' namespace and Istio (``base``, ``istiod``, ingress ``gateway``)."""

    namespace: k8s.core.v1.Namespace
    #: Istio's CNI plugin (instead of the privileged istio-init container in every pod).
    cni: k8s.helm.v3.Release
    #: The release that installs Istio's CRDs; every Istio custom resource waits for it.
    base: k8s.helm.v3.Release
    istiod: k8s.helm.v3.Release
    gateway: k8s.helm.v3.Release
    extras: WorkloadExtras

    def __init__(self, name: str, args: PlatformArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        cfg = args.cfg
        self.namespace = k8s.core.v1.Namespace(
            "namespace",
            metadata={
                "name": cfg.namespace,
                # Every pod in the namespace gets an Istio sidecar: mTLS, metrics and traces for free.
                "labels": {
                    **args.context.common(),
                    "istio-injection": "enabled",
                    **pod_security.labels(cfg.namespace),
                },
            },
            opts=child_opts(self, moved_from_root=True),
        )
        default_deny(self, "default-deny", cfg.namespace, args.context, [self.namespace])
        if args.quota is not None:
            budget(self, cfg.namespace, args.context, args.quota, [self.namespace])
        version = cfg.charts.istio
        # The Istio namespaces are declared by the program (``ChartNamespaces``), which the
        # platform is told to wait for; the releases no longer create them.
        chart_namespaces = waits(opts)
        # The CNI plugin sets up each pod's traffic redirection, so the injected init container
        # needs no NET_ADMIN/NET_RAW and the workloads' namespace can enforce "restricted". Its
        # DaemonSet needs hostPath: istio-system enforces "privileged" (infra/pod_security.py).
        self.cni = helm.release(
            "istio-cni",
            ISTIO_CNI,
            version,
            ISTIO_NAMESPACE,
            {},
            child_opts(self, chart_namespaces),
        )
        self.base = helm.release(
            "istio-base",
            ISTIO_BASE,
            version,
            ISTIO_NAMESPACE,
            {"defaultRevision": "default"},
            child_opts(self, chart_namespaces, moved_from_root=True),
        )
        self.istiod = helm.release(
            "istiod",
            ISTIOD,
            version,
            ISTIO_NAMESPACE,
            istiod_values(cfg, args.extra_mesh_config),
            # Pods injected before the CNI plugin runs on their node would not start.
            child_opts(self, [*chart_namespaces, self.base, self.cni], moved_from_root=True),
        )
        self.gateway = helm.release(
            traffic.INGRESS_RELEASE,
            ISTIO_GATEWAY,
            version,
            traffic.INGRESS_NAMESPACE,
            gateway_values(cfg),
            child_opts(self, [*chart_namespaces, self.istiod], moved_from_root=True),
        )
        self.extras = WorkloadExtras(egress=(sidecar_egress,), depends_on=(self.istiod,))
        self.register_outputs({"namespace": cfg.namespace})
