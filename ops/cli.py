"""The ``vinylhound`` command: what the Pulumi CLI lacks, for the people who run this platform."""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path
from typing import Annotated

import typer

from infra.config import ConfigError
from ops import contract, live, rollback
from ops import diff as diffing
from ops.check import check
from ops.migration_sql import migration_sql
from ops.mockrun import ProgramError
from ops.output import Output, PlainCommand, dump, print_table, say
from ops.project import Project, ProjectError, find_root

app = typer.Typer(
    name="vinylhound",
    help="Render, check, diff and roll back the Vinylhound platform's Pulumi stacks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"vinylhound {metadata.version('vinylhound-platform')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_version, help="Print the version and exit.")
    ] = False,
) -> None:
    """Render, check, diff and roll back the Vinylhound platform's Pulumi stacks."""


def _project() -> Project:
    return Project(find_root())


def fail(message: str) -> typer.Exit:
    """Print ``message`` to stderr (one line per problem) and return the exit to raise."""
    say(message, stderr=True)
    return typer.Exit(1)


@app.command(cls=PlainCommand)
def render(
    stack: Annotated[str, typer.Argument(metavar="STACK", help="Stack to render (dev, staging, prod, ...).")],
    out: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Output directory. Default: build/STACK.")
    ] = None,
    output: Annotated[
        Output,
        typer.Option("--output", "-o", metavar="FORMAT", help="table, json or yaml: the objects per kind."),
    ] = Output.table,
) -> None:
    """Run the stack's program offline (no cluster, no account) and write what it declares.

    Exit status: 0 written; 1 the stack cannot be rendered (one line per problem on stderr; the
    output directory is left as it was); 2 a usage error."""
    from ops import render as rendering

    if output is Output.markdown:
        raise typer.BadParameter("render prints table, json or yaml", param_hint="'--output'")
    try:
        project = _project()
        target = out or project.root / "build" / stack
        result = rendering.render(project, stack, target)
    except (ProjectError, ConfigError) as err:
        raise fail(str(err)) from None
    except ProgramError as err:
        raise fail(
            f"{stack}: the program raised {type(err.cause).__name__}: {' '.join(str(err).split())}"
        ) from None
    kinds = dict(sorted(result.kinds().items()))
    if output in (Output.json, Output.yaml):
        data = {
            "stack": stack,
            "resources": len(result.run.registrations),
            "out": str(result.out),
            "kinds": kinds,
        }
        sys.stdout.write(dump(data, output))
        return
    title = f"{stack}: {len(result.run.registrations)} resources in {result.seconds:.2f}s"
    print_table(title, ("kind", "objects"), [(kind, str(n)) for kind, n in kinds.items()])
    say(f"written to {result.out}")


app.command(name="check", cls=PlainCommand)(check)
# Commands implemented in their own modules (ops/<command>.py).
app.command("diff", cls=PlainCommand)(diffing.command)
app.command("preview", cls=PlainCommand)(live.preview_command)
app.command("up", cls=PlainCommand)(live.up_command)
app.command("history", cls=PlainCommand)(rollback.history_command)
app.command("rollback", cls=PlainCommand)(rollback.rollback_command)
app.command("migration-sql", cls=PlainCommand)(migration_sql)
app.command("contract", cls=PlainCommand)(contract.command)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
