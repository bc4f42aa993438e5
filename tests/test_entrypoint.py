"""``infra/__main__.py`` imports the program of the checkout it lives in, not the one the
virtualenv's editable install points at (``vinylhound rollback`` runs an old commit's tree with
this checkout's venv). Run for real: a subprocess of this venv's python runs a temporary tree's
``infra/`` with ``runpy.run_path``, as the Pulumi language host does."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

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


def run_tree(tmp_path: Path) -> tuple[dict[str, str], dict[str, str]]:
    tree = tmp_path / "rolled-back"
    (tree / "infra").mkdir(parents=True)
    shutil.copy(ROOT / "infra" / "__main__.py", tree / "infra" / "__main__.py")
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
    )
    before, after = (json.loads(line) for line in done.stdout.splitlines())
    return before, after


def test_the_venvs_editable_install_would_resolve_infra_to_this_checkout(tmp_path: Path) -> None:
    before, _ = run_tree(tmp_path)
    assert before["before"] == str(ROOT / "infra" / "__init__.py")


def test_the_entry_point_imports_the_program_of_its_own_checkout(tmp_path: Path) -> None:
    _, after = run_tree(tmp_path)
    assert after == {"infra": str(tmp_path / "rolled-back" / "infra" / "__init__.py"), "marker": "old commit"}
