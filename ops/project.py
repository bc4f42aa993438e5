"""The Pulumi project on disk: where it is, which stacks it has, and each stack's config."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from ops.mockrun import MASK

PROJECT_FILE = "Pulumi.yaml"


class ProjectError(Exception):
    """The project or a stack cannot be found or read; the message is one printable line."""


def find_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` (default: cwd) holding ``Pulumi.yaml``."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / PROJECT_FILE).is_file():
            return candidate
    raise ProjectError(f"no {PROJECT_FILE} in {here} or any parent; run from the repository")


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=_Loader)  # CSafeLoader or SafeLoader: safe


@dataclass(frozen=True)
class Project:
    """A Pulumi project directory and its stack files."""

    root: Path

    @cached_property
    def _settings(self) -> dict[str, Any]:
        data = _load_yaml(self.root / PROJECT_FILE)
        if not isinstance(data, dict) or "name" not in data:
            raise ProjectError(f"{PROJECT_FILE}: 'name' is missing")
        return data

    @property
    def name(self) -> str:
        """The project name from ``Pulumi.yaml``."""
        return str(self._settings["name"])

    @property
    def stack_dir(self) -> Path:
        """The directory named by ``stackConfigDir`` (default: the project root)."""
        return self.root / str(self._settings.get("stackConfigDir", "."))

    def stacks(self) -> list[str]:
        """Every stack that has a stack file, sorted."""
        return sorted(
            p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in self.stack_dir.glob("Pulumi.*.yaml")
        )

    def stack_path(self, stack: str) -> Path:
        """The stack file of ``stack``; ``ProjectError`` lists the stacks that exist."""
        path = self.stack_dir / f"Pulumi.{stack}.yaml"
        if not path.is_file():
            raise ProjectError(f"unknown stack {stack!r}; stacks: {', '.join(self.stacks()) or 'none'}")
        return path

    def stack_config(self, stack: str) -> StackConfig:
        """The stack's config as the Pulumi engine hands it to a program."""
        path = self.stack_path(stack)
        try:
            data = _load_yaml(path) or {}
        except yaml.YAMLError as err:
            raise ProjectError(f"{path.relative_to(self.root)}: not valid YAML: {err}") from None
        raw = data.get("config") or {}
        if not isinstance(raw, dict):
            raise ProjectError(f"{path.relative_to(self.root)}: config: must be a mapping")
        values: dict[str, str] = {}
        secret_keys: list[str] = []
        for key, value in raw.items():
            full = key if ":" in key else f"{self.name}:{key}"
            plain_value, had_secret = _placeholders(value)
            if had_secret:
                secret_keys.append(full)
            # The engine passes structured values as JSON and plain strings as they are.
            values[full] = plain_value if isinstance(plain_value, str) else json.dumps(plain_value)
        return StackConfig(values=values, secret_keys=secret_keys, raw=raw)


@dataclass(frozen=True)
class StackConfig:
    """Config values (full keys, engine string form) and which of them are secret."""

    values: dict[str, str]
    secret_keys: list[str]
    raw: dict[str, Any]


def _placeholders(value: Any) -> tuple[Any, bool]:
    """Replace ``secure:`` values (encrypted, unreadable offline) by a placeholder."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return MASK, True
        items = {k: _placeholders(v) for k, v in value.items()}
        return {k: v for k, (v, _) in items.items()}, any(s for _, s in items.values())
    if isinstance(value, list):
        pairs = [_placeholders(v) for v in value]
        return [v for v, _ in pairs], any(s for _, s in pairs)
    return value, False
