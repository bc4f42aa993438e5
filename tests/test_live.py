"""``vinylhound up``/``preview``: the Automation API calls, run against a FAKE ``pulumi``.

The fake (tests/fake_pulumi.py) refuses what the real CLI refuses where this path depends on it:
it finds the project and stack files as the CLI does, starts the policy pack with the pack's own
virtualenv, keeps stacks and their history, and fails an ``up --plan`` whose program or stack state
changed. It deploys nothing: whether a real deployment works is not shown here (no CLI, no cluster).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ops import live
from tests.fakes import FakePulumi, add_policy_placeholders, install_fake_pulumi, make_policy_venv, option
from tests.gitrepos import ROOT, commit_all, edit, project_copy


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = project_copy(tmp_path / "repo")
    add_policy_placeholders(root)
    commit_all(root, "policy pack placeholders")
    make_policy_venv(root / "policies" / "venv")
    return root


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakePulumi:
    return install_fake_pulumi(tmp_path, monkeypatch)


# The slow lane (`make test-slow`, .ci/run) runs these: each starts the policy pack's interpreter
# through the fake CLI, or a whole `vinylhound` command in a subprocess that imports the program
# (2-6 s of CPU each). The flows without a pack and the refusals stay in the fast lane.
END_TO_END = pytest.mark.slow


@END_TO_END
def test_preview_passes_the_policy_pack_and_the_stacks_policy_config_to_a_fake_pulumi(
    repo: Path, fake: FakePulumi
) -> None:
    summary = live.preview(live.open_stack(repo, "dev", create=True), live.policy_for(repo, "dev"))
    (call,) = fake.command("preview")
    assert option(call["argv"], "--policy-pack") == str(repo / "policies")
    assert option(call["argv"], "--policy-pack-config") == str(repo / "policies" / "config" / "dev.json")
    assert option(call["argv"], "--stack") == "dev" and call["cwd"] == str(repo)
    assert summary == "created 1, updated 2, replaced 1, deleted 0, unchanged 30"


@END_TO_END
def test_up_passes_the_message_and_the_stacks_policy_config_to_a_fake_pulumi(
    repo: Path, fake: FakePulumi
) -> None:
    fake.set_history([])
    summary = live.up(
        live.open_stack(repo, "staging", create=True), live.policy_for(repo, "staging"), message="m1"
    )
    (call,) = fake.command("up")
    assert option(call["argv"], "--message") == "m1"
    assert option(call["argv"], "--policy-pack-config") == str(repo / "policies" / "config" / "staging.json")
    assert summary.startswith("created 1, updated 2, replaced 1, deleted 0")


def test_the_engine_output_is_streamed_line_by_line_from_a_fake_pulumi(repo: Path, fake: FakePulumi) -> None:
    lines: list[str] = []
    live.preview(live.open_stack(repo, "dev", create=True), live.Policy(), out=lines.append)
    assert lines == ["fake preview of stack dev"]


def test_a_failing_pulumi_command_becomes_one_line_with_its_last_error(
    repo: Path, fake: FakePulumi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PULUMI_FAIL", "up")
    with pytest.raises(
        live.LiveError, match=r"^pulumi up failed: error: the fake pulumi was told to fail up$"
    ):
        live.up(live.open_stack(repo, "dev", create=True), live.Policy(), out=lambda _: None)


@END_TO_END
def test_without_the_pulumi_cli_up_says_so_in_one_line_without_a_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", "up", "dev", "--yes"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": str(tmp_path)},
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [live.PULUMI_MISSING]
    assert "Traceback" not in done.stdout + done.stderr


def test_prod_is_refused_from_a_dirty_tree_and_allowed_with_allow_dirty(repo: Path) -> None:
    (repo / "stacks" / "Pulumi.prod.yaml").write_text("config: {}\n")
    refusal = live.dirty_refusal(repo, "prod", allow_dirty=False)
    assert refusal is not None and "stacks/Pulumi.prod.yaml" in refusal and "--allow-dirty" in refusal
    assert live.dirty_refusal(repo, "prod", allow_dirty=True) is None


def test_other_stacks_and_a_clean_prod_are_not_refused(repo: Path) -> None:
    assert live.dirty_refusal(repo, "prod", allow_dirty=False) is None
    (repo / "new-file.txt").write_text("x")
    assert live.dirty_refusal(repo, "dev", allow_dirty=False) is None
    assert live.dirty_refusal(repo, "org/vinylhound/prod", allow_dirty=False) is not None


def test_a_missing_policy_config_is_one_clear_error(repo: Path) -> None:
    (repo / "policies" / "config" / "dev.json").unlink()
    with pytest.raises(live.LiveError, match=r"no policy config for dev at .*dev\.json; pass --no-policy"):
        live.policy_for(repo, "dev")
    assert live.policy_for(repo, "dev", enabled=False) == live.Policy()


@END_TO_END
def test_up_with_yes_still_previews_before_it_deploys(repo: Path, fake: FakePulumi) -> None:
    fake.set_history([])
    lines: list[str] = []
    summary = live.deploy(
        repo, "dev", live.policy_for(repo, "dev"), message=None, confirm=None, create=True, out=lines.append
    )
    assert [c["argv"][0] for c in fake.calls() if c["argv"][0] in ("preview", "up")] == ["preview", "up"]
    assert "preview of dev: created 1, updated 2, replaced 1, deleted 0, unchanged 30" in lines
    assert summary is not None


def test_declining_after_the_preview_deploys_nothing(repo: Path, fake: FakePulumi) -> None:
    questions: list[str] = []

    def decline(question: str) -> bool:
        questions.append(question)
        return False

    summary = live.deploy(
        repo,
        "dev",
        live.Policy(),
        message=None,
        confirm=decline,
        create=True,
        out=lambda _: None,
    )
    assert summary is None and questions == ["Deploy these changes to dev?"]
    assert fake.command("preview") and not fake.command("up")


@pytest.mark.parametrize("stack", ["staging", "prod", "org/vinylhound/prod"])
def test_no_policy_is_refused_for_staging_and_prod(repo: Path, stack: str) -> None:
    with pytest.raises(live.LiveError, match=r"^--no-policy is refused for .*: staging and prod always run"):
        live.policy_for(repo, stack, enabled=False)


@pytest.mark.parametrize("stack", ["local", "dev", "dev-alice"])
def test_no_policy_is_allowed_for_the_other_stacks(repo: Path, stack: str) -> None:
    assert live.policy_for(repo, stack, enabled=False) == live.Policy()


@END_TO_END
def test_up_prod_with_no_policy_says_why_in_one_line_and_runs_nothing(repo: Path, fake: FakePulumi) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", "up", "prod", "--no-policy", "--yes"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "--no-policy is refused for prod: staging and prod always run the policy pack"
    ]
    assert fake.command("preview") == [] and fake.command("up") == []


# --- updates bound to the preview that was shown ----------------------------------------------------


def _cli(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", *args], cwd=repo, capture_output=True, text=True, check=False
    )


@END_TO_END
def test_up_applies_the_plan_its_own_preview_saved(repo: Path, fake: FakePulumi) -> None:
    live.deploy(repo, "dev", live.policy_for(repo, "dev"), message=None, confirm=None, create=True, out=print)
    (preview,) = fake.command("preview")
    (up,) = fake.command("up")
    saved = option(preview["argv"], "--save-plan")
    assert saved is not None and option(up["argv"], "--plan") == saved
    assert not Path(saved).exists()  # the plan (encrypted secrets and all) does not outlive the command


def test_a_program_change_after_the_preview_is_refused_with_the_file_named(
    repo: Path, fake: FakePulumi
) -> None:
    def edit_then_confirm(question: str) -> bool:
        edit(repo / "stacks" / "Pulumi.dev.yaml", 'tag: "1.6.1"', 'tag: "1.6.2"')
        return True

    with pytest.raises(
        live.LiveError,
        match=r"^refusing to deploy dev: the program changed since the preview \(stacks/Pulumi.dev.yaml\)",
    ):
        live.deploy(repo, "dev", live.Policy(), message=None, confirm=edit_then_confirm, create=True)
    assert fake.command("up") == []


def test_a_stack_updated_by_someone_else_after_the_preview_is_refused(repo: Path, fake: FakePulumi) -> None:
    fake.set_history([])

    def someone_deploys_then_confirm(question: str) -> bool:
        update = {"version": 1, "kind": "update", "startTime": "2026-11-25T12:00:00.000Z", "message": ""}
        fake.set_history([update | {"environment": {}, "config": {}, "result": "succeeded"}])
        return True

    with pytest.raises(
        live.LiveError, match=r"^refusing to deploy dev: dev was updated since the preview \(v0 -> v1\)"
    ):
        live.deploy(
            repo, "dev", live.Policy(), message=None, confirm=someone_deploys_then_confirm, create=True
        )
    assert fake.command("up") == []


def test_the_strict_fake_fails_an_up_whose_saved_plan_no_longer_matches_the_program(
    repo: Path, fake: FakePulumi, tmp_path: Path
) -> None:
    stack = live.open_stack(repo, "dev", create=True)
    live.preview(stack, live.Policy(), out=lambda _: None, plan=tmp_path / "plan.json")
    edit(repo / "stacks" / "Pulumi.dev.yaml", 'tag: "1.6.1"', 'tag: "1.6.2"')
    with pytest.raises(live.LiveError, match=r"^pulumi up failed: error: resource violates plan"):
        live.up(stack, live.Policy(), out=lambda _: None, plan=tmp_path / "plan.json")


@END_TO_END
def test_preview_save_plan_then_up_plan_deploys_that_preview_without_another(
    repo: Path, fake: FakePulumi, tmp_path: Path
) -> None:
    saved = tmp_path / "saved-plan"
    assert _cli(repo, "preview", "staging", "--save-plan", str(saved)).returncode == 0
    done = _cli(repo, "up", "staging", "--plan", str(saved), "--yes")
    assert done.returncode == 0, done.stderr
    (up,) = fake.command("up")
    assert len(fake.command("preview")) == 1 and option(up["argv"], "--plan") == str(saved / "plan.json")


@END_TO_END
def test_up_with_a_plan_saved_before_a_new_commit_is_refused_in_one_line(
    repo: Path, fake: FakePulumi, tmp_path: Path
) -> None:
    saved = tmp_path / "saved-plan"
    assert _cli(repo, "preview", "staging", "--save-plan", str(saved)).returncode == 0
    edit(
        repo / "stacks" / "Pulumi.staging.yaml",
        'user-service:\n        image: {tag: "1.6.1"}',
        'user-service:\n        image: {tag: "1.6.2"}',
    )
    commit_all(repo, "a change after the preview")
    done = _cli(repo, "up", "staging", "--plan", str(saved), "--yes")
    assert (done.returncode, done.stderr.strip().splitlines()) == (
        1,
        [
            "refusing to deploy staging: the program changed since the preview (stacks/Pulumi.staging.yaml); "
            "preview again"
        ],
    )
    assert fake.command("up") == []


@END_TO_END
def test_up_with_a_plan_for_another_stack_is_refused(repo: Path, fake: FakePulumi, tmp_path: Path) -> None:
    saved = tmp_path / "saved-plan"
    assert _cli(repo, "preview", "dev", "--save-plan", str(saved)).returncode == 0
    done = _cli(repo, "up", "staging", "--plan", str(saved), "--yes")
    assert done.returncode == 1 and done.stderr.strip() == (
        f"refusing to deploy staging: the plan in {saved} is for stack dev"
    )


# --- the policy pack's project file ---------------------------------------------------------------

#: pulumi/pulumi sdk/go/common/workspace/project.go PolicyPackProject: the keys the CLI reads.
POLICY_PACK_KEYS = {"runtime", "version", "main", "description", "author", "website", "license"}
#: sdk/python/cmd/pulumi-language-python/main.go parseOptions: the Python runtime's options.
PYTHON_RUNTIME_OPTIONS = {"virtualenv", "toolchain", "typechecker"}


def test_the_policy_pack_file_has_only_keys_the_cli_reads_and_names_its_toolchain() -> None:
    import yaml

    pack = yaml.safe_load((ROOT / "policies" / "PulumiPolicy.yaml").read_text())
    assert set(pack) <= POLICY_PACK_KEYS and pack["runtime"]["name"] == "python"
    assert set(pack["runtime"]["options"]) <= PYTHON_RUNTIME_OPTIONS
    assert pack["runtime"]["options"]["toolchain"] == "pip"


def test_the_policy_pack_runs_from_the_virtualenv_its_file_names(repo: Path) -> None:
    assert live.policy_venv(repo / "policies") == repo / "policies" / "venv"


def test_a_policy_pack_without_its_virtualenv_is_refused_with_how_to_create_it(repo: Path) -> None:
    shutil.rmtree(repo / "policies" / "venv")
    with pytest.raises(
        live.LiveError,
        match=r"^the policy pack cannot start: .*policies/venv/bin/python does not exist; the Pulumi CLI "
        r"does not install a local pack's dependencies: python3 -m venv .*pip install -r",
    ):
        live.policy_for(repo, "staging")


def test_the_strict_fake_refuses_to_start_a_pack_whose_venv_is_missing(repo: Path, fake: FakePulumi) -> None:
    shutil.rmtree(repo / "policies" / "venv")
    policy = live.Policy(packs=(str(repo / "policies"),), configs=(str(repo / "policies/config/dev.json"),))
    with pytest.raises(live.LiveError, match=r"failed to start: fork/exec .*policies/venv/bin/python"):
        live.preview(live.open_stack(repo, "dev", create=True), policy, out=lambda _: None)


@END_TO_END
def test_a_stack_new_to_the_backend_is_created_by_its_first_preview(repo: Path, fake: FakePulumi) -> None:
    done = _cli(repo, "preview", "prod")
    assert done.returncode == 0, done.stderr
    assert [c["argv"][:3] for c in fake.calls() if c["argv"][:1] == ["stack"]][:2] == [
        ["stack", "select", "--stack"],
        ["stack", "init", "prod"],
    ]
    assert fake.history("prod") == []
