"""The pack's analyzer servicer (policies/servicer.py) answers every request exactly as
pulumi-policy's own servicer does, while converting each resource once per request.

Both servicers run in this process with the pack's real policies and are called with the requests
the engine sends (built by ``ops.analyzer``); their responses are compared field for field.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
from google.protobuf import empty_pb2, json_format
from pulumi.runtime.proto import analyzer_pb2
from pulumi_policy import EnforcementLevel, ReportViolation, StackValidationArgs, StackValidationPolicy
from pulumi_policy import policy as sdk
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE
from pulumi_policy.version import VERSION

from ops.analyzer import (
    Resource,
    analyze_request,
    analyze_stack_request,
    configure_request,
    load_config,
    policies_of,
    resolve_config,
)
from ops.check import resources_of
from policies import servicer
from policies.rules import PACK_NAME, POLICIES
from policies.servicer import SDK_VERSION, SdkServicer, SharedConversionServicer
from tests.conftest import PROJECT, ROOT, rendered
from tests.policy_baseline import baseline, mutated
from tests.test_policies import CASES, Case

#: The SDK handlers servicer.py reproduces, as they were when it was written (sha256 of their
#: source). A new pulumi-policy changes these: re-read them, update servicer.py and these.
SDK_SOURCES = {
    "Analyze": "75db9cf8fc9d158596909b9b3f77bf48815990a6f513f2bb35728a67e4d8a515",
    "AnalyzeStack": "3917a008482c2387d7da37f65d889970933e8df8efc57270559e20b36be837bf",
}


def _servicer(cls: Any, policies: list[Any], config: Mapping[str, Any]) -> Any:
    """A servicer of ``cls`` as ``PolicyPack`` builds it, configured as the CLI configures it."""
    built = cls(PACK_NAME, "0.0.1", policies, EnforcementLevel.MANDATORY)
    infos = policies_of(built.GetAnalyzerInfo(empty_pb2.Empty(), None))
    built.Configure(configure_request(resolve_config(infos, config)), None)
    return built


def _answers(cls: Any, resources: Iterable[Resource], config: Mapping[str, Any], policies: Any = None) -> Any:
    """Every ``Analyze`` answer, then ``AnalyzeStack``'s, as plain data."""
    built = _servicer(cls, POLICIES if policies is None else policies, config)
    resources = list(resources)
    answers = [built.Analyze(analyze_request(r), None) for r in resources]
    answers.append(built.AnalyzeStack(analyze_stack_request(resources), None))
    return [json_format.MessageToDict(a) for a in answers]


def _same_answers(resources: Iterable[Resource], config: Mapping[str, Any], policies: Any = None) -> None:
    resources = list(resources)
    expected = _answers(SdkServicer, resources, config, policies)
    assert _answers(SharedConversionServicer, resources, config, policies) == expected


def _stack_config(stack: str) -> dict[str, Any]:
    return load_config(ROOT / "policies" / "config" / f"{stack}.json")


def test_the_installed_sdk_is_the_release_the_servicer_reproduces() -> None:
    sources = {
        name: hashlib.sha256(inspect.getsource(getattr(SdkServicer, name)).encode()).hexdigest()
        for name in SDK_SOURCES
    }
    assert (VERSION, sources) == (SDK_VERSION, SDK_SOURCES), (
        "pulumi-policy changed: review policies/servicer.py against its new Analyze and AnalyzeStack"
    )


def test_install_serves_with_the_shared_conversion_servicer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sdk, "_PolicyAnalyzerServicer", SdkServicer)
    assert servicer.install() is SharedConversionServicer
    assert sdk._PolicyAnalyzerServicer is SharedConversionServicer


def test_another_sdk_release_keeps_the_sdk_servicer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sdk, "_PolicyAnalyzerServicer", SdkServicer)
    monkeypatch.setattr(servicer, "VERSION", "1.22.0")
    assert servicer.install() is SdkServicer


def test_each_resource_is_converted_once_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    converted: list[Any] = []
    convert = servicer._props

    def counted(struct: Any) -> Any:
        converted.append(struct)
        return convert(struct)

    monkeypatch.setattr(servicer, "_props", counted)
    resources = list(baseline().values())
    _answers(SharedConversionServicer, resources, _stack_config("prod"))
    # Once in its own Analyze request, once in the AnalyzeStack request: not once per policy.
    assert len(converted) == 2 * len(resources)


def test_the_baseline_gets_the_sdk_servicers_answers_under_every_stacks_config() -> None:
    for stack in ("dev", "staging", "prod", "local"):
        _same_answers(baseline().values(), _stack_config(stack))


@pytest.mark.parametrize("level", ["advisory", "mandatory", "remediate", "disabled"])
def test_a_level_set_for_all_policies_reaches_violations_as_the_sdk_reports_it(level: str) -> None:
    # A replica count of 1 violates resource and stack rules alike.
    one = mutated(baseline(), "deployment", lambda props: props["spec"].update(replicas=1))
    _same_answers(one.values(), {"all": level})


def test_an_unknown_value_a_rule_reads_is_reported_as_the_sdk_reports_it() -> None:
    def unknown_image(props: dict[str, Any]) -> None:
        props["spec"]["template"]["spec"]["containers"][0]["image"] = UNKNOWN_STRING_VALUE

    unknown = mutated(baseline(), "deployment", unknown_image)
    answers = _answers(SharedConversionServicer, unknown.values(), _stack_config("prod"))
    assert any("during preview" in d["message"] for a in answers for d in a.get("diagnostics", []))
    _same_answers(unknown.values(), _stack_config("prod"))


def _report_links(args: StackValidationArgs, report: ReportViolation) -> None:
    for r in args.resources:
        deps = {k: [d.urn for d in v] for k, v in r.property_dependencies.items()}
        parent = r.parent.urn if r.parent else None
        report(f"parent={parent} dependencies={[d.urn for d in r.dependencies]} by-property={deps}", r.urn)


def test_parents_and_dependencies_are_linked_as_the_sdk_links_them() -> None:
    links = StackValidationPolicy(
        name="links", description="Reports how resources are linked.", validate=_report_links
    )
    request = analyzer_pb2.AnalyzeStackRequest(
        resources=[
            analyzer_pb2.AnalyzerResource(type="t:m:A", urn="urn:a", name="a"),
            analyzer_pb2.AnalyzerResource(
                type="t:m:B",
                urn="urn:b",
                name="b",
                parent="urn:a",
                dependencies=["urn:a", "urn:gone"],
                propertyDependencies={
                    "x": analyzer_pb2.AnalyzerPropertyDependencies(urns=["urn:a", "urn:gone"])
                },
            ),
            analyzer_pb2.AnalyzerResource(type="t:m:C", urn="urn:c", name="c", parent="urn:gone"),
        ]
    )
    answers = [
        json_format.MessageToDict(_servicer(cls, [links], {}).AnalyzeStack(request, None))
        for cls in (SdkServicer, SharedConversionServicer)
    ]
    assert answers[0] == answers[1]
    assert "parent=urn:a dependencies=['urn:a'] by-property={'x': ['urn:a']}" in str(answers[1])


@pytest.mark.slow
@pytest.mark.parametrize("stack", PROJECT.stacks())
def test_every_stack_gets_the_sdk_servicers_answers(stack: str) -> None:
    _same_answers(resources_of(rendered(stack)), _stack_config(stack))


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[f"{c.policy}: {c.id}" for c in CASES])
def test_every_violation_case_gets_the_sdk_servicers_answers(case: Case) -> None:
    config = _stack_config("prod") | dict(case.overrides)
    _same_answers(case.apply(baseline()).values(), config)
