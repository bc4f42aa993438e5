"""``vinylhound diff`` on a real git repository: a copy of this project, committed, then edited.

The edits are the ones a pull request makes every day: a replica count, a new service, a removed
route, a changed secret and a rename that replaces a resource. The diff must report exactly those,
attributable change by change, and never a secret value.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ops.diff import (
    Change,
    DiffError,
    StackDiff,
    check_verdict,
    compare,
    diff_stacks,
    label,
    markdown,
    no_verdict,
    text_rows,
    unified,
)
from tests.conftest import rendered
from tests.gitrepos import commit_all, edit, git, project_copy, worktrees

#: Every test here renders two source trees in subprocesses (git worktree + offline render).
pytestmark = pytest.mark.slow

OLD_CIPHERTEXT = "v1:OLDCIPHERTEXTb2xkLXNwb3RpZnk="
NEW_CIPHERTEXT = "v1:NEWCIPHERTEXTbmV3LXNwb3RpZnk="
#: The name of the route (and dashboard series) of the endpoint the edit below removes.
ROUTE = "put-me-albums-id-preference"

WISHLIST = """    Workload(
        name="wishlist-service",
        role="service",
        image="wishlist-service",
        port=8005,
        health_path="/health",
        env=("PORT",),
        description="Wishlists (a test service).",
    ),
    Workload(
        name="api-gateway","""


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project with a dev stack that has two user-service replicas and a Spotify secret,
    committed as the base; then the five edits, left uncommitted in the working tree."""
    root = project_copy(tmp_path_factory.mktemp("diff"))
    dev = root / "stacks" / "Pulumi.dev.yaml"
    edit(dev, 'image: {tag: "1.6.1"}\n', 'image: {tag: "1.6.1"}\n        replicas: 2\n')
    dev.write_text(dev.read_text() + f"  vinylhound:spotifyClientSecret:\n    secure: {OLD_CIPHERTEXT}\n")
    commit_all(root, "base: two user-service replicas, a Spotify secret")

    edit(dev, "replicas: 2\n", "replicas: 3\n")
    edit(root / "infra" / "catalog.py", '    Workload(\n        name="api-gateway",', WISHLIST)
    edit(dev, '"3.9.0"}\n', '"3.9.0"}\n      wishlist-service:\n        image: {tag: "0.1.0"}\n')
    edit(
        root / "infra" / "catalog.py",
        '_ep("PUT /api/v1/me/albums/{id}/preference", gap="always 501 (not implemented)"),',
        "",
    )
    edit(dev, OLD_CIPHERTEXT, NEW_CIPHERTEXT)
    edit(
        root / "infra" / "targets" / "kubernetes" / "workloads.py",
        'f"{name}-jwt-secret",\n            JWT_SECRET_NAME',
        'f"{name}-jwt-signing-secret",\n            JWT_SECRET_NAME',
    )
    return root


@pytest.fixture(scope="module")
def dev(repo: Path) -> StackDiff:
    (result,) = diff_stacks(repo, "HEAD", ["dev"], verdict=no_verdict)
    return result


def test_a_changed_replica_count_is_reported_as_that_field_old_to_new(dev: StackDiff) -> None:
    (deployment,) = [c for c in dev.changed if c.label == "Deployment vinylhound/user-service"]
    assert [(f.path, f.old, f.new) for f in deployment.fields] == [("spec.replicas", 2, 3)]


def test_a_new_service_is_reported_as_added_resources_and_nothing_else_is_added(dev: StackDiff) -> None:
    assert all("wishlist-service" in r["urn"] for r in dev.added)
    assert {"Deployment vinylhound/wishlist-service", "Service vinylhound/wishlist-service"} <= {
        label(r) for r in dev.added
    }
    assert dev.removed == ()


def test_a_rename_is_reported_as_a_replacement_of_the_same_kubernetes_object(dev: StackDiff) -> None:
    (replaced,) = dev.replaced
    assert replaced.label == "Secret vinylhound/vinylhound-jwt"
    assert replaced.old_urn.endswith("::workloads-jwt-secret")
    assert replaced.urn.endswith("::workloads-jwt-signing-secret")
    assert replaced.fields == ()


def quota_limits_only(change: Change) -> bool:
    """A ResourceQuota whose only changes are its limits (``spec.hard``)."""
    limits = all(f.path.startswith("spec.hard.") for f in change.fields)
    return change.label.startswith("ResourceQuota ") and limits


def test_every_changed_resource_is_explained_by_one_of_the_edits(dev: StackDiff) -> None:
    # The replica count, the removed route (wherever the base rendered it) and the new service
    # (a resource that now mentions it) are the only reasons anything may change. The namespace's
    # quota is sized from the replicas and the services (quota.py), so its limits follow both.
    carried_route = {
        r.urn
        for r in rendered("dev").registrations
        if ROUTE in json.dumps(r.inputs) and r.type != "pulumi:pulumi:Stack"
    }
    unexplained = [
        c.label
        for c in dev.changed
        if c.label != "Deployment vinylhound/user-service"
        and c.urn not in carried_route
        and not quota_limits_only(c)
        and not any("wishlist-service" in json.dumps(f.new) for f in c.fields)
    ]
    assert unexplained == []
    assert carried_route <= {c.urn for c in dev.changed}


def test_a_changed_secret_is_reported_by_key_without_any_value(dev: StackDiff) -> None:
    assert dev.secrets == ("vinylhound:spotifyClientSecret",)
    everything = markdown([dev], "HEAD") + json.dumps(text_rows(dev))
    assert OLD_CIPHERTEXT not in everything and NEW_CIPHERTEXT not in everything


def test_secret_values_in_changed_resources_stay_masked(repo: Path, tmp_path: Path) -> None:
    # Setting the secret for the first time adds the Secret object: its data shows as [secret].
    stage = repo / "stacks" / "Pulumi.staging.yaml"
    original = stage.read_text()
    try:
        stage.write_text(original + f"  vinylhound:spotifyClientSecret:\n    secure: {NEW_CIPHERTEXT}\n")
        (after,) = diff_stacks(repo, "HEAD", ["staging"], verdict=no_verdict)
    finally:
        stage.write_text(original)
    (secret,) = [r for r in after.added if r["type"] == "kubernetes:core/v1:Secret"]
    assert secret["inputs"]["stringData"] == {"client-secret": "[secret]"}
    assert after.secrets == ("vinylhound:spotifyClientSecret",)
    assert NEW_CIPHERTEXT not in markdown([after], "HEAD")


def test_markdown_has_a_marker_a_headline_row_and_one_collapsible_section_per_stack(dev: StackDiff) -> None:
    text = markdown([dev], "main")
    counts = dev.counts()
    assert text.startswith("<!-- vinylhound-diff -->\n")
    assert f"| `dev` | {counts['added']} | 0 | 1 | {counts['changed']} | 1 | not run |" in text.splitlines()
    assert text.count("<details>") == 1 and text.count("</details>") == 1
    sections = [line for line in text.splitlines() if re.fullmatch(r"\*\*[A-Z][a-z ]+\*\*.*", line)]
    assert sections == ["**Added**", "**Replaced**", "**Changed**", "**Secret settings** (values masked)"]
    assert "    - `spec.replicas: 2 -> 3`" in text.splitlines()


def test_markdown_lists_resources_in_urn_order_and_is_identical_on_every_run(dev: StackDiff) -> None:
    assert [c.urn for c in dev.changed] == sorted(c.urn for c in dev.changed)
    assert [r["urn"] for r in dev.added] == sorted(r["urn"] for r in dev.added)
    assert markdown([dev], "main") == markdown([dev], "main")


def test_a_diff_too_long_for_a_comment_is_shortened_with_its_table_intact(dev: StackDiff) -> None:
    full = markdown([dev, dev], "main")
    short = markdown([dev, dev], "main", limit=len(full) // 2)
    assert len(short) <= len(full) // 2
    assert "Shortened to fit a comment: run `vinylhound diff --base main`" in short
    assert short.count("| `dev` |") == 2 and short.count("<details>") == 2
    tiny = markdown([dev, dev], "main", limit=1500)
    assert len(tiny) <= 1500 and "(left out)</summary>" in tiny


def test_the_command_prints_markdown_for_every_stack_against_the_previous_commit(tmp_path: Path) -> None:
    root = project_copy(tmp_path)
    dev = root / "stacks" / "Pulumi.dev.yaml"
    edit(dev, 'image: {tag: "1.6.1"}\n', 'image: {tag: "1.6.1"}\n        replicas: 2\n')
    commit_all(root, "one replica count")
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", "diff", "--base", "HEAD~1", "--format", "markdown", "--no-check"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [line.split("|")[1].strip(" `") for line in done.stdout.splitlines() if line.startswith("| `")]
    assert rows == sorted(
        p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in (root / "stacks").glob("*.yaml")
    )
    assert done.stdout.count("<details>") == len(rows) and "spec.replicas" in done.stdout


def _tree_with_check(root: Path, exit_code: int | None) -> Path:
    """A tree whose `python -m ops.cli check STACK` prints a line and exits ``exit_code``
    (``None``: the tree has no ops/check.py)."""
    (root / "ops").mkdir(parents=True)
    (root / "ops" / "__init__.py").write_text("")
    if exit_code is not None:
        (root / "ops" / "check.py").write_text("")
        script = f"import sys\nprint('checked')\nprint('2 mandatory violations')\nsys.exit({exit_code})\n"
        (root / "ops" / "cli.py").write_text(script)
    return root


def test_the_policy_verdict_comes_from_the_check_commands_exit_status(tmp_path: Path) -> None:
    assert check_verdict(_tree_with_check(tmp_path / "ok", 0), "dev") == "passed"
    assert check_verdict(_tree_with_check(tmp_path / "bad", 1), "dev") == "failed: 2 mandatory violations"
    assert check_verdict(_tree_with_check(tmp_path / "none", None), "dev") == "not run"


def test_identical_trees_give_no_changes(tmp_path: Path) -> None:
    root = project_copy(tmp_path)
    diffs = diff_stacks(root, "HEAD", ["dev", "prod"], verdict=no_verdict)
    assert [d.headline() for d in diffs] == ["no changes", "no changes"]
    assert "**no changes** in `dev`, `prod`." in markdown(diffs, "HEAD")


def test_the_temporary_worktree_is_removed_after_the_diff(repo: Path, dev: StackDiff) -> None:
    assert len(worktrees(repo)) == 1


def test_a_base_that_predates_the_offline_render_fails_with_a_clear_message(tmp_path: Path) -> None:
    root = project_copy(tmp_path)
    git(root, "rm", "--quiet", "ops/render.py")
    commit_all(root, "a tree without the offline render")
    git(root, "checkout", "--quiet", "HEAD~1")
    with pytest.raises(DiffError, match=r"^main: this revision predates the offline render"):
        diff_stacks(root, "main", ["dev"], verdict=no_verdict)
    assert len(worktrees(root)) == 1


def test_an_unknown_base_revision_is_one_clear_error(tmp_path: Path) -> None:
    root = project_copy(tmp_path)
    with pytest.raises(DiffError, match="'no-such-branch' is not a commit"):
        diff_stacks(root, "no-such-branch", ["dev"], verdict=no_verdict)


def test_the_yaml_format_notes_a_rename_that_changes_no_field(dev: StackDiff) -> None:
    text = unified([dev], "HEAD")
    note = "# dev: v1.Secret.vinylhound.vinylhound-jwt replaced: "
    assert f"{note}renamed from workloads-jwt-secret; add an alias to keep it\n" in text
    assert "# dev: secret setting vinylhound:spotifyClientSecret changed (value masked)\n" in text
    assert OLD_CIPHERTEXT not in text and NEW_CIPHERTEXT not in text


def test_markdown_and_table_list_the_same_resources_and_field_lines(dev: StackDiff) -> None:
    text = markdown([dev], "HEAD")
    for what, resource, detail in text_rows(dev):
        if what == "secret":
            assert f"- `{resource}` changed" in text
            continue
        assert f"`{resource}`" in text
        lines = detail.splitlines()
        for line in lines[1:] if what in ("added", "removed", "replaced") else lines:
            assert f"    - `{line}`" in text.splitlines(), (resource, line)


# --- moves covered by aliases ---------------------------------------------------------------------

_STACK = "urn:pulumi:dev::vinylhound::pulumi:pulumi:Stack::vinylhound-dev"
_SECRET_INPUTS = {"kind": "Secret", "metadata": {"name": "s", "namespace": "ns"}}


def _moved_secret(aliases: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A Secret at the stack root before, under an area component after (mock URNs)."""
    area_urn = "urn:pulumi:dev::vinylhound::pulumi:pulumi:Stack$vinylhound:test:Area::area"
    area: dict[str, Any] = {
        "urn": area_urn,
        "type": "vinylhound:test:Area",
        "name": "area",
        "parent": _STACK,
        "inputs": {},
    }
    secret: dict[str, Any] = {"type": "kubernetes:core/v1:Secret", "name": "secret", "inputs": _SECRET_INPUTS}
    old_urn = "urn:pulumi:dev::vinylhound::pulumi:pulumi:Stack$kubernetes:core/v1:Secret::secret"
    before = [{**secret, "urn": old_urn, "parent": _STACK}]
    after: list[dict[str, Any]] = [
        area,
        {
            **secret,
            "urn": "urn:pulumi:dev::vinylhound::vinylhound:test:Area$kubernetes:core/v1:Secret::secret",
            "parent": area_urn,
            "aliases": aliases,
        },
    ]
    return before, after


def test_a_resource_moved_under_a_component_with_an_alias_is_neither_replaced_nor_removed() -> None:
    base, head = _moved_secret([{"noParent": True}])
    diff = compare("dev", base, head)
    assert (diff.replaced, diff.removed, diff.changed) == ((), (), ())
    assert [r["name"] for r in diff.added] == ["area"]


def test_a_resource_moved_under_a_component_without_an_alias_is_a_replacement() -> None:
    base, head = _moved_secret([])
    assert [c.label for c in compare("dev", base, head).replaced] == ["Secret ns/s"]
