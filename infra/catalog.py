"""The Vinylhound service catalog: every fact about a workload lives here, once.

Ports, health paths, routes, the environment each binary reads, the tables each owns and the
events each publishes or consumes come from the real Vinylhound repositories (see
docs/architecture.md). Everything else in the program (Deployments, routes, databases, monitors,
policies) is derived from this module. Adding a service is one entry here plus stack config.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field, replace
from typing import Literal

Auth = Literal["public", "bearer"]
Role = Literal["monolith", "service", "gateway", "frontend"]
Method = Literal["GET", "POST", "PUT", "DELETE"]

#: Every API route of the current API lives under this prefix; the edge and the gateway strip nothing.
API_ROOT = "/api/v1"

_PARAM = re.compile(r"\{[A-Za-z]+\}")


@dataclass(frozen=True)
class Endpoint:
    """One method and path template a workload registers, e.g. ``GET /api/v1/playlists/{id}``.

    ``writes``: the tables its handler writes. ``gap``: for a service, how its answer differs from
    the monolith's at the same method and template (a different resource, another JSON shape, an
    error it always returns); ``None`` when it serves it the way the front end expects. Facts from
    shared/reference/vinylhound-endpoints.yaml (monolith d539b95, services 73fec8d).
    """

    method: Method
    path: str
    auth: Auth = "public"
    writes: tuple[str, ...] = ()
    gap: str | None = None

    @property
    def key(self) -> str:
        """How stack config names the endpoint: ``"GET /api/v1/users/profile"``."""
        return f"{self.method} {self.path}"

    @property
    def is_read(self) -> bool:
        """Whether it only reads (GET): the only kind that is split, mirrored or contract-checked."""
        return self.method == "GET"

    @property
    def params(self) -> int:
        """How many ``{param}`` segments the template has."""
        return len(_PARAM.findall(self.path))

    def sample_path(self, value: str = "1") -> str:
        """A concrete request path for the template, every ``{param}`` replaced by ``value``."""
        return _PARAM.sub(value, self.path)


def _ep(spec: str, auth: Auth = "public", writes: tuple[str, ...] = (), gap: str | None = None) -> Endpoint:
    """``Endpoint`` from ``"METHOD /path"``: keeps the tables below one line per endpoint."""
    method, path = spec.split(" ", 1)
    return Endpoint(method, path, auth, writes, gap)  # type: ignore[arg-type]


@dataclass(frozen=True)
class GatewayRoute:
    """One route of the api-gateway's table: a plain string prefix (``/api/v1/albums`` also
    catches ``/api/v1/albumsX``), the methods it accepts (``None``: any) and the upstream."""

    prefix: str
    methods: tuple[str, ...] | None
    target: str

    def matches(self, method: str, path: str) -> bool:
        """Whether the gateway sends ``method path`` along this route (gorilla/mux PathPrefix)."""
        bare = path.split("?", 1)[0]
        return bare.startswith(self.prefix) and (self.methods is None or method in self.methods)


@dataclass(frozen=True)
class StartupWrite:
    """Rows a binary writes on every start, before it serves (not through any endpoint)."""

    step: str
    tables: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True)
class ApiCall:
    """One call the front end makes (``src/api/*.js``); ``used_by_ui`` False: exported, never called."""

    endpoint: str
    used_by_ui: bool = True
    #: A concrete request for the template, when the call carries a query the route depends on.
    sample: str | None = None


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
    tests, not at deploy time. ``endpoints`` is what the binary registers, nothing more: the edge
    sends an endpoint to a service only if the service lists it here.
    """

    name: str
    role: Role
    image: str
    port: int
    health_path: str | None
    env: tuple[str, ...]
    endpoints: tuple[Endpoint, ...] = ()
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
    #: Writes the binary makes on every start (they reach whichever database it is wired to).
    startup_writes: tuple[StartupWrite, ...] = ()
    #: The gateway's own route table, in the order it tries it (first match wins, no fallback).
    gateway_table: tuple[GatewayRoute, ...] = ()
    #: The front end's API calls.
    api_calls: tuple[ApiCall, ...] = ()
    description: str = ""

    @property
    def url_env(self) -> str:
        """The variable the api-gateway reads this workload's base URL from."""
        return self.name.removesuffix("-service").upper().replace("-", "_") + "_SERVICE_URL"

    def endpoint(self, key: str) -> Endpoint | None:
        """The endpoint ``"METHOD /path"`` if this workload registers it."""
        return self._endpoints_by_key.get(key)

    @functools.cached_property
    def _endpoints_by_key(self) -> dict[str, Endpoint]:
        # Looked up once per route decision for every workload: an index, not a scan of the
        # monolith's ~50 endpoints each time (the entry is frozen, so the index never goes stale).
        return {e.key: e for e in reversed(self.endpoints)}


_DB_ENV = ("DB_HOST", "DB_PORT", "DB_USER", "DB_PASSWORD", "DB_NAME", "DB_SSLMODE")

# The monolith (d539b95): every API endpoint it registers, the legacy /api/* ones included (it also
# answers /health for any method and every OPTIONS with 204, before routing).
_MONOLITH_ENDPOINTS = (
    _ep("POST /api/v1/auth/signup", writes=("users", "user_content", "playlists")),
    _ep("POST /api/v1/auth/login", writes=("sessions",)),
    _ep("GET /api/v1/users/profile", "bearer"),
    _ep("PUT /api/v1/users/profile", "bearer", writes=("user_content",)),
    _ep("GET /api/v1/me/albums", "bearer"),
    _ep("POST /api/v1/me/albums", "bearer", writes=("albums",)),
    _ep("GET /api/v1/me/albums/preferences", "bearer"),
    _ep("PUT /api/v1/me/albums/{id}/preference", "bearer", writes=("user_album_preferences",)),
    _ep("DELETE /api/v1/me/albums/{id}/preference", "bearer", writes=("user_album_preferences",)),
    _ep("GET /api/v1/albums"),
    _ep("GET /api/v1/albums/{id}"),
    _ep("GET /api/v1/playlists", "bearer"),
    _ep("POST /api/v1/playlists", "bearer", writes=("playlists", "playlist_songs")),
    _ep("GET /api/v1/playlists/{id}"),
    _ep("PUT /api/v1/playlists/{id}", "bearer", writes=("playlists", "playlist_songs")),
    _ep("DELETE /api/v1/playlists/{id}", "bearer", writes=("playlists", "playlist_songs")),
    _ep("POST /api/v1/playlists/{id}/songs", "bearer", writes=("playlist_songs",)),
    _ep("DELETE /api/v1/playlists/{id}/songs/{songId}", "bearer", writes=("playlist_songs",)),
    _ep("GET /api/v1/songs"),
    _ep("GET /api/v1/songs/{id}"),
    _ep("GET /api/v1/me/favorites/tracks", "bearer"),
    _ep(
        "PUT /api/v1/me/favorites/tracks/{trackId}",
        "bearer",
        writes=("favorites", "playlists", "playlist_songs"),
    ),
    _ep("DELETE /api/v1/me/favorites/tracks/{trackId}", "bearer", writes=("favorites",)),
    # The /favorites family is a stub: always 501, token presence only.
    _ep("GET /api/v1/favorites", "bearer"),
    _ep("POST /api/v1/favorites", "bearer"),
    _ep("DELETE /api/v1/favorites", "bearer"),
    _ep("GET /api/v1/favorites/check", "bearer"),
    _ep("GET /api/v1/favorites/playlist", "bearer"),
    # Writes artists only with store_results; needs the Spotify credentials to return anything.
    _ep("POST /api/v1/search", writes=("artists",)),
    _ep("POST /api/v1/import/album", "bearer", writes=("albums", "songs")),
    _ep("GET /api/v1/providers"),
    _ep("GET /api/v1/artist"),
    _ep("GET /api/v1/album/details"),
    _ep("GET /api/v1/artists"),
    _ep("POST /api/v1/artists", writes=("artists",)),
    _ep("POST /api/v1/venues", "bearer", writes=("venues",)),
    _ep("GET /api/v1/venues", "bearer"),
    _ep("GET /api/v1/venues/{id}"),
    _ep("PUT /api/v1/venues/{id}", "bearer", writes=("venues",)),
    _ep("DELETE /api/v1/venues/{id}", "bearer", writes=("venues",)),
    _ep("POST /api/v1/retailers", "bearer", writes=("retailers",)),
    _ep("GET /api/v1/retailers", "bearer"),
    _ep("GET /api/v1/retailers/{id}"),
    _ep("PUT /api/v1/retailers/{id}", "bearer", writes=("retailers",)),
    _ep("DELETE /api/v1/retailers/{id}", "bearer", writes=("retailers",)),
    _ep("POST /api/v1/concerts", "bearer", writes=("concerts",)),
    _ep("GET /api/v1/concerts", "bearer"),
    _ep("GET /api/v1/concerts/{id}"),
    _ep("PUT /api/v1/concerts/{id}", "bearer", writes=("concerts",)),
    _ep("DELETE /api/v1/concerts/{id}", "bearer", writes=("concerts",)),
    _ep("POST /api/v1/concerts/{id}/attend", "bearer", writes=("concerts",)),
    _ep("GET /api/v1/collections", "bearer"),
    _ep("POST /api/v1/collections", "bearer", writes=("album_collections",)),
    _ep("GET /api/v1/collections/{id}"),
    _ep("PUT /api/v1/collections/{id}", "bearer", writes=("album_collections",)),
    _ep("DELETE /api/v1/collections/{id}", "bearer", writes=("album_collections",)),
    _ep("POST /api/v1/collections/{id}/move", "bearer", writes=("album_collections",)),
    _ep("GET /api/v1/collections/stats", "bearer"),
    # Legacy routes, same handlers as their /api/v1 twins.
    _ep("POST /api/signup", writes=("users", "user_content", "playlists")),
    _ep("POST /api/login", writes=("sessions",)),
    _ep("GET /api/me/content", "bearer"),
    _ep("PUT /api/me/content", "bearer", writes=("user_content",)),
    _ep("GET /api/me/albums", "bearer"),
    _ep("POST /api/me/albums", "bearer", writes=("albums",)),
    _ep("GET /api/me/albums/preferences", "bearer"),
    _ep("PUT /api/me/albums/{id}/preference", "bearer", writes=("user_album_preferences",)),
    _ep("DELETE /api/me/albums/{id}/preference", "bearer", writes=("user_album_preferences",)),
    _ep("GET /api/albums"),
    _ep("GET /api/album"),
    _ep("GET /api/me/favorites/tracks", "bearer"),
    _ep(
        "PUT /api/me/favorites/tracks/{trackId}",
        "bearer",
        writes=("favorites", "playlists", "playlist_songs"),
    ),
    _ep("DELETE /api/me/favorites/tracks/{trackId}", "bearer", writes=("favorites",)),
)

# The services (73fec8d, the newest commit where they build). Their JSON bodies go out as
# text/plain (no Content-Type set), except playlist-service's; none answers a CORS preflight.
_USER_ENDPOINTS = (
    _ep("POST /api/v1/auth/signup", writes=("users", "user_content")),
    _ep("POST /api/v1/auth/login", writes=("sessions",)),
    _ep(
        "GET /api/v1/users/profile",
        "bearer",
        gap="a different resource: the user record {id,username,created_at,updated_at}, not {content}",
    ),
    _ep("GET /api/v1/users/content", "bearer"),
    _ep("PUT /api/v1/users/content", "bearer", writes=("user_content",)),
)
_NULL_ALBUMS = "500 on the NULL genre/cover_url every monolith-written album has"
_CATALOG_ENDPOINTS = (
    _ep("GET /api/v1/albums", gap=f"snake_case keys, no trackList/genreList/rating; {_NULL_ALBUMS}"),
    _ep(
        "GET /api/v1/albums/{id}",
        gap="snake_case keys, no trackList/genreList/rating; 404 on NULL-column rows",
    ),
    _ep(
        "GET /api/v1/artists",
        gap="another shape (id, no external_id/provider); 500 on NULL biography/image_url",
    ),
    _ep("GET /api/v1/artists/{id}"),
    _ep("GET /api/v1/songs", gap="no album title, ignores q and album; 500 on NULL duration/track_num"),
    _ep("GET /api/v1/songs/{id}", gap="no album title; 404 on NULL-column rows"),
    _ep("POST /api/v1/catalog/albums", writes=("albums",)),
    _ep("PUT /api/v1/catalog/albums/{id}", writes=("albums",)),
    _ep("DELETE /api/v1/catalog/albums/{id}", writes=("albums",)),
)
_RATING_ENDPOINTS = (
    _ep("GET /api/v1/ratings"),
    _ep("GET /api/v1/ratings/{id}"),
    _ep("GET /api/v1/reviews"),
    _ep("GET /api/v1/reviews/{id}"),
    _ep("POST /api/v1/ratings", writes=("ratings",)),
    _ep("PUT /api/v1/ratings/{id}", writes=("ratings",)),
    _ep("DELETE /api/v1/ratings/{id}", writes=("ratings",)),
    _ep("POST /api/v1/reviews", writes=("reviews",)),
    _ep("PUT /api/v1/reviews/{id}", writes=("reviews",)),
    _ep("DELETE /api/v1/reviews/{id}", writes=("reviews",)),
    # No middleware sets the user, so both always answer 401.
    _ep("GET /api/v1/preferences", gap="always 401: no middleware sets the user"),
    _ep("PUT /api/v1/preferences", gap="always 401: no middleware sets the user"),
    _ep("PUT /api/v1/me/albums/{id}/preference", gap="always 501 (not implemented)"),
)
_NULL_SONGS = "500 when a playlist song has a NULL album or genre (every song the monolith adds)"
_PLAYLIST_ENDPOINTS = (
    _ep("GET /api/v1/playlists", gap=f"every user's playlists, no auth; {_NULL_SONGS}"),
    _ep(
        "POST /api/v1/playlists",
        writes=("playlists", "playlist_songs"),
        gap="always 400 on the current schema (omits the NOT NULL user_id); wants owner in the body",
    ),
    _ep(
        "GET /api/v1/playlists/{id}",
        gap=f"no description/user_id/is_favorite, songs null when empty; {_NULL_SONGS}",
    ),
    _ep("PUT /api/v1/playlists/{id}", writes=("playlists", "playlist_songs"), gap="always 400 (tags scan)"),
    _ep(
        "DELETE /api/v1/playlists/{id}",
        writes=("playlists", "playlist_songs"),
        gap="no auth or owner check: deletes any user's playlist, Favorites included",
    ),
)

# The api-gateway (infra b71a2fc cmd/gateway): gorilla PathPrefix routes, public ones first. No
# fallback: anything unmatched (search, import, collections, ...) gets the gateway's own 404, and a
# method mismatch is a 404 too. /health answers itself.
_READ = ("GET", "OPTIONS")
_CHANGE = ("POST", "PUT", "DELETE")
_GATEWAY_TABLE = (
    GatewayRoute("/api/v1/auth/signup", None, "user-service"),
    GatewayRoute("/api/v1/auth/login", None, "user-service"),
    GatewayRoute("/api/v1/albums", _READ, "catalog-service"),
    GatewayRoute("/api/v1/artists", _READ, "catalog-service"),
    GatewayRoute("/api/v1/songs", _READ, "catalog-service"),
    GatewayRoute("/api/v1/catalog", _READ, "catalog-service"),
    GatewayRoute("/api/v1/users", None, "user-service"),
    GatewayRoute("/api/v1/me", None, "user-service"),
    GatewayRoute("/api/v1/albums", _CHANGE, "catalog-service"),
    GatewayRoute("/api/v1/artists", _CHANGE, "catalog-service"),
    GatewayRoute("/api/v1/songs", _CHANGE, "catalog-service"),
    GatewayRoute("/api/v1/ratings", None, "rating-service"),
    GatewayRoute("/api/v1/reviews", None, "rating-service"),
    GatewayRoute("/api/v1/preferences", None, "rating-service"),
    GatewayRoute("/api/v1/playlists", None, "playlist-service"),
)

# The front end (bb37c4a src/api/*.js): 35 distinct calls, 26 of them reachable from the UI.
_FRONTEND_CALLS = (
    ApiCall("POST /api/v1/auth/signup"),
    ApiCall("POST /api/v1/auth/login"),
    ApiCall("GET /api/v1/users/profile"),
    ApiCall("PUT /api/v1/users/profile"),
    ApiCall("GET /api/v1/albums"),
    ApiCall("GET /api/v1/albums/{id}"),
    ApiCall("GET /api/v1/songs", sample="/api/v1/songs?album_id=1"),
    ApiCall("GET /api/v1/me/albums"),
    ApiCall("PUT /api/v1/me/albums/{id}/preference"),
    ApiCall("DELETE /api/v1/me/albums/{id}/preference", used_by_ui=False),
    ApiCall("GET /api/v1/playlists"),
    ApiCall("GET /api/v1/playlists/{id}"),
    ApiCall("POST /api/v1/playlists"),
    ApiCall("POST /api/v1/playlists/{id}/songs"),
    ApiCall("PUT /api/v1/playlists/{id}"),
    ApiCall("DELETE /api/v1/playlists/{id}"),
    ApiCall("DELETE /api/v1/playlists/{id}/songs/{songId}"),
    ApiCall("GET /api/v1/songs/{id}", used_by_ui=False),
    ApiCall("POST /api/v1/search"),
    ApiCall("POST /api/v1/import/album"),
    ApiCall("GET /api/v1/providers", used_by_ui=False),
    ApiCall("GET /api/v1/artist", sample="/api/v1/artist?id=4Z8W4fKeB5YxbusRsdQVPb"),
    ApiCall("GET /api/v1/album/details", sample="/api/v1/album/details?id=6dVIqQ8qmQ5GBnJ9shOYGE"),
    ApiCall("GET /api/v1/artists"),
    ApiCall("POST /api/v1/artists"),
    ApiCall("GET /api/v1/me/favorites/tracks", used_by_ui=False),
    ApiCall("PUT /api/v1/me/favorites/tracks/{trackId}"),
    ApiCall("DELETE /api/v1/me/favorites/tracks/{trackId}"),
    ApiCall("GET /api/v1/collections"),
    ApiCall("POST /api/v1/collections"),
    ApiCall("GET /api/v1/collections/{id}", used_by_ui=False),
    ApiCall("PUT /api/v1/collections/{id}", used_by_ui=False),
    ApiCall("DELETE /api/v1/collections/{id}", used_by_ui=False),
    ApiCall("POST /api/v1/collections/{id}/move", used_by_ui=False),
    ApiCall("GET /api/v1/collections/stats", used_by_ui=False),
)

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
        endpoints=_MONOLITH_ENDPOINTS,
        startup_writes=(
            # cmd/vinylhound/bootstrap.go: a failure other than "user exists" exits the process.
            StartupWrite("ensureDemoUser", ("users", "user_content", "playlists"), "demo user + Favorites"),
            StartupWrite(
                "ensureDemoAlbums", ("albums", "user_album_preferences"), "while demo has no albums"
            ),
        ),
        description="The Go monolith; serves every endpoint not moved to a service.",
    ),
    Workload(
        name="user-service",
        role="service",
        image="user-service",
        port=8001,
        health_path="/health",
        env=(*_DB_ENV, "JWT_SECRET", "PORT", "CORS_ALLOWED_ORIGINS"),
        endpoints=_USER_ENDPOINTS,
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
        endpoints=_CATALOG_ENDPOINTS,
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
        endpoints=_RATING_ENDPOINTS,
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
        endpoints=_PLAYLIST_ENDPOINTS,
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
        gateway_table=_GATEWAY_TABLE,
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
        api_calls=_FRONTEND_CALLS,
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

#: The workloads the catalog had when every resource was registered at the stack root under its
#: role's name (before commits c0ba3bd and 65cfaf3 moved them into area components and named them
#: after their component). Only their resources can be in a stack under a URN of then, so only they
#: carry the aliases that keep those URNs (``components.options.child_opts``). A workload added
#: since was first deployed inside its component: it has no older URN, and an alias for one would
#: be work for the SDK and the engine on every run for nothing. Checked against the catalog of
#: then by tests/test_structure.py.
_BEFORE_COMPONENTS = frozenset(
    {
        "monolith",
        "user-service",
        "catalog-service",
        "rating-service",
        "playlist-service",
        "api-gateway",
        "web-frontend",
    }
)


def predates_components(name: str) -> bool:
    """Whether workload ``name`` was deployed before the area components: its resources may
    exist under their old URNs and keep them through aliases."""
    return name in _BEFORE_COMPONENTS


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


def monolith() -> Workload:
    """The monolith's entry: its endpoints are the full API every request falls back to."""
    return workload("monolith")


def services() -> tuple[Workload, ...]:
    """The extracted services, in catalog order."""
    return tuple(w for w in WORKLOADS if w.role == "service")


def monolith_endpoint(key: str) -> Endpoint | None:
    """The monolith's endpoint ``"METHOD /path"``, if it has one."""
    return monolith().endpoint(key)


def gateway_route(method: str, path: str) -> GatewayRoute | None:
    """The api-gateway route a request takes (first match), or ``None`` for the gateway's own 404."""
    table = workload("api-gateway").gateway_table
    return next((r for r in table if r.matches(method, path)), None)
