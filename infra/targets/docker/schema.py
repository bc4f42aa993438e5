"""The SQL each local PostgreSQL container runs once, at its first start."""

from __future__ import annotations

from infra.catalog import Workload


def initial_schema_sql(workload: Workload) -> str:
    """The first-start SQL of ``workload``'s own database: its extensions, then its schema.

    Merge point: the database issue generates each database's schema (exactly its owned tables)
    in one module; this function is where that generated SQL is appended, so the local databases
    start with the same schema as the Kubernetes ones. Until then only the extensions are created
    and the services' own migrations create their tables.
    """
    if workload.database is None:
        raise ValueError(f"{workload.name} owns no database")
    lines = [f"-- {workload.database.name}: owned by {workload.name}; applied once, at first start."]
    lines += [f"CREATE EXTENSION IF NOT EXISTS {ext};" for ext in workload.database.extensions]
    return "\n".join(lines) + "\n"
