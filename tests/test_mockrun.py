"""The offline runner cleans up after itself: many runs share one test process."""

from __future__ import annotations

import gc
import warnings

import pulumi_kubernetes as k8s

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
