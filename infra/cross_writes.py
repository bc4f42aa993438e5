"""Writes the monolith makes into one service's tables while writing another's.

A cascading foreign key writes the referencing table when the referenced row is deleted; a
trigger (the Favorites trigger on ``users``) or a function writes whatever its body names. Once
a service's tables are fenced in the monolith, each such write fails there, and so does the
statement that caused it (a sign-up, an account deletion). So a cut-over may fence a table only
when the monolith no longer writes the tables that write into it: their owner is cut over too
(before it), or the stack config accepts the failures explicitly.

Two views of the same fact: :func:`model_cross_writes` derives the paths from the schema model
(the config rule orders the cut-overs with them, before anything deploys), and
:func:`live_check_sql` reads them from the live monolith's catalog in the cut-over Job (the real
database may carry triggers and functions the model does not).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from infra import schema
from infra.catalog import Workload
from infra.migration import FENCE, Step, literal, owned_tables, owners
from infra.schema import Table

#: Phases in which the monolith's copy of a service's tables is fenced (closed for writes).
FENCED_PHASES: frozenset[str] = frozenset({"cut-over"})


@dataclass(frozen=True)
class CrossWrite:
    """A write into ``target`` that a write to ``source`` causes in the monolith."""

    source: str
    target: str
    via: str


def model_cross_writes(workloads: Iterable[Workload]) -> tuple[CrossWrite, ...]:
    """Every path in the schema model from one owner's table into another's: cascading foreign
    keys (a delete of the referenced row deletes the referencing ones) and triggers whose
    function writes another table (the Favorites trigger on ``users``)."""
    owner = owners(workloads)
    paths = [
        CrossWrite(fk.table, t.name, f"ON DELETE {fk.on_delete} of {t.name}.{','.join(fk.columns)}")
        for t in schema.TABLES
        for fk in t.foreign_keys
        if fk.on_delete == "CASCADE"
    ]
    paths += [
        CrossWrite(t.name, written, f"trigger {trigger.name} on {t.name}")
        for t in schema.TABLES
        for trigger in t.triggers
        for written in trigger.writes
    ]
    return tuple(p for p in paths if owner.get(p.source) != owner.get(p.target))


def writers_into(name: str, workloads: Sequence[Workload]) -> set[str]:
    """The other workloads whose tables write into ``name``'s tables in the schema model."""
    owner = owners(workloads)
    return {
        owner[p.source]
        for p in model_cross_writes(workloads)
        if owner.get(p.target) == name and p.source in owner and owner[p.source] != name
    }


Blocker = tuple[str, tuple[CrossWrite, ...]]


def order_problems(
    workloads: Sequence[Workload],
    phase: Mapping[str, str],
    accepted: Mapping[str, Sequence[str]],
) -> dict[str, list[Blocker]]:
    """Per service whose tables would be fenced: the other workloads whose tables the monolith
    still writes (not fenced themselves) and the paths by which those writes reach the fenced
    tables. ``phase`` maps service -> migration phase (missing: not started; the monolith's own
    tables are always written); ``accepted[service]`` lists the writers accepted explicitly."""
    owner = owners(workloads)
    fenced = {name for name, p in phase.items() if p in FENCED_PHASES}
    found: dict[str, dict[str, list[CrossWrite]]] = {}
    for path in model_cross_writes(workloads):
        into, writer = owner.get(path.target), owner.get(path.source)
        if into not in fenced or writer is None or writer in fenced or writer in accepted.get(into, ()):
            continue
        found.setdefault(into, {}).setdefault(writer, []).append(path)
    return {
        into: [(writer, tuple(paths)) for writer, paths in sorted(by_writer.items())]
        for into, by_writer in sorted(found.items())
    }


# --- the live check --------------------------------------------------------------------------


def _regclasses(names: Sequence[str]) -> str:
    listed = ", ".join(literal(n) for n in names)
    return f"(SELECT to_regclass(quote_ident(n)) FROM unnest(ARRAY[{listed}]::text[]) AS n)"


def _writes(body: str, table: str) -> str:
    """A regular-expression test: the function body ``body`` inserts into, updates or deletes
    from the table named by the SQL expression ``table``."""
    return (
        f'{body} ~* (\'(insert\\s+into|update|delete\\s+from)\\s+(only\\s+)?("?public"?\\.)?"?\''
        f" || {table} || '(\"|\\M)')"
    )


