"""``vinylhound rollback``: target selection and refusals (pure, on ``pulumi stack history --json``
shaped data), the temporary worktree (on a real git repository), and the whole flow against a FAKE
``pulumi`` that only records the arguments it is given."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ops import live
from ops.gitrepo import dirty_files, temporary_worktree
from ops.rollback import RefusalError, Update, rollback, select_target
from tests.fakes import (
    FakePulumi,
    add_policy_placeholders,
    install_fake_pulumi,
    make_policy_venv,
    option,
    site_wheel,
)
from tests.gitrepos import ROOT, commit_all, edit, git, project_copy, worktrees

SHA = {name: (name * 40)[:40] for name in "abcdef"}


def entry(
    version: int,
    result: str = "succeeded",
    *,
    kind: str = "update",
    sha: str | None = None,
    dirty: bool = False,
) -> dict[str, Any]:
    """One element of `pulumi stack history --json`, as the CLI writes it."""
    environment = {"exec.kind": "auto.local", "pulumi.version": "v3.200.0"}
    if sha is not None:
        environment |= {"git.head": sha, "git.headName": "refs/heads/main", "git.dirty": str(dirty).lower()}
    return {
        "version": version,
        "kind": kind,
        "startTime": f"2026-11-{version:02d}T10:00:00.000Z",
        "message": f"update {version}",
        "environment": environment,
        "config": {"vinylhound:platform": {"value": "{}", "secret": False, "object": True}},
        "result": result,
        "endTime": f"2026-11-{version:02d}T10:05:00.000Z",
        "resourceChanges": {"same": 40, "update": 1},
    }


def history(*entries: dict[str, Any]) -> list[Update]:
    """Parsed the way the command parses the CLI's JSON (newest first, as the CLI lists it)."""
    text = json.dumps(sorted(entries, key=lambda e: -e["version"]))
    return [Update.from_json(e) for e in json.loads(text)]


def known(*shas: str) -> Any:
    return lambda sha: sha in shas


ALL = known(*SHA.values())


# --- selection ------------------------------------------------------------------------------------


def test_the_default_target_is_the_last_successful_update_before_the_current_one() -> None:
    h = history(
        entry(1, sha=SHA["a"]),
        entry(2, sha=SHA["b"]),
        entry(3, "failed", sha=SHA["c"]),
        entry(4, sha=SHA["d"]),
    )
    target, sha = select_target(h, None, ALL)
    assert (target.version, sha) == (2, SHA["b"])


def test_after_a_failed_update_the_default_target_is_the_last_success_before_it() -> None:
    target, _ = select_target(history(entry(1, sha=SHA["a"]), entry(2, "failed", sha=SHA["b"])), None, ALL)
    assert target.version == 1


def test_previews_and_refreshes_are_not_deployments_to_return_to() -> None:
    h = history(
        entry(1, sha=SHA["a"]),
        entry(2, kind="refresh"),
        entry(3, kind="preview", sha=SHA["c"]),
        entry(4, sha=SHA["d"]),
    )
    target, _ = select_target(h, None, ALL)
    assert target.version == 1


def test_an_explicit_version_is_the_target() -> None:
    h = history(entry(1, sha=SHA["a"]), entry(2, sha=SHA["b"]), entry(3, sha=SHA["c"]))
    assert select_target(h, 1, ALL)[1] == SHA["a"]


def test_a_target_that_did_not_succeed_is_refused() -> None:
    h = history(entry(1, sha=SHA["a"]), entry(2, "failed", sha=SHA["b"]), entry(3, sha=SHA["c"]))
    with pytest.raises(RefusalError, match=r"^v2 did not succeed \(result: failed\)"):
        select_target(h, 2, ALL)


def test_a_target_deployed_from_a_dirty_tree_is_refused() -> None:
    h = history(entry(1, sha=SHA["a"], dirty=True), entry(2, sha=SHA["b"]))
    with pytest.raises(RefusalError, match=r"^v1 was deployed from a dirty git tree \(git.dirty=true\)"):
        select_target(h, None, ALL)


def test_a_target_whose_commit_is_not_in_the_repository_is_refused() -> None:
    h = history(entry(1, sha=SHA["a"]), entry(2, sha=SHA["b"]))
    with pytest.raises(
        RefusalError, match=rf"^v1 was deployed from commit {SHA['a'][:12]}, which is not in this"
    ):
        select_target(h, None, known(SHA["b"]))


def test_a_target_that_recorded_no_commit_is_refused() -> None:
    with pytest.raises(RefusalError, match=r"^v1 recorded no git commit"):
        select_target(history(entry(1), entry(2, sha=SHA["b"])), None, ALL)


