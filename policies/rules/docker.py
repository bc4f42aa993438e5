"""The Docker local stack (``docker:index/container:Container``): ports on loopback, health checks.

Pinned images and plain-text secrets on containers are ``pinned-images`` and
``no-plain-secrets-in-env``, which read Docker containers too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import Severity

from ._support import DOCKER_CONTAINER, Rule, dig, items, mapping, number, string_list, text

_ports = Rule(
    name="docker-ports-on-loopback",
    description="Every port a local container publishes is bound to the loopback address, so the "
    "developer's services are not reachable from the network they are on.",
    remediation="set ports[].ip to 127.0.0.1 for every published port",
    severity=Severity.HIGH,
    knobs={"allowedAddresses": string_list(["127.0.0.1", "::1"], "Host addresses ports may bind to.")},
)


def _port_problems(token: str, props: Mapping[str, Any], config: Mapping[str, Any]) -> Iterator[str]:
    if token != DOCKER_CONTAINER:
        return
    allowed = set(config["allowedAddresses"])
    name = text(props.get("name")) or "?"
    for port in (mapping(p) for p in items(props.get("ports"))):
        ip = text(port.get("ip")) or "0.0.0.0"
        if ip not in allowed:
            external = number(port.get("external"))
            shown = f"{external:g}" if external is not None else "a random port"
            yield f"container {name} publishes {shown} on {ip}"


_health = Rule(
    name="docker-healthcheck",
    description="Every local container has a health check, so dependents start only when it is ready.",
    remediation="set healthcheck.tests (e.g. ['CMD', 'wget', '-qO-', 'http://127.0.0.1:<port>/health'])",
    severity=Severity.MEDIUM,
    knobs={"exempt": string_list([], "Container names this rule does not apply to.")},
)


def _health_problems(token: str, props: Mapping[str, Any], config: Mapping[str, Any]) -> Iterator[str]:
    if token != DOCKER_CONTAINER:
        return
    name = text(props.get("name")) or "?"
    if name in config["exempt"]:
        return
    if props.get("attach") is True and props.get("mustRun") is False:
        # A one-shot task (the stack waits for it to exit): there is no "ready" to check.
        return
    tests = [text(t) for t in items(dig(props, "healthcheck", "tests"))]
    if not tests or tests[0] == "NONE":
        yield f"container {name} has no healthcheck"


POLICIES = [_ports.resource(_port_problems), _health.resource(_health_problems)]
