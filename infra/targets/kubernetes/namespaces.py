"""The namespaces the platform's charts run in, declared by the program instead of by Helm.

``istio-system``, ``istio-ingress`` and ``cnpg-system`` used to be created by their releases
(``createNamespace``), so nothing labelled them for Pod Security Admission and no NetworkPolicy
isolated them. Declared here, each carries its PSA labels (``infra.pod_security``), a default
deny and the allows of ``chart_network``. The releases wait for their namespace and no longer
create it. (``consul`` is the registry's: it declares its namespace and policies itself.)

Each namespace is ``retain_on_delete``: Helm never deleted a namespace it created, and a rollback
to a commit from before this change (which does not declare them) must not delete Istio or the
database operator with their namespace. On a stack whose namespaces Helm already created, the
first ``pulumi up`` must adopt them (docs/runbooks.md, "Adopting the chart namespaces").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components.kubernetes.specs import KubeObject
from components.labels import LabelContext
from components.options import child_opts
from infra import pod_security
from infra.targets.kubernetes import chart_network
from infra.targets.kubernetes.netpol import default_deny

TYPE = "vinylhound:platform:ChartNamespaces"
ISTIO_SYSTEM = "istio-system"
ISTIO_INGRESS = "istio-ingress"
CNPG_SYSTEM = "cnpg-system"


@dataclass(frozen=True)
class ChartNamespacesArgs:
    """What the chart namespaces' policies name: the workloads' and monitoring namespaces, the
    ingress gateway's and the CloudNativePG operator's pod labels, and ``gateway_egress``: rules
    the gateway needs besides the mesh (the tracing collector). Default: none."""

    context: LabelContext
    app_namespace: str
    monitoring_namespace: str
    gateway_selector: Mapping[str, str]
    cnpg_operator_labels: Mapping[str, str]
    gateway_egress: Sequence[KubeObject] = field(default_factory=tuple)


def policies(args: ChartNamespacesArgs) -> dict[str, dict[str, KubeObject]]:
    """Per namespace, its NetworkPolicies (name -> spec) under its default deny."""
    return {
        ISTIO_SYSTEM: chart_network.istio_system_policies(),
        ISTIO_INGRESS: chart_network.ingress_gateway_policies(
            args.gateway_selector, args.app_namespace, args.monitoring_namespace, list(args.gateway_egress)
        ),
        CNPG_SYSTEM: chart_network.cnpg_operator_policies(args.cnpg_operator_labels, args.app_namespace),
    }


class ChartNamespaces(pulumi.ComponentResource):
    """The three chart namespaces (``namespaces``, by name), labelled and isolated."""

    namespaces: dict[str, k8s.core.v1.Namespace]

    def __init__(
        self, name: str, args: ChartNamespacesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE, name, None, opts)
        common = args.context.common()
        self.namespaces = {}
        self._ready: dict[str, list[pulumi.Resource]] = {}
        by_namespace = policies(args)
        for ns in (ISTIO_SYSTEM, ISTIO_INGRESS, CNPG_SYSTEM):
            namespace = k8s.core.v1.Namespace(
                f"{name}-{ns}",
                metadata={"name": ns, "labels": {**common, **pod_security.labels(ns)}},
                opts=child_opts(self, retain_on_delete=True),
            )
            self.namespaces[ns] = namespace
            ready: list[pulumi.Resource] = [namespace]
            ready.append(default_deny(self, f"{name}-{ns}-default-deny", ns, args.context, [namespace]))
            for policy, spec in by_namespace[ns].items():
                policy_resource = k8s.networking.v1.NetworkPolicy(
                    f"{name}-{ns}-{policy}",
                    metadata={"name": policy, "namespace": ns, "labels": common},
                    spec=spec,
                    opts=child_opts(self, [namespace]),
                )
                ready.append(policy_resource)
            self._ready[ns] = ready
        self.register_outputs({"namespaces": sorted(self.namespaces)})

    def wait_for(self, *names: str) -> pulumi.ResourceOptions:
        """Options for a component whose charts install into the namespaces ``names``: it waits
        for them and their NetworkPolicies, so no chart pod starts denied what it needs (and hands
        that on to its releases, ``components.options.waits``)."""
        return pulumi.ResourceOptions(depends_on=[r for n in names for r in self._ready[n]])
