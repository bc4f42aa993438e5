"""Entry point the Pulumi CLI runs (``main: infra/`` in Pulumi.yaml).

The language host runs this directory with ``runpy.run_path``, so only ``infra/`` itself is on
``sys.path``; ``import infra`` would then fall through to the virtualenv's editable install, which
maps it to whichever checkout the venv was made from. ``vinylhound rollback`` runs an older commit
from a temporary worktree with the main checkout's venv, so the program must import ITS checkout.
"""

import sys
from pathlib import Path


def use_checkout(root: Path) -> None:
    """Make ``infra``, ``components`` and ``ops`` resolve to the packages under ``root``."""
    sys.path.insert(0, str(root))
    # setuptools' editable install: a meta-path finder (``__editable__..._finder``) that maps the
    # project's packages to the venv's checkout, or a ``.pth`` path entry (shadowed by the insert).
    sys.meta_path[:] = [
        f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")
    ]
    sys.path_importer_cache.clear()


if __name__ == "__main__":
    use_checkout(Path(__file__).resolve().parents[1])
    from infra.program import main

    main()
