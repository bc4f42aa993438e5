"""Consul as the service registry, from HashiCorp's official chart.

Catalog sync registers every Kubernetes Service of the workloads' namespace in Consul (one way:
Kubernetes -> Consul), with a health check that follows the pods' readiness, so no application
code registers anything. Consul's own service mesh (Connect) is off: Istio is the mesh. The UI
is a ClusterIP Service, reachable with ``kubectl port-forward`` only.

Consul secures itself rather than joining the mesh (its chart's Jobs would never finish with a
sidecar): ACLs with a default-deny policy, TLS on RPC and the HTTP API (HTTPS only, port 8501),
and gossip encryption. The program generates the two secrets the chart reads (the ACL bootstrap
token and the gossip key) and owns the ``consul`` namespace, so they exist before the servers
start and the namespace has the same default deny and Pod Security labels as every other. The
chart's ``server-acl-init`` Job creates the tokens of its own components (catalog sync logs in
through the Kubernetes auth method); Prometheus' token, which the chart does not make, is created
by a Job of the program's (``metrics_token_job``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import labels
from components.kubernetes.specs import KubeObject, ResourceSpec, env_entry
from components.labels import LabelContext
from components.options import child_opts
from components.values import EnvVar, SecretKeyRef
from infra import pod_security
from infra.catalog import Workload
from infra.targets.kubernetes import helm, network
from infra.targets.kubernetes.extras import WorkloadExtras
from infra.targets.kubernetes.helm import Chart
from infra.targets.kubernetes.netpol import default_deny
from infra.targets.kubernetes.network import NAMESPACE_NAME_LABEL

TYPE = "vinylhound:registry:Registry"
CONSUL_REPOSITORY = "https://helm.releases.hashicorp.com"
CONSUL_CHART = Chart("consul", CONSUL_REPOSITORY)
CONSUL_NAMESPACE = "consul"
#: ``global.name``: the chart prefixes its objects with it (``consul-server``, ``consul-ui``).
CONSUL_NAME = "consul"
#: The HTTP API over TLS; ``global.tls.httpsOnly`` (the chart's default) closes plain 8500.
CONSUL_HTTPS_PORT = 8501
CONSUL_HTTPS_PORT_NAME = "https"
#: Server RPC, Serf LAN and Serf WAN gossip (TCP and UDP), as the chart's server ports name them.
SERVER_RPC_PORT = 8300
SERF_LAN_PORT = 8301
SERF_WAN_PORT = 8302
#: Labels the chart puts on every pod it runs (servers, catalog sync, its init Jobs).
CHART_POD_LABELS = {"app": CONSUL_NAME}
#: Labels the chart puts on the server pods.
SERVER_POD_LABELS = {"app": CONSUL_NAME, "component": "server"}
#: The servers' Service; the name is in their certificate (the chart's ``tls-init`` SANs).
SERVER_HOST = f"{CONSUL_NAME}-server.{CONSUL_NAMESPACE}.svc"

#: Secrets the program writes; the chart reads the first two (``global.acls.bootstrapToken``,
#: ``global.gossipEncryption``), Prometheus and the metrics-token Job the third.
BOOTSTRAP_TOKEN_SECRET = "consul-acl-bootstrap-token"
GOSSIP_KEY_SECRET = "consul-gossip-encryption-key"
METRICS_TOKEN_SECRET = "consul-metrics-acl-token"
TOKEN_KEY = "token"
GOSSIP_KEY = "key"
#: The CA certificate the chart's ``tls-init`` hook generates and stores (``<name>-ca-cert``,
#: key ``tls.crt``): what every HTTPS client of the servers verifies them with.
CA_CERT_SECRET = f"{CONSUL_NAME}-ca-cert"
CA_CERT_KEY = "tls.crt"

#: The ACL policy of Prometheus' token: ``/v1/agent/metrics`` requires ``agent:read``, no more.
METRICS_POLICY = "prometheus-metrics"
METRICS_POLICY_RULES = 'agent_prefix "" { policy = "read" }'
METRICS_JOB = "consul-metrics-acl"
#: The metrics-token Job's pods (its NetworkPolicy selects them).
METRICS_JOB_LABELS = {labels.NAME: METRICS_JOB}
#: Non-root uid of the Job (the consul binary needs no user of the image's own).
JOB_UID = 10001
#: The Job retries until the servers have elected a leader and ``server-acl-init`` has run.
JOB_DEADLINE_SECONDS = 900
#: How long ``pulumi up`` waits for the Job: a little beyond its own deadline.
JOB_TIMEOUT = f"{JOB_DEADLINE_SECONDS // 60 + 5}m"


def server_address() -> str:
    """The Consul servers' HTTPS API (``host:port``), the value of ``SERVICE_REGISTRY``."""
    return f"{CONSUL_NAME}-server.{CONSUL_NAMESPACE}.svc.cluster.local:{CONSUL_HTTPS_PORT}"


