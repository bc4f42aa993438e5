"""The platform every area builds on: the workloads' namespace and the Istio charts.

The namespace labels every pod for sidecar injection; the three Istio charts install the CRDs
(``base``), the control plane with its sidecar injector (``istiod``) and the ingress gateway, in
that order. ``extras`` lets every sidecar reach istiod and makes every workload wait for the
injector, so its pods get a sidecar.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
from infra.targets.kubernetes.quota import Footprint, app_namespace_footprint, budget

TYPE = "vinylhound:platform:Platform"


@dataclass(frozen=True)
class PlatformArgs:
    """``namespace``: the workloads' namespace. ``istio_version``: the version of the four Istio
    charts; ``istiod_values``/``gateway_values`` their values (``platform_args`` builds them).
    ``quota``: what the workloads' namespace may run at once (its ResourceQuota, with a
    LimitRange); default: no quota."""

    namespace: str
    context: LabelContext
    istio_version: str
    istiod_values: Mapping[str, Any]
    gateway_values: Mapping[str, Any]
    quota: Footprint | None = None


def platform_args(
    cfg: PlatformConfig, context: LabelContext, extra_mesh_config: Mapping[str, Any] | None = None
) -> PlatformArgs:
    """The platform's args from the stack's config. ``extra_mesh_config`` is merged into istiod's
    ``meshConfig`` (how tracing adds its providers without editing the mesh)."""
    return PlatformArgs(
        namespace=cfg.namespace,
        context=context,
        istio_version=cfg.charts.istio,
        istiod_values=istiod_values(cfg, extra_mesh_config),
        gateway_values=gateway_values(cfg),
        quota=app_namespace_footprint(cfg),
    )


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
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": args.namespace,
                # Every pod in the namespace gets an Istio sidecar: mTLS, metrics and traces for free.
                "labels": {
                    **args.context.common(),
                    "istio-injection": "enabled",
                    **pod_security.labels(args.namespace),
                },
            },
            opts=child_opts(self, moved_from_root=True, renamed_from="namespace"),
        )
        default_deny(
            self, f"{name}-default-deny", args.namespace, args.context, [self.namespace], "default-deny"
        )
        if args.quota is not None:
            budget(self, name, args.namespace, args.context, args.quota, [self.namespace])
        version = args.istio_version
        # The Istio namespaces are declared by the program (``ChartNamespaces``), which the
        # platform is told to wait for; the releases no longer create them.
        chart_namespaces = waits(opts)
        # The CNI plugin sets up each pod's traffic redirection, so the injected init container
        # needs no NET_ADMIN/NET_RAW and the workloads' namespace can enforce "restricted". Its
        # DaemonSet needs hostPath: istio-system enforces "privileged" (infra/pod_security.py).
        self.cni = helm.release(
            f"{name}-istio-cni",
            ISTIO_CNI,
            version,
            ISTIO_NAMESPACE,
            {},
            child_opts(self, chart_namespaces, renamed_from="istio-cni"),
            release_name="istio-cni",
        )
        self.base = helm.release(
            f"{name}-istio-base",
            ISTIO_BASE,
            version,
            ISTIO_NAMESPACE,
            {"defaultRevision": "default"},
            child_opts(self, chart_namespaces, moved_from_root=True, renamed_from="istio-base"),
            release_name="istio-base",
        )
        self.istiod = helm.release(
            f"{name}-istiod",
            ISTIOD,
            version,
            ISTIO_NAMESPACE,
            args.istiod_values,
            # Pods injected before the CNI plugin runs on their node would not start.
            child_opts(
                self, [*chart_namespaces, self.base, self.cni], moved_from_root=True, renamed_from="istiod"
            ),
            release_name="istiod",
        )
        self.gateway = helm.release(
            f"{name}-{traffic.INGRESS_RELEASE}",
            ISTIO_GATEWAY,
            version,
            traffic.INGRESS_NAMESPACE,
            args.gateway_values,
            child_opts(
                self,
                [*chart_namespaces, self.istiod],
                moved_from_root=True,
                renamed_from=traffic.INGRESS_RELEASE,
            ),
            release_name=traffic.INGRESS_RELEASE,
        )
        self.extras = WorkloadExtras(egress=(sidecar_egress,), depends_on=(self.istiod,))
        self.register_outputs({"namespace": args.namespace})
