"""``vinylhound check``: every stack of the repository passes; broken stacks fail for the right reason."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from ops.analyzer import (
    AnalyzerError,
    PolicyConfigError,
    PolicyPackProcess,
    _struct,
    analyze_request,
    analyze_stack_request,
    load_config,
    resolve_config,
)
from ops.check import (
    StackReport,
    check_run,
    check_stack,
    check_stacks,
    config_path,
    resources_of,
    validate_schemas,
)
from ops.cli import app
from ops.mockrun import Run
from ops.project import Project
from tests.conftest import KUBE_STACKS, PROJECT, ROOT, rendered


@pytest.fixture
def pack(policy_pack: PolicyPackProcess) -> PolicyPackProcess:
    """The session's running pack (see conftest)."""
    return policy_pack


@pytest.mark.slow
@pytest.mark.parametrize("stack", PROJECT.stacks())
def test_every_stack_of_the_repository_passes_the_check(pack: PolicyPackProcess, stack: str) -> None:
    report = check_stack(PROJECT, stack, pack)
    assert report.errors == [] and report.schema_errors == []
    assert [(d.policy, d.urn, d.detail) for d in report.mandatory] == []
    assert report.passed


@pytest.mark.parametrize("stack", PROJECT.stacks())
def test_every_stack_has_a_policy_config_that_fits_the_pack(pack: PolicyPackProcess, stack: str) -> None:
    resolved = resolve_config(pack.policies, load_config(config_path(PROJECT, stack)))
    assert set(resolved) == {p.name for p in pack.policies}


# --- prod, broken after rendering: what the pack must catch even if config validation missed it ---

# The slow lane (`make test-slow`, .ci/run) runs these: each sends the whole prod stack through the
# policy pack's process (1-2 s of the pack's CPU each). Every rule has its own cases on small inputs
# in test_policies.py; test_a_schema_error_fails_the_check keeps a whole-prod check in the fast lane.
WHOLE_PROD = pytest.mark.slow


def _edit(run: Run, kind: str, name: str, change: Any) -> Run:
    """A copy of ``run`` where ``change(inputs)`` edited the registration of ``kind`` ``name``."""
    registrations = []
    for reg in run.registrations:
        if reg.inputs.get("kind") == kind and (reg.inputs.get("metadata") or {}).get("name") == name:
            inputs = json.loads(json.dumps(reg.inputs))
            change(inputs)
            reg = dataclasses.replace(reg, inputs=inputs)
        registrations.append(reg)
    return Run(stack=run.stack, registrations=registrations, exports=run.exports)


def _drop(run: Run, kind: str, name: str) -> Run:
    keep = [
        r
        for r in run.registrations
        if not (r.inputs.get("kind") == kind and (r.inputs.get("metadata") or {}).get("name") == name)
    ]
    return Run(stack=run.stack, registrations=keep, exports=run.exports)


