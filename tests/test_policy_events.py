"""The event bus policy rules, on the rendered stacks and one change per violation."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    StackValidationArgs,
)

from ops.mockrun import Registration
from policies.rules import events as rules
from tests.conftest import KUBE_STACKS, rendered

_OPTS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def _resource(reg: Registration) -> PolicyResource:
    return PolicyResource(reg.type, copy.deepcopy(reg.inputs), reg.urn, reg.name, _OPTS, None, None, [], {})


def _resources(stack: str) -> list[PolicyResource]:
    return [_resource(r) for r in rendered(stack).registrations if r.custom]


def _violations(
    validate: Any, resources: list[PolicyResource], config: dict[str, Any] | None = None
) -> list[str]:
    found: list[str] = []
    validate(StackValidationArgs(resources, config), lambda message, urn=None: found.append(message))
    return found


def _only(resources: list[PolicyResource], type_: str) -> PolicyResource:
    (found,) = [r for r in resources if r.resource_type == type_]
    return found


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_every_rendered_stack_complies_with_the_event_bus_rules(stack: str) -> None:
    resources = _resources(stack)
    assert _violations(rules.validate_durable_consumers, resources) == []
    assert _violations(rules.validate_stream_replicas, resources) == []


def test_a_consuming_workload_without_a_durable_consumer_is_a_violation() -> None:
    resources = [r for r in _resources("prod") if r.resource_type != rules.CONSUMER]
    (message,) = _violations(rules.validate_durable_consumers, resources)
    assert "playlist-service consumes user.created" in message


def test_a_consumer_filtering_another_subject_does_not_count() -> None:
    resources = _resources("prod")
    _only(resources, rules.CONSUMER).props["spec"]["filterSubject"] = "vinylhound.user.deleted"
    assert len(_violations(rules.validate_durable_consumers, resources)) == 1


def test_a_consumer_without_explicit_acks_is_a_violation() -> None:
    resources = _resources("prod")
    _only(resources, rules.CONSUMER).props["spec"]["ackPolicy"] = "none"
    (message,) = _violations(rules.validate_durable_consumers, resources)
    assert "'none'" in message


def test_no_consumer_is_required_when_the_consuming_workload_is_not_deployed() -> None:
    resources = [
        r
        for r in _resources("prod")
        if r.resource_type != rules.CONSUMER
        and not (r.resource_type == rules.DEPLOYMENT and r.props["metadata"]["name"] == "playlist-service")
    ]
    assert _violations(rules.validate_durable_consumers, resources) == []


def test_a_single_replica_stream_in_prod_is_a_violation() -> None:
    resources = _resources("prod")
    _only(resources, rules.STREAM).props["spec"]["replicas"] = 1.0  # wire form: floats
    (message,) = _violations(rules.validate_stream_replicas, resources)
    assert "VINYLHOUND_USER has 1 replica(s); prod needs at least 3" in message


def test_a_stream_without_replicas_counts_as_the_crd_default_of_one() -> None:
    resources = _resources("staging")
    del _only(resources, rules.STREAM).props["spec"]["replicas"]
    assert len(_violations(rules.validate_stream_replicas, resources)) == 1


def test_dev_may_run_single_replica_streams() -> None:
    resources = _resources("dev")
    assert _only(resources, rules.STREAM).props["spec"]["replicas"] == 1
    assert _violations(rules.validate_stream_replicas, resources) == []


def test_the_minimum_and_the_exempt_environments_are_knobs() -> None:
    prod = _resources("prod")
    assert len(_violations(rules.validate_stream_replicas, prod, {"minReplicas": 5})) == 1
    dev = _resources("dev")
    assert len(_violations(rules.validate_stream_replicas, dev, {"exemptEnvironments": []})) == 1


def test_the_module_exports_both_rules_as_stack_policies() -> None:
    assert [p.name for p in rules.POLICIES] == ["events-durable-consumers", "events-stream-replicas"]
