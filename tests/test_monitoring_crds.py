"""Rendered Prometheus Operator objects against the operator's CRD models.

The models come from ``cloudcoil-models-prometheus-operator`` (generated from the operator's CRD
schemas). Pydantic ignores unknown keys, so each object is also compared with its own validated
dump: a key the schema does not know (a typo such as ``podMetricEndpoints``) is reported.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
from pydantic import BaseModel

from infra.catalog import workload
from infra.targets.kubernetes.observability import monitors
from tests.conftest import KUBE_STACKS, manifests_of, rendered

KINDS = {"PodMonitor", "ServiceMonitor", "PrometheusRule"}


@functools.cache
def models() -> dict[str, type[BaseModel]]:
    """The operator's models by kind, imported on first use: the package costs about 2 s of CPU,
    which a test process that runs none of these tests (an xdist worker) need not pay."""
    from cloudcoil.models.prometheus_operator import v1

    return {
        "PodMonitor": v1.PodMonitor,
        "ServiceMonitor": v1.ServiceMonitor,
        "PrometheusRule": v1.PrometheusRule,
    }


def unknown_keys(given: Any, known: Any, path: str = "") -> list[str]:
    """Paths present in ``given`` but absent from the model's dump ``known``."""
    if isinstance(given, dict) and isinstance(known, dict):
        found = []
        for key, value in given.items():
            if key not in known:
                found.append(f"{path}.{key}")
            else:
                found.extend(unknown_keys(value, known[key], f"{path}.{key}"))
        return found
    if isinstance(given, list) and isinstance(known, list):
        return [
            p
            for i, (g, k) in enumerate(zip(given, known, strict=False))
            for p in unknown_keys(g, k, f"{path}[{i}]")
        ]
    return []


def problems(obj: dict[str, Any]) -> list[str]:
    """Schema violations of one object (validation errors and unknown keys)."""
    model = models()[obj["kind"]]
    try:
        parsed = model.model_validate(obj)
    except Exception as err:
        return [str(err)]
    return unknown_keys(obj, parsed.model_dump(mode="json", by_alias=True, exclude_none=True))


def monitoring_objects(stack: str) -> list[dict[str, Any]]:
    return [m for m in manifests_of(rendered(stack)) if m["kind"] in KINDS]


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_every_monitor_and_rule_matches_the_prometheus_operator_schema(stack: str) -> None:
    objects = monitoring_objects(stack)
    assert {o["kind"] for o in objects} == KINDS
    assert {o["metadata"]["name"]: problems(o) for o in objects if problems(o)} == {}


def test_a_misspelt_field_is_reported() -> None:
    obj = monitors.sidecar_pod_monitor(workload("user-service"), "vinylhound", {"a": "b"}, {})
    obj["spec"]["podMetricEndpoints"] = obj["spec"].pop("podMetricsEndpoints")
    assert problems(obj) == [".spec.podMetricEndpoints"]


def test_a_wrongly_typed_field_is_reported() -> None:
    obj = monitors.sidecar_pod_monitor(workload("user-service"), "vinylhound", {"a": "b"}, {})
    obj["spec"]["podMetricsEndpoints"] = {"port": "http-envoy-prom"}
    assert problems(obj) != []
