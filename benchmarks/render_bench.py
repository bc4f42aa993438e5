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

Times are CPU seconds (this process's threads, plus the policy pack's process for check). The
machine is shared and its speed drifts by tens of percent from one minute to the next, so every
ratio is taken between runs made one right after the other, and the median of those pairs is
reported: ``vs +0`` pairs each render with a render of the base stack (+0) just before it,
``render / floor`` each render with its floor just after it, ``check / render`` each render with
its check, and ``check --all`` each fresh ``check --all`` with a fresh render of every stack just
before it. ``check --all`` is also given as wall time: the pack's process starts while the first
stack renders, on a second core, so the CPU ratio is the work and the wall ratio what a user
waits. Every count runs the same number of pairs (``--pairs``, 3), so the ends of a series are
measured alike. A count whose render takes more than ``--budget`` seconds ends the series.

Run with ``make bench``; ``--write`` replaces the tables in docs/benchmarks.md. A measurement, not
a test: it prints, it asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import resource
import statistics
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
from ops.check import CACHE_FILE, PACK_DIR, check_run, check_stacks, config_path
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


def _cpu_of(fn: Callable[[], Any]) -> tuple[float, Any]:
    """CPU seconds one call of ``fn`` took, and its result. What earlier runs left for the
    collector is collected first, so no run pays for the one before it."""
    gc.collect()
    started = _cpu()
    result = fn()
    return _cpu() - started, result


def _floor(registrations: list[Registration]) -> float:
    def plain_resources() -> None:
        for r in registrations:
            pulumi.CustomResource(r.type, r.name, dict(r.inputs))

    seconds, _ = _cpu_of(
        lambda: run_offline(plain_resources, project="vinylhound", stack="floor", config={}, secret_keys=[])
    )
    return seconds


@dataclass(frozen=True)
class Row:
    """One count of synthetic services, measured: medians over pairs of adjacent runs."""

    services: int
    resources: int
    #: Median render time, and the median per-resource time against +0's (each render paired
    #: with a render of the base stack just before it).
    render: float
    vs_base: float
    #: Medians of render / floor and (render + check) / render, pair by pair.
    floor_ratio: float
    check_ratio: float
    diff: float
    load: float

    def cells(self, previous: Row | None, first_step: float | None) -> list[str]:
        step = self.step(previous)
        return [
            f"+{self.services}",
            str(self.resources),
            f"{self.render:.2f} s",
            f"{self.render / self.resources * 1e3:.2f} ms",
            f"{self.vs_base:.2f}",
            "" if step is None else f"{step * 1e3:.2f} ms",
            "" if step is None or not first_step else f"{step / first_step:.2f}",
            f"{self.floor_ratio:.2f}",
            f"{self.check_ratio:.2f}",
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


def measure(project: Project, pack: PolicyPackProcess, count: int, pairs: int) -> Row:
    """Render, floor, check and diff for ``count`` synthetic services, ``pairs`` times."""
    base = Synthetic(project, STACK, 0)
    synthetic = Synthetic(project, STACK, count)
    path = config_path(project, STACK)
    policy_config = load_config(path)
    renders, vs_base, floors, checks = [], [], [], []
    for _ in range(pairs):
        base_seconds, base_run = _cpu_of(base.run)
        seconds, run = _cpu_of(synthetic.run)
        renders.append(seconds)
        vs_base.append((seconds / len(run.registrations)) / (base_seconds / len(base_run.registrations)))
        floors.append(seconds / _floor(run.registrations))
        check, report = _cpu_of(lambda: check_run(run, pack, policy_config, str(path)))  # noqa: B023
        if report.errors or report.schema_errors:
            raise SystemExit(f"+{count}: the synthetic platform fails its check: {report.verdict()}")
        checks.append((seconds + check) / seconds)
    base_records, head = [r.record() for r in run.registrations], changed_records(run)
    diff = min(_cpu_of(lambda: compare(STACK, base_records, head))[0] for _ in range(pairs))
    return Row(
        count,
        len(run.registrations),
        statistics.median(renders),
        statistics.median(vs_base),
        statistics.median(floors),
        statistics.median(checks),
        diff,
        os.getloadavg()[0],
    )


@dataclass(frozen=True)
class Timing:
    """CPU and wall seconds of one run."""

    cpu: float
    wall: float


def _timing(fn: Callable[[], Any]) -> Timing:
    wall = time.perf_counter()
    cpu, _ = _cpu_of(fn)
    return Timing(cpu, time.perf_counter() - wall)


@dataclass(frozen=True)
class AllStacks:
    """``check --all`` against rendering every stack: medians over pairs of adjacent runs."""

    render: float
    check: float
    cpu_ratio: float
    wall_ratio: float
    load: float

    @classmethod
    def of(cls, pairs: list[tuple[Timing, Timing]]) -> AllStacks:
        return cls(
            statistics.median(r.cpu for r, _ in pairs),
            statistics.median(c.cpu for _, c in pairs),
            statistics.median(c.cpu / r.cpu for r, c in pairs),
            statistics.median(c.wall / r.wall for r, c in pairs),
            os.getloadavg()[0],
        )

    def cells(self, label: str) -> list[str]:
        return [
            label,
            f"{self.render:.2f} s",
            f"{self.check:.2f} s",
            f"{self.cpu_ratio:.2f}",
            f"{self.wall_ratio:.2f}",
            f"{self.load:.1f}",
        ]


def check_all(project: Project, pack: PolicyPackProcess, pairs: int) -> AllStacks:
    """``check --all`` (one pack, every stack) after rendering every stack, in this process."""
    stacks = project.stacks()
    return AllStacks.of(
        [
            (
                _timing(lambda: [run_stack(project, s) for s in stacks]),
                _timing(lambda: check_stacks(project, stacks, pack)),
            )
            for _ in range(pairs)
        ]
    )


#: Every stack rendered by a fresh process, as ``check --all`` renders them (without its checks).
RENDER_ALL = (
    "from ops.project import Project, find_root\n"
    "from ops.render import run_stack\n"
    "project = Project(find_root())\n"
    "for stack in project.stacks():\n"
    "    run_stack(project, stack)\n"
)


def _process(argv: list[str]) -> Timing:
    """CPU seconds of a fresh process and the processes it waited for (the pack's, for check),
    and its wall time."""
    before, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, check=True)
    after, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter() - wall
    return Timing((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), wall)


