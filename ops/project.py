"""The Pulumi project on disk: where it is, which stacks it has, and each stack's config."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from infra.config import shorten
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


def _position(data: bytes, offset: int) -> str:
    before = data[:offset].decode("utf-8", errors="replace")
    return f"{before.count(chr(10)) + 1}:{len(before) - before.rfind(chr(10))}"


def _duplicates(node: yaml.Node, path: str, found: list[str], where: str) -> None:
    """Every key given twice in a mapping, at any depth: YAML loaders keep the last one silently,
    the Pulumi CLI's refuses the file; both are worse than naming it."""
    if isinstance(node, yaml.MappingNode):
        first: dict[Any, int] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark)
            # Settings read as Pulumi keys (vinylhound:platform.services...), not config.vinylhound...
            sub = f"{path}.{name}" if path and path != "config" else str(name)
            line = key.start_mark.line + 1
            if name in first:
                found.append(
                    f"{where}:{line}:{key.start_mark.column + 1}: {sub}: given twice (first on line "
                    f"{first[name]}); YAML would silently keep the last one, remove one"
                )
            else:
                first[name] = line
            _duplicates(value, sub, found, where)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _duplicates(item, f"{path}[{i}]", found, where)


def load_stack_file(path: Path, where: str) -> dict[str, Any]:
    """A stack file's document, checked the way the engine would refuse it, each problem as
    ``where:line:column: message`` (``where`` is how messages name the file): not UTF-8, not
    YAML, several documents, a key given twice, or a top level that is not a mapping."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ProjectError(
            f"{where}:{_position(data, err.start)}: not UTF-8 (byte 0x{data[err.start]:02x}); "
            "save the file as UTF-8"
        ) from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        problems: list[str] = []
        if node is not None:
            _duplicates(node, "", problems, where)
        if problems:
            raise ProjectError("\n".join(shorten(p) for p in problems))
        document = loader.construct_document(node) if node is not None else {}
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        at = f"{mark.line + 1}:{mark.column + 1}" if mark else "1:1"
        context = f" ({err.context})" if err.context and err.problem else ""
        raise ProjectError(f"{where}:{at}: not valid YAML: {err.problem or err.context}{context}") from None
    except yaml.YAMLError as err:
        raise ProjectError(f"{where}: not valid YAML: {' '.join(str(err).split())}") from None
    finally:
        loader.dispose()
    if document is None:
        return {}
    if not isinstance(document, dict):
        what = "a list" if isinstance(document, list) else f"the {type(document).__name__} {document!r}"
        raise ProjectError(shorten(f"{where}: (document): must be a mapping with a 'config' key, not {what}"))
    return document


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
        where = str(path.relative_to(self.root))
        raw = load_stack_file(path, where).get("config") or {}
        if not isinstance(raw, dict):
            raise ProjectError(f"{where}: config: must be a mapping of settings")
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
