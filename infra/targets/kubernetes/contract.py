"""The contract gate on Kubernetes: before an endpoint takes live reads at a service, a Job in the
mesh checks that the service answers it the way the monolith does.

Per service whose endpoints take live reads in the stack (``endpoints.contract_gates``): a Job
runs ``infra/contract_check.py`` (shipped in the ConfigMap ``contract-check``) from the pinned
official Python image (``traffic.contractCheckImage``) against the monolith and the service, inside
the mesh (with a sidecar: mTLS is STRICT and the AuthorizationPolicies admit it by identity). It
compares status, media type and JSON shape of each endpoint's sample request and prints one line per
endpoint and difference; a mismatch fails it. The Job waits for both Deployments (Pulumi awaits
their rollout), so it checks the versions about to take traffic, and it is awaited itself: the
VirtualServices that move those reads depend on it (``read_route_gates``), so a mismatch fails
``pulumi up`` with the routes unmoved, and the Job's log says which endpoint and which keys differ.

Its pod template carries a hash of the script, the requests and both images: a new service image
replaces the Job, so the check runs again before the new version keeps the traffic.

Only the contract-check pods may make these calls: their own NetworkPolicy lets them reach DNS,
istiod, the monolith and the gated services, nothing else; the monolith's and the services'
NetworkPolicies admit them (``extras``), and so do their AuthorizationPolicies
(``traffic.allowed_principals``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from components import labels
from components.kubernetes.specs import KubeObject, ResourceSpec
from components.labels import LabelContext
from components.options import child_opts
from infra import catalog, contract_check, endpoints
from infra.catalog import Endpoint, Workload
from infra.config import PlatformConfig
from infra.targets.kubernetes import traffic
from infra.targets.kubernetes.extras import WorkloadExtras
from infra.targets.kubernetes.mesh import sidecar_egress

TYPE = "vinylhound:traffic:ContractGate"
NAME = traffic.CONTRACT_CHECK
SCRIPT = "contract_check.py"
#: The script's source, shipped as is: it imports nothing outside the standard library.
SCRIPT_TEXT = Path(contract_check.__file__).read_text()
#: How long one check may run; the requests themselves time out after 10 s each.
DEADLINE_SECONDS = 300
#: How long ``pulumi up`` waits for the Job: beyond its deadline, so the up never gives up first.
TIMEOUT = f"{DEADLINE_SECONDS // 60 + 5}m"
#: Pod annotation with the hash of what the check runs against (see the module docstring).
CHECK_HASH = "vinylhound.dev/contract-sha256"
#: The check's container (a Python script, no emptyDir: its logs are all it writes to disk).
RESOURCES = ResourceSpec("50m", "64Mi", "200m", "128Mi", "64Mi", "256Mi")
#: The uid the Job runs as (``nobody``; the python image would run as root).
RUN_AS = 65534


def _pods(name: str) -> KubeObject:
    return {"podSelector": {"matchLabels": {labels.NAME: name}}}


def base_url(workload: Workload, namespace: str) -> str:
    """The in-cluster base URL the check calls."""
    return f"http://{traffic.host(workload, namespace)}:{workload.port}"


def image_of(cfg: PlatformConfig, workload: Workload) -> str:
    """The image reference a workload runs in this stack."""
    return cfg.services[workload.name].image.reference(cfg.image_registry, workload.image)


def check_hash(cfg: PlatformConfig, service: Workload, samples: Sequence[Endpoint]) -> str:
    """Hash of the script, the requests and the images of both sides."""
    monolith = catalog.monolith()
    parts = [
        SCRIPT_TEXT,
        *map(endpoints.contract_request, samples),
        image_of(cfg, monolith),
        image_of(cfg, service),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def job_spec(
    cfg: PlatformConfig, service: Workload, samples: Sequence[Endpoint], pod_labels: Mapping[str, str]
) -> KubeObject:
    """The Job that checks ``samples`` at ``service`` against the monolith, in the mesh, non-root."""
    monolith = catalog.monolith()
    command = [
        "python",
        f"/contract/{SCRIPT}",
        "--quit-sidecar",
        "--monolith",
        base_url(monolith, cfg.namespace),
        "--service",
        base_url(service, cfg.namespace),
        *(endpoints.contract_request(e) for e in samples),
    ]
    return {
        # A retry only repeats a deterministic comparison; one more covers a pod lost to a node.
        "backoffLimit": 1,
        "activeDeadlineSeconds": DEADLINE_SECONDS,
        "template": {
            "metadata": {
                "labels": dict(pod_labels),
                "annotations": {
                    # In the mesh: mTLS is STRICT and the policies admit the Job by identity.
                    "sidecar.istio.io/inject": "true",
                    CHECK_HASH: check_hash(cfg, service, samples),
                },
            },
            "spec": {
                "restartPolicy": "Never",
                "serviceAccountName": NAME,
                "automountServiceAccountToken": False,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": RUN_AS,
                    "runAsGroup": RUN_AS,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": NAME,
                        "image": cfg.traffic.contract_check_image,
                        "command": command,
                        # The image's site-packages are read-only here: no bytecode to write.
                        "env": [{"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}],
                        "resources": RESOURCES.to_kube(),
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "volumeMounts": [{"name": "script", "mountPath": "/contract", "readOnly": True}],
                    }
                ],
                "volumes": [{"name": "script", "configMap": {"name": NAME}}],
            },
        },
    }


def network_policy_spec(cfg: PlatformConfig, gated: Sequence[Workload]) -> KubeObject:
    """The contract-check pods may reach DNS, istiod, the monolith and the gated services; nothing
    may reach them."""
    targets = [catalog.monolith(), *gated]
    egress: list[KubeObject] = [
        {
            "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        },
        *sidecar_egress(catalog.monolith()),
        *({"to": [_pods(t.name)], "ports": [{"protocol": "TCP", "port": t.port}]} for t in targets),
    ]
    return {
        "podSelector": {"matchLabels": {labels.NAME: NAME}},
        "policyTypes": ["Ingress", "Egress"],
        "egress": egress,
    }


def contract_extras(cfg: PlatformConfig) -> WorkloadExtras:
    """The monolith and each gated service admit the contract-check pods on their port."""

    def contribute(workload: Workload) -> list[KubeObject]:
        if not traffic.contract_checked(workload, cfg):
            return []
        return [{"from": [_pods(NAME)], "ports": [{"protocol": "TCP", "port": workload.port}]}]

    return WorkloadExtras(ingress=(contribute,))


@dataclass(frozen=True)
class ContractGateArgs:
    """What the gate registers and waits for (``contract_gate_args`` builds it).

    ``app_namespace``: the workloads' namespace, ``namespace`` the resource that creates it.
    ``servers``: per workload name, what its pods being ready is awaited on (its Deployment).
    ``monolith``: the name of the workload every service is compared with. ``jobs``: per gated
    service, the spec of its check Job (none: no endpoint takes live reads at a service).
    ``network_policy``: the check pods' NetworkPolicy spec; ``pod_labels``: their labels.
    """

    app_namespace: str
    context: LabelContext
    namespace: pulumi.Resource
    servers: Mapping[str, pulumi.Resource]
    monolith: str
    jobs: Mapping[str, KubeObject]
    network_policy: KubeObject
    pod_labels: Mapping[str, str]


def contract_gate_args(
    cfg: PlatformConfig,
    context: LabelContext,
    namespace: pulumi.Resource,
    servers: Mapping[str, pulumi.Resource],
) -> ContractGateArgs:
    """The gate's args from the stack's config: a Job per service whose endpoints take live reads."""
    gates = endpoints.contract_gates(cfg)
    gated = [catalog.workload(n) for n in sorted(gates)]
    version = cfg.traffic.contract_check_image.rpartition(":")[2]
    pod_labels = context.workload(NAME, version, "contract-check")
    return ContractGateArgs(
        app_namespace=cfg.namespace,
        context=context,
        namespace=namespace,
        servers=servers,
        monolith=catalog.monolith().name,
        jobs={s.name: job_spec(cfg, s, gates[s.name], pod_labels) for s in gated},
        network_policy=network_policy_spec(cfg, gated),
        pod_labels=pod_labels,
    )


class ContractGate(pulumi.ComponentResource):
    """The contract-check Jobs of a stack (nothing when no endpoint takes live reads at a service).

    ``read_route_gates``: per gated service, its Job; the routes that move its reads wait for it.
    """

    read_route_gates: dict[str, pulumi.Resource]

    def __init__(self, name: str, args: ContractGateArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        self.read_route_gates = {}
        if args.jobs:
            self._declare(name, args)
        self.register_outputs({"gated": sorted(self.read_route_gates)})

    def _declare(self, name: str, args: ContractGateArgs) -> None:
        meta = {"namespace": args.app_namespace, "labels": args.context.common()}
        account = k8s.core.v1.ServiceAccount(
            f"{name}-account",
            metadata={"name": NAME, **meta},
            automount_service_account_token=False,
            opts=child_opts(self, [args.namespace], renamed_from=f"{NAME}-account"),
        )
        script = k8s.core.v1.ConfigMap(
            f"{name}-script",
            metadata={"name": NAME, **meta},
            data={SCRIPT: SCRIPT_TEXT},
            opts=child_opts(self, [args.namespace], renamed_from=f"{NAME}-script"),
        )
        policy = k8s.networking.v1.NetworkPolicy(
            f"{name}-network",
            metadata={"name": NAME, **meta},
            spec=args.network_policy,
            opts=child_opts(self, [args.namespace], renamed_from=f"{NAME}-network"),
        )
        for service, spec in args.jobs.items():
            after = [account, script, policy, args.servers[args.monolith], args.servers[service]]
            self.read_route_gates[service] = k8s.batch.v1.Job(
                f"{name}-{service}",
                metadata={"name": f"{service}-{NAME}", **meta, "labels": dict(args.pod_labels)},
                spec=spec,
                opts=child_opts(
                    self,
                    after,
                    renamed_from=f"{service}-{NAME}" if catalog.predates_components(service) else None,
                    custom_timeouts=pulumi.CustomTimeouts(create=TIMEOUT, update=TIMEOUT),
                ),
            )