def _container(inputs: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = inputs["spec"]["template"]["spec"]["containers"][0]
    return result


def _check_prod(pack: PolicyPackProcess, run: Run) -> set[tuple[str, str, str]]:
    report = check_run(run, pack, load_config(config_path(PROJECT, "prod")), "prod.json")
    return {(d.policy, d.level, d.urn.rsplit("::", 1)[-1]) for d in report.mandatory}


@WHOLE_PROD
def test_prod_with_one_replica_fails_minimum_replicas(pack: PolicyPackProcess) -> None:
    run = _drop(rendered("prod"), "HorizontalPodAutoscaler", "user-service")
    run = _edit(run, "Deployment", "user-service", lambda i: i["spec"].update(replicas=1))
    assert ("minimum-replicas", "mandatory", "user-service-deployment") in _check_prod(pack, run)


@WHOLE_PROD
def test_prod_with_an_image_tagged_latest_fails_pinned_images(pack: PolicyPackProcess) -> None:
    run = _edit(
        rendered("prod"),
        "Deployment",
        "catalog-service",
        lambda i: _container(i).update(image="ghcr.io/x/y:latest"),
    )
    assert ("pinned-images", "mandatory", "catalog-service-deployment") in _check_prod(pack, run)


@WHOLE_PROD
def test_prod_with_a_secret_in_plain_env_fails_no_plain_secrets(pack: PolicyPackProcess) -> None:
    def plain_secret(inputs: dict[str, Any]) -> None:
        for var in _container(inputs)["env"]:
            if var["name"] == "JWT_SECRET":
                var.pop("valueFrom")
                var["value"] = "not-so-secret"

    run = _edit(rendered("prod"), "Deployment", "user-service", plain_secret)
    assert ("no-plain-secrets-in-env", "mandatory", "user-service-deployment") in _check_prod(pack, run)


@WHOLE_PROD
def test_prod_without_a_network_policy_fails_coverage(pack: PolicyPackProcess) -> None:
    # The namespace's default deny selects every pod too: only without both is a pod uncovered.
    run = _drop(_drop(rendered("prod"), "NetworkPolicy", "rating-service"), "NetworkPolicy", "default-deny")
    assert ("network-policy-coverage", "mandatory", "rating-service-deployment") in _check_prod(pack, run)


@WHOLE_PROD
def test_prod_without_its_default_deny_fails(pack: PolicyPackProcess) -> None:
    run = _drop(rendered("prod"), "NetworkPolicy", "default-deny")
    assert ("namespace-default-deny", "mandatory", "platform-namespace") in _check_prod(pack, run)


def _findings_about(findings: set[tuple[str, str, str]], policy: str, subject: str) -> list[str]:
    return [urn for name, level, urn in findings if (name, level) == (policy, "mandatory") and subject in urn]


@WHOLE_PROD
def test_prod_with_a_circuit_breaker_removed_fails_circuit_breaker(pack: PolicyPackProcess) -> None:
    def remove(inputs: dict[str, Any]) -> None:
        del inputs["spec"]["trafficPolicy"]["outlierDetection"]

    run = _edit(rendered("prod"), "DestinationRule", "rating-service", remove)
    assert _findings_about(_check_prod(pack, run), "circuit-breaker", "rating-service")


@WHOLE_PROD
def test_prod_with_backups_off_fails_database_backups(pack: PolicyPackProcess) -> None:
    def remove(inputs: dict[str, Any]) -> None:
        inputs["spec"].pop("backup", None)

    run = _drop(rendered("prod"), "ScheduledBackup", "rating-service-db-backup")
    run = _edit(run, "Cluster", "rating-service-db", remove)
    assert _findings_about(_check_prod(pack, run), "database-backups", "rating-service-db")


@WHOLE_PROD
def test_prod_without_its_durable_consumer_fails_for_the_consuming_workload(pack: PolicyPackProcess) -> None:
    # The policy reads the program's vinylhound.dev/consumes annotation, not the catalog.
    run = _drop(rendered("prod"), "Consumer", "playlist-service-vinylhound-user")
    found = {f for f in _check_prod(pack, run) if f[0] == "events-durable-consumers"}
    assert found == {("events-durable-consumers", "mandatory", "playlist-service-deployment")}


@WHOLE_PROD
def test_prod_with_a_single_replica_stream_fails_stream_replicas(pack: PolicyPackProcess) -> None:
    run = _edit(rendered("prod"), "Stream", "vinylhound-user", lambda i: i["spec"].update(replicas=1))
    assert ("events-stream-replicas", "mandatory", "event-bus-stream-vinylhound-user") in _check_prod(
        pack, run
    )


@pytest.mark.slow
@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_the_rendered_event_bus_raises_no_finding_not_even_an_advisory_one(
    pack: PolicyPackProcess, stack: str
) -> None:
    report = check_run(rendered(stack), pack, load_config(config_path(PROJECT, stack)), f"{stack}.json")
    assert [d for d in report.diagnostics if d.policy.startswith("events-")] == []


def test_a_schema_error_fails_the_check(pack: PolicyPackProcess) -> None:
    run = _edit(rendered("prod"), "Service", "user-service", lambda i: i["spec"].update(typo=True))
    report = check_run(run, pack, load_config(config_path(PROJECT, "prod")), "prod.json")
    assert [(s.kind, s.name) for s in report.schema_errors] == [("Service", "vinylhound/user-service")]
    assert not report.passed


def _models_built(api_version: str, kind: str) -> list[str]:
    """The generated model classes a fresh process creates to check one ``kind`` object, and any
    generated module it imported whole."""
    script = (
        "import sys\n"
        "from pydantic import BaseModel\n"
        "from ops.crds import model_for\n"
        f"assert model_for({api_version!r}, {kind!r}) is not None\n"
        "whole = [m for m in sys.modules if m.startswith('cloudcoil.models.') and '.v' in m]\n"
        "ours = [m for n, m in sys.modules.items() if n.startswith('ops.crds.models.')]\n"
        "models = [n for m in ours for n, v in vars(m).items() if isinstance(v, type)"
        " and issubclass(v, BaseModel) and v.__module__ == m.__name__]\n"
        "print(*sorted(whole + models))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout.split()


def test_checking_a_custom_resource_creates_only_the_classes_its_kind_needs() -> None:
    # The generated packages' __init__s would build every version of every Istio group, and the
    # version module every kind of the group (Gateway, ServiceEntry, Sidecar, ...).
    built = _models_built("networking.istio.io/v1", "VirtualService")
    assert {"VirtualService", "VirtualServiceSpec"} <= set(built)
    assert not {"Gateway", "ServiceEntry", "Sidecar", "DestinationRule"} & set(built)
    assert not [m for m in built if m.startswith("cloudcoil.")]


def test_a_custom_resource_of_another_version_is_still_checked_against_its_models() -> None:
    built = _models_built("networking.istio.io/v1beta1", "Sidecar")
    assert "Sidecar" in built and "VirtualService" not in built


# --- prod, broken in its stack config ---------------------------------------------------------


def _project_with(tmp_path: Path, stack: str, change: Any) -> Project:
    """A copy of the project whose stack file ``change`` edited (the program is the repository's)."""
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copytree(ROOT / "stacks", tmp_path / "stacks")
    shutil.copytree(ROOT / "policies" / "config", tmp_path / "policies" / "config")
    path = tmp_path / "stacks" / f"Pulumi.{stack}.yaml"
    data = yaml.safe_load(path.read_text())
    change(data["config"]["vinylhound:platform"])
    path.write_text(yaml.safe_dump(data))
    return Project(tmp_path)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c["services"]["user-service"].update(image={"tag": "latest"}), "not pinned"),
        (
            lambda c: c["services"]["user-service"].update(replicas=1, autoscaling=None),
            "below the prod minimum",
        ),
        (lambda c: c["databases"].pop("backup"), "prod requires backups"),
    ],
    ids=["image tag latest", "one replica", "backups off"],
)
def test_prod_config_mutations_fail_the_check_before_anything_renders(
    pack: PolicyPackProcess, tmp_path: Path, change: Any, expected: str
) -> None:
    def apply(config: dict[str, Any]) -> None:
        change(config)
        for svc in config["services"].values():
            if svc.get("autoscaling", "") is None:
                svc.pop("autoscaling")

    report = check_stack(_project_with(tmp_path, "prod", apply), "prod", pack)
    assert not report.passed and any(expected in line for line in report.errors)


