"""Render against its floor in instructions: what an added service costs, counted by valgrind.

``make bench`` reports CPU seconds, and this machine's speed drifts by tens of percent between
runs a minute apart: the same pair of runs at +250 services read 0.88 and 1.22 for render / floor
in one process minutes apart. Instructions do not drift. cachegrind (``--cache-sim=no``: it only
counts) runs each measurement in a process of its own:

- ``warm``: one render of the dev stack with N synthetic services (``ops/scale.py``) and one floor
  (the same resources as plain, flat ``CustomResource``s, see render_bench.py), so every import,
  cache and first build is paid;
- ``render``: the same, then one more render; ``floor``: the same, then one more floor.

A render costs ``render - warm`` instructions and its floor ``floor - warm``. From the base stack
(+0) to +N, the step is what N services cost; render / floor of the step is the ratio per added
service, and +500 is projected as the base plus 500/N steps (instructions per service are constant:
the two steps of the default counts, +0 to +10 and +10 to +20, are printed to show it).

Needs valgrind (``apt-get install valgrind``); takes ~7 minutes for the default counts on an idle
2-core machine (valgrind runs Python ~50x slower). ``make bench-instructions``; ``--write``
replaces its table in docs/benchmarks.md. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
COUNTS = (0, 10, 20)
PROJECTED = 500
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def child(count: int, mode: str) -> None:
    """One measured process: warm up, then one more render or floor (``mode``), or nothing."""
    from benchmarks.render_bench import _floor
    from ops.project import Project
    from ops.scale import Synthetic

    synthetic = Synthetic(Project(ROOT), "dev", count)
    run = synthetic.run()
    _floor(run.registrations)
    gc.collect()
    if mode == "render":
        synthetic.run()
    elif mode == "floor":
        _floor(run.registrations)


def instructions(count: int, mode: str) -> int:
    """Instructions executed by a child process of ``mode`` at ``count`` services."""
    done = subprocess.run(
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--child",
            str(count),
            mode,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    found = _REFS.search(done.stderr)
    if done.returncode != 0 or found is None:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise SystemExit(f"valgrind run of +{count} {mode} failed (exit {done.returncode}):\n{tail}")
    return int(found.group(1).replace(",", ""))


def measure(count: int) -> tuple[int, int]:
    """Instructions of one render and of one floor at ``count`` services."""
    warm = instructions(count, "warm")
    render, floor = instructions(count, "render"), instructions(count, "floor")
    print(f"+{count}: render {render - warm:,} floor {floor - warm:,}", file=sys.stderr, flush=True)
    return render - warm, floor - warm


def _g(value: float) -> str:
    return f"{value / 1e9:.2f} G"


def _m(value: float) -> str:
    return f"{value / 1e6:.0f} M"


def table(counts: list[int], measured: list[tuple[int, int]]) -> str:
    """The base stack, each step, and +500 projected from the mean step per service."""
    base_render, base_floor = measured[0]
    rows = [["+0 (base stack)", _g(base_render), _g(base_floor), f"{base_render / base_floor:.2f}"]]
    per_render, per_floor = [], []
    for (before, (r0, f0)), (after, (r1, f1)) in itertools.pairwise(zip(counts, measured, strict=True)):
        per_render.append((r1 - r0) / (after - before))
        per_floor.append((f1 - f0) / (after - before))
        ratio = f"{(r1 - r0) / (f1 - f0):.2f}"
        rows.append([f"+{before} to +{after}, per service", _m(per_render[-1]), _m(per_floor[-1]), ratio])
    mean_render, mean_floor = sum(per_render) / len(per_render), sum(per_floor) / len(per_floor)
    render, floor = base_render + PROJECTED * mean_render, base_floor + PROJECTED * mean_floor
    rows.append([f"+{PROJECTED}, projected", _g(render), _g(floor), f"{render / floor:.2f}"])
    lines = ["| | render | floor | render / floor |", "|---|---|---|---|"]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)])


def main() -> None:
    """Measure, print, and with ``--write`` update docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=list(COUNTS), help="first one is the base")
    parser.add_argument("--write", action="store_true", help="update the table in docs/benchmarks.md")
    parser.add_argument("--child", nargs=2, metavar=("COUNT", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(int(args.child[0]), args.child[1])
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install valgrind")
    if len(args.counts) < 2 or sorted(set(args.counts)) != args.counts:
        raise SystemExit("--counts: at least two counts, increasing")
    result = table(args.counts, [measure(count) for count in args.counts])
    print(result)
    if args.write:
        from benchmarks.render_bench import _write

        _write("instructions", result)


if __name__ == "__main__":
    main()
