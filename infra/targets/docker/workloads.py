"""Every enabled catalog workload as a container, with the same environment contract as on Kubernetes.

The contract is filled by the same resolvers (``infra/env.py``). Docker has no Secret objects, so
each ``SecretKeyRef`` a resolver returns is looked up in the target's secret values and passed as a
secret Output: it stays encrypted in the state and masked in every render.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi

from components.docker.service import ContainerService
from components.docker.specs import ContainerSpec, PublishedPort, cpus, http_check, memory_mb
from components.labels import LabelContext
from components.options import child_opts
from components.values import EnvVar, SecretKeyRef
from infra import catalog, env
from infra.catalog import Workload
from infra.config import PlatformConfig, WorkloadConfig
from infra.targets.docker import plan

TYPE = "vinylhound:workloads:LocalWorkloads"

#: Where ``docker.buildContexts`` paths that are relative are taken from: the repository root.
REPOSITORY_ROOT = Path(__file__).resolve().parents[3]


def platform_env(workload: Workload, cfg: PlatformConfig, version: str) -> dict[str, str]:
    """What the platform adds beyond the contract: tracing to Jaeger (OTLP/HTTP) and the registry."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{plan.JAEGER}:{plan.JAEGER_OTLP_HTTP_PORT}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": workload.name,
        "OTEL_RESOURCE_ATTRIBUTES": f"deployment.environment={cfg.environment},service.version={version}",
        "SERVICE_REGISTRY": f"http://{plan.CONSUL}:{plan.CONSUL_PORT}",
    }


def split_env(
    variables: list[EnvVar], secrets: Mapping[SecretKeyRef, pulumi.Input[str]]
) -> tuple[dict[str, str], dict[str, pulumi.Input[str]]]:
    """Plain variables as they are; each secret reference replaced by its (secret) value."""
    plain: dict[str, str] = {}
    secret: dict[str, pulumi.Input[str]] = {}
    for var in variables:
        if var.secret is not None:
            if var.secret not in secrets:
                raise LookupError(f"{var.name}: no value for secret {var.secret.secret}/{var.secret.key}")
            secret[var.name] = secrets[var.secret]
        else:
            plain[var.name] = var.value or ""
    return plain, secret


def _image(workload: Workload, settings: WorkloadConfig, cfg: PlatformConfig) -> tuple[str, str | None]:
    context = cfg.docker_settings().build_contexts.get(workload.name)
    if context is None:
        return settings.image.reference(cfg.image_registry, workload.image), None
    path = Path(context)
    # Built locally and never pushed: the tag only names the build on this machine.
    return f"vinylhound-local/{workload.image}:dev", str(
        path if path.is_absolute() else REPOSITORY_ROOT / path
    )


def version_of(settings: WorkloadConfig) -> str:
    """The version a workload reports (its tag, else its digest)."""
    return settings.image.tag or settings.image.digest or "unknown"


def workload_spec(
    workload: Workload,
    settings: WorkloadConfig,
    cfg: PlatformConfig,
    wiring: env.Wiring,
    secrets: Mapping[SecretKeyRef, pulumi.Input[str]],
    network: pulumi.Input[str],
    context: LabelContext,
    extra_env: Sequence[EnvVar] = (),
) -> ContainerSpec:
    """The container of one workload (pure). ``extra_env``: what platform features add (the
    event bus's client variables), resolved like the contract's."""
    docker_settings = cfg.docker_settings()
    version = version_of(settings)
    plain, secret = split_env([*env.contract_env(workload, wiring), *extra_env], secrets)
    image, build_context = _image(workload, settings, cfg)
    frontend_upstreams = [w.api_upstream_host for w in catalog.WORKLOADS if w.api_upstream_host]
    return ContainerSpec(
        name=workload.name,
        image=image,
        build_context=build_context,
        network=network,
        name_prefix=f"{docker_settings.network}-",
        env={**plain, **platform_env(workload, cfg, version)},
        secret_env=secret,
        ports=[
            PublishedPort(
                workload.port, plan.PortPlan(docker_settings.published_port_base).workload(workload)
            )
        ],
        healthcheck=http_check(workload.port, workload.health_path or "/"),
        # The gateway is the edge here: the front end's nginx forwards /api/ to this name.
        aliases=frontend_upstreams if workload.role == "gateway" else [],
        labels=context.workload(workload.name, version, workload.role),
        user=workload.run_as_user,
        read_only=True,
        writable_paths=workload.writable_paths,
        drop_capabilities=True,
        memory_mb=memory_mb(settings.resources.limits.memory),
        cpus=cpus(settings.resources.limits.cpu),
    )


@dataclass(frozen=True)
class LocalWorkloadsArgs:
    """``specs``: one container per enabled workload, in start order. ``waits``: per workload, what
    outside this area it starts after (its database, the event bus); ``after``: per workload, the
    workloads declared before it that it starts after."""

    specs: Sequence[ContainerSpec]
    waits: Mapping[str, Sequence[pulumi.Resource]]
    after: Mapping[str, Sequence[str]]


class LocalWorkloads(pulumi.ComponentResource):
    """Every enabled workload's container, each started once what it needs is healthy
    (``containers``, by name)."""

    containers: dict[str, ContainerService]

    def __init__(
        self, name: str, args: LocalWorkloadsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE, name, None, opts)
        self.containers = {}
        for spec in args.specs:
            after = [
                *args.waits.get(spec.name, ()),
                *(self.containers[w].container for w in args.after.get(spec.name, ())),
            ]
            self.containers[spec.name] = ContainerService(
                spec.name,
                spec,
                child_opts(self, after, moved_from_root=catalog.predates_components(spec.name)),
            )
        self.register_outputs({})
