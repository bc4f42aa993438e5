"""The offline runner cleans up after itself (many runs share one test process) and records
what the engine would see."""

from __future__ import annotations

import gc
import json
import math
import warnings
from typing import Any

import pulumi_kubernetes as k8s
import pytest
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct
from pulumi.runtime import mocks
from pulumi.runtime import resource as sdk_resource

from ops.mockrun import _RESOURCE_SIG, _SECRET_SIG, _SIG_KEY, _UNKNOWN, MASK, plain, plain_struct
from tests.conftest import run_program


def _program() -> None:
    k8s.core.v1.ConfigMap("settings", metadata={"name": "settings"}, data={"a": "b"})


def test_an_offline_run_leaves_no_event_loop_unclosed() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for _ in range(2):
            assert [r.name for r in run_program(_program)] == ["settings"]
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_an_offline_run_sends_no_source_positions_and_leaves_the_sdk_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frames: list[int] = []
    register = mocks.MockMonitor.RegisterResource

    def counting(self: mocks.MockMonitor, request: Any) -> Any:
        frames.append(len(request.stackTrace.frames))
        return register(self, request)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(mocks.MockMonitor, "RegisterResource", counting)
    computing = sdk_resource._get_stack_trace
    assert [r.name for r in run_program(_program)] == ["settings"]
    assert frames and set(frames) == {0}
    assert sdk_resource._get_stack_trace is computing


def test_the_sdk_still_has_the_source_positions_a_run_skips() -> None:
    # If an upgrade renames it, runs compute positions again (slower, same output): update mockrun.
    assert callable(getattr(sdk_resource, "_get_stack_trace", None))


def _wire_inputs() -> Struct:
    """Inputs as the SDK sends them: numbers as doubles, an unknown, a secret and a reference."""
    struct = Struct()
    struct.update(
        {
            "replicas": 3.0,
            "ratio": 0.5,
            "enabled": True,
            "nothing": None,
            "later": _UNKNOWN,
            "ports": [{"containerPort": 8080.0, "name": "http"}, 2.0],
            "metadata": {"name": "settings", "labels": {"b": "2", "a": "1"}},
            "password": {_SIG_KEY: _SECRET_SIG, "value": {"user": "u", "pass": "p"}},
            "owner": {_SIG_KEY: _RESOURCE_SIG, "urn": "urn:pulumi:dev::p::t::owner"},
        }
    )
    return struct


def test_recorded_inputs_are_what_plain_makes_of_their_json_form() -> None:
    struct = _wire_inputs()
    recorded = plain_struct(struct)
    assert json.dumps(recorded) == json.dumps(plain(json_format.MessageToDict(struct)))
    assert recorded["password"] == {"pass": MASK, "user": MASK}
    assert recorded["replicas"] == 3 and isinstance(recorded["replicas"], int)


def test_recorded_inputs_refuse_a_number_json_cannot_hold() -> None:
    struct = Struct()
    struct.update({"ratio": math.inf})
    with pytest.raises(ValueError, match="no JSON form"):
        plain_struct(struct)
