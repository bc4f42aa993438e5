"""The ``vinylhound`` command behaves like the tools its users live in (git, kubectl, pulumi):
``-h`` and ``--version``, help that names arguments and values instead of Python types, options
that exclude each other refused, data in ``-o json|yaml``, and output that stays whole lines when
it is piped."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ops.cli import app
from ops.output import plain_table, print_table
from ops.rollback import print_history
from tests.conftest import ROOT
from tests.test_rollback import entry, history

COMMANDS = ["render", "check", "diff", "preview", "up", "history", "rollback", "migration-sql", "contract"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    # A real process with a pipe for stdout: what CI and `| grep` see.
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_version_prints_the_installed_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and re.fullmatch(r"vinylhound \d+\.\d+\.\d+\n", result.stdout)


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_dash_h_prints_help_without_python_type_names(command: str) -> None:
    result = CliRunner().invoke(app, [command, "-h"] if command else ["-h"])
    assert result.exit_code == 0 and result.stdout.startswith("Usage: vinylhound")
    for internal in ("<str>", "<bool>", "<path>", "<int>", "list[", "{STACK}", "{stack}", "<table"):
        assert internal not in result.stdout, (command, internal)


def test_preview_help_does_not_claim_to_deploy() -> None:
    assert "Deploy" not in CliRunner().invoke(app, ["preview", "-h"]).stdout


def test_diff_help_lists_every_exit_status() -> None:
    text = " ".join(CliRunner().invoke(app, ["diff", "-h"]).stdout.split())
    for status in (
        "0 every stack compared",
        "1 a side of a stack could not be rendered",
        "2 a usage error",
        "3 compared",
    ):
        assert status in text


def test_a_stack_and_all_together_are_refused_as_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["check", "dev", "--all"])
    assert result.exit_code == 2
    assert "name a stack (dev) or pass --all, not both" in result.output


@pytest.mark.slow
def test_render_prints_its_summary_as_data_with_dash_o(tmp_path: Path) -> None:
    done = _run("render", "dev", "--out", str(tmp_path / "dev"), "-o", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["stack"] == "dev" and data["kinds"]["Deployment"] >= 1 and data["resources"] > 0
    again = yaml.safe_load(_run("render", "dev", "--out", str(tmp_path / "dev"), "-o", "yaml").stdout)
    assert again["kinds"] == data["kinds"]


@pytest.mark.slow
def test_piped_render_output_is_plain_lines_without_boxes(tmp_path: Path) -> None:
    done = _run("render", "dev", "--out", str(tmp_path / "dev"))
    assert done.returncode == 0, done.stderr
    title, header, *rows, written = done.stdout.splitlines()
    assert re.fullmatch(r"dev: \d+ resources in \d+\.\d\ds", title) and header.split() == ["kind", "objects"]
    assert any(re.fullmatch(r"Deployment +\d+", row) for row in rows)
    assert written == f"written to {tmp_path / 'dev'}"
    assert not any(ch in done.stdout for ch in "│┃━─┏")


def test_plain_tables_keep_long_cells_whole_and_name_the_row_on_every_line() -> None:
    long = "spec.http[name=auth-login].route[host=user-service].weight: 100 -> 37 " + "x" * 200
    assert plain_table(("what", "detail"), [("changed", long), ("added", "a\nb")]) == [
        "what     detail",
        f"changed  {long}",
        "added    a",
        "added    b",
    ]


def test_piped_history_is_one_plain_line_per_update_newest_first(capsys: pytest.CaptureFixture[str]) -> None:
    print_history(history(entry(1, sha="a" * 40), entry(2, "failed", sha="b" * 40, dirty=True)))
    assert [line.split() for line in capsys.readouterr().out.splitlines()] == [
        ["version", "kind", "result", "time", "commit", "message"],
        ["v2", "update", "failed", "2026-11-02T10:00:00.000Z", "b" * 12, "(dirty)", "update", "2"],
        ["v1", "update", "succeeded", "2026-11-01T10:00:00.000Z", "a" * 12, "update", "1"],
    ]


def test_terminal_tables_print_brackets_as_text_not_rich_markup(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("ops.output.is_tty", lambda: True)
    print_table(
        "dev: [bold]1 changed[/bold]", ("what", "detail"), [("changed", "http[name=me].weight: 1 -> 2")]
    )
    out = capsys.readouterr().out
    assert "dev: [bold]1 changed[/bold]" in out and "http[name=me].weight: 1 -> 2" in out
    assert "│" in out  # a terminal does get the rich table


@pytest.mark.parametrize("command", [["render", "dev"], ["check", "dev"], ["history", "dev"]])
def test_markdown_is_refused_where_only_diff_prints_it(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "-o", "markdown"])
    assert result.exit_code == 2 and "prints table, json or yaml" in result.output
