"""The Vinylhound service catalog: every fact about a workload lives here, once.

Ports, health paths, routes, the environment each binary reads, the tables each owns and the
events each publishes or consumes come from the real Vinylhound repositories (see
docs/architecture.md). Everything else in the program (Deployments, routes, databases, monitors,
policies) is derived from this module. Adding a service is one entry here plus stack config.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

Auth = Literal["public", "bearer"]
Role = Literal["monolith", "service", "gateway", "frontend"]

#: Every API route lives under this prefix; the edge and the gateway strip nothing.
API_ROOT = "/api/v1"


@dataclass(frozen=True)
class Route:
    """A path prefix under ``API_ROOT`` that a workload serves, with who may call it."""

    prefix: str
    reads: Auth
    writes: Auth

    @property
    def path(self) -> str:
        """The full request path prefix, e.g. ``/api/v1/albums``."""
        return API_ROOT + self.prefix


@dataclass(frozen=True)
class Database:
    """A database a workload owns after the split, and the monolith tables that move into it."""

    name: str
    tables: tuple[str, ...]
    extensions: tuple[str, ...] = ()

    @property
    def is_new(self) -> bool:
        """A database that takes no monolith tables: the service creates its own schema, nothing
        is replicated or cut over, and its writes go to it from day one."""
        return not self.tables


@dataclass(frozen=True)
class Workload:
    """One deployable unit of Vinylhound.

    ``env`` is the environment contract: exactly the variables the binary reads. The platform
    decides how each is filled (see ``infra/env.py``); a name it cannot fill is a bug caught by the
    tests, not at deploy time.
    """

    name: str
    role: Role
    image: str
    port: int
    health_path: str | None
    env: tuple[str, ...]
    routes: tuple[Route, ...] = ()
    database: Database | None = None
    #: Directories the process writes to; mounted as emptyDir under a read-only root filesystem.
    writable_paths: tuple[str, ...] = ("/tmp",)
    #: Other workloads this one calls over HTTP (drives network and authorization policy).
    calls: tuple[str, ...] = ()
    #: Event names (``user.created``) published and consumed on the event bus.
    publishes: tuple[str, ...] = ()
    consumes: tuple[str, ...] = ()
    #: Path of an application metrics endpoint, when the binary has one (none do today).
    metrics_path: str | None = None
    #: The non-root uid (and gid) the pods run as. Above 10000, outside the range hosts give their
    #: own users, so a container escape lands on no host account; the Go binaries run as any uid
    #: (they write only to the emptyDir paths). Images that need their own uid say so per entry
    #: (docs/security.md lists the exceptions).
    run_as_user: int = 10001
    #: Hostname the image's own proxy forwards ``/api/`` to (baked into the front end's nginx.conf);
    #: whatever serves as the edge must answer to it.
    api_upstream_host: str | None = None
    #: The port the image's proxy forwards ``/api/`` to on ``api_upstream_host``.
    api_upstream_port: int | None = None
    description: str = ""

    @property
    def url_env(self) -> str:
        """The variable the api-gateway reads this workload's base URL from."""
        return self.name.removesuffix("-service").upper().replace("-", "_") + "_SERVICE_URL"


_DB_ENV = ("DB_HOST", "DB_PORT", "DB_USER", "DB_PASSWORD", "DB_NAME", "DB_SSLMODE")

