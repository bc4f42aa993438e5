"""``vinylhound diff``: what a change does to each stack, resource by resource, before anyone deploys it.

Both sides are rendered offline (no cluster, no credentials): the base revision in a temporary git
worktree, the working tree where it is, each by its own code in its own subprocess
(``ops/render_record.py``). The two records are compared by URN:

- added / removed: a URN only on one side;
- replaced: the same logical object under a new identity, which Pulumi deletes and creates again:
  a URN that changed while the Kubernetes object (kind, namespace, name) or Helm release stayed
  (a renamed Pulumi resource or a new parent) with no alias naming the old URN, or a URN whose
  Kubernetes name changed; a URN change an alias covers is the same resource (``ops.urns``);
- changed: the same URN with other inputs, listed as field paths with old -> new values.

Values that were secret are ``[secret]`` in both records and stay so. A secret stack setting whose
ciphertext changed cannot show up in the resources (both sides are masked), so it is reported on its
own, by key only. Dependencies are not compared: Pulumi does not update a resource for them.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from ops import render_record, urns
from ops.gitrepo import GitError, temporary_worktree
from ops.project import Project, ProjectError, find_root

Record = dict[str, Any]
#: Stands for a field that one side does not have.
ABSENT = "(absent)"
#: The hidden marker that lets CI find and update its own pull-request comment.
COMMENT_MARKER = "<!-- vinylhound-diff -->"
_HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
_VALUE_WIDTH = 80


class Format(StrEnum):
    """Output formats of ``vinylhound diff``."""

    table = "table"
    markdown = "markdown"


class DiffError(Exception):
    """The diff cannot be produced; the message is one printable line."""


# --- comparison (pure) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldChange:
    """One changed input: its path and both values (``ABSENT`` where a side lacks it)."""

    path: str
    old: Any
    new: Any


@dataclass(frozen=True)
class Change:
    """One resource that is changed or replaced; ``old_urn`` differs from ``urn`` for a rename."""

    urn: str
    old_urn: str
    label: str
    fields: tuple[FieldChange, ...]
    reason: str = ""


@dataclass(frozen=True)
class StackDiff:
    """The difference of one stack between the base and the working tree."""

    stack: str
    added: tuple[Record, ...] = ()
    removed: tuple[Record, ...] = ()
    replaced: tuple[Change, ...] = ()
    changed: tuple[Change, ...] = ()
    #: Secret settings (full keys) added, removed or re-encrypted with another value.
    secrets: tuple[str, ...] = ()
    #: Set when a side could not be rendered; the counts are then meaningless.
    error: str | None = None
    note: str = ""
    verdict: str = "not run"

    @property
    def empty(self) -> bool:
        """Nothing differs."""
        return not (self.added or self.removed or self.replaced or self.changed or self.secrets)

    def counts(self) -> dict[str, int]:
        """The headline numbers."""
        return {
            "added": len(self.added),
            "removed": len(self.removed),
            "replaced": len(self.replaced),
            "changed": len(self.changed),
        }

    def headline(self) -> str:
        """``1 added, 0 removed, 1 replaced, 2 changed`` or ``no changes``."""
        if self.error:
            return "not compared"
        if self.empty:
            return "no changes"
        text = ", ".join(f"{n} {what}" for what, n in self.counts().items())
        if self.secrets:
            text += f", {len(self.secrets)} secret setting{'s' if len(self.secrets) != 1 else ''}"
        return text


def kube_identity(record: Record) -> tuple[str, ...] | None:
    """What Kubernetes (or Helm) knows the object by, independent of its Pulumi name."""
    inputs = record.get("inputs") or {}
    if record["type"] == _HELM_RELEASE:
        return ("helm", str(inputs.get("namespace") or ""), str(inputs.get("name") or record["name"]))
    if record["type"].startswith("kubernetes:") and "kind" in inputs:
        meta = inputs.get("metadata") or {}
        return ("k8s", str(inputs["kind"]), str(meta.get("namespace") or ""), str(meta.get("name") or ""))
    return None


def identity(record: Record) -> tuple[str, ...]:
    """The logical identity used to pair a removed URN with an added one: the Kubernetes object
    when there is one, else type and Pulumi name (the URN then changed through its parent)."""
    return kube_identity(record) or ("pulumi", record["type"], record["name"])


def label(record: Record) -> str:
    """A short human name: ``Deployment vinylhound/user-service`` or ``Microservice user-service``."""
    ident = kube_identity(record)
    if ident and ident[0] == "k8s":
        _, kind, namespace, name = ident
        return f"{kind} {namespace + '/' if namespace else ''}{name}"
    if ident:
        return f"HelmRelease {ident[1] + '/' if ident[1] else ''}{ident[2]}"
    return f"{record['type'].rsplit(':', 1)[-1]} {record['name']}"


def _keyed(items: list[Any]) -> dict[str, Any] | None:
    # Lists of named objects (containers, env, ports, volumes) compare by name, so inserting one
    # entry does not report every later entry as changed.
    names = [i.get("name") for i in items if isinstance(i, dict)]
    if len(names) != len(items) or not all(isinstance(n, str) for n in names):
        return None
    if len(set(names)) != len(names):
        return None
    return {str(i["name"]): i for i in items}


def field_changes(old: Any, new: Any, path: str = "") -> list[FieldChange]:
    """Every leaf that differs between two JSON values, as dotted paths (``a.b[name=x].c``)."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[FieldChange] = []
        for key in sorted(set(old) | set(new)):
            sub = f"{path}.{key}" if path else str(key)
            out += field_changes(old.get(key, ABSENT), new.get(key, ABSENT), sub)
        return out
    if isinstance(old, list) and isinstance(new, list):
        old_keyed, new_keyed = _keyed(old), _keyed(new)
        if old_keyed is not None and new_keyed is not None:
            if list(old_keyed) == list(new_keyed) or set(old_keyed) != set(new_keyed):
                out = []
                for name in sorted(set(old_keyed) | set(new_keyed)):
                    out += field_changes(
                        old_keyed.get(name, ABSENT), new_keyed.get(name, ABSENT), f"{path}[name={name}]"
                    )
                if out:
                    return out
            # Same entries in another order: the order itself is the change.
            return [FieldChange(path, old, new)]
        if len(old) == len(new):
            out = []
            for i, (a, b) in enumerate(zip(old, new, strict=True)):
                out += field_changes(a, b, f"{path}[{i}]")
            return out
    return [FieldChange(path or "(value)", old, new)]