def test_a_version_that_was_not_an_update_is_refused() -> None:
    h = history(entry(1, sha=SHA["a"]), entry(2, kind="refresh", sha=SHA["b"]), entry(3, sha=SHA["c"]))
    with pytest.raises(RefusalError, match=r"^v2 was a refresh, not an update"):
        select_target(h, 2, ALL)


def test_an_unknown_version_is_refused_with_the_versions_that_exist() -> None:
    with pytest.raises(RefusalError, match=r"^no v9 in the stack's history \(latest updates: v2, v1\)"):
        select_target(history(entry(1, sha=SHA["a"]), entry(2, sha=SHA["b"])), 9, ALL)


def test_the_current_deployment_is_not_a_rollback_target() -> None:
    with pytest.raises(RefusalError, match=r"^v2 is the current deployment"):
        select_target(history(entry(1, sha=SHA["a"]), entry(2, sha=SHA["b"])), 2, ALL)


def test_a_stack_with_one_update_has_nothing_to_roll_back_to() -> None:
    with pytest.raises(RefusalError, match=r"^no successful update before the current one \(v1\)"):
        select_target(history(entry(1, sha=SHA["a"])), None, ALL)


def test_history_entries_keep_the_recorded_commit_and_dirty_flag() -> None:
    (update,) = history(entry(7, sha=SHA["e"], dirty=True))
    assert (update.version, update.kind, update.result, update.commit, update.dirty) == (
        7,
        "update",
        "succeeded",
        SHA["e"],
        True,
    )
    assert update.start_time == "2026-11-07T10:00:00.000Z"


# --- the temporary worktree (real git) ----------------------------------------------------------------


@pytest.fixture
def two_commits(tmp_path: Path) -> tuple[Path, str, str]:
    """A project copy with policy placeholders (commit 1) and a changed replica count (commit 2)."""
    repo = project_copy(tmp_path / "repo")
    add_policy_placeholders(repo)
    first = commit_all(repo, "deployed as v1")
    edit(
        repo / "stacks" / "Pulumi.dev.yaml",
        'image: {tag: "1.6.1"}\n',
        'image: {tag: "1.6.1"}\n        replicas: 2\n',
    )
    second = commit_all(repo, "deployed as v2")
    make_policy_venv(repo / "policies" / "venv")
    return repo, first, second


def test_the_worktree_holds_the_target_commit_and_is_removed_afterwards(
    two_commits: tuple[Path, str, str],
) -> None:
    repo, first, _ = two_commits
    with temporary_worktree(repo, first) as tree:
        assert git(tree, "rev-parse", "HEAD").strip() == first
        assert "replicas: 2" not in (tree / "stacks" / "Pulumi.dev.yaml").read_text()
    assert not tree.exists() and len(worktrees(repo)) == 1


def test_the_worktree_is_removed_when_the_command_fails_inside_it(two_commits: tuple[Path, str, str]) -> None:
    repo, first, _ = two_commits
    with pytest.raises(RuntimeError), temporary_worktree(repo, first) as tree:
        raise RuntimeError("preview failed")
    assert not tree.exists() and len(worktrees(repo)) == 1


def test_the_worktree_is_removed_on_ctrl_c(two_commits: tuple[Path, str, str]) -> None:
    repo, first, _ = two_commits
    with pytest.raises(KeyboardInterrupt), temporary_worktree(repo, first) as tree:
        raise KeyboardInterrupt
    assert not tree.exists() and len(worktrees(repo)) == 1


def test_the_worktree_is_removed_when_the_process_is_terminated(two_commits: tuple[Path, str, str]) -> None:
    repo, first, _ = two_commits
    script = (
        "import sys, time\nfrom pathlib import Path\nfrom ops.gitrepo import temporary_worktree\n"
        "with temporary_worktree(Path(sys.argv[1]), sys.argv[2]) as tree:\n"
        "    print(tree, flush=True)\n    time.sleep(60)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(repo), first], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    try:
        tree = Path(child.stdout.readline().strip())
        assert tree.is_dir()
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=30)
    finally:
        child.kill()  # only if an assertion above left it running
        child.wait()
        child.stdout.close()
    assert not tree.exists() and len(worktrees(repo)) == 1


def test_the_linked_virtualenv_does_not_make_the_worktree_dirty(two_commits: tuple[Path, str, str]) -> None:
    repo, first, _ = two_commits
    (repo / ".venv" / "bin").mkdir(parents=True)
    with temporary_worktree(repo, first, link_venv=True) as tree:
        assert (tree / ".venv" / "bin").is_dir()
        assert dirty_files(tree) == []


# --- the whole flow against a FAKE pulumi -----------------------------------------------------------


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakePulumi:
    return install_fake_pulumi(tmp_path, monkeypatch)


