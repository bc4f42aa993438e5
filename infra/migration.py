"""Every piece of SQL the database split needs, generated from the catalog and the schema facts.

The catalog says who owns which table (``Workload.database.tables``); ``infra.schema`` says what
each table is. From the two this module derives:

- the monolith schema (all 17 tables, indexes, checks and triggers, the Favorites trigger too);
- each service's schema as the model has it (dev, local, tests): exactly its tables,
  intra-service foreign keys kept, every cross-service foreign key (and the Favorites trigger)
  dropped; and the step that reads it from the live monolith instead (``infra.live_schema``);
- the replication plan: a publication in the monolith for exactly the owned tables, a
  subscription in the service database, the cutover (stop writes, wait until caught up, verify,
  drop the subscription, move sequences, start the reverse replication) and the rollback;
- a consistency check: per table, the row count and a checksum independent of row order and of
  the physical column order.

Every statement is idempotent: running a step twice changes nothing the second time. The tests
run these exact strings on a real PostgreSQL; the Pulumi program ships the same strings in its
Jobs and derives its Publication/Subscription resources from the same names and table lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from infra import live_schema, schema
from infra.catalog import Workload
from infra.schema import Table

Side = Literal["monolith", "service", "both"]
StepKind = Literal["execute", "wait", "verify", "require", "relay"]

#: Session settings that make a value's text render identically on every server (the checksum's
#: canonical forms already cover timestamps, numerics and bytea; these cover the rest).
CHECK_SETTINGS = (
    "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; "
    "SET extra_float_digits = 1; SET bytea_output = 'hex';"
)


def q(identifier: str) -> str:
    """A double-quoted SQL identifier."""
    return '"' + identifier.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A single-quoted SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


# --- ownership --------------------------------------------------------------------------------


def ownership_problems(workloads: Iterable[Workload], tables: Sequence[Table]) -> list[tuple[str, str]]:
    """Why the catalog's table ownership does not fit the schema: ``(table, message)`` pairs.

    A table owned twice, a table the schema does not have, and a schema table nobody owns are
    each reported, naming the table.
    """
    known = {t.name for t in tables}
    owners: dict[str, list[str]] = {}
    problems: list[tuple[str, str]] = []
    for w in workloads:
        if w.database is None:
            continue
        for name in w.database.tables:
            owners.setdefault(name, []).append(w.name)
            if name not in known:
                problems.append(
                    (name, f"{w.name} owns table {name!r}, which the monolith schema does not have")
                )
    for name, who in owners.items():
        if len(who) > 1:
            problems.append((name, f"table {name!r} is owned by more than one workload: {', '.join(who)}"))
    for t in tables:
        if t.name not in owners:
            problems.append((t.name, f"table {t.name!r} of the monolith schema is owned by no workload"))
    return problems


def owners(workloads: Iterable[Workload]) -> dict[str, str]:
    """Table name -> owning workload name."""
    return {t: w.name for w in workloads if w.database for t in w.database.tables}


def cross_service_foreign_keys(workloads: Iterable[Workload]) -> set[tuple[str, str, str]]:
    """Every foreign key ``(table, column, referenced table)`` whose two ends have different owners."""
    owner = owners(workloads)
    return {
        (t.name, col, fk.table)
        for t in schema.TABLES
        for fk in t.foreign_keys
        for col in fk.columns
        if owner.get(t.name) != owner.get(fk.table)
    }


def owned_tables(workload: Workload) -> tuple[Table, ...]:
    """The workload's tables in creation order (a referenced table before its referrers)."""
    if workload.database is None:
        return ()
    return _in_dependency_order([schema.table(name) for name in workload.database.tables])


def _in_dependency_order(tables: Sequence[Table]) -> tuple[Table, ...]:
    names = {t.name for t in tables}
    done: list[Table] = []
    pending = list(tables)
    while pending:
        ready = [
            t
            for t in pending
            if all(
                fk.table not in names or fk.table == t.name or fk.table in {d.name for d in done}
                for fk in t.foreign_keys
            )
        ]
        if not ready:
            raise ValueError(f"foreign keys form a cycle among {sorted(t.name for t in pending)}")
        done.extend(ready)
        pending = [t for t in pending if t not in ready]
    return tuple(done)


