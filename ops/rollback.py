"""``vinylhound history`` and ``vinylhound rollback``: redeploy the code and config of an earlier update.

Pulumi has no rollback command; its advice is to deploy the previous code and config again. Each
update records the git commit it was made from (``git.head`` in the update's environment) and
whether the tree had uncommitted changes (``git.dirty``). Rollback therefore:

1. reads the stack's history (``pulumi stack history --json`` through the Automation API, page by
   page, secrets left encrypted);
2. picks the target (``select_target``, a pure function): the last successful update before the
   current one, or ``--to VERSION``; it refuses when the target did not succeed, was deployed from a
   dirty tree (its code is in no commit), recorded no commit, or its commit is not in this repository;
3. checks that commit out into a temporary git worktree (removed however the command ends) and gives
   its policy pack a virtualenv (``prepare_policy_venv``), without which the CLI cannot start it;
4. previews from there, asks (unless ``--yes``), and applies that preview's plan with the message
   ``rollback to vN (<sha>)``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from ops import live
from ops.gitrepo import GitError, exclude_path, has_commit, temporary_worktree
from ops.output import Output, dump, print_table
from ops.project import ProjectError, find_root

SUCCEEDED = "succeeded"


class RefusalError(Exception):
    """The rollback must not happen; the message is the reason, one printable line."""


@dataclass(frozen=True)
class Update:
    """One entry of a stack's history, as ``pulumi stack history --json`` reports it."""

    version: int
    kind: str
    result: str
    start_time: str
    message: str = ""
    environment: Mapping[str, str] = field(default_factory=dict)

    @property
    def commit(self) -> str | None:
        """The git commit the update was made from (``git.head``), if it was made in a checkout."""
        return self.environment.get("git.head") or None

    @property
    def dirty(self) -> bool:
        """Whether the checkout had uncommitted changes (``git.dirty``)."""
        return str(self.environment.get("git.dirty", "")).lower() == "true"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Update:
        """From one element of ``pulumi stack history --json``."""
        return cls(
            version=int(data.get("version", 0)),
            kind=str(data.get("kind", "")),
            result=str(data.get("result", "")),
            start_time=str(data.get("startTime", "")),
            message=str(data.get("message", "")),
            environment=dict(data.get("environment") or {}),
        )

    @classmethod
    def from_summary(cls, summary: Any) -> Update:
        """From the Automation API's ``UpdateSummary``."""
        start = summary.start_time
        return cls(
            version=int(summary.version or 0),
            kind=str(summary.kind),
            result=str(summary.result),
            start_time=start.strftime("%Y-%m-%dT%H:%M:%SZ") if hasattr(start, "strftime") else str(start),
            message=str(summary.message or ""),
            environment=dict(summary.environment or {}),
        )


def select_target(
    history: Iterable[Update], to: int | None, has_commit: Callable[[str], bool]
) -> tuple[Update, str]:
    """The update to roll back to and its commit; ``RefusalError`` with the reason otherwise.

    Only updates (kind ``update``) deploy code; previews, refreshes and destroys are skipped when
    looking for the default target, and refused when named with ``--to``.
    """
    entries = sorted(history, key=lambda u: u.version, reverse=True)
    deployments = [u for u in entries if u.kind == "update"]
    if not deployments:
        raise RefusalError("the stack has no updates in its history: nothing to roll back to")
    current = deployments[0]
    if to is None:
        earlier = [u for u in deployments[1:] if u.result == SUCCEEDED]
        if not earlier:
            raise RefusalError(
                f"no successful update before the current one (v{current.version}) to roll back to"
            )
        target = earlier[0]
    else:
        named = [u for u in entries if u.version == to]
        if not named:
            versions = ", ".join(f"v{u.version}" for u in deployments[:10])
            raise RefusalError(f"no v{to} in the stack's history (latest updates: {versions})")
        target = named[0]
        if target.kind != "update":
            raise RefusalError(f"v{to} was a {target.kind}, not an update: it deployed nothing to return to")
        if target.version == current.version and current.result == SUCCEEDED:
            raise RefusalError(f"v{to} is the current deployment: nothing to roll back")
    version = f"v{target.version}"
    if target.result != SUCCEEDED:
        raise RefusalError(
            f"{version} did not succeed (result: {target.result or 'unknown'}); choose a successful update"
        )
    if target.dirty:
        raise RefusalError(
            f"{version} was deployed from a dirty git tree (git.dirty=true): the code it ran is in "
            "no commit, so it cannot be redeployed"
        )
    sha = target.commit
    if sha is None:
        raise RefusalError(
            f"{version} recorded no git commit (git.head): it was not deployed from a git checkout"
        )
    if not has_commit(sha):
        raise RefusalError(
            f"{version} was deployed from commit {sha[:12]}, which is not in this repository; "
            f"fetch it first (git fetch origin {sha})"
        )
    return target, sha