WORKLOADS: tuple[Workload, ...] = (
    Workload(
        name="monolith",
        role="monolith",
        image="backend",
        port=8080,
        health_path="/health",
        env=(
            "DATABASE_URL",
            "PORT",
            "CORS_ALLOWED_ORIGINS",
            "SPOTIFY_CLIENT_ID",
            "SPOTIFY_CLIENT_SECRET",
        ),
        database=Database(
            name="vinylhound",
            tables=("favorites", "album_collections", "venues", "retailers", "concerts"),
            extensions=("pg_trgm",),
        ),
        description="The Go monolith; serves every route not yet cut over.",
    ),
    Workload(
        name="user-service",
        role="service",
        image="user-service",
        port=8001,
        health_path="/health",
        env=(*_DB_ENV, "JWT_SECRET", "PORT", "CORS_ALLOWED_ORIGINS"),
        routes=(
            Route("/auth/signup", reads="public", writes="public"),
            Route("/auth/login", reads="public", writes="public"),
            Route("/users", reads="bearer", writes="bearer"),
            Route("/me", reads="bearer", writes="bearer"),
        ),
        database=Database(name="vinylhound_users", tables=("users", "sessions", "user_content")),
        publishes=("user.created",),
        description="Sign-up, login, profiles and per-user content.",
    ),
    Workload(
        name="catalog-service",
        role="service",
        image="catalog-service",
        port=8002,
        health_path="/health",
        env=(*_DB_ENV, "PORT", "CORS_ALLOWED_ORIGINS"),
        routes=(
            Route("/albums", reads="public", writes="bearer"),
            Route("/artists", reads="public", writes="bearer"),
            Route("/songs", reads="public", writes="bearer"),
            Route("/catalog", reads="public", writes="bearer"),
        ),
        database=Database(
            name="vinylhound_catalog",
            tables=("albums", "artists", "songs"),
            extensions=("pg_trgm",),
        ),
        description="Albums, artists and songs.",
    ),
    Workload(
        name="rating-service",
        role="service",
        image="rating-service",
        port=8003,
        health_path="/health",
        env=(*_DB_ENV, "PORT", "CORS_ALLOWED_ORIGINS"),
        routes=(
            Route("/ratings", reads="bearer", writes="bearer"),
            Route("/reviews", reads="bearer", writes="bearer"),
            Route("/preferences", reads="bearer", writes="bearer"),
            # Served here although the reference gateway sends all of /me to user-service: the
            # more specific prefix must win (see docs/architecture.md, "route table").
            Route("/me/albums", reads="bearer", writes="bearer"),
        ),
        database=Database(
            name="vinylhound_ratings",
            tables=("ratings", "reviews", "user_preferences", "user_album_preferences"),
        ),
        description="Ratings, reviews and taste preferences.",
    ),
    Workload(
        name="playlist-service",
        role="service",
        image="playlist-service",
        port=8004,
        health_path="/health",
        env=(*_DB_ENV, "PORT"),
        routes=(Route("/playlists", reads="bearer", writes="bearer"),),
        database=Database(name="vinylhound_playlists", tables=("playlists", "playlist_songs")),
        consumes=("user.created",),
        description="Playlists, including each user's Favorites playlist.",
    ),
    Workload(
        name="api-gateway",
        role="gateway",
        image="gateway",
        port=8080,
        health_path="/health",
        # Plus every service's ``*_SERVICE_URL`` and calls to every service: ``_gateway_upstreams``.
        env=("PORT", "JWT_SECRET"),
        description="The Go reverse proxy that routes /api/v1 by prefix; optional per stack.",
    ),
    Workload(
        name="web-frontend",
        role="frontend",
        image="frontend",
        port=3000,
        health_path=None,
        env=(),
        # nginx writes its pid and caches; everything else stays read-only.
        writable_paths=("/tmp", "/var/cache/nginx", "/var/run"),
        run_as_user=101,
        # nginx.conf in vinylhound/frontend: `location /api/ { proxy_pass http://vinylhound-backend:8080; }`
        api_upstream_host="vinylhound-backend",
        api_upstream_port=8080,
        description="The Svelte single-page app behind nginx.",
    ),
)


def _gateway_upstreams(workloads: tuple[Workload, ...]) -> tuple[Workload, ...]:
    """The gateway proxies to every service: its ``*_SERVICE_URL`` variables and its calls follow
    the services in catalog order, so a new service needs no edit of the gateway's entry."""
    services = [w for w in workloads if w.role == "service"]
    return tuple(
        replace(w, env=(*(s.url_env for s in services), *w.env), calls=tuple(s.name for s in services))
        if w.role == "gateway"
        else w
        for w in workloads
    )


WORKLOADS = _gateway_upstreams(WORKLOADS)

_BY_NAME = {w.name: w for w in WORKLOADS}


def workload(name: str) -> Workload:
    """The catalog entry called ``name``; ``KeyError`` names the ones that exist."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown workload {name!r}; the catalog has {', '.join(_BY_NAME)}") from None


def names() -> tuple[str, ...]:
    """Every workload name, in catalog order."""
    return tuple(_BY_NAME)


#: ``callers_of``'s index and the ``WORKLOADS`` tuple it was built from (rebuilt if replaced).
_CALLERS: tuple[tuple[Workload, ...], dict[str, tuple[str, ...]]] = ((), {})


def callers_of(name: str) -> tuple[str, ...]:
    """The workloads whose entry lists ``name`` in ``calls``, in catalog order.

    Indexed once per catalog: per-workload code calls this for every workload, and a scan of
    the catalog each time would make a platform's render grow with the square of its services.
    """
    global _CALLERS
    built_from, index = _CALLERS
    if built_from is not WORKLOADS:
        found: dict[str, list[str]] = {}
        for w in WORKLOADS:
            for callee in w.calls:
                found.setdefault(callee, []).append(w.name)
        index = {callee: tuple(names) for callee, names in found.items()}
        _CALLERS = (WORKLOADS, index)
    return index.get(name, ())


def owner_of_table(table: str) -> str | None:
    """The workload whose database holds ``table`` after the split, if any."""
    for w in WORKLOADS:
        if w.database and table in w.database.tables:
            return w.name
    return None


@dataclass(frozen=True)
class EventRoute:
    """One event name with who publishes and who consumes it (derived, for the event bus)."""

    event: str
    publishers: tuple[str, ...] = field(default=())
    consumers: tuple[str, ...] = field(default=())


def events() -> tuple[EventRoute, ...]:
    """Every event in the catalog, sorted by name."""
    all_events = sorted({e for w in WORKLOADS for e in (*w.publishes, *w.consumes)})
    return tuple(
        EventRoute(
            event=e,
            publishers=tuple(w.name for w in WORKLOADS if e in w.publishes),
            consumers=tuple(w.name for w in WORKLOADS if e in w.consumes),
        )
        for e in all_events
    )