def consul_values(args: RegistryArgs) -> dict[str, Any]:
    """Values of the ``consul`` chart."""
    replicas = args.replicas
    return {
        "global": {
            "name": CONSUL_NAME,
            # Servers expose Prometheus metrics (the observability feature scrapes them).
            "metrics": {"enabled": True, "enableAgentMetrics": True},
            # Default-deny ACLs; server-acl-init makes each chart component's token with the
            # bootstrap token the program generated (the servers take it as initial_management).
            "acls": {
                "manageSystemACLs": True,
                "bootstrapToken": {"secretName": BOOTSTRAP_TOKEN_SECRET, "secretKey": TOKEN_KEY},
            },
            # RPC verified both ways, the HTTP API on HTTPS only; the chart's tls-init hook
            # makes the CA (consul-ca-cert) and the servers' certificates.
            "tls": {"enabled": True, "verify": True, "httpsOnly": True},
            "gossipEncryption": {"secretName": GOSSIP_KEY_SECRET, "secretKey": GOSSIP_KEY},
        },
        "server": {
            "replicas": replicas,
            "bootstrapExpect": replicas,
            # No Connect CA on the servers: Istio is the mesh.
            "connect": False,
            "resources": {
                "requests": {"cpu": "100m", "memory": "200Mi"},
                "limits": {"cpu": "500m", "memory": "512Mi"},
            },
        },
        "client": {"enabled": False},
        # Istio is the mesh; and Consul must not install the Gateway API CRDs either.
        "connectInject": {"enabled": False, "apiGateway": {"manageExternalCRDs": False}},
        "ui": {"enabled": True, "service": {"enabled": True, "type": "ClusterIP"}},
        "syncCatalog": {
            "enabled": True,
            "default": True,
            "toConsul": True,
            "toK8S": False,
            "k8sAllowNamespaces": [args.namespace],
            # Register ``user-service``, not ``user-service-vinylhound``.
            "addK8SNamespaceSuffix": False,
        },
    }


def registry_env(workload: Workload) -> list[EnvVar]:
    """``SERVICE_REGISTRY`` for every workload that runs application code (not the static front end)."""
    if workload.role == "frontend":
        return []
    return [EnvVar("SERVICE_REGISTRY", server_address())]


def _servers(namespace_selector: bool = False) -> dict[str, Any]:
    peer: dict[str, Any] = {"podSelector": {"matchLabels": dict(SERVER_POD_LABELS)}}
    if namespace_selector:
        peer["namespaceSelector"] = {"matchLabels": {NAMESPACE_NAME_LABEL: CONSUL_NAMESPACE}}
    return peer


def _https() -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": CONSUL_HTTPS_PORT}]


def registry_egress(workload: Workload) -> list[dict[str, Any]]:
    """NetworkPolicy egress to the Consul servers' HTTPS API for the workloads that get the address."""
    if workload.role == "frontend":
        return []
    return [{"to": [_servers(namespace_selector=True)], "ports": _https()}]


def _gossip_and_rpc() -> list[dict[str, Any]]:
    ports = [{"protocol": "TCP", "port": SERVER_RPC_PORT}]
    for port in (SERF_LAN_PORT, SERF_WAN_PORT):
        ports += [{"protocol": "TCP", "port": port}, {"protocol": "UDP", "port": port}]
    return ports


def server_policy(workloads_namespace: str, monitoring_namespace: str) -> KubeObject:
    """The servers: RPC and gossip among themselves; the HTTPS API from the chart's own pods
    (catalog sync, ``server-acl-init``), the metrics-token Job, the workloads' namespace (where
    ``SERVICE_REGISTRY`` points; each workload's own egress narrows it) and Prometheus."""
    return {
        "podSelector": {"matchLabels": dict(SERVER_POD_LABELS)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [
            {"from": [_servers()], "ports": _gossip_and_rpc()},
            {
                "from": [
                    {"podSelector": {"matchLabels": dict(CHART_POD_LABELS)}},
                    {"podSelector": {"matchLabels": dict(METRICS_JOB_LABELS)}},
                    {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: workloads_namespace}}},
                    {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: monitoring_namespace}}},
                ],
                "ports": _https(),
            },
        ],
        "egress": [{"to": [_servers()], "ports": _gossip_and_rpc()}],
    }


