"""Schema validation of rendered Kubernetes objects, offline.

Core objects are checked against the Kubernetes OpenAPI schemas shipped by ``kubernetes-validate``
(strict: unknown fields are errors). Custom resources have no schema there; they are reported as
``unchecked`` so a caller can check them against their CRD schemas instead of passing silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import kubernetes_validate

#: The Kubernetes minor version the platform targets; schemas are taken from this release.
KUBERNETES_VERSION = "1.33.0"


@dataclass(frozen=True)
class SchemaResult:
    """The outcome for one object: ``ok``, ``invalid`` (with a message) or ``unchecked``."""

    kind: str
    name: str
    status: str
    message: str = ""


def object_name(obj: dict[str, Any]) -> str:
    """``namespace/name`` of an object (``_cluster`` for cluster-scoped ones)."""
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '_cluster')}/{meta.get('name', '?')}"


def validate_objects(
    objects: Iterable[dict[str, Any]], version: str = KUBERNETES_VERSION
) -> list[SchemaResult]:
    """Validate each object; never raises for a bad object."""
    results = []
    for obj in objects:
        kind, name = str(obj.get("kind")), object_name(obj)
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            results.append(
                SchemaResult(kind, name, "unchecked", f"no built-in schema for {obj.get('apiVersion')}")
            )
        except kubernetes_validate.ValidationError as err:
            path = ".".join(str(p) for p in err.path) or "(root)"
            results.append(SchemaResult(kind, name, "invalid", f"{path}: {err.message}"))
        else:
            results.append(SchemaResult(kind, name, "ok"))
    return results
