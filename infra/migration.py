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

import shlex
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


#: The statement trigger that closes a table for application writes on the side it leaves.
FENCE = "vinylhound_write_fence"


def _table_array(tables: Sequence[Table]) -> str:
    return "ARRAY[" + ", ".join(literal(t.name) for t in tables) + "]::text[]"


def _fence_notes(tables: Sequence[Table]) -> str:
    """Rows ``(rel, note)``: each fence on ``tables`` with the note its comment holds (jsonb)."""
    return (
        "SELECT g.tgrelid::regclass AS rel, d.description::jsonb AS note FROM pg_trigger g "
        "JOIN pg_description d ON d.objoid = g.oid AND d.classoid = 'pg_trigger'::regclass "
        f"WHERE g.tgname = {literal(FENCE)} AND g.tgrelid IN "
        f"(SELECT to_regclass(quote_ident(n)) FROM unnest({_table_array(tables)}) AS n)"
    )


def caught_up_sql(slot: str, tables: Sequence[Table]) -> str:
    """True on the publisher once the subscriber has confirmed the WAL position recorded when
    ``tables`` were fenced. Every write to them committed before that position, so traffic on
    other tables (which keeps the current position moving) cannot hold the wait up. A missing
    slot counts as caught up: nothing is in flight, and the verification still compares."""
    exists = f"SELECT 1 FROM pg_replication_slots WHERE slot_name = {literal(slot)}"
    return (
        f"SELECT NOT EXISTS ({exists}) OR coalesce(("
        f"SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = {literal(slot)}"
        f") >= (SELECT max((f.note->>'fence_lsn')::pg_lsn) FROM ({_fence_notes(tables)}) AS f), false);"
    )


def freeze_writes_sql(tables: Sequence[Table], moved_to: str) -> str:
    """Close the tables for application writes, in one transaction. Replication still applies
    changes: its worker runs with ``session_replication_role = replica``, where ordinary
    triggers do not fire.

    Each new fence records in its comment the WAL insert position read once every table's lock
    is held (so every write to them committed before it) and ``decided: false``. A fence that
    exists already keeps its note: a re-run waits for the position it waited for before."""
    array = _table_array(tables)
    create = (
        f"CREATE TRIGGER {FENCE} BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I "
        "FOR EACH STATEMENT EXECUTE FUNCTION vinylhound_reject_writes(%L)"
    )
    fence = f"""DO $do$
DECLARE
    raised text[] := '{{}}';
    t text;
    at pg_lsn;
BEGIN
    FOREACH t IN ARRAY {array} LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_trigger
                       WHERE tgname = {literal(FENCE)} AND tgrelid = to_regclass(quote_ident(t))) THEN
            EXECUTE format({literal(create)}, t, {literal(moved_to)});
            raised := raised || t;
        END IF;
    END LOOP;
    at := pg_current_wal_insert_lsn();
    FOREACH t IN ARRAY raised LOOP
        EXECUTE format('COMMENT ON TRIGGER {FENCE} ON %I IS %L', t,
                       jsonb_build_object('fence_lsn', at::text, 'decided', false)::text);
    END LOOP;
END
$do$;"""
    return _FENCE_FUNCTION + "\n" + fence


def decide_sql(tables: Sequence[Table]) -> str:
    """Mark the fences on ``tables`` decided: the move passed its verification, so no undo may
    reopen them any more (only the rollback's explicit reopening does)."""
    return f"""DO $do$
DECLARE
    f record;
BEGIN
    FOR f IN {_fence_notes(tables)} LOOP
        EXECUTE format('COMMENT ON TRIGGER {FENCE} ON %s IS %L', f.rel,
                       (f.note || '{{"decided": true}}'::jsonb)::text);
    END LOOP;
END
$do$;"""


def release_undecided_sql(tables: Sequence[Table]) -> str:
    """The undo of a fence: open the tables whose fence is not decided; a decided move stays."""
    return f"""DO $do$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY {_table_array(tables)} LOOP
        IF EXISTS (SELECT 1 FROM pg_trigger g LEFT JOIN pg_description d
                       ON d.objoid = g.oid AND d.classoid = 'pg_trigger'::regclass
                   WHERE g.tgname = {literal(FENCE)} AND g.tgrelid = to_regclass(quote_ident(t))
                     AND NOT coalesce((d.description::jsonb->>'decided')::boolean, false)) THEN
            EXECUTE format('DROP TRIGGER {FENCE} ON %I', t);
        END IF;
    END LOOP;
END
$do$;"""


