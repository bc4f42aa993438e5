"""What a reviewer reads in ``vinylhound diff``: leaf-level field changes, the same facts in every
format, and exit statuses CI can act on.

The staging edit is the one the migration makes most often: one service's cutover weight,
100 -> 37 (catalog-service, in a copy whose catalog says it serves its album list alike: no
service serves a read alike today). Each affected route must read as that weight and the monolith
destination the split adds, with the route and the destination named, in the table, the Markdown
comment, the unified YAML diff and the JSON alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ops.diff import (
    ABSENT,
    EXIT_NOT_COMPARED,
    EXIT_POLICY,
    FieldChange,
    StackDiff,
    diff_stacks,
    exit_status,
    field_changes,
    markdown,
    no_verdict,
    text_rows,
    unified,
)
from tests.gitrepos import commit_all, edit, project_copy

# Slow lane: each test renders two git trees in subprocesses.
pytestmark = pytest.mark.slow

STAGING = Path("stacks") / "Pulumi.staging.yaml"
#: The service whose weight the edit changes, and its routes that the weight moves.
SERVICE = "catalog-service"
SERVICE_ROUTES = ("get-albums", "get-artists-id")
SERVES_ALIKE = (
    '_ep("GET /api/v1/albums", gap=f"snake_case keys, no trackList/genreList/rating; {_NULL_ALBUMS}")',
    '_ep("GET /api/v1/albums")',
)
CIPHERTEXT = "v1:UkVWSUVXRVJDQU5OT1RTRUVNRQ=="


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This project committed with a staging secret setting and catalog-service at weight 100
    (its album list served alike); in the working tree, that weight goes from 100 to 37."""
    root = project_copy(tmp_path_factory.mktemp("review"))
    stage = root / STAGING
    stage.write_text(stage.read_text() + f"  vinylhound:spotifyClientSecret:\n    secure: {CIPHERTEXT}\n")
    edit(root / "infra" / "catalog.py", *SERVES_ALIKE)
    mirrored = "every monolith album: mirrored only.\n        cutover: {weight: 0, mirror: true}"
    edit(stage, mirrored, mirrored.replace("{weight: 0, mirror: true}", "{weight: 100}"))
    commit_all(root, "a staging secret, catalog-service at 100")
    edit(stage, "cutover: {weight: 100}", "cutover: {weight: 37}")
    return root


@pytest.fixture(scope="module")
def staging(repo: Path) -> StackDiff:
    (result,) = diff_stacks(repo, "HEAD", ["staging"], verdict=no_verdict)
    return result


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", "diff", "--no-check", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "80"},
    )


def _reviewer_lines(route: str) -> list[str]:
    return [
        f"spec.http[name={route}].route[host={SERVICE}].weight: 100 -> 37",
        f"spec.http[name={route}].route[host=monolith]: added "
        '{"destination":{"host":"monolith.vinylhound.svc.cluster.local","port":{"number":8080}},"weight":63}',
    ]


def test_a_weight_change_reads_as_each_routes_weight_and_the_monolith_share_it_adds(
    staging: StackDiff,
) -> None:
    (edge,) = staging.changed
    assert edge.label == "VirtualService vinylhound/edge"
    assert [f.text() for f in edge.fields] == [line for r in SERVICE_ROUTES for line in _reviewer_lines(r)]


def test_piped_table_output_prints_each_fact_whole_on_its_own_line(repo: Path) -> None:
    done = _cli(repo, "staging")
    assert done.returncode == 0, done.stderr
    lines = [line.rstrip() for line in done.stdout.splitlines()]
    assert lines[0] == "staging: 0 added, 0 removed, 0 replaced, 1 changed · policy: not run"
    # Unwrapped at 80 columns, no box drawing, no markup eaten: grep finds the whole fact.
    assert not any(ch in done.stdout for ch in "│┃━─")
    for route in SERVICE_ROUTES:
        for fact in _reviewer_lines(route):
            assert sum(line.endswith(fact) for line in lines) == 1


def test_markdown_shows_the_same_field_lines_as_the_table(staging: StackDiff) -> None:
    text = markdown([staging], "main")
    (row,) = text_rows(staging)
    assert row[:2] == ("changed", "VirtualService vinylhound/edge")
    assert [f"    - `{line}`" for line in row[2].splitlines()] == [
        line for line in text.splitlines() if line.startswith("    - ")
    ]


def test_the_yaml_format_is_a_unified_diff_of_the_changed_object(staging: StackDiff) -> None:
    text = unified([staging], "main")
    name = "networking.istio.io.v1.VirtualService.vinylhound.edge"
    assert text.startswith(f"--- base/staging/{name}\n+++ working-tree/staging/{name}\n@@ ")
    assert text.count("\n-      weight: 100\n+      weight: 37\n") == len(SERVICE_ROUTES)
    assert text.count("\n+      weight: 63\n") == len(SERVICE_ROUTES)


