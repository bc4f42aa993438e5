"""How every ``vinylhound`` command prints: rich tables on a terminal, plain lines everywhere else.

Piped into a file, ``grep`` or a CI log, output must not wrap at 80 columns or draw boxes, so the
commands ask here instead of using ``rich.Console`` directly: on a terminal a rich table (cells are
``Text``, never markup, so ``[name=x]`` survives), otherwise one line per row, columns padded to the
widest cell and never wrapped or cut (as ``kubectl get`` prints).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperArgument, TyperCommand


class Output(StrEnum):
    """What ``-o/--output`` accepts where a command's output is data."""

    table = "table"
    json = "json"
    yaml = "yaml"
    markdown = "markdown"


def is_tty() -> bool:
    """Whether stdout is a terminal (the only case that gets colours, boxes and wrapping)."""
    return sys.stdout.isatty()


def say(line: str, *, stderr: bool = False) -> None:
    """Print one line as it is (no markup, no wrapping)."""
    print(line, file=sys.stderr if stderr else sys.stdout, flush=stderr)


def _cell_line(lines: list[str], n: int) -> str:
    # A single-line cell repeats on every line of its row; a multi-line one runs out blank.
    if len(lines) == 1:
        return lines[0]
    return lines[n] if n < len(lines) else ""


def plain_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows as lines with columns padded to the widest cell, header first. A multi-line cell
    gives its row one line per cell line, each repeating the row's single-line cells, so every
    line names what it is about (``grep weight`` shows the resource too)."""
    widths = [
        max([len(c), *(len(line) for r in rows for line in r[i].splitlines() or [""])])
        for i, c in enumerate(columns)
    ]
    out = []
    for row in [list(columns), *rows]:
        cells = [cell.splitlines() or [""] for cell in row]
        for n in range(max(len(c) for c in cells)):
            parts = [_cell_line(c, n).ljust(w) for c, w in zip(cells, widths, strict=True)]
            out.append("  ".join(parts).rstrip())
    return out


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A table with an optional title: rich on a terminal, plain padded lines otherwise."""
    if is_tty():
        table = Table(
            title=Text(title) if title else None, show_lines=any("\n" in c for r in rows for c in r)
        )
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))
        Console().print(table)
        return
    if title:
        say(title)
    for line in plain_table(columns, rows):
        say(line)


def dump(data: Any, fmt: Output) -> str:
    """``data`` as JSON (indented, sorted keys) or YAML (block style, key order kept)."""
    if fmt is Output.json:
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def _argument_name(param: TyperArgument) -> str:
    name = param.metavar or str(param.name).upper()
    return name if param.nargs == 1 or name.endswith("...") else f"{name}..."


class PlainCommand(TyperCommand):
    """Help as git and kubectl print it: arguments by their name (``STACK``, ``[STACK]``), no
    Python type names (Typer's own help adds ``<str>`` and ``{STACK}``)."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """``[OPTIONS] STACK`` or ``[OPTIONS] [STACK]...``."""
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = _argument_name(param)
                pieces.append(
                    name if param.required else f"[{name.removesuffix('...')}]" + "..." * (param.nargs != 1)
                )
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        """Arguments, then options; an argument's line starts with its name alone."""
        args, opts = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if isinstance(param, TyperArgument):
                args.append((_argument_name(param), record[1]))
            else:
                opts.append(record)
        for title, rows in (("Arguments", args), ("Options", opts)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