# --- schema -----------------------------------------------------------------------------------

_FENCE_FUNCTION = """CREATE OR REPLACE FUNCTION vinylhound_reject_writes() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'table % is closed for writes here: it has moved to %', TG_TABLE_NAME, TG_ARGV[0]
        USING ERRCODE = 'read_only_sql_transaction';
END
$fn$;"""


def _column_sql(c: schema.Column) -> str:
    parts = [q(c.name), c.type]
    if c.not_null and not c.serial:
        parts.append("NOT NULL")
    if c.default is not None:
        parts.append(f"DEFAULT {c.default}")
    return " ".join(parts)


def _cols(columns: Sequence[str]) -> str:
    return ", ".join(q(c) for c in columns)


def create_table_sql(table: Table, keep_foreign_keys_to: set[str]) -> str:
    """``CREATE TABLE IF NOT EXISTS`` with the constraints, indexes and comments; foreign keys
    only to ``keep_foreign_keys_to``."""
    lines = [_column_sql(c) for c in table.columns]
    lines.append(f"CONSTRAINT {q(table.name + '_pkey')} PRIMARY KEY ({_cols(table.primary_key)})")
    for u in table.uniques:
        lines.append(f"CONSTRAINT {q(u.name)} UNIQUE ({_cols(u.columns)})")
    for check in table.checks:
        lines.append(f"CONSTRAINT {q(check.name)} CHECK ({check.expression})")
    for fk in table.foreign_keys:
        if fk.table not in keep_foreign_keys_to:
            continue
        name = f"{table.name}_{'_'.join(fk.columns)}_fkey"
        lines.append(
            f"CONSTRAINT {q(name)} FOREIGN KEY ({_cols(fk.columns)}) "
            f"REFERENCES {q(fk.table)} ({_cols(fk.ref_columns)}) ON DELETE {fk.on_delete}"
        )
    body = ",\n    ".join(lines)
    statements = [f"CREATE TABLE IF NOT EXISTS {q(table.name)} (\n    {body}\n);"]
    for index in table.indexes:
        unique = "UNIQUE " if index.unique else ""
        where = f" WHERE {index.where}" if index.where else ""
        statements.append(
            f"CREATE {unique}INDEX IF NOT EXISTS {q(index.name)} "
            f"ON {q(table.name)} {index.definition}{where};"
        )
    if table.comment is not None:
        statements.append(f"COMMENT ON TABLE {q(table.name)} IS {literal(table.comment)};")
    statements += [
        f"COMMENT ON COLUMN {q(table.name)}.{q(c.name)} IS {literal(c.comment)};"
        for c in table.columns
        if c.comment is not None
    ]
    return "\n".join(statements)


def trigger_sql(table: str, trigger: schema.Trigger) -> str:
    """The trigger's function and the trigger, idempotently (a constraint trigger has no
    ``CREATE OR REPLACE``, so it is created only where missing)."""
    function = (
        f"CREATE OR REPLACE FUNCTION {q(trigger.function)}() RETURNS trigger\n"
        "LANGUAGE plpgsql AS $fn$\nBEGIN\n"
        + "".join(f"    {line}\n" for line in trigger.body.splitlines())
        + "    RETURN NEW;\nEND\n$fn$;"
    )
    execute = f"FOR EACH ROW EXECUTE FUNCTION {q(trigger.function)}()"
    if not trigger.deferred:
        create = f"CREATE OR REPLACE TRIGGER {q(trigger.name)} {trigger.event} ON {q(table)} {execute};"
        return f"{function}\n{create}"
    create = (
        f"CREATE CONSTRAINT TRIGGER {q(trigger.name)} {trigger.event} ON {q(table)} "
        f"DEFERRABLE INITIALLY DEFERRED {execute}"
    )
    return (
        f"{function}\nDO $do$\nBEGIN\n"
        f"    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = {literal(trigger.name)}"
        f" AND tgrelid = {literal(q(table))}::regclass) THEN\n"
        f"        EXECUTE {literal(create)};\n"
        "    END IF;\nEND\n$do$;"
    )


