"""The Vinylhound monolith's database schema as data: all 17 tables, as the real database has them.

Facts from the base schema plus the numbered migrations that succeed (see
docs/architecture.md, "Data migration"). Who owns which table is NOT here: that is the catalog's
``Workload.database.tables``. ``infra.migration`` turns these facts and the catalog into SQL.

Types are PostgreSQL spellings; defaults are SQL expressions. Every foreign key cascades on delete
unless it says ``RESTRICT``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OnDelete = Literal["CASCADE", "RESTRICT"]


@dataclass(frozen=True)
class Column:
    """One column: PostgreSQL type, nullability and default expression."""

    name: str
    type: str
    not_null: bool = False
    default: str | None = None

    @property
    def serial(self) -> bool:
        """Whether the column owns a sequence (``bigserial``)."""
        return self.type == "bigserial"


@dataclass(frozen=True)
class ForeignKey:
    """A reference from ``columns`` of the owning table to ``table``'s ``ref_columns``."""

    columns: tuple[str, ...]
    table: str
    ref_columns: tuple[str, ...] = ("id",)
    on_delete: OnDelete = "CASCADE"


@dataclass(frozen=True)
class Check:
    """A named CHECK constraint."""

    name: str
    expression: str


@dataclass(frozen=True)
class Index:
    """A secondary index. ``definition`` is what follows ``ON <table>``."""

    name: str
    definition: str
    unique: bool = False
    where: str | None = None


@dataclass(frozen=True)
class Table:
    """One table of the monolith."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ("id",)
    uniques: tuple[tuple[str, ...], ...] = ()
    checks: tuple[Check, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    indexes: tuple[Index, ...] = ()
    #: A before-update trigger sets ``updated_at = now()``.
    touch_updated_at: bool = False

    def column(self, name: str) -> Column:
        """The column called ``name``."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    @property
    def serial_columns(self) -> tuple[str, ...]:
        """Columns fed by a sequence (logical replication does not copy sequences)."""
        return tuple(c.name for c in self.columns if c.serial)


def _id() -> Column:
    return Column("id", "bigserial", not_null=True)


def _ts(name: str) -> Column:
    return Column(name, "timestamptz", default="now()")


_STAMPS = (_ts("created_at"), _ts("updated_at"))


def _user_fk() -> ForeignKey:
    return ForeignKey(("user_id",), "users")


def _album_fk() -> ForeignKey:
    return ForeignKey(("album_id",), "albums")


def _rating_check(table: str, nullable: bool = False) -> Check:
    expr = "rating >= 1 AND rating <= 5"
    return Check(f"{table}_rating_check", f"rating IS NULL OR ({expr})" if nullable else expr)


