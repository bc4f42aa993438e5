"""The Vinylhound monolith's database schema as data: all 17 tables, as the real database has them.

The facts are those of ``shared/reference/vinylhound-schema-real.md``, case B1: the infra
``db/schema.sql`` plus the backend migrations 0001-0013 applied statement by statement (column
order, types, NOT NULLs, defaults, constraint, index, trigger and function names as PostgreSQL
reports them). One deliberate difference, see ``FAVORITES_TRIGGER``. Who owns which table is
NOT here: that is the catalog's ``Workload.database.tables``. ``infra.migration`` turns these
facts and the catalog into SQL for dev's fresh monolith and the tests; a live monolith's service
schemas come from the live catalogs (``infra.live_schema``), not from here.

Types are PostgreSQL spellings; defaults are SQL expressions. Every foreign key cascades on delete
unless it says ``RESTRICT``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OnDelete = Literal["CASCADE", "RESTRICT"]


@dataclass(frozen=True)
class Column:
    """One column: PostgreSQL type, nullability, default expression and comment."""

    name: str
    type: str
    not_null: bool = False
    default: str | None = None
    comment: str | None = None

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
class Unique:
    """A named UNIQUE constraint."""

    name: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Index:
    """A secondary index. ``definition`` is what follows ``ON <table>``."""

    name: str
    definition: str
    unique: bool = False
    where: str | None = None


@dataclass(frozen=True)
class Trigger:
    """A row trigger and its plpgsql function.

    ``event`` is e.g. ``BEFORE UPDATE``; ``body`` is the function's statements before
    ``RETURN NEW``. ``writes`` names the other tables the function writes: a service schema
    keeps the trigger only when it owns them. ``deferred`` makes it a constraint trigger that
    fires at commit (``AFTER`` events only)."""

    name: str
    function: str
    event: str
    body: str
    writes: tuple[str, ...] = ()
    deferred: bool = False


@dataclass(frozen=True)
class Table:
    """One table of the monolith."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ("id",)
    uniques: tuple[Unique, ...] = ()
    checks: tuple[Check, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    indexes: tuple[Index, ...] = ()
    triggers: tuple[Trigger, ...] = ()
    comment: str | None = None

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


def _ts(name: str, default: str = "now()") -> Column:
    return Column(name, "timestamptz", default=default)


_STAMPS = (_ts("created_at"), _ts("updated_at"))
#: The tables of migrations 0010-0012 spell their timestamp defaults CURRENT_TIMESTAMP.
_STAMPS_0010 = (_ts("created_at", "CURRENT_TIMESTAMP"), _ts("updated_at", "CURRENT_TIMESTAMP"))


def _user_fk() -> ForeignKey:
    return ForeignKey(("user_id",), "users")


def _album_fk() -> ForeignKey:
    return ForeignKey(("album_id",), "albums")


def _rating_check(table: str, nullable: bool = False) -> Check:
    expr = "rating >= 1 AND rating <= 5"
    return Check(f"{table}_rating_check", f"rating IS NULL OR ({expr})" if nullable else expr)


def _indexes(table: str, *columns: str) -> tuple[Index, ...]:
    """Plain one-column btree indexes named ``idx_<table>_<column>``."""
    return tuple(Index(f"idx_{table}_{c}", f"({c})") for c in columns)


def _touch(trigger: str, function: str, now: str) -> Trigger:
    return Trigger(trigger, function, "BEFORE UPDATE", f"NEW.updated_at = {now};")


#: The monolith's Favorites trigger (infra ``db/schema.sql``): inserting a user gives it a
#: "Favorites" playlist unless it has one. The real one fires right after the user's INSERT, so
#: the monolith binary's own startup transaction (user, content, then its own Favorites row)
#: hits ``idx_playlists_user_favorite`` (23505) and the monolith exits on a fresh database. Here
#: it is a constraint trigger deferred to commit: it then sees the binary's row and adds none,
#: and a user inserted without one still gets exactly one. Same name, function and effect.
FAVORITES_TRIGGER = Trigger(
    "trg_create_favorites_playlist",
    "create_default_favorites_playlist",
    "AFTER INSERT",
    "IF NOT EXISTS (SELECT 1 FROM playlists WHERE user_id = NEW.id AND is_favorite = TRUE) THEN\n"
    "    INSERT INTO playlists (title, description, owner, user_id, is_favorite, is_public)\n"
    "    VALUES ('Favorites', 'Your favorited songs and albums', NEW.username, NEW.id, TRUE, FALSE);\n"
    "END IF;",
    writes=("playlists",),
    deferred=True,
)

TABLES: tuple[Table, ...] = (
    Table(
        "users",
        (
            _id(),
            Column("username", "varchar(255)", not_null=True),
            Column("password_hash", "varchar(255)", not_null=True),
            *_STAMPS,
        ),
        uniques=(Unique("users_username_key", ("username",)),),
        indexes=_indexes("users", "username"),
        triggers=(FAVORITES_TRIGGER, _touch("users_updated_at", "update_users_updated_at", "NOW()")),
    ),
    Table(
        "sessions",
        (
            Column(
                "token", "varchar(255)", not_null=True, comment="Session token (base64 encoded random bytes)"
            ),
            Column("user_id", "bigint", not_null=True),
            _ts("created_at"),
            Column(
                "expires_at", "timestamptz", not_null=True, comment="Expiration timestamp for the session"
            ),
        ),
        primary_key=("token",),
        foreign_keys=(_user_fk(),),
        indexes=_indexes("sessions", "token", "user_id", "expires_at"),
        comment="User session tokens for authentication",
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
        indexes=_indexes("user_content", "user_id"),
        # Migration 0004's trigger sets a column this table does not have: every UPDATE of
        # user_content fails in the real monolith, and here too (tests see the real behaviour).
        triggers=(_touch("user_content_updated_at", "update_user_content_updated_at", "NOW()"),),
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
            *_indexes("albums", "user_id", "artist", "genre", "release_year", "rating"),
            Index("idx_albums_artist_trgm", "USING gin (artist gin_trgm_ops)"),
            Index("idx_albums_title_trgm", "USING gin (title gin_trgm_ops)"),
            Index("idx_albums_genres", "USING gin (genres)"),
            Index("idx_albums_user_release", "(user_id, release_year DESC)"),
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
        uniques=(Unique("artists_name_key", ("name",)),),
        indexes=(
            *_indexes("artists", "name"),
            Index("idx_artists_external_id", "(external_id, provider)"),
        ),
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
        indexes=_indexes("songs", "album_id", "artist"),
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
        uniques=(Unique("ratings_user_id_album_id_key", ("user_id", "album_id")),),
        checks=(_rating_check("ratings"),),
        foreign_keys=(_user_fk(), _album_fk()),
        indexes=_indexes("ratings", "user_id", "album_id", "rating"),
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
        # No IS NULL clause, as in the real schema: a NULL rating passes a CHECK anyway.
        checks=(_rating_check("user_album_preferences"),),
        foreign_keys=(_user_fk(), _album_fk()),
        indexes=(
            *_indexes("user_album_preferences", "user_id", "album_id"),
            Index("idx_user_album_prefs_album_id", "(album_id)", where="rating IS NOT NULL"),
            Index("idx_user_album_prefs_favorited", "(user_id, favorited)", where="favorited = true"),
            Index("idx_user_album_prefs_updated", "(user_id, updated_at DESC)"),
            Index(
                "idx_user_album_prefs_rating_stats", "(album_id, rating, user_id)", where="rating IS NOT NULL"
            ),
        ),
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
        indexes=_indexes("reviews", "user_id", "album_id"),
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
        checks=(Check("user_preferences_weight_check", "weight >= 0.0 AND weight <= 1.0"),),
        foreign_keys=(_user_fk(),),
        indexes=_indexes("user_preferences", "user_id", "genre"),
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
        indexes=(
            *_indexes("playlists", "owner", "is_favorite"),
            Index("idx_playlists_user_favorite", "(user_id)", unique=True, where="is_favorite = true"),
            Index("idx_playlists_tags", "USING gin (tags)"),
            *_indexes("playlists", "is_public"),
        ),
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
        uniques=(Unique("playlist_songs_playlist_id_position_key", ("playlist_id", "position")),),
        foreign_keys=(ForeignKey(("playlist_id",), "playlists"),),
        indexes=_indexes("playlist_songs", "playlist_id", "artist"),
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
        uniques=(
            Unique("unique_user_song_favorite", ("user_id", "song_id")),
            Unique("unique_user_album_favorite", ("user_id", "album_id")),
        ),
        checks=(
            Check(
                "check_favorite_type",
                "(song_id IS NOT NULL AND album_id IS NULL) OR (song_id IS NULL AND album_id IS NOT NULL)",
            ),
        ),
        foreign_keys=(_user_fk(), ForeignKey(("song_id",), "songs"), _album_fk()),
        indexes=_indexes("favorites", "user_id", "song_id", "album_id"),
    ),
    Table(
        "album_collections",
        (
            _id(),
            Column("user_id", "bigint", not_null=True),
            Column("album_id", "bigint", not_null=True),
            Column("collection_type", "varchar(20)", not_null=True),
            Column("notes", "text"),
            _ts("date_added", "CURRENT_TIMESTAMP"),
            Column("date_acquired", "timestamptz"),
            Column("purchase_price", "numeric(10,2)"),
            Column("condition", "varchar(20)"),
            *_STAMPS_0010,
        ),
        uniques=(Unique("unique_user_album_collection", ("user_id", "album_id", "collection_type")),),
        checks=(
            Check("album_collections_collection_type_check", "collection_type IN ('wishlist', 'owned')"),
            Check(
                "album_collections_condition_check",
                "condition IS NULL OR condition IN "
                "('mint', 'near_mint', 'very_good', 'good', 'fair', 'poor')",
            ),
        ),
        foreign_keys=(_user_fk(), _album_fk()),
        indexes=(
            *_indexes("album_collections", "user_id", "album_id"),
            Index("idx_album_collections_user_type", "(user_id, collection_type)"),
            Index("idx_album_collections_date_added", "(date_added DESC)"),
        ),
        triggers=(
            _touch(
                "album_collections_updated_at_trigger",
                "update_album_collections_updated_at",
                "CURRENT_TIMESTAMP",
            ),
        ),
    ),
    Table(
        "venues",
        (
            _id(),
            Column("user_id", "bigint", not_null=True),
            Column("name", "varchar(255)", not_null=True),
            Column("address", "varchar(500)", not_null=True),
            Column("city", "varchar(100)", not_null=True),
            Column("state", "varchar(50)", not_null=True),
            Column("capacity", "integer"),
            Column("description", "text"),
            *_STAMPS_0010,
        ),
        foreign_keys=(_user_fk(),),
        indexes=(*_indexes("venues", "user_id"), Index("idx_venues_city_state", "(city, state)")),
    ),
    Table(
        "retailers",
        (
            _id(),
            Column("user_id", "bigint", not_null=True),
            Column("name", "varchar(255)", not_null=True),
            Column("address", "varchar(500)", not_null=True),
            Column("city", "varchar(100)", not_null=True),
            Column("state", "varchar(50)", not_null=True),
            Column("specialty", "varchar(100)"),
            Column("website", "varchar(500)"),
            Column("description", "text"),
            *_STAMPS_0010,
        ),
        foreign_keys=(_user_fk(),),
        indexes=(*_indexes("retailers", "user_id"), Index("idx_retailers_city_state", "(city, state)")),
    ),
    Table(
        "concerts",
        (
            _id(),
            Column("user_id", "bigint", not_null=True),
            Column("venue_id", "bigint", not_null=True),
            Column("artist_name", "varchar(255)", not_null=True),
            Column("name", "varchar(500)", not_null=True),
            Column("date", "timestamptz", not_null=True),
            Column("ticket_price", "numeric(10,2)"),
            Column("notes", "text"),
            Column("attended", "boolean", default="false"),
            Column("rating", "integer"),
            *_STAMPS_0010,
        ),
        checks=(_rating_check("concerts", nullable=True),),
        foreign_keys=(_user_fk(), ForeignKey(("venue_id",), "venues", on_delete="RESTRICT")),
        # idx_concerts_user_upcoming is missing on purpose: PostgreSQL rejects its predicate
        # (CURRENT_TIMESTAMP is not immutable) on every database.
        indexes=(
            *_indexes("concerts", "user_id", "venue_id", "artist_name", "date"),
            Index("idx_concerts_user_date", "(user_id, date DESC)"),
            Index("idx_concerts_user_past", "(user_id, date DESC)", where="attended = true"),
        ),
        triggers=(_touch("concerts_updated_at_trigger", "update_concerts_updated_at", "CURRENT_TIMESTAMP"),),
    ),
)

#: Extensions the monolith database has (migration 0007, for the trigram indexes on albums).
EXTENSIONS: tuple[str, ...] = ("pg_trgm",)

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
