"""Registering a custom resource from its full object (``apiVersion``, ``kind``, ``metadata``,
``spec``), so the spec-building functions return whole objects and the registration is one line.

A built-in kind with a ``spec`` registers the same way: the request carries the type token the
typed class would send (``kubernetes:apps/v1:Deployment``) and the same inputs, without the
aliases the typed classes add for API versions the platform never used (see the Microservice).

Shared by the components and the Kubernetes target (components never import ``infra``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s


def custom_resource(
    resource_name: str, obj: Mapping[str, Any], opts: pulumi.ResourceOptions | None = None
) -> k8s.apiextensions.CustomResource:
    """Register ``obj`` as resource ``resource_name``; only the four fields above are read."""
    return k8s.apiextensions.CustomResource(
        resource_name,
        api_version=obj["apiVersion"],
        kind=obj["kind"],
        metadata=obj["metadata"],
        spec=obj["spec"],
        opts=opts,
    )