def chart_pods_policy() -> KubeObject:
    """Every pod of the chart (servers, catalog sync, the tls-init and server-acl-init Jobs):
    out to DNS, the servers' HTTPS API and the Kubernetes API on any address (the Jobs write
    Secrets, catalog sync watches Services, the servers check login JWTs with TokenReview).
    NetworkPolicy cannot name the API server, whose addresses differ per cluster."""
    return {
        "podSelector": {"matchLabels": dict(CHART_POD_LABELS)},
        "policyTypes": ["Egress"],
        "egress": [
            network.dns_rule(),
            {"to": [_servers()], "ports": _https()},
            {
                "to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
                "ports": [{"protocol": "TCP", "port": p} for p in network.API_AND_OBJECT_STORE_PORTS],
            },
        ],
    }


def metrics_job_policy() -> KubeObject:
    """The metrics-token Job reaches DNS and the servers' HTTPS API; nothing connects to it."""
    return {
        "podSelector": {"matchLabels": dict(METRICS_JOB_LABELS)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [],
        "egress": [network.dns_rule(), {"to": [_servers()], "ports": _https()}],
    }


#: Creates the metrics policy and the token whose SecretID the program generated; both steps
#: are idempotent, so the Job can run again on every change. Until the servers have a leader
#: and ACLs are bootstrapped every call fails: retry until the Job's deadline.
METRICS_TOKEN_SCRIPT = f"""set -eu
until consul acl policy read -name {METRICS_POLICY} >/dev/null 2>&1 \\
  || consul acl policy create -name {METRICS_POLICY} \\
       -description 'Prometheus scrapes /v1/agent/metrics' -rules '{METRICS_POLICY_RULES}'; do
  sleep 5
done
until CONSUL_HTTP_TOKEN="$METRICS_TOKEN" consul acl token read -self >/dev/null 2>&1 \\
  || consul acl token create -secret "$METRICS_TOKEN" -policy-name {METRICS_POLICY} \\
       -description 'Prometheus (vinylhound)' >/dev/null; do
  sleep 5
done
"""


def metrics_token_job(image: str, pod_labels: dict[str, str]) -> KubeObject:
    """The Job creating Prometheus' Consul token (``agent:read`` only) with the bootstrap token,
    over HTTPS verified with the chart's CA. Non-root, read-only root filesystem, no API token."""
    env = [
        EnvVar("CONSUL_HTTP_ADDR", f"https://{SERVER_HOST}:{CONSUL_HTTPS_PORT}"),
        EnvVar("CONSUL_CACERT", f"/consul/tls/ca/{CA_CERT_KEY}"),
        EnvVar("CONSUL_HTTP_TOKEN", secret=SecretKeyRef(BOOTSTRAP_TOKEN_SECRET, TOKEN_KEY)),
        EnvVar("METRICS_TOKEN", secret=SecretKeyRef(METRICS_TOKEN_SECRET, TOKEN_KEY)),
    ]
    return {
        "backoffLimit": 4,
        "activeDeadlineSeconds": JOB_DEADLINE_SECONDS,
        "template": {
            # Never a sidecar, even if the namespace were injected: it would keep the pod running.
            "metadata": {
                "labels": {**pod_labels, **METRICS_JOB_LABELS},
                "annotations": {"sidecar.istio.io/inject": "false"},
            },
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": JOB_UID,
                    "runAsGroup": JOB_UID,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": "create-token",
                        "image": image,
                        "command": ["sh", "-c", METRICS_TOKEN_SCRIPT],
                        "env": [env_entry(e) for e in env],
                        "resources": ResourceSpec("50m", "64Mi", "200m", "128Mi").to_kube(),
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "volumeMounts": [{"name": "ca", "mountPath": "/consul/tls/ca", "readOnly": True}],
                    }
                ],
                "volumes": [
                    {
                        "name": "ca",
                        "secret": {
                            "secretName": CA_CERT_SECRET,
                            "items": [{"key": CA_CERT_KEY, "path": CA_CERT_KEY}],
                        },
                    }
                ],
            },
        },
    }


def _tag(image: str) -> str:
    return image.split("@")[0].rpartition(":")[2]


def secret_id(hex_bytes: str) -> str:
    """16 random bytes (hex) in the UUID form Consul requires of a token's SecretID."""
    h = hex_bytes
    return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