def check_all_cold(cached: bool, pairs: int) -> AllStacks:
    """``vinylhound check --all`` and rendering every stack, each a fresh process as a user runs
    it (imports, the pack's start included), one right after the other. ``cached``: the objects'
    verdicts are those of the run before; otherwise none, so every validator used is built."""
    command = [str(Path(sys.executable).with_name("vinylhound")), "check", "--all", "-o", "json"]
    if cached:
        _process(command)  # unmeasured: writes the verdicts of the current objects
    measured = []
    for _ in range(pairs):
        render = _process([sys.executable, "-c", RENDER_ALL])
        if not cached:
            (ROOT / CACHE_FILE).unlink(missing_ok=True)
        measured.append((render, _process(command)))
    return AllStacks.of(measured)


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
    parser.add_argument("--pairs", type=int, default=3, help="pairs of adjacent runs per measurement")
    parser.add_argument("--write", action="store_true", help="update the tables in docs/benchmarks.md")
    args = parser.parse_args()
    project = Project(ROOT)
    rows: list[Row] = []
    global PACK_PID
    cached, cold = check_all_cold(True, args.pairs + 2), check_all_cold(False, args.pairs + 2)
    with PolicyPackProcess(ROOT / PACK_DIR) as pack:
        PACK_PID = pack.pid
        warm = check_all(project, pack, args.pairs + 2)
        everything = _table(
            ["", "render every stack (CPU)", "check --all (CPU)", "ratio, CPU", "ratio, wall", "load"],
            [
                cached.cells("fresh process, verdicts kept"),
                cold.cells("fresh process, first run"),
                warm.cells("in one process"),
            ],
        )
        print(everything, flush=True)
        if args.write:
            _write("all", everything)
        for count in args.counts:
            row = measure(project, pack, count, args.pairs)
            rows.append(row)
            # Written after every count: a long series cut short keeps what it measured.
            first_step = rows[1].step(rows[0]) if len(rows) > 1 else None
            cells = [r.cells(rows[i - 1] if i else None, first_step) for i, r in enumerate(rows)]
            scale = _table(HEADER, cells)
            print(" | ".join(cells[-1]), flush=True)
            if args.write:
                _write("scale", scale)
            if row.render > args.budget:
                print(f"stopping: +{count} rendered in {row.render:.0f} s (budget {args.budget:.0f} s)")
                break


if __name__ == "__main__":
    main()
