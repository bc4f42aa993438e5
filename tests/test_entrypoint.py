"""``infra/__main__.py`` imports the program of the checkout it lives in, not the one the
virtualenv's editable install points at (``vinylhound rollback`` runs an old commit's tree with
this checkout's venv). Run for real: a subprocess of this venv's python runs a temporary tree's
``infra/`` with ``runpy.run_path``, as the Pulumi language host does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ops.rollback import program_path

ROOT = Path(__file__).resolve().parents[1]

# What the language host's exec script does with `main: infra/` (it is a script in its own folder).
HOST = """\
import importlib.util, json, runpy, sys
spec = importlib.util.find_spec("infra")
print(json.dumps({"before": spec.origin if spec else None}))
runpy.run_path(sys.argv[1], run_name="__main__")
"""

# The other tree's program: reports which `infra` it was imported as, instead of deploying.
PROGRAM = """\
import json, infra
def main() -> None:
    print(json.dumps({"infra": infra.__file__, "marker": infra.MARKER}))
"""


#: What infra/__main__.py said before it fixed sys.path itself (every commit deployed until then).
OLD_MAIN = "from infra.program import main\n\nmain()\n"


def run_tree(
    tmp_path: Path, main: str | None = None, env: dict[str, str] | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    tree = tmp_path / "rolled-back"
    (tree / "infra").mkdir(parents=True)
    if main is None:
        shutil.copy(ROOT / "infra" / "__main__.py", tree / "infra" / "__main__.py")
    else:
        (tree / "infra" / "__main__.py").write_text(main)
    (tree / "infra" / "__init__.py").write_text('MARKER = "old commit"\n')
    (tree / "infra" / "program.py").write_text(PROGRAM)
    host = tmp_path / "host" / "pulumi-language-python-exec.py"
    host.parent.mkdir()
    host.write_text(HOST)
    done = subprocess.run(
        [sys.executable, str(host), str(tree / "infra")],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, **(env or {})},
    )
    before, after = (json.loads(line) for line in done.stdout.splitlines())
    return before, after


def test_the_venvs_editable_install_would_resolve_infra_to_this_checkout(tmp_path: Path) -> None:
    before, _ = run_tree(tmp_path)
    assert before["before"] == str(ROOT / "infra" / "__init__.py")


def test_the_entry_point_imports_the_program_of_its_own_checkout(tmp_path: Path) -> None:
    _, after = run_tree(tmp_path)
    assert after == {"infra": str(tmp_path / "rolled-back" / "infra" / "__init__.py"), "marker": "old commit"}


def test_an_older_entry_point_imports_its_own_checkout_with_rollbacks_pythonpath(tmp_path: Path) -> None:
    _, after = run_tree(tmp_path, OLD_MAIN, {"PYTHONPATH": program_path(tmp_path / "rolled-back")})
    assert after["marker"] == "old commit"
