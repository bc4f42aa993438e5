"""``vinylhound up`` / ``vinylhound preview``: the live path, through the Pulumi Automation API.

The program is the same one ``pulumi up`` runs (a local workspace on the project directory); this
module adds what a team wants around it: the policy pack with the stack's own policy config (and a
clear refusal when the pack's virtualenv cannot start it), the engine's output streamed as it comes,
a one-line summary at the end, updates that apply exactly the plan of the preview shown (see
``ops/plan.py``), and a refusal to deploy prod from a tree whose code is not committed (the
deployment would not be reproducible, and ``vinylhound rollback`` could never return to it).

Nothing here can run without the Pulumi CLI; when it is missing the commands say so in one line.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml

from ops import plan as plans
from ops.gitrepo import GitError, dirty_files
from ops.project import ProjectError, find_root

if TYPE_CHECKING:
    from pulumi import automation as auto

#: Where the policy pack lives, and its per-stack config, relative to the project root.
POLICY_PACK = Path("policies")
POLICY_CONFIG = POLICY_PACK / "config"
#: Stacks that are never deployed from uncommitted code unless the user insists.
PROTECTED_STACKS = frozenset({"prod"})
#: Stacks that always run with the policy pack: ``--no-policy`` is refused for them.
POLICY_REQUIRED_STACKS = frozenset({"staging", "prod"})

PULUMI_MISSING = (
    "the Pulumi CLI is not installed (no `pulumi` on PATH): install it with "
    "`curl -fsSL https://get.pulumi.com | sh` (see https://www.pulumi.com/docs/install/), "
    "then `pulumi login --local`"
)

#: Summary words for the engine's operation counts, in the order they are printed.
_SUMMARY = (("create", "created"), ("update", "updated"), ("replace", "replaced"), ("delete", "deleted"))

Output = Callable[[str], None]


class LiveError(Exception):
    """The live command cannot run or failed; the message is one printable line."""


def require_pulumi() -> None:
    """Raise ``LiveError`` with install instructions when the Pulumi CLI is not on PATH."""
    if shutil.which("pulumi") is None:
        raise LiveError(PULUMI_MISSING)


@dataclass(frozen=True)
class Policy:
    """The ``--policy-pack`` / ``--policy-pack-config`` pairs passed to the engine."""

    packs: tuple[str, ...] = ()
    configs: tuple[str, ...] = ()


def policy_for(root: Path, stack: str, *, enabled: bool = True) -> Policy:
    """The policy pack at ``policies/`` with ``policies/config/<stack>.json``; both must exist.

    ``enabled=False`` (``--no-policy``) is refused for staging and prod."""
    short = stack.rsplit("/", 1)[-1]
    required = short in POLICY_REQUIRED_STACKS
    if not enabled:
        if required:
            raise LiveError(
                f"--no-policy is refused for {stack}: staging and prod always run the policy pack"
            )
        return Policy()
    pack, config = root / POLICY_PACK, root / POLICY_CONFIG / f"{short}.json"
    hint = "" if required else "; pass --no-policy to run without it"
    if not (pack / "PulumiPolicy.yaml").is_file():
        raise LiveError(f"no policy pack at {pack} (PulumiPolicy.yaml){hint}")
    if not config.is_file():
        raise LiveError(f"no policy config for {stack} at {config}{hint}")
    venv = policy_venv(pack)
    if venv is not None and (problem := venv_problem(venv)):
        raise LiveError(
            f"the policy pack cannot start: {problem}; the Pulumi CLI does not install a local pack's "
            f"dependencies: python3 -m venv {venv} && {venv}/bin/pip install -r {pack}/requirements.txt"
        )
    return Policy(packs=(str(pack),), configs=(str(config),))


def policy_venv(pack: Path) -> Path | None:
    """The virtualenv the Pulumi CLI starts the pack ``pack`` with, or ``None`` for the ambient
    ``python3`` (or when ``pack`` has no manifest).

    The Python language host runs a policy pack with ``<pack>/<virtualenv>/bin/python -m
    pulumi.policy`` where ``virtualenv`` is the option in PulumiPolicy.yaml; unlike a plugin's, a
    pack's is not defaulted (sdk/python/cmd/pulumi-language-python/main.go, parseOptions)."""
    manifest = pack / "PulumiPolicy.yaml"
    if not manifest.is_file():
        return None
    runtime = (yaml.safe_load(manifest.read_text()) or {}).get("runtime")
    options = (runtime.get("options") if isinstance(runtime, dict) else None) or {}
    virtualenv = options.get("virtualenv")
    return pack / virtualenv if isinstance(virtualenv, str) and virtualenv else None