# --- the command --------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_command_writes_a_json_report_and_exits_zero_on_a_passing_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["check", "dev", "--json", str(out)])
    assert result.exit_code == 0, result.output
    (stack,) = json.loads(out.read_text())["stacks"]
    assert stack["stack"] == "dev" and stack["passed"] is True and stack["resources"] > 0
    assert "dev: PASS" in result.output


@pytest.mark.slow
def test_the_command_exits_one_and_names_the_problem_when_a_stack_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project_with(
        tmp_path, "prod", lambda c: c["services"]["monolith"]["image"].update(tag="latest")
    )
    shutil.copytree(ROOT / "policies", tmp_path / "policies", dirs_exist_ok=True)
    monkeypatch.chdir(project.root)
    result = CliRunner().invoke(app, ["check", "prod"])
    assert result.exit_code == 1
    assert "services.monolith.image.tag" in result.output and "prod: FAIL" in result.output


def test_a_policy_config_naming_an_unknown_policy_or_a_bad_knob_is_rejected(pack: PolicyPackProcess) -> None:
    with pytest.raises(PolicyConfigError, match="no-such-rule: no such policy"):
        resolve_config(pack.policies, {"no-such-rule": "mandatory"})
    with pytest.raises(PolicyConfigError, match=r"minimum-replicas\.minReplicas"):
        resolve_config(pack.policies, {"minimum-replicas": {"minReplicas": "three"}})