def unfreeze_writes_sql(tables: Sequence[Table]) -> str:
    """Open the tables for writes again, decided or not (the rollback's last step)."""
    return "\n".join(f"DROP TRIGGER IF EXISTS {FENCE} ON {q(t.name)};" for t in tables)


def _high_water(table: Table, column: str) -> str:
    """The highest id ``column`` has handed out here: its sequence's last value or the largest
    stored id, whichever is higher (a deleted row's id still counts through the sequence)."""
    sequence = f"pg_get_serial_sequence({literal(q(table.name))}, {literal(column)})"
    return (
        f"greatest(coalesce(pg_sequence_last_value({sequence}::regclass), 0), "
        f"coalesce((SELECT max({q(column)}) FROM {q(table.name)}), 0))"
    )


def sequence_transfer_sql(tables: Sequence[Table]) -> str:
    """Run on the side the tables leave: prints the SQL that moves each sequence on the side
    they go to past the highest id EITHER side has issued or stores. Logical replication does
    not carry sequences, and an id issued to a row deleted before the move is in neither table.
    Re-running it moves nothing further (``setval(..., false)`` reports no last value)."""
    statements = []
    for t in tables:
        for col in t.serial_columns:
            sequence = f"pg_get_serial_sequence({literal(q(t.name))}, {literal(col)})"
            there = f"SELECT setval({sequence}, greatest(%s, {_high_water(t, col)}) + 1, false);"
            statements.append(f"format({literal(there)}, {_high_water(t, col)})")
    if not statements:
        return "SELECT '';"
    return "SELECT concat_ws(E'\\n', " + ", ".join(statements) + ");"


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
    """One step of a plan. ``execute`` runs ``sql`` in one transaction; ``wait`` polls ``sql``
    until it returns true; ``verify`` runs ``sql`` on both databases and requires equal results;
    ``require`` runs ``sql`` once and fails the plan (naming the step) unless it returns true;
    ``relay`` runs ``sql`` on the OTHER side in one transaction and runs the statements it
    prints, in one transaction, on ``side``.

    ``undo`` (on ``side``) reverts the step if it or a later step fails: it is armed before the
    step starts. ``commit`` marks the step after which the plan no longer undoes anything (the
    move is then decided)."""

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


def decided_sql(tables: Sequence[Table]) -> str:
    """True where every one of ``tables`` carries a decided fence (a move out of here passed its
    verification)."""
    return (
        f"SELECT count(*) = {len(tables)} FROM ({_fence_notes(tables)}) AS f "
        "WHERE (f.note->>'decided')::boolean;"
    )


def subscription_not_disabled_sql(names: ReplicationNames) -> str:
    """True on the service unless its subscription to the monolith exists and is disabled (paused
    on purpose: the service would miss the last writes). After a decided cutover it is gone."""
    return (
        f"SELECT NOT EXISTS (SELECT 1 FROM pg_subscription WHERE subname = {literal(names.subscription)} "
        f"AND subdbid = {_THIS_DB} AND NOT subenabled);"
    )


def slot_ready_sql(slot: str, tables: Sequence[Table]) -> str:
    """True where the slot exists, or once a move of ``tables`` out of here was decided (the slot
    may be gone then)."""
    return (
        f"SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = {literal(slot)}) "
        f"OR ({decided_sql(tables).rstrip(';')});"
    )


def streaming_sql(slot: str) -> str:
    """True on the publisher while a subscriber streams from ``slot``."""
    return (
        "SELECT coalesce(bool_and(active), false) FROM pg_replication_slots "
        f"WHERE slot_name = {literal(slot)};"
    )


def sequence_step(workload: Workload, to: Side = "service") -> Step:
    """Move the sequences of the workload's tables on ``to`` past every id either side issued
    (computed on the other side, run on ``to``)."""
    return Step(
        "move sequences past the ids of both sides",
        to,
        "relay",
        sequence_transfer_sql(owned_tables(workload)),
    )