# The slow lane (`make test-slow`, .ci/run) runs these: each is a whole rollback (a worktree, then
# preview and up through the fake CLI, which starts the policy pack's interpreter; 2-3 s of CPU).
# The first flow below and the refusals stay in the fast lane.
WHOLE_ROLLBACK = pytest.mark.slow


def test_rollback_previews_and_deploys_the_target_commit_from_a_worktree_with_a_fake_pulumi(
    two_commits: tuple[Path, str, str], fake: FakePulumi
) -> None:
    repo, first, second = two_commits
    fake.set_history([entry(2, sha=second), entry(1, sha=first)])
    summary = rollback(repo, "dev", to=None, confirm=lambda _: True, out=lambda _: None)
    (preview,) = fake.command("preview")
    (up,) = fake.command("up")
    assert preview["head"] == up["head"] == first and up["cwd"] != str(repo)
    assert up["stackFile"] == f"{up['cwd']}/stacks/Pulumi.dev.yaml"  # where the CLI looks, in the worktree
    assert option(up["argv"], "--message") == f"rollback to v1 ({first[:12]})"
    assert option(
        up["argv"],
        "--policy-pack-config",
    ).endswith("policies/config/dev.json")  # type: ignore[union-attr]
    assert summary is not None and len(worktrees(repo)) == 1


@WHOLE_ROLLBACK
def test_a_declined_rollback_previews_but_does_not_deploy_with_a_fake_pulumi(
    two_commits: tuple[Path, str, str], fake: FakePulumi
) -> None:
    repo, first, second = two_commits
    fake.set_history([entry(2, sha=second), entry(1, sha=first)])
    questions: list[str] = []

    def decline(question: str) -> bool:
        questions.append(question)
        return False

    result = rollback(repo, "dev", to=1, confirm=decline, out=lambda _: None)
    assert result is None and questions == ["Deploy these changes to dev?"]
    assert len(fake.command("preview")) == 1 and fake.command("up") == []
    assert len(worktrees(repo)) == 1


def test_a_refused_rollback_checks_nothing_out_and_runs_no_preview_with_a_fake_pulumi(
    two_commits: tuple[Path, str, str], fake: FakePulumi
) -> None:
    repo, first, second = two_commits
    fake.set_history([entry(2, sha=second), entry(1, sha=first, dirty=True)])
    with pytest.raises(RefusalError, match="dirty git tree"):
        rollback(repo, "dev", to=None, confirm=lambda _: True, out=lambda _: None)
    assert fake.command("preview") == [] and len(worktrees(repo)) == 1


