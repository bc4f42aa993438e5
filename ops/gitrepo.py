"""The few git operations the operator commands need: state of the tree, commits, temporary worktrees.

``vinylhound diff`` renders another revision and ``vinylhound rollback`` deploys one; both check it
out into a temporary ``git worktree`` so the user's checkout is never touched, and remove it again
however the command ends (success, error or Ctrl-C).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType


class GitError(Exception):
    """A git command failed; the message is one printable line."""


def git(repo: Path, *args: str) -> str:
    """Run ``git args`` in ``repo`` and return its stdout; ``GitError`` with git's own message."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, check=False, timeout=120
        )
    except FileNotFoundError:
        raise GitError("git is not installed (no `git` on PATH)") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise GitError(f"git {' '.join(args)}: {detail[-1] if detail else f'exit {done.returncode}'}")
    return done.stdout


def toplevel(path: Path) -> Path:
    """The root of the git checkout containing ``path``."""
    return Path(git(path, "rev-parse", "--show-toplevel").strip())


def dirty_files(repo: Path) -> list[str]:
    """Changed, staged and untracked (not ignored) files: what Pulumi records as ``git.dirty``."""
    lines = git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()
    return [line[3:] for line in lines if line.strip()]


def resolve(repo: Path, ref: str) -> str | None:
    """The full commit id ``ref`` names in ``repo``, or ``None`` when the repository lacks it."""
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip() or None
    except GitError:
        return None


def has_commit(repo: Path, sha: str) -> bool:
    """Whether the commit ``sha`` exists in ``repo`` (fetched, not only named in some history)."""
    return resolve(repo, sha) is not None


def exclude_path(repo: Path, path: str) -> None:
    """Make git ignore ``path`` (relative to the top) in every worktree of ``repo``.

    For links and directories the commands add to a worktree: ``.venv/`` in .gitignore matches
    directories only, a symlink is a file to git, and Pulumi would record a deployment from that
    worktree as made from a dirty tree (``git.dirty``), which rollback then refuses to return to."""
    common = Path(git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir").strip())
    exclude = common / "info" / "exclude"
    existing = exclude.read_text() if exclude.exists() else ""
    line = f"/{path.strip('/')}\n"
    if line not in existing:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        exclude.write_text(existing + ("" if existing.endswith("\n") or not existing else "\n") + line)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    # SIGTERM (a cancelled CI job, `kill`) would end the process without running `finally`
    # blocks; turn it into KeyboardInterrupt so the worktree is removed as on Ctrl-C.
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def temporary_worktree(repo: Path, ref: str, *, link_venv: bool = False) -> Iterator[Path]:
    """Check ``ref`` out (detached) into a fresh temporary directory; remove it on exit.

    The worktree is removed whatever happens inside the block, including Ctrl-C and SIGTERM.
    With ``link_venv`` the checkout's ``.venv`` is linked in, so Pulumi's Python runtime
    (``virtualenv: .venv`` in Pulumi.yaml) finds its interpreter there.
    """
    sha = resolve(repo, ref)
    if sha is None:
        raise GitError(f"{ref!r} is not a commit in {repo}")
    parent = Path(tempfile.mkdtemp(prefix="vinylhound-wt-"))
    path = parent / "tree"
    with _sigterm_as_interrupt():
        yield from _worktree(repo, sha, parent, path, link_venv=link_venv)


def _worktree(repo: Path, sha: str, parent: Path, path: Path, *, link_venv: bool) -> Iterator[Path]:
    try:
        git(repo, "worktree", "add", "--detach", "--quiet", str(path), sha)
        if link_venv and (repo / ".venv").exists():
            exclude_path(repo, ".venv")
            (path / ".venv").symlink_to((repo / ".venv").resolve(), target_is_directory=True)
        yield path
    finally:
        # Never added, or already gone: the prune below forgets it either way.
        with suppress(GitError):
            git(repo, "worktree", "remove", "--force", str(path))
        shutil.rmtree(parent, ignore_errors=True)
        with suppress(GitError):
            git(repo, "worktree", "prune")
