"""``vinylhound diff``: what a change does to each stack, resource by resource, before anyone deploys it.

Both sides are rendered offline (no cluster, no credentials): the base revision in a temporary git
worktree, the working tree where it is, each by its own code in its own subprocess
(``ops/render_record.py``). The two records are compared by URN:

- added / removed: a URN only on one side;
- replaced: the same logical object under a new identity, which Pulumi deletes and creates again:
  a URN that changed while the Kubernetes object (kind, namespace, name) or Helm release stayed
  (a renamed Pulumi resource or a new parent) with no alias naming the old URN, or a URN whose
  Kubernetes name changed; a URN change an alias covers is the same resource (``ops.urns``);
- changed: the same URN with other inputs, listed leaf by leaf (``field_changes``): lists of
  objects matched by key, so a cutover weight reads
  ``spec.http[name=me].route[host=user-service].weight: 100 -> 37``.

Every format (table, markdown, json; yaml is the objects' unified diff) prints the same facts
(``entries``). The exit status tells CI whether each stack was compared (``EXIT_CODES``); a stack
with a side that cannot be rendered lists nothing, rather than everything as removed.

Values that were secret are ``[secret]`` in both records and stay so. A secret stack setting whose
ciphertext changed cannot show up in the resources (both sides are masked), so it is reported on its
own, by key only. Dependencies are not compared: Pulumi does not update a resource for them.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from ops import render_record, urns
from ops.gitrepo import GitError, temporary_worktree
from ops.output import Output, dump, print_table, say
from ops.project import Project, ProjectError, find_root

Record = dict[str, Any]
#: Stands for a field that one side does not have.
ABSENT = "(absent)"
#: The hidden marker that lets CI find and update its own pull-request comment.
COMMENT_MARKER = "<!-- vinylhound-diff -->"
_HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
_VALUE_WIDTH = 80
_CLUSTER_DOMAIN = ".svc.cluster.local"


class DiffError(Exception):
    """The diff cannot be produced; the message is one printable line."""


# --- comparison (pure) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldChange:
    """One changed input: its path and both values (``ABSENT`` where a side lacks it)."""

    path: str
    old: Any
    new: Any

    def text(self, width: int = _VALUE_WIDTH) -> str:
        """The line every format prints: ``path: old -> new``, ``path: added ...`` or
        ``path: removed ...``; each value on one line, shortened to ``width`` (an added or
        removed item, which stands alone on its line, to ``2 * width``)."""
        if self.old == ABSENT:
            return f"{self.path}: added {show(self.new, 2 * width)}"
        if self.new == ABSENT:
            return f"{self.path}: removed {show(self.old, 2 * width)}"
        return f"{self.path}: {show(self.old, width)} -> {show(self.new, width)}"


@dataclass(frozen=True)
class Change:
    """One resource that is changed or replaced; ``old_urn`` differs from ``urn`` for a rename."""

    urn: str
    old_urn: str
    label: str
    fields: tuple[FieldChange, ...]
    reason: str = ""
    #: Both sides' inputs, for the per-object unified diff (``--output yaml``).
    before: Any = field(default=None, compare=False, repr=False)
    after: Any = field(default=None, compare=False, repr=False)


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


#: How list items are matched across the two sides, tried in order: the first key every item has,
#: unique within both lists, wins. Istio routes are keyed by their destination host, Service and
#: container ports by number when they have no name.
_LIST_KEYS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("name", ("name",)),
    ("host", ("destination", "host")),
    ("port", ("port",)),
    ("containerPort", ("containerPort",)),
)


def _key_of(item: Any, path: tuple[str, ...]) -> str | None:
    for part in path:
        if not isinstance(item, dict) or part not in item:
            return None
        item = item[part]
    if isinstance(item, str):
        # In-cluster hosts read as the Service they name; items whose short names collide are
        # not unique, and another key (or the position) matches them instead.
        return item.split(".", 1)[0] if item.endswith(_CLUSTER_DOMAIN) else item
    if isinstance(item, int | float) and not isinstance(item, bool):
        return str(int(item)) if float(item).is_integer() else str(item)
    return None


def _keyed(old: list[Any], new: list[Any]) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    """Both lists as ``{key: item}`` under the first key that identifies every item of both."""
    for label_, path in _LIST_KEYS:
        sides = []
        for items in (old, new):
            keys = [_key_of(i, path) for i in items]
            if None in keys or len(set(keys)) != len(keys):
                break
            sides.append({str(k): i for k, i in zip(keys, items, strict=True)})
        else:
            return label_, sides[0], sides[1]
    return None


def field_changes(old: Any, new: Any, path: str = "") -> list[FieldChange]:
    """Every leaf that differs between two JSON values, as paths such as
    ``spec.http[name=auth-login].route[host=user-service].weight``.

    Lists of objects are matched by key (see ``_LIST_KEYS``) and compared inside, so an inserted
    entry is one added item, not a change of every later one; a reordering of keyed items is
    reported as the order that changed. Other lists compare by position, extra items added or
    removed; lists of plain values compare whole."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[FieldChange] = []
        for key in sorted(set(old) | set(new)):
            sub = f"{path}.{key}" if path else str(key)
            out += field_changes(old.get(key, ABSENT), new.get(key, ABSENT), sub)
        return out
    if isinstance(old, list) and isinstance(new, list):
        if not any(isinstance(i, dict | list) for i in [*old, *new]):
            return [FieldChange(path or "(value)", old, new)]
        keyed = _keyed(old, new)
        if keyed is not None:
            what, before, after = keyed
            out = []
            for key in [*before, *(k for k in after if k not in before)]:
                out += field_changes(before.get(key, ABSENT), after.get(key, ABSENT), f"{path}[{what}={key}]")
            common_before = [k for k in before if k in after]
            common_after = [k for k in after if k in before]
            if common_before != common_after:
                out.append(FieldChange(f"{path} (order of {what})", common_before, common_after))
            return out
        out = []
        for i in range(max(len(old), len(new))):
            a = old[i] if i < len(old) else ABSENT
            b = new[i] if i < len(new) else ABSENT
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
                    before=old[old_urn]["inputs"],
                    after=new[urn]["inputs"],
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
        reason = f"was {label(old[old_urn])}; a new name replaces it" if before != after else ""
        entry = Change(
            urn, old_urn, label(new[urn]), fields, reason, old[old_urn]["inputs"], new[urn]["inputs"]
        )
        (replaced if reason else changed).append(entry)

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
    try:
        data = yaml.safe_load(path.read_bytes().decode())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}  # that side cannot be rendered either, and says why
    config = data.get("config") if isinstance(data, dict) else None
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

    for key, value in (config if isinstance(config, dict) else {}).items():
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
        note = "new stack" if old is None else "stack removed" if new is None else ""
        sides = ((f"base {base}", old), ("the working tree", new))
        error = next(
            (f"{side} cannot be rendered: {out['error']}" for side, out in sides if out and out["error"]),
            None,
        )
        if error:
            # Nothing is compared: a side that failed has no resources, and listing the other
            # side's as added or removed would be a lie.
            results.append(StackDiff(stack, error=error, note=note))
            continue
        result = compare(
            stack,
            (old or {}).get("records", []),
            (new or {}).get("records", []),
            base_secrets=base_secrets.get(stack, {}),
            head_secrets=secret_fingerprints(head_project, stack) if new is not None else {},
        )
        # An unchanged stack's verdict is the base's: only changed stacks are worth the check's time.
        if new is None:
            verdict_text = "not run"
        elif result.empty:
            verdict_text = "not run (no changes)"
        else:
            verdict_text = verdict(root, stack)
        results.append(replace(result, note=note, verdict=verdict_text))
    return results


