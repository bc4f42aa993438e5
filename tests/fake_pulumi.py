"""A FAKE ``pulumi`` executable, as strict as the real CLI where this project depends on it.

It deploys nothing and runs no program. It records how it is called, keeps per-stack state in a
directory, and refuses what the real CLI (pulumi/pulumi at 1b5949891b, the sources cited at each
rule) refuses, so that the live path's tests fail where a real run would:

- the project is found by walking up from the working directory to ``Pulumi.yaml``, and the stack's
  config at ``<project>/<stackConfigDir>/Pulumi.<stack>.yaml``;
- stacks must exist to be selected; ``stack init`` creates them;
- a local policy pack is STARTED (its ``PulumiPolicy.yaml`` loaded, its toolchain resolved, and its
  interpreter made to import ``pulumi.policy``); the CLI never installs a local pack's dependencies;
- ``preview --save-plan`` writes a plan, and ``up --plan`` fails when the program or the stack's
  state differs from what the plan was made from;
- ``stack history`` pages (10 entries unless told), and shows secret config values only with
  ``--show-secrets``.

Installed as ``pulumi`` on PATH by ``tests/fakes.py``. Environment:

- ``FAKE_PULUMI_LOG``: JSON lines, one per call (argv, cwd, checked-out commit, PYTHONPATH, the
  stack file it read and that file's sha256);
- ``FAKE_PULUMI_STATE``: a directory; ``<stack>.json`` there is a stack's history, newest first,
  in the shape of ``pulumi stack history --json --show-secrets``; no file, no stack;
- ``FAKE_PULUMI_FAIL``: a command name (``up``, ``preview``) that fails with an error on stderr.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

#: The engine's counts every preview and update of the fake reports.
CHANGES = {"create": 1, "update": 2, "replace": 1, "delete": 0, "same": 30}
#: Newer CLIs stream engine events over gRPC; at or below 3.205 the SDK reads a file (simpler to fake).
VERSION = "v3.200.0"
#: pkg/cmd/pulumi/stack/stack_history.go: `--page-size` defaults to 10, `--page` to 1.
HISTORY_PAGE_SIZE = 10
#: sdk/python/toolchain: the toolchains the Python language host knows (parseOptions, main.go).
TOOLCHAINS = ("pip", "poetry", "uv")
#: Files the program does not read: left out of the fingerprint a plan is bound to.
_NOT_PROGRAM = {".git", ".venv", "venv", "build", "__pycache__", ".mypy_cache", ".ruff_cache"}


class CliError(Exception):
    """What the real CLI would print as ``error: ...`` before exiting 255."""


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def _options(argv: list[str], name: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == name]


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else ""


# --- project and stack files ---------------------------------------------------------------------


def find_project(start: Path) -> Path:
    """sdk/go/common/workspace/paths.go DetectProjectPathFrom: the closest Pulumi.yaml upwards."""
    for directory in (start, *start.parents):
        if (directory / "Pulumi.yaml").is_file():
            return directory / "Pulumi.yaml"
    raise CliError(f"no Pulumi.yaml project file found (searching upwards from {start})")


def stack_file(project_file: Path, stack: str) -> Path:
    """paths.go ProjectStackPath: ``Pulumi.<stack>.yaml`` in ``stackConfigDir`` (or beside
    Pulumi.yaml); the stack part of a fully qualified ``org/project/stack`` names the file."""
    project = yaml.safe_load(project_file.read_text()) or {}
    config_dir = project.get("stackConfigDir") or ""
    return project_file.parent / config_dir / f"Pulumi.{stack.rsplit('/', 1)[-1]}.yaml"


def stack_config(path: Path) -> dict[str, Any]:
    """The stack's config. A missing file is empty config to the CLI (pkg/cmd/pulumi/stack/io.go);
    THIS program (infra/config.py) then fails on the missing ``vinylhound:platform``, as the fake does."""
    config = ((yaml.safe_load(path.read_text()) if path.is_file() else None) or {}).get("config") or {}
    if "vinylhound:platform" not in config:
        raise CliError(f"the program needs vinylhound:platform in {path} (infra/config.py)")
    return dict(config)


def program_fingerprint(project_dir: Path) -> str:
    """sha256 over every file the program could read (sources, Pulumi.yaml, stack files)."""
    digest = hashlib.sha256()
    for path in sorted(project_dir.rglob("*")):
        parts = set(path.relative_to(project_dir).parts)
        if path.is_file() and not parts & _NOT_PROGRAM:
            digest.update(str(path.relative_to(project_dir)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


# --- stacks ---------------------------------------------------------------------------------------


def _state_file(stack: str) -> Path:
    return Path(os.environ["FAKE_PULUMI_STATE"]) / (stack.replace("/", "__") + ".json")


def load_history(stack: str) -> list[dict[str, Any]]:
    """The stack's history, newest first; pkg/backend/backenderr/backenderr.go names the error
    (the automation SDK matches ``no stack named.*found`` to raise StackNotFoundError)."""
    path = _state_file(stack)
    if not path.is_file():
        raise CliError(f"no stack named '{stack}' found")
    history: list[dict[str, Any]] = json.loads(path.read_text())
    return history


def history_page(history: list[dict[str, Any]], argv: list[str], show_secrets: bool) -> list[dict[str, Any]]:
    """pkg/cmd/pulumi/stack/stack_history.go and pkg/backend/diy/state.go getHistory: one page
    (default 10); buildUpdatesJSON leaves a secret's value out unless ``--show-secrets``."""
    size = int(_option(argv, "--page-size") or HISTORY_PAGE_SIZE)
    page = max(int(_option(argv, "--page") or 1), 1)
    entries = history[(page - 1) * size : page * size] if size > 0 else history
    if show_secrets:
        return entries
    return [
        entry
        | {
            "config": {
                key: ({"secret": True} if value.get("secret") else value)
                for key, value in entry.get("config", {}).items()
            }
        }
        for entry in entries
    ]


