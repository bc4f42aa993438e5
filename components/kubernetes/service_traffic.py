"""The ``ServiceTraffic`` component: one workload's Istio traffic and access policy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi

from components.kubernetes import istio
from components.kubernetes.custom_resource import custom_resource
from components.kubernetes.istio import BreakerSpec
from components.options import child_opts, waits

TYPE = "vinylhound:mesh:ServiceTraffic"


@dataclass(frozen=True)
class ServiceTrafficArgs:
    """What one workload's traffic policy needs.

    ``principals`` are the only identities allowed to call ``port``; everyone else is refused by
    the sidecar. ``breaker`` defaults to ``BreakerSpec()`` (5 consecutive 5xx eject a pod for 30 s;
    100 connections, 100 pending and 1000 concurrent requests).
    """

    name: str
    namespace: str
    host: str
    port: int
    selector: Mapping[str, str]
    principals: Sequence[str]
    labels: Mapping[str, str] = field(default_factory=dict)
    breaker: BreakerSpec = field(default_factory=BreakerSpec)


class ServiceTraffic(pulumi.ComponentResource):
    """A DestinationRule (mutual TLS, outlier detection, connection pool) and an
    AuthorizationPolicy (ALLOW only the given principals) for one workload.

    Both objects are named ``args.name``; Pulumi names are ``f"{name}-destinationrule"`` and
    ``f"{name}-authorization"``. Both wait for what ``opts.depends_on`` names (the release that
    installs Istio's CRDs).
    """

    host: pulumi.Output[str]

    def __init__(
        self, name: str, args: ServiceTrafficArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE, name, None, opts)
        child = child_opts(self, waits(opts))
        metadata = {"name": args.name, "namespace": args.namespace, "labels": dict(args.labels)}
        custom_resource(
            f"{name}-destinationrule",
            {
                "apiVersion": istio.NETWORKING,
                "kind": "DestinationRule",
                "metadata": metadata,
                "spec": istio.destination_rule_spec(args.host, args.breaker),
            },
            child,
        )
        custom_resource(
            f"{name}-authorization",
            {
                "apiVersion": istio.SECURITY,
                "kind": "AuthorizationPolicy",
                "metadata": metadata,
                "spec": istio.authorization_policy_spec(args.selector, args.principals, args.port),
            },
            child,
        )
        self.host = pulumi.Output.from_input(args.host)
        self.register_outputs({"host": self.host})