# --- output ---------------------------------------------------------------------------------------


def show(value: Any, width: int = _VALUE_WIDTH) -> str:
    """A value on one line, JSON-style, shortened to ``width`` characters."""
    if value == ABSENT:
        return ABSENT
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass(frozen=True)
class Entry:
    """One fact of a stack's diff, as every human-readable format prints it: what happened to
    which resource, a note (its type, or why it is replaced) and the changed fields' lines."""

    what: str
    resource: str
    note: str = ""
    fields: tuple[str, ...] = ()

    def details(self) -> list[str]:
        """The note, then one line per changed field."""
        return [self.note, *self.fields] if self.note else list(self.fields)


def entries(diff: StackDiff) -> list[Entry]:
    """The facts of one stack, in the order every format lists them."""
    if diff.error:
        return [Entry("error", diff.stack, diff.error)]
    out = [Entry("added", label(r), r["type"]) for r in diff.added]
    out += [Entry("removed", label(r), r["type"]) for r in diff.removed]
    for what, changes in (("replaced", diff.replaced), ("changed", diff.changed)):
        out += [Entry(what, ch.label, ch.reason, tuple(f.text() for f in ch.fields)) for ch in changes]
    out += [Entry("secret", key, "changed (value masked)") for key in diff.secrets]
    return out


def title(diff: StackDiff) -> str:
    """``staging: 0 added, 0 removed, 0 replaced, 1 changed · policy: passed``."""
    return f"{diff.stack}: {diff.headline()} · policy: {diff.verdict}"


