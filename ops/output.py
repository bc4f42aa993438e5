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


class Output(StrEnum):
    """What ``-o/--output`` accepts where a command's output is data."""

    table = "table"
    json = "json"
    yaml = "yaml"
    markdown = "markdown"


def is_tty() -> bool:
    """Whether stdout is a terminal (the only case that gets colours, boxes and wrapping)."""
    return sys.stdout.isatty()


def console(*, stderr: bool = False) -> Console:
    """A console for free text: on a non-terminal it neither wraps nor highlights."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr, highlight=False)
    return Console(
        stderr=stderr, highlight=False, soft_wrap=True, no_color=True, width=10_000, force_terminal=False
    )


def say(line: str, *, stderr: bool = False) -> None:
    """Print one line as it is (no markup, no wrapping)."""
    print(line, file=sys.stderr if stderr else sys.stdout, flush=stderr)


def plain_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows as lines with columns padded to the widest cell, header first; a multi-line cell
    continues on the next lines under its column."""
    widths = [
        max([len(c), *(len(line) for r in rows for line in r[i].splitlines() or [""])])
        for i, c in enumerate(columns)
    ]
    out = []
    for row in [list(columns), *rows]:
        cells = [cell.splitlines() or [""] for cell in row]
        for n in range(max(len(c) for c in cells)):
            parts = [(c[n] if n < len(c) else "").ljust(w) for c, w in zip(cells, widths, strict=True)]
            out.append("  ".join(parts).rstrip())
    return out


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A titled table: rich on a terminal, plain padded lines otherwise."""
    if is_tty():
        table = Table(title=Text(title), show_lines=any("\n" in c for r in rows for c in r))
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))
        Console().print(table)
        return
    say(title)
    for line in plain_table(columns, rows):
        say(line)


def dump(data: Any, fmt: Output) -> str:
    """``data`` as JSON (indented, sorted keys) or YAML (block style, key order kept)."""
    if fmt is Output.json:
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
