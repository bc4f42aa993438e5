"""The contract gate in the rendered program: before an endpoint takes live reads at a service, a
Job in the mesh compares the service's answers with the monolith's, and the routes that move those
reads wait for it in the recorded dependency graph (a failed Job fails ``pulumi up`` with the
routes unmoved)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra import contract_check
from infra.targets.kubernetes import traffic
from ops.analyzer import PolicyPackProcess, load_config
from ops.check import StackReport, check_run
from ops.mockrun import Registration, Run
from ops.render import is_manifest, manifest
from tests.catalogs import run_config, serving_alike, stack_config
from tests.conftest import PROJECT, rendered
from tests.istio_routing import route
from tests.test_contract import MONOLITH, SERVICE, stub

JOB = "kubernetes:batch/v1:Job"
VIRTUAL_SERVICE = "kubernetes:networking.istio.io/v1:VirtualService"
ALBUMS = "GET /api/v1/albums"


def run_with(
    stack: str,
    weights: dict[str, int],
    image: dict[str, str] | None = None,
    contract_image: str | None = None,
) -> Run:
    """``stack`` with some services' cutover weights (and image tags, the contract image) replaced."""
    raw = stack_config(stack)
    for service, weight in weights.items():
        raw["services"][service]["cutover"] = {"weight": weight}
    for service, tag in (image or {}).items():
        raw["services"][service]["image"]["tag"] = tag
    if contract_image is not None:
        raw.setdefault("traffic", {})["contractCheckImage"] = contract_image
    return run_config(stack, raw)