TABLES: tuple[Table, ...] = (
    Table(
        "users",
        (
            _id(),
            Column("username", "varchar(255)", not_null=True),
            Column("password_hash", "varchar(255)", not_null=True),
            *_STAMPS,
        ),
        uniques=(("username",),),
        touch_updated_at=True,
    ),
    Table(
        "sessions",
        (
            Column("token", "varchar(255)", not_null=True),
            Column("user_id", "bigint", not_null=True),
            _ts("created_at"),
            Column("expires_at", "timestamptz", not_null=True),
        ),
        primary_key=("token",),
        foreign_keys=(_user_fk(),),
        indexes=(
            Index("idx_sessions_user_id", "(user_id)"),
            Index("idx_sessions_expires_at", "(expires_at)"),
        ),
    ),
    Table(
        "user_content",
        (
            _id(),
            Column("user_id", "bigint", not_null=True),
            Column("position", "integer", not_null=True),
            Column("entry", "text", not_null=True),
            _ts("created_at"),
        ),
        foreign_keys=(_user_fk(),),
    ),
    Table(
        "albums",
        (
            _id(),
            Column("user_id", "bigint", not_null=True),
            Column("artist", "text", not_null=True),
            Column("title", "text", not_null=True),
            Column("release_year", "integer", not_null=True),
            Column("tracks", "jsonb", not_null=True, default="'[]'::jsonb"),
            Column("genres", "jsonb", not_null=True, default="'[]'::jsonb"),
            Column("rating", "integer", not_null=True),
            Column("genre", "varchar(100)"),
            Column("cover_url", "text"),
            *_STAMPS,
        ),
        checks=(Check("albums_release_year_check", "release_year > 0"), _rating_check("albums")),
        foreign_keys=(_user_fk(),),
        indexes=(
            Index("idx_albums_user_id", "(user_id)"),
            Index("idx_albums_artist", "(artist)"),
            Index("idx_albums_genre", "(genre)"),
            Index("idx_albums_release_year", "(release_year)"),
            Index("idx_albums_rating", "(rating)"),
            Index("idx_albums_user_year", "(user_id, release_year DESC)"),
            Index("idx_albums_artist_trgm", "USING gin (artist gin_trgm_ops)"),
            Index("idx_albums_title_trgm", "USING gin (title gin_trgm_ops)"),
            Index("idx_albums_genres", "USING gin (genres)"),
        ),
    ),
    Table(
        "artists",
        (
            _id(),
            Column("name", "varchar(255)", not_null=True),
            Column("biography", "text"),
            Column("image_url", "text"),
            *_STAMPS,
            Column("external_id", "text"),
            Column("provider", "text"),
            Column("genres", "jsonb", default="'[]'::jsonb"),
            Column("popularity", "integer"),
            Column("external_url", "text"),
        ),
        uniques=(("name",),),
        indexes=(Index("idx_artists_external", "(external_id, provider)"),),
    ),
    Table(
        "songs",
        (
            _id(),
            Column("title", "varchar(255)", not_null=True),
            Column("artist", "varchar(255)", not_null=True),
            Column("album_id", "bigint"),
            Column("duration", "integer"),
            Column("track_num", "integer"),
            *_STAMPS,
        ),
        foreign_keys=(_album_fk(),),
    ),
    Table(
        "ratings",
        (
            _id(),
            Column("user_id", "bigint", not_null=True),
            Column("album_id", "bigint", not_null=True),
            Column("rating", "integer", not_null=True),
            *_STAMPS,
        ),
        uniques=(("user_id", "album_id"),),
        checks=(_rating_check("ratings"),),
        foreign_keys=(_user_fk(), _album_fk()),
    ),
    Table(
        "reviews",
        (
            _id(),
            Column("user_id", "bigint", not_null=True),
            Column("album_id", "bigint", not_null=True),
            Column("title", "varchar(255)", not_null=True),
            Column("content", "text", not_null=True),
            *_STAMPS,
        ),
        foreign_keys=(_user_fk(), _album_fk()),
    ),
    Table(
        "user_preferences",
        (
            _id(),
            Column("user_id", "bigint", not_null=True),
            Column("genre", "varchar(100)", not_null=True),
            Column("weight", "numeric(3,2)", not_null=True, default="1.0"),
            *_STAMPS,
        ),
        checks=(Check("user_preferences_weight_check", "weight >= 0 AND weight <= 1"),),
        foreign_keys=(_user_fk(),),
    ),
    Table(
        "user_album_preferences",
        (
            Column("user_id", "bigint", not_null=True),
            Column("album_id", "bigint", not_null=True),
            Column("rating", "integer"),
            Column("favorited", "boolean", not_null=True, default="false"),
            _ts("updated_at"),
        ),
        primary_key=("user_id", "album_id"),
        checks=(_rating_check("user_album_preferences", nullable=True),),
        foreign_keys=(_user_fk(), _album_fk()),
        indexes=(
            Index("idx_uap_album_rated", "(album_id)", where="rating IS NOT NULL"),
            Index("idx_uap_user_favorited", "(user_id, favorited)", where="favorited"),
        ),
    ),
    Table(
        "playlists",
        (
            _id(),
            Column("title", "varchar(255)", not_null=True),
            Column("description", "text"),
            Column("owner", "varchar(255)", not_null=True),
            Column("user_id", "bigint", not_null=True),
            Column("tags", "text[]", default="'{}'::text[]"),
            Column("is_public", "boolean", default="false"),
            Column("is_favorite", "boolean", default="false"),
            *_STAMPS,
        ),
        foreign_keys=(_user_fk(),),
        indexes=(Index("idx_playlists_one_favorite", "(user_id)", unique=True, where="is_favorite"),),
    ),
    Table(
        "playlist_songs",
        (
            _id(),
            Column("playlist_id", "bigint", not_null=True),
            Column("position", "integer", not_null=True),
            Column("title", "varchar(255)", not_null=True),
            Column("artist", "varchar(255)", not_null=True),
            Column("album", "varchar(255)"),
            Column("length_seconds", "integer", default="0"),
            Column("genre", "varchar(100)"),
            *_STAMPS,
        ),
        uniques=(("playlist_id", "position"),),
        foreign_keys=(ForeignKey(("playlist_id",), "playlists"),),
    ),
    Table(
        "favorites",
        (
            _id(),
            Column("user_id", "bigint", not_null=True),
            Column("song_id", "bigint"),
            Column("album_id", "bigint"),
            _ts("created_at"),
        ),
        uniques=(("user_id", "song_id"), ("user_id", "album_id")),
        checks=(
            Check(
                "favorites_exactly_one_target",
                "(song_id IS NOT NULL AND album_id IS NULL) OR (song_id IS NULL AND album_id IS NOT NULL)",
            ),
        ),
        foreign_keys=(_user_fk(), ForeignKey(("song_id",), "songs"), _album_fk()),
    ),
    Table(
        "album_collections",
        (
            _id(),
            Column("user_id", "bigint", not_null=True),
            Column("album_id", "bigint", not_null=True),
            Column("collection_type", "varchar(20)", not_null=True),
            Column("notes", "text"),
            _ts("date_added"),
            Column("date_acquired", "timestamptz"),
            Column("purchase_price", "numeric(10,2)"),
            Column("condition", "varchar(20)"),
            *_STAMPS,
        ),
        uniques=(("user_id", "album_id", "collection_type"),),
        checks=(
            Check("album_collections_type_check", "collection_type IN ('wishlist', 'owned')"),
            Check(
                "album_collections_condition_check",
                "condition IS NULL OR condition IN "
                "('mint', 'near_mint', 'very_good', 'good', 'fair', 'poor')",
            ),
        ),
        foreign_keys=(_user_fk(), _album_fk()),
        touch_updated_at=True,
    ),
    Table(
        "venues",
        (
            _id(),
            Column("user_id", "bigint"),
            Column("name", "varchar(255)", not_null=True),
            Column("address", "varchar(500)", not_null=True),
            Column("city", "varchar(100)", not_null=True),
            Column("state", "varchar(50)", not_null=True),
            Column("capacity", "integer"),
            Column("description", "text"),
            *_STAMPS,
        ),
        foreign_keys=(_user_fk(),),
    ),
    Table(
        "retailers",
        (
            _id(),
            Column("user_id", "bigint"),
            Column("name", "varchar(255)", not_null=True),
            Column("address", "varchar(500)", not_null=True),
            Column("city", "varchar(100)", not_null=True),
            Column("state", "varchar(50)", not_null=True),
            Column("specialty", "varchar(100)"),
            Column("website", "varchar(500)"),
            Column("description", "text"),
            *_STAMPS,
        ),
        foreign_keys=(_user_fk(),),
    ),
    Table(
        "concerts",
        (
            _id(),
            Column("user_id", "bigint"),
            Column("venue_id", "bigint"),
            Column("artist_name", "varchar(255)", not_null=True),
            Column("name", "varchar(500)", not_null=True),
            Column("date", "timestamptz", not_null=True),
            Column("ticket_price", "numeric(10,2)"),
            Column("notes", "text"),
            Column("attended", "boolean", default="false"),
            Column("rating", "integer"),
            *_STAMPS,
        ),
        checks=(_rating_check("concerts", nullable=True),),
        foreign_keys=(_user_fk(), ForeignKey(("venue_id",), "venues", on_delete="RESTRICT")),
    ),
)

