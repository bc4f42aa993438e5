"""The ``Microservice`` component: one workload's Kubernetes objects, secure by default."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.kubernetes import specs
from components.kubernetes.custom_resource import custom_resource
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
        # The Deployment, HPA, PDB and NetworkPolicy go through the generic class: the engine and
        # the provider receive the very request the typed classes send (same type token, same
        # inputs), without the aliases those add for API versions this platform never deployed
        # (apps/v1beta1, extensions/v1beta1, ...), which the SDK resolves for every workload on
        # every run (docs/benchmarks.md). tests/test_microservice.py holds them to that.
        deployment = custom_resource(
            f"{name}-deployment",
            _object("apps/v1", "Deployment", meta, specs.deployment_spec(args)),
            child_opts(self, [*after, account]),
        )
        service = k8s.core.v1.Service(
            f"{name}-service", metadata=meta, spec=specs.service_spec(args), opts=child
        )
        hpa = specs.hpa_spec(args)
        if hpa is not None:
            custom_resource(
                f"{name}-hpa",
                _object("autoscaling/v2", "HorizontalPodAutoscaler", meta, hpa),
                child_opts(self, [*after, deployment]),
            )
        pdb = specs.pdb_spec(args)
        if pdb is not None:
            custom_resource(f"{name}-pdb", _object("policy/v1", "PodDisruptionBudget", meta, pdb), child)
        custom_resource(
            f"{name}-netpol",
            _object("networking.k8s.io/v1", "NetworkPolicy", meta, specs.network_policy_spec(args)),
            child,
        )

        self.service_name = service.metadata.name
        self.address = pulumi.Output.from_input(
            f"http://{args.name}.{args.namespace}.svc.cluster.local:{args.port}"
        )
        self.register_outputs({"service_name": self.service_name, "address": self.address})


def _object(api_version: str, kind: str, metadata: Mapping[str, Any], spec: Any) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": spec}
