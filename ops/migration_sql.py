"""``vinylhound migration-sql``: the generated split SQL for one service, as a runnable script.

The Pulumi program declares each phase (replicating, cut-over, rolled-back). Running a step by
hand, or a whole plan against databases the program does not run, uses the same generated steps:
this prints them as the POSIX shell script the Kubernetes Jobs run (``psql`` against
``$MONOLITH_URI`` and ``$SERVICE_URI``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Literal

import typer

from infra import catalog, cross_writes, migration

Plan = Literal["schema", "replicate", "check", "cutover", "rollback"]
PLANS: tuple[Plan, ...] = ("schema", "replicate", "check", "cutover", "rollback")


def steps(
    service: str, plan: Plan, monolith_conninfo: str, service_conninfo: str, accept: Sequence[str] = ()
) -> list[migration.Step]:
    """The generated steps of ``plan`` for ``service`` (``KeyError`` for an unknown service). A
    cutover first checks the live monolith for writes into the service's tables from tables it
    keeps writing, except from the workloads in ``accept``."""
    w = catalog.workload(service)
    if w.database is None or w.role != "service":
        raise KeyError(f"{service} owns no tables to move")
    if plan == "schema":
        return [migration.service_schema_step(w)]
    if plan == "replicate":
        return migration.replication_steps(w, monolith_conninfo)
    if plan == "check":
        return migration.consistency_steps(w)
    if plan == "cutover":
        accepted = cross_writes.accepted_tables(catalog.WORKLOADS, accept)
        return migration.cutover_steps(
            w, service_conninfo, guards=[cross_writes.live_check_step(w, accepted)]
        )
    return migration.rollback_steps(w)


def script(
    service: str, plan: Plan, monolith_conninfo: str, service_conninfo: str, accept: Sequence[str] = ()
) -> str:
    """The steps as a shell script."""
    return migration.job_script(steps(service, plan, monolith_conninfo, service_conninfo, accept))


def migration_sql(
    service: Annotated[
        str, typer.Argument(metavar="SERVICE", help="Service whose tables move (user-service, ...).")
    ],
    plan: Annotated[
        str, typer.Argument(metavar="PLAN", help="schema, replicate, check, cutover or rollback.")
    ],
    monolith_conninfo: Annotated[
        str,
        typer.Option(
            metavar="CONNINFO", help="libpq conninfo the service database uses to reach the monolith."
        ),
    ] = "host=monolith-db-rw dbname=vinylhound user=vinylhound_replication sslmode=require",
    service_conninfo: Annotated[
        str,
        typer.Option(
            metavar="CONNINFO", help="libpq conninfo the monolith uses to reach the service (reverse path)."
        ),
    ] = "host=SERVICE-db-rw dbname=DATABASE user=vinylhound_replication sslmode=require",
    accept: Annotated[
        list[str] | None,
        typer.Option(
            metavar="WORKLOAD",
            help="A workload whose monolith writes into the service's tables (cascades, triggers) "
            "you accept will fail after the cutover (repeatable; default: none, the cutover refuses).",
        ),
    ] = None,
) -> None:
    """Print a generated migration plan as a shell script (psql on $MONOLITH_URI, $SERVICE_URI)."""
    if plan not in PLANS:
        print(f"unknown plan {plan!r}; plans: {', '.join(PLANS)}", file=sys.stderr)
        raise typer.Exit(1)
    writers = {w.name for w in catalog.WORKLOADS if w.database is not None}
    for name in accept or ():
        if name not in writers:
            print(
                f"--accept {name}: not a workload with tables; those are {', '.join(sorted(writers))}",
                file=sys.stderr,
            )
            raise typer.Exit(1)
    try:
        text = script(service, plan, monolith_conninfo, service_conninfo, accept or ())
    except KeyError as err:
        print(str(err.args[0]), file=sys.stderr)
        raise typer.Exit(1) from None
    typer.echo(text, nl=False)