def _schema_sql(tables: Sequence[Table], extensions: Iterable[str]) -> str:
    names = {t.name for t in tables}
    parts = [f"CREATE EXTENSION IF NOT EXISTS {q(ext)};" for ext in sorted(set(extensions))]
    parts += [create_table_sql(t, names) for t in _in_dependency_order(tables)]
    # A trigger that writes another table survives only where that table lives too.
    parts += [
        trigger_sql(t.name, trigger) for t in tables for trigger in t.triggers if set(trigger.writes) <= names
    ]
    return "\n\n".join(parts) + "\n"


def monolith_schema_sql() -> str:
    """The monolith database as it really is: all 17 tables, every constraint, index and trigger
    (the buggy ``user_content`` update trigger too; the Favorites trigger deferred, see
    ``schema.FAVORITES_TRIGGER``)."""
    return _schema_sql(schema.TABLES, schema.EXTENSIONS)


def service_schema_sql(workload: Workload) -> str:
    """Exactly the workload's tables, as the model has them: intra-service foreign keys kept,
    cross-service ones dropped, no trigger that writes into another service's tables. For dev's
    fresh databases and the local stack; a live monolith's schema comes from its catalogs
    (``infra.live_schema``)."""
    if workload.database is None:
        raise ValueError(f"{workload.name} owns no database")
    tables = owned_tables(workload)
    return _schema_sql(tables, workload.database.extensions)


def service_schema_step(workload: Workload) -> Step:
    """Create the workload's tables in its database as the LIVE monolith has them: read from the
    monolith's catalogs (``infra.live_schema``), minus foreign keys and triggers that reach into
    tables the workload does not own; the Job's log lists what was left out."""
    if workload.database is None:
        raise ValueError(f"{workload.name} owns no database")
    return Step(
        "apply the service schema, read from the monolith",
        "service",
        "relay",
        live_schema.read_service_schema_sql(workload.database.tables),
    )


# --- replication -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicationNames:
    """PostgreSQL object names of one direction of one service's replication."""

    publication: str
    slot: str
    subscription: str


def _base(workload: Workload) -> str:
    return workload.name.replace("-", "_")


def forward_names(workload: Workload, suffix: str = "") -> ReplicationNames:
    """Monolith -> service. ``suffix`` keeps names unique when several copies share a server."""
    base = f"vh_{_base(workload)}{suffix}"
    return ReplicationNames(f"{base}_pub", f"{base}_slot", f"{base}_sub")


def reverse_names(workload: Workload, suffix: str = "") -> ReplicationNames:
    """Service -> monolith, for rolling a cutover back without losing writes."""
    base = f"vh_{_base(workload)}{suffix}_back"
    return ReplicationNames(f"{base}_pub", f"{base}_slot", f"{base}_sub")


def _table_list(tables: Sequence[Table]) -> str:
    return ", ".join(q(t.name) for t in tables)


def create_publication_sql(publication: str, tables: Sequence[Table]) -> str:
    """The publication for exactly ``tables`` (created, or its table set corrected)."""
    listed = _table_list(tables)
    return (
        "DO $do$\nBEGIN\n"
        f"    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = {literal(publication)}) THEN\n"
        f"        CREATE PUBLICATION {q(publication)} FOR TABLE {listed};\n"
        "    ELSE\n"
        f"        ALTER PUBLICATION {q(publication)} SET TABLE {listed};\n"
        "    END IF;\nEND\n$do$;"
    )