def test_no_format_prints_a_secret_settings_ciphertext(repo: Path) -> None:
    stage = repo / STAGING
    edit(stage, CIPHERTEXT, "v1:TkVXQ0lQSEVSVEVYVA==")
    try:
        outputs = {fmt: _cli(repo, "staging", "-o", fmt) for fmt in ("table", "markdown", "yaml", "json")}
    finally:
        edit(stage, "v1:TkVXQ0lQSEVSVEVYVA==", CIPHERTEXT)
    for fmt, done in outputs.items():
        assert done.returncode == 0, (fmt, done.stderr)
        assert "vinylhound:spotifyClientSecret" in done.stdout, fmt
        assert "UkVWSUVXRVJDQU5OT1RTRUVNRQ" not in done.stdout and "TkVXQ0lQSEVSVEVYVA" not in done.stdout


def test_json_output_holds_the_field_paths_and_both_values(repo: Path) -> None:
    done = _cli(repo, "staging", "--output", "json")
    (stack,) = json.loads(done.stdout)["stacks"]
    fields = stack["changed"][0]["fields"]
    path = f"spec.http[name=get-albums].route[host={SERVICE}].weight"
    assert {"path": path, "old": 100, "new": 37} in fields
    added = next(f for f in fields if f["path"] == "spec.http[name=get-albums].route[host=monolith]")
    assert "old" not in added and added["new"]["weight"] == 63


def test_a_side_that_cannot_be_rendered_exits_1_naming_the_side_and_lists_nothing(repo: Path) -> None:
    stage = repo / STAGING
    edit(stage, "environment: staging", "environment: [staging]")
    try:
        done = _cli(repo, "staging", "-o", "markdown")
        (broken,) = diff_stacks(repo, "HEAD", ["staging"], verdict=no_verdict)
    finally:
        edit(stage, "environment: [staging]", "environment: staging")
    assert done.returncode == EXIT_NOT_COMPARED
    (line,) = done.stderr.splitlines()
    assert line.startswith(
        "staging: the working tree cannot be rendered: stacks/Pulumi.staging.yaml: "
        "vinylhound:platform.environment: "
    )
    assert "| `staging` | - | - | - | - | - | not compared |" in done.stdout
    assert (broken.added, broken.removed, broken.changed, broken.replaced) == ((), (), (), ())


def test_a_failed_policy_check_exits_3_and_a_clean_compare_exits_0() -> None:
    assert exit_status([StackDiff("dev", verdict="passed")]) == 0
    assert exit_status([StackDiff("dev", verdict="failed: 2 mandatory")]) == EXIT_POLICY
    both = [StackDiff("dev", error="x"), StackDiff("prod", verdict="failed")]
    assert exit_status(both) == EXIT_NOT_COMPARED


# --- field_changes on its own (pure) ----------------------------------------------------------


def test_list_items_are_matched_by_name_so_an_insert_is_one_added_item() -> None:
    old = {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
    new = {"env": [{"name": "A", "value": "1"}, {"name": "NEW", "value": "x"}, {"name": "B", "value": "3"}]}
    assert field_changes(old, new) == [
        FieldChange("env[name=B].value", "2", "3"),
        FieldChange("env[name=NEW]", ABSENT, {"name": "NEW", "value": "x"}),
    ]


def test_unnamed_ports_are_matched_by_port_number() -> None:
    old = {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 8443}]}
    new = {"ports": [{"port": 443, "targetPort": 9443}]}
    assert [c.text() for c in field_changes(old, new)] == [
        'ports[port=80]: removed {"port":80,"targetPort":8080}',
        "ports[port=443].targetPort: 8443 -> 9443",
    ]


def test_a_reordering_of_matched_items_is_reported_as_the_new_order() -> None:
    old = {"http": [{"name": "a"}, {"name": "b"}]}
    new = {"http": [{"name": "b"}, {"name": "a"}]}
    assert [c.text() for c in field_changes(old, new)] == ['http (order of name): ["a","b"] -> ["b","a"]']


def test_unkeyed_lists_compare_by_position_with_extra_items_added() -> None:
    old = {"match": [{"uri": {"prefix": "/a"}}]}
    new = {"match": [{"uri": {"prefix": "/b"}}, {"uri": {"prefix": "/c"}}]}
    assert [c.text() for c in field_changes(old, new)] == [
        'match[0].uri.prefix: "/a" -> "/b"',
        'match[1]: added {"uri":{"prefix":"/c"}}',
    ]


def test_several_problems_of_a_side_are_one_line_joined_by_semicolons(repo: Path) -> None:
    stage = repo / STAGING
    edit(stage, "environment: staging", "environment: [staging]\n    replicaz: 1")
    try:
        (broken,) = diff_stacks(repo, "HEAD", ["staging"], verdict=no_verdict)
    finally:
        edit(stage, "environment: [staging]\n    replicaz: 1", "environment: staging")
    assert broken.error is not None and "\n" not in broken.error
    first, second = broken.error.split("; stacks/Pulumi.staging.yaml: ")
    assert first.startswith("the working tree cannot be rendered: stacks/Pulumi.staging.yaml: ")
    assert second == "vinylhound:platform.replicaz: unknown key"