@pytest.fixture(scope="module")
def moved() -> Run:
    """prod with catalog-service serving its album list alike and taking 10 % of it; rendered once
    for the module (a run is pure data, and every test here only reads it)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        serving_alike(monkeypatch, "catalog-service", ALBUMS)
        return run_with("prod", {"catalog-service": 10})


def of_type(run: Run, type_: str) -> dict[str, Registration]:
    return {
        manifest(r)["metadata"]["name"]: r for r in run.registrations if r.type == type_ and is_manifest(r)
    }


def objects(run: Run, kind: str) -> dict[str, dict[str, Any]]:
    return {
        m["metadata"]["name"]: m
        for m in (manifest(r) for r in run.registrations if is_manifest(r))
        if m["kind"] == kind
    }


def test_the_routes_that_move_reads_wait_for_the_contract_job(moved: Run) -> None:
    job = of_type(moved, JOB)["catalog-service-contract-check"]
    edge = of_type(moved, VIRTUAL_SERVICE)["edge"]
    assert route(manifest(edge)["spec"], "/api/v1/albums").weights == {"catalog-service": 10, "monolith": 90}
    assert job.urn in edge.dependencies


def test_the_contract_job_waits_for_the_monolith_and_the_service_it_checks(moved: Run) -> None:
    job = of_type(moved, JOB)["catalog-service-contract-check"]
    # Pulumi awaits a Deployment's rollout, so depending on it means the new pods are serving.
    deployments = of_type(moved, "kubernetes:apps/v1:Deployment")
    for name in ("monolith", "catalog-service"):
        assert deployments[name].urn in job.dependencies, name
    assert deployments["user-service"].urn not in job.dependencies


def test_the_contract_job_compares_the_moved_reads_from_the_shipped_script(moved: Run) -> None:
    job = objects(moved, "Job")["catalog-service-contract-check"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "python:3.13.9-alpine3.22"
    assert container["command"][:2] == ["python", "/contract/contract_check.py"]
    assert container["command"][-1] == ALBUMS
    shipped = objects(moved, "ConfigMap")["contract-check"]["data"]["contract_check.py"]
    assert shipped == Path(contract_check.__file__).read_text()


def test_a_stack_that_moves_no_reads_renders_no_contract_job() -> None:
    assert not [n for n in of_type(rendered("prod"), JOB) if n.endswith("contract-check")]


def test_only_the_monolith_and_the_checked_service_admit_the_contract_check(moved: Run) -> None:
    principal = f"cluster.local/ns/vinylhound/sa/{traffic.CONTRACT_CHECK}"
    policies = objects(moved, "AuthorizationPolicy")
    admitted = {
        name
        for name, p in policies.items()
        if any(principal in s["source"]["principals"] for r in p["spec"]["rules"] for s in r.get("from", []))
    }
    assert admitted == {"monolith", "catalog-service"}


def test_the_job_is_awaited_longer_than_it_may_run(moved: Run) -> None:
    job = of_type(moved, JOB)["catalog-service-contract-check"]
    spec = manifest(job)
    assert "pulumi.com/skipAwait" not in (spec["metadata"].get("annotations") or {})
    create, update, _ = job.custom_timeouts
    for timeout in (create, update):
        assert int(timeout.removesuffix("m")) * 60 > spec["spec"]["activeDeadlineSeconds"]


def test_the_job_runs_in_the_mesh_as_non_root_with_a_read_only_root(moved: Run) -> None:
    template = objects(moved, "Job")["catalog-service-contract-check"]["spec"]["template"]
    assert template["metadata"]["annotations"]["sidecar.istio.io/inject"] == "true"
    assert template["spec"]["serviceAccountName"] == traffic.CONTRACT_CHECK
    assert template["spec"]["securityContext"]["runAsNonRoot"] is True
    (container,) = template["spec"]["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "--quit-sidecar" in container["command"]


def test_a_new_service_image_changes_the_job_so_the_check_runs_again(
    moved: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    serving_alike(monkeypatch, "catalog-service", ALBUMS)
    before = objects(moved, "Job")["catalog-service-contract-check"]
    newer = run_with("prod", {"catalog-service": 10}, image={"catalog-service": "1.4.4"})
    after = objects(newer, "Job")["catalog-service-contract-check"]
    annotation = "vinylhound.dev/contract-sha256"
    assert (
        before["spec"]["template"]["metadata"]["annotations"][annotation]
        != after["spec"]["template"]["metadata"]["annotations"][annotation]
    )


def test_only_the_contract_check_pods_reach_the_checked_workloads_and_only_them(moved: Run) -> None:
    policies = objects(moved, "NetworkPolicy")
    own = policies[traffic.CONTRACT_CHECK]["spec"]
    assert own["policyTypes"] == ["Ingress", "Egress"] and not own.get("ingress")
    reached = {
        p["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
        for rule in own["egress"]
        for p in rule["to"]
        if "podSelector" in p and "namespaceSelector" not in p
    }
    assert reached == {"monolith", "catalog-service"}
    admitting = {
        name
        for name, p in policies.items()
        for rule in p["spec"].get("ingress", [])
        for peer in rule.get("from", [])
        if peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
        == traffic.CONTRACT_CHECK
    }
    assert admitting == {"monolith", "catalog-service"}


def test_with_the_api_gateway_the_mesh_routes_wait_for_the_contract_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    serving_alike(monkeypatch, "catalog-service", ALBUMS)
    raw = stack_config("dev")
    raw["services"]["catalog-service"]["cutover"] = {"weight": 10}
    raw["databases"]["migration"]["catalog-service"] = "replicating"
    run = run_config("dev", raw)
    job = of_type(run, JOB)["catalog-service-contract-check"]
    mesh = of_type(run, VIRTUAL_SERVICE)["catalog-service-routes"]
    assert route(manifest(mesh)["spec"], "/api/v1/albums").weights == {"catalog-service": 10, "monolith": 90}
    assert job.urn in mesh.dependencies


def test_the_rendered_job_fails_on_a_mismatch_and_its_log_names_the_endpoint_and_keys(
    moved: Run, tmp_path: Path
) -> None:
    # The Job's own command and shipped script, pointed at loopback stubs that answer like the
    # monolith and like today's catalog-service.
    (container,) = objects(moved, "Job")["catalog-service-contract-check"]["spec"]["template"]["spec"][
        "containers"
    ]
    script = tmp_path / "contract_check.py"
    script.write_text(objects(moved, "ConfigMap")["contract-check"]["data"]["contract_check.py"])
    command = list(container["command"])
    assert command[0] == "python"
    with contextlib.ExitStack() as stack:
        command[command.index("--monolith") + 1] = stack.enter_context(
            contextlib.contextmanager(stub)(MONOLITH)
        )
        command[command.index("--service") + 1] = stack.enter_context(
            contextlib.contextmanager(stub)(SERVICE)
        )
        command[:2] = [sys.executable, str(script)]
        run = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 1
    assert "FAIL GET /api/v1/albums" in run.stdout
    assert "albums[].trackList: missing at the service" in run.stdout


#: A well-formed digest for the test (prod's policy requires one; the operator pins the real one).
TEST_DIGEST = "sha256:" + "0" * 64


def prod_check(run: Run, pack: PolicyPackProcess) -> StackReport:
    config = PROJECT.root / "policies" / "config" / "prod.json"
    return check_run(run, pack, load_config(config), str(config))


def test_a_prod_stack_with_a_contract_job_passes_the_schemas_and_every_mandatory_policy(
    monkeypatch: pytest.MonkeyPatch, policy_pack: PolicyPackProcess
) -> None:
    serving_alike(monkeypatch, "catalog-service", ALBUMS)
    pinned = f"python:3.13.9-alpine3.22@{TEST_DIGEST}"
    report = prod_check(run_with("prod", {"catalog-service": 10}, contract_image=pinned), policy_pack)
    assert [(s.kind, s.name, s.message) for s in report.schemas if s.status == "invalid"] == []
    assert [d for d in report.diagnostics if d.mandatory] == []


def test_prods_policy_refuses_a_contract_job_image_without_a_digest(
    moved: Run, policy_pack: PolicyPackProcess
) -> None:
    refused = [d for d in prod_check(moved, policy_pack).diagnostics if d.mandatory]
    assert [(d.policy, d.urn.rsplit("::", 1)[1]) for d in refused] == [
        ("pinned-images", "contract-gate-catalog-service")
    ]
