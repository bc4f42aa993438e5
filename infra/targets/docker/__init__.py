"""The docker target: the whole platform on one developer machine (the ``local`` stack).

One user-defined bridge network; a PostgreSQL container per database, created with its generated
schema; Consul (dev mode) with every workload declared from the catalog; Jaeger (OTLP) and
Prometheus probing every workload; NATS with JetStream and its streams and consumers (``events.py``);
then the workloads, each started after its own database is healthy (and the bus, if it uses it),
with the api-gateway as the edge and the front end behind it. Every published port listens on
127.0.0.1 only.
"""

from __future__ import annotations

from typing import Any

import pulumi

from components.docker.postgres import PostgresArgs
from components.docker.specs import ContainerSpec
from components.labels import LabelContext
from components.values import SecretKeyRef
from infra import catalog, env
from infra.catalog import Workload
from infra.config import PlatformConfig
from infra.stack_secrets import StackSecrets
from infra.targets.docker import plan
from infra.targets.docker.databases import LocalDatabases
from infra.targets.docker.events import LocalEventBus, LocalEventBusArgs, client_env, event_bus, event_specs
from infra.targets.docker.observability import LocalObservability
from infra.targets.docker.platform import LocalPlatform, LocalPlatformArgs, platform_specs
from infra.targets.docker.prometheus_scrape import Endpoint
from infra.targets.docker.registry import LocalRegistry
from infra.targets.docker.schema import initial_schema_sql
from infra.targets.docker.workloads import LocalWorkloads, LocalWorkloadsArgs, version_of, workload_spec

#: Keys under which the target keeps secret values the env resolvers refer to (no Secret objects).
JWT_SECRET = SecretKeyRef("vinylhound-jwt", "secret")
SPOTIFY_SECRET = SecretKeyRef("vinylhound-spotify", "client-secret")

#: The edge of a docker stack (config rules require it there).
GATEWAY = "api-gateway"

#: Start order of the roles: the edge after what it routes to, the front end after the edge
#: (nginx refuses to start while its upstream's name does not resolve).
_ROLE_ORDER = {"monolith": 0, "service": 1, "gateway": 2, "frontend": 3}


def _localhost(port: int) -> str:
    return f"http://localhost:{port}"


def deploy(cfg: PlatformConfig, secrets: StackSecrets) -> dict[str, Any]:
    """Declare the local platform for one stack; return the stack's exports.

    One component per area, as on Kubernetes; the stack root holds nothing else. Each area's args
    are built here, from the config, once what they refer to (the network, the passwords) exists.
    """
    context = LabelContext(environment=cfg.environment)
    settings = cfg.docker_settings()
    ports = plan.PortPlan(settings.published_port_base)
    prefix = f"{settings.network}-"
    enabled = cfg.enabled()

    platform = LocalPlatform("platform", LocalPlatformArgs(settings.network, context.common()))
    network = platform.network_name

    endpoints: dict[str, env.DatabaseEndpoint] = {}
    database_args: dict[str, PostgresArgs] = {}
    for workload, _ in enabled:
        endpoint = plan.database_endpoint(workload)
        if endpoint is None:
            continue
        endpoints[workload.name] = endpoint
        database_args[workload.name] = PostgresArgs(
            name=endpoint.cluster,
            image=settings.images.postgres,
            network=network,
            name_prefix=prefix,
            database=endpoint.name,
            user=endpoint.user,
            init_sql=initial_schema_sql(workload),
            published_port=ports.database(workload),
            labels=context.workload(endpoint.cluster, settings.images.postgres.split(":")[-1], "database"),
        )
    databases = LocalDatabases("databases", database_args).databases

    secret_values: dict[SecretKeyRef, pulumi.Input[str]] = {JWT_SECRET: platform.jwt_secret}
    for name, database in databases.items():
        secret_values[SecretKeyRef(endpoints[name].secret, "password")] = database.password
        secret_values[SecretKeyRef(endpoints[name].secret, "uri")] = database.url
    bus = event_bus(cfg)
    event_bus_area = LocalEventBus(
        "event-bus",
        LocalEventBusArgs(
            bus if cfg.events.enabled else None,
            event_specs(cfg, bus, network, context.common()) if cfg.events.enabled else None,
        ),
    )
    secret_values.update(event_bus_area.secret_values)
    if secrets.spotify_client_secret is not None:
        secret_values[SPOTIFY_SECRET] = pulumi.Output.secret(secrets.spotify_client_secret)

    frontend_port = next((ports.workload(w) for w, _ in enabled if w.role == "frontend"), None)
    wiring = env.Wiring(
        origins=cfg.cors_allowed_origins or ((_localhost(frontend_port),) if frontend_port else ()),
        jwt_secret=JWT_SECRET,
        addresses=plan.routed_addresses(cfg),
        databases=endpoints,
        spotify_client_id=cfg.spotify_client_id,
        spotify_client_secret=SPOTIFY_SECRET if secrets.spotify_client_secret is not None else None,
    )
    versions = {w.name: version_of(s) for w, s in enabled}
    probe_endpoints = [Endpoint(w, w.name, w.port) for w, _ in enabled]
    tools = platform_specs(cfg, network, probe_endpoints, versions, context.common())
    LocalRegistry("registry", tools[plan.CONSUL])
    LocalObservability("observability", [tools[plan.JAEGER], tools[plan.PROMETHEUS], tools[plan.BLACKBOX]])

    specs: list[ContainerSpec] = []
    waits: dict[str, list[pulumi.Resource]] = {}
    after: dict[str, list[str]] = {}
    declared: list[Workload] = []
    for workload, workload_settings in sorted(enabled, key=lambda pair: _ROLE_ORDER[pair[0].role]):
        nats = client_env(workload, bus)
        specs.append(
            workload_spec(
                workload, workload_settings, cfg, wiring, secret_values, network, context, extra_env=nats
            )
        )
        own = [databases[workload.name].server.container] if workload.name in databases else []
        waits[workload.name] = own + (event_bus_area.ready if nats else [])
        after[workload.name] = _start_after(workload, [w.name for w in declared], wiring)
        declared.append(workload)
    LocalWorkloads("workloads", LocalWorkloadsArgs(specs, waits, after))

    return {
        "environment": cfg.environment,
        "network": settings.network,
        "appUrl": _localhost(frontend_port) if frontend_port else None,
        "apiUrl": _localhost(ports.workload(catalog.workload(GATEWAY))),
        "jaegerUrl": _localhost(ports.platform(plan.JAEGER)),
        "prometheusUrl": _localhost(ports.platform(plan.PROMETHEUS)),
        "consulUrl": _localhost(ports.platform(plan.CONSUL)),
        "natsUrl": f"nats://127.0.0.1:{ports.platform(plan.NATS)}" if cfg.events.enabled else None,
        "serviceUrls": {w.name: _localhost(ports.workload(w)) for w, _ in enabled},
        "databasePorts": {w.name: ports.database(w) for w, _ in enabled if w.name in databases},
    }


def _start_after(workload: Workload, started: list[str], wiring: env.Wiring) -> list[str]:
    """The workloads (declared before it) that must be healthy before ``workload`` starts: for the
    edge, those its URLs point at; for the front end, the edge. (Its own database is its area's.)"""
    if workload.role == "gateway":
        upstreams = {name for name in wiring.addresses if name in workload.calls or name == "monolith"}
        return [name for name in sorted(upstreams) if name in started]
    if workload.role == "frontend":
        return [GATEWAY] if GATEWAY in started else []
    return []
