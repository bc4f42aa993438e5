"""The event bus on Kubernetes: NATS with JetStream, its streams and consumers as code, the wiring.

What is registered (all derived from ``infra.events``, which derives from the catalog):

- the ``nats`` namespace, in the mesh: every connection to and between the servers (clients'
  passwords, routes, the controller) is Istio mutual TLS, STRICT but for the exporter's metrics
  port, which Prometheus (outside the mesh) scrapes. The chart declares its ports ``appProtocol:
  tcp``, so the server-first NATS protocol is never sniffed. Chosen over cert-manager: no client
  needs TLS settings or a CA of its own, and istiod rotates the certificates;
- default deny in the namespace: the servers reach DNS, istiod and each other's route port; the
  controller DNS, istiod, the servers and the Kubernetes API;
- one generated password per NATS user; the server's copies in one Secret in the NATS namespace,
  each client's in a Secret of its own in the application namespace;
- the official NATS chart (JetStream on file storage, cluster of ``cluster_size``, auth on: the
  users and permissions are merged into its config with ``<< $VAR >>`` placeholders that the
  server resolves from its environment, which reads the Secret, so no password is in the values);
- the official NACK chart (the JetStream controller and its CRDs), an ``Account`` giving it the
  controller user's credentials, and one ``Stream``/``Consumer`` per definition, each depending on
  the NACK release;
- a ``PodMonitor`` for the chart's exporter sidecar and a ``PrometheusRule`` with the alerts;
- a NetworkPolicy in front of NATS, and to every publishing or consuming workload: ``NATS_URL``,
  ``NATS_USER`` and ``NATS_PASSWORD`` (secret references) plus an egress rule to NATS;
- on the pod template of every consuming workload, the ``vinylhound.dev/consumes`` annotation
  (its subjects, sorted, comma-separated): what the policy pack checks the durable consumers against.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import labels
from components.kubernetes.custom_resource import custom_resource
from components.kubernetes.specs import KubeObject
from components.labels import LabelContext
from components.options import child_opts
from components.values import EnvVar
from infra import events, pod_security
from infra.catalog import Workload
from infra.config import PlatformConfig
from infra.targets.kubernetes import helm, network
from infra.targets.kubernetes.extras import WorkloadExtras
from infra.targets.kubernetes.helm import Chart
from infra.targets.kubernetes.mesh import istiod_egress
from infra.targets.kubernetes.netpol import default_deny
from infra.targets.kubernetes.network import NAMESPACE_NAME_LABEL

TYPE = "vinylhound:events:EventBus"
NATS_REPOSITORY = "https://nats-io.github.io/k8s/helm/charts/"
NATS_RELEASE = "nats"
NACK_RELEASE = "nack"
NATS_CHART = Chart("nats", NATS_REPOSITORY)
NACK_CHART = Chart("nack", NATS_REPOSITORY)
#: The Secret (NATS namespace) holding every user's password, one key per user.
SERVER_SECRET = "nats-users"
#: The ``Account`` the controller manages streams and consumers with.
CONTROLLER_ACCOUNT = "vinylhound"
CONTROLLER_SECRET = "nats-jetstream-controller"
#: Labels the NATS chart puts on its server pods (selectorLabels of the 1.x chart).
NATS_POD_LABELS = {labels.NAME: "nats", "app.kubernetes.io/instance": NATS_RELEASE}
#: Labels the NACK chart puts on the controller's pods (jsc.selectorLabels).
NACK_POD_LABELS = {labels.NAME: "nack", "app.kubernetes.io/instance": NACK_RELEASE}
SECURITY_API = "security.istio.io/v1"
JETSTREAM_API = "jetstream.nats.io/v1beta2"
MONITORING_API = "monitoring.coreos.com/v1"


def client_secret(workload: str) -> str:
    """The application-namespace Secret with a workload's NATS ``user`` and ``password``."""
    return f"nats-{workload}"


def nats_url(namespace: str) -> str:
    """The in-cluster client URL of the NATS service."""
    return f"nats://{NATS_RELEASE}.{namespace}.svc.cluster.local:{events.CLIENT_PORT}"


