"""A FAKE ``pulumi`` executable: it records how it is called and answers with canned JSON.

It exists to check the arguments the Automation API is made to pass (policy pack, policy config,
stack, message, working directory); it deploys nothing and proves nothing about the real CLI.
Installed as ``pulumi`` on PATH by ``tests/test_live.py``. Environment:

- ``FAKE_PULUMI_LOG``: JSON lines, one per call: ``{"argv": [...], "cwd": "...", "head": "<sha>",
  "pythonpath": "..."}``;
- ``FAKE_PULUMI_HISTORY``: a JSON file in the ``pulumi stack history --json`` shape (newest
  first); ``up`` prepends a new succeeded update carrying its ``--message``;
- ``FAKE_PULUMI_FAIL``: a command name (``up``, ``preview``) that fails with an error on stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

#: The engine's counts every preview and update of the fake reports.
CHANGES = {"create": 1, "update": 2, "replace": 1, "delete": 0, "same": 30}
#: Newer CLIs stream engine events over gRPC; at or below 3.205 the SDK reads a file (simpler to fake).
VERSION = "v3.200.0"


def _head() -> str | None:
    # The commit checked out where the fake runs: shows which revision a rollback deploys.
    done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or None


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def _history(path: str | None) -> list[dict[str, Any]]:
    if not path or not Path(path).exists():
        return []
    data: list[dict[str, Any]] = json.loads(Path(path).read_text())
    return data


def _events(path: str) -> None:
    with open(path, "a", encoding="utf-8") as log:
        log.write(
            json.dumps({"sequence": 1, "timestamp": 0, "summaryEvent": {"resourceChanges": CHANGES}}) + "\n"
        )
        log.write(json.dumps({"sequence": 2, "timestamp": 0, "cancelEvent": {}}) + "\n")


def main(argv: list[str]) -> int:
    """Answer one invocation."""
    if log := os.environ.get("FAKE_PULUMI_LOG"):
        with open(log, "a", encoding="utf-8") as out:
            out.write(
                json.dumps(
                    {
                        "argv": argv,
                        "cwd": os.getcwd(),
                        "head": _head(),
                        "pythonpath": os.environ.get("PYTHONPATH"),
                    }
                )
                + "\n"
            )
    args = [a for a in argv if a != "--non-interactive"]
    command = args[0] if args else ""
    if command == os.environ.get("FAKE_PULUMI_FAIL"):
        print(f"error: the fake pulumi was told to fail {command}", file=sys.stderr)
        return 255
    history_file = os.environ.get("FAKE_PULUMI_HISTORY")
    if command == "version":
        print(VERSION)
    elif command in ("preview", "up"):
        print(f"fake {command} of stack {_option(args, '--stack')}")
        if (event_log := _option(args, "--event-log")) is not None:
            _events(event_log)
        if command == "up" and history_file:
            history = _history(history_file)
            version = max((h["version"] for h in history), default=0) + 1
            entry = {
                "version": version,
                "kind": "update",
                "startTime": "2026-11-25T12:00:00.000Z",
                "message": _option(args, "--message") or "",
                "environment": {"git.head": "0" * 40, "git.dirty": "false"},
                "config": {},
                "result": "succeeded",
                "endTime": "2026-11-25T12:01:00.000Z",
                "resourceChanges": CHANGES,
            }
            Path(history_file).write_text(json.dumps([entry, *history]))
    elif args[:2] == ["stack", "history"]:
        history = _history(history_file)
        if _option(args, "--page-size") is not None:
            history = history[: int(_option(args, "--page-size") or 0)]
        print(json.dumps(history))
    elif args[:2] == ["stack", "output"]:
        print("{}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
