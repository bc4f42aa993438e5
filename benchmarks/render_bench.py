"""How render, check and diff grow with the platform: 0 to 500 synthetic services.

For each count of extra services (copies of catalog-service added to the dev stack, see
``ops/scale.py``) this measures, in one process:

- render: the program under the mock runtime (``ops.mockrun``), per resource on average and per
  resource of the services added since the previous count (a service's objects are larger than
  the base stack's average, so the average rises towards the added cost even when that is flat),
  and its floor: the same resources
  (type, name, inputs) registered as plain, flat ``CustomResource``s under the same runtime, i.e.
  what the Pulumi SDK itself costs;
- check: what ``vinylhound check`` adds to the render: every object against its schema and the
  policy pack (its own process, spoken to over the analyzer protocol) on every resource;
- diff: comparing two records of the platform in which every Deployment changed. ``vinylhound
  diff`` renders its two sides in parallel subprocesses first, so a diff costs one render plus this.

and then ``check --all`` (one pack, four stacks) against rendering the four stacks: as a user runs
it (a fresh process each, imports and first builds included), with the objects' verdicts kept
from the run before (``ops.verdicts``) and without them (a first run, or new schema sources:
every object validated, every validator it needs built), and inside one process (no verdicts).

Times are CPU seconds (this process's threads, plus the policy pack's process for check), the
least of three runs (one run from 100 services on), with the load average printed beside them:
the machine is shared, and other work stretches wall time far more than CPU time. Compare ratios
and per-resource times, and rerun when the load was high. A count whose render takes more than
``--budget`` seconds ends the series.

Run with ``make bench``; ``--write`` replaces the tables in docs/benchmarks.md. A measurement, not
a test: it prints, it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pulumi

from ops.analyzer import PolicyPackProcess, load_config
from ops.check import CACHE_FILE, PACK_DIR, check_run, check_stack, config_path
from ops.diff import compare
from ops.mockrun import Registration, run_offline
from ops.project import Project
from ops.render import run_stack
from ops.scale import Synthetic, changed_records

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
COUNTS = (0, 50, 100, 250, 500)
STACK = "dev"


#: The policy pack's process, whose CPU time counts towards ``check`` (set once it runs).
PACK_PID: int | None = None


def _cpu() -> float:
    """CPU seconds used so far by this process (every thread) and the policy pack's process."""
    used = time.process_time()
    if PACK_PID is not None:
        # /proc/PID/stat: utime and stime, in clock ticks, are fields 14 and 15.
        fields = Path(f"/proc/{PACK_PID}/stat").read_text().rsplit(")", 1)[1].split()
        used += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


def _timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Least CPU time of ``repeats`` calls, and the last result. CPU time rather than wall time:
    the machine is shared, and other work stretches wall time far more than CPU time."""
    best, result = float("inf"), None
    for _ in range(repeats):
        started = _cpu()
        result = fn()
        best = min(best, _cpu() - started)
    return best, result


def _floor(registrations: list[Registration], repeats: int) -> float:
    def plain_resources() -> None:
        for r in registrations:
            pulumi.CustomResource(r.type, r.name, dict(r.inputs))

    seconds, _ = _timed(
        lambda: run_offline(plain_resources, project="vinylhound", stack="floor", config={}, secret_keys=[]),
        repeats,
    )
    return seconds


@dataclass(frozen=True)
class Row:
    """One count of synthetic services, measured."""

    services: int
    resources: int
    render: float
    floor: float
    check: float
    diff: float
    load: float

    def cells(self, base: Row, previous: Row | None, first_step: float | None) -> list[str]:
        per = self.render / self.resources
        step = self.step(previous)
        return [
            f"+{self.services}",
            str(self.resources),
            f"{self.render:.2f} s",
            f"{per * 1e3:.2f} ms",
            f"{per / (base.render / base.resources):.2f}",
            "" if step is None else f"{step * 1e3:.2f} ms",
            "" if step is None or not first_step else f"{step / first_step:.2f}",
            f"{self.render / self.floor:.2f}",
            f"{(self.render + self.check) / self.render:.2f}",
            f"{self.diff * 1e3:.0f} ms",
            f"{self.load:.1f}",
        ]

    def step(self, previous: Row | None) -> float | None:
        """Render time per resource the services added since ``previous`` cost. Unlike the
        average it leaves out the base stack, whose resources are smaller than a service's."""
        if previous is None or self.resources == previous.resources:
            return None
        return (self.render - previous.render) / (self.resources - previous.resources)


HEADER = [
    "services",
    "resources",
    "render",
    "per resource",
    "vs +0",
    "added services, per resource",
    "vs first step",
    "render / floor",
    "check / render",
    "diff (compare)",
    "load",
]


