"""Every component takes plain data (docs/architecture.md, style lesson 16): the stack's config and
the catalog are read by the wiring (``infra/targets/<target>/``), which hands each component an
Args of strings, numbers, mappings, specs and resources to wait for. Checked on the types the Args
declare, followed through every dataclass they contain, so a config or catalog type cannot hide
one level down."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import types
import typing
from collections.abc import Iterator

import pulumi
import pytest

import components
import infra.targets

#: Where the stack's config and the catalog live: no component's Args may reach a type from here.
FORBIDDEN = ("infra.config", "infra.catalog")
#: ``pulumi.Input`` names ``Output`` as a forward reference, resolved in pulumi's namespace.
PULUMI_NAMES = {"Output": pulumi.Output, "T": typing.Any}


def _components() -> list[type[pulumi.ComponentResource]]:
    found: dict[str, type[pulumi.ComponentResource]] = {}
    for package in (components, infra.targets):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            module = importlib.import_module(info.name)
            for cls in vars(module).values():
                if (
                    inspect.isclass(cls)
                    and issubclass(cls, pulumi.ComponentResource)
                    and cls.__module__ == module.__name__
                ):
                    found[f"{cls.__module__}.{cls.__name__}"] = cls
    return [found[k] for k in sorted(found)]


def _args_type(component: type[pulumi.ComponentResource]) -> object:
    hints = typing.get_type_hints(component.__init__, localns=PULUMI_NAMES)
    parameters = list(inspect.signature(component.__init__).parameters)
    # ``(self, name, args, opts)``: the Args is the parameter after the name.
    return hints[parameters[2]]


def _reachable(annotation: object, seen: set[object]) -> Iterator[type]:
    """Every class ``annotation`` names, through unions, generics and dataclass fields."""
    if annotation in seen:
        return
    seen.add(annotation)
    for arg in typing.get_args(annotation):
        yield from _reachable(arg, seen)
    origin = typing.get_origin(annotation)
    cls = origin if origin is not None else annotation
    if not inspect.isclass(cls) or (isinstance(annotation, types.GenericAlias) and origin is None):
        return
    yield cls
    if dataclasses.is_dataclass(cls):
        for name, hint in typing.get_type_hints(cls, localns=PULUMI_NAMES).items():
            if name in {f.name for f in dataclasses.fields(cls)}:
                yield from _reachable(hint, seen)


COMPONENTS = _components()


def test_the_components_are_found() -> None:
    names = {c.__name__ for c in COMPONENTS}
    assert {"Platform", "Databases", "ServiceMigration", "Mesh", "Workloads", "Microservice"} <= names


@pytest.mark.parametrize("component", COMPONENTS, ids=lambda c: c.__name__)
def test_a_components_args_reach_no_config_or_catalog_type(component: type[pulumi.ComponentResource]) -> None:
    reached = {f"{c.__module__}.{c.__qualname__}" for c in _reachable(_args_type(component), set())}
    assert sorted(r for r in reached if r.startswith(FORBIDDEN)) == []
