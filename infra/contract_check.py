"""Contract check: does a service answer an endpoint the way the monolith does? (Diffy-style)

Sends the same safe request (GET) to the monolith and to the service and compares what a client
depends on: the status code, the media type and the JSON shape (object keys, nesting, the casing of
keys, and value types; the values themselves may differ, a null may stand for any scalar). Every
difference is reported with the JSON path it sits at, e.g. ``albums[].releaseYear``.

Standard library only (Python 3.11+): the platform ships this file in a ConfigMap and runs it in a
Job from an official Python image, before an endpoint takes live reads at the service; the
``vinylhound contract`` command runs the same comparison from a laptop. Exit status 1 on any
mismatch or unreachable side, 2 on bad arguments.

    python contract_check.py --monolith http://monolith:8080 --service http://catalog-service:8002 \\
        "GET /api/v1/albums" "GET /api/v1/albums/1"

A bearer token for endpoints that need one is read from the environment variable named by
``--token-env`` (default ``CONTRACT_TOKEN``), never from the command line, and never printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

Shape = Any  # "string" | "number" | "boolean" | "null" | {"object": {...}} | {"array": Shape | None}

#: Methods a contract check may send: a write would apply at both sides.
SAFE_METHODS = ("GET",)
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Response:
    """What one side answered (``error`` set when it could not be asked)."""

    status: int = 0
    media_type: str = ""
    body: bytes = b""
    error: str | None = None

    def json(self) -> tuple[bool, Any]:
        """(True, document) when the body parses as JSON, else (False, None)."""
        try:
            return True, json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return False, None


@dataclass
class Result:
    """The comparison of one endpoint: ``differences`` empty means it passed."""

    endpoint: str
    monolith: Response
    service: Response
    differences: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether the service answered like the monolith."""
        return not self.differences


def parse_endpoint(text: str) -> tuple[str, str]:
    """``"GET /api/v1/albums"`` -> ("GET", "/api/v1/albums"); ``ValueError`` if malformed."""
    parts = text.split(" ")
    if len(parts) != 2 or not parts[1].startswith("/") or not parts[0].isupper():
        raise ValueError(f"{text!r}: write an endpoint as 'METHOD /path', e.g. 'GET /api/v1/albums'")
    method, path = parts
    if method not in SAFE_METHODS:
        raise ValueError(
            f"{text!r}: only {', '.join(SAFE_METHODS)} is compared; a write would apply at both sides"
        )
    return method, path


def fetch(base: str, method: str, path: str, token: str | None = None) -> Response:
    """Send one request; an HTTP error status is an answer, a network failure is an ``error``."""
    request = urllib.request.Request(base.rstrip("/") + path, method=method)
    request.add_header("Accept", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as reply:
            return Response(reply.status, _media_type(reply.headers.get("Content-Type")), reply.read())
    except urllib.error.HTTPError as reply:
        return Response(reply.code, _media_type(reply.headers.get("Content-Type")), reply.read())
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        return Response(error=f"{type(err).__name__}: {reason}")


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def shape(value: Any) -> Shape:
    """The shape of a JSON value: its type, with the keys of objects and the merged shape of the
    elements of arrays (``{"array": None}`` for an empty one)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return {"object": {k: shape(v) for k, v in value.items()}}
    if isinstance(value, list):
        merged: Shape = None
        for element in value:
            merged = _merge(merged, shape(element))
        return {"array": merged}
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def _merge(a: Shape, b: Shape) -> Shape:
    """One shape for two array elements: object keys united (an element may omit a key), a null
    giving way to the other side."""
    if a is None or a == "null":
        return b
    if b == "null":
        return a
    if isinstance(a, dict) and isinstance(b, dict) and "object" in a and "object" in b:
        keys = dict(a["object"])
        for k, v in b["object"].items():
            keys[k] = _merge(keys.get(k), v)
        return {"object": keys}
    if isinstance(a, dict) and isinstance(b, dict) and "array" in a and "array" in b:
        return {"array": _merge(a["array"], b["array"])}
    return a


def _kind(s: Shape) -> str:
    if isinstance(s, dict):
        return "object" if "object" in s else "array"
    return str(s)


def _normalized(key: str) -> str:
    return re.sub(r"[_\-]", "", key).lower()


def _casing(key: str) -> str:
    if "_" in key:
        return "snake_case"
    if re.search(r"[a-z][A-Z]", key):
        return "camelCase"
    return "lowercase"


def compare_shapes(monolith: Shape, service: Shape, path: str = "") -> list[str]:
    """Differences between two shapes, each as ``path: what differs`` (monolith first)."""
    where = path or "(root)"
    if monolith == "null" and service == "null":
        return []
    m_kind, s_kind = _kind(monolith), _kind(service)
    scalars = ("string", "number", "boolean", "null")
    if "null" in (m_kind, s_kind) and m_kind in scalars and s_kind in scalars:
        return []  # a value that may be absent; values may differ
    if m_kind != s_kind:
        return [f"{where}: {m_kind} at the monolith, {s_kind} at the service"]
    if m_kind == "array":
        m_el, s_el = monolith["array"], service["array"]
        if m_el is None or s_el is None:
            return []  # an empty list says nothing about its elements
        return compare_shapes(m_el, s_el, f"{path}[]")
    if m_kind != "object":
        return []
    m_keys, s_keys = monolith["object"], service["object"]
    differences: list[str] = []
    only_m = [k for k in m_keys if k not in s_keys]
    only_s = [k for k in s_keys if k not in m_keys]
    for k in list(only_m):
        twin = next((o for o in only_s if _normalized(o) == _normalized(k)), None)
        if twin is not None:
            differences.append(
                f"{_join(path, k)}: key casing, {k} ({_casing(k)}) at the monolith, "
                f"{twin} ({_casing(twin)}) at the service"
            )
            differences += compare_shapes(m_keys[k], s_keys[twin], _join(path, k))
            only_m.remove(k)
            only_s.remove(twin)
    differences += [f"{_join(path, k)}: missing at the service" for k in only_m]
    differences += [f"{_join(path, k)}: only at the service" for k in only_s]
    for k in m_keys:
        if k in s_keys:
            differences += compare_shapes(m_keys[k], s_keys[k], _join(path, k))
    return differences


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def compare(endpoint: str, monolith: Response, service: Response) -> Result:
    """Compare two answers to the same request (see the module docstring)."""
    result = Result(endpoint, monolith, service)
    for side, reply in (("monolith", monolith), ("service", service)):
        if reply.error is not None:
            result.differences.append(f"the {side} could not be asked: {reply.error}")
    if result.differences:
        return result
    if monolith.status != service.status:
        result.differences.append(
            f"status {monolith.status} at the monolith, {service.status} at the service"
        )
    if monolith.media_type != service.media_type:
        result.differences.append(
            f"content type {monolith.media_type or '(none)'} at the monolith, "
            f"{service.media_type or '(none)'} at the service"
        )
    m_ok, m_doc = monolith.json()
    s_ok, s_doc = service.json()
    if m_ok and not s_ok:
        result.differences.append("body: JSON at the monolith, not JSON at the service")
    elif m_ok and s_ok:
        result.differences += compare_shapes(shape(m_doc), shape(s_doc))
    return result


def check(
    monolith_url: str, service_url: str, endpoints: Sequence[str], token: str | None = None
) -> list[Result]:
    """Send every endpoint (``"GET /path"``) to both sides and compare the answers."""
    results = []
    for endpoint in endpoints:
        method, path = parse_endpoint(endpoint)
        results.append(
            compare(
                endpoint, fetch(monolith_url, method, path, token), fetch(service_url, method, path, token)
            )
        )
    return results


def report(results: Sequence[Result]) -> str:
    """One line per endpoint (PASS/FAIL), then one indented line per difference."""
    lines = []
    for r in results:
        lines.append(f"{'PASS' if r.passed else 'FAIL'} {r.endpoint}")
        lines += [f"    {d}" for d in r.differences]
    failed = sum(not r.passed for r in results)
    lines.append(f"{len(results) - failed} of {len(results)} endpoints answer like the monolith")
    return "\n".join(lines)


def _quit_sidecar() -> None:
    """Ask the Istio sidecar to exit (pilot-agent's /quitquitquit), so the Job's pod completes."""
    request = urllib.request.Request("http://127.0.0.1:15020/quitquitquit", method="POST")
    # No sidecar (a laptop run, or injection off): nothing to stop.
    with contextlib.suppress(urllib.error.URLError, OSError):
        urllib.request.urlopen(request, timeout=5).close()


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description="Compare a service's answers with the monolith's.")
    parser.add_argument("--monolith", required=True, help="base URL of the monolith")
    parser.add_argument("--service", required=True, help="base URL of the service")
    parser.add_argument("--token-env", default="CONTRACT_TOKEN", help="variable holding a bearer token")
    parser.add_argument("--quit-sidecar", action="store_true", help="stop the Istio sidecar when done")
    parser.add_argument("endpoints", nargs="+", metavar="ENDPOINT", help="'GET /path'")
    args = parser.parse_args(argv)
    try:
        for endpoint in args.endpoints:
            parse_endpoint(endpoint)
        results = check(args.monolith, args.service, args.endpoints, os.environ.get(args.token_env))
    except ValueError as err:
        print(f"contract_check: {err}", file=sys.stderr)
        return 2
    finally:
        if args.quit_sidecar:
            _quit_sidecar()
    print(report(results))
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
