"""The docker target's platform: the bridge network and the shared JWT secret (``LocalPlatform``),
and the specs of the platform services (Consul, Jaeger, Prometheus and its blackbox exporter),
which ``registry.LocalRegistry`` and ``observability.LocalObservability`` register."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
import pulumi_random as random
import yaml

from components.docker.specs import ContainerSpec, PublishedPort, VolumeMount, http_check
from components.options import child_opts
from infra import events
from infra.config import PlatformConfig
from infra.targets.docker import plan, prometheus_scrape, registry
from infra.targets.docker.prometheus_scrape import Endpoint, PlatformProbe, SelfMetrics

PLATFORM_TYPE = "vinylhound:platform:LocalPlatform"


def platform_probes(cfg: PlatformConfig) -> list[PlatformProbe]:
    """Platform services probed on their health URL: NATS (with JetStream up) when the bus is on."""
    if not cfg.events.enabled:
        return []
    return [
        PlatformProbe(plan.NATS, f"http://{plan.NATS}:{events.MONITOR_PORT}/healthz?js-enabled-only=true")
    ]


def prometheus_yaml(
    endpoints: Sequence[Endpoint], environment: str, probes: Sequence[PlatformProbe] = ()
) -> str:
    """The Prometheus configuration of a docker stack: every workload probed, platform self-metrics,
    and the platform services without metrics probed on their health URL."""
    config = prometheus_scrape.scrape_config(
        endpoints,
        blackbox=f"{plan.BLACKBOX}:{plan.BLACKBOX_PORT}",
        environment=environment,
        platform_probes=probes,
        self_metrics=[
            SelfMetrics("prometheus", f"localhost:{plan.PROMETHEUS_PORT}"),
            SelfMetrics(
                "consul",
                f"{plan.CONSUL}:{plan.CONSUL_PORT}",
                metrics_path="/v1/agent/metrics",
                params={"format": ["prometheus"]},
            ),
            SelfMetrics("jaeger", f"{plan.JAEGER}:{plan.JAEGER_METRICS_PORT}"),
            SelfMetrics("blackbox-exporter", f"{plan.BLACKBOX}:{plan.BLACKBOX_PORT}"),
        ],
    )
    return yaml.safe_dump(config, sort_keys=False)


def platform_specs(
    cfg: PlatformConfig,
    network: pulumi.Input[str],
    endpoints: Sequence[Endpoint],
    versions: Mapping[str, str],
    labels: Mapping[str, str],
) -> dict[str, ContainerSpec]:
    """The platform containers (pure)."""
    settings = cfg.docker_settings()
    ports = plan.PortPlan(settings.published_port_base)
    prefix = f"{settings.network}-"
    consul_config = {
        "vinylhound-services.json": registry.service_definitions(
            endpoints, environment=cfg.environment, versions=versions
        ),
        "vinylhound-telemetry.json": registry.telemetry(),
    }
    return {
        plan.CONSUL: ContainerSpec(
            name=plan.CONSUL,
            image=settings.images.consul,
            # The image's entrypoint adds -config-dir=/consul/config to `agent`: the files below.
            command=("agent", "-dev", "-client=0.0.0.0", "-ui"),
            files={
                f"/consul/config/{file}": json.dumps(body, indent=2, sort_keys=True)
                for file, body in consul_config.items()
            },
            ports=[PublishedPort(plan.CONSUL_PORT, ports.platform(plan.CONSUL))],
            healthcheck=http_check(plan.CONSUL_PORT, "/v1/status/leader"),
            network=network,
            name_prefix=prefix,
            labels=labels,
        ),
        plan.JAEGER: ContainerSpec(
            name=plan.JAEGER,
            image=settings.images.jaeger,
            # The all-in-one default: OTLP on 4317/4318 for the network, in-memory storage.
            ports=[PublishedPort(plan.JAEGER_UI_PORT, ports.platform(plan.JAEGER))],
            healthcheck=http_check(plan.JAEGER_HEALTH_PORT, "/status"),
            network=network,
            name_prefix=prefix,
            labels=labels,
        ),
        plan.PROMETHEUS: ContainerSpec(
            name=plan.PROMETHEUS,
            image=settings.images.prometheus,
            files={
                "/etc/prometheus/prometheus.yml": prometheus_yaml(
                    endpoints, cfg.environment, platform_probes(cfg)
                )
            },
            volumes=[VolumeMount("prometheus-data", "/prometheus")],
            ports=[PublishedPort(plan.PROMETHEUS_PORT, ports.platform(plan.PROMETHEUS))],
            healthcheck=http_check(plan.PROMETHEUS_PORT, "/-/healthy"),
            network=network,
            name_prefix=prefix,
            labels=labels,
        ),
        plan.BLACKBOX: ContainerSpec(
            name=plan.BLACKBOX,
            image=settings.images.blackbox_exporter,
            healthcheck=http_check(plan.BLACKBOX_PORT, "/-/healthy"),
            network=network,
            name_prefix=prefix,
            labels=labels,
        ),
    }


@dataclass(frozen=True)
class LocalPlatformArgs:
    """``network``: the bridge network's name; ``labels``: its labels."""

    network: str
    labels: Mapping[str, str]


class LocalPlatform(pulumi.ComponentResource):
    """The bridge network every container joins, and the JWT signing secret the workloads share.

    ``network_name``: the network's name as an Output, so a container given it waits for it.
    """

    network: docker.Network
    network_name: pulumi.Output[str]
    jwt_secret: pulumi.Output[str]

    def __init__(
        self, name: str, args: LocalPlatformArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(PLATFORM_TYPE, name, None, opts)
        self.network = docker.Network(
            f"{name}-network",
            name=args.network,
            driver="bridge",
            labels=[docker.NetworkLabelArgs(label=k, value=v) for k, v in sorted(args.labels.items())],
            opts=child_opts(self, moved_from_root=True, renamed_from="network"),
        )
        jwt = random.RandomPassword(
            f"{name}-jwt-secret",
            length=48,
            special=False,
            opts=child_opts(self, moved_from_root=True, renamed_from="jwt-secret"),
        )
        self.network_name = self.network.name
        self.jwt_secret = pulumi.Output.secret(jwt.result)
        self.register_outputs({"network": self.network_name})
