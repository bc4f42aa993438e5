"""Schema validation of rendered Kubernetes objects, offline.

Core objects are checked against the Kubernetes OpenAPI schemas shipped by ``kubernetes-validate``
(strict: unknown fields are errors). Custom resources have no schema there; they are reported as
``unchecked`` so a caller can check them against their CRD schemas instead of passing silently.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jsonschema
import kubernetes_validate
from kubernetes_validate import utils
from referencing import Registry, Resource

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


@functools.cache
def _schema_dir(version: str) -> str:
    """The strict schema directory ``kubernetes_validate.validate`` picks for ``version``: the
    newest release it ships that is not newer than ``version`` (compared as it compares them)."""
    wanted = utils.major_minor(version.removeprefix("v"))
    if wanted > utils.major_minor(utils.latest_version()):
        raise kubernetes_validate.VersionNotSupportedError(version=wanted)
    newest = [v for v in utils.all_versions() if utils.major_minor(v) <= wanted][-1]
    return f"v{newest}-local-strict"


@functools.cache
def _definitions(schema_dir: str) -> Any:
    return utils.schema_contents(f"kubernetes-json-schema/{schema_dir}/_definitions.json", schema_dir)


def definitions(version: str = KUBERNETES_VERSION) -> Any:
    """The definitions every kind's schema refers to (1.4 MB of JSON, read once)."""
    return _definitions(_schema_dir(version))


@functools.cache
def validator(api_version: str, kind: str, version: str = KUBERNETES_VERSION) -> jsonschema.Validator:
    """The strict validator of one kind, built once: ``kubernetes_validate.validate`` builds the
    same validator for every object it checks, re-reading the 1.4 MB shared definitions each time
    (10 ms an object, most of a stack's schema check). ``SchemaNotFoundError`` without a schema."""
    schema_dir = _schema_dir(version)
    # rbac.authorization.k8s.io/v1 -> rbac-v1, as kubernetes_validate names its files.
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = utils.schema_contents(
            f"kubernetes-json-schema/{schema_dir}/{kind.lower()}-{group_version}.json", version
        )
    except FileNotFoundError:
        raise kubernetes_validate.SchemaNotFoundError(
            version=utils.major_minor(version), kind=kind, api_version=api_version
        ) from None
    registry: Registry[Any] = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(_definitions(schema_dir)) @ registry
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate_objects(
    objects: Iterable[dict[str, Any]], version: str = KUBERNETES_VERSION
) -> list[SchemaResult]:
    """Validate each object; never raises for a bad object."""
    results = []
    for obj in objects:
        kind, name = str(obj.get("kind")), object_name(obj)
        try:
            validator(str(obj.get("apiVersion")), kind, version).validate(obj)
        except kubernetes_validate.SchemaNotFoundError:
            results.append(
                SchemaResult(kind, name, "unchecked", f"no built-in schema for {obj.get('apiVersion')}")
            )
        except jsonschema.ValidationError as err:
            path = ".".join(str(p) for p in err.path) or "(root)"
            results.append(SchemaResult(kind, name, "invalid", f"{path}: {err.message}"))
        else:
            results.append(SchemaResult(kind, name, "ok"))
    return results