def test_a_policy_entry_overrides_all_which_overrides_the_pack_default(pack: PolicyPackProcess) -> None:
    resolved = resolve_config(
        pack.policies, {"all": "advisory", "health-probes": {"enforcementLevel": "disabled"}}
    )
    assert resolved["health-probes"].level == "disabled"
    assert resolved["pinned-images"].level == "advisory"
    assert resolve_config(pack.policies, {})["pinned-images"].level == "mandatory"
    assert resolved["minimum-replicas"].properties == {"minReplicas": 2, "exempt": []}


def test_custom_resources_are_checked_against_their_crds_or_reported_unchecked() -> None:
    rule = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "user-service", "namespace": "vinylhound"},
        "spec": {"host": "user-service", "trafficPolicy": {"outlierDetection": {"consecutive5xxErrors": 5}}},
    }
    typo = json.loads(json.dumps(rule))
    typo["spec"]["trafficPolicy"]["outlierDetecton"] = {}
    bad_enum = json.loads(json.dumps(rule))
    bad_enum["spec"]["trafficPolicy"]["tls"] = {"mode": "MUTUAL_PLEASE"}
    cnpg = {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {"name": "db"}, "spec": {}}
    statuses = [r.status for r in validate_schemas([rule, typo, bad_enum, cnpg])]
    assert statuses == ["ok", "invalid", "invalid", "unchecked"]


@pytest.mark.slow
def test_local_reports_a_port_published_on_every_interface_as_advisory_only(pack: PolicyPackProcess) -> None:
    run = rendered("local")
    (first, *_) = [r for r in run.registrations if r.type == "docker:index/container:Container"]
    inputs = json.loads(json.dumps(first.inputs))
    inputs["ports"][0]["ip"] = "0.0.0.0"
    edited = Run(
        stack="local",
        registrations=[dataclasses.replace(r, inputs=inputs) if r is first else r for r in run.registrations],
    )
    report = check_run(edited, pack, load_config(config_path(PROJECT, "local")), "local.json")
    found = {(d.policy, d.level, d.urn) for d in report.diagnostics}
    assert found == {("docker-ports-on-loopback", "advisory", first.urn)} and report.passed


def test_requests_built_from_converted_properties_are_the_engines_requests() -> None:
    # PolicyPackProcess.run converts each resource's properties once for Analyze and AnalyzeStack.
    resources = resources_of(rendered("dev"))
    converted = {r.urn: _struct(r.properties) for r in resources}
    once = [analyze_request(r, converted[r.urn]) for r in resources]
    assert once == [analyze_request(r) for r in resources]
    assert analyze_stack_request(resources, converted) == analyze_stack_request(resources)


# --- several stacks, one pack ---------------------------------------------------------------


def _facts(report: StackReport) -> tuple[str, list[Any], list[Any], list[str]]:
    return report.stack, report.diagnostics, report.schemas, report.errors


def test_stacks_checked_together_report_what_each_reports_alone(pack: PolicyPackProcess) -> None:
    # One pack, configured stack after stack: the reports must not mix.
    together = check_stacks(PROJECT, ["prod", "local"], pack)
    alone = [check_stack(PROJECT, "prod", pack), check_stack(PROJECT, "local", pack)]
    assert [_facts(r) for r in together] == [_facts(r) for r in alone]


def test_a_pack_not_yet_running_is_started_by_the_check() -> None:
    pack = PolicyPackProcess(ROOT / "policies")
    try:
        (report,) = check_stacks(PROJECT, ["local"], pack)
        assert pack.pid is not None and report.passed
    finally:
        pack.close()


def test_a_pack_that_does_not_start_fails_the_check(tmp_path: Path) -> None:
    (tmp_path / "PulumiPolicy.yaml").write_text("runtime: python\n")
    (tmp_path / "__main__.py").write_text("raise SystemExit('broken pack')\n")
    with pytest.raises(AnalyzerError, match="did not start: broken pack"):
        check_stacks(PROJECT, ["local"], PolicyPackProcess(tmp_path))