def create_slot_sql(slot: str) -> str:
    """The logical replication slot, made before the subscription so that a subscription to a
    database on the same server does not hang waiting for its own transaction."""
    return (
        f"SELECT pg_create_logical_replication_slot({literal(slot)}, 'pgoutput') "
        f"WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = {literal(slot)});"
    )


_THIS_DB = "(SELECT oid FROM pg_database WHERE datname = current_database())"


def create_subscription_sql(names: ReplicationNames, conninfo: str, copy_data: bool = True) -> str:
    """The subscription on the pre-made slot. ``origin = none`` keeps changes that arrived by
    replication from being sent back (the reverse direction runs while this one winds down)."""
    options = (
        f"create_slot = false, slot_name = {literal(names.slot)}, "
        f"copy_data = {'true' if copy_data else 'false'}, origin = none"
    )
    create = (
        f"CREATE SUBSCRIPTION {q(names.subscription)} CONNECTION {literal(conninfo)} "
        f"PUBLICATION {q(names.publication)} WITH ({options})"
    )
    return (
        "DO $do$\nBEGIN\n"
        f"    IF NOT EXISTS (SELECT 1 FROM pg_subscription WHERE subname = {literal(names.subscription)}"
        f" AND subdbid = {_THIS_DB}) THEN\n"
        f"        EXECUTE {literal(create)};\n"
        "    END IF;\nEND\n$do$;"
    )


def set_subscription_enabled_sql(subscription: str, enabled: bool) -> str:
    """Pause or resume a subscription (nothing is lost: the slot keeps the changes meanwhile)."""
    verb = "ENABLE" if enabled else "DISABLE"
    return (
        "DO $do$\nBEGIN\n"
        f"    IF EXISTS (SELECT 1 FROM pg_subscription WHERE subname = {literal(subscription)}"
        f" AND subdbid = {_THIS_DB}) THEN\n"
        f"        ALTER SUBSCRIPTION {q(subscription)} {verb};\n"
        "    END IF;\nEND\n$do$;"
    )


def drop_subscription_sql(subscription: str) -> str:
    """Detach the subscription from its slot and drop it (the slot is dropped on the other side)."""
    return (
        "DO $do$\nBEGIN\n"
        f"    IF EXISTS (SELECT 1 FROM pg_subscription WHERE subname = {literal(subscription)}"
        f" AND subdbid = {_THIS_DB}) THEN\n"
        f"        ALTER SUBSCRIPTION {q(subscription)} DISABLE;\n"
        f"        ALTER SUBSCRIPTION {q(subscription)} SET (slot_name = NONE);\n"
        f"        DROP SUBSCRIPTION {q(subscription)};\n"
        "    END IF;\nEND\n$do$;"
    )


def drop_slot_sql(slot: str) -> str:
    """Drop the slot once its sender has gone (waits up to 30 s for it to let go)."""
    return (
        "DO $do$\nDECLARE\n    tries integer := 0;\nBEGIN\n"
        f"    WHILE EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = {literal(slot)} AND active)"
        " AND tries < 300 LOOP\n"
        "        PERFORM pg_sleep(0.1);\n        tries := tries + 1;\n    END LOOP;\n"
        f"    PERFORM pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
        f" WHERE slot_name = {literal(slot)};\n"
        "END\n$do$;"
    )


def drop_publication_sql(publication: str) -> str:
    """Remove the publication."""
    return f"DROP PUBLICATION IF EXISTS {q(publication)};"


def initial_copy_done_sql(subscription: str) -> str:
    """True on the subscriber once every table finished its initial copy."""
    return (
        "SELECT count(*) > 0 AND bool_and(r.srsubstate = 'r') FROM pg_subscription_rel r "
        "JOIN pg_subscription s ON s.oid = r.srsubid "
        f"WHERE s.subname = {literal(subscription)} AND s.subdbid = {_THIS_DB};"
    )


