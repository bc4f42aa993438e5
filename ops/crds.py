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
import re
import sys
from collections.abc import Iterator
from pathlib import Path
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
def defer_builds() -> None:
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


#: A class statement at the top level of a generated module.
_CLASS = re.compile(r"^class (\w+)\b", re.M)
#: A line at the top level that is neither a class statement nor the end of one's bases: the
#: module is not the header-then-classes layout the slices rely on.
_OTHER_STATEMENT = re.compile(r"^(?!class |\)|#)\S", re.M)
#: A triple-quoted string (the field docstrings, which name other kinds in prose).
_DOCSTRING = re.compile(r'"""(?:[^"\\]|\\.|"(?!""))*"""')
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


def top_level_classes(source: str) -> tuple[str, dict[str, str]] | None:
    """A generated module as its header (imports) and its classes' source by name, in order;
    ``None`` when anything but classes follows the header."""
    starts = list(_CLASS.finditer(source))
    if not starts or _OTHER_STATEMENT.search(source, starts[0].start()):
        return None
    ends = [m.start() for m in starts[1:]] + [len(source)]
    classes = {m.group(1): source[m.start() : end] for m, end in zip(starts, ends, strict=True)}
    return source[: starts[0].start()], classes


def classes_needed(classes: dict[str, str], kind: str) -> list[str]:
    """``kind`` and every class its source names (fields, bases, builders), transitively, in the
    module's order. Names in docstrings do not count: they are prose about other kinds."""
    needed: set[str] = set()
    todo = [kind]
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        code = _DOCSTRING.sub("", classes[name])
        todo.extend(n for n in set(_IDENTIFIER.findall(code)) if n in classes and n not in needed)
    return [name for name in classes if name in needed]


class _VersionSlices:
    """One generated version module, whose classes are created a kind at a time.

    A version module defines every kind of its group (the Prometheus Operator's v1: 451 classes,
    Prometheus, Alertmanager, ThanosRuler...), and creating them all cost 0.65 s of CPU for the
    three kinds the platform validates, which need 29. The classes are the module's own source,
    unchanged and in its order, executed into one module of ours, so the models validate exactly
    as the module's do (tests/test_crds.py compares their schemas)."""

    def __init__(self, name: str, origin: str, header: str, classes: dict[str, str]) -> None:
        self.module = ModuleType(name)
        self.module.__file__ = origin
        self._classes = classes
        self._defined: set[str] = set()
        # pydantic resolves the models' (string) annotations in their module's namespace.
        sys.modules[name] = self.module
        self._run(header)

    def _run(self, source: str) -> None:
        # The package's own code, as its import would run it.
        exec(compile(source, str(self.module.__file__), "exec"), self.module.__dict__)

    def kind(self, kind: str) -> object:
        """The class ``kind`` (created with the classes it needs), ``None`` if the module has none."""
        if kind not in self._classes:
            return None
        if kind in self._defined:
            return getattr(self.module, kind)
        missing = [n for n in classes_needed(self._classes, kind) if n not in self._defined]
        self._run("".join(self._classes[n] for n in missing))
        self._defined.update(missing)
        return getattr(self.module, kind)


@functools.cache
def _version_slices(package: str, version: str) -> _VersionSlices | None:
    """The version module of ``package``, to be created a kind at a time; ``None`` when it is not
    found or not in the layout expected (the caller then imports it whole)."""
    parent = _package_alone(package)
    path = getattr(parent, "__path__", None)
    if path is None:
        return None
    spec = importlib.machinery.PathFinder.find_spec(f"{package}.{version}", path)
    if spec is None or spec.origin is None:
        return None
    layout = top_level_classes(Path(spec.origin).read_text(encoding="utf-8"))
    if layout is None:
        return None
    name = f"{__name__}.models.{package.removeprefix(_MODELS + '.')}.{version}"
    return _VersionSlices(name, spec.origin, *layout)


def model_for(api_version: str, kind: str) -> type[BaseModel] | None:
    """The generated model of ``kind`` in ``api_version``, if a source covers it."""
    group, _, version = api_version.partition("/")
    package = SOURCES.get(group)
    if package is None or not version:
        return None
    try:
        defer_builds()
        # Only the classes the kind needs are created (see _VersionSlices); the whole version
        # module, without its package's __init__ (see _package_alone), where that fails.
        slices = _version_slices(package, version)
        try:
            model = slices.kind(kind) if slices is not None else None
        except NameError:
            slices = None  # a class named in a way the cut did not see: the module, whole
        if slices is None:
            _package_alone(package)
            model = getattr(importlib.import_module(f"{package}.{version}"), kind, None)
    except ImportError:
        return None
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
