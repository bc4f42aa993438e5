"""A service's schema read from the live monolith's catalogs, not from the model.

The real monolith drifts from any model (columns added by ``ALTER TABLE`` in another order, a NOT
NULL added later, an index made by hand). So the schema step asks the running monolith: one
query over its system catalogs prints the DDL of exactly the owned tables (columns in their
physical order with types, collations, defaults, identity, NOT NULLs; primary keys, uniques,
checks and exclusions; sequences; indexes; triggers with their functions; comments; replica
identity), and the service database runs what it printed. What it leaves out is printed first,
as ``-- dropped:`` lines, so the Job's log lists it:

- foreign keys to tables the service does not own;
- triggers whose function names a monolith table the service does not own (the Favorites
  trigger on ``users`` writes ``playlists``): they could only fail in the service's database;
- the cut-over's write fence (``vinylhound_write_fence``), which is the platform's, not the
  monolith's.

Every printed statement is idempotent (``IF NOT EXISTS``, ``OR REPLACE``, or guarded by a
catalog lookup), so the step can run again. Names come out schema-qualified (the query sets
``search_path = pg_catalog`` for its transaction: run it in one), so the output does not depend
on either side's search path.
A table the monolith does not have makes the printed script fail, naming it.
"""

from __future__ import annotations

from collections.abc import Sequence

#: The platform's own trigger on a moved table (``infra.migration.freeze_writes_sql``).
FENCE_TRIGGER = "vinylhound_write_fence"

