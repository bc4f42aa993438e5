"""A small evaluator of Istio's HTTP route semantics, to test rendered VirtualServices by
sending requests through them instead of restating how they were built.

Semantics implemented (Istio VirtualService ``http``, as Envoy applies it; sources: the Istio
``HTTPMatchRequest``/``StringMatch``/``HTTPDirectResponse`` reference and Envoy's route matcher):
- routes are tried in order and the first whose ``match`` list matches wins; a route without
  ``match`` matches every request;
- a ``match`` list matches when any of its entries does; an entry matches when all its
  conditions do;
- ``uri.exact`` sees the path without the query string; ``uri.regex`` is RE2 (Envoy's
  ``safe_regex``), matched against the whole path without the query string, so a pattern RE2
  refuses (lookaround, backreferences) fails here as Istio's validation would refuse it;
  ``uri.prefix`` sees the full ``:path`` (Envoy's prefix matcher includes the query);
- ``method`` is a string match on the HTTP method, with the same three kinds;
- a route has either ``route`` destinations (weights must add up to 100, a single one may omit
  its weight) or a ``directResponse`` (status and body the proxy answers itself), not both.
A condition or route field this evaluator does not know raises, so a rendered rule it cannot
judge fails the test instead of being skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import re2  # type: ignore[import-untyped]

_KNOWN_CONDITIONS = {"uri", "method"}
_KNOWN_ROUTE_FIELDS = {
    "name",
    "match",
    "route",
    "mirror",
    "mirrorPercentage",
    "timeout",
    "retries",
    "directResponse",
}


@dataclass(frozen=True)
class Decision:
    """Where a request goes: the route's name, workload -> weight, and the mirror target; for a
    route the proxy answers itself, ``status`` (and no weights)."""

    route: str
    weights: dict[str, int]
    mirror: str | None
    timeout: str | None
    retries: Mapping[str, Any] | None
    status: int | None = None


def _workload(host: str) -> str:
    return host.split(".")[0]


@cache
def _re2(pattern: str) -> Any:
    try:
        return re2.compile(pattern)
    except re2.error as err:
        raise ValueError(f"not an RE2 pattern, Istio would refuse it: {pattern!r}: {err}") from None


def _string_match(rule: Mapping[str, str], value: str, full: str | None = None) -> bool:
    (kind, expected), *rest = rule.items()
    if rest:
        raise ValueError(f"a string match has exactly one of exact/prefix/regex: {dict(rule)}")
    if kind == "exact":
        return value == expected
    if kind == "prefix":
        return (full if full is not None else value).startswith(expected)
    if kind == "regex":
        return _re2(expected).fullmatch(value) is not None
    raise ValueError(f"unknown string match {kind!r}")


def _entry_matches(entry: Mapping[str, Any], path: str, method: str) -> bool:
    unknown = set(entry) - _KNOWN_CONDITIONS
    if unknown:
        raise ValueError(f"evaluator does not know match conditions {sorted(unknown)}")
    bare = path.split("?", 1)[0]
    if "uri" in entry and not _string_match(entry["uri"], bare, full=path):
        return False
    return not ("method" in entry and not _string_match(entry["method"], method))


def route(spec: Mapping[str, Any], path: str, method: str = "GET") -> Decision:
    """Send ``method path`` through a VirtualService spec; ``LookupError`` when nothing matches."""
    routes: Sequence[Mapping[str, Any]] = spec.get("http") or []
    for r in routes:
        unknown = set(r) - _KNOWN_ROUTE_FIELDS
        if unknown:
            raise ValueError(f"route {r.get('name')}: evaluator does not know fields {sorted(unknown)}")
        matches = r.get("match")
        if matches and not any(_entry_matches(m, path, method) for m in matches):
            continue
        direct = r.get("directResponse")
        if direct is not None:
            if "route" in r or "mirror" in r:
                raise ValueError(f"route {r.get('name')}: directResponse excludes route and mirror")
            status = int(direct["status"])
            return Decision(str(r.get("name")), {}, None, r.get("timeout"), r.get("retries"), status)
        destinations = r.get("route") or []
        weights: dict[str, int] = {}
        for d in destinations:
            # A single destination without a weight gets all the traffic.
            weight = int(d.get("weight", 100 if len(destinations) == 1 else 0))
            name = _workload(d["destination"]["host"])
            weights[name] = weights.get(name, 0) + weight
        if sum(weights.values()) != 100:
            raise ValueError(f"route {r.get('name')}: weights {weights} do not add up to 100")
        mirror = r.get("mirror")
        return Decision(
            route=str(r.get("name")),
            weights={k: v for k, v in weights.items() if v},
            mirror=_workload(mirror["host"]) if mirror else None,
            timeout=r.get("timeout"),
            retries=r.get("retries"),
        )
    raise LookupError(f"no route matches {method} {path}")
