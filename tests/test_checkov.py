"""checkov's Kubernetes framework over the rendered manifests of every Kubernetes stack.

checkov runs from its own virtualenv (``scripts/install-checkov.sh``, run by ``make tools``); the
only accepted findings are the skips in ``tests/checkov_skips.yaml``, each with its reason.
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ops.render import write
from tests.conftest import KUBE_STACKS, ROOT, rendered

# Slow lane: runs checkov, an external tool, over rendered stacks.
pytestmark = pytest.mark.slow

CHECKOV = ROOT / "tools" / "checkov" / "venv" / "bin" / "checkov"
SKIPS: dict[str, dict[str, Any]] = yaml.safe_load((Path(__file__).parent / "checkov_skips.yaml").read_text())

Finding = tuple[str, str]  # (check id, checkov resource id)
#: JSON on stdout, nothing else: no progress, no code blocks, no call to Prisma Cloud.
_QUIET = ("--quiet", "--compact", "-o", "json", "--skip-download")


def checkov(directory: Path, *args: str) -> list[Finding]:
    """Every failed check of checkov's kubernetes framework over ``directory``."""
    assert CHECKOV.exists(), "checkov is missing: run scripts/install-checkov.sh (make tools)"
    done = subprocess.run(
        [str(CHECKOV), "-d", str(directory), "--framework", "kubernetes", *_QUIET, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # checkov exits 1 when a check fails; anything else (2: bad arguments, crash) is an error.
    assert done.returncode in (0, 1), done.stderr[-2000:]
    report = json.loads(done.stdout)
    failed = report.get("results", {}).get("failed_checks", []) if isinstance(report, dict) else []
    return sorted((f["check_id"], f["resource"]) for f in failed)


def skipped(finding: Finding, stack: str) -> bool:
    """Whether ``tests/checkov_skips.yaml`` accepts the finding on ``stack``."""
    skip = SKIPS.get(finding[0])
    if skip is None or stack not in skip.get("stacks", KUBE_STACKS):
        return False
    patterns = skip.get("resources")
    return patterns is None or any(fnmatch.fnmatchcase(finding[1], p) for p in patterns)


@pytest.fixture(scope="module")
def findings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Finding]]:
    """checkov's findings per Kubernetes stack, one run each."""
    found = {}
    for stack in KUBE_STACKS:
        out = tmp_path_factory.mktemp(stack)
        write(rendered(stack), out)
        found[stack] = checkov(out / "manifests")
    return found


@pytest.mark.parametrize("stack", KUBE_STACKS)
def test_checkov_finds_nothing_but_the_justified_skips(
    findings: dict[str, list[Finding]], stack: str
) -> None:
    assert [f for f in findings[stack] if not skipped(f, stack)] == []


def test_every_skip_has_a_reason_and_is_still_needed(findings: dict[str, list[Finding]]) -> None:
    used = {f[0] for stack, found in findings.items() for f in found if skipped(f, stack)}
    assert all(str(skip.get("reason", "")).strip() for skip in SKIPS.values())
    assert set(SKIPS) == used


def test_checkov_reports_a_low_uid_it_is_given(tmp_path: Path) -> None:
    # The suite's verdict is only worth something if checkov really reads these manifests.
    (tmp_path / "deployment.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "low-uid", "namespace": "vinylhound"},
                "spec": {
                    "selector": {"matchLabels": {"app": "x"}},
                    "template": {
                        "metadata": {"labels": {"app": "x"}},
                        "spec": {
                            "securityContext": {"runAsUser": 1000},
                            "containers": [{"name": "x", "image": "ghcr.io/vinylhound/x:1.0.0"}],
                        },
                    },
                },
            }
        )
    )
    assert checkov(tmp_path, "--check", "CKV_K8S_40") == [("CKV_K8S_40", "Deployment.vinylhound.low-uid")]