def nats_values(bus: events.EventBus, cluster_size: int, storage_size: str) -> KubeObject:
    """Values for the NATS chart (1.x schema). Passwords appear only as ``<< $VAR >>``."""
    return {
        "config": {
            "cluster": {"enabled": cluster_size > 1, "replicas": cluster_size},
            "jetstream": {
                "enabled": True,
                "fileStore": {"enabled": True, "pvc": {"enabled": True, "size": storage_size}},
            },
            "monitor": {"enabled": True, "port": events.MONITOR_PORT},
            "merge": {"authorization": events.authorization(bus, events.chart_password)},
        },
        "container": {
            "env": {
                u.password_env: {"valueFrom": {"secretKeyRef": {"name": SERVER_SECRET, "key": u.name}}}
                for u in bus.users
            }
        },
        # NATS speaks first (INFO), which Istio's protocol sniffing in the clients' sidecars cannot
        # detect: declare the client port as plain TCP.
        "service": {"ports": {"nats": {"appProtocol": "tcp"}}},
        # The sidecar that turns the monitoring endpoint (8222, JSON) into Prometheus metrics.
        "promExporter": {"enabled": True, "port": events.METRICS_PORT},
        # nats-box would need credentials of its own; operators use `kubectl exec` instead.
        "natsBox": {"enabled": False},
        "podDisruptionBudget": {"enabled": cluster_size > 1},
    }


def nack_values(namespace: str) -> KubeObject:
    """Values for the NACK chart: watch only the NATS namespace, where the resources live."""
    return {"jetstream": {"nats": {"url": nats_url(namespace)}}, "namespaced": True}


def nats_ingress(bus: events.EventBus, app_namespace: str, monitoring_namespace: str) -> KubeObject:
    """The NetworkPolicy spec in front of NATS: clients only from the connected workloads, the
    controller and the servers themselves from the NATS namespace, metrics only from monitoring."""
    clients = sorted(bus.connected_workloads())
    rules: list[KubeObject] = [
        {
            "from": [{"podSelector": {}}],
            "ports": [
                {"protocol": "TCP", "port": events.CLIENT_PORT},
                {"protocol": "TCP", "port": events.CLUSTER_PORT},
            ],
        },
        {
            "from": [
                {
                    "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: monitoring_namespace}},
                }
            ],
            "ports": [{"protocol": "TCP", "port": events.METRICS_PORT}],
        },
    ]
    if clients:
        rules.insert(
            1,
            {
                "from": [
                    {
                        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: app_namespace}},
                        "podSelector": {
                            "matchExpressions": [{"key": labels.NAME, "operator": "In", "values": clients}]
                        },
                    }
                ],
                "ports": [{"protocol": "TCP", "port": events.CLIENT_PORT}],
            },
        )
    return {
        "podSelector": {"matchLabels": dict(NATS_POD_LABELS)},
        "policyTypes": ["Ingress"],
        "ingress": rules,
    }


def nats_egress() -> KubeObject:
    """The servers' egress under the namespace's default deny: DNS, istiod, the other servers'
    route port."""
    return {
        "podSelector": {"matchLabels": dict(NATS_POD_LABELS)},
        "policyTypes": ["Egress"],
        "egress": [
            network.dns_rule(),
            istiod_egress(),
            {
                "to": [{"podSelector": {"matchLabels": dict(NATS_POD_LABELS)}}],
                "ports": [{"protocol": "TCP", "port": events.CLUSTER_PORT}],
            },
        ],
    }