def caught_up_sql(slot: str, missing_ok: bool = False) -> str:
    """True on the publisher once the subscriber has confirmed everything written so far.
    With ``missing_ok`` a missing slot counts as caught up (nothing is in flight; the
    verification that follows still compares the data)."""
    caught_up = (
        "SELECT coalesce(bool_and(confirmed_flush_lsn >= pg_current_wal_insert_lsn()), false) "
        f"FROM pg_replication_slots WHERE slot_name = {literal(slot)}"
    )
    if missing_ok:
        return (
            f"SELECT NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = {literal(slot)}) "
            f"OR ({caught_up});"
        )
    return caught_up + ";"


def freeze_writes_sql(tables: Sequence[Table], moved_to: str) -> str:
    """Close the tables for application writes. Replication still applies changes: its worker
    runs with ``session_replication_role = replica``, where ordinary triggers do not fire."""
    parts = [_FENCE_FUNCTION]
    parts += [
        f"CREATE OR REPLACE TRIGGER vinylhound_write_fence BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE "
        f"ON {q(t.name)} FOR EACH STATEMENT EXECUTE FUNCTION vinylhound_reject_writes({literal(moved_to)});"
        for t in tables
    ]
    return "\n".join(parts)


def unfreeze_writes_sql(tables: Sequence[Table]) -> str:
    """Open the tables for writes again."""
    return "\n".join(f"DROP TRIGGER IF EXISTS vinylhound_write_fence ON {q(t.name)};" for t in tables)


def sync_sequences_sql(tables: Sequence[Table]) -> str:
    """Move each table's sequence past the highest copied id (replication does not copy
    sequences, so without this the first insert after cutover collides)."""
    lines = [
        f"SELECT setval(pg_get_serial_sequence({literal(t.name)}, {literal(col)}), "
        f"coalesce((SELECT max({q(col)}) FROM {q(t.name)}), 0) + 1, false);"
        for t in tables
        for col in t.serial_columns
    ]
    return "\n".join(lines)


def canonical_text_sql(column: str, type_: str) -> str:
    """An expression giving ``column``'s value as text that depends only on the value: not on the
    session's time zone or date style, nor on a numeric's declared scale."""
    c = q(column)
    if type_.startswith(("timestamp", "date")):
        # Seconds since the epoch, to the microsecond (exact numeric); 'Infinity' for infinity.
        return f"extract(epoch FROM {c})::text"
    if type_.startswith("numeric"):
        return f"trim_scale({c})::text"
    if type_ == "bytea":
        return f"encode({c}, 'hex')"
    if type_ == "json":
        return f"{c}::jsonb::text"
    # Integers, booleans, strings, jsonb and text arrays print one way only.
    return f"{c}::text"


def row_text_sql(table: Table) -> str:
    """One row as canonical text: its columns sorted by name, each in canonical text, as a JSON
    array (NULL and the string 'null' stay apart). Independent of the physical column order,
    which differs between a table created once and one grown by ALTER TABLE."""
    columns = sorted(table.columns, key=lambda c: c.name)
    return "jsonb_build_array(" + ", ".join(canonical_text_sql(c.name, c.type) for c in columns) + ")::text"


def consistency_check_sql(tables: Sequence[Table]) -> str:
    """Per table: name, row count and an order-independent checksum (the sum of a 64-bit hash of
    each row's canonical text, see ``row_text_sql``). Run it on both sides (``CHECK_SETTINGS``
    first, for whatever the canonical forms leave to the session) and compare the results."""
    selects = [
        f"SELECT {literal(t.name)} AS table_name, count(*) AS row_count, "
        f"coalesce(sum(('x' || left(md5({row_text_sql(t)}), 16))::bit(64)::bigint::numeric), 0)::text"
        f" AS checksum FROM {q(t.name)}"
        for t in sorted(tables, key=lambda t: t.name)
    ]
    return "\nUNION ALL\n".join(selects) + "\nORDER BY table_name;"


