"""The Vinylhound policy rules, importable without starting the pack's gRPC server.

Every submodule that does not start with ``_`` is a rule module and exports ``POLICIES``, a list of
``pulumi_policy`` policies. They are discovered here, so adding a rule is adding a module.
``policies/__main__.py`` builds the ``PolicyPack`` from ``POLICIES``; tests and ``vinylhound check``
run that pack as its own process, the way the Pulumi CLI does.
"""

from __future__ import annotations

import importlib
import pkgutil

from pulumi_policy import Policy

PACK_NAME = "vinylhound"


def _discover() -> list[Policy]:
    found: list[Policy] = []
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.name.startswith("_"):
            continue
        loaded = importlib.import_module(f"{__name__}.{module.name}")
        found.extend(getattr(loaded, "POLICIES", []))
    names = [p.name for p in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RuntimeError(f"policy names must be unique; duplicated: {', '.join(duplicates)}")
    return sorted(found, key=lambda p: p.name)


#: Every policy of the pack, sorted by name.
POLICIES: list[Policy] = _discover()
