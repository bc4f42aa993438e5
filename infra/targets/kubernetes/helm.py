"""The one way this program installs a Helm chart: ``helm.v3.Release`` from the chart's official
repository, with an explicit release name and namespace and the version from config.

``helm.v3.Release`` registers as one resource (under mocks too); ``helm.v3.Chart`` would invoke.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s


@dataclass(frozen=True)
class Chart:
    """A chart by name and the official repository it is installed from."""

    name: str
    repository: str


def release(
    resource_name: str,
    chart: Chart,
    version: str,
    namespace: str,
    values: Mapping[str, Any],
    opts: pulumi.ResourceOptions | None = None,
    *,
    release_name: str | None = None,
    create_namespace: bool | None = None,
) -> k8s.helm.v3.Release:
    """Install ``chart`` at ``version`` as release ``release_name`` (default: ``resource_name``).

    ``create_namespace=None`` leaves the field unset (the provider's default, no namespace is
    created): for charts whose namespace the program declares itself.
    """
    return k8s.helm.v3.Release(
        resource_name,
        name=release_name or resource_name,
        chart=chart.name,
        version=version,
        namespace=namespace,
        create_namespace=create_namespace,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=chart.repository),
        values=dict(values),
        opts=opts,
    )
