"""Every enabled catalog workload as a ``Microservice``, wired to its own settings and secrets."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.kubernetes.microservice import Microservice
from components.kubernetes.specs import AutoscalingSpec, ResourceSpec, SecretKeyRef, WorkloadSpec
from components.labels import LabelContext
from infra import env, network
from infra.catalog import Workload
from infra.config import PlatformConfig, WorkloadConfig
from infra.stack_secrets import StackSecrets
from infra.targets.kubernetes.databases import endpoint_for
from infra.targets.kubernetes.extras import WorkloadExtras

JWT_SECRET_NAME = "vinylhound-jwt"
SPOTIFY_SECRET_NAME = "vinylhound-spotify"


def _secret(
    name: str,
    k8s_name: str,
    cfg: PlatformConfig,
    context: LabelContext,
    data: dict[str, pulumi.Input[str]],
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.Secret:
    return k8s.core.v1.Secret(
        name,
        metadata={"name": k8s_name, "namespace": cfg.namespace, "labels": context.common()},
        type="Opaque",
        string_data={k: pulumi.Output.secret(v) for k, v in data.items()},
        opts=opts,
    )


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
    enabled = {w.name for w, _ in cfg.enabled()}
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
        resources=ResourceSpec(
            cpu_request=settings.resources.requests.cpu,
            memory_request=settings.resources.requests.memory,
            cpu_limit=settings.resources.limits.cpu,
            memory_limit=settings.resources.limits.memory,
        ),
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


def deploy_workloads(
    cfg: PlatformConfig,
    secrets: StackSecrets,
    context: LabelContext,
    extras: WorkloadExtras,
    opts: pulumi.ResourceOptions,
) -> dict[str, Microservice]:
    """Shared secrets, then one Microservice per enabled workload; returns them by name."""
    jwt = random.RandomPassword("jwt-secret", length=48, special=False)
    jwt_secret = _secret("jwt-secret", JWT_SECRET_NAME, cfg, context, {"secret": jwt.result}, opts)
    depends: list[pulumi.Resource] = [jwt_secret, *extras.depends_on]
    spotify_ref = None
    if secrets.spotify_client_secret is not None:
        depends.append(
            _secret(
                "spotify-secret",
                SPOTIFY_SECRET_NAME,
                cfg,
                context,
                {"client-secret": secrets.spotify_client_secret},
                opts,
            )
        )
        spotify_ref = SecretKeyRef(SPOTIFY_SECRET_NAME, "client-secret")

    enabled = cfg.enabled()
    wiring = env.Wiring(
        origins=cfg.origins(),
        jwt_secret=SecretKeyRef(JWT_SECRET_NAME, "secret"),
        addresses={w.name: address(w, cfg.namespace) for w, _ in enabled},
        databases={w.name: endpoint for w, _ in enabled if (endpoint := endpoint_for(cfg, w)) is not None},
        spotify_client_id=cfg.spotify_client_id,
        spotify_client_secret=spotify_ref,
    )
    return {
        workload.name: Microservice(
            workload.name,
            workload_spec(workload, settings, cfg, wiring, context, extras),
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=depends)),
        )
        for workload, settings in enabled
    }
