"""The ``Microservice`` component: one workload's Kubernetes objects, secure by default."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.kubernetes import specs
from components.kubernetes.specs import WorkloadSpec
from components.options import child_opts, waits

TYPE = "vinylhound:kubernetes:Microservice"


class Microservice(pulumi.ComponentResource):
    """ServiceAccount, Deployment, Service, HPA, PDB and NetworkPolicy for one workload.

    Defaults that matter (all in ``specs``): non-root, read-only root filesystem with emptyDir
    mounts for the workload's writable paths, no privilege escalation, every capability dropped,
    RuntimeDefault seccomp, no service-account token, startup/readiness/liveness probes on the
    health path, requests and limits, zero-unavailable rolling updates, spread over nodes and zones,
    a PodDisruptionBudget whenever more than one pod runs, and a default-deny NetworkPolicy.

    Every Kubernetes object is named ``args.name`` (stable in-cluster DNS); Pulumi names are
    ``f"{name}-<role>"``.
    """

    service_name: pulumi.Output[str]
    address: pulumi.Output[str]

    def __init__(self, name: str, args: WorkloadSpec, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        # Without this a first `pulumi up` could create a Deployment before its namespace,
        # Secrets or the mesh exist.
        after = waits(opts)
        child = child_opts(self, after)
        meta = specs.metadata(args)

        account = k8s.core.v1.ServiceAccount(
            f"{name}-sa", metadata=meta, automount_service_account_token=False, opts=child
        )
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=meta,
            spec=specs.deployment_spec(args),
            opts=child_opts(self, [*after, account]),
        )
        service = k8s.core.v1.Service(
            f"{name}-service", metadata=meta, spec=specs.service_spec(args), opts=child
        )
        hpa = specs.hpa_spec(args)
        if hpa is not None:
            k8s.autoscaling.v2.HorizontalPodAutoscaler(
                f"{name}-hpa",
                metadata=meta,
                spec=hpa,
                opts=child_opts(self, [*after, deployment]),
            )
        pdb = specs.pdb_spec(args)
        if pdb is not None:
            k8s.policy.v1.PodDisruptionBudget(f"{name}-pdb", metadata=meta, spec=pdb, opts=child)
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol", metadata=meta, spec=specs.network_policy_spec(args), opts=child
        )

        self.service_name = service.metadata.name
        self.address = pulumi.Output.from_input(
            f"http://{args.name}.{args.namespace}.svc.cluster.local:{args.port}"
        )
        self.register_outputs({"service_name": self.service_name, "address": self.address})
