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
``infra.traffic.callers``.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.kubernetes import specs
from components.labels import LabelContext
from infra import catalog, traffic
from infra.config import PlatformConfig


def upstream_service_spec(cfg: PlatformConfig, context: LabelContext) -> dict[str, Any] | None:
    """The Service spec for the front end's API upstream, or ``None`` without a front end."""
    backend = traffic.frontend_backend(cfg)
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


def deploy_frontend_upstream(
    cfg: PlatformConfig, context: LabelContext, opts: pulumi.ResourceOptions
) -> k8s.core.v1.Service | None:
    """Declare the Service named after the front end's API upstream host, in the app namespace."""
    spec = upstream_service_spec(cfg, context)
    name = catalog.workload(traffic.FRONTEND).api_upstream_host
    if spec is None or name is None:
        return None
    return k8s.core.v1.Service(
        "frontend-api-upstream",
        metadata={"name": name, "namespace": cfg.namespace, "labels": context.common()},
        spec=spec,
        opts=opts,
    )
