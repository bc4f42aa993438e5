"""The model of the monolith (``infra/schema.py``) against the real schema, on a real PostgreSQL.

The expected names below are transcribed from ``shared/reference/vinylhound-schema-real.md``,
case B1 (infra ``db/schema.sql`` plus backend migrations 0001-0013, statement by statement),
which was read from the system catalogs of a database built from the upstream files. The startup
writes are those of the monolith binary (``startup_writes`` in
``shared/reference/vinylhound-endpoints.yaml``; Vinylhound-Backend@d539b95
``cmd/vinylhound/bootstrap.go`` and ``internal/store/store.go`` ``CreateUser``).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from infra import migration
from tests import pg

Conn = psycopg.Connection[tuple[Any, ...]]
_counter = itertools.count()

#: Secondary indexes (not backing a constraint) per table, B1.
REAL_INDEXES: dict[str, set[str]] = {
    "users": {"idx_users_username"},
    "sessions": {"idx_sessions_token", "idx_sessions_user_id", "idx_sessions_expires_at"},
    "user_content": {"idx_user_content_user_id"},
    "albums": {
        "idx_albums_user_id",
        "idx_albums_artist",
        "idx_albums_genre",
        "idx_albums_release_year",
        "idx_albums_rating",
        "idx_albums_user_release",
        "idx_albums_artist_trgm",
        "idx_albums_title_trgm",
        "idx_albums_genres",
    },
    "artists": {"idx_artists_name", "idx_artists_external_id"},
    "songs": {"idx_songs_album_id", "idx_songs_artist"},
    "ratings": {"idx_ratings_user_id", "idx_ratings_album_id", "idx_ratings_rating"},
    "user_album_preferences": {
        "idx_user_album_preferences_user_id",
        "idx_user_album_preferences_album_id",
        "idx_user_album_prefs_album_id",
        "idx_user_album_prefs_favorited",
        "idx_user_album_prefs_updated",
        "idx_user_album_prefs_rating_stats",
    },
    "reviews": {"idx_reviews_user_id", "idx_reviews_album_id"},
    "user_preferences": {"idx_user_preferences_user_id", "idx_user_preferences_genre"},
    "playlists": {
        "idx_playlists_owner",
        "idx_playlists_is_favorite",
        "idx_playlists_user_favorite",
        "idx_playlists_tags",
        "idx_playlists_is_public",
    },
    "playlist_songs": {"idx_playlist_songs_playlist_id", "idx_playlist_songs_artist"},
    "favorites": {"idx_favorites_user_id", "idx_favorites_song_id", "idx_favorites_album_id"},
    "venues": {"idx_venues_user_id", "idx_venues_city_state"},
    "retailers": {"idx_retailers_user_id", "idx_retailers_city_state"},
    "concerts": {
        "idx_concerts_user_id",
        "idx_concerts_venue_id",
        "idx_concerts_artist_name",
        "idx_concerts_date",
        "idx_concerts_user_date",
        "idx_concerts_user_past",
    },
    "album_collections": {
        "idx_album_collections_user_id",
        "idx_album_collections_album_id",
        "idx_album_collections_user_type",
        "idx_album_collections_date_added",
    },
}

#: Triggers (table, trigger, function), B1.
REAL_TRIGGERS = {
    ("users", "trg_create_favorites_playlist", "create_default_favorites_playlist"),
    ("users", "users_updated_at", "update_users_updated_at"),
    ("user_content", "user_content_updated_at", "update_user_content_updated_at"),
    ("concerts", "concerts_updated_at_trigger", "update_concerts_updated_at"),
    ("album_collections", "album_collections_updated_at_trigger", "update_album_collections_updated_at"),
}

#: Unique and check constraints whose names are not ``<table>_<column>_...`` guesses, (a)/B1.
REAL_NAMED_CONSTRAINTS = {
    ("favorites", "check_favorite_type"),
    ("favorites", "unique_user_song_favorite"),
    ("favorites", "unique_user_album_favorite"),
    ("album_collections", "unique_user_album_collection"),
    ("album_collections", "album_collections_collection_type_check"),
}

#: Columns the model once had nullable that are NOT NULL in the real schema, (a).
REAL_NOT_NULLS = {
    ("venues", "user_id"),
    ("retailers", "user_id"),
    ("concerts", "user_id"),
    ("concerts", "venue_id"),
}


@pytest.fixture
def fresh(pg_server: pg.Server) -> Iterator[Conn]:
    """An empty monolith as dev starts it: the model's schema, no rows."""
    with pg_server.scratch_database(f"fresh_{next(_counter)}") as conn:
        conn.execute(migration.monolith_schema_sql())
        yield conn


def _rows(conn: Conn, sql: str) -> set[tuple[Any, ...]]:
    return set(conn.execute(sql).fetchall())


def test_a_fresh_monolith_has_every_real_secondary_index_under_its_real_name(fresh: Conn) -> None:
    found: dict[str, set[str]] = {}
    for table, index in _rows(
        fresh,
        "SELECT c.relname, i.relname FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid "
        "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.oid)",
    ):
        found.setdefault(table, set()).add(index)
    assert found == REAL_INDEXES


def test_a_fresh_monolith_has_the_real_triggers_with_their_real_functions(fresh: Conn) -> None:
    assert (
        _rows(
            fresh,
            "SELECT tgrelid::regclass::text, tgname, tgfoid::regproc::text FROM pg_trigger "
            "WHERE NOT tgisinternal",
        )
        == REAL_TRIGGERS
    )