# --- policy packs ---------------------------------------------------------------------------------


def start_policy_pack(pack: Path) -> None:
    """Start a local policy pack as the CLI does, far enough to know it would run.

    - pkg/resource/plugin/analyzer_plugin.go NewPolicyAnalyzer: load ``<pack>/PulumiPolicy.yaml``
      (sdk/go/common/workspace/loaders.go LoadPolicyPack; project.go Validate: ``runtime`` required);
    - pkg/engine/update.go: local packs are loaded as they are; only packs required by the service
      are installed (pkg/backend/httpstate/policypack.go installRequiredPolicy);
    - sdk/python/cmd/pulumi-language-python/main.go RunPlugin + parseOptions: for an analyzer the
      ``virtualenv`` option is NOT defaulted to ``venv`` (isPlugin is false), so without it the
      ambient ``python3`` runs the pack; sdk/python/toolchain/pip.go Command: with it,
      ``<pack>/<virtualenv>/bin/python -u -m pulumi.policy <engine> <pack>``, cwd ``<pack>``.
    """
    manifest = pack / "PulumiPolicy.yaml"
    name = str(pack.resolve())
    if not manifest.is_file():
        raise CliError(
            f'failed to load Pulumi policy project located at "{pack}": open {manifest}: '
            "no such file or directory"
        )
    data = yaml.safe_load(manifest.read_text()) or {}
    runtime = data.get("runtime")
    runtime_name = runtime.get("name") if isinstance(runtime, dict) else runtime
    if not runtime_name:
        raise CliError(
            f'failed to load Pulumi policy project located at "{pack}": '
            "project is missing a 'runtime' attribute"
        )
    options = (runtime.get("options") if isinstance(runtime, dict) else None) or {}
    toolchain, virtualenv = options.get("toolchain", "pip"), options.get("virtualenv", "")
    if toolchain not in TOOLCHAINS:
        raise CliError(f'policy pack "{name}" failed to start: unsupported toolchain option: {toolchain}')
    if toolchain != "pip":
        raise CliError(f"the fake models the pip toolchain only, not {toolchain}")
    if not isinstance(virtualenv, str):
        raise CliError(f'policy pack "{name}" failed to start: virtualenv option must be a string')
    venv = (pack / virtualenv) if virtualenv else None
    python = str(venv / "bin" / "python") if venv else (shutil.which("python3") or "python3")
    env = dict(os.environ)
    if venv:  # toolchain.ActivateVirtualEnv
        env |= {"VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"}
    env.pop("PYTHONPATH", None)
    try:
        done = subprocess.run(
            [python, "-c", "import pulumi.policy"],
            cwd=pack,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        raise CliError(
            f'policy pack "{name}" failed to start: fork/exec {python}: no such file or directory'
        ) from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["exit status 1"])[-1]
        raise CliError(f'policy pack "{name}" failed to start: {last}')


def check_policy_configs(argv: list[str]) -> None:
    """pkg/engine/update.go MakeLocalPolicyPacks pairs configs with packs by position;
    LoadPolicyPackConfigAndEnvironmentsFromFile reads each as JSON."""
    packs, configs = _options(argv, "--policy-pack"), _options(argv, "--policy-pack-config")
    if len(configs) > len(packs):
        raise CliError("the number of '--policy-pack-config' flags exceeds the '--policy-pack' flags")
    for config in configs:
        try:
            json.loads(Path(config).read_text())
        except (OSError, ValueError) as err:
            raise CliError(f"loading policy pack config {config}: {err}") from None


# --- preview and up -------------------------------------------------------------------------------


def _events(path: str) -> None:
    with open(path, "a", encoding="utf-8") as log:
        log.write(
            json.dumps({"sequence": 1, "timestamp": 0, "summaryEvent": {"resourceChanges": CHANGES}}) + "\n"
        )
        log.write(json.dumps({"sequence": 2, "timestamp": 0, "cancelEvent": {}}) + "\n")


def _binding(project_dir: Path, history: list[dict[str, Any]]) -> dict[str, Any]:
    # What a real plan's resource goals follow from: the program and the stack's last state.
    return {
        "program": program_fingerprint(project_dir),
        "stateVersion": max((h["version"] for h in history), default=0),
    }


