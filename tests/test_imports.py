"""Import directions (docs/architecture.md): read from the source, not from what happens to be
loaded, so a lazy import inside a function or under ``TYPE_CHECKING`` counts too."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

from components.kubernetes import service_database
from infra.config import databases as database_config
from tests.conftest import ROOT

PACKAGES = ("components", "infra", "ops")
KUBERNETES = ("components.kubernetes", "infra.targets.kubernetes", "pulumi_kubernetes")
DOCKER = ("components.docker", "infra.targets.docker")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@functools.cache
def imports(module: str) -> frozenset[str]:
    """The modules ``module`` imports directly (``from pkg import sub`` counts ``pkg.sub``)."""
    path = _modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in _modules())
    return frozenset(found)


def loaded_by(module: str) -> set[str]:
    """Everything importing ``module`` loads: its imports, theirs, and every parent package
    (modules outside the project are recorded, not followed)."""
    seen: set[str] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in _modules():
            pending += [*imports(name), *(name.rsplit(".", i)[0] for i in range(1, name.count(".") + 1))]
    return seen


def _offenders(owners: tuple[str, ...], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    return {
        m: sorted(i for i in imports(m) if _within(i, forbidden))
        for m in _modules()
        if _within(m, owners) and any(_within(i, forbidden) for i in imports(m))
    }


def test_the_scanner_sees_imports_in_every_form() -> None:
    # from-import of a module, of a name, and a plain import, in modules known to have them
    assert "components.kubernetes.istio" in imports("infra.targets.kubernetes.mesh")
    assert "infra.config" in imports("infra.targets.docker.plan")
    assert "pulumi_kubernetes" in imports("components.kubernetes.microservice")


def test_components_never_import_the_program_or_the_tooling() -> None:
    assert _offenders(("components",), ("infra", "ops")) == {}


def test_the_program_never_imports_the_tooling() -> None:
    assert _offenders(("infra",), ("ops",)) == {}


def test_config_never_imports_components() -> None:
    assert _offenders(("infra.config",), ("components",)) == {}


@pytest.mark.parametrize("module", sorted(m for m in _modules() if _within(m, DOCKER)))
def test_the_docker_side_loads_no_kubernetes_code(module: str) -> None:
    assert sorted(m for m in loaded_by(module) if _within(m, KUBERNETES)) == []


def test_config_and_the_database_component_agree_on_the_platforms_parameters() -> None:
    # Config refuses these keys; the component sets them. Config may not import the component.
    assert database_config.PLATFORM_PARAMETERS == service_database.PLATFORM_PARAMETERS
