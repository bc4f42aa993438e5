"""The pack's analyzer service: pulumi-policy's own, converting each resource once per request.

pulumi-policy 1.21.0 turns every resource of a request from protobuf into Python again for every
policy it runs (``json_format.MessageToDict``, ``deserialize_properties``, the unknown-checking
proxies): ``Analyze`` once per resource policy, ``AnalyzeStack`` every resource once per stack
policy. With 21 resource and 19 stack rules that conversion was ~85% of the pack's time while the
rules themselves took a few percent.

``SharedConversionServicer`` overrides exactly those two handlers: it converts a request's
resources once and hands the same read-only views to every policy. Everything else is the SDK's:
its enforcement levels (per policy, from ``Configure``), its violation messages, severities and
diagnostics, its handling of unknown values and not-applicable reports, the gRPC server and the
port it prints. The rules never write to what they are given (``policies/rules/_support.py``
reads through ``Mapping``/``Sequence``), so sharing the views changes no result;
``tests/test_servicer.py`` proves the responses are byte-identical to the SDK's own servicer.

The override reads SDK internals (its private servicer, its helpers and name-mangled fields), so
it is used only with the release it was written against (``SDK_VERSION``); any other release runs
the SDK's own servicer, slower but correct, and the test of the SDK's source fails loudly in this
repository's venv until the override is reviewed against the new release.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from inspect import isawaitable
from typing import Any

from pulumi.runtime import proto
from pulumi_policy import policy as sdk
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy
from pulumi_policy.version import VERSION

#: The pulumi-policy release whose ``Analyze`` and ``AnalyzeStack`` this module reproduces.
SDK_VERSION = "1.21.0"

#: The SDK's own servicer class (``install`` replaces the module's name for it, not the class).
SdkServicer: Any = sdk._PolicyAnalyzerServicer


def _props(struct: Any) -> Any:
    """A Struct of resource properties as policies see it (the SDK's three steps, once). protobuf
    through the SDK's module: the pack's venv has it only as pulumi's dependency."""
    convert = sdk.json_format.MessageToDict  # type: ignore[attr-defined]
    return unknown_checking_proxy(deserialize_properties(convert(struct)))


class SharedConversionServicer(SdkServicer):  # type: ignore[misc]
    """pulumi-policy's analyzer servicer, with each request's resources converted once."""

    def _private(self, name: str) -> Any:
        # The SDK's double-underscore fields, mangled with its class name.
        return getattr(self, f"_PolicyAnalyzerServicer__{name}")

    def _enabled(self, kind: type) -> list[tuple[Any, Any]]:
        """The policies of ``kind`` to run, with the level their violations are reported at."""
        found = []
        for policy in self._private("policies"):
            level = self._get_enforcement_level(policy)
            if level == sdk.EnforcementLevel.DISABLED or not isinstance(policy, kind):
                continue
            found.append((policy, level))
        return found

    def _validate(self, policy: Any, args: Any, level: Any, response: Any) -> None:
        """Run one policy's ``validate`` and record its outcome, as the SDK does."""
        report = self._create_report_violation(
            response, policy.name, policy.description, level, policy.severity
        )
        try:
            result = policy.validate(args, report)
            if isawaitable(result):
                loop = asyncio.new_event_loop()
                try:
                    loop.run_until_complete(asyncio.ensure_future(result, loop=loop))
                finally:
                    loop.close()
        except UnknownValueError as err:
            name, version = self._private("policy_pack_name"), self._private("policy_pack_version")
            response.diagnostics.append(
                proto.AnalyzeDiagnostic(
                    policyName=policy.name,
                    policyPackName=name,
                    policyPackVersion=version,
                    message=(
                        f"can't run policy '{policy.name}' from policy pack "
                        f"'{name}@v{version}' during preview: {err.message}"
                    ),
                    urn="",
                    description=policy.description,
                    enforcementLevel=self._map_enforcement_level(sdk.EnforcementLevel.ADVISORY),
                )
            )
        except sdk._NotApplicableError as err:
            response.not_applicable.append(
                proto.PolicyNotApplicable(policy_name=policy.name, reason=err.reason or "")
            )

    def Analyze(self, request: Any, _context: Any) -> Any:  # noqa: N802 (the gRPC method's name)
        """One resource against every resource policy, its properties converted once."""
        self._configure_runtime_settings()
        response = proto.AnalyzeResponse()
        shared: list[Any] = []  # props, opts, provider: built when the first policy needs them
        for policy, level in self._enabled(sdk.ResourceValidationPolicy):
            if not policy.has_validation():
                response.not_applicable.append(
                    proto.PolicyNotApplicable(
                        policy_name=policy.name, reason="Policy does not implement validate"
                    )
                )
                continue
            if level == sdk.EnforcementLevel.REMEDIATE:
                # Still violated after remediation: reported as mandatory, as the SDK does.
                level = sdk.EnforcementLevel.MANDATORY
            if not shared:
                shared = [
                    _props(request.properties),
                    self._get_resource_options(request),
                    self._get_provider_resource(request),
                ]
            props, opts, provider = shared
            args = sdk.ResourceValidationArgs(
                request.type,
                props,
                request.urn,
                request.name,
                opts,
                provider,
                self._get_policy_config(policy.name),
                self._private("stack_tags"),
            )
            self._validate(policy, args, level, response)
        return response

    def AnalyzeStack(self, request: Any, _context: Any) -> Any:  # noqa: N802 (the gRPC method's name)
        """Every stack policy over the stack's resources, converted once for all of them."""
        self._configure_runtime_settings()
        response = proto.AnalyzeResponse()
        resources: list[Any] | None = None
        for policy, level in self._enabled(sdk.StackValidationPolicy):
            if level == sdk.EnforcementLevel.REMEDIATE:
                # Stack policies cannot remediate: reported as mandatory, as the SDK does.
                level = sdk.EnforcementLevel.MANDATORY
            if resources is None:
                resources = self._stack_resources(request.resources)
            args = sdk.StackValidationArgs(
                # Each policy gets its own list, as from the SDK; the resources are shared.
                list(resources),
                self._get_policy_config(policy.name),
                self._private("stack_tags"),
            )
            self._validate(policy, args, level, response)
        return response

    def _stack_resources(self, wire: Sequence[Any]) -> list[Any]:
        """The request's resources as ``PolicyResource``s, parents and dependencies linked by URN."""
        resources = [
            sdk.PolicyResource(
                r.type,
                _props(r.properties),
                r.urn,
                r.name,
                self._get_resource_options(r),
                self._get_provider_resource(r),
                None,
                [],
                {},
            )
            for r in wire
        ]
        by_urn = {r.urn: r for r in resources}
        for resource, r in zip(resources, wire, strict=True):
            # Unknown URNs are left out, as the SDK leaves them out.
            resource.parent = by_urn.get(r.parent) if r.parent else None
            resource.dependencies.extend(by_urn[d] for d in r.dependencies if d in by_urn)
            for key, deps in r.propertyDependencies.items():
                resource.property_dependencies[key] = [by_urn[d] for d in deps.urns if d in by_urn]
        return resources


def install() -> Callable[..., Any]:
    """Make ``PolicyPack`` serve with ``SharedConversionServicer`` when the installed SDK is the
    release it was written against; returns the servicer class ``PolicyPack`` will use."""
    if VERSION == SDK_VERSION:
        # PolicyPack looks its servicer class up in its module when it is constructed.
        sdk._PolicyAnalyzerServicer = SharedConversionServicer  # type: ignore[misc]
    servicer: Callable[..., Any] = sdk._PolicyAnalyzerServicer
    return servicer
