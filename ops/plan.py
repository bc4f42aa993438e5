"""Binding an update to the preview a person saw.

``pulumi preview --save-plan`` writes the operations it proposes; ``pulumi up --plan`` then fails
any operation outside them (pkg/resource/deploy/step_generator.go, "violates plan"). That guards
resources, but a plan does not say WHICH program and WHICH stack state it came from, and the engine
only notices a difference when it reaches a resource, possibly after others were changed. So next
to the plan we keep a ``Binding``: the stack, the version of its last update, and a digest of every
file of the checkout. Before ``up`` the binding is taken again; any difference is refused up front,
with the reason, before the engine starts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ops.gitrepo import GitError, git, resolve

#: The files ``vinylhound preview --save-plan DIR`` writes into DIR.
PLAN_FILE = "plan.json"
BINDING_FILE = "binding.json"
#: Left out when the checkout is not a git repository (git's own ignore rules apply otherwise).
_NOT_SOURCES = frozenset({".git", ".venv", "venv", "build", "__pycache__", ".mypy_cache", ".ruff_cache"})
#: Enough entries to find the last update behind any previews Pulumi Cloud lists.
_RECENT = 10


class PlanError(Exception):
    """A saved plan cannot be used; the message is one printable line."""


@dataclass(frozen=True)
class Binding:
    """What a preview was computed from: the stack, its state, the checkout's files."""

    stack: str
    state_version: int
    commit: str | None = None
    files: Mapping[str, str] = field(default_factory=dict)

    def drift(self, now: Binding) -> str | None:
        """Why an update made ``now`` would not be the previewed one, or ``None``."""
        if self.stack != now.stack:
            return f"the plan is for stack {self.stack}, not {now.stack}"
        if self.state_version != now.state_version:
            return (
                f"{self.stack} was updated since the preview (v{self.state_version} -> v{now.state_version})"
            )
        paths = self.files.keys() | now.files.keys()
        changed = sorted(k for k in paths if self.files.get(k) != now.files.get(k))
        if changed:
            shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
            return f"the program changed since the preview ({shown})"
        return None

    def save(self, directory: Path) -> None:
        """Write the binding beside the plan in ``directory``."""
        (directory / BINDING_FILE).write_text(json.dumps(asdict(self), indent=1, sort_keys=True) + "\n")

    @classmethod
    def load(cls, directory: Path) -> Binding:
        """The binding saved in ``directory``; ``PlanError`` naming the file when it is unusable."""
        path = directory / BINDING_FILE
        for required in (directory / PLAN_FILE, path):
            if not required.is_file():
                raise PlanError(f"{required}: no such file (vinylhound preview --save-plan writes it)")
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            return cls(
                stack=str(data["stack"]),
                state_version=int(data["state_version"]),
                commit=data.get("commit"),
                files=dict(data["files"]),
            )
        except (ValueError, KeyError, TypeError) as err:
            raise PlanError(f"{path}: not a plan binding ({type(err).__name__}: {err})") from None


def checkout_files(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` that git does not ignore (all files but caches and
    virtualenvs when ``root`` is not a git checkout), by path relative to ``root``."""
    try:
        listed = git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
        names = [n for n in listed.split("\0") if n]
    except GitError:
        names = [
            str(p.relative_to(root))
            for p in root.rglob("*")
            if p.is_file() and not set(p.relative_to(root).parts) & _NOT_SOURCES
        ]
    files = {}
    for name in sorted(names):
        path = root / name
        # A tracked file deleted from the tree is a change too.
        files[name] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "deleted"
    return files


def state_version(stack: Any) -> int:
    """The version of the stack's last operation that changed state (0 for a new stack): previews,
    which Pulumi Cloud lists too, do not count. Secrets stay encrypted."""
    recent = stack.history(page_size=_RECENT, page=1, show_secrets=False)
    return next((int(s.version or 0) for s in recent if str(s.kind) != "preview"), 0)


def bind(root: Path, stack_name: str, stack: Any) -> Binding:
    """The binding of ``stack`` as it is now, for the program in ``root``."""
    return Binding(
        stack=stack_name,
        state_version=state_version(stack),
        commit=resolve(root, "HEAD"),
        files=checkout_files(root),
    )