def compare(
    stack: str,
    base: Iterable[Record],
    head: Iterable[Record],
    *,
    base_secrets: Mapping[str, str] | None = None,
    head_secrets: Mapping[str, str] | None = None,
) -> StackDiff:
    """Compare two records of one stack (see the module docstring for the categories)."""
    old = {r["urn"]: r for r in base}
    new = {r["urn"]: r for r in head}
    # A resource that moved or was renamed WITH an alias keeps its identity: the same resource.
    moved = _moved(list(old.values()), list(new.values()))
    removed_urns = sorted(set(old) - set(new) - set(moved.values()))
    added_urns = sorted(set(new) - set(old) - set(moved))

    by_identity: dict[tuple[str, ...], list[str]] = {}
    for urn in removed_urns:
        by_identity.setdefault(identity(old[urn]), []).append(urn)
    replaced: list[Change] = []
    paired: set[str] = set()
    for urn in added_urns:
        candidates = by_identity.get(identity(new[urn]))
        if candidates:
            old_urn = candidates.pop(0)
            paired |= {urn, old_urn}
            replaced.append(
                Change(
                    urn=urn,
                    old_urn=old_urn,
                    label=label(new[urn]),
                    fields=tuple(field_changes(old[old_urn]["inputs"], new[urn]["inputs"])),
                    reason=f"renamed from {_urn_tail(old_urn)}; add an alias to keep it",
                )
            )

    changed: list[Change] = []
    same = {urn: urn for urn in set(old) & set(new)} | moved
    for urn in sorted(same):
        old_urn = same[urn]
        fields = tuple(field_changes(old[old_urn]["inputs"], new[urn]["inputs"]))
        if not fields:
            continue
        before, after = kube_identity(old[old_urn]), kube_identity(new[urn])
        if before != after:
            reason = f"was {label(old[old_urn])}; a new name replaces it"
            replaced.append(Change(urn, old_urn, label(new[urn]), fields, reason=reason))
        else:
            changed.append(Change(urn, old_urn, label(new[urn]), fields))

    secrets_old, secrets_new = dict(base_secrets or {}), dict(head_secrets or {})
    secrets = tuple(
        sorted(k for k in set(secrets_old) | set(secrets_new) if secrets_old.get(k) != secrets_new.get(k))
    )
    return StackDiff(
        stack=stack,
        added=tuple(new[u] for u in added_urns if u not in paired),
        removed=tuple(old[u] for u in removed_urns if u not in paired),
        replaced=tuple(sorted(replaced, key=lambda c: c.urn)),
        changed=tuple(changed),
        secrets=secrets,
    )


