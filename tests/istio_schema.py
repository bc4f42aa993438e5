"""Istio custom resources checked against Istio's CRD schemas (the ``cloudcoil-models-istio``
pydantic models, generated from the CRDs Istio publishes).

The models ignore unknown keys, and a misspelt field is exactly the mistake to catch, so after
validating, every key of the object is also looked up in the model it was parsed into.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pydantic
from cloudcoil.models.istio.networking import v1 as networking
from cloudcoil.models.istio.security import v1 as security
from cloudcoil.models.istio.telemetry import v1 as telemetry

MODELS: dict[tuple[str, str], type[pydantic.BaseModel]] = {
    ("networking.istio.io/v1", "Gateway"): networking.Gateway,
    ("networking.istio.io/v1", "VirtualService"): networking.VirtualService,
    ("networking.istio.io/v1", "DestinationRule"): networking.DestinationRule,
    ("security.istio.io/v1", "PeerAuthentication"): security.PeerAuthentication,
    ("security.istio.io/v1", "AuthorizationPolicy"): security.AuthorizationPolicy,
    ("telemetry.istio.io/v1", "Telemetry"): telemetry.Telemetry,
}


def is_istio(obj: Mapping[str, Any]) -> bool:
    """Whether ``obj`` is an Istio custom resource."""
    return str(obj.get("apiVersion", "")).split("/")[0].endswith(".istio.io")


def problems(obj: Mapping[str, Any]) -> list[str]:
    """Everything wrong with ``obj`` against its CRD schema, one ``path: message`` each."""
    model = MODELS.get((str(obj.get("apiVersion")), str(obj.get("kind"))))
    if model is None:
        return [f"no schema for {obj.get('apiVersion')} {obj.get('kind')}"]
    try:
        parsed = model.model_validate(obj)
    except pydantic.ValidationError as err:
        return [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()]
    return list(_unknown(parsed, obj, ""))


def _unknown(model: pydantic.BaseModel, raw: Mapping[str, Any], path: str) -> Iterator[str]:
    names: dict[str, str] = {}
    for name, info in type(model).model_fields.items():
        names[name] = name
        if info.alias:
            names[info.alias] = name
    for key, value in raw.items():
        field = names.get(key)
        if field is None:
            yield f"{path}{key}: unknown field"
        else:
            yield from _walk(getattr(model, field), value, f"{path}{key}.")


def _walk(parsed: Any, raw: Any, path: str) -> Iterator[str]:
    if isinstance(parsed, pydantic.RootModel):
        yield from _walk(parsed.root, raw, path)
    elif isinstance(parsed, pydantic.BaseModel) and isinstance(raw, Mapping):
        yield from _unknown(parsed, raw, path)
    elif isinstance(parsed, list) and isinstance(raw, list):
        for i, (item, raw_item) in enumerate(zip(parsed, raw, strict=False)):
            yield from _walk(item, raw_item, f"{path}{i}.")
    elif isinstance(parsed, dict) and isinstance(raw, Mapping):
        for key, raw_value in raw.items():
            if key in parsed:
                yield from _walk(parsed[key], raw_value, f"{path}{key}.")
