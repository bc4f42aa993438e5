"""The databases of a docker stack: one PostgreSQL container per workload that owns tables."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi

from components.docker.postgres import PostgresArgs, PostgresDatabase
from components.options import child_opts
from infra.catalog import predates_components

TYPE = "vinylhound:databases:LocalDatabases"


class LocalDatabases(pulumi.ComponentResource):
    """Per workload name, its ``PostgresDatabase`` (``databases``), named as its cluster."""

    databases: dict[str, PostgresDatabase]

    def __init__(
        self, name: str, args: Mapping[str, PostgresArgs], opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE, name, None, opts)
        self.databases = {
            workload: PostgresDatabase(
                db.name, db, child_opts(self, moved_from_root=predates_components(workload))
            )
            for workload, db in args.items()
        }
        self.register_outputs({})
