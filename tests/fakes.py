"""Installs ``tests/fake_pulumi.py`` as a FAKE ``pulumi`` on PATH and reads back what it was asked.

The fake only shows which arguments our Automation API calls pass; the real CLI never runs here.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

FAKE_SOURCE = Path(__file__).with_name("fake_pulumi.py")


@dataclass
class FakePulumi:
    """The fake's call log and its stack history file."""

    log: Path
    history: Path

    def calls(self) -> list[dict[str, Any]]:
        """Every invocation so far: argv (without ``--non-interactive``), cwd and checked-out commit."""
        if not self.log.exists():
            return []
        calls = [json.loads(line) for line in self.log.read_text().splitlines()]
        for call in calls:
            call["argv"] = [a for a in call["argv"] if a != "--non-interactive"]
        return calls

    def command(self, name: str) -> list[dict[str, Any]]:
        """The calls of one command (``preview``, ``up``, ...)."""
        return [c for c in self.calls() if c["argv"][:1] == [name]]

    def set_history(self, entries: list[dict[str, Any]]) -> None:
        """What ``pulumi stack history --json`` answers (newest first)."""
        self.history.write_text(json.dumps(entries))


def install_fake_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakePulumi:
    """Put the fake first on PATH for the rest of the test."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    exe = bin_dir / "pulumi"
    exe.write_text(f"#!{sys.executable}\n" + FAKE_SOURCE.read_text())
    exe.chmod(0o755)
    fake = FakePulumi(log=tmp_path / "pulumi-calls.jsonl", history=tmp_path / "history.json")
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("FAKE_PULUMI_LOG", str(fake.log))
    monkeypatch.setenv("FAKE_PULUMI_HISTORY", str(fake.history))
    monkeypatch.delenv("FAKE_PULUMI_FAIL", raising=False)
    return fake


def option(argv: list[str], name: str) -> str | None:
    """The value after ``name`` in ``argv``."""
    return argv[argv.index(name) + 1] if name in argv else None


def add_policy_placeholders(root: Path) -> None:
    """A policies/ folder with a pack manifest and per-stack configs, unless the project has them.

    The fake never reads them: only their paths are checked."""
    pack = root / "policies"
    (pack / "config").mkdir(parents=True, exist_ok=True)
    if not (pack / "PulumiPolicy.yaml").exists():
        (pack / "PulumiPolicy.yaml").write_text("runtime: python\n")
    for stack in ("dev", "staging", "prod"):
        config = pack / "config" / f"{stack}.json"
        if not config.exists():
            config.write_text("{}\n")
