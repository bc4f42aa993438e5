#!/usr/bin/env python3
"""A stand-in for the ``consul`` CLI's ACL commands, as strict as the real ones it replaces.

Flags per subcommand are exactly those of hashicorp/consul's ``command/acl/policy/read``,
``policy/create``, ``token/read`` and ``token/create`` (plus the HTTP client flags every command
merges); an unknown flag fails as Go's ``flag`` package does. Behaviour follows the ACL HTTP API:
until the servers are ready every call fails to connect; every call needs an HTTPS address, a CA
file that exists and a token; policy and token writes need the management (bootstrap) token; a
policy name and a token SecretID are unique; ``-secret`` must be a UUID; ``-policy-name`` must
name an existing policy; ``token read -self`` succeeds only for a token that exists.

State (JSON, path in ``FAKE_CONSUL_STATE``): ``management`` (the bootstrap token),
``failures_left`` (calls that fail before the servers answer), ``policies`` (name -> rules),
``tokens`` (SecretID -> policy names), ``calls`` (each argv, for the test to read). Like the
real commands, ``token read`` and ``token create`` print the SecretID.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

HTTP_FLAGS = {
    "http-addr",
    "token",
    "token-file",
    "ca-file",
    "ca-path",
    "client-cert",
    "client-key",
    "tls-server-name",
    "datacenter",
    "stale",
}
FLAGS: dict[tuple[str, str], tuple[set[str], set[str]]] = {
    # (command): (flags taking a value, boolean flags)
    ("policy", "read"): ({"id", "name"}, set()),
    ("policy", "create"): (
        {"name", "description", "valid-datacenter", "rules", "from-token"},
        {"token-secret"},
    ),
    ("token", "read"): ({"id", "format"}, {"meta", "self", "expanded"}),
    ("token", "create"): (
        {
            "accessor",
            "secret",
            "description",
            "policy-id",
            "policy-name",
            "role-id",
            "role-name",
            "service-identity",
            "node-identity",
            "expires-ttl",
            "format",
        },
        {"meta", "local"},
    ),
}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def parse(command: tuple[str, str], args: list[str]) -> dict[str, list[str]]:
    valued, boolean = FLAGS[command]
    valued = valued | HTTP_FLAGS - {"stale"}
    found: dict[str, list[str]] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-"):
            fail(f"unexpected argument {arg}")
        name, eq, value = arg.lstrip("-").partition("=")
        if name in boolean or name == "stale":
            found.setdefault(name, []).append("true")
        elif name in valued:
            if not eq:
                i += 1
                if i >= len(args):
                    fail(f"flag needs an argument: -{name}")
                value = args[i]
            found.setdefault(name, []).append(value)
        else:
            fail(f"flag provided but not defined: -{name}")
        i += 1
    return found


def fail(message: str) -> None:
    print(message, file=sys.stderr)
    sys.exit(1)


def main() -> None:
    state_path = Path(os.environ["FAKE_CONSUL_STATE"])
    state = json.loads(state_path.read_text())
    argv = sys.argv[1:]
    state["calls"].append(argv)

    def save() -> None:
        state_path.write_text(json.dumps(state))

    if len(argv) < 3 or argv[0] != "acl" or (argv[1], argv[2]) not in FLAGS:
        save()
        fail(f"unknown command {argv}")
    command = (argv[1], argv[2])
    flags = parse(command, argv[3:])
    address = (flags.get("http-addr") or [os.environ.get("CONSUL_HTTP_ADDR", "")])[0]
    ca = (flags.get("ca-file") or [os.environ.get("CONSUL_CACERT", "")])[0]
    token = (flags.get("token") or [os.environ.get("CONSUL_HTTP_TOKEN", "")])[0]
    if not address.startswith("https://") or not ca or not Path(ca).is_file():
        save()
        fail("Error connecting to Consul agent: the HTTP port is closed; HTTPS needs the CA")
    if state["failures_left"] > 0:
        state["failures_left"] -= 1
        save()
        fail("Error connecting to Consul agent: dial tcp: connection refused")
    management = token == state["management"]
    known = management or token in state["tokens"]
    if command == ("token", "read"):
        save()
        if "self" not in flags:
            fail("Must specify the -id parameter")
        if not known:
            fail("Error reading token: Unexpected response code: 403 (ACL not found)")
        # The pretty format prints the token's SecretID, as token/formatter.go does.
        print(f"SecretID:          {token}")
        return
    if not management:
        save()
        fail("Unexpected response code: 403 (Permission denied)")
    if command == ("policy", "read"):
        save()
        if flags.get("name", [""])[0] not in state["policies"]:
            fail("Error determining policy ID: Failed to find policy with name")
        return
    if command == ("policy", "create"):
        name = flags.get("name", [""])[0]
        if not name:
            save()
            fail("Missing require '-name' flag")
        if name in state["policies"]:
            save()
            fail(f"Failed to create new policy: Invalid Policy: A Policy with Name {name!r} already exists")
        state["policies"][name] = flags.get("rules", [""])[0]
        save()
        return
    secret = flags.get("secret", [""])[0]
    names = flags.get("policy-name", [])
    if secret and not UUID.match(secret):
        save()
        fail("Failed to create new token: Invalid Token: SecretID is not a valid UUID")
    if not names or any(n not in state["policies"] for n in names):
        save()
        fail("Failed to create new token: cannot find policy")
    if secret in state["tokens"]:
        save()
        fail("Failed to create new token: Invalid Token: SecretID is already in use")
    state["tokens"][secret] = names
    save()
    print(f"SecretID:          {secret}")


if __name__ == "__main__":
    main()