#: Extensions the monolith database needs (trigram indexes on albums).
EXTENSIONS: tuple[str, ...] = ("pg_trgm",)

#: Tables with a before-update trigger that sets a column ``updated_at`` the table does not have:
#: a later migration's bug, so every UPDATE on them fails in the real monolith. Reproduced in the
#: monolith schema (tests must see the real behaviour); never carried into a service's schema.
BROKEN_TOUCH_TRIGGERS: tuple[str, ...] = ("user_content",)

#: The cross-table trigger: inserting a user creates its "Favorites" playlist. It writes into
#: ``playlists`` from ``users``, so it cannot survive the split; the ``user.created`` event
#: (published by user-service, consumed by playlist-service) replaces it.
FAVORITES_TRIGGER_TABLES: tuple[str, str] = ("users", "playlists")

#: The cross-service foreign keys as the schema facts list them (``table.column -> table``). The
#: migration derives the same set from the catalog's ownership; a test keeps the two equal.
DOCUMENTED_CROSS_SERVICE_FKS: frozenset[tuple[str, str, str]] = frozenset(
    {
        ("albums", "user_id", "users"),
        ("ratings", "user_id", "users"),
        ("reviews", "user_id", "users"),
        ("user_preferences", "user_id", "users"),
        ("user_album_preferences", "user_id", "users"),
        ("ratings", "album_id", "albums"),
        ("reviews", "album_id", "albums"),
        ("user_album_preferences", "album_id", "albums"),
        ("playlists", "user_id", "users"),
        ("favorites", "user_id", "users"),
        ("favorites", "song_id", "songs"),
        ("favorites", "album_id", "albums"),
        ("album_collections", "user_id", "users"),
        ("album_collections", "album_id", "albums"),
        ("venues", "user_id", "users"),
        ("retailers", "user_id", "users"),
        ("concerts", "user_id", "users"),
    }
)

_BY_NAME = {t.name: t for t in TABLES}


def table(name: str) -> Table:
    """The table called ``name``; ``KeyError`` if the monolith has none."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"the monolith schema has no table {name!r}") from None


def names() -> tuple[str, ...]:
    """Every table name, in schema order."""
    return tuple(_BY_NAME)