def _still_written(column: str, moved: str, accepted: Sequence[str]) -> str:
    """The table ``column`` is one the monolith keeps writing: not moving, not fenced, not
    accepted."""
    parts = [
        f"{column} NOT IN (SELECT * FROM {moved})",
        f"{column} NOT IN (SELECT tgrelid FROM pg_trigger WHERE tgname = {literal(FENCE)})",
    ]
    if accepted:
        parts.append(f"{column} NOT IN (SELECT * FROM {_regclasses(accepted)})")
    return " AND ".join(parts)


def live_paths_sql(moved: Sequence[Table], accepted: Sequence[str]) -> str:
    """A query on the monolith: one row ``(kind, via)`` per live write path into the tables of
    ``moved`` from a table the monolith still writes (not moved, not fenced, not in
    ``accepted``): cascading foreign keys (on delete or update), triggers on other tables
    whose function writes a moved table, and SQL or PL/pgSQL functions outside any trigger that
    write one (the application may call them)."""
    into = _regclasses([t.name for t in moved])
    cascading = "ARRAY['c', 'n', 'd']::\"char\"[]"
    languages = "(SELECT oid FROM pg_language WHERE lanname IN ('sql', 'plpgsql'))"
    fks = (
        "SELECT 'foreign key' AS kind, format('%s on %s (ON DELETE/UPDATE of %s)', c.conname, "
        "c.conrelid::regclass, c.confrelid::regclass) AS via FROM pg_constraint c "
        f"WHERE c.contype = 'f' AND c.conrelid IN (SELECT * FROM {into}) "
        f"AND (c.confdeltype = ANY({cascading}) OR c.confupdtype = ANY({cascading})) "
        f"AND {_still_written('c.confrelid', into, accepted)}"
    )
    triggers = (
        "SELECT 'trigger', format('%s on %s (function %s writes %s)', g.tgname, g.tgrelid::regclass, "
        "p.proname, m.relname) FROM pg_trigger g JOIN pg_proc p ON p.oid = g.tgfoid "
        f"JOIN pg_class m ON m.oid IN (SELECT * FROM {into}) "
        f"WHERE NOT g.tgisinternal AND g.tgname <> {literal(FENCE)} AND {_writes('p.prosrc', 'm.relname')} "
        f"AND {_still_written('g.tgrelid', into, accepted)}"
    )
    functions = (
        "SELECT 'function', format('%s writes %s', p.oid::regprocedure, m.relname) FROM pg_proc p "
        f"JOIN pg_class m ON m.oid IN (SELECT * FROM {into}) "
        "WHERE p.pronamespace = 'public'::regnamespace AND p.prorettype <> 'trigger'::regtype "
        f"AND p.prolang IN {languages} AND {_writes('p.prosrc', 'm.relname')}"
    )
    return f"{fks}\nUNION\n{triggers}\nUNION\n{functions}\nORDER BY 1, 2"


def live_check_sql(workload: Workload, accepted: Sequence[str]) -> str:
    """Fails (naming every path) when the live monolith still writes the workload's tables
    through a cascading foreign key, a trigger or a function from tables it keeps writing.
    ``accepted`` are tables whose writes the stack config accepts will fail."""
    paths = live_paths_sql(owned_tables(workload), accepted)
    hint = (
        "cut the writing tables' owner over first, or accept the failing writes in "
        f"databases.acceptedCrossServiceWrites.{workload.name}"
    )
    return f"""DO $do$
DECLARE
    found text;
BEGIN
    SELECT string_agg(p.kind || ' ' || p.via, '; ') INTO found FROM ({paths}) AS p;
    IF found IS NOT NULL THEN
        RAISE EXCEPTION 'cutting {workload.name} over would fence tables the monolith still writes: %', found
            USING HINT = {literal(hint)};
    END IF;
END
$do$;"""


def live_check_step(workload: Workload, accepted: Sequence[str] = ()) -> Step:
    """The cut-over step that runs :func:`live_check_sql` on the monolith, before the fence."""
    return Step(
        "refuse while the monolith writes these tables through triggers, cascades or functions",
        "monolith",
        "execute",
        live_check_sql(workload, accepted),
    )


def accepted_tables(workloads: Iterable[Workload], accepted_owners: Sequence[str]) -> list[str]:
    """The tables of the accepted writer workloads, for :func:`live_check_sql`."""
    return [t.name for w in workloads if w.name in accepted_owners for t in owned_tables(w)]