# --- plans ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One step of a plan. ``execute`` runs ``sql``; ``wait`` polls ``sql`` until it returns true;
    ``verify`` runs ``sql`` on both databases and requires equal results; ``require`` runs ``sql``
    once and fails the plan (naming the step) unless it returns true; ``relay`` runs ``sql`` on
    the monolith in one transaction and runs the statements it prints, in one transaction, on
    ``side``.

    ``undo`` (on ``side``) reverts the step if a later step fails; ``commit`` marks the step after
    which the plan no longer undoes anything (the move is then decided)."""

    name: str
    side: Side
    kind: StepKind
    sql: str
    undo: str | None = None
    commit: bool = False


def replication_steps(workload: Workload, monolith_conninfo: str, suffix: str = "") -> list[Step]:
    """Start replicating the workload's tables: schema, publication, slot, subscription, initial copy."""
    names = forward_names(workload, suffix)
    tables = owned_tables(workload)
    return [
        service_schema_step(workload),
        Step(
            "publish the owned tables",
            "monolith",
            "execute",
            create_publication_sql(names.publication, tables),
        ),
        Step("create the replication slot", "monolith", "execute", create_slot_sql(names.slot)),
        Step("subscribe", "service", "execute", create_subscription_sql(names, monolith_conninfo)),
        Step("wait for the initial copy", "service", "wait", initial_copy_done_sql(names.subscription)),
    ]


def fenced_sql(tables: Sequence[Table]) -> str:
    """True where every one of ``tables`` carries the write fence (a cutover already happened)."""
    names = ", ".join(literal(t.name) for t in tables)
    return (
        "SELECT count(*) = "
        f"{len(tables)} FROM pg_trigger WHERE tgname = 'vinylhound_write_fence' AND tgrelid IN "
        f"(SELECT to_regclass(n) FROM unnest(ARRAY[{names}]) AS n);"
    )


def subscribing_sql(names: ReplicationNames, back: ReplicationNames) -> str:
    """True on the service while it subscribes to the monolith with an enabled subscription, or
    once the cutover happened (the service then publishes back)."""
    return (
        f"SELECT EXISTS (SELECT 1 FROM pg_subscription WHERE subname = {literal(names.subscription)}"
        f" AND subdbid = {_THIS_DB} AND subenabled) "
        f"OR EXISTS (SELECT 1 FROM pg_publication WHERE pubname = {literal(back.publication)});"
    )


def slot_ready_sql(slot: str, tables: Sequence[Table]) -> str:
    """True on the monolith while the forward slot exists, or once the cutover happened (the
    slot is then gone and the tables are fenced)."""
    return (
        f"SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = {literal(slot)}) "
        f"OR ({fenced_sql(tables).rstrip(';')});"
    )


def stop_and_verify_steps(workload: Workload, suffix: str = "") -> list[Step]:
    """Check the replication is in place, then stop writes in the monolith, wait until the service
    has everything and verify. The checks come first, so a cutover without replication (the phase
    ``not-started`` skipped) fails with the monolith still open. The fence is undone when the wait
    or the verification fails: the monolith stays the writer and the replication carries on.

    A re-run after a finished cutover passes the checks (the monolith's tables are fenced and the
    service publishes back); its slot is gone, nothing is in flight, the data check decides."""
    forward, back = forward_names(workload, suffix), reverse_names(workload, suffix)
    tables = owned_tables(workload)
    return [
        Step(
            "require an enabled subscription in the service",
            "service",
            "require",
            subscribing_sql(forward, back),
        ),
        Step(
            "require the replication slot in the monolith",
            "monolith",
            "require",
            slot_ready_sql(forward.slot, tables),
        ),
        Step(
            "stop writes in the monolith",
            "monolith",
            "execute",
            freeze_writes_sql(tables, workload.name),
            undo=unfreeze_writes_sql(tables),
        ),
        Step(
            "wait until the service has caught up",
            "monolith",
            "wait",
            caught_up_sql(forward.slot, missing_ok=True),
        ),
        Step("verify row counts and checksums", "both", "verify", consistency_check_sql(tables), commit=True),
    ]


