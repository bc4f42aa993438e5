"""``vinylhound render``: the stack's program run offline, written out for review and checks.

Output directory layout (deterministic: two renders of one tree are byte-identical):

- ``resources.json``: every registered resource, components included, sorted by URN;
- ``manifests/<namespace or _cluster>/<kind>-<name>.yaml``: each Kubernetes object as applied;
- ``releases/<release name>.yaml``: each Helm release (chart, version, repository, values);
- ``outputs.json``: the stack's exports (secrets masked);
- ``docker/``: for a docker stack, a summary of every container and the files copied into them
  (see ``ops/docker_summary.py``).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.config import validate_stack
from infra.program import main as program
from ops import docker_summary
from ops.mockrun import Registration, Run, run_offline
from ops.project import Project, StackConfig

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
# Keys the Kubernetes provider adds to its inputs that are not part of the object.
_PROVIDER_KEYS = {"__inputs", "__initialApiVersion"}


def is_manifest(reg: Registration) -> bool:
    """Whether a registration is a Kubernetes object (not a component, provider or release)."""
    return (
        reg.custom
        and reg.type.startswith("kubernetes:")
        and reg.type != HELM_RELEASE
        and not reg.type.startswith("pulumi:providers:")
        and "kind" in reg.inputs
    )


def manifest(reg: Registration) -> dict[str, Any]:
    """The object exactly as it would be applied: apiVersion and kind first."""
    body = {k: v for k, v in reg.inputs.items() if k not in _PROVIDER_KEYS}
    head = {"apiVersion": body.pop("apiVersion"), "kind": body.pop("kind")}
    if "metadata" in body:
        head["metadata"] = body.pop("metadata")
    return head | body


def manifest_path(obj: dict[str, Any]) -> Path:
    """Where an object is written below ``manifests/``."""
    meta = obj.get("metadata") or {}
    folder = meta.get("namespace") or "_cluster"
    return Path(folder) / f"{obj['kind'].lower()}-{meta.get('name', 'unnamed')}.yaml"


@dataclass(frozen=True)
class Rendered:
    """A rendered stack: the run itself and where it was written."""

    run: Run
    out: Path
    seconds: float

    def manifests(self) -> list[dict[str, Any]]:
        """Every Kubernetes object of the stack."""
        return [manifest(r) for r in self.run.registrations if is_manifest(r)]

    def kinds(self) -> Counter[str]:
        """Objects per kind (Docker resources by their pulumi-docker type)."""
        docker = Counter(
            r.type.rsplit(":", 1)[-1] for r in self.run.registrations if docker_summary.is_docker(r)
        )
        return Counter(m["kind"] for m in self.manifests()) + docker


#: libyaml's emitter (PyYAML's ``CSafeDumper``, when PyYAML was built with it) writes the same
#: bytes as the pure-Python one six times faster, with two exceptions: it folds long quoted
#: strings at other points (so nothing is folded: ``width`` is unlimited, a long line stays one
#: grep-able line) and it escapes characters outside the Basic Multilingual Plane and the
#: Unicode line breaks the pure-Python emitter writes as they are. A document holding any of
#: those goes through the pure-Python emitter. tests/test_render.py holds both to the same bytes.
PYTHON_DUMPER: type[yaml.SafeDumper] = yaml.SafeDumper
C_DUMPER: type[Any] | None = getattr(yaml, "CSafeDumper", None)
_WIDTH = 2**30
_C_DIFFERS = re.compile("[\x85\u2028\u2029\U00010000-\U0010ffff]")


def dump_yaml(data: Any, dumper: type[Any] | None = None) -> str:
    """Block-style YAML that keeps key order (apiVersion, kind, metadata, ...), lines unfolded;
    ``dumper`` forces one emitter (default: libyaml's where it writes the same bytes)."""
    if dumper is None:
        use_c = C_DUMPER is not None and not _C_DIFFERS.search(
            json.dumps(data, ensure_ascii=False, default=str)
        )
        dumper = C_DUMPER if use_c else PYTHON_DUMPER
    text: str = yaml.dump(
        data, Dumper=dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=_WIDTH
    )
    return text


def validate_config(config: StackConfig, stack: str) -> None:
    """Validate the stack's settings the way the program will; raise ``ConfigError``."""
    validate_stack(stack, config.values.get, set(config.secret_keys).__contains__, config.values.keys())


def run_stack(project: Project, stack: str) -> Run:
    """Validate, then run the program offline for one stack."""
    config = project.stack_config(stack)
    validate_config(config, stack)
    return run_offline(
        program, project=project.name, stack=stack, config=config.values, secret_keys=config.secret_keys
    )


def write(run: Run, out: Path) -> None:
    """Write a run to ``out``, replacing whatever a previous render left there."""
    if out.exists():
        shutil.rmtree(out)
    (out / "manifests").mkdir(parents=True)
    records = [r.record() for r in run.registrations]
    (out / "resources.json").write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")
    (out / "outputs.json").write_text(json.dumps(run.exports, indent=2, sort_keys=True) + "\n")
    for reg in run.registrations:
        if is_manifest(reg):
            obj = manifest(reg)
            path = out / "manifests" / manifest_path(obj)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(dump_yaml(obj))
        elif reg.type == HELM_RELEASE:
            # By the Helm release's own name, not the Pulumi resource's: renaming a resource (with
            # an alias) moves nothing in the cluster, so it moves nothing here either.
            path = out / "releases" / f"{reg.inputs.get('name') or reg.name}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(dump_yaml(reg.inputs))
    if docker_summary.containers(run):
        (out / "docker").mkdir()
        (out / "docker" / "containers.yaml").write_text(dump_yaml(docker_summary.summary(run)))
        for relative, content in docker_summary.files(run).items():
            path = out / "docker" / "files" / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)


def render(project: Project, stack: str, out: Path) -> Rendered:
    """Render one stack into ``out``."""
    started = time.perf_counter()
    run = run_stack(project, stack)
    # Written beside ``out`` first and swapped in only when complete: a render that fails (or
    # is interrupted) leaves the previous output as it was.
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}-", dir=out.parent) as tmp:
        write(run, Path(tmp) / "out")
        if out.exists():
            shutil.rmtree(out)
        (Path(tmp) / "out").rename(out)
    return Rendered(run=run, out=out, seconds=time.perf_counter() - started)
