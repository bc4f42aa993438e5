"""Custom resources validated against their CRD schemas, where a maintained source exists.

The schemas come from the ``cloudcoil-models-*`` packages (pydantic models generated from each
project's released CRDs): Istio (``*.istio.io``) and the Prometheus Operator
(``monitoring.coreos.com``). Validation is strict: a field the CRD does not define is an error
(the models themselves ignore unknown fields, so they are found by comparing the input with what the
model keeps). Other groups (CloudNativePG, NATS, ...) are reported ``unchecked``: no maintained
Python source of their schemas exists here, and passing them silently would be a lie.
"""

from __future__ import annotations

import functools
import importlib
import importlib.machinery
import importlib.util
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ValidationError

from ops.schemas import SchemaResult, object_name

#: API group -> the cloudcoil package holding its versions as modules.
SOURCES = {
    "networking.istio.io": "cloudcoil.models.istio.networking",
    "security.istio.io": "cloudcoil.models.istio.security",
    "telemetry.istio.io": "cloudcoil.models.istio.telemetry",
    "extensions.istio.io": "cloudcoil.models.istio.extensions",
    "monitoring.coreos.com": "cloudcoil.models.prometheus_operator",
}


#: The namespace package the generated packages live in (it has no ``__init__`` of its own).
_MODELS = "cloudcoil.models"


def _package_alone(name: str) -> ModuleType | None:
    """The package ``name`` under ``cloudcoil.models``, its generated ``__init__`` not run.

    Those ``__init__``s only re-export submodules, and so build the models of every version of
    every API group (``cloudcoil.models.istio`` imports networking v1, v1alpha3 and v1beta1,
    security, telemetry, extensions): 3.4 s of CPU for the four version modules the platform uses,
    against 2.0 s for those four alone. ``None`` where the layout is not the one expected."""
    if name in sys.modules:
        return sys.modules[name]
    if name == _MODELS:
        return importlib.import_module(name)
    parent_name, _, leaf = name.rpartition(".")
    parent = _package_alone(parent_name) if name.startswith(f"{_MODELS}.") else None
    path = getattr(parent, "__path__", None)
    spec = importlib.machinery.PathFinder.find_spec(name, path) if path is not None else None
    if spec is None or spec.submodule_search_locations is None:
        return None
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    setattr(parent, leaf, package)
    return package


@functools.cache
def _defer_builds() -> None:
    """Have every cloudcoil model built on its first use rather than when its module runs.

    A version module defines every kind of its group (the Prometheus Operator's v1: Prometheus,
    Alertmanager, ThanosRuler, ... and a pydantic builder class beside each model), while the
    platform validates three of its kinds. Pydantic's ``defer_build``, inherited from these bases,
    postpones building a model's validator until a first validation; the validators built are
    the same. The bases are cloudcoil's own (``cloudcoil.pydantic``, ``cloudcoil.resources``),
    configured before any generated module is imported."""
    import cloudcoil.pydantic
    import cloudcoil.resources

    for module in (cloudcoil.pydantic, cloudcoil.resources):
        for value in vars(module).values():
            ours = isinstance(value, type) and value.__module__ == module.__name__
            if ours and issubclass(value, BaseModel):
                value.model_config["defer_build"] = True


def model_for(api_version: str, kind: str) -> type[BaseModel] | None:
    """The generated model of ``kind`` in ``api_version``, if a source covers it."""
    group, _, version = api_version.partition("/")
    package = SOURCES.get(group)
    if package is None or not version:
        return None
    try:
        # Only the version asked for is built (see _package_alone); the usual import otherwise.
        _defer_builds()
        _package_alone(package)
        module = importlib.import_module(f"{package}.{version}")
    except ImportError:
        return None
    model = getattr(module, kind, None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def unknown_fields(given: Any, kept: Any, path: str = "") -> Iterator[str]:
    """Paths present in ``given`` that the model dropped (fields the schema does not define)."""
    if isinstance(given, dict) and isinstance(kept, dict):
        for key, value in given.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in kept:
                yield where
            else:
                yield from unknown_fields(value, kept[key], where)
    elif isinstance(given, list) and isinstance(kept, list):
        for index, (g, k) in enumerate(zip(given, kept, strict=False)):
            yield from unknown_fields(g, k, f"{path}[{index}]")


def validate_custom(obj: dict[str, Any]) -> SchemaResult:
    """Validate one custom resource against its CRD schema; ``unchecked`` without a source."""
    kind, name = str(obj.get("kind")), object_name(obj)
    api_version = str(obj.get("apiVersion", ""))
    model = model_for(api_version, kind)
    if model is None:
        return SchemaResult(kind, name, "unchecked", f"no maintained CRD schema source for {api_version}")
    try:
        parsed = model.model_validate(obj)
    except ValidationError as err:
        first = err.errors()[0]
        path = ".".join(str(p) for p in first["loc"]) or "(root)"
        return SchemaResult(kind, name, "invalid", f"{path}: {first['msg']}")
    kept = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    extra = sorted(unknown_fields(obj, kept))
    if extra:
        return SchemaResult(kind, name, "invalid", f"{extra[0]}: field not defined by the CRD")
    return SchemaResult(kind, name, "ok")