def sequence_step(workload: Workload, side: Side = "service") -> Step:
    """Move the sequences of the workload's tables past the copied ids on ``side``."""
    return Step(
        "move sequences past the copied ids", side, "execute", sync_sequences_sql(owned_tables(workload))
    )


def cutover_job_steps(workload: Workload) -> list[Step]:
    """What the Kubernetes cutover Job runs; CloudNativePG drops the subscription, slot and
    publication itself when their resources leave the program (reclaim policy ``delete``)."""
    return [*stop_and_verify_steps(workload), sequence_step(workload)]


def consistency_steps(workload: Workload) -> list[Step]:
    """Only the consistency check (row counts and checksums on both sides)."""
    tables = owned_tables(workload)
    return [Step("verify row counts and checksums", "both", "verify", consistency_check_sql(tables))]


def cutover_steps(workload: Workload, service_conninfo: str, suffix: str = "") -> list[Step]:
    """Move the tables for good: stop writes in the monolith, wait until the service has
    everything, verify, drop the subscription, move sequences, and replicate back (from now on)
    so that a rollback loses nothing."""
    forward, back = forward_names(workload, suffix), reverse_names(workload, suffix)
    tables = owned_tables(workload)
    return [
        *stop_and_verify_steps(workload, suffix),
        Step("drop the subscription", "service", "execute", drop_subscription_sql(forward.subscription)),
        Step("drop the replication slot", "monolith", "execute", drop_slot_sql(forward.slot)),
        Step("drop the publication", "monolith", "execute", drop_publication_sql(forward.publication)),
        sequence_step(workload),
        Step(
            "publish back from the service",
            "service",
            "execute",
            create_publication_sql(back.publication, tables),
        ),
        Step("create the reverse slot", "service", "execute", create_slot_sql(back.slot)),
        Step(
            "subscribe the monolith (no copy: both sides are equal)",
            "monolith",
            "execute",
            create_subscription_sql(back, service_conninfo, copy_data=False),
        ),
    ]


def rollback_steps(workload: Workload, suffix: str = "") -> list[Step]:
    """Give the tables back to the monolith after a cutover: stop writes in the service, wait
    until the monolith has everything, verify, drop the reverse replication, move the monolith's
    sequences and open its tables again."""
    back = reverse_names(workload, suffix)
    return [
        *_stop_service_and_verify(workload, suffix),
        Step(
            "drop the reverse subscription", "monolith", "execute", drop_subscription_sql(back.subscription)
        ),
        Step("drop the reverse slot", "service", "execute", drop_slot_sql(back.slot)),
        Step("drop the reverse publication", "service", "execute", drop_publication_sql(back.publication)),
        *_reopen_monolith(workload),
    ]


def rollback_job_steps(workload: Workload) -> list[Step]:
    """What the Kubernetes rollback Job runs; CloudNativePG drops the reverse subscription, slot
    and publication itself when their resources leave the program."""
    return [*_stop_service_and_verify(workload), *_reopen_monolith(workload)]


def _stop_service_and_verify(workload: Workload, suffix: str = "") -> list[Step]:
    back = reverse_names(workload, suffix)
    tables = owned_tables(workload)
    return [
        Step(
            "stop writes in the service",
            "service",
            "execute",
            freeze_writes_sql(tables, "monolith"),
            undo=unfreeze_writes_sql(tables),
        ),
        Step(
            "wait until the monolith has caught up",
            "service",
            "wait",
            caught_up_sql(back.slot, missing_ok=True),
        ),
        Step("verify row counts and checksums", "both", "verify", consistency_check_sql(tables), commit=True),
    ]


def _reopen_monolith(workload: Workload) -> list[Step]:
    tables = owned_tables(workload)
    return [
        sequence_step(workload, "monolith"),
        Step("open the monolith's tables again", "monolith", "execute", unfreeze_writes_sql(tables)),
    ]


# --- shell scripts for Kubernetes Jobs --------------------------------------------------------

_URI_VAR: dict[str, str] = {"monolith": "MONOLITH_URI", "service": "SERVICE_URI"}


