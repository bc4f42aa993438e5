"""Render stacks of ANOTHER source tree offline and write their resource records as JSON.

``vinylhound diff`` runs this file as a script in a subprocess, once per tree, so each side is
rendered by its own code: the program, the components and the offline engine of that revision,
not the running command's. Run as::

    python ops/render_record.py --root TREE --out FILE STACK [STACK ...]

Only the standard library is imported before ``TREE`` is put first on ``sys.path``; everything
after that comes from ``TREE``. It needs ``ops.render.run_stack`` and ``ops.project.Project``,
which every revision since the offline render has. The output is one JSON object::

    {"stacks": {"dev": {"records": [...], "error": null}, ...}}

where ``records`` is what ``resources.json`` holds and ``error`` is the one-line reason a stack
could not be rendered (invalid config, the program raised).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

#: Exit status when the tree has no offline render to call (it predates ``vinylhound render``).
NO_ENGINE = 3


def _finder_module(finder: object) -> str:
    # Finders are classes or instances; setuptools' editable finder is a class.
    return str((finder if isinstance(finder, type) else type(finder)).__module__)


def _use_tree(root: Path) -> None:
    # Run as a script, sys.path[0] is this file's folder (the running code's ops/): replace it by
    # the tree, so `ops`, `infra` and `components` resolve to the tree's own packages.
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != Path(here)]
    sys.path.insert(0, str(root))
    # An editable install of the running code maps `ops.*`/`infra.*` to ITS tree through a finder
    # consulted after sys.path: a module the other tree lacks would silently come from ours.
    sys.meta_path[:] = [f for f in sys.meta_path if not _finder_module(f).startswith("__editable__")]
    sys.path_importer_cache.clear()


def render_records(root: Path, stacks: list[str]) -> dict[str, dict[str, Any]]:
    """Render each stack of the tree at ``root``; a failing stack gets an ``error`` instead."""
    from ops.project import Project  # the tree's own
    from ops.render import run_stack

    project = Project(root)
    result: dict[str, dict[str, Any]] = {}
    for stack in stacks:
        try:
            run = run_stack(project, stack)
        except Exception as err:  # any failure of that tree's program is reported, not raised
            # One line for the diff's report: the problems joined by "; ", whitespace collapsed.
            lines = [" ".join(line.split()) for line in str(err).splitlines()]
            message = "; ".join(line for line in lines if line) or type(err).__name__
            result[stack] = {"records": [], "error": message}
        else:
            result[stack] = {"records": [r.record() for r in run.registrations], "error": None}
    return result


def main(argv: list[str] | None = None) -> int:
    """Script entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("stacks", nargs="+")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    _use_tree(root)
    try:
        stacks = render_records(root, args.stacks)
    except ImportError as err:
        print(f"this revision has no offline render to call ({err})", file=sys.stderr)
        return NO_ENGINE
    args.out.write_text(json.dumps({"stacks": stacks}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
