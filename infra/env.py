"""How the platform fills each workload's environment contract (catalog ``Workload.env``).

One resolver per variable name. A workload only ever receives variables its catalog entry lists,
and its database variables only ever come from its own database endpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from components.values import EnvVar, SecretKeyRef
from infra import catalog
from infra.catalog import Workload

POSTGRES_PORT = 5432


@dataclass(frozen=True)
class DatabaseEndpoint:
    """Where a workload's own database is and which Secret holds its credentials.

    The credentials Secret has the keys ``username``, ``password`` and ``uri`` (a libpq URL).
    """

    cluster: str
    rw_host: str
    ro_host: str
    name: str
    user: str
    secret: str
    port: int = POSTGRES_PORT
    sslmode: str = "require"
    #: Not run by the platform (no CNPG pods to select; reached over the network).
    external: bool = False


def database_endpoint(workload: Workload, namespace: str) -> DatabaseEndpoint | None:
    """The in-cluster endpoint of ``workload``'s database (CloudNativePG naming), if it owns one."""
    if workload.database is None:
        return None
    cluster = f"{workload.name}-db"
    suffix = f"{namespace}.svc.cluster.local"
    return DatabaseEndpoint(
        cluster=cluster,
        rw_host=f"{cluster}-rw.{suffix}",
        ro_host=f"{cluster}-ro.{suffix}",
        name=workload.database.name,
        user=workload.database.name,
        secret=f"{cluster}-credentials",
    )


@dataclass(frozen=True)
class Wiring:
    """Everything outside a workload that its environment may point at."""

    origins: tuple[str, ...]
    jwt_secret: SecretKeyRef
    #: Base URL per workload name, as its callers should reach it.
    addresses: Mapping[str, str]
    #: Each workload's own database, by workload name.
    databases: Mapping[str, DatabaseEndpoint]
    spotify_client_id: str | None = None
    spotify_client_secret: SecretKeyRef | None = None


Resolver = Callable[[Workload, Wiring], EnvVar | None]


def _own_database(w: Workload, wiring: Wiring) -> DatabaseEndpoint:
    try:
        return wiring.databases[w.name]
    except KeyError:
        raise LookupError(f"{w.name} reads DB_* but no database endpoint is wired for it") from None


def _db(attr: str) -> Resolver:
    def resolve(w: Workload, wiring: Wiring) -> EnvVar:
        return EnvVar(f"DB_{attr.upper()}", str(getattr(_own_database(w, wiring), attr)))

    return resolve


def _db_password(w: Workload, wiring: Wiring) -> EnvVar:
    return EnvVar("DB_PASSWORD", secret=SecretKeyRef(_own_database(w, wiring).secret, "password"))


def _database_url(w: Workload, wiring: Wiring) -> EnvVar:
    return EnvVar("DATABASE_URL", secret=SecretKeyRef(_own_database(w, wiring).secret, "uri"))


def _service_url(target: str) -> Resolver:
    def resolve(w: Workload, wiring: Wiring) -> EnvVar:
        # A service that is not deployed is still served by the monolith.
        url = wiring.addresses.get(target) or wiring.addresses["monolith"]
        return EnvVar(catalog.workload(target).url_env, url)

    return resolve


RESOLVERS: dict[str, Resolver] = {
    "PORT": lambda w, _: EnvVar("PORT", str(w.port)),
    "CORS_ALLOWED_ORIGINS": lambda _, wiring: EnvVar("CORS_ALLOWED_ORIGINS", ",".join(wiring.origins)),
    "DB_HOST": lambda w, wiring: EnvVar("DB_HOST", _own_database(w, wiring).rw_host),
    "DB_PORT": _db("port"),
    "DB_USER": _db("user"),
    "DB_NAME": _db("name"),
    "DB_SSLMODE": _db("sslmode"),
    "DB_PASSWORD": _db_password,
    "DATABASE_URL": _database_url,
    "JWT_SECRET": lambda _, wiring: EnvVar("JWT_SECRET", secret=wiring.jwt_secret),
    "SPOTIFY_CLIENT_ID": lambda _, wiring: (
        EnvVar("SPOTIFY_CLIENT_ID", wiring.spotify_client_id) if wiring.spotify_client_id else None
    ),
    "SPOTIFY_CLIENT_SECRET": lambda _, wiring: (
        EnvVar("SPOTIFY_CLIENT_SECRET", secret=wiring.spotify_client_secret)
        if wiring.spotify_client_secret
        else None
    ),
    **{w.url_env: _service_url(w.name) for w in catalog.WORKLOADS if w.role == "service"},
}


def contract_env(workload: Workload, wiring: Wiring) -> list[EnvVar]:
    """The workload's environment contract, filled in.

    Optional settings that are not configured (the Spotify credentials) are left out. What the
    platform adds beyond the contract (tracing, registry, ...) comes from ``WorkloadExtras``.
    """
    env: list[EnvVar] = []
    for name in workload.env:
        resolver = RESOLVERS.get(name)
        if resolver is None:
            raise LookupError(f"{workload.name} reads {name}, which the platform does not know how to fill")
        value = resolver(workload, wiring)
        if value is not None:
            env.append(value)
    return env