def _decision_steps(tables: Sequence[Table], side: Side, slot: str, moved_to: str) -> list[Step]:
    """Fence ``side``, wait until its subscriber confirmed the fence position, verify, decide.

    The fence's undo is armed before the fence runs and opens only undecided fences; recording
    the decision (one transaction) is the point of no return."""
    other = "service" if side == "monolith" else "monolith"
    return [
        Step(
            f"stop writes in the {side}",
            side,
            "execute",
            freeze_writes_sql(tables, moved_to),
            undo=release_undecided_sql(tables),
        ),
        Step(f"wait until the {other} has caught up", side, "wait", caught_up_sql(slot, tables)),
        Step("verify row counts and checksums", "both", "verify", consistency_check_sql(tables)),
        Step("record the decision in the fences", side, "execute", decide_sql(tables), commit=True),
    ]


def _cutover_checks(workload: Workload, suffix: str) -> list[Step]:
    forward = forward_names(workload, suffix)
    return [
        Step(
            "require the replication slot in the monolith",
            "monolith",
            "require",
            slot_ready_sql(forward.slot, owned_tables(workload)),
        ),
        Step(
            "require that the service's subscription is not disabled",
            "service",
            "require",
            subscription_not_disabled_sql(forward),
        ),
    ]


def _reverse_streams(workload: Workload, suffix: str) -> Step:
    back = reverse_names(workload, suffix)
    return Step("wait until the reverse replication streams", "service", "wait", streaming_sql(back.slot))


def _fence_the_monolith(workload: Workload, suffix: str) -> list[Step]:
    slot = forward_names(workload, suffix).slot
    return _decision_steps(owned_tables(workload), "monolith", slot, workload.name)


def stop_and_verify_steps(
    workload: Workload, suffix: str = "", reverse: bool = True, guards: Sequence[Step] = ()
) -> list[Step]:
    """Check the replication is in place (and, with ``reverse``, that the service streams back
    to the monolith), then fence the monolith, wait until the service has everything, verify and
    decide. The checks (and ``guards``, more checks the caller adds) come first, so a cutover
    without replication (the phase ``not-started`` skipped) fails with the monolith still open;
    a failed wait or verification reopens it and the replication carries on.

    The reverse replication must stream before the decision: from then on the routes may send
    writes to the service, and each one has to reach the monolith for a rollback to keep it."""
    streams = [_reverse_streams(workload, suffix)] if reverse else []
    return [*_cutover_checks(workload, suffix), *guards, *streams, *_fence_the_monolith(workload, suffix)]


def cutover_job_steps(workload: Workload, reverse: bool = True, guards: Sequence[Step] = ()) -> list[Step]:
    """What the Kubernetes cutover Job runs. CloudNativePG creates the reverse publication and
    subscription before it (the Job waits until they stream) and drops the forward ones when
    their resources leave the program. ``reverse=False`` where nothing replicates back (an
    external monolith): the cutover then cannot be rolled back without losing writes."""
    return [*stop_and_verify_steps(workload, reverse=reverse, guards=guards), sequence_step(workload)]


def consistency_steps(workload: Workload) -> list[Step]:
    """Only the consistency check (row counts and checksums on both sides)."""
    tables = owned_tables(workload)
    return [Step("verify row counts and checksums", "both", "verify", consistency_check_sql(tables))]


def reverse_replication_steps(workload: Workload, service_conninfo: str, suffix: str = "") -> list[Step]:
    """Replicate the service's tables back into the monolith: publication, then slot (a slot
    made before its publication cannot decode the changes in between), then the monolith's
    subscription on that slot without a copy. Made before any write can reach the service, the
    slot holds every one of them; ``origin = none`` keeps the forward changes from coming back."""
    back = reverse_names(workload, suffix)
    return [
        Step(
            "publish back from the service",
            "service",
            "execute",
            create_publication_sql(back.publication, owned_tables(workload)),
        ),
        Step("create the reverse slot", "service", "execute", create_slot_sql(back.slot)),
        Step(
            "subscribe the monolith (no copy: nothing was written in the service yet)",
            "monolith",
            "execute",
            create_subscription_sql(back, service_conninfo, copy_data=False),
        ),
    ]


def cutover_steps(
    workload: Workload, service_conninfo: str, suffix: str = "", guards: Sequence[Step] = ()
) -> list[Step]:
    """Move the tables for good: check, replicate back, fence the monolith, wait until the service
    has everything, verify, decide, move sequences, then drop the forward replication. Every
    step is one transaction and idempotent; the forward replication goes only after the
    decision and the reverse one exists, so a re-run from any interruption point completes (or,
    before the decision, fails and reopens the monolith)."""
    forward = forward_names(workload, suffix)
    return [
        *_cutover_checks(workload, suffix),
        *guards,
        *reverse_replication_steps(workload, service_conninfo, suffix),
        _reverse_streams(workload, suffix),
        *_fence_the_monolith(workload, suffix),
        sequence_step(workload),
        Step("drop the subscription", "service", "execute", drop_subscription_sql(forward.subscription)),
        Step("drop the replication slot", "monolith", "execute", drop_slot_sql(forward.slot)),
        Step("drop the publication", "monolith", "execute", drop_publication_sql(forward.publication)),
    ]