def text_rows(diff: StackDiff) -> list[tuple[str, str, str]]:
    """``(what, resource, detail)`` rows for the table format (details one per line)."""
    return [(e.what, e.resource, "\n".join(e.details())) for e in entries(diff)]


def _md_code(text: str) -> str:
    return "`" + text.replace("`", "'").replace("|", "\\|") + "`"


#: GitHub rejects comments longer than 65,536 characters; keep a margin.
COMMENT_LIMIT = 60_000
_MD_TITLES = {"added": "Added", "removed": "Removed", "replaced": "Replaced", "changed": "Changed"}


def _md_entry(e: Entry, *, fields: bool) -> list[str]:
    if e.what in ("added", "removed"):
        return [f"- {_md_code(e.resource)} ({_md_code(e.note)})"]
    reason = f" — {e.note}" if e.note else ""
    count = "" if fields or not e.fields else f" ({len(e.fields)} fields)"
    lines = [f"- {_md_code(e.resource)}{reason}{count}"]
    return lines + ([f"    - {_md_code(line)}" for line in e.fields] if fields else [])


def _section(d: StackDiff, *, fields: bool) -> list[str]:
    lines = [
        "",
        "<details>",
        f"<summary><b>{d.stack}</b>: {d.headline()} · policy: {d.verdict}</summary>",
        "",
    ]
    if d.note:
        lines += [f"_{d.note}_", ""]
    if d.error:
        return [*lines, f"Could not render: {_md_code(d.error)}", "", "</details>"]
    if d.empty:
        lines += ["No changes.", ""]
    facts = entries(d)
    for what, heading in _MD_TITLES.items():
        group = [e for e in facts if e.what == what]
        if group:
            lines += [
                f"**{heading}**",
                "",
                *(line for e in group for line in _md_entry(e, fields=fields)),
                "",
            ]
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


_PROVIDER_KEYS = {"__inputs", "__initialApiVersion"}


def document(inputs: Any) -> Any:
    """A resource's inputs as ``kubectl diff`` shows an object: apiVersion, kind and metadata
    first, the provider's bookkeeping keys left out."""
    if not isinstance(inputs, dict):
        return inputs
    body = {k: v for k, v in inputs.items() if k not in _PROVIDER_KEYS}
    head = {k: body.pop(k) for k in ("apiVersion", "kind", "metadata") if k in body}
    return head | dict(sorted(body.items()))


def _object_name(record_type: str, inputs: Any, fallback: str) -> str:
    # kubectl diff names its files group.version.Kind.namespace.name; the same here.
    if isinstance(inputs, dict) and "kind" in inputs:
        meta = inputs.get("metadata") or {}
        parts = [str(inputs.get("apiVersion", "")).replace("/", "."), str(inputs["kind"])]
        parts += [str(meta.get("namespace") or ""), str(meta.get("name") or fallback)]
        return ".".join(p for p in parts if p)
    return f"{record_type}.{fallback}"


def _yaml_lines(inputs: Any) -> list[str]:
    if inputs is None:
        return []
    text = yaml.safe_dump(document(inputs), sort_keys=False, default_flow_style=False, allow_unicode=True)
    return text.splitlines(keepends=True)


def unified(diffs: list[StackDiff], base: str) -> str:
    """Every added, removed, replaced or changed object as a unified diff of its YAML, one per
    object (``--- base/STACK/NAME``, ``+++ working-tree/STACK/NAME``), like ``kubectl diff``.
    Secret values are masked in the records already; secret settings are listed by key."""
    out: list[str] = []
    for d in diffs:
        if d.error:
            out.append(f"# {d.stack}: {d.error}\n")
            continue
        pairs: list[tuple[str, Any, Any, str]] = []
        pairs += [(_object_name(r["type"], r["inputs"], r["name"]), None, r["inputs"], "") for r in d.added]
        pairs += [(_object_name(r["type"], r["inputs"], r["name"]), r["inputs"], None, "") for r in d.removed]
        for ch in (*d.replaced, *d.changed):
            name = _object_name(ch.urn.split("::")[-2].rsplit("$", 1)[-1], ch.after, _urn_tail(ch.urn))
            pairs.append((name, ch.before, ch.after, ch.reason))
        for name, before, after, reason in sorted(pairs, key=lambda p: p[0]):
            # A replacement may change no field at all (a rename): the note is then all there is.
            out += [f"# {d.stack}: {name} replaced: {reason}\n"] if reason else []
            out += difflib.unified_diff(
                _yaml_lines(before),
                _yaml_lines(after),
                fromfile=f"base/{d.stack}/{name}" if before is not None else "/dev/null",
                tofile=f"working-tree/{d.stack}/{name}" if after is not None else "/dev/null",
            )
        out += [f"# {d.stack}: secret setting {key} changed (value masked)\n" for key in d.secrets]
    return "".join(out)