def venv_problem(venv: Path) -> str | None:
    """Why ``venv`` cannot run a policy pack (its interpreter must import ``pulumi.policy``), or
    ``None`` when it can."""
    python = venv / "bin" / "python"
    if not python.exists():
        return f"{python} does not exist"
    done = subprocess.run(
        [str(python), "-c", "import pulumi.policy"], capture_output=True, text=True, check=False, timeout=120
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return f"{python} cannot import pulumi.policy ({lines[-1] if lines else f'exit {done.returncode}'})"
    return None


def dirty_refusal(root: Path, stack: str, *, allow_dirty: bool) -> str | None:
    """Why ``stack`` may not be deployed from ``root`` as it is, or ``None`` when it may."""
    if allow_dirty or stack.rsplit("/", 1)[-1] not in PROTECTED_STACKS:
        return None
    try:
        files = dirty_files(root)
    except GitError:
        return (
            f"refusing to deploy {stack}: {root} is not a git checkout, so the deployment is not reproducible"
        )
    if not files:
        return None
    shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    return (
        f"refusing to deploy {stack} from a dirty git tree ({shown}): the deployment would not be "
        "reproducible; commit or stash, or pass --allow-dirty"
    )


def summarize(changes: Mapping[Any, int] | None) -> str:
    """``created 1, updated 2, replaced 0, deleted 0, unchanged 40`` from the engine's counts."""
    counts = {str(getattr(op, "value", op)): n for op, n in (changes or {}).items()}
    parts = [f"{word} {counts.get(op, 0)}" for op, word in _SUMMARY]
    return ", ".join([*parts, f"unchanged {counts.get('same', 0)}"])


def open_stack(
    work_dir: Path, stack: str, *, create: bool, env: Mapping[str, str] | None = None
) -> auto.Stack:
    """The stack in a local workspace on ``work_dir`` (the project with its stack files); ``env``
    is added to the environment of every pulumi command (and so of the program it runs)."""
    from pulumi import automation as auto

    opts = auto.LocalWorkspaceOptions(env_vars=dict(env)) if env else None
    try:
        if create:
            return auto.create_or_select_stack(stack_name=stack, work_dir=str(work_dir), opts=opts)
        return auto.select_stack(stack_name=stack, work_dir=str(work_dir), opts=opts)
    except auto.errors.CommandError as err:
        raise failed("stack select", err) from None


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _out(line: str) -> None:
    print(line, flush=True)


def failed(op: str, err: Exception) -> LiveError:
    """A failed pulumi command as one line: the last line it wrote to stderr."""
    # The Automation API's CommandError reads "\n code: N\n stdout: ...\n stderr: ...".
    text = str(err)
    text = text.split("\n stderr: ", 1)[1] if "\n stderr: " in text else text
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return LiveError(f"pulumi {op} failed: {lines[-1] if lines else type(err).__name__}")


def preview(stack: auto.Stack, policy: Policy, *, out: Output = _out, plan: Path | None = None) -> str:
    """Run a preview with the policy pack, streaming the engine's output; return the summary.
    With ``plan``, the engine writes the update plan of this preview there (``--save-plan``)."""
    from pulumi.automation import errors

    try:
        result = stack.preview(
            policy_packs=list(policy.packs) or None,
            policy_pack_configs=list(policy.configs) or None,
            diff=True,
            color="never",
            on_output=out,
            on_error=_err,
            plan=str(plan) if plan is not None else None,
        )
    except errors.CommandError as err:
        raise failed("preview", err) from None
    return summarize(result.change_summary)


def up(
    stack: auto.Stack,
    policy: Policy,
    *,
    message: str | None = None,
    out: Output = _out,
    plan: Path | None = None,
) -> str:
    """Run an update with the policy pack, streaming the engine's output; return the summary.
    With ``plan``, the engine refuses any operation the saved plan does not contain (``--plan``)."""
    from pulumi.automation import errors

    try:
        result = stack.up(
            policy_packs=list(policy.packs) or None,
            policy_pack_configs=list(policy.configs) or None,
            message=message,
            plan=str(plan) if plan is not None else None,
            diff=True,
            color="never",
            on_output=out,
            on_error=_err,
            # The SDK reads the update's summary back from the history, decrypting every secret
            # config value unless told not to; the summary needs none of them.
            show_secrets=False,
        )
    except errors.CommandError as err:
        raise failed("up", err) from None
    return summarize(result.summary.resource_changes)


def deploy(
    work_dir: Path,
    stack_name: str,
    policy: Policy,
    *,
    message: str | None,
    confirm: Callable[[str], bool] | None,
    create: bool,
    out: Output = _out,
    env: Mapping[str, str] | None = None,
) -> str | None:
    """Preview, ask ``confirm`` (not asked when ``None``: ``--yes``), then apply exactly that
    preview's plan; ``None`` when declined. If the program or the stack changed after the preview
    began, nothing is deployed and ``LiveError`` says what changed."""
    stack = open_stack(work_dir, stack_name, create=create, env=env)
    with tempfile.TemporaryDirectory(prefix="vinylhound-plan-") as scratch:
        saved = Path(scratch)
        seen = _bind(work_dir, stack_name, stack)
        summary = preview(stack, policy, out=out, plan=saved / plans.PLAN_FILE)
        out(f"preview of {stack_name}: {summary}")
        if confirm is not None and not confirm(f"Deploy these changes to {stack_name}?"):
            return None
        return apply_plan(work_dir, stack, policy, seen, saved / plans.PLAN_FILE, message=message, out=out)


def apply_plan(
    work_dir: Path,
    stack: auto.Stack,
    policy: Policy,
    seen: plans.Binding,
    plan: Path,
    *,
    message: str | None,
    out: Output = _out,
) -> str:
    """Update ``stack`` with the saved ``plan`` after checking that the program and the stack are
    still what the preview saw (``seen``); ``LiveError`` with the difference otherwise."""
    drift = seen.drift(_bind(work_dir, seen.stack, stack))
    if drift:
        raise LiveError(f"refusing to deploy {seen.stack}: {drift}; preview again")
    return up(stack, policy, message=message, out=out, plan=plan)


def _bind(work_dir: Path, stack_name: str, stack: auto.Stack) -> plans.Binding:
    from pulumi.automation import errors

    try:
        return plans.bind(work_dir, stack_name, stack)
    except errors.CommandError as err:
        raise failed("stack history", err) from None


# --- commands -------------------------------------------------------------------------------------

StackArg = Annotated[str, typer.Argument(metavar="STACK", help="Stack (dev, staging, prod, ...).")]
AllowDirty = Annotated[
    bool,
    typer.Option(
        "--allow-dirty", help="Go ahead on prod with uncommitted changes (the run is then not reproducible)."
    ),
]
UsePolicy = Annotated[
    bool,
    typer.Option(
        "--policy/--no-policy",
        help="Run the policy pack policies/ with its stack config (required for staging and prod).",
    ),
]


def _exit(message: str) -> typer.Exit:
    _err(message)
    return typer.Exit(1)


def _prepare(stack: str, allow_dirty: bool, use_policy: bool) -> tuple[Path, Policy]:
    require_pulumi()
    root = find_root()
    refusal = dirty_refusal(root, stack, allow_dirty=allow_dirty)
    if refusal:
        raise LiveError(refusal)
    return root, policy_for(root, stack, enabled=use_policy)


SavePlan = Annotated[
    Path | None,
    typer.Option(
        "--save-plan",
        metavar="DIR",
        help="Directory to save this preview's plan in; `vinylhound up --plan DIR` applies exactly it.",
    ),
]
UsePlan = Annotated[
    Path | None,
    typer.Option(
        "--plan",
        metavar="DIR",
        help="Apply the plan `vinylhound preview --save-plan DIR` saved, without a new preview; refused "
        "when the stack or the program changed since that preview.",
    ),
]


def preview_command(
    stack: StackArg, allow_dirty: AllowDirty = False, use_policy: UsePolicy = True, save_plan: SavePlan = None
) -> None:
    """Preview a stack through the Automation API with its policy pack (needs the Pulumi CLI)."""
    try:
        root, policy = _prepare(stack, allow_dirty, use_policy)
        opened = open_stack(root, stack, create=True)
        if save_plan is None:
            summary = preview(opened, policy)
        else:
            save_plan.mkdir(mode=0o700, parents=True, exist_ok=True)
            seen = _bind(root, stack, opened)
            summary = preview(opened, policy, plan=save_plan / plans.PLAN_FILE)
            seen.save(save_plan)
    except (LiveError, ProjectError) as err:
        raise _exit(str(err)) from None
    _out(f"{stack}: {summary}")


def up_command(
    stack: StackArg,
    allow_dirty: AllowDirty = False,
    use_policy: UsePolicy = True,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Deploy after the preview without asking.")
    ] = False,
    message: Annotated[
        str | None, typer.Option("--message", "-m", metavar="TEXT", help="Message for the update.")
    ] = None,
    plan: UsePlan = None,
) -> None:
    """Deploy a stack through the Automation API with its policy pack (needs the Pulumi CLI)."""
    try:
        root, policy = _prepare(stack, allow_dirty, use_policy)
        if not yes and not sys.stdin.isatty():
            raise LiveError("not a terminal: pass --yes to deploy without a confirmation")
        confirm = None if yes else typer.confirm
        if plan is None:
            summary = deploy(root, stack, policy, message=message, confirm=confirm, create=True)
        else:
            summary = _apply_saved(root, stack, policy, plan, message=message, confirm=confirm)
    except (LiveError, ProjectError, plans.PlanError) as err:
        raise _exit(str(err)) from None
    _out(f"{stack}: {summary}" if summary is not None else f"{stack}: not deployed")


def _apply_saved(
    root: Path,
    stack: str,
    policy: Policy,
    saved: Path,
    *,
    message: str | None,
    confirm: Callable[[str], bool] | None,
) -> str | None:
    seen = plans.Binding.load(saved)
    if seen.stack != stack:
        raise LiveError(f"refusing to deploy {stack}: the plan in {saved} is for stack {seen.stack}")
    opened = open_stack(root, stack, create=False)
    commit = (seen.commit or "an unknown commit")[:12]
    if confirm is not None and not confirm(f"Deploy the plan previewed at {commit} to {stack}?"):
        return None
    return apply_plan(root, opened, policy, seen, saved / plans.PLAN_FILE, message=message)