def save_plan(path: str, project_dir: Path, history: list[dict[str, Any]]) -> None:
    """pkg/cmd/pulumi/operations/preview.go --save-plan writes the plan after a successful preview.
    The fake's plan holds, instead of resource goals, what they are computed from."""
    plan = {"manifest": {"version": VERSION}, "resourcePlans": {}, "fake": _binding(project_dir, history)}
    Path(path).write_text(json.dumps(plan))


def check_plan(path: str, project_dir: Path, history: list[dict[str, Any]]) -> None:
    """pkg/cmd/pulumi/plan/plan.go Read, then pkg/resource/deploy/step_generator.go: a resource whose
    goal differs from its plan fails the update (``resource <urn> violates plan: ...``). A changed
    program changes goals; a changed state changes the diffs the plan recorded."""
    try:
        planned = json.loads(Path(path).read_text())["fake"]
    except OSError:
        raise CliError(f"open {path}: no such file or directory") from None
    now = _binding(project_dir, history)
    if planned["program"] != now["program"]:
        raise CliError("resource violates plan: the program's goals differ from the plan (program changed)")
    if planned["stateVersion"] != now["stateVersion"]:
        raise CliError(
            f"resource violates plan: the stack's state changed since the plan "
            f"(v{planned['stateVersion']} -> v{now['stateVersion']})"
        )


def record_update(stack: str, history: list[dict[str, Any]], config: dict[str, Any], message: str) -> None:
    """Append the update as the CLI records it (environment git.head/git.dirty: pkg/backend/metadata)."""
    status = _git("status", "--porcelain", "--untracked-files=all")
    entry = {
        "version": max((h["version"] for h in history), default=0) + 1,
        "kind": "update",
        "startTime": "2026-11-25T12:00:00.000Z",
        "message": message,
        "environment": {"git.head": _git("rev-parse", "HEAD"), "git.dirty": str(bool(status)).lower()},
        "config": {
            key: (
                {"value": "<decrypted>", "secret": True}
                if isinstance(value, dict) and "secure" in value
                else {"value": json.dumps(value), "secret": False}
            )
            for key, value in config.items()
        },
        "result": "succeeded",
        "endTime": "2026-11-25T12:01:00.000Z",
        "resourceChanges": CHANGES,
    }
    _state_file(stack).write_text(json.dumps([entry, *history]))


def operation(command: str, args: list[str], stack: str) -> None:
    """``preview`` or ``up`` on ``stack`` from the working directory."""
    project_file = find_project(Path.cwd())
    config = stack_config(stack_file(project_file, stack))
    history = load_history(stack)
    check_policy_configs(args)
    for pack in _options(args, "--policy-pack"):
        start_policy_pack(Path(pack))
    if command == "up" and (plan := _option(args, "--plan")) is not None:
        check_plan(plan, project_file.parent, history)
    print(f"fake {command} of stack {stack}")
    if (event_log := _option(args, "--event-log")) is not None:
        _events(event_log)
    if command == "preview" and (plan := _option(args, "--save-plan")) is not None:
        save_plan(plan, project_file.parent, history)
    if command == "up":
        record_update(stack, history, config, _option(args, "--message") or "")


def _log(argv: list[str], stack: str | None) -> None:
    log = os.environ.get("FAKE_PULUMI_LOG")
    if not log:
        return
    record: dict[str, Any] = {
        "argv": argv,
        "cwd": os.getcwd(),
        "head": _git("rev-parse", "HEAD") or None,
        "pythonpath": os.environ.get("PYTHONPATH"),
    }
    if stack and [a for a in argv if a != "--non-interactive"][:1] in (["preview"], ["up"]):
        try:
            path = stack_file(find_project(Path.cwd()), stack)
            record["stackFile"] = str(path)
            record["stackFileSha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        except (CliError, OSError):
            pass
    with open(log, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


def run(args: list[str]) -> None:
    """Answer one command (``--non-interactive`` already removed)."""
    stack = _option(args, "--stack")
    command = args[0] if args else ""
    if command == os.environ.get("FAKE_PULUMI_FAIL"):
        raise CliError(f"the fake pulumi was told to fail {command}")
    if command == "version":
        print(VERSION)
    elif args[:2] == ["stack", "init"]:
        name = args[2]
        if _state_file(name).exists():
            raise CliError(f"stack '{name}' already exists")
        _state_file(name).write_text("[]")
    elif args[:2] == ["stack", "select"]:
        load_history(stack or "")
    elif args[:2] == ["stack", "history"]:
        history = load_history(stack or "")
        print(json.dumps(history_page(history, args, "--show-secrets" in args)))
    elif args[:2] == ["stack", "output"]:
        load_history(stack or "")
        print("{}")
    elif command in ("preview", "up") and stack:
        operation(command, args, stack)
    else:
        raise CliError(f"the fake does not model `pulumi {' '.join(args)}`")


def main(argv: list[str]) -> int:
    """Answer one invocation as the CLI would: output, or ``error: ...`` on stderr and exit 255."""
    args = [a for a in argv if a != "--non-interactive"]
    _log(argv, _option(args, "--stack"))
    try:
        run(args)
    except CliError as err:
        print(f"error: {err}", file=sys.stderr)
        return 255
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
