"""The readable part of a Docker stack's render: one summary of every container, and its files.

Docker resources are not Kubernetes manifests, so ``vinylhound render`` writes, for a docker stack:

- ``docker/containers.yaml``: per container (by Docker name) its image, network names, published
  ports, environment (secret entries masked), healthcheck, volumes, restart policy and the
  containers it starts after;
- ``docker/files/<container>/<path>``: each file copied into a container before it starts
  (Consul's service definitions, ``prometheus.yml``, init SQL), so tools can check them.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from components.docker.specs import SECRET_ENV_LABEL
from ops.mockrun import MASK, Registration, Run

CONTAINER = "docker:index/container:Container"


def is_docker(reg: Registration) -> bool:
    """Whether a registration is a pulumi-docker resource."""
    return reg.custom and reg.type.startswith("docker:")


def containers(run: Run) -> list[Registration]:
    """Every container a run registered, sorted by Docker name."""
    found = [r for r in run.registrations if r.type == CONTAINER]
    return sorted(found, key=lambda r: str(r.inputs.get("name", r.name)))


def summary(run: Run) -> dict[str, Any]:
    """Container name -> what it runs and how, in the order a reader looks for it."""
    by_urn = {r.urn: r for r in containers(run)}
    result: dict[str, Any] = {}
    for reg in containers(run):
        inputs = reg.inputs
        networks = inputs.get("networksAdvanced") or []
        result[str(inputs.get("name", reg.name))] = {
            "image": inputs.get("image"),
            "hostnames": sorted({alias for n in networks for alias in n.get("aliases") or []}),
            "network": sorted({n.get("name") for n in networks}),
            "ports": [
                f"{p.get('ip', '0.0.0.0')}:{p['external']}->{p['internal']}"
                for p in inputs.get("ports") or []
            ],
            "env": _named_secrets(inputs),
            "healthcheck": (inputs.get("healthcheck") or {}).get("tests"),
            "volumes": [f"{v['volumeName']}:{v['containerPath']}" for v in inputs.get("volumes") or []],
            "files": [u["file"] for u in inputs.get("uploads") or []],
            "restart": inputs.get("restart"),
            "startsAfter": sorted(
                str(by_urn[d].inputs.get("name", by_urn[d].name)) for d in reg.dependencies if d in by_urn
            ),
        }
    return result


def _named_secrets(inputs: dict[str, Any]) -> list[str]:
    """The env entries with each masked one shown as ``NAME=[secret]``.

    Entries are sorted by variable name and the secret label lists the secret names sorted, so the
    n-th masked entry is the n-th secret name. Only names are shown, never a value.
    """
    labels = {entry.get("label"): entry.get("value") for entry in inputs.get("labels") or []}
    names = iter(str(labels.get(SECRET_ENV_LABEL) or "").split(","))
    return [
        f"{next(names, '?')}={MASK}" if entry == MASK else str(entry) for entry in inputs.get("envs") or []
    ]


def files(run: Run) -> dict[Path, str]:
    """Relative output path -> content of every file uploaded into a container."""
    written: dict[Path, str] = {}
    for reg in containers(run):
        for upload in reg.inputs.get("uploads") or []:
            inside = PurePosixPath(upload["file"]).relative_to("/")
            written[Path(str(reg.inputs.get("name", reg.name))) / inside] = str(upload.get("content", ""))
    return written
