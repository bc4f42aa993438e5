"""Every enabled catalog workload as a ``Microservice``, wired to its own settings and secrets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.kubernetes.microservice import Microservice
from components.kubernetes.specs import AutoscalingSpec, ResourceSpec, WorkloadSpec
from components.labels import LabelContext
from components.options import child_opts
from components.values import SecretKeyRef
from infra import env
from infra.catalog import Workload, predates_components
from infra.config import PlatformConfig, Resources, WorkloadConfig
from infra.stack_secrets import StackSecrets
from infra.targets.kubernetes import network
from infra.targets.kubernetes.databases import endpoint_for
from infra.targets.kubernetes.extras import WorkloadExtras

TYPE = "vinylhound:workloads:Workloads"
JWT_SECRET_NAME = "vinylhound-jwt"
SPOTIFY_SECRET_NAME = "vinylhound-spotify"


def _secret(
    name: str,
    k8s_name: str,
    namespace: str,
    context: LabelContext,
    data: dict[str, pulumi.Input[str]],
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.Secret:
    return k8s.core.v1.Secret(
        name,
        metadata={"name": k8s_name, "namespace": namespace, "labels": context.common()},
        type="Opaque",
        string_data={k: pulumi.Output.secret(v) for k, v in data.items()},
        opts=opts,
    )


def container_resources(resources: Resources) -> ResourceSpec:
    """A workload container's resources: the stack's CPU and memory, ephemeral storage by default."""
    r = resources
    return ResourceSpec(r.requests.cpu, r.requests.memory, r.limits.cpu, r.limits.memory)


def address(workload: Workload, namespace: str) -> str:
    """The in-cluster base URL of a workload."""
    return f"http://{workload.name}.{namespace}.svc.cluster.local:{workload.port}"


def workload_spec(
    workload: Workload,
    settings: WorkloadConfig,
    cfg: PlatformConfig,
    wiring: env.Wiring,
    context: LabelContext,
    extras: WorkloadExtras,
) -> WorkloadSpec:
    """The pure description of one workload's pod, from catalog facts and stack settings."""
    enabled = cfg.enabled_names()
    scaling = settings.autoscaling
    version = settings.image.tag or settings.image.digest or "unknown"
    return WorkloadSpec(
        name=workload.name,
        namespace=cfg.namespace,
        image=settings.image.reference(cfg.image_registry, workload.image),
        port=workload.port,
        health_path=workload.health_path,
        labels=context.workload(workload.name, version, workload.role),
        selector=context.selector(workload.name),
        env=[*env.contract_env(workload, wiring), *extras.env_for(workload)],
        replicas=cfg.replicas(workload.name),
        autoscaling=(
            AutoscalingSpec(scaling.min_replicas, scaling.max_replicas, scaling.target_cpu_percent)
            if scaling
            else None
        ),
        resources=container_resources(settings.resources),
        writable_paths=workload.writable_paths,
        run_as_user=workload.run_as_user,
        pod_annotations=extras.annotations_for(workload),
        ingress=[*network.ingress_rules(workload, enabled), *extras.ingress_for(workload)],
        egress=[
            *network.egress_rules(workload, enabled, wiring.databases),
            *network.internet_egress_rules(workload, wiring),
            *extras.egress_for(workload),
        ],
    )


@dataclass(frozen=True)
class WorkloadsArgs:
    """What the workloads register and wait for (``workloads_args`` builds it).

    ``app_namespace``: the workloads' namespace, ``namespace`` the resource that creates it.
    ``specs``: one pod description per enabled workload, with what every platform feature adds
    to it. ``spotify_client_secret``: the value of the Spotify Secret the specs refer to (none:
    no such Secret). ``depends_on``: what every workload waits for besides the namespace and the
    Secrets declared here (the features' ``extras``).
    """

    app_namespace: str
    context: LabelContext
    namespace: pulumi.Resource
    specs: Sequence[WorkloadSpec]
    spotify_client_secret: pulumi.Input[str] | None = None
    depends_on: Sequence[pulumi.Resource] = ()


def workloads_args(
    cfg: PlatformConfig,
    secrets: StackSecrets,
    context: LabelContext,
    namespace: pulumi.Resource,
    extras: WorkloadExtras,
) -> WorkloadsArgs:
    """The workloads' args from the stack's config: each enabled workload's spec, wired to its
    own settings, the Secrets declared by ``Workloads`` and what the features add (``extras``)."""
    spotify = secrets.spotify_client_secret
    enabled = cfg.enabled()
    wiring = env.Wiring(
        origins=cfg.origins(),
        jwt_secret=SecretKeyRef(JWT_SECRET_NAME, "secret"),
        addresses={w.name: address(w, cfg.namespace) for w, _ in enabled},
        databases={w.name: endpoint for w, _ in enabled if (endpoint := endpoint_for(cfg, w)) is not None},
        spotify_client_id=cfg.spotify_client_id,
        spotify_client_secret=SecretKeyRef(SPOTIFY_SECRET_NAME, "client-secret")
        if spotify is not None
        else None,
    )
    return WorkloadsArgs(
        app_namespace=cfg.namespace,
        context=context,
        namespace=namespace,
        specs=tuple(workload_spec(w, settings, cfg, wiring, context, extras) for w, settings in enabled),
        spotify_client_secret=spotify,
        depends_on=extras.depends_on,
    )


class Workloads(pulumi.ComponentResource):
    """Shared secrets, then one Microservice per enabled workload (``services``, by name)."""

    services: dict[str, Microservice]

    def __init__(self, name: str, args: WorkloadsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        ns, context = args.app_namespace, args.context
        jwt = random.RandomPassword(
            f"{name}-jwt-secret",
            length=48,
            special=False,
            opts=child_opts(self, moved_from_root=True, renamed_from="jwt-secret"),
        )
        jwt_secret = _secret(
            f"{name}-jwt-secret",
            JWT_SECRET_NAME,
            ns,
            context,
            {"secret": jwt.result},
            child_opts(self, [args.namespace], moved_from_root=True, renamed_from="jwt-secret"),
        )
        depends: list[pulumi.Resource] = [args.namespace, jwt_secret, *args.depends_on]
        if args.spotify_client_secret is not None:
            depends.append(
                _secret(
                    f"{name}-spotify-secret",
                    SPOTIFY_SECRET_NAME,
                    ns,
                    context,
                    {"client-secret": args.spotify_client_secret},
                    child_opts(self, [args.namespace], moved_from_root=True, renamed_from="spotify-secret"),
                )
            )
        self.services = {
            spec.name: Microservice(
                spec.name,
                spec,
                opts=child_opts(self, depends, moved_from_root=predates_components(spec.name)),
            )
            for spec in args.specs
        }
        self.register_outputs({name: svc.address for name, svc in self.services.items()})
