"""Custom resources are checked against models created a kind at a time (``ops.crds``): the same
classes as the generated modules', so the same validation."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from pydantic import BaseModel

from ops import crds
from ops.render import is_manifest, manifest
from tests.conftest import rendered

#: Every custom resource kind the platform renders that a maintained schema source covers. A
#: list, not a render at collection time (every xdist worker would pay it); the first test keeps
#: it equal to what the stacks render.
RENDERED_KINDS = [
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("networking.istio.io/v1", "DestinationRule"),
    ("networking.istio.io/v1", "Gateway"),
    ("networking.istio.io/v1", "VirtualService"),
    ("security.istio.io/v1", "AuthorizationPolicy"),
    ("security.istio.io/v1", "PeerAuthentication"),
    ("telemetry.istio.io/v1", "Telemetry"),
]


def _generated(api_version: str, kind: str) -> type[BaseModel]:
    """The model as the generated module defines it, imported the usual way."""
    group, _, version = api_version.partition("/")
    model: type[BaseModel] = getattr(importlib.import_module(f"{crds.SOURCES[group]}.{version}"), kind)
    return model


def test_the_kinds_checked_here_are_the_custom_resources_the_stacks_render() -> None:
    rendered_kinds = {
        (obj["apiVersion"], obj["kind"])
        for stack in ("dev", "prod")
        for obj in (manifest(r) for r in rendered(stack).registrations if is_manifest(r))
        if obj["apiVersion"].partition("/")[0] in crds.SOURCES
    }
    assert sorted(rendered_kinds) == RENDERED_KINDS


@pytest.mark.parametrize(("api_version", "kind"), RENDERED_KINDS)
def test_a_kind_validates_with_the_schema_its_generated_module_defines(api_version: str, kind: str) -> None:
    model = crds.model_for(api_version, kind)
    assert model is not None and model is not _generated(api_version, kind)
    assert model.model_json_schema() == _generated(api_version, kind).model_json_schema()


def test_a_kind_the_version_does_not_define_has_no_model() -> None:
    assert crds.model_for("monitoring.coreos.com/v1", "Nonexistent") is None


HEADER = "from pydantic import BaseModel\n\n\n"


def _source(*classes: str) -> str:
    return HEADER + "".join(classes)


def test_a_kind_needs_the_classes_its_fields_name_and_theirs() -> None:
    source = _source(
        "class Port(BaseModel):\n    number: int\n\n\n",
        "class Endpoint(BaseModel):\n    port: Port\n\n\n",
        "class Other(BaseModel):\n    x: int\n\n\n",
        "class Monitor(BaseModel):\n    endpoints: list[Endpoint]\n\n\n",
    )
    layout = crds.top_level_classes(source)
    assert layout is not None
    assert crds.classes_needed(layout[1], "Monitor") == ["Port", "Endpoint", "Monitor"]


def test_a_kind_named_only_in_a_docstring_is_not_needed() -> None:
    source = _source(
        "class Other(BaseModel):\n    x: int\n\n\n",
        'class Monitor(BaseModel):\n    port: int\n    """Unlike Other, one port."""\n\n\n',
    )
    layout = crds.top_level_classes(source)
    assert layout is not None
    assert crds.classes_needed(layout[1], "Monitor") == ["Monitor"]


def test_a_class_whose_bases_span_lines_is_still_the_expected_layout() -> None:
    layout = crds.top_level_classes(_source("class Spec(\n    BaseModel\n):\n    x: int\n"))
    assert layout is not None and list(layout[1]) == ["Spec"]


@pytest.mark.parametrize(
    "statement", ["Spec.model_rebuild()\n", "ALIAS = Spec\n", "if True:\n    pass\n"], ids=str.strip
)
def test_a_module_with_anything_but_classes_after_its_imports_is_not_cut(statement: str) -> None:
    assert crds.top_level_classes(_source("class Spec(BaseModel):\n    x: int\n\n\n", statement)) is None


def test_a_cut_kind_rejects_a_field_its_crd_does_not_define() -> None:
    monitor: dict[str, Any] = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": "orders", "namespace": "vinylhound"},
        "spec": {"selector": {"matchLabels": {"app": "orders"}}, "podMetricsEndpoints": [{"prot": "http"}]},
    }
    result = crds.validate_custom(monitor)
    assert (result.status, result.message) == (
        "invalid",
        "spec.podMetricsEndpoints[0].prot: field not defined by the CRD",
    )


def test_a_kind_whose_cut_fails_is_taken_from_the_whole_module(monkeypatch: pytest.MonkeyPatch) -> None:
    def unseen_name(self: object, kind: str) -> object:
        raise NameError("name 'Unseen' is not defined")

    monkeypatch.setattr(crds._VersionSlices, "kind", unseen_name)
    model = crds.model_for("networking.istio.io/v1", "VirtualService")
    assert model is _generated("networking.istio.io/v1", "VirtualService")