def rollback_message(target: Update, sha: str) -> str:
    """The message the rollback update is recorded with."""
    return f"rollback to v{target.version} ({sha[:12]})"


#: Entries per ``pulumi stack history`` call. Without ``--page-size`` the CLI returns only the
#: newest 10 (pkg/cmd/pulumi/stack/stack_history.go), so the whole history is read page by page.
HISTORY_PAGE_SIZE = 100


def load_history(stack: Any) -> list[Update]:
    """The stack's whole history through the Automation API (newest first), with secret config
    values left encrypted: ``--show-secrets`` would make the CLI decrypt every one of them (a
    passphrase prompt on a local backend, a decryption audit event in Pulumi Cloud)."""
    from pulumi.automation import errors

    updates: list[Update] = []
    page = 1
    try:
        while True:
            batch = stack.history(page_size=HISTORY_PAGE_SIZE, page=page, show_secrets=False)
            updates.extend(Update.from_summary(s) for s in batch)
            if len(batch) < HISTORY_PAGE_SIZE:
                return updates
            page += 1
    except errors.CommandError as err:
        raise live.failed("stack history", err) from None


def rollback(
    root: Path,
    stack_name: str,
    *,
    to: int | None,
    confirm: Callable[[str], bool] | None,
    use_policy: bool = True,
    out: live.Output = print,
) -> str | None:
    """Roll ``stack_name`` back (see the module docstring); return the update's summary, or ``None``
    when the user declined after the preview."""
    live.require_pulumi()
    current = live.open_stack(root, stack_name, create=False)
    target, sha = select_target(load_history(current), to, lambda c: has_commit(root, c))
    message = rollback_message(target, sha)
    out(f"rolling {stack_name} back to v{target.version}: commit {sha[:12]}, deployed {target.start_time}")
    with temporary_worktree(root, sha, link_venv=True) as tree:
        if use_policy:
            prepare_policy_venv(root, tree, sha, out=out)
        policy = live.policy_for(tree, stack_name, enabled=use_policy)
        # `deploy` always previews first; --yes (confirm=None) only skips the question.
        return live.deploy(
            tree,
            stack_name,
            policy,
            message=message,
            confirm=confirm,
            create=False,
            out=out,
            env={"PYTHONPATH": program_path(tree)},
        )


def prepare_policy_venv(root: Path, tree: Path, sha: str, *, out: live.Output = print) -> None:
    """Give the worktree's policy pack the virtualenv the Pulumi CLI starts it with.

    The CLI never installs a local pack's dependencies, and the worktree has no ``policies/venv``
    (it is not in git). When the target commit's ``policies/requirements.txt`` is the checkout's,
    the checkout's working venv is linked in; otherwise one is built from the target's file."""
    venv = live.policy_venv(tree / live.POLICY_PACK)
    if venv is None:
        return
    relative = venv.relative_to(tree)
    exclude_path(root, str(relative))
    requirements = relative.parent / "requirements.txt"
    ours, theirs = root / requirements, tree / requirements
    same = ours.is_file() and theirs.is_file() and ours.read_bytes() == theirs.read_bytes()
    if same and live.venv_problem(root / relative) is None:
        venv.symlink_to((root / relative).resolve(), target_is_directory=True)
        out(f"policy pack: using {root / relative} ({requirements} is the same at {sha[:12]})")
        return
    out(f"policy pack: building {relative} from {requirements} at {sha[:12]}")
    build_venv(venv, theirs)


