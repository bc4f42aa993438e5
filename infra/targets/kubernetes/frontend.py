"""The front end's API upstream on Kubernetes: a Service under the name its nginx proxies to.

The ``frontend`` image's nginx.conf forwards ``/api/`` to a hard-coded host
(``Workload.api_upstream_host``, ``vinylhound-backend:8080``) and refuses to start when that name
does not resolve ("host not found in upstream"). The docker target gives the api-gateway container
that alias; here a ClusterIP Service of that name selects the api-gateway's pods when it is
enabled, else the monolith's.

In practice browsers call ``/api/`` on the edge, whose VirtualService routes it before it reaches
nginx, so this path only carries what reaches nginx directly (a port-forward, a misrouted
request): it is a fallback, and it exists chiefly so that nginx starts. Traffic through it is not
split by cutover (it goes to the gateway, whose mesh routes do split; or to the monolith). The
NetworkPolicy and AuthorizationPolicy exceptions for front end -> backend come from
``infra.targets.kubernetes.traffic.callers``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.kubernetes import specs
from components.labels import LabelContext
from components.options import child_opts
from infra import catalog
from infra.targets.kubernetes import traffic

TYPE = "vinylhound:workloads:FrontendUpstream"


def upstream_service_spec(backend: str | None, context: LabelContext) -> dict[str, Any] | None:
    """The Service spec for the front end's API upstream (selecting ``backend``), or ``None``
    without a front end."""
    frontend = catalog.workload(traffic.FRONTEND)
    if backend is None or frontend.api_upstream_port is None:
        return None
    return {
        "type": "ClusterIP",
        "selector": context.selector(backend),
        "ports": [
            {
                "name": specs.HTTP_PORT_NAME,
                "port": frontend.api_upstream_port,
                "targetPort": catalog.workload(backend).port,
                "protocol": "TCP",
                "appProtocol": "http",
            }
        ],
    }


@dataclass(frozen=True)
class FrontendUpstreamArgs:
    """``backend``: the workload behind the upstream (``traffic.frontend_backend``), ``None``
    without a front end; ``namespace``: the workloads' namespace (its name and the resource to
    wait for), where the Service lives."""

    backend: str | None
    context: LabelContext
    namespace_name: str
    namespace: pulumi.Resource


class FrontendUpstream(pulumi.ComponentResource):
    """The Service named after the front end's API upstream host (none without a front end)."""

    service: k8s.core.v1.Service | None

    def __init__(
        self, name: str, args: FrontendUpstreamArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE, name, None, opts)
        spec = upstream_service_spec(args.backend, args.context)
        host = catalog.workload(traffic.FRONTEND).api_upstream_host
        self.service = None
        if spec is not None and host is not None:
            self.service = k8s.core.v1.Service(
                f"{name}-service",
                metadata={"name": host, "namespace": args.namespace_name, "labels": args.context.common()},
                spec=spec,
                opts=child_opts(
                    self, [args.namespace], moved_from_root=True, renamed_from="frontend-api-upstream"
                ),
            )
        self.register_outputs({"host": host or ""})