def _psql(side: str, tag: str, sql: str, flags: str = "-q") -> list[str]:
    return [f"psql -X {flags} -v ON_ERROR_STOP=1 \"${_URI_VAR[side]}\" <<'{tag}'", sql, tag]


def job_script(steps: Sequence[Step], wait_seconds: int = 600) -> str:
    """A POSIX shell script running ``steps`` with ``psql`` against ``$MONOLITH_URI`` and
    ``$SERVICE_URI`` (the same SQL the tests run). Exits non-zero on the first failure; every
    armed ``undo`` then runs (newest first) from an EXIT trap, until a ``commit`` step disarms them.

    The fence cannot share a transaction with the wait: the wait compares the slot's confirmed
    position with the monolith's WAL, which only covers committed work, and the verification
    reads the service over another connection. So the fence commits, and failure undoes it."""
    lines = [
        "#!/bin/sh",
        "set -eu",
        'export PGOPTIONS="-c client_min_messages=warning"',
        'UNDO=""',
        "on_exit() {",
        "  rc=$?",
        '  if [ "$rc" -ne 0 ] && [ -n "$UNDO" ]; then',
        "    set +e",
        '    for u in $UNDO; do echo "== failed: $u" >&2; "$u" || echo "!! $u failed" >&2; done',
        "  fi",
        '  exit "$rc"',
        "}",
        "trap on_exit EXIT",
    ]
    for i, step in enumerate(steps):
        if step.undo is not None and step.side != "both":
            lines.append(f"undo_{i}() {{")
            lines += _psql(step.side, f"UNDO_{i}", step.undo)
            lines.append("}")
    for i, step in enumerate(steps):
        lines.append(f"echo '== {step.name}'")
        if step.kind == "execute":
            lines += _psql(step.side, f"SQL_{i}", step.sql)
        elif step.kind == "require":
            lines.append(f'[ "$({_psql(step.side, f"SQL_{i}", step.sql, "-At")[0]}')
            lines += [step.sql, f"SQL_{i}"]
            lines.append(
                f')" = t ] || {{ echo {literal("precondition failed: " + step.name)} >&2; exit 1; }}'
            )
        elif step.kind == "wait":
            lines += [
                f"tries={wait_seconds // 2}",
                f'until [ "$({_psql(step.side, f"SQL_{i}", step.sql, "-At")[0]}',
                step.sql,
                f"SQL_{i}",
                ')" = t ]; do',
                '  tries=$((tries - 1)); [ "$tries" -gt 0 ] || { echo "timed out" >&2; exit 1; }',
                "  sleep 2",
                "done",
            ]
        elif step.kind == "relay":
            # The printed script's comment lines (what was left out) go to the log.
            lines.append(
                f'psql -X -q -At -1 -v ON_ERROR_STOP=1 "$MONOLITH_URI" -f -'
                f" > /tmp/relay_{i}.sql <<'SQL_{i}'"
            )
            lines += [step.sql, f"SQL_{i}"]
            lines.append(f"grep '^-- ' /tmp/relay_{i}.sql || true")
            lines.append(f'psql -X -q -1 -v ON_ERROR_STOP=1 "${_URI_VAR[step.side]}" -f /tmp/relay_{i}.sql')
        else:
            for side in ("monolith", "service"):
                lines.append(
                    f"psql -X -q -At -v ON_ERROR_STOP=1 \"${_URI_VAR[side]}\" > /tmp/{side}.out <<'SQL_{i}'"
                )
                lines += [CHECK_SETTINGS, step.sql, f"SQL_{i}"]
            lines.append("diff -u /tmp/monolith.out /tmp/service.out")
            lines.append("cat /tmp/service.out")
        if step.undo is not None and step.side != "both":
            lines.append(f'UNDO="undo_{i} $UNDO"')
        if step.commit:
            lines.append('UNDO=""')
    lines.append("echo '== done'")
    return "\n".join(lines) + "\n"
