"""Schema validation of core objects: the cached validators judge as ``kubernetes_validate`` does."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate

from ops.schemas import KUBERNETES_VERSION, SchemaResult, object_name, validate_objects
from tests.conftest import manifests_of, rendered


def _reference(obj: dict[str, Any]) -> SchemaResult:
    """What ``kubernetes_validate.validate`` (the library's own entry point) says of ``obj``."""
    kind, name = str(obj.get("kind")), object_name(obj)
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return SchemaResult(kind, name, "unchecked", f"no built-in schema for {obj.get('apiVersion')}")
    except kubernetes_validate.ValidationError as err:
        path = ".".join(str(p) for p in err.path) or "(root)"
        return SchemaResult(kind, name, "invalid", f"{path}: {err.message}")
    return SchemaResult(kind, name, "ok")


def _broken(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One object per kind with a wrong type and one with a field no schema defines."""
    broken = []
    for kind in ("Deployment", "Service", "NetworkPolicy"):
        obj = copy.deepcopy(next(o for o in objects if o["kind"] == kind))
        obj["spec"]["bogus"] = 1
        broken.append(obj)
    deployment = copy.deepcopy(next(o for o in objects if o["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": "http"}]
    return [*broken, deployment]


def test_cached_validators_judge_rendered_and_broken_objects_as_kubernetes_validate_does() -> None:
    objects = manifests_of(rendered("dev"))
    objects += _broken(objects)
    results = validate_objects(objects)
    assert {r.status for r in results} == {"ok", "invalid", "unchecked"}
    assert results == [_reference(o) for o in objects]