def controller_policy() -> KubeObject:
    """NACK: nothing connects to it; it reaches DNS, istiod, the servers' client port and the
    Kubernetes API (on any address: NetworkPolicy cannot name the API server)."""
    return {
        "podSelector": {"matchLabels": dict(NACK_POD_LABELS)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [],
        "egress": [
            network.dns_rule(),
            istiod_egress(),
            {
                "to": [{"podSelector": {"matchLabels": dict(NATS_POD_LABELS)}}],
                "ports": [{"protocol": "TCP", "port": events.CLIENT_PORT}],
            },
            {
                "to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
                "ports": [{"protocol": "TCP", "port": p} for p in network.API_AND_OBJECT_STORE_PORTS],
            },
        ],
    }


def peer_authentications(namespace: str) -> dict[str, KubeObject]:
    """STRICT mutual TLS in the NATS namespace; on the servers, the exporter's metrics port alone
    also takes plain text (``portLevelMtls`` needs a workload selector)."""
    return {
        "default": {"mtls": {"mode": "STRICT"}},
        "nats": {
            "selector": {"matchLabels": dict(NATS_POD_LABELS)},
            "mtls": {"mode": "STRICT"},
            "portLevelMtls": {str(events.METRICS_PORT): {"mode": "PERMISSIVE"}},
        },
    }


def client_env(workload: Workload, bus: events.EventBus, nats_namespace: str) -> list[EnvVar]:
    """``NATS_URL`` and the credentials for a publishing or consuming workload; nothing otherwise."""
    return events.client_env(workload, bus, nats_url(nats_namespace), client_secret(workload.name))


def client_egress(workload: Workload, bus: events.EventBus, nats_namespace: str) -> list[KubeObject]:
    """The egress rule to the NATS client port, for connected workloads only."""
    if workload.name not in bus.connected_workloads():
        return []
    return [
        {
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: nats_namespace}},
                    "podSelector": {"matchLabels": dict(NATS_POD_LABELS)},
                }
            ],
            "ports": [{"protocol": "TCP", "port": events.CLIENT_PORT}],
        }
    ]


def _password(name: str, opts: pulumi.ResourceOptions) -> random.RandomPassword:
    # Letters only: the server substitutes the value into its config unquoted, where a value that
    # starts like a number or a size could be parsed as one. 32 letters are ~182 bits.
    return random.RandomPassword(name, length=32, special=False, numeric=False, opts=opts)


@dataclass(frozen=True)
class EventBusArgs:
    """What the bus registers and waits for (``event_bus_args`` builds it).

    ``bus``: the streams, consumers and users, ``None`` when the stack runs no event bus.
    ``nats_namespace``: where NATS runs; ``app_namespace``: the workloads' (the client Secrets live
    there), ``namespace`` the resource that creates it. ``cluster_size``: NATS servers;
    ``storage_size``: each server's JetStream volume. ``monitoring``: what the PodMonitor and
    PrometheusRule wait for (the release that installs the Prometheus Operator CRDs);
    ``monitoring_namespace`` is where Prometheus scrapes from; ``monitor_labels`` are added to
    both so the operator's selectors pick them up. ``alert_rules``: the bus's Prometheus rules.
    """

    bus: events.EventBus | None
    nats_namespace: str
    app_namespace: str
    nats_version: str
    nack_version: str
    cluster_size: int
    storage_size: str
    alert_rules: Sequence[KubeObject]
    context: LabelContext
    namespace: pulumi.Resource
    monitoring: Sequence[pulumi.Resource] = ()
    monitoring_namespace: str = "monitoring"
    monitor_labels: Mapping[str, str] = field(default_factory=dict)
    #: The release that installs Istio's CRDs (the PeerAuthentications wait for it).
    mesh_crds: Sequence[pulumi.Resource] = ()


def event_bus_args(
    cfg: PlatformConfig,
    context: LabelContext,
    namespace: pulumi.Resource,
    monitoring: Sequence[pulumi.Resource] = (),
    monitoring_namespace: str = "monitoring",
    mesh_crds: Sequence[pulumi.Resource] = (),
) -> EventBusArgs:
    """The bus's args from the stack's config; the resources are what it waits for."""
    settings = cfg.events
    bus = (
        events.event_bus(settings, cfg.event_cluster_size(), [w.name for w, _ in cfg.enabled()])
        if settings.enabled
        else None
    )
    return EventBusArgs(
        bus=bus,
        nats_namespace=settings.namespace,
        app_namespace=cfg.namespace,
        nats_version=cfg.charts.nats,
        nack_version=cfg.charts.nack,
        cluster_size=cfg.event_cluster_size(),
        storage_size=settings.storage_size,
        alert_rules=events.alert_rules(bus, settings, cfg.observability.runbook_url)
        if bus is not None
        else [],
        context=context,
        namespace=namespace,
        monitoring=monitoring,
        monitoring_namespace=monitoring_namespace,
        mesh_crds=mesh_crds,
    )


