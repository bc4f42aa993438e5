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
from components.options import child_opts
from infra import traffic
from infra.config import PlatformConfig
from infra.targets.kubernetes import helm
from infra.targets.kubernetes.extras import WorkloadExtras
from infra.targets.kubernetes.mesh import (
    ISTIO_BASE,
    ISTIO_GATEWAY,
    ISTIO_NAMESPACE,
    ISTIOD,
    gateway_values,
    istiod_values,
    sidecar_egress,
)

TYPE = "vinylhound:platform:Platform"


@dataclass(frozen=True)
class PlatformArgs:
    """``extra_mesh_config`` is merged into istiod's ``meshConfig`` (how tracing adds its
    providers without editing the mesh). Default: nothing added."""

    cfg: PlatformConfig
    context: LabelContext
    extra_mesh_config: Mapping[str, Any] = field(default_factory=dict)


class Platform(pulumi.ComponentResource):
    """The workloads' namespace and Istio (``base``, ``istiod``, ingress ``gateway``)."""

    namespace: k8s.core.v1.Namespace
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
                "labels": {**args.context.common(), "istio-injection": "enabled"},
            },
            opts=child_opts(self, moved_from_root=True),
        )
        version = cfg.charts.istio
        self.base = helm.release(
            "istio-base",
            ISTIO_BASE,
            version,
            ISTIO_NAMESPACE,
            {"defaultRevision": "default"},
            child_opts(self, moved_from_root=True),
            create_namespace=True,
        )
        self.istiod = helm.release(
            "istiod",
            ISTIOD,
            version,
            ISTIO_NAMESPACE,
            istiod_values(cfg, args.extra_mesh_config),
            child_opts(self, [self.base], moved_from_root=True),
            create_namespace=True,
        )
        self.gateway = helm.release(
            traffic.INGRESS_RELEASE,
            ISTIO_GATEWAY,
            version,
            traffic.INGRESS_NAMESPACE,
            gateway_values(cfg),
            child_opts(self, [self.istiod], moved_from_root=True),
            create_namespace=True,
        )
        self.extras = WorkloadExtras(egress=(sidecar_egress,), depends_on=(self.istiod,))
        self.register_outputs({"namespace": cfg.namespace})