_QUERY = r"""
WITH wanted AS (
    SELECT name FROM unnest(ARRAY[{tables}]::text[]) AS name
), owned AS (
    SELECT c.oid, c.relname, n.nspname FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = {schema} AND c.relkind = 'r' AND c.relname IN (SELECT name FROM wanted)
), foreign_tables AS (
    -- Every other table of the monolith: a trigger function naming one reaches outside.
    SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = {schema} AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND c.oid NOT IN (SELECT oid FROM owned)
), fks AS (
    SELECT k.oid, k.conname, t.relname, t.nspname, pg_get_constraintdef(k.oid) AS def,
           k.confrelid IN (SELECT oid FROM owned) AS kept, k.confrelid::regclass::text AS target
    FROM pg_constraint k JOIN owned t ON t.oid = k.conrelid WHERE k.contype = 'f'
), trigs AS (
    SELECT tg.oid, tg.tgname, tg.tgenabled, tg.tgfoid, t.relname, t.nspname,
           (SELECT string_agg(f.relname, ', ' ORDER BY f.relname) FROM foreign_tables f
            WHERE p.code ~* ('\m' || regexp_replace(f.relname, '([^[:alnum:]_])', '\\\1', 'g') || '\M'))
               AS reaches
    FROM pg_trigger tg JOIN owned t ON t.oid = tg.tgrelid
    -- The function's code without its string literals and comments ('Your favorited songs').
    JOIN (SELECT oid, regexp_replace(regexp_replace(prosrc, '''([^'']|'''')*''', '''''', 'g'),
                                     '--[^\n]*', '', 'g') AS code FROM pg_proc) p ON p.oid = tg.tgfoid
    WHERE NOT tg.tgisinternal AND tg.tgname <> {fence}
), kept_trigs AS (
    SELECT * FROM trigs WHERE reaches IS NULL
), extension_members AS (
    -- Operator classes of the indexes, column types, default and trigger functions.
    SELECT 'pg_opclass'::regclass AS classid, unnest(x.indclass::oid[]) AS objid
    FROM pg_index x WHERE x.indrelid IN (SELECT oid FROM owned)
    UNION SELECT 'pg_type'::regclass, a.atttypid FROM pg_attribute a
    WHERE a.attrelid IN (SELECT oid FROM owned) AND a.attnum > 0 AND NOT a.attisdropped
    UNION SELECT 'pg_proc'::regclass, d.refobjid FROM pg_depend d JOIN pg_attrdef ad ON ad.oid = d.objid
    WHERE d.classid = 'pg_attrdef'::regclass AND d.refclassid = 'pg_proc'::regclass
      AND ad.adrelid IN (SELECT oid FROM owned)
    UNION SELECT 'pg_proc'::regclass, tgfoid FROM kept_trigs
), extensions AS (
    SELECT DISTINCT e.extname, en.nspname FROM extension_members m
    JOIN pg_depend d ON d.classid = m.classid AND d.objid = m.objid AND d.deptype = 'e'
        AND d.refclassid = 'pg_extension'::regclass
    JOIN pg_extension e ON e.oid = d.refobjid JOIN pg_namespace en ON en.oid = e.extnamespace
), seqs AS (
    -- Sequences the columns' defaults draw from (serial columns), with their owner if owned.
    SELECT DISTINCT s.oid, s.relname, sn.nspname, q.*,
           (SELECT format('%I.%I.%I', o.nspname, o.relname, a.attname) FROM pg_depend od
            JOIN owned o ON o.oid = od.refobjid
            JOIN pg_attribute a ON a.attrelid = od.refobjid AND a.attnum = od.refobjsubid
            WHERE od.classid = 'pg_class'::regclass AND od.objid = s.oid AND od.deptype = 'a'
              AND od.refclassid = 'pg_class'::regclass) AS owned_by
    FROM pg_attrdef ad
    JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
        AND d.refclassid = 'pg_class'::regclass
    JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
    JOIN pg_namespace sn ON sn.oid = s.relnamespace
    JOIN pg_sequence q ON q.seqrelid = s.oid
    WHERE ad.adrelid IN (SELECT oid FROM owned)
), table_lines AS (
    SELECT t.oid, a.attnum AS ord,
           format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod))
           || CASE WHEN a.attcollation <> 0 AND a.attcollation <> ty.typcollation THEN
                   (SELECT format(' COLLATE %I.%I', cn.nspname, co.collname) FROM pg_collation co
                    JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation)
              ELSE '' END
           || CASE a.attidentity WHEN 'a' THEN ' GENERATED ALWAYS AS IDENTITY'
                                 WHEN 'd' THEN ' GENERATED BY DEFAULT AS IDENTITY' ELSE '' END
           || CASE WHEN a.attgenerated = 's'
                   THEN ' GENERATED ALWAYS AS (' || pg_get_expr(ad.adbin, ad.adrelid) || ') STORED'
                   WHEN ad.adbin IS NOT NULL THEN ' DEFAULT ' || pg_get_expr(ad.adbin, ad.adrelid)
                   ELSE '' END
           || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END AS line
    FROM owned t JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
    JOIN pg_type ty ON ty.oid = a.atttypid
    LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
    UNION ALL
    SELECT t.oid, 100000 + row_number() OVER (PARTITION BY t.oid ORDER BY k.contype, k.conname),
           format('CONSTRAINT %I %s', k.conname, pg_get_constraintdef(k.oid))
    FROM owned t JOIN pg_constraint k ON k.conrelid = t.oid AND k.contype IN ('p', 'u', 'c', 'x')
), statements AS (
    SELECT 0 AS section, '' AS key, 0 AS ord,
           format('-- schema of %s, read from the monolith''s catalogs',
                  (SELECT string_agg(name, ', ' ORDER BY name) FROM wanted)) AS stmt
    UNION ALL
    SELECT 1, relname || ' ' || conname, 0,
           format('-- dropped: foreign key %s on %s: %s (%s is not owned here)',
                  conname, relname, def, target)
    FROM fks WHERE NOT kept
    UNION ALL
    SELECT 1, relname || ' ' || tgname, 1,
           format('-- dropped: trigger %s on %s: its function %s names %s, not owned here',
                  tgname, relname, tgfoid::regproc, reaches)
    FROM trigs WHERE reaches IS NOT NULL
    UNION ALL
    SELECT 2, name, 0,
           format('DO $do$ BEGIN RAISE EXCEPTION %L; END $do$;',
                  format('the monolith has no table %s.%s', {schema}, name))
    FROM wanted WHERE name NOT IN (SELECT relname FROM owned)
    UNION ALL
    SELECT 3, extname, 0, format('CREATE EXTENSION IF NOT EXISTS %I WITH SCHEMA %I;', extname, nspname)
    FROM extensions
    UNION ALL
    SELECT 4, relname, 0,
           format('CREATE SEQUENCE IF NOT EXISTS %I.%I AS %s INCREMENT BY %s MINVALUE %s MAXVALUE %s '
                  'START WITH %s CACHE %s%s;', nspname, relname, format_type(seqtypid, NULL),
                  seqincrement, seqmin, seqmax, seqstart, seqcache,
                  CASE WHEN seqcycle THEN ' CYCLE' ELSE '' END)
    FROM seqs
    UNION ALL
    SELECT 5, t.relname, 0,
           format(E'CREATE TABLE IF NOT EXISTS %I.%I (\n    %s\n);', t.nspname, t.relname,
                  string_agg(l.line, E',\n    ' ORDER BY l.ord))
    FROM owned t JOIN table_lines l ON l.oid = t.oid GROUP BY t.nspname, t.relname
    UNION ALL
    SELECT 6, relname, 0, format('ALTER SEQUENCE %I.%I OWNED BY %s;', nspname, relname, owned_by)
    FROM seqs WHERE owned_by IS NOT NULL
    UNION ALL
    SELECT 7, t.relname, 0,
           format('ALTER TABLE %I.%I REPLICA IDENTITY %s;', t.nspname, t.relname,
                  CASE c.relreplident WHEN 'f' THEN 'FULL' WHEN 'n' THEN 'NOTHING'
                  ELSE (SELECT format('USING INDEX %I', i.relname) FROM pg_index x
                        JOIN pg_class i ON i.oid = x.indexrelid
                        WHERE x.indrelid = c.oid AND x.indisreplident) END)
    FROM owned t JOIN pg_class c ON c.oid = t.oid WHERE c.relreplident <> 'd'
    UNION ALL
    SELECT 8, relname || ' ' || conname, 0,
           format(E'DO $do$ BEGIN\n    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = %L '
                  || E'AND conrelid = %L::regclass) THEN\n        ALTER TABLE %I.%I ADD CONSTRAINT %I %s;\n'
                  || E'    END IF;\nEND $do$;',
                  conname, format('%I.%I', nspname, relname), nspname, relname, conname, def)
    FROM fks WHERE kept
    UNION ALL
    SELECT 9, t.relname || ' ' || i.relname, 0,
           regexp_replace(pg_get_indexdef(x.indexrelid), '^CREATE (UNIQUE )?INDEX ',
                          'CREATE \1INDEX IF NOT EXISTS ') || ';'
    FROM owned t JOIN pg_index x ON x.indrelid = t.oid JOIN pg_class i ON i.oid = x.indexrelid
    WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid
                      AND k.conrelid = t.oid AND k.contype IN ('p', 'u', 'x'))
    UNION ALL
    SELECT DISTINCT 10, tgfoid::regproc::text, 0, pg_get_functiondef(tgfoid) || ';'
    FROM kept_trigs WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                                      AND d.objid = tgfoid AND d.deptype = 'e')
    UNION ALL
    SELECT 11, relname || ' ' || tgname, 0,
           format(E'DO $do$ BEGIN\n    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = %L '
                  || E'AND tgrelid = %L::regclass) THEN\n        EXECUTE %L;\n    END IF;\nEND $do$;',
                  tgname, format('%I.%I', nspname, relname), pg_get_triggerdef(oid))
    FROM kept_trigs
    UNION ALL
    SELECT 12, relname || ' ' || tgname, 0,
           format('ALTER TABLE %I.%I %s TRIGGER %I;', nspname, relname,
                  CASE tgenabled WHEN 'D' THEN 'DISABLE' WHEN 'R' THEN 'ENABLE REPLICA'
                  ELSE 'ENABLE ALWAYS' END, tgname)
    FROM kept_trigs WHERE tgenabled <> 'O'
    UNION ALL
    SELECT 13, t.relname, d.objsubid,
           CASE WHEN d.objsubid = 0
                THEN format('COMMENT ON TABLE %I.%I IS %L;', t.nspname, t.relname, d.description)
                ELSE format('COMMENT ON COLUMN %I.%I.%I IS %L;', t.nspname, t.relname, a.attname,
                            d.description) END
    FROM owned t JOIN pg_description d ON d.objoid = t.oid AND d.classoid = 'pg_class'::regclass
    LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.objsubid
)
SELECT stmt FROM statements ORDER BY section, key, ord;
"""


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def read_service_schema_sql(tables: Sequence[str], schema: str = "public") -> str:
    """The query to run on the monolith: it prints, one statement per row, the DDL that creates
    ``tables`` (of ``schema``) in a service database as the monolith has them, after ``--
    dropped:`` lines naming what it leaves out (see the module docstring)."""
    if not tables:
        raise ValueError("no tables to read")
    query = _QUERY.format(
        tables=", ".join(_literal(t) for t in sorted(tables)),
        schema=_literal(schema),
        fence=_literal(FENCE_TRIGGER),
    )
    return "SET LOCAL search_path = pg_catalog;" + query
