"""``vinylhound contract``: compare a service's answers with the monolith's, endpoint by endpoint.

The comparison is ``infra/contract_check.py``, the same file the contract-check Job runs in the
cluster before an endpoint takes live reads; this command runs it from a laptop against any two
base URLs (a port-forward, a staging host) and prints a table.
"""

from __future__ import annotations

import os
from typing import Annotated
from urllib.parse import urlparse

import typer

from infra import catalog, endpoints
from infra import contract_check as contract
from ops.output import print_table, say


def requests_for(names: list[str], service_url: str) -> list[str]:
    """The requests to send: each ``ENDPOINT`` (a catalog template such as ``GET
    /api/v1/albums/{id}`` is filled with a sample id), or by default the public reads the service
    shares with the monolith, the service named by the URL's host (``http://catalog-service:8002``)."""
    if names:
        return [n if "{" not in n else endpoints.contract_request(_template(n)) for n in names]
    host = urlparse(service_url).hostname or ""
    name = host.split(".")[0]
    if name not in catalog.names() or catalog.workload(name).role != "service":
        raise ValueError(
            f"--service {service_url}: name the endpoints, or use a URL whose host is a service's name "
            f"({', '.join(w.name for w in catalog.services())})"
        )
    return [endpoints.contract_request(e) for e in endpoints.contract_samples(catalog.workload(name))]


def _template(key: str) -> catalog.Endpoint:
    endpoint = catalog.monolith_endpoint(key)
    if endpoint is None:
        raise ValueError(f"{key}: no such endpoint in the monolith's catalog entry")
    return endpoint


def command(
    monolith: Annotated[
        str, typer.Option(metavar="URL", help="Base URL of the monolith, e.g. http://localhost:8080.")
    ],
    service: Annotated[
        str, typer.Option(metavar="URL", help="Base URL of the service, e.g. http://catalog-service:8002.")
    ],
    endpoint: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="ENDPOINT",
            help="'GET /path' to compare. Default: the service's public reads shared with the monolith.",
        ),
    ] = None,
) -> None:
    """Compare status, content type and JSON shape of a service's answers with the monolith's.

    Values may differ; keys, nesting, casing and types may not. A bearer token for endpoints that
    need one is read from CONTRACT_TOKEN. Exit 1 on any mismatch."""
    try:
        requests = requests_for(endpoint or [], service)
        for request in requests:
            contract.parse_endpoint(request)
    except ValueError as err:
        say(f"vinylhound contract: {err}", stderr=True)
        raise typer.Exit(1) from None
    results = contract.check(monolith, service, requests, os.environ.get("CONTRACT_TOKEN"))
    rows = [(r.endpoint, "pass" if r.passed else "FAIL", "\n".join(r.differences)) for r in results]
    print_table(f"{service} against {monolith}", ["endpoint", "result", "differences"], rows)
    if not all(r.passed for r in results):
        raise typer.Exit(1)
