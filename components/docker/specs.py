"""Pure descriptions of containers on one Docker network, and the pulumi-docker inputs they become.

Nothing here registers resources: ``container_inputs`` returns the keyword arguments of
``pulumi_docker.Container`` so the secure defaults are tested without Pulumi or Docker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_docker as docker

#: Published ports listen on the loopback interface only: nothing local is reachable from the LAN.
LOOPBACK = "127.0.0.1"
#: Restart after a crash or a Docker restart, but not after ``docker stop``.
RESTART_POLICY = "unless-stopped"
#: Label listing the names of the variables whose values are secret (the values are masked).
SECRET_ENV_LABEL = "vinylhound.dev/secret-env"


@dataclass(frozen=True)
class PublishedPort:
    """A container port published on the host, on ``host_ip`` (loopback unless said otherwise)."""

    internal: int
    external: int
    host_ip: str = LOOPBACK


@dataclass(frozen=True)
class Healthcheck:
    """A Docker healthcheck. ``test`` is the exec form without the leading ``CMD``."""

    test: tuple[str, ...]
    interval: str = "10s"
    timeout: str = "3s"
    retries: int = 6
    start_period: str = "15s"


@dataclass(frozen=True)
class VolumeMount:
    """A named volume (data that outlives the container) mounted at ``path``."""

    volume: str
    path: str


@dataclass(frozen=True)
class ContainerSpec:
    """Everything one container needs, independent of Pulumi.

    ``name`` is the container name and its hostname on ``network``. ``image`` is a pinned reference,
    or the local tag to build when ``build_context`` is set. ``secret_env`` values stay secret
    Outputs all the way to the engine.
    """

    name: str
    image: str
    #: The network's name; pass the Network resource's ``name`` Output so the container depends on it.
    network: pulumi.Input[str]
    #: Prepended to the container's and volumes' Docker names (not to the hostname): keeps them
    #: apart from other projects' containers on the same machine.
    name_prefix: str = ""
    build_context: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    ports: Sequence[PublishedPort] = ()
    healthcheck: Healthcheck | None = None
    volumes: Sequence[VolumeMount] = ()
    #: Files copied into the container before it starts (path -> content).
    files: Mapping[str, str] = field(default_factory=dict)
    command: Sequence[str] = ()
    #: Extra names the container answers to on the network.
    aliases: Sequence[str] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    #: Run as this uid; default: the image's user.
    user: int | None = None
    #: Read-only root filesystem with a tmpfs per ``writable_paths`` entry.
    read_only: bool = False
    writable_paths: Sequence[str] = ()
    drop_capabilities: bool = False
    memory_mb: int | None = None
    cpus: str | None = None
    #: ``pulumi up`` waits until the healthcheck passes (dependants start after a healthy container).
    wait_healthy: bool = True
    wait_timeout_seconds: int = 120
    #: A task, not a service: runs once to completion (``pulumi up`` waits for it to exit), is
    #: never restarted, and may stay stopped. Replaced (run again) whenever its inputs change.
    one_shot: bool = False


def volume_name(spec: ContainerSpec, mount: VolumeMount) -> str:
    """The Docker name of a named volume of ``spec``."""
    return f"{spec.name_prefix}{mount.volume}"


def env_entries(spec: ContainerSpec) -> list[pulumi.Input[str]]:
    """``NAME=value`` entries, sorted by name; each secret entry is a secret Output as a whole."""
    entries: list[tuple[str, pulumi.Input[str]]] = [(k, f"{k}={v}") for k, v in spec.env.items()]
    entries += [
        (k, pulumi.Output.secret(pulumi.Output.concat(k, "=", v))) for k, v in spec.secret_env.items()
    ]
    return [entry for _, entry in sorted(entries, key=lambda pair: pair[0])]


def labels(spec: ContainerSpec) -> dict[str, str]:
    """The container's labels, plus the names (never the values) of its secret variables."""
    result = dict(spec.labels)
    if spec.secret_env:
        result[SECRET_ENV_LABEL] = ",".join(sorted(spec.secret_env))
    return result


def container_inputs(spec: ContainerSpec, image: pulumi.Input[str]) -> dict[str, Any]:
    """Keyword arguments of ``pulumi_docker.Container`` for ``spec``."""
    if spec.one_shot and spec.wait_healthy:
        raise ValueError(f"container {spec.name}: a one-shot container exits; it cannot become healthy")
    if spec.wait_healthy and spec.healthcheck is None:
        raise ValueError(f"container {spec.name}: waiting for health needs a healthcheck")
    inputs: dict[str, Any] = {
        "name": f"{spec.name_prefix}{spec.name}",
        "hostname": spec.name,
        "image": image,
        "restart": "no" if spec.one_shot else RESTART_POLICY,
        "envs": env_entries(spec),
        "networks_advanced": [
            docker.ContainerNetworksAdvancedArgs(name=spec.network, aliases=[spec.name, *spec.aliases])
        ],
        "ports": [
            docker.ContainerPortArgs(internal=p.internal, external=p.external, ip=p.host_ip)
            for p in spec.ports
        ],
        "volumes": [
            docker.ContainerVolumeArgs(volume_name=volume_name(spec, v), container_path=v.path)
            for v in spec.volumes
        ],
        "uploads": [
            docker.ContainerUploadArgs(file=path, content=content)
            for path, content in sorted(spec.files.items())
        ],
        "labels": [docker.ContainerLabelArgs(label=k, value=v) for k, v in sorted(labels(spec).items())],
        "security_opts": ["no-new-privileges:true"],
        "wait": spec.wait_healthy,
    }
    if spec.one_shot:
        inputs.update(attach=True, must_run=False, logs=True)
    if spec.wait_healthy:
        inputs["wait_timeout"] = spec.wait_timeout_seconds
    if spec.healthcheck is not None:
        check = spec.healthcheck
        inputs["healthcheck"] = docker.ContainerHealthcheckArgs(
            tests=["CMD", *check.test],
            interval=check.interval,
            timeout=check.timeout,
            retries=check.retries,
            start_period=check.start_period,
        )
    if spec.command:
        inputs["command"] = list(spec.command)
    if spec.user is not None:
        inputs["user"] = str(spec.user)
    if spec.read_only:
        inputs["read_only"] = True
        inputs["tmpfs"] = dict.fromkeys(spec.writable_paths, "rw,noexec,nosuid,size=64m")
    if spec.drop_capabilities:
        inputs["capabilities"] = docker.ContainerCapabilitiesArgs(drops=["ALL"])
    if spec.memory_mb is not None:
        inputs["memory"] = spec.memory_mb
    if spec.cpus is not None:
        inputs["cpus"] = spec.cpus
    return inputs


def http_check(port: int, path: str) -> Healthcheck:
    """A GET on the container's own port (busybox ``wget``, present in alpine and busybox images)."""
    return Healthcheck(("wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{port}{path}"))


def memory_mb(quantity: str) -> int:
    """A Kubernetes memory quantity (``256Mi``, ``1Gi``) in Docker's megabytes."""
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 * 1024}
    number, unit = quantity[:-2], quantity[-2:]
    if unit not in units:
        raise ValueError(f"{quantity!r} is not a memory quantity in Ki, Mi, Gi or Ti")
    return max(1, round(int(number) * units[unit]))


def cpus(quantity: str) -> str:
    """A Kubernetes CPU quantity (``500m``, ``1``) as Docker's ``--cpus`` value."""
    if quantity.endswith("m"):
        return f"{int(quantity[:-1]) / 1000:g}"
    return f"{float(quantity):g}"
