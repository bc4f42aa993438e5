"""Names, ports and addresses of the docker target, derived from the catalog and the config.

Pure functions: hostnames on the user-defined network are the catalog names (as Service names are
on Kubernetes), each workload's database is ``<workload>-db``, and every published host port is
``publishedPortBase`` plus a fixed offset, so a developer's URLs do not move between runs.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from infra.catalog import Workload
from infra.config import PlatformConfig
from infra.env import POSTGRES_PORT, DatabaseEndpoint

CONSUL = "consul"
JAEGER = "jaeger"
PROMETHEUS = "prometheus"
BLACKBOX = "blackbox-exporter"
NATS = "nats"
#: Not a container: the key of the NATS monitoring endpoint's host port.
NATS_MONITORING = "nats-monitoring"

CONSUL_PORT = 8500
JAEGER_UI_PORT = 16686
JAEGER_OTLP_HTTP_PORT = 4318
JAEGER_METRICS_PORT = 8888
JAEGER_HEALTH_PORT = 13133
PROMETHEUS_PORT = 9090
BLACKBOX_PORT = 9115

#: Offsets from ``publishedPortBase``: workloads at +slot, their databases at +100+slot.
DATABASE_OFFSET = 100
PLATFORM_OFFSETS = {CONSUL: 200, JAEGER: 201, PROMETHEUS: 202, NATS: 203, NATS_MONITORING: 204}

#: The slots of the first workloads (their catalog positions when slots followed position), kept
#: so that a developer's URLs and database ports do not move when the catalog grows.
FIXED_SLOTS = {
    "monolith": 0,
    "user-service": 1,
    "catalog-service": 2,
    "rating-service": 3,
    "playlist-service": 4,
    "api-gateway": 5,
    "web-frontend": 6,
}
#: Any other workload's slot is derived from its name alone, in [10, 100): adding, removing or
#: reordering catalog entries never moves another workload's port.
HASHED_SLOTS = range(10, DATABASE_OFFSET)


def slot(workload: Workload) -> int:
    """The workload's port slot: fixed for the first workloads, else a hash of its name. Two
    workloads on one slot is a catalog defect (``tests/test_local_stack.py`` checks the catalog);
    give one of them a place in ``FIXED_SLOTS``."""
    fixed = FIXED_SLOTS.get(workload.name)
    if fixed is not None:
        return fixed
    return HASHED_SLOTS[zlib.crc32(workload.name.encode()) % len(HASHED_SLOTS)]


@dataclass(frozen=True)
class PortPlan:
    """The host port (on 127.0.0.1) of everything a docker stack publishes."""

    base: int

    def workload(self, workload: Workload) -> int:
        """A workload's port on the host (its name keeps it stable, see ``slot``)."""
        return self.base + slot(workload)

    def database(self, workload: Workload) -> int:
        """The host port of a workload's own database, for psql and other local tools."""
        return self.base + DATABASE_OFFSET + slot(workload)

    def platform(self, service: str) -> int:
        """The host port of a platform service (Consul, Jaeger, Prometheus, NATS and its monitoring)."""
        return self.base + PLATFORM_OFFSETS[service]


def database_host(workload: Workload) -> str:
    """The hostname of a workload's own PostgreSQL container."""
    return f"{workload.name}-db"


def database_endpoint(workload: Workload) -> DatabaseEndpoint | None:
    """A workload's database on the Docker network. ``sslmode=disable``: the connection never
    leaves the local bridge network, and the stock postgres image has no server certificate."""
    if workload.database is None:
        return None
    host = database_host(workload)
    return DatabaseEndpoint(
        cluster=host,
        rw_host=host,
        ro_host=host,
        name=workload.database.name,
        user=workload.database.name,
        # Not a Docker object: the key under which the target keeps this database's secret values.
        secret=f"{host}-credentials",
        port=POSTGRES_PORT,
        sslmode="disable",
    )


def address(workload: Workload) -> str:
    """A workload's base URL on the Docker network."""
    return f"http://{workload.name}:{workload.port}"


def routed_addresses(cfg: PlatformConfig) -> dict[str, str]:
    """What the api-gateway's ``*_SERVICE_URL`` may point at: every enabled workload except the
    services that are not cut over (weight 0), whose routes stay on the monolith."""
    return {
        w.name: address(w)
        for w, settings in cfg.enabled()
        if w.role != "service" or settings.cutover.weight == 100
    }
