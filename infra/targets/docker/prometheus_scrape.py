"""The Prometheus scrape configuration of a plain Prometheus (no operator), from the catalog.

Used by the docker target (``local``); any target that runs a plain Prometheus next to the
workloads can use it with its own hostnames. The services have no ``/metrics`` (see
docs/architecture.md), so every workload is probed through the blackbox exporter on its health
path: ``probe_success`` is each workload's up/down signal. A workload whose catalog entry names a
``metrics_path`` is also scraped there. Platform services add their own self-metrics jobs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from infra.catalog import Workload

#: The job that probes every workload's health endpoint through the blackbox exporter.
HEALTH_JOB = "vinylhound-health"
#: The job that scrapes application metrics endpoints (catalog ``metrics_path``).
METRICS_JOB = "vinylhound-metrics"
#: A module of the blackbox exporter's default configuration: GET, any 2xx is success.
BLACKBOX_MODULE = "http_2xx"


@dataclass(frozen=True)
class Endpoint:
    """Where Prometheus reaches one workload: a hostname and port on its network."""

    workload: Workload
    host: str
    port: int

    @property
    def probe_url(self) -> str:
        """The URL whose 2xx answer means healthy (``/`` for a workload without a health path)."""
        return f"http://{self.host}:{self.port}{self.workload.health_path or '/'}"


@dataclass(frozen=True)
class SelfMetrics:
    """A platform service's own metrics endpoint (Consul, Jaeger, Prometheus itself)."""

    job: str
    target: str
    metrics_path: str = "/metrics"
    params: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class PlatformProbe:
    """A platform service without Prometheus metrics, probed on its health URL (NATS's ``/healthz``:
    its monitoring endpoint speaks JSON, not the Prometheus format)."""

    service: str
    url: str


#: The job that probes platform services' health URLs through the blackbox exporter.
PLATFORM_HEALTH_JOB = "platform-health"


def _probe_relabel(blackbox: str) -> list[dict[str, Any]]:
    return [
        {"source_labels": ["__address__"], "target_label": "__param_target"},
        {"source_labels": ["__param_target"], "target_label": "instance"},
        {"target_label": "__address__", "replacement": blackbox},
    ]


def _labels(endpoint: Endpoint, environment: str) -> dict[str, str]:
    return {"workload": endpoint.workload.name, "role": endpoint.workload.role, "environment": environment}


def scrape_config(
    endpoints: Sequence[Endpoint],
    *,
    blackbox: str,
    environment: str,
    self_metrics: Sequence[SelfMetrics] = (),
    platform_probes: Sequence[PlatformProbe] = (),
    interval: str = "15s",
) -> dict[str, Any]:
    """The whole ``prometheus.yml`` as a dict (dump it as YAML).

    ``blackbox`` is the exporter's ``host:port``. Each health target keeps the workload's URL in
    ``instance`` and its name in ``workload``, so ``probe_success{workload="user-service"}`` reads
    as it should.
    """
    jobs: list[dict[str, Any]] = [
        {
            "job_name": HEALTH_JOB,
            "metrics_path": "/probe",
            "params": {"module": [BLACKBOX_MODULE]},
            "static_configs": [
                {"targets": [e.probe_url], "labels": _labels(e, environment)} for e in endpoints
            ],
            "relabel_configs": _probe_relabel(blackbox),
        }
    ]
    if platform_probes:
        jobs.append(
            {
                "job_name": PLATFORM_HEALTH_JOB,
                "metrics_path": "/probe",
                "params": {"module": [BLACKBOX_MODULE]},
                "static_configs": [
                    {"targets": [p.url], "labels": {"service": p.service, "environment": environment}}
                    for p in platform_probes
                ],
                "relabel_configs": _probe_relabel(blackbox),
            }
        )
    with_metrics = [e for e in endpoints if e.workload.metrics_path]
    if with_metrics:
        jobs.append(
            {
                "job_name": METRICS_JOB,
                "static_configs": [
                    {
                        "targets": [f"{e.host}:{e.port}"],
                        "labels": {
                            **_labels(e, environment),
                            "__metrics_path__": e.workload.metrics_path or "/metrics",
                        },
                    }
                    for e in with_metrics
                ],
            }
        )
    for extra in self_metrics:
        job: dict[str, Any] = {
            "job_name": extra.job,
            "metrics_path": extra.metrics_path,
            "static_configs": [{"targets": [extra.target], "labels": {"environment": environment}}],
        }
        if extra.params:
            job["params"] = {k: list(v) for k, v in extra.params.items()}
        jobs.append(job)
    return {
        "global": {
            "scrape_interval": interval,
            "evaluation_interval": interval,
            "external_labels": {"environment": environment},
        },
        "scrape_configs": jobs,
    }
