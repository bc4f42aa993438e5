"""The Debian ``nats-server`` the event-bus tests run for real (scripts/install-tools.sh installs it)."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest


def binary() -> str:
    """The nats-server executable; fails (never skips) when it is missing."""
    found = shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
    )
    if found is None:
        pytest.fail("nats-server is not installed: run scripts/install-tools.sh (Debian package nats-server)")
    return found


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
