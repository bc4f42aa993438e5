"""Installs ``tests/fake_pulumi.py`` as a FAKE ``pulumi`` on PATH and reads back what it was asked.

The fake refuses what the real CLI refuses where the live path depends on it (see its docstring);
it deploys nothing, and the real CLI never runs here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

FAKE_SOURCE = Path(__file__).with_name("fake_pulumi.py")


@dataclass
class FakePulumi:
    """The fake's call log and its state directory (one history file per stack)."""

    log: Path
    state: Path

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

    def set_history(self, entries: list[dict[str, Any]], stack: str = "dev") -> None:
        """Create ``stack`` with this history (newest first, as ``stack history --json
        --show-secrets`` prints it)."""
        (self.state / (stack.replace("/", "__") + ".json")).write_text(json.dumps(entries))

    def history(self, stack: str = "dev") -> list[dict[str, Any]]:
        """The stack's whole history as the fake keeps it (secrets included)."""
        entries: list[dict[str, Any]] = json.loads(
            (self.state / (stack.replace("/", "__") + ".json")).read_text()
        )
        return entries


def install_fake_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakePulumi:
    """Put the fake first on PATH for the rest of the test."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    exe = bin_dir / "pulumi"
    exe.write_text(f"#!{sys.executable}\n" + FAKE_SOURCE.read_text())
    exe.chmod(0o755)
    fake = FakePulumi(log=tmp_path / "pulumi-calls.jsonl", state=tmp_path / "pulumi-state")
    fake.state.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PULUMI_LOG", str(fake.log))
    monkeypatch.setenv("FAKE_PULUMI_STATE", str(fake.state))
    monkeypatch.delenv("FAKE_PULUMI_FAIL", raising=False)
    return fake


def option(argv: list[str], name: str) -> str | None:
    """The value after ``name`` in ``argv``."""
    return argv[argv.index(name) + 1] if name in argv else None


def make_policy_venv(venv: Path) -> Path:
    """A real virtual environment at ``venv`` that imports ``pulumi.policy``, made in a second and
    without a network: no pip, and a ``.pth`` file adding this interpreter's site-packages (which
    hold pulumi-policy) to its path."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = (venv / "lib").glob("python*/site-packages")
    (site / "test-site.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def add_policy_placeholders(root: Path) -> None:
    """A policies/ folder with a pack manifest and per-stack configs, unless the project has them."""
    pack = root / "policies"
    (pack / "config").mkdir(parents=True, exist_ok=True)
    if not (pack / "PulumiPolicy.yaml").exists():
        (pack / "PulumiPolicy.yaml").write_text("runtime: python\n")
    for stack in ("dev", "staging", "prod"):
        config = pack / "config" / f"{stack}.json"
        if not config.exists():
            config.write_text("{}\n")


def site_wheel(directory: Path) -> Path:
    """A wheel that installs nothing but a ``.pth`` file adding this interpreter's site-packages (with
    pulumi-policy) to the path: a requirement pip installs without a network."""
    import zipfile

    name = "vh_test_site"
    wheel = directory / f"{name}-0.0.0-py3-none-any.whl"
    info = f"{name}-0.0.0.dist-info"
    files = {
        f"{name}.pth": sysconfig.get_paths()["purelib"] + "\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel
