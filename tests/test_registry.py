"""Consul secured: ACLs with a generated bootstrap token, TLS, gossip encryption; Prometheus still
scrapes it (a token of its own, over HTTPS); its namespace denies by default.

The chart's behaviour these values rely on was read in hashicorp/consul-k8s at v1.8.2 (the pinned
chart): ``server-statefulset.yaml`` takes ``global.acls.bootstrapToken`` as the servers'
``initial_management`` token, ``server-acl-init-job.yaml`` passes ``-sync-catalog=true`` so catalog
sync gets its ACL role, ``tls-init-job.yaml`` writes ``consul-ca-cert`` and the servers'
certificate with ``consul-server.consul.svc`` among its names.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.targets.kubernetes import registry
from ops.mockrun import Registration
from tests.conftest import KUBE_STACKS, manifests_of, rendered
from tests.netpol import Pod
from tests.test_network_policies import API_SERVER, DNS, INTERNET, PROMETHEUS, world

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
RANDOM_BYTES = "random:index/randomBytes:RandomBytes"


def consul_release(stack: str) -> Registration:
    registrations = rendered(stack).registrations
    (release,) = [r for r in registrations if r.type == HELM_RELEASE and r.inputs.get("name") == "consul"]
    return release


def consul_objects(stack: str, kind: str) -> dict[str, dict[str, Any]]:
    return {
        m["metadata"]["name"]: m
        for m in manifests_of(rendered(stack))
        if m["kind"] == kind and m["metadata"].get("namespace") == "consul"
    }


def urn_of(stack: str, kind: str, name: str) -> str:
    (urn,) = [
        r.urn
        for r in rendered(stack).registrations
        if r.type == f"kubernetes:core/v1:{kind}"
        and r.inputs.get("metadata", {}).get("name") == name
        and r.inputs.get("metadata", {}).get("namespace", "consul") == "consul"
    ]
    return urn


# --- the chart's values -----------------------------------------------------------------------


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_consul_denies_by_default_with_acls_bootstrapped_from_the_generated_token(stack: str) -> None:
    values = consul_release(stack).inputs["values"]
    acls = values["global"]["acls"]
    assert acls["manageSystemACLs"] is True
    assert acls["bootstrapToken"] == {"secretName": "consul-acl-bootstrap-token", "secretKey": "token"}
    secret = consul_objects(stack, "Secret")["consul-acl-bootstrap-token"]
    assert secret["stringData"] == {"token": "[secret]"}


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_catalog_sync_stays_on_so_server_acl_init_gives_it_a_token(stack: str) -> None:
    values = consul_release(stack).inputs["values"]
    assert values["syncCatalog"]["enabled"] is True and values["global"]["acls"]["manageSystemACLs"] is True


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_consul_verifies_tls_on_rpc_and_serves_its_api_on_https_only(stack: str) -> None:
    tls = consul_release(stack).inputs["values"]["global"]["tls"]
    assert tls == {"enabled": True, "verify": True, "httpsOnly": True}


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_gossip_is_encrypted_with_a_generated_32_byte_key(stack: str) -> None:
    values = consul_release(stack).inputs["values"]
    assert values["global"]["gossipEncryption"] == {
        "secretName": "consul-gossip-encryption-key",
        "secretKey": "key",
    }
    assert consul_objects(stack, "Secret")["consul-gossip-encryption-key"]["stringData"] == {
        "key": "[secret]"
    }
    lengths = {r.name: r.inputs["length"] for r in rendered(stack).registrations if r.type == RANDOM_BYTES}
    assert lengths == {
        "registry-bootstrap-token": 16,
        "registry-gossip-key": 32,
        "registry-metrics-token": 16,
    }


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_the_servers_start_only_once_both_secrets_they_read_exist(stack: str) -> None:
    dependencies = consul_release(stack).dependencies
    for name in ("consul-acl-bootstrap-token", "consul-gossip-encryption-key"):
        assert urn_of(stack, "Secret", name) in dependencies
    assert urn_of(stack, "Namespace", "consul") in dependencies
    assert consul_release(stack).inputs.get("createNamespace") in (None, False)


def test_a_token_secret_id_is_the_uuid_consul_requires() -> None:
    # command/acl/token/create: "-secret ... It must be a UUID".
    token = registry.secret_id("00112233445566778899aabbccddeeff")
    assert token == "00112233-4455-6677-8899-aabbccddeeff"
    assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", token)


# --- the metrics scrape -----------------------------------------------------------------------


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_prometheus_scrapes_consul_over_https_with_its_own_token(stack: str) -> None:
    monitor = consul_objects(stack, "PodMonitor")["consul-server"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["scheme"] == "https" and endpoint["port"] == "https"
    assert endpoint["path"] == "/v1/agent/metrics" and endpoint["params"] == {"format": ["prometheus"]}
    credentials = endpoint["authorization"]["credentials"]
    assert endpoint["authorization"]["type"] == "Bearer"
    # The operator reads the Secret from the monitor's own namespace; the program writes it there.
    assert credentials == {"name": "consul-metrics-acl-token", "key": "token"}
    assert consul_objects(stack, "Secret")["consul-metrics-acl-token"]["stringData"] == {"token": "[secret]"}
    assert endpoint["tlsConfig"] == {
        "ca": {"secret": {"name": "consul-ca-cert", "key": "tls.crt"}},
        "serverName": "consul-server.consul.svc",
    }


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_the_metrics_token_job_runs_after_the_release_with_the_bootstrap_and_metrics_tokens(
    stack: str,
) -> None:
    (job,) = [
        r
        for r in rendered(stack).registrations
        if r.type == "kubernetes:batch/v1:Job" and r.name == "registry-metrics-token"
    ]
    assert consul_release(stack).urn in job.dependencies
    assert urn_of(stack, "Secret", "consul-metrics-acl-token") in job.dependencies
    pod = job.inputs["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert refs == {
        "CONSUL_HTTP_TOKEN": {"name": "consul-acl-bootstrap-token", "key": "token"},
        "METRICS_TOKEN": {"name": "consul-metrics-acl-token", "key": "token"},
    }
    plain = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    assert plain["CONSUL_HTTP_ADDR"] == "https://consul-server.consul.svc:8501"
    assert pod["volumes"][0]["secret"]["secretName"] == "consul-ca-cert"
    assert pod["automountServiceAccountToken"] is False and pod["securityContext"]["runAsUser"] > 10000


def fake_cluster(tmp_path: Path, failures: int) -> tuple[dict[str, str], Path]:
    """A PATH with the strict ``consul`` double (tests/fake_consul.py) and an instant ``sleep``,
    and the Job's environment with the Secrets' values and the CA mount under ``tmp_path``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    consul = bin_dir / "consul"
    consul.write_text(f'#!/bin/sh\nexec {sys.executable} {Path(__file__).parent / "fake_consul.py"} "$@"\n')
    (bin_dir / "sleep").write_text("#!/bin/sh\nexit 0\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    ca = tmp_path / "ca" / "tls.crt"
    ca.parent.mkdir()
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    state = tmp_path / "state.json"
    management = registry.secret_id("0" * 31 + "1")
    state.write_text(
        json.dumps(
            {"management": management, "failures_left": failures, "policies": {}, "tokens": {}, "calls": []}
        )
    )
    job = registry.metrics_token_job("hashicorp/consul:1.21.5", {})
    (container,) = job["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    env["CONSUL_CACERT"] = env["CONSUL_CACERT"].replace("/consul/tls/ca", str(ca.parent))
    env |= {
        "CONSUL_HTTP_TOKEN": management,
        "METRICS_TOKEN": registry.secret_id("abcdef0123456789" * 2),
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_CONSUL_STATE": str(state),
    }
    return env, state


def run_job_script(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    job = registry.metrics_token_job("hashicorp/consul:1.21.5", {})
    (container,) = job["template"]["spec"]["containers"]
    assert container["command"][:2] == ["sh", "-c"]
    return subprocess.run(
        [shutil.which("sh") or "/bin/sh", "-c", container["command"][2]],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_the_job_waits_for_the_servers_then_makes_an_agent_read_token_with_the_generated_secret(
    tmp_path: Path,
) -> None:
    env, state = fake_cluster(tmp_path, failures=5)
    result = run_job_script(env)
    assert result.returncode == 0, result.stderr
    final = json.loads(state.read_text())
    assert final["policies"] == {"prometheus-metrics": 'agent_prefix "" { policy = "read" }'}
    assert final["tokens"] == {env["METRICS_TOKEN"]: ["prometheus-metrics"]}


def test_the_job_never_prints_a_token_to_its_log(tmp_path: Path) -> None:
    env, _ = fake_cluster(tmp_path, failures=2)
    first, again = run_job_script(env), run_job_script(env)
    for run in (first, again):
        assert run.returncode == 0
        assert env["METRICS_TOKEN"] not in run.stdout + run.stderr
        assert env["CONSUL_HTTP_TOKEN"] not in run.stdout + run.stderr


def test_the_job_run_again_changes_nothing_and_succeeds(tmp_path: Path) -> None:
    env, state = fake_cluster(tmp_path, failures=0)
    assert run_job_script(env).returncode == 0
    first = json.loads(state.read_text())
    second_run = run_job_script(env)
    second = json.loads(state.read_text())
    assert second_run.returncode == 0, second_run.stderr
    assert (second["policies"], second["tokens"]) == (first["policies"], first["tokens"])
    assert not any(
        call[:3] in (["acl", "policy", "create"], ["acl", "token", "create"])
        for call in second["calls"][len(first["calls"]) :]
    )


# --- the consul namespace's network -------------------------------------------------------------

#: The chart's pods as it labels them (v1.8.2 templates: app, component) with their named ports.
SERVER = Pod("consul-server-0", "consul", {"app": "consul", "component": "server"}, {"https": 8501})
SERVER_PEER = Pod("consul-server-1", "consul", dict(SERVER.labels), dict(SERVER.ports))
SYNC = Pod("consul-sync-catalog", "consul", {"app": "consul", "component": "sync-catalog"})
ACL_INIT = Pod("consul-server-acl-init", "consul", {"app": "consul", "component": "server-acl-init"})


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_the_servers_api_takes_the_backends_prometheus_and_the_charts_own_pods(stack: str) -> None:
    cluster, pods = world(stack)
    job = pods["consul-metrics-acl"]
    for client in (pods["user-service"], pods["monolith"], PROMETHEUS, SYNC, ACL_INIT, job):
        assert cluster.allowed(client, SERVER, 8501), client.name
    assert not cluster.allowed(pods["web-frontend"], SERVER, 8501)
    assert not cluster.allowed(Pod("stranger", "nats", {"app": "debug"}), SERVER, 8501)
    assert not cluster.allowed(pods["user-service"], SERVER, 8500)  # the plain HTTP port is gone


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_servers_gossip_and_replicate_among_themselves_only(stack: str) -> None:
    cluster, pods = world(stack)
    assert cluster.allowed(SERVER, SERVER_PEER, 8300)
    for port in (8301, 8302):
        assert cluster.allowed(SERVER, SERVER_PEER, port, "UDP") and cluster.allowed(
            SERVER, SERVER_PEER, port
        )
    assert not cluster.allowed(pods["user-service"], SERVER, 8301, "UDP")
    assert not cluster.allowed(SYNC, SERVER, 8300)


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_the_charts_pods_reach_dns_and_the_kubernetes_api_and_not_the_internet_elsewhere(stack: str) -> None:
    cluster, pods = world(stack)
    for pod in (SYNC, ACL_INIT, SERVER):
        assert cluster.allowed(pod, DNS, 53, "UDP") and cluster.allowed(pod, API_SERVER, 443)
        assert not cluster.allowed(pod, INTERNET, 80)
        assert not cluster.allowed(pod, pods["user-service"], 8080)
    job = pods["consul-metrics-acl"]
    assert cluster.allowed(job, DNS, 53, "UDP") and not cluster.allowed(job, API_SERVER, 443)