@dataclass(frozen=True)
class RegistryArgs:
    """``namespace``: the workloads' namespace, whose Services are synced into Consul;
    ``chart_version``: the pinned consul chart; ``replicas``: Consul servers (odd, a quorum);
    ``cli_image``: the Consul image whose CLI creates Prometheus' token; ``monitoring_namespace``:
    where Prometheus scrapes from; ``context``: the labels of everything declared here."""

    namespace: str
    chart_version: str
    replicas: int
    cli_image: str
    context: LabelContext
    monitoring_namespace: str = "monitoring"


class Registry(pulumi.ComponentResource):
    """Consul from its chart; ``extras`` gives every workload its address and a way to reach it.
    ``release`` is what waits on the servers; ``metrics_token`` the Job after which Prometheus'
    token exists."""

    release: k8s.helm.v3.Release
    metrics_token: k8s.batch.v1.Job
    extras: WorkloadExtras

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        common = args.context.common()
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": CONSUL_NAMESPACE,
                "labels": {**common, **pod_security.labels(CONSUL_NAMESPACE)},
            },
            # Retained like the other chart namespaces (namespaces.py): a rollback to a commit that
            # did not declare it must not delete Consul with its namespace.
            opts=child_opts(self, retain_on_delete=True),
        )
        self._isolate(name, args, namespace)
        secrets = self._secrets(name, common, namespace)
        self.release = helm.release(
            f"{name}-consul",
            CONSUL_CHART,
            args.chart_version,
            CONSUL_NAMESPACE,
            consul_values(args),
            # The servers and server-acl-init read both Secrets when they start.
            child_opts(self, [namespace, *secrets[:2]], moved_from_root=True, renamed_from="consul"),
            release_name="consul",
            # The namespace is the program's (above): the chart's would have no default deny.
            create_namespace=False,
        )
        job_labels = args.context.workload(METRICS_JOB, _tag(args.cli_image), "registry")
        self.metrics_token = k8s.batch.v1.Job(
            f"{name}-metrics-token",
            metadata={"name": METRICS_JOB, "namespace": CONSUL_NAMESPACE, "labels": job_labels},
            spec=metrics_token_job(args.cli_image, job_labels),
            opts=child_opts(
                self,
                [self.release, secrets[2]],
                # pulumi-kubernetes waits for the Job to complete; it retries within its deadline.
                custom_timeouts=pulumi.CustomTimeouts(create=JOB_TIMEOUT, update=JOB_TIMEOUT),
            ),
        )
        self.extras = WorkloadExtras(env=(registry_env,), egress=(registry_egress,))
        self.register_outputs({"address": server_address()})

    def _secrets(
        self, name: str, common: dict[str, str], namespace: pulumi.Resource
    ) -> tuple[k8s.core.v1.Secret, k8s.core.v1.Secret, k8s.core.v1.Secret]:
        """The bootstrap token, the gossip key and Prometheus' token: random bytes the provider
        keeps secret in state (``RandomBytes``' outputs are sensitive and its id is not the value)."""
        made: list[k8s.core.v1.Secret] = []
        for role, secret_name, key, length in (
            ("bootstrap-token", BOOTSTRAP_TOKEN_SECRET, TOKEN_KEY, 16),
            ("gossip-key", GOSSIP_KEY_SECRET, GOSSIP_KEY, 32),
            ("metrics-token", METRICS_TOKEN_SECRET, TOKEN_KEY, 16),
        ):
            material = random.RandomBytes(f"{name}-{role}", length=length, opts=child_opts(self))
            # Consul's gossip key is 32 bytes, base64; a token's SecretID a UUID.
            value = material.base64 if role == "gossip-key" else material.hex.apply(secret_id)
            made.append(
                k8s.core.v1.Secret(
                    f"{name}-{role}-secret",
                    metadata={"name": secret_name, "namespace": CONSUL_NAMESPACE, "labels": common},
                    type="Opaque",
                    string_data={key: pulumi.Output.secret(value)},
                    opts=child_opts(self, [namespace]),
                )
            )
        return made[0], made[1], made[2]

    def _isolate(self, name: str, args: RegistryArgs, namespace: pulumi.Resource) -> None:
        """Default deny in the namespace, then the servers', the chart's and the Job's paths."""
        default_deny(self, f"{name}-default-deny", CONSUL_NAMESPACE, args.context, [namespace])
        for role, spec in (
            ("consul-server", server_policy(args.namespace, args.monitoring_namespace)),
            ("consul-chart-egress", chart_pods_policy()),
            (METRICS_JOB, metrics_job_policy()),
        ):
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{role}-netpol",
                metadata={"name": role, "namespace": CONSUL_NAMESPACE, "labels": args.context.common()},
                spec=spec,
                opts=child_opts(self, [namespace]),
            )
