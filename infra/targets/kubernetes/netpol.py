"""The namespace-wide default-deny NetworkPolicy, declared the same way in every namespace the
program owns (the exceptions are policies of their own, see ``infra.targets.kubernetes.network``)."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.labels import LabelContext
from components.options import child_opts
from infra.targets.kubernetes import network


def default_deny(
    parent: pulumi.Resource,
    resource_name: str,
    namespace: str,
    context: LabelContext,
    after: Sequence[pulumi.Resource],
    renamed_from: str | None = None,
) -> k8s.networking.v1.NetworkPolicy:
    """A NetworkPolicy named ``default-deny`` in ``namespace`` that isolates every pod both ways.
    ``renamed_from``: its Pulumi name before (``child_opts``)."""
    return k8s.networking.v1.NetworkPolicy(
        resource_name,
        metadata={"name": "default-deny", "namespace": namespace, "labels": context.common()},
        spec=network.default_deny(),
        opts=child_opts(parent, after, renamed_from=renamed_from),
    )
