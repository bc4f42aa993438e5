"""The ``vinylhound`` command: what the Pulumi CLI lacks, for the people who run this platform."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from infra.config import ConfigError
from ops import contract, live, rollback
from ops import diff as diffing
from ops.check import check
from ops.migration_sql import migration_sql
from ops.project import Project, ProjectError, find_root

app = typer.Typer(
    name="vinylhound",
    help="Render, check, diff and roll back the Vinylhound platform's Pulumi stacks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
errors = Console(stderr=True)


@app.callback()
def _root() -> None:
    """Render, check, diff and roll back the Vinylhound platform's Pulumi stacks."""


def _project() -> Project:
    return Project(find_root())


def fail(message: str) -> typer.Exit:
    """Print ``message`` to stderr (one line per problem) and return the exit to raise."""
    errors.print(message, markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(1)


@app.command()
def render(
    stack: Annotated[str, typer.Argument(help="Stack to render (dev, staging, prod, ...).")],
    out: Annotated[Path | None, typer.Option(help="Output directory. Default: build/STACK.")] = None,
) -> None:
    """Run the stack's program offline (no cluster, no account) and write what it declares."""
    from ops import render as rendering

    try:
        project = _project()
        target = out or project.root / "build" / stack
        result = rendering.render(project, stack, target)
    except (ProjectError, ConfigError) as err:
        raise fail(str(err)) from None
    table = Table(title=f"{stack}: {len(result.run.registrations)} resources in {result.seconds:.2f}s")
    table.add_column("kind")
    table.add_column("objects", justify="right")
    for kind, count in sorted(result.kinds().items()):
        table.add_row(kind, str(count))
    console.print(table)
    console.print(f"written to {result.out}")


app.command(name="check")(check)
# Commands implemented in their own modules (ops/<command>.py).
app.command("diff")(diffing.command)
app.command("preview")(live.preview_command)
app.command("up")(live.up_command)
app.command("history")(rollback.history_command)
app.command("rollback")(rollback.rollback_command)
app.command("migration-sql")(migration_sql)
app.command("contract")(contract.command)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