def build_venv(venv: Path, requirements: Path) -> None:
    """A new virtualenv at ``venv`` with ``requirements`` installed; ``LiveError`` with pip's last
    line when that fails."""
    steps = [[sys.executable, "-m", "venv", str(venv)]]
    if requirements.is_file():
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        steps.append([*pip, "--disable-pip-version-check", "-r", str(requirements)])
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False, timeout=1800)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise live.LiveError(
                f"building the policy pack's virtualenv failed: {lines[-1] if lines else done.returncode}"
            )


def program_path(tree: Path) -> str:
    """``PYTHONPATH`` that makes the program import the worktree's packages. The linked venv's
    editable install maps ``infra`` to the main checkout; ``infra/__main__.py`` overrides that
    since it was fixed, but a target commit older than the fix does not, and PYTHONPATH entries
    come before the editable finder for every commit."""
    inherited = os.environ.get("PYTHONPATH")
    return os.pathsep.join([str(tree), inherited] if inherited else [str(tree)])


# --- commands -------------------------------------------------------------------------------------


def _exit(message: str) -> typer.Exit:
    print(message, file=sys.stderr, flush=True)
    return typer.Exit(1)


def history_command(
    stack: Annotated[str, typer.Argument(metavar="STACK", help="Stack (dev, staging, prod, ...).")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the entries as JSON (same as -o json).")
    ] = False,
    output: Annotated[
        Output, typer.Option("--output", "-o", metavar="FORMAT", help="table, json or yaml.")
    ] = Output.table,
) -> None:
    """List a stack's updates: version, kind, result, time, git commit, message (needs the Pulumi CLI)."""
    if output is Output.markdown:
        raise typer.BadParameter("history prints table, json or yaml", param_hint="'--output'")
    try:
        live.require_pulumi()
        updates = load_history(live.open_stack(find_root(), stack, create=False))
    except (live.LiveError, ProjectError) as err:
        raise _exit(str(err)) from None
    entries = [u.__dict__ | {"environment": dict(u.environment)} for u in updates]
    if as_json or output is Output.json:
        print(json.dumps(entries, indent=2))
    elif output is Output.yaml:
        sys.stdout.write(dump(entries, output))
    else:
        print_history(updates)


def print_history(updates: Sequence[Update]) -> None:
    """The history as a table (plain lines when piped), newest first."""
    rows = [
        (
            f"v{u.version}",
            u.kind,
            u.result,
            u.start_time,
            (u.commit or "-")[:12] + (" (dirty)" if u.dirty else ""),
            u.message,
        )
        for u in sorted(updates, key=lambda u: u.version, reverse=True)
    ]
    print_table("", ("version", "kind", "result", "time", "commit", "message"), rows)


def rollback_command(
    stack: Annotated[str, typer.Argument(metavar="STACK", help="Stack to roll back.")],
    to: Annotated[
        int | None,
        typer.Option("--to", metavar="VERSION", help="Version to return to. Default: the previous success."),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Deploy after the preview without asking.")
    ] = False,
    use_policy: live.UsePolicy = True,
) -> None:
    """Redeploy the code and config of an earlier successful update (needs the Pulumi CLI)."""
    if not yes and not sys.stdin.isatty():
        raise _exit("not a terminal: pass --yes to roll back without a confirmation")
    try:
        summary = rollback(
            find_root(), stack, to=to, confirm=None if yes else typer.confirm, use_policy=use_policy
        )
    except (RefusalError, live.LiveError, GitError, ProjectError) as err:
        raise _exit(
            f"refusing to roll back {stack}: {err}" if isinstance(err, RefusalError) else str(err)
        ) from None
    print(f"{stack}: {summary}" if summary is not None else f"{stack}: not rolled back")