def as_data(diffs: list[StackDiff], base: str) -> dict[str, Any]:
    """The diff as plain data for ``--output json``: the same facts as the other formats."""

    def fields(ch: Change) -> list[dict[str, Any]]:
        return [
            {"path": f.path}
            | ({} if f.old == ABSENT else {"old": f.old})
            | ({} if f.new == ABSENT else {"new": f.new})
            for f in ch.fields
        ]

    def change(ch: Change) -> dict[str, Any]:
        return {
            "resource": ch.label,
            "urn": ch.urn,
            "oldUrn": ch.old_urn,
            "reason": ch.reason,
            "fields": fields(ch),
        }

    def resource(r: Record) -> dict[str, Any]:
        return {"resource": label(r), "type": r["type"], "urn": r["urn"]}

    return {
        "base": base,
        "stacks": [
            {
                "stack": d.stack,
                "error": d.error,
                "note": d.note,
                "policy": d.verdict,
                "added": [resource(r) for r in d.added],
                "removed": [resource(r) for r in d.removed],
                "replaced": [change(c) for c in d.replaced],
                "changed": [change(c) for c in d.changed],
                "secretSettings": list(d.secrets),
            }
            for d in diffs
        ],
    }


# --- command --------------------------------------------------------------------------------------

#: Exit statuses of ``vinylhound diff`` (also in its ``--help`` and docs/render-and-diff.md).
EXIT_OK = 0
EXIT_NOT_COMPARED = 1
EXIT_POLICY = 3
EXIT_CODES = f"""Exit status: {EXIT_OK} every stack compared (changes or not) and no policy check
failed; {EXIT_NOT_COMPARED} a side of a stack could not be rendered (each such stack named on stderr
with the side and why; its resources are not listed), or the diff could not start (unknown revision
or stack); 2 a usage error; {EXIT_POLICY} compared, but `vinylhound check` failed on the working
tree of a changed stack."""


def exit_status(diffs: list[StackDiff]) -> int:
    """The exit status for ``diffs`` (see ``EXIT_CODES``)."""
    if any(d.error for d in diffs):
        return EXIT_NOT_COMPARED
    if any(d.verdict.startswith("failed") for d in diffs):
        return EXIT_POLICY
    return EXIT_OK


def write(diffs: list[StackDiff], base: str, fmt: Output) -> None:
    """Print ``diffs`` to stdout in ``fmt``."""
    if fmt is Output.markdown:
        sys.stdout.write(markdown(diffs, base))
    elif fmt is Output.yaml:
        sys.stdout.write(unified(diffs, base))
    elif fmt is Output.json:
        sys.stdout.write(dump(as_data(diffs, base), Output.json))
    else:
        for d in diffs:
            rows = text_rows(d)
            if rows:
                print_table(title(d), ("what", "resource", "detail"), rows)
            else:
                say(title(d))


def command(
    stacks: Annotated[
        list[str] | None,
        typer.Argument(metavar="STACK...", help="Stacks to compare. Default: all.", show_default=False),
    ] = None,
    base: Annotated[
        str, typer.Option("--base", metavar="REV", help="The git revision to compare with.")
    ] = "HEAD",
    output: Annotated[
        Output,
        typer.Option(
            "--output",
            "-o",
            "--format",
            metavar="FORMAT",
            help="table (a terminal table, plain lines when piped), markdown (the pull-request comment), "
            "yaml (a unified diff of each object's YAML, like kubectl diff) or json.",
        ),
    ] = Output.table,
    check: Annotated[
        bool,
        typer.Option(
            "--check/--no-check", help="Add each changed stack's policy verdict (vinylhound check)."
        ),
    ] = True,
) -> None:
    """Compare each stack's resources at --base with the working tree, offline (no cluster, no account)."""
    if sys.stderr.isatty():
        say(f"rendering every stack at {base} and in the working tree, offline...", stderr=True)
    try:
        root = find_root()
        diffs = diff_stacks(root, base, stacks or None, verdict=check_verdict if check else no_verdict)
    except (DiffError, ProjectError) as err:
        say(str(err), stderr=True)
        raise typer.Exit(EXIT_NOT_COMPARED) from None
    write(diffs, base, output)
    for d in diffs:
        if d.error:
            say(f"{d.stack}: {d.error}", stderr=True)
    status = exit_status(diffs)
    if status:
        raise typer.Exit(status)


command.__doc__ = f"{command.__doc__}\n\n{EXIT_CODES}"