def measure(project: Project, pack: PolicyPackProcess, count: int) -> Row:
    """Render, floor, check and diff for ``count`` synthetic services."""
    repeats = 3 if count < 100 else 1
    synthetic = Synthetic(project, STACK, count)
    render, run = _timed(synthetic.run, repeats)
    floor = _floor(run.registrations, repeats)
    path = config_path(project, STACK)
    policy_config = load_config(path)
    check, report = _timed(lambda: check_run(run, pack, policy_config, str(path)), repeats)
    if report.errors or report.schema_errors:
        raise SystemExit(f"+{count}: the synthetic platform does not pass its schemas: {report.verdict()}")
    base, head = [r.record() for r in run.registrations], changed_records(run)
    diff, _ = _timed(lambda: compare(STACK, base, head), repeats)
    return Row(count, len(run.registrations), render, floor, check, diff, os.getloadavg()[0])


def check_all(project: Project, pack: PolicyPackProcess) -> tuple[float, float, float]:
    """``check --all`` (one pack, every stack) and rendering every stack: best of three each."""
    stacks = project.stacks()
    render, _ = _timed(lambda: [run_stack(project, s) for s in stacks], 3)
    check, _ = _timed(lambda: [check_stack(project, s, pack) for s in stacks], 3)
    return render, check, os.getloadavg()[0]


#: Every stack rendered by a fresh process, as ``check --all`` renders them (without its checks).
RENDER_ALL = (
    "from ops.project import Project, find_root\n"
    "from ops.render import run_stack\n"
    "project = Project(find_root())\n"
    "for stack in project.stacks():\n"
    "    run_stack(project, stack)\n"
)


def _process_cpu(argv: list[str]) -> float:
    """CPU seconds of a fresh process and the processes it waited for (the pack's, for check)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def check_all_cold(cached: bool) -> tuple[float, float, float]:
    """``vinylhound check --all`` and rendering every stack, each a fresh process as a user runs
    it (imports, the pack's start included): best of three. ``cached``: the objects' verdicts are
    those of the run before; otherwise none, so every validator used is built."""
    render = min(_process_cpu([sys.executable, "-c", RENDER_ALL]) for _ in range(3))
    command = [str(Path(sys.executable).with_name("vinylhound")), "check", "--all", "-o", "json"]
    if cached:
        _process_cpu(command)  # unmeasured: writes the verdicts of the current objects
    checks = []
    for _ in range(3):
        if not cached:
            (ROOT / CACHE_FILE).unlink(missing_ok=True)
        checks.append(_process_cpu(command))
    return render, min(checks), os.getloadavg()[0]


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)])


def _write(section: str, table: str) -> None:
    """Replace the table between ``<!-- bench:SECTION -->`` markers in docs/benchmarks.md."""
    text = DOCS.read_text()
    pattern = re.compile(rf"(<!-- bench:{section} -->\n).*?(\n<!-- /bench:{section} -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{DOCS}: no <!-- bench:{section} --> markers")
    DOCS.write_text(pattern.sub(lambda m: m.group(1) + table + m.group(2), text))


def main() -> None:
    """Measure, print, and with ``--write`` update docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--counts", type=int, nargs="*", default=list(COUNTS), help="none: only the check --all table"
    )
    parser.add_argument("--budget", type=float, default=120.0, help="stop after a render this long (s)")
    parser.add_argument("--write", action="store_true", help="update the tables in docs/benchmarks.md")
    args = parser.parse_args()
    project = Project(ROOT)
    rows: list[Row] = []
    global PACK_PID
    cached, cold = check_all_cold(cached=True), check_all_cold(cached=False)
    with PolicyPackProcess(ROOT / PACK_DIR) as pack:
        PACK_PID = pack.pid
        warm = check_all(project, pack)
        everything = _table(
            ["", "render every stack", "check --all", "ratio", "load"],
            [
                [label, f"{render:.2f} s", f"{check:.2f} s", f"{check / render:.2f}", f"{load:.1f}"]
                for label, (render, check, load) in (
                    ("fresh process, verdicts kept", cached),
                    ("fresh process, first run", cold),
                    ("in one process", warm),
                )
            ],
        )
        print(everything, flush=True)
        if args.write:
            _write("all", everything)
        for count in args.counts:
            row = measure(project, pack, count)
            rows.append(row)
            # Written after every count: a long series cut short keeps what it measured.
            first_step = rows[1].step(rows[0]) if len(rows) > 1 else None
            cells = [r.cells(rows[0], rows[i - 1] if i else None, first_step) for i, r in enumerate(rows)]
            scale = _table(HEADER, cells)
            print(" | ".join(cells[-1]), flush=True)
            if args.write:
                _write("scale", scale)
            if row.render > args.budget:
                print(f"stopping: +{count} rendered in {row.render:.0f} s (budget {args.budget:.0f} s)")
                break


if __name__ == "__main__":
    main()
