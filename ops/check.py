"""``vinylhound check``: render a stack offline, validate its objects, run the policy pack on it.

1. The stack's program runs offline (``ops.render.run_stack``), config validation included.
2. Every Kubernetes object is validated: core objects against the Kubernetes OpenAPI schemas
   (``ops.schemas``), custom resources against their CRD schemas where a source exists
   (``ops.crds``; the rest are counted as ``unchecked``). Objects found valid before are not
   validated again (``ops.verdicts``); on a first run a process of its own validates while the
   stacks render (``ops.validation``).
3. ``policies/`` runs as its own process and is spoken to over the analyzer gRPC protocol, with the
   stack's ``policies/config/<stack>.json`` resolved the way the CLI resolves it
   (``ops.analyzer``): ``Analyze`` for every registered resource, ``AnalyzeStack`` once.

The verdict fails on any mandatory violation, schema error or config error.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from infra.config import ConfigError
from ops.analyzer import (
    AnalyzerError,
    Diagnostic,
    PolicyPackProcess,
    Resource,
    load_config,
    resolve_config,
)
from ops.mockrun import ProgramError, Run
from ops.output import Output, dump, is_tty, print_table, say
from ops.project import Project, ProjectError, find_root
from ops.render import is_manifest, manifest, run_stack
from ops.schemas import SchemaResult
from ops.validation import InProcess, Pending, ValidationError, ValidationProcess, Validator
from ops.verdicts import ResultCache

PACK_DIR = "policies"
#: Objects found valid by earlier runs (see ``ops.verdicts``); ``make clean`` removes it with the
#: rest of build/.
CACHE_FILE = "build/valid-objects.json"


def config_path(project: Project, stack: str) -> Path:
    """The policy config the CLI would be given for ``stack``."""
    return project.root / PACK_DIR / "config" / f"{stack}.json"


def resources_of(run: Run) -> list[Resource]:
    """Every registered resource, as the engine hands them to analyzers."""
    return [
        Resource(
            urn=r.urn,
            type=r.type,
            name=r.name,
            properties=r.inputs,
            parent=r.parent,
            dependencies=r.dependencies,
        )
        for r in run.registrations
    ]


def validate_schemas(
    objects: Iterable[dict[str, Any]], cache: ResultCache | None = None
) -> list[SchemaResult]:
    """Core objects against the Kubernetes schemas, custom resources against their CRDs (objects
    ``cache`` holds as valid are not validated again)."""
    return _submit(list(objects), cache, InProcess())()


def _submit(objects: list[dict[str, Any]], cache: ResultCache | None, validator: Validator) -> Pending:
    return validator.submit(objects) if cache is None else cache.submit(objects, validator)


def resource_label(urn: str) -> str:
    """``Kind name`` from a URN (``(stack)`` for stack-wide findings)."""
    if not urn:
        return "(stack)"
    head, _, name = urn.rpartition("::")
    kind = head.rsplit("$", 1)[-1].rsplit(":", 1)[-1]
    return f"{kind} {name}"


@dataclass
class StackReport:
    """What ``check`` found for one stack."""

    stack: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    schemas: list[SchemaResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    resources: int = 0
    seconds: float = 0.0

    @property
    def mandatory(self) -> list[Diagnostic]:
        """Violations that block a deployment."""
        return [d for d in self.diagnostics if d.mandatory]

    @property
    def schema_errors(self) -> list[SchemaResult]:
        """Objects that do not fit their schema."""
        return [s for s in self.schemas if s.status == "invalid"]

    @property
    def passed(self) -> bool:
        """No mandatory violation, schema error or config error."""
        return not (self.mandatory or self.schema_errors or self.errors)

    def verdict(self) -> str:
        """One line: pass/fail and the counts behind it."""
        levels = Counter(d.level for d in self.diagnostics)
        statuses = Counter(s.status for s in self.schemas)
        head = "PASS" if self.passed else "FAIL"
        if self.errors:
            return f"{self.stack}: {head}: {len(self.errors)} error(s) before the pack could run"
        return (
            f"{self.stack}: {head}: {levels['mandatory']} mandatory, {levels['advisory']} advisory "
            f"violation(s) over {self.resources} resources; schemas: {statuses['ok']} valid, "
            f"{statuses['invalid']} invalid, {statuses['unchecked']} unchecked ({self.seconds:.1f}s)"
        )

    def to_json(self) -> dict[str, Any]:
        """The machine-readable report."""
        return {
            "stack": self.stack,
            "passed": self.passed,
            "errors": self.errors,
            "resources": self.resources,
            "violations": [
                {
                    "policy": d.policy,
                    "level": d.level,
                    "severity": d.severity,
                    "urn": d.urn,
                    "resource": resource_label(d.urn),
                    "message": d.detail,
                }
                for d in self.diagnostics
            ],
            "schemas": [
                {"kind": s.kind, "name": s.name, "status": s.status, "message": s.message}
                for s in self.schemas
            ],
        }


def check_run(
    run: Run,
    pack: PolicyPackProcess,
    policy_config: dict[str, Any],
    source: str,
    cache: ResultCache | None = None,
) -> StackReport:
    """Validate and analyze an already rendered run."""
    started = time.perf_counter()
    report, schemas = _validated(run, cache, InProcess())
    report.schemas = schemas()
    _analyze(report, run, pack, policy_config, source)
    report.seconds = time.perf_counter() - started
    return report


def _validated(run: Run, cache: ResultCache | None, validator: Validator) -> tuple[StackReport, Pending]:
    """The stack's report, and its objects' schema results once ``validator`` has them."""
    report = StackReport(stack=run.stack, resources=len(run.registrations))
    objects = [manifest(r) for r in run.registrations if is_manifest(r)]
    return report, _submit(objects, cache, validator)


def _analyze(
    report: StackReport, run: Run, pack: PolicyPackProcess, policy_config: dict[str, Any], source: str
) -> None:
    resolved = resolve_config(pack.policies, policy_config, source)
    pack.configure_stack("vinylhound", run.stack)
    report.diagnostics = sorted(
        pack.run(resources_of(run), resolved), key=lambda d: (not d.mandatory, d.policy, d.urn)
    )


def check_stack(
    project: Project, stack: str, pack: PolicyPackProcess, cache: ResultCache | None = None
) -> StackReport:
    """Render ``stack`` offline and check it; config and program errors become report errors."""
    return check_stacks(project, [stack], pack, cache)[0]


def check_stacks(
    project: Project,
    stacks: list[str],
    pack: PolicyPackProcess,
    cache: ResultCache | None = None,
    progress: Callable[[str], None] | None = None,
    validator: Validator | None = None,
) -> list[StackReport]:
    """Check ``stacks`` in order with one pack, started here unless it runs already: its process
    starts before the first stack renders and is connected to once that stack's objects are
    handed to ``validator`` (here, by default), so its interpreter's start (~0.3 s) overlaps the
    render. Schema results are collected once every stack is analysed (a ``ValidationProcess``
    validates them meanwhile). Raises ``AnalyzerError`` if the pack does not start and
    ``ValidationError`` if a validation process fails."""
    pack.spawn()
    validator = validator or InProcess()
    checked = []
    for stack in stacks:
        if progress is not None:
            progress(stack)
        checked.append(_check(project, stack, pack, cache, validator))
    for report, schemas in checked:
        if schemas is not None:
            started = time.perf_counter()
            report.schemas = schemas()
            report.seconds += time.perf_counter() - started
    return [report for report, _ in checked]


def _check(
    project: Project, stack: str, pack: PolicyPackProcess, cache: ResultCache | None, validator: Validator
) -> tuple[StackReport, Pending | None]:
    started = time.perf_counter()
    try:
        path = config_path(project, stack)
        if not path.is_file():
            raise ProjectError(
                f"{path.relative_to(project.root)}: missing; every stack needs a policy config"
            )
        policy_config = load_config(path)
        run = run_stack(project, stack)
    except ConfigError as err:
        return StackReport(stack=stack, errors=err.lines()), None
    except (ProjectError, AnalyzerError, ProgramError) as err:
        return StackReport(stack=stack, errors=str(err).splitlines()), None
    report, schemas = _validated(run, cache, validator)
    pack.connect()  # a pack that does not start fails the whole check
    try:
        _analyze(report, run, pack, policy_config, str(path.relative_to(project.root)))
    except AnalyzerError as err:
        return StackReport(stack=stack, errors=str(err).splitlines()), None
    report.seconds = time.perf_counter() - started
    return report, schemas


def _validator(cache: ResultCache, running: contextlib.ExitStack) -> Validator:
    """Without verdicts kept (a first run, new schema sources) every object is validated and
    every validator built: a process of its own does that on the second core while the stacks
    render. With verdicts, the few objects a change touched are validated here."""
    if cache.valid:
        return InProcess()
    return running.enter_context(ValidationProcess())


def print_report(report: StackReport) -> None:
    """The findings (policy, resource, level, message) and the verdict line: a table on a
    terminal, plain lines otherwise (see ``ops.output``)."""
    for line in report.errors:
        say(line)
    rows = [(d.policy, resource_label(d.urn), d.level, d.detail) for d in report.diagnostics]
    rows += [("schema", f"{s.kind} {s.name}", "mandatory", s.message) for s in report.schema_errors]
    if rows:
        print_table(f"{report.stack}: findings", ("policy", "resource", "level", "message"), rows)
    say(report.verdict())


def check(
    stack: Annotated[
        str | None, typer.Argument(metavar="STACK", help="Stack to check (dev, staging, prod, local).")
    ] = None,
    all_stacks: Annotated[
        bool, typer.Option("--all", help="Check every stack of the project (instead of naming one).")
    ] = False,
    output: Annotated[
        Output,
        typer.Option(
            "--output",
            "-o",
            metavar="FORMAT",
            help="table (findings and verdicts), json or yaml (the full report).",
        ),
    ] = Output.table,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", metavar="FILE", help="Also write the JSON report to FILE ('-': stdout)."),
    ] = None,
) -> None:
    """Render offline, validate every object's schema, run the policy pack.

    Exit status: 0 every stack passed; 1 a mandatory violation, a schema error, a stack that
    cannot be rendered, or a policy pack or validation process that fails; 2 a usage error."""
    if stack is not None and all_stacks:
        raise typer.BadParameter(f"name a stack ({stack}) or pass --all, not both", param_hint="'--all'")
    if output is Output.markdown:
        raise typer.BadParameter("check prints table, json or yaml", param_hint="'--output'")
    if json_out == Path("-"):
        # The older spelling of `-o json`: stdout holds the report and nothing else.
        output, json_out = Output.json, None
    try:
        project = Project(find_root())
        stacks = project.stacks() if all_stacks else [stack] if stack else []
        if not stacks:
            raise ProjectError("name a stack or pass --all")
        if not all_stacks:
            project.stack_path(stacks[0])
        cache = ResultCache(project.root / CACHE_FILE)
        progress = (lambda s: say(f"checking {s} ...", stderr=True)) if all_stacks and is_tty() else None
        with contextlib.ExitStack() as running:
            pack = running.enter_context(contextlib.closing(PolicyPackProcess(project.root / PACK_DIR)))
            reports = check_stacks(project, stacks, pack, cache, progress, _validator(cache, running))
        cache.save()
    except (ProjectError, AnalyzerError, ValidationError) as err:
        say(str(err), stderr=True)
        raise typer.Exit(1) from None
    document = {"stacks": [r.to_json() for r in reports]}
    if output is Output.table:
        for report in reports:
            print_report(report)
    else:
        sys.stdout.write(dump(document, output))
    if json_out is not None:
        json_out.write_text(dump(document, Output.json))
    if not all(r.passed for r in reports):
        raise typer.Exit(1)