@WHOLE_ROLLBACK
def test_a_failed_rollback_update_still_removes_the_worktree_with_a_fake_pulumi(
    two_commits: tuple[Path, str, str], fake: FakePulumi, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, first, second = two_commits
    fake.set_history([entry(2, sha=second), entry(1, sha=first)])
    monkeypatch.setenv("FAKE_PULUMI_FAIL", "up")
    with pytest.raises(live.LiveError, match="pulumi up failed"):
        rollback(repo, "dev", to=None, confirm=lambda _: True, out=lambda _: None)
    assert len(worktrees(repo)) == 1


@WHOLE_ROLLBACK
def test_rollback_runs_the_program_with_the_worktree_first_on_pythonpath_with_a_fake_pulumi(
    two_commits: tuple[Path, str, str], fake: FakePulumi
) -> None:
    # For target commits whose infra/__main__.py predates its own sys.path fix.
    repo, first, second = two_commits
    fake.set_history([entry(2, sha=second), entry(1, sha=first)])
    rollback(repo, "dev", to=None, confirm=lambda _: True, out=lambda _: None)
    (preview,) = fake.command("preview")
    (up,) = fake.command("up")
    assert preview["pythonpath"].split(os.pathsep)[0] == up["pythonpath"].split(os.pathsep)[0] == up["cwd"]


# --- the policy pack's virtualenv in the worktree, against the strict fake --------------------------


@WHOLE_ROLLBACK
@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_rollback_starts_the_mandatory_policy_pack_from_the_worktree_in_staging_and_prod(
    two_commits: tuple[Path, str, str], fake: FakePulumi, stack: str
) -> None:
    repo, first, second = two_commits
    fake.set_history([entry(2, sha=second), entry(1, sha=first)], stack=stack)
    summary = rollback(repo, stack, to=None, confirm=None, out=lambda _: None)
    (up,) = fake.command("up")
    assert summary is not None and option(up["argv"], "--policy-pack") == f"{up['cwd']}/policies"
    assert fake.history(stack)[0]["environment"] == {"git.head": first, "git.dirty": "false"}


@pytest.mark.slow
def test_a_target_with_other_policy_requirements_gets_a_venv_built_from_its_own_file(
    tmp_path: Path, fake: FakePulumi
) -> None:
    # The target's requirements install nothing (no network here), so its venv cannot import
    # pulumi.policy although the checkout's can: the checkout's venv was not reused.
    repo = project_copy(tmp_path / "repo")
    (repo / "policies" / "requirements.txt").write_text("# nothing\n")
    first = commit_all(repo, "deployed as v1, other policy requirements")
    (repo / "policies" / "requirements.txt").write_text((ROOT / "policies" / "requirements.txt").read_text())
    second = commit_all(repo, "deployed as v2")
    make_policy_venv(repo / "policies" / "venv")
    fake.set_history([entry(2, sha=second), entry(1, sha=first)], stack="staging")
    lines: list[str] = []
    with pytest.raises(live.LiveError, match=r"tree/policies/venv/bin/python cannot import pulumi.policy"):
        rollback(repo, "staging", to=None, confirm=None, out=lines.append)
    assert f"policy pack: building policies/venv from policies/requirements.txt at {first[:12]}" in lines
    assert fake.command("preview") == [] and live.venv_problem(repo / "policies" / "venv") is None


@pytest.mark.slow
def test_a_venv_built_from_the_targets_own_requirements_runs_the_pack_in_prod(
    tmp_path: Path, fake: FakePulumi
) -> None:
    # The target's requirements name a local wheel (no network here) that puts pulumi-policy on the
    # path; the checkout's requirements differ, so its venv must not be the one used.
    repo = project_copy(tmp_path / "repo")
    (repo / "policies" / "requirements.txt").write_text(f"{site_wheel(tmp_path)}\n")
    first = commit_all(repo, "deployed as v1 with its own policy requirements")
    (repo / "policies" / "requirements.txt").write_text((ROOT / "policies" / "requirements.txt").read_text())
    second = commit_all(repo, "deployed as v2")
    make_policy_venv(repo / "policies" / "venv")
    fake.set_history([entry(2, sha=second), entry(1, sha=first)], stack="prod")
    lines: list[str] = []
    assert rollback(repo, "prod", to=None, confirm=None, out=lines.append) is not None
    assert f"policy pack: building policies/venv from policies/requirements.txt at {first[:12]}" in lines
    assert fake.history("prod")[0]["environment"] == {"git.head": first, "git.dirty": "false"}


# --- reading the history --------------------------------------------------------------------------


@WHOLE_ROLLBACK
def test_history_is_read_without_decrypting_secrets_from_the_strict_fake(
    two_commits: tuple[Path, str, str], fake: FakePulumi
) -> None:
    repo, first, second = two_commits
    secret = {"value": "s3cr3t", "secret": True}
    fake.set_history([entry(2, sha=second) | {"config": {"vinylhound:token": secret}}, entry(1, sha=first)])
    rollback(repo, "dev", to=None, confirm=None, out=lambda _: None)
    history_calls = [c["argv"] for c in fake.calls() if c["argv"][:2] == ["stack", "history"]]
    assert history_calls and all("--show-secrets" not in argv for argv in history_calls)


@WHOLE_ROLLBACK
def test_rollback_finds_a_version_older_than_the_clis_default_page_of_ten(
    two_commits: tuple[Path, str, str], fake: FakePulumi
) -> None:
    repo, first, second = two_commits
    fake.set_history([entry(v, sha=second) for v in range(25, 3, -1)] + [entry(3, sha=first)])
    rollback(repo, "dev", to=3, confirm=None, out=lambda _: None)
    (up,) = fake.command("up")
    assert up["head"] == first and option(up["argv"], "--message") == f"rollback to v3 ({first[:12]})"


def test_the_strict_fake_shows_secret_config_values_only_with_show_secrets(fake: FakePulumi) -> None:
    secret = {"value": "s3cr3t", "secret": True}
    fake.set_history([entry(1, sha=SHA["a"]) | {"config": {"vinylhound:token": secret}}])

    def listed(*flags: str) -> Any:
        done = subprocess.run(
            ["pulumi", "stack", "history", "--json", *flags, "--stack", "dev"],
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(done.stdout)[0]["config"]["vinylhound:token"]

    assert (listed(), listed("--show-secrets")) == ({"secret": True}, secret)


def test_rolling_back_a_stack_the_backend_does_not_know_fails_in_one_line(
    two_commits: tuple[Path, str, str], fake: FakePulumi
) -> None:
    repo, _, _ = two_commits
    with pytest.raises(
        live.LiveError, match=r"^pulumi stack select failed: error: no stack named 'prod' found$"
    ):
        rollback(repo, "prod", to=None, confirm=None, out=lambda _: None)
    assert len(worktrees(repo)) == 1