def test_a_fresh_monolith_names_its_constraints_as_the_real_one_does(fresh: Conn) -> None:
    named = _rows(fresh, "SELECT conrelid::regclass::text, conname FROM pg_constraint WHERE contype <> 'n'")
    assert named >= REAL_NAMED_CONSTRAINTS


def test_a_fresh_monolith_has_the_real_not_nulls(fresh: Conn) -> None:
    not_null = _rows(
        fresh,
        "SELECT attrelid::regclass::text, attname FROM pg_attribute "
        "WHERE attnotnull AND attnum > 0 AND attrelid = ANY(ARRAY["
        "'venues'::regclass, 'retailers'::regclass, 'concerts'::regclass])",
    )
    assert not_null >= REAL_NOT_NULLS


def test_updating_a_concert_moves_its_updated_at_as_the_real_trigger_does(fresh: Conn) -> None:
    fresh.execute("INSERT INTO users (username, password_hash) VALUES ('u', 'h')")
    fresh.execute("INSERT INTO venues (user_id, name, address, city, state) VALUES (1, 'v', 'a', 'c', 's')")
    fresh.execute(
        "INSERT INTO concerts (user_id, venue_id, artist_name, name, date, updated_at) "
        "VALUES (1, 1, 'a', 'n', now(), '2000-01-01')"
    )
    fresh.execute("UPDATE concerts SET notes = 'x'")
    row = fresh.execute("SELECT updated_at > '2001-01-01' FROM concerts").fetchone()
    assert row == (True,)


# --- the monolith binary's startup writes -----------------------------------------------------


def _create_demo_user(conn: Conn) -> None:
    """``store.CreateUser('demo', ...)`` as ensureDemoUser calls it: one transaction."""
    with conn.transaction():
        (user_id,) = conn.execute(
            "INSERT INTO users (username, password_hash) VALUES (%s, %s) RETURNING id",
            ("demo", b"$2a$10$bcrypt-hash-of-the-demo-password"),
        ).fetchone() or (None,)
        for position, entry in enumerate(
            ["Welcome to Vinylhound!", "Start by customizing your personal playlist."]
        ):
            conn.execute(
                "INSERT INTO user_content (user_id, position, entry) VALUES (%s, %s, %s)",
                (user_id, position, entry),
            )
        conn.execute(
            "INSERT INTO playlists (title, description, owner, user_id, is_favorite, is_public) "
            "VALUES (%s, %s, %s, %s, TRUE, FALSE)",
            ("Favorites", "Your favorited songs and albums", "demo", user_id),
        )


def _ensure_demo_user(conn: Conn) -> None:
    """ensureDemoUser: a unique violation on users means the user exists (ignored); any other
    error ends the process (here: propagates)."""
    try:
        _create_demo_user(conn)
    except psycopg.errors.UniqueViolation as err:
        if err.diag.constraint_name != "users_username_key":
            raise


def _ensure_demo_albums(conn: Conn) -> None:
    """ensureDemoAlbums: when demo has no albums, one transaction of album inserts, each with an
    upsert of the demo user's preference."""
    row = conn.execute("SELECT id FROM users WHERE username = 'demo'").fetchone()
    assert row is not None
    (count,) = conn.execute("SELECT count(*) FROM albums WHERE user_id = %s", row).fetchone() or (0,)
    if count:
        return
    with conn.transaction():
        for n, rating in enumerate([5, 4, 5, 5, 4, 4, 5, 4]):
            (album_id,) = conn.execute(
                "INSERT INTO albums (user_id, artist, title, release_year, tracks, genres, rating) "
                "VALUES (%s, %s, %s, %s, %s::jsonb, %s::jsonb, %s) RETURNING id",
                (row[0], f"Artist {n}", f"Title {n}", 1990 + n, json.dumps(["a", "b"]), '["x"]', rating),
            ).fetchone() or (None,)
            conn.execute(
                "INSERT INTO user_album_preferences (user_id, album_id, rating, favorited, updated_at) "
                "VALUES (%s, %s, %s, %s, NOW()) ON CONFLICT (user_id, album_id) "
                "DO UPDATE SET rating = EXCLUDED.rating, favorited = EXCLUDED.favorited, updated_at = NOW()",
                (row[0], album_id, rating, n % 2 == 0),
            )


def _demo_favorites(conn: Conn) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT p.title, p.description, p.owner, p.is_public FROM playlists p "
        "JOIN users u ON u.id = p.user_id WHERE u.username = 'demo' AND p.is_favorite"
    ).fetchall()


FAVORITES = ("Favorites", "Your favorited songs and albums", "demo", False)


def test_the_monolith_binarys_startup_writes_succeed_on_a_fresh_monolith(fresh: Conn) -> None:
    _ensure_demo_user(fresh)
    _ensure_demo_albums(fresh)
    assert _demo_favorites(fresh) == [FAVORITES]
    assert fresh.execute("SELECT count(*) FROM albums").fetchone() == (8,)


def test_a_restarted_monolith_finds_its_demo_user_and_keeps_one_favorites(fresh: Conn) -> None:
    for _ in range(2):
        _ensure_demo_user(fresh)
        _ensure_demo_albums(fresh)
    assert _demo_favorites(fresh) == [FAVORITES]


def test_a_demo_user_created_elsewhere_first_gets_one_favorites_and_the_monolith_still_starts(
    fresh: Conn,
) -> None:
    fresh.execute("INSERT INTO users (username, password_hash) VALUES ('demo', 'from another writer')")
    _ensure_demo_user(fresh)
    _ensure_demo_albums(fresh)
    assert _demo_favorites(fresh) == [FAVORITES]