class EventBus(pulumi.ComponentResource):
    """The stack's event bus (nothing when ``events.enabled`` is off); ``extras`` gives every
    connected workload its URL, credentials, egress and ``consumes`` annotation."""

    bus: events.EventBus
    nats_release: k8s.helm.v3.Release | None
    nack_release: k8s.helm.v3.Release | None
    streams: dict[str, k8s.apiextensions.CustomResource]
    consumers: dict[str, k8s.apiextensions.CustomResource]
    extras: WorkloadExtras

    def __init__(self, name: str, args: EventBusArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        self._prefix = name
        self.nats_release = self.nack_release = None
        self.streams, self.consumers = {}, {}
        self.extras = WorkloadExtras()
        if args.bus is None:
            self.bus = events.EventBus(streams=(), consumers=(), users=())
        else:
            self.bus = args.bus
            self._declare(args)
        self._exports = self._describe(args)
        self.register_outputs({"exports": self._exports})

    def exports(self) -> dict[str, Any]:
        """The stack export describing the bus."""
        return self._exports

    def _describe(self, args: EventBusArgs) -> dict[str, Any]:
        if args.bus is None:
            return {"enabled": False}
        return {
            "enabled": True,
            "natsUrl": nats_url(args.nats_namespace),
            "streams": {s.name: list(s.subjects) for s in self.bus.streams},
            "consumers": [f"{c.stream}/{c.durable}" for c in self.bus.consumers],
        }

    def _child(
        self, role: str, *after: pulumi.Resource, from_root: bool = True
    ) -> tuple[str, pulumi.ResourceOptions]:
        """A child's name (``<component>-<role>``) and options; ``role`` was its name before, at
        the stack root too unless not ``from_root`` (declared since the areas)."""
        return f"{self._prefix}-{role}", child_opts(self, after, moved_from_root=from_root, renamed_from=role)

    def _declare(self, args: EventBusArgs) -> None:
        bus, ns = self.bus, args.nats_namespace
        common = args.context.common()
        name, opts = self._child("nats-namespace")
        namespace = k8s.core.v1.Namespace(
            name,
            metadata={
                "name": ns,
                "labels": {**common, "istio-injection": "enabled", **pod_security.labels(ns)},
            },
            opts=opts,
        )
        self._isolate(args, namespace)
        passwords = {u.name: _password(*self._child(f"nats-{u.name}-password")) for u in bus.users}
        name, opts = self._child("nats-users-secret", namespace)
        server_secret = k8s.core.v1.Secret(
            name,
            metadata={"name": SERVER_SECRET, "namespace": ns, "labels": common},
            type="Opaque",
            string_data={user: pulumi.Output.secret(p.result) for user, p in passwords.items()},
            opts=opts,
        )
        name, opts = self._child("nats-jetstream-controller-secret", namespace)
        controller_secret = k8s.core.v1.Secret(
            name,
            metadata={"name": CONTROLLER_SECRET, "namespace": ns, "labels": common},
            type="Opaque",
            string_data={
                "user": events.CONTROLLER_USER,
                "password": pulumi.Output.secret(passwords[events.CONTROLLER_USER].result),
            },
            opts=opts,
        )

        def credentials(user: events.NatsUser) -> k8s.core.v1.Secret:
            name, opts = self._child(f"nats-{user.name}-credentials", args.namespace)
            return k8s.core.v1.Secret(
                name,
                metadata={
                    "name": client_secret(user.name),
                    "namespace": args.app_namespace,
                    "labels": common,
                },
                type="Opaque",
                string_data={
                    "user": user.name,
                    "password": pulumi.Output.secret(passwords[user.name].result),
                },
                opts=opts,
            )

        client_secrets = tuple(credentials(user) for user in bus.workload_users())

        name, opts = self._child(NATS_RELEASE, namespace, server_secret)
        nats_release = helm.release(
            name,
            NATS_CHART,
            args.nats_version,
            ns,
            nats_values(bus, args.cluster_size, args.storage_size),
            opts,
            release_name=NATS_RELEASE,
        )
        name, opts = self._child(NACK_RELEASE, namespace, nats_release)
        nack_release = helm.release(
            name, NACK_CHART, args.nack_version, ns, nack_values(ns), opts, release_name=NACK_RELEASE
        )
        self.nats_release, self.nack_release = nats_release, nack_release
        name, opts = self._child("nats-netpol", namespace)
        k8s.networking.v1.NetworkPolicy(
            name,
            metadata={"name": "nats", "namespace": ns, "labels": common},
            spec=nats_ingress(bus, args.app_namespace, args.monitoring_namespace),
            opts=opts,
        )

        def jetstream(
            role: str, kind: str, name: str, spec: KubeObject, after: Sequence[pulumi.Resource]
        ) -> k8s.apiextensions.CustomResource:
            """A NACK object in the NATS namespace; it waits for the release that installs the CRDs."""
            resource_name, opts = self._child(role, nack_release, *after)
            return custom_resource(
                resource_name,
                {
                    "apiVersion": JETSTREAM_API,
                    "kind": kind,
                    "metadata": {"name": name, "namespace": ns, "labels": common},
                    "spec": spec,
                },
                opts,
            )

        account = jetstream(
            "nats-account",
            "Account",
            CONTROLLER_ACCOUNT,
            {
                "name": CONTROLLER_ACCOUNT,
                "servers": [nats_url(ns)],
                "user": {"secret": {"name": CONTROLLER_SECRET}, "user": "user", "password": "password"},
            },
            [controller_secret],
        )
        for stream in bus.streams:
            self.streams[stream.name] = jetstream(
                f"stream-{stream.resource_name}",
                "Stream",
                stream.resource_name,
                stream.cr_spec(account=CONTROLLER_ACCOUNT),
                [account],
            )
        for consumer in bus.consumers:
            self.consumers[consumer.resource_name] = jetstream(
                f"consumer-{consumer.resource_name}",
                "Consumer",
                consumer.resource_name,
                consumer.cr_spec(account=CONTROLLER_ACCOUNT),
                [account, self.streams[consumer.stream]],
            )
        self._monitoring(args, nats_release)
        self.extras = WorkloadExtras(
            env=(lambda w: client_env(w, bus, ns),),
            egress=(lambda w: client_egress(w, bus, ns),),
            pod_annotations=(lambda w: bus.consumes_annotation(w.name),),
            depends_on=client_secrets,
        )

    def _isolate(self, args: EventBusArgs, namespace: pulumi.Resource) -> None:
        """Default deny, the servers' and the controller's exceptions, STRICT mutual TLS."""
        ns, common = args.nats_namespace, args.context.common()
        default_deny(
            self, f"{self._prefix}-nats-default-deny", ns, args.context, [namespace], "nats-default-deny"
        )
        for policy, spec in (("nats-egress", nats_egress()), ("nack", controller_policy())):
            name, opts = self._child(f"{policy}-netpol", namespace, from_root=False)
            k8s.networking.v1.NetworkPolicy(
                name,
                metadata={"name": policy, "namespace": ns, "labels": common},
                spec=spec,
                opts=opts,
            )
        for policy, spec in peer_authentications(ns).items():
            name, opts = self._child(
                f"nats-{policy}-peerauthentication", namespace, *args.mesh_crds, from_root=False
            )
            custom_resource(
                name,
                {
                    "apiVersion": SECURITY_API,
                    "kind": "PeerAuthentication",
                    "metadata": {"name": policy, "namespace": ns, "labels": common},
                    "spec": spec,
                },
                opts,
            )

    def _monitoring(self, args: EventBusArgs, nats_release: pulumi.Resource) -> None:
        ns, common = args.nats_namespace, args.context.common()
        monitor_meta = {"namespace": ns, "labels": {**common, **args.monitor_labels}}
        name, opts = self._child("nats-podmonitor", nats_release, *args.monitoring)
        custom_resource(
            name,
            {
                "apiVersion": MONITORING_API,
                "kind": "PodMonitor",
                "metadata": {"name": "nats", **monitor_meta},
                "spec": {
                    "selector": {"matchLabels": dict(NATS_POD_LABELS)},
                    "podMetricsEndpoints": [{"port": events.METRICS_PORT_NAME, "path": "/metrics"}],
                },
            },
            opts,
        )
        rules = list(args.alert_rules)
        if rules:
            name, opts = self._child("nats-alerts", nats_release, *args.monitoring)
            custom_resource(
                name,
                {
                    "apiVersion": MONITORING_API,
                    "kind": "PrometheusRule",
                    "metadata": {"name": "nats-event-bus", **monitor_meta},
                    "spec": {"groups": [{"name": "vinylhound-event-bus", "rules": rules}]},
                },
                opts,
            )