def _moved(base: list[Record], head: list[Record]) -> dict[str, str]:
    """New URN -> old URN for each resource whose URN changed while an alias (its own or
    inherited from its parent's) names the old one, as the engine matches them (``ops.urns``)."""
    before, after = urns.Engine(base), urns.Engine(head)
    old_by_engine_urn = {before.urn_of(r): r["urn"] for r in base if r["type"] != urns.STACK_TYPE}
    current = {r["urn"] for r in base}
    moved: dict[str, str] = {}
    for record in head:
        if record["urn"] in current or record["type"] == urns.STACK_TYPE:
            continue
        for identity_urn in sorted(after.identities_of(record)):
            old_urn = old_by_engine_urn.get(identity_urn)
            if old_urn is not None and old_urn not in moved.values():
                moved[record["urn"]] = old_urn
                break
    return moved


def _urn_tail(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


# --- secret settings ------------------------------------------------------------------------------


def secret_fingerprints(project: Project, stack: str) -> dict[str, str]:
    """Each ``secure:`` setting of a stack file by full key (``a.b`` below structured values), with
    a digest of its ciphertext: enough to see that it changed, nothing about its value."""
    try:
        path = project.stack_path(stack)
    except ProjectError:
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    found: dict[str, str] = {}

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict):
            if set(value) == {"secure"}:
                found[key] = hashlib.sha256(str(value["secure"]).encode()).hexdigest()[:16]
                return
            for sub, item in value.items():
                walk(item, f"{key}.{sub}")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{key}[{i}]")

    for key, value in (data.get("config") or {}).items():
        walk(value, key if ":" in key else f"{project.name}:{key}")
    return found


# --- rendering both sides ------------------------------------------------------------------------


