"""The monolith's NetworkPolicy lets it reach the Spotify Web API when the stack configures the
credentials, and nothing else gains internet access. Checked by evaluating the rendered
NetworkPolicies against destination addresses, as the cluster's network plugin would."""

from __future__ import annotations

import functools
import ipaddress
import json
from typing import Any

from infra import catalog
from infra.program import main as program
from ops.mockrun import run_offline
from tests.conftest import PROJECT, manifests_of

#: api.spotify.com resolves to public addresses such as this one.
PUBLIC = "35.186.224.24"


@functools.cache
def policies(*, client_id: str | None = None, secret: str | None = None) -> dict[str, dict[str, Any]]:
    """The dev stack's NetworkPolicies by name, with the given Spotify settings."""
    config = dict(PROJECT.stack_config("dev").values)
    secret_keys = list(PROJECT.stack_config("dev").secret_keys)
    if client_id is not None:
        platform = json.loads(config["vinylhound:platform"]) | {"spotifyClientId": client_id}
        config["vinylhound:platform"] = json.dumps(platform)
    if secret is not None:
        config["vinylhound:spotifyClientSecret"] = secret
        secret_keys.append("vinylhound:spotifyClientSecret")
    run = run_offline(program, project=PROJECT.name, stack="dev", config=config, secret_keys=secret_keys)
    return {m["metadata"]["name"]: m for m in manifests_of(run) if m["kind"] == "NetworkPolicy"}


def _peer_allows(peer: dict[str, Any], ip: str) -> bool:
    block = peer.get("ipBlock")
    if block is None:  # pod/namespace selectors match cluster members, never a public address
        return False
    address = ipaddress.ip_address(ip)
    return address in ipaddress.ip_network(block["cidr"]) and not any(
        address in ipaddress.ip_network(e) for e in block.get("except", [])
    )


def egress_allowed(policy: dict[str, Any], ip: str, port: int) -> bool:
    """Whether the policy lets its pods open a TCP connection to ``ip:port``."""
    if "Egress" not in policy["spec"].get("policyTypes", []):
        return True
    for rule in policy["spec"].get("egress", []):
        ports = rule.get("ports")
        port_ok = ports is None or any(p.get("protocol", "TCP") == "TCP" and p["port"] == port for p in ports)
        peers = rule.get("to")
        peer_ok = peers is None or any(_peer_allows(peer, ip) for peer in peers)
        if port_ok and peer_ok:
            return True
    return False


def test_without_spotify_credentials_the_monolith_cannot_reach_the_internet() -> None:
    assert not egress_allowed(policies()["monolith"], PUBLIC, 443)


def test_with_a_spotify_client_id_the_monolith_may_reach_public_https() -> None:
    assert egress_allowed(policies(client_id="abc123")["monolith"], PUBLIC, 443)


def test_with_only_the_spotify_secret_the_monolith_may_reach_public_https() -> None:
    assert egress_allowed(policies(secret="s3cret")["monolith"], PUBLIC, 443)


def test_the_internet_rule_opens_only_port_443() -> None:
    monolith = policies(client_id="abc123")["monolith"]
    assert not egress_allowed(monolith, PUBLIC, 80)


def test_the_internet_rule_does_not_reach_cluster_private_addresses() -> None:
    monolith = policies(client_id="abc123")["monolith"]
    for ip in ("10.96.0.1", "172.20.3.4", "192.168.1.10"):
        assert not egress_allowed(monolith, ip, 443), ip


def test_no_other_workload_gains_internet_access() -> None:
    rendered = policies(client_id="abc123")
    opened = [
        w.name
        for w in catalog.WORKLOADS
        if w.name in rendered and egress_allowed(rendered[w.name], PUBLIC, 443)
    ]
    assert opened == ["monolith"]