def rollback_steps(workload: Workload, suffix: str = "") -> list[Step]:
    """Give the tables back to the monolith after a cutover: fence the service, wait until the
    monolith has everything, verify, decide, move the monolith's sequences, drop the reverse
    replication and open the monolith's tables again."""
    back = reverse_names(workload, suffix)
    return [
        *_stop_service_and_verify(workload, suffix),
        Step(
            "drop the reverse subscription", "monolith", "execute", drop_subscription_sql(back.subscription)
        ),
        Step("drop the reverse slot", "service", "execute", drop_slot_sql(back.slot)),
        Step("drop the reverse publication", "service", "execute", drop_publication_sql(back.publication)),
        _reopen_monolith(workload),
    ]


def rollback_job_steps(workload: Workload, reverse: bool = True) -> list[Step]:
    """What the Kubernetes rollback Job runs; CloudNativePG drops the reverse subscription, slot
    and publication itself when their resources leave the program."""
    return [*_stop_service_and_verify(workload, reverse=reverse), _reopen_monolith(workload)]


def _stop_service_and_verify(workload: Workload, suffix: str = "", reverse: bool = True) -> list[Step]:
    back = reverse_names(workload, suffix)
    tables = owned_tables(workload)
    check = Step(
        "require the reverse replication slot in the service",
        "service",
        "require",
        slot_ready_sql(back.slot, tables),
    )
    return [
        *([check] if reverse else []),
        *_decision_steps(tables, "service", back.slot, "monolith"),
        sequence_step(workload, "monolith"),
    ]


def _reopen_monolith(workload: Workload) -> Step:
    return Step(
        "open the monolith's tables again", "monolith", "execute", unfreeze_writes_sql(owned_tables(workload))
    )


# --- shell scripts for Kubernetes Jobs --------------------------------------------------------

_URI_VAR: dict[str, str] = {"monolith": "MONOLITH_URI", "service": "SERVICE_URI"}


def _psql(side: str, tag: str, sql: str, flags: str = "-q -1") -> list[str]:
    return [f"psql -X {flags} -v ON_ERROR_STOP=1 \"${_URI_VAR[side]}\" <<'{tag}'", sql, tag]


def job_script(steps: Sequence[Step], wait_seconds: int = 600) -> str:
    """A POSIX shell script running ``steps`` with ``psql`` against ``$MONOLITH_URI`` and
    ``$SERVICE_URI`` (the same SQL the tests run). Each step runs in one transaction (``psql
    -1``), so a killed session leaves none of it behind. Exits non-zero on the first failure;
    every armed ``undo`` then runs (newest first) from an EXIT trap. A step's undo is armed
    before the step starts, and a ``commit`` step disarms them all once it succeeded.

    The fence cannot share a transaction with the wait: the wait compares the slot's confirmed
    position with the position recorded at the fence, which only counts once the fence has
    committed, and the verification reads the service over another connection."""
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
        lines.append(f"echo {shlex.quote('== ' + step.name)}")
        if step.undo is not None and step.side != "both":
            lines.append(f'UNDO="undo_{i} $UNDO"')
        if step.kind == "execute":
            lines += _psql(step.side, f"SQL_{i}", step.sql)
        elif step.kind == "require":
            lines.append(f'[ "$({_psql(step.side, f"SQL_{i}", step.sql, "-At")[0]}')
            lines += [step.sql, f"SQL_{i}"]
            lines.append(
                f')" = t ] || {{ echo {shlex.quote("precondition failed: " + step.name)} >&2; exit 1; }}'
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
            source = "service" if step.side == "monolith" else "monolith"
            lines.append(
                f'psql -X -q -At -1 -v ON_ERROR_STOP=1 "${_URI_VAR[source]}" -f -'
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
        if step.commit:
            lines.append('UNDO=""')
    lines.append("echo '== done'")
    return "\n".join(lines) + "\n"