def render_tree(
    root: Path, stacks: list[str], *, name: str = "", timeout: float = 600
) -> dict[str, dict[str, Any]]:
    """Render ``stacks`` of the source tree at ``root`` in a subprocess running that tree's code;
    ``name`` is how errors call the tree (default: its path)."""
    name = name or str(root)
    script = Path(render_record.__file__).resolve()
    with tempfile.TemporaryDirectory(prefix="vinylhound-diff-") as tmp:
        out = Path(tmp) / "records.json"
        done = subprocess.run(
            [sys.executable, str(script), "--root", str(root), "--out", str(out), *stacks],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if done.returncode == render_record.NO_ENGINE:
            raise DiffError(
                f"{name}: this revision predates the offline render (`vinylhound render`), so it cannot "
                "be diffed; choose a newer base"
            )
        if done.returncode != 0 or not out.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()
            raise DiffError(f"rendering {name} failed: {tail[-1] if tail else f'exit {done.returncode}'}")
        stacks_out: dict[str, dict[str, Any]] = json.loads(out.read_text())["stacks"]
        return stacks_out


#: A policy verdict for a stack of the working tree: ``passed``, ``failed: ...`` or ``not run``.
VerdictHook = Callable[[Path, str], str]


def check_verdict(root: Path, stack: str) -> str:
    """The policy verdict from ``vinylhound check STACK`` (ops/check.py), or ``not run`` when this
    tree has no check command. Exit 0 is ``passed``; any other exit is ``failed`` with its last line."""
    if not (root / "ops" / "check.py").is_file():
        return "not run"
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", "check", stack],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if done.returncode == 0:
        return "passed"
    tail = [line for line in (done.stderr + done.stdout).strip().splitlines() if line.strip()]
    return f"failed: {tail[-1].strip()}" if tail else f"failed (exit {done.returncode})"


def no_verdict(root: Path, stack: str) -> str:
    """The hook for ``--no-check``."""
    return "not run"


def diff_stacks(
    root: Path, base: str, stacks: list[str] | None = None, *, verdict: VerdictHook = check_verdict
) -> list[StackDiff]:
    """Diff each stack between revision ``base`` and the working tree at ``root``."""
    head_project = Project(root)
    try:
        with temporary_worktree(root, base) as tree:
            base_project = Project(tree)
            wanted = stacks or sorted(set(head_project.stacks()) | set(base_project.stacks()))
            head_stacks = [s for s in wanted if s in head_project.stacks()]
            base_stacks = [s for s in wanted if s in base_project.stacks()]
            unknown = [s for s in wanted if s not in head_stacks and s not in base_stacks]
            if unknown:
                raise DiffError(f"unknown stack {unknown[0]!r}; stacks: {', '.join(head_project.stacks())}")
            with ThreadPoolExecutor(max_workers=2) as pool:
                base_job = pool.submit(render_tree, tree, base_stacks, name=base) if base_stacks else None
                head_job = (
                    pool.submit(render_tree, root, head_stacks, name="the working tree")
                    if head_stacks
                    else None
                )
                base_out = base_job.result() if base_job else {}
                head_out = head_job.result() if head_job else {}
            base_secrets = {s: secret_fingerprints(base_project, s) for s in base_stacks}
    except GitError as err:
        raise DiffError(str(err)) from None

    results = []
    for stack in wanted:
        old, new = base_out.get(stack), head_out.get(stack)
        sides = (("base", old), ("working tree", new))
        error = next((f"{side}: {out['error']}" for side, out in sides if out and out["error"]), None)
        note = "new stack" if old is None else "stack removed" if new is None else ""
        result = compare(
            stack,
            (old or {}).get("records", []),
            (new or {}).get("records", []),
            base_secrets=base_secrets.get(stack, {}),
            head_secrets=secret_fingerprints(head_project, stack) if new is not None else {},
        )
        # An unchanged stack's verdict is the base's: only changed stacks are worth the check's time.
        if new is None or error:
            verdict_text = "not run"
        elif result.empty:
            verdict_text = "not run (no changes)"
        else:
            verdict_text = verdict(root, stack)
        results.append(replace(result, error=error, note=note, verdict=verdict_text))
    return results


# --- output ---------------------------------------------------------------------------------------


def show(value: Any, width: int = _VALUE_WIDTH) -> str:
    """A value on one line, JSON-style, shortened to ``width`` characters."""
    text = value if value == ABSENT else json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def _md_code(text: str) -> str:
    return "`" + text.replace("`", "'").replace("|", "\\|") + "`"


def _md_field(change: FieldChange) -> str:
    return f"    - {_md_code(change.path)}: {_md_code(show(change.old))} → {_md_code(show(change.new))}"


#: GitHub rejects comments longer than 65,536 characters; keep a margin.
COMMENT_LIMIT = 60_000


def _section(d: StackDiff, *, fields: bool) -> list[str]:
    summary = f"<summary><b>{d.stack}</b>: {d.headline()} · policy: {d.verdict}</summary>"
    lines = ["", "<details>", summary, ""]
    if d.note:
        lines += [f"_{d.note}_", ""]
    if d.error:
        lines += [f"Could not render: {_md_code(d.error)}", ""]
    elif d.empty:
        lines += ["No changes.", ""]
    for title, records in (("Added", d.added), ("Removed", d.removed)):
        if records:
            lines += [f"**{title}**", ""]
            lines += [f"- {_md_code(label(r))} ({_md_code(r['type'])})" for r in records]
            lines.append("")
    for title, changes in (("Replaced", d.replaced), ("Changed", d.changed)):
        if changes:
            lines += [f"**{title}**", ""]
            for ch in changes:
                reason = f" — {ch.reason}" if ch.reason else ""
                count = "" if fields or not ch.fields else f" ({len(ch.fields)} fields)"
                lines.append(f"- {_md_code(ch.label)}{reason}{count}")
                if fields:
                    lines += [_md_field(f) for f in ch.fields]
            lines.append("")
    if d.secrets:
        lines += ["**Secret settings** (values masked)", ""]
        lines += [f"- {_md_code(key)} changed" for key in d.secrets]
        lines.append("")
    lines.append("</details>")
    return lines


def markdown(diffs: list[StackDiff], base: str, *, limit: int = COMMENT_LIMIT) -> str:
    """The pull-request comment: a table of headline counts, then one collapsible section per stack.

    When that is longer than ``limit`` the field details are left out, and then whole stack
    sections (their table row stays), each time with a note saying how to see everything."""
    head = [COMMENT_MARKER, f"### vinylhound diff: `{base}` → this change", ""]
    if all(d.empty and not d.error for d in diffs):
        head.append("**no changes** in " + ", ".join(f"`{d.stack}`" for d in diffs) + ".")
        return "\n".join(head) + "\n"
    head += [
        "| stack | added | removed | replaced | changed | secret settings | policy |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for d in diffs:
        if d.error:
            head.append(f"| `{d.stack}` | - | - | - | - | - | not compared |")
            continue
        c = d.counts()
        head.append(
            f"| `{d.stack}` | {c['added']} | {c['removed']} | {c['replaced']} | {c['changed']} "
            f"| {len(d.secrets)} | {d.verdict} |"
        )
    full = head + [line for d in diffs for line in _section(d, fields=True)]
    text = "\n".join(full) + "\n"
    if len(text) <= limit:
        return text
    note = f"_Shortened to fit a comment: run `vinylhound diff --base {base}` for every field._"
    lines = [*head, "", note]
    for i, d in enumerate(diffs):
        section = _section(d, fields=False)
        # Room for this section plus a short stub for every stack after it.
        reserve = sum(len(d2.stack) + 120 for d2 in diffs[i + 1 :])
        if len("\n".join([*lines, *section])) + reserve > limit:
            section = [
                "",
                "<details>",
                f"<summary><b>{d.stack}</b>: {d.headline()} (left out)</summary>",
                "</details>",
            ]
        lines += section
    return "\n".join(lines) + "\n"


def text_rows(diff: StackDiff) -> list[tuple[str, str, str]]:
    """``(what, resource, detail)`` rows for the terminal table."""
    rows: list[tuple[str, str, str]] = []
    if diff.error:
        return [("error", diff.stack, diff.error)]
    rows += [("added", label(r), r["type"]) for r in diff.added]
    rows += [("removed", label(r), r["type"]) for r in diff.removed]
    for what, changes in (("replaced", diff.replaced), ("changed", diff.changed)):
        for ch in changes:
            detail = [ch.reason] if ch.reason else []
            detail += [f"{f.path}: {show(f.old, 40)} -> {show(f.new, 40)}" for f in ch.fields]
            rows.append((what, ch.label, "\n".join(detail)))
    rows += [("secret", key, "changed (value masked)") for key in diff.secrets]
    return rows


# --- command --------------------------------------------------------------------------------------


def command(
    stacks: Annotated[list[str] | None, typer.Argument(help="Stacks to compare. Default: all.")] = None,
    base: Annotated[str, typer.Option("--base", help="The git revision to compare with.")] = "HEAD",
    output: Annotated[Format, typer.Option("--format", help="table or markdown.")] = Format.table,
    check: Annotated[
        bool, typer.Option("--check/--no-check", help="Add each stack's policy verdict (vinylhound check).")
    ] = True,
) -> None:
    """Compare each stack's resources at --base with the working tree, offline (no cluster, no account)."""
    console = Console(soft_wrap=output is Format.markdown)
    try:
        root = find_root()
        diffs = diff_stacks(root, base, stacks or None, verdict=check_verdict if check else no_verdict)
    except (DiffError, ProjectError) as err:
        Console(stderr=True).print(str(err), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if output is Format.markdown:
        sys.stdout.write(markdown(diffs, base))
        return
    for d in diffs:
        table = Table(title=f"{d.stack}: {d.headline()} · policy: {d.verdict}", show_lines=True)
        table.add_column("what")
        table.add_column("resource")
        table.add_column("detail", overflow="fold")
        for row in text_rows(d):
            table.add_row(*row)
        if table.row_count:
            console.print(table)
        else:
            console.print(f"{d.stack}: {d.headline()} · policy: {d.verdict}", markup=False, highlight=False)
